//! Every HTTPMatchRequest field (istio-semantics §1.4), table-driven through YAML.

mod common;

use common::{headers, table, target};
use mesh_routing::{ClientContext, RequestView};

/// One route per field; each routes to its own host `mN` so the target names the route.
const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: m, namespace: default}
spec:
  hosts: [m]
  http:
  - match: [{uri: {exact: /exact}}]
    route: [{destination: {host: m1}}]
  - match: [{uri: {prefix: /pre}}]
    route: [{destination: {host: m2}}]
  - match: [{uri: {regex: "/re/[0-9]+"}}]
    route: [{destination: {host: m3}}]
  - match: [{uri: {exact: /Case}, ignoreUriCase: true}]
    route: [{destination: {host: m4}}]
  - match: [{uri: {prefix: /ci/}, ignoreUriCase: true}]
    route: [{destination: {host: m5}}]
  - match: [{uri: {regex: "/rx/a"}, ignoreUriCase: true}]
    route: [{destination: {host: m6}}]
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: m7}}]
  - match: [{headers: {X-Prefix: {prefix: abc}}}]
    route: [{destination: {host: m8}}]
  - match: [{headers: {x-re: {regex: "v[12]"}}}]
    route: [{destination: {host: m9}}]
  - match: [{headers: {x-present: {}}}]
    route: [{destination: {host: m10}}]
  - match: [{uri: {prefix: /wo}, withoutHeaders: {x-block: {exact: yes}}}]
    route: [{destination: {host: m11}}]
  - match: [{uri: {prefix: /absent}, withoutHeaders: {x-any: {}}}]
    route: [{destination: {host: m12}}]
  - match: [{queryParams: {q: {exact: ""}}}]
    route: [{destination: {host: m13}}]
  - match: [{queryParams: {id: {regex: "\\d+"}}}]
    route: [{destination: {host: m14}}]
  - match: [{queryParams: {flag: {}}}]
    route: [{destination: {host: m15}}]
  - match: [{method: {exact: POST}}]
    route: [{destination: {host: m16}}]
  - match: [{scheme: {exact: https}, uri: {prefix: /s}}]
    route: [{destination: {host: m17}}]
  - match: [{authority: {exact: "m:8080"}}]
    route: [{destination: {host: m18}}]
  - match: [{port: 9090}]
    route: [{destination: {host: m19}}]
  - match: [{headers: {x-a: {exact: "1"}, x-b: {exact: "2"}}}]
    route: [{destination: {host: m20}}]
  - match: [{uri: {prefix: /or1}}, {uri: {prefix: /or2}}]
    route: [{destination: {host: m21}}]
  - match: [{headers: {x-multi: {exact: "a,b"}}}]
    route: [{destination: {host: m22}}]
  - match: [{headers: {":method": {exact: PATCH}}}]
    route: [{destination: {host: m23}}]
  - match: [{uri: {prefix: ""}, headers: {x-last: {exact: "1"}}}]
    route: [{destination: {host: m24}}]
"#;

struct Case {
    what: &'static str,
    method: &'static str,
    authority: &'static str,
    path: &'static str,
    scheme: &'static str,
    headers: &'static [(&'static str, &'static str)],
    want: &'static str,
}

const fn case(what: &'static str, path: &'static str, want: &'static str) -> Case {
    Case {
        what,
        method: "GET",
        authority: "m",
        path,
        scheme: "http",
        headers: &[],
        want,
    }
}

fn m(n: u32, port: u16) -> String {
    format!("m{n}.default.svc.cluster.local||{port}")
}

