//! Turning `METHOD URL -H ... --source-label ...` into a request and a client context.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use mesh_routing::{ClientContext, RequestView};

use crate::{Failure, RequestArgs};

/// An owned request to route: a [`RequestView`] borrows from it.
#[derive(Debug)]
pub(crate) struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    port: Option<u16>,
}

impl Request {
    /// Parses the request part of the command line.
    pub(crate) fn parse(args: &RequestArgs) -> Result<Self, Failure> {
        let method = Method::from_bytes(args.method.as_bytes()).map_err(|_| {
            Failure::usage(format!(
                "{:?} is not an HTTP method (a token such as GET or POST)",
                args.method
            ))
        })?;
        let uri = parse_url(&args.url)?;
        let mut headers = HeaderMap::new();
        for h in &args.headers {
            let (name, value) = parse_header(h)?;
            headers.append(name, value);
        }
        if args.port == Some(0) {
            return Err(Failure::usage("--port must be between 1 and 65535"));
        }
        Ok(Request {
            method,
            uri,
            headers,
            port: args.port,
        })
    }

    /// The view routing reads.
    pub(crate) fn view(&self) -> RequestView<'_> {
        let scheme = self.uri.scheme_str().unwrap_or("http");
        let authority = self.uri.authority().map_or("", |a| a.as_str());
        let target = self.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let view = RequestView::new(self.method.as_str(), authority, target, &self.headers)
            .with_scheme(scheme);
        match self.port {
            Some(p) => view.with_port(p),
            None => view,
        }
    }

    /// The request as an [`http::Request`] with `body`, as a client would send it.
    pub(crate) fn to_http<B>(&self, body: B) -> http::Request<B> {
        let mut req = http::Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// The URL as routed.
    pub(crate) fn url(&self) -> String {
        self.uri.to_string()
    }

    /// The method.
    pub(crate) fn method(&self) -> &str {
        self.method.as_str()
    }
}

/// Parses a URL; `http://` is assumed when no scheme is written. It must name a host.
fn parse_url(url: &str) -> Result<Uri, Failure> {
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let uri: Uri = full
        .parse()
        .map_err(|e| Failure::usage(format!("{url:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(Failure::usage(format!(
                "{url:?}: only http:// and https:// URLs can be routed"
            )))
        }
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(Failure::usage(format!(
            "{url:?} names no host; write it like http://reviews:9080/path"
        )));
    }
    Ok(uri)
}

/// Parses `NAME: VALUE` (the value may be empty).
fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(Failure::usage(format!(
            "header {h:?} has no `:`; write it as -H 'name: value'"
        )));
    };
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| Failure::usage(format!("{:?} is not a valid header name", name.trim())))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| Failure::usage(format!("the value of header {name} is not valid")))?;
    Ok((name, value))
}

/// The calling workload from `--namespace`, `--source-label` and `--gateway`.
pub(crate) fn client(args: &RequestArgs) -> Result<ClientContext, Failure> {
    client_context(
        &args.namespace,
        &args.source_labels,
        args.gateway.as_deref(),
    )
}