#[test]
fn every_match_field() {
    let t = table(CONFIG, &ClientContext::new("default"));
    let cases = [
        case("uri exact", "/exact", "m1"),
        case("uri exact ignores the query string", "/exact?x=1", "m1"),
        case("uri exact is exact", "/exact/", "NR"),
        case("uri prefix is not segment aware", "/prefix-and-more", "m2"),
        case("uri regex is a full match", "/re/123", "m3"),
        case("uri regex must match the whole path", "/re/123/x", "NR"),
        case("uri exact is case-sensitive by default", "/exacT", "NR"),
        case("ignoreUriCase on exact", "/cASE", "m4"),
        case("ignoreUriCase on prefix", "/CI/anything", "m5"),
        case("ignoreUriCase does not apply to regex", "/RX/A", "NR"),
        case("regex without case folding still matches", "/rx/a", "m6"),
        Case {
            headers: &[("end-user", "jason")],
            ..case("header exact", "/h", "m7")
        },
        Case {
            headers: &[("end-user", "bob")],
            ..case("header exact mismatch", "/h", "NR")
        },
        Case {
            headers: &[("end-user", "Jason")],
            ..case("header values are case-sensitive", "/h", "NR")
        },
        Case {
            headers: &[("x-prefix", "abcdef")],
            ..case("header names are case-insensitive", "/h", "m8")
        },
        Case {
            headers: &[("x-re", "v2")],
            ..case("header regex", "/h", "m9")
        },
        Case {
            headers: &[("x-re", "v23")],
            ..case("header regex full match", "/h", "NR")
        },
        Case {
            headers: &[("x-present", "")],
            ..case("header presence with empty value", "/h", "m10")
        },
        case("withoutHeaders: absent header is fine", "/wo", "m11"),
        Case {
            headers: &[("x-block", "no")],
            ..case("withoutHeaders: other value is fine", "/wo", "m11")
        },
        Case {
            headers: &[("x-block", "yes")],
            ..case("withoutHeaders: matching value excludes", "/wo", "NR")
        },
        case("withoutHeaders {}: header must be absent", "/absent", "m12"),
        Case {
            headers: &[("x-any", "")],
            ..case("withoutHeaders {}: present excludes", "/absent", "NR")
        },
        case("query exact \"\" matches ?key", "/x?q", "m13"),
        case("query exact \"\" matches ?key=", "/x?a=1&q=", "m13"),
        case("query exact \"\" rejects a value", "/x?q=1", "NR"),
        case("query regex full match", "/x?id=123", "m14"),
        case("query regex rejects partial", "/x?id=a123", "NR"),
        case("query first value wins", "/x?id=a&id=1", "NR"),
        case("query presence", "/x?flag=anything", "m15"),
        case("query names are case-sensitive", "/x?FLAG=1", "NR"),
        case("query values are not percent-decoded", "/x?id=%31", "NR"),
        Case {
            method: "POST",
            ..case("method exact", "/m", "m16")
        },
        Case {
            method: "post",
            ..case("method is case-sensitive", "/m", "NR")
        },
        Case {
            scheme: "https",
            ..case("scheme", "/s", "m17")
        },
        case("scheme mismatch", "/s", "NR"),
        Case {
            authority: "m:8080",
            ..case("authority includes the port", "/a", "m18")
        },
        case(
            "authority without port does not match an exact with port",
            "/a",
            "NR",
        ),
        Case {
            headers: &[("x-a", "1"), ("x-b", "2")],
            ..case("headers are AND-ed", "/and", "m20")
        },
        Case {
            headers: &[("x-a", "1")],
            ..case("headers AND: one missing", "/and", "NR")
        },
        case("match blocks are OR-ed (first)", "/or1", "m21"),
        case("match blocks are OR-ed (second)", "/or2x", "m21"),
        Case {
            headers: &[("x-multi", "a"), ("x-multi", "b")],
            ..case("multi-valued headers joined with ,", "/mv", "m22")
        },
        Case {
            method: "PATCH",
            ..case("pseudo-header :method", "/p", "m23")
        },
        Case {
            headers: &[("x-last", "1")],
            ..case("prefix \"\" matches every path", "/whatever", "m24")
        },
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let h = headers(c.headers);
        let req = RequestView::new(c.method, c.authority, c.path, &h).with_scheme(c.scheme);
        let port = req.port();
        let want = match c.want.strip_prefix('m') {
            Some(n) => m(n.parse().unwrap(), port),
            None => c.want.to_owned(),
        };
        let got = target(&t, &req, 0);
        if got != want {
            failures.push(format!("{}: got {got}, want {want}", c.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn port_selects_per_request() {
    let t = table(CONFIG, &ClientContext::new("default"));
    let h = headers(&[]);
    let req = RequestView::new("GET", "m:9090", "/p", &h);
    assert_eq!(target(&t, &req, 0), m(19, 9090));
    let req = RequestView::new("GET", "m", "/p", &h).with_port(9090);
    assert_eq!(target(&t, &req, 0), m(19, 9090));
}

#[test]
fn explain_names_the_failing_field() {
    let t = table(CONFIG, &ClientContext::new("default"));
    let h = headers(&[("end-user", "bob")]);
    let trace = t.explain(&RequestView::new("GET", "m", "/h", &h));
    let text = trace.to_string();
    assert!(
        text.contains(r#"headers.end-user: exact "jason" did not match "bob""#),
        "{text}"
    );
    assert!(
        text.contains("uri: exact \"/exact\" did not match \"/h\""),
        "{text}"
    );
    assert!(text.contains("outcome: 404 NR"), "{text}");
    assert_eq!(trace.virtual_service.as_ref().unwrap().id, "default/m");
    assert_eq!(trace.routes.len(), 24, "every route is considered");
}