/// The calling workload: its namespace, `KEY=VALUE` labels and the gateway it acts as (a
/// sidecar, `mesh`, when `None`).
pub(crate) fn client_context(
    namespace: &str,
    labels: &[String],
    gateway: Option<&str>,
) -> Result<ClientContext, Failure> {
    if namespace.is_empty() {
        return Err(Failure::usage("--namespace must not be empty"));
    }
    let mut client = ClientContext::new(namespace);
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            return Err(Failure::usage(format!(
                "source label {l:?} has no `=`; write it as --source-label key=value"
            )));
        };
        if k.is_empty() {
            return Err(Failure::usage(format!(
                "source label {l:?} has an empty key"
            )));
        }
        client = client.with_label(k, v);
    }
    if let Some(g) = gateway {
        if !g.contains('/') && g != "mesh" {
            return Err(Failure::usage(format!(
                "--gateway {g:?}: write the gateway as namespace/name (or `mesh`)"
            )));
        }
        client = client.with_gateway(g);
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(method: &str, url: &str, headers: &[&str]) -> RequestArgs {
        RequestArgs {
            headers: headers.iter().map(|s| (*s).to_owned()).collect(),
            source_labels: Vec::new(),
            namespace: "default".to_owned(),
            gateway: None,
            port: None,
            method: method.to_owned(),
            url: url.to_owned(),
        }
    }

    #[test]
    fn url_without_scheme_is_http() {
        let r = Request::parse(&args("GET", "api:8080/users?id=1", &[])).unwrap();
        let v = r.view();
        assert_eq!(v.scheme(), "http");
        assert_eq!(v.authority(), "api:8080");
        assert_eq!(v.port(), 8080);
        assert_eq!(v.path(), "/users");
        assert_eq!(v.query(), Some("id=1"));
    }

    #[test]
    fn https_defaults_to_443_and_port_flag_overrides() {
        let r = Request::parse(&args("GET", "https://api/", &[])).unwrap();
        assert_eq!(r.view().port(), 443);
        let mut a = args("GET", "http://api/", &[]);
        a.port = Some(9080);
        assert_eq!(Request::parse(&a).unwrap().view().port(), 9080);
    }

    #[test]
    fn headers_are_parsed_and_repeatable() {
        let r = Request::parse(&args(
            "POST",
            "http://api/",
            &["End-User: jason", "x-a:1", "x-a: 2", "x-empty:"],
        ))
        .unwrap();
        let v = r.view();
        assert_eq!(v.method(), "POST");
        assert_eq!(v.headers()["end-user"], "jason");
        assert_eq!(v.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(v.headers()["x-empty"], "");
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for (m, u, h) in [
            ("GET", "http://api/", "no-colon"),
            ("GET", "http://api/", "bad name: x"),
            ("G T", "http://api/", "a: b"),
            ("GET", "ftp://api/", "a: b"),
            ("GET", "http:///path", "a: b"),
        ] {
            let err = Request::parse(&args(m, u, &[h])).unwrap_err();
            assert_eq!(err.code, crate::exit::USAGE, "{m} {u} {h}");
        }
    }

    #[test]
    fn client_labels_and_errors() {
        let mut a = args("GET", "http://api/", &[]);
        a.source_labels = vec!["app=frontend".to_owned(), "version=".to_owned()];
        a.namespace = "prod".to_owned();
        let c = client(&a).unwrap();
        assert_eq!(c.namespace(), "prod");
        assert_eq!(c.labels().get("app").map(String::as_str), Some("frontend"));
        assert_eq!(c.labels().get("version").map(String::as_str), Some(""));
        a.source_labels = vec!["app".to_owned()];
        assert_eq!(client(&a).unwrap_err().code, crate::exit::USAGE);
        a.source_labels = vec!["=x".to_owned()];
        assert_eq!(client(&a).unwrap_err().code, crate::exit::USAGE);
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn headers_round_trip(
            name in "[a-z][a-z0-9-]{0,20}",
            value in "[!-~]([ -~]{0,30}[!-~])?",
            pad in " {0,3}",
        ) {
            let (n, v) = parse_header(&format!("{name}:{pad}{value}{pad}")).unwrap();
            prop_assert_eq!(n.as_str(), name.as_str());
            prop_assert_eq!(v.to_str().unwrap(), value.as_str());
        }

        #[test]
        fn urls_keep_path_and_query(
            host in "[a-z][a-z0-9-]{0,15}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
            port in 1u16..,
            path in "(/[a-zA-Z0-9._~-]{0,8}){1,4}",
            query in proptest::option::of("[a-z0-9=&]{0,12}"),
        ) {
            let target = match &query {
                Some(q) => format!("{path}?{q}"),
                None => path.clone(),
            };
            let r = Request::parse(&args("GET", &format!("{host}:{port}{target}"), &[])).unwrap();
            let v = r.view();
            prop_assert_eq!(v.authority(), format!("{host}:{port}"));
            prop_assert_eq!(v.port(), port);
            prop_assert_eq!(v.path(), path.as_str());
            prop_assert_eq!(v.query(), query.as_deref());
        }
    }
}
