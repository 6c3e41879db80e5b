//! Istio YAML for the services under test ([`Upstream`]), and the loader.
//!
//! Policies and route additions are YAML lines given as they appear in the document: a
//! DestinationRule's `trafficPolicy` lines and a route's extra lines indented by four spaces
//! (`"    timeout: 1s\n"`), a VirtualService's `http` list items by two.

use std::fmt;
use std::net::SocketAddr;

use mesh_tests::Backend;

use super::upstream::{Upstream, API, CONN_TEST};

/// A ServiceEntry declaring an [`Upstream`] with `STATIC` endpoints.
#[derive(Debug)]
pub(crate) struct ServiceEntry {
    upstream: &'static Upstream,
    protocol: String,
    endpoints: String,
}

impl ServiceEntry {
    /// The ServiceEntry of `upstream`, protocol `HTTP`, no endpoints yet.
    pub(crate) fn new(upstream: &'static Upstream) -> Self {
        Self {
            upstream,
            protocol: "HTTP".to_owned(),
            endpoints: String::new(),
        }
    }

    /// The port's protocol (`HTTP`, `HTTP2`, `GRPC`...).
    pub(crate) fn protocol(mut self, protocol: &str) -> Self {
        protocol.clone_into(&mut self.protocol);
        self
    }

    /// An endpoint at `ip`, serving the port on `port`, with `labels` (none: no `labels` key).
    pub(crate) fn endpoint<K, V>(
        mut self,
        ip: impl fmt::Display,
        port: u16,
        labels: impl IntoIterator<Item = (K, V)>,
    ) -> Self
    where
        K: fmt::Display,
        V: fmt::Display,
    {
        let labels: Vec<String> = labels
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!(", labels: {{{}}}", labels.join(", "))
        };
        self.endpoints.push_str(&format!(
            "  - {{address: {ip}, ports: {{{}: {port}}}{labels}}}\n",
            self.upstream.port_name
        ));
        self
    }

    /// One endpoint per backend, at its address, with its labels.
    pub(crate) fn pods(self, pods: &[Backend]) -> Self {
        pods.iter().fold(self, |se, b| {
            se.endpoint(b.addr().ip(), b.addr().port(), b.labels())
        })
    }
}

impl fmt::Display for ServiceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = self.upstream;
        write!(
            f,
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {}
spec:
  hosts: [{}]
  resolution: STATIC
  ports: [{{number: {}, name: {}, protocol: {}}}]
  endpoints:
{}",
            u.entry_metadata, u.fqdn, u.port, u.port_name, self.protocol, self.endpoints
        )
    }
}

/// The ServiceEntry of [`API`] with one endpoint on `127.0.0.1` per `(port, version)`, labelled
/// with its `version`.
pub(crate) fn api_entry(endpoints: &[(u16, &str)]) -> String {
    endpoints
        .iter()
        .fold(ServiceEntry::new(&API), |se, (port, version)| {
            se.endpoint("127.0.0.1", *port, [("version", version)])
        })
        .to_string()
}

/// The ServiceEntry of [`CONN_TEST`] with `protocol` and one unlabelled endpoint per address.
pub(crate) fn conn_entry(protocol: &str, addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .fold(ServiceEntry::new(&CONN_TEST).protocol(protocol), |se, a| {
            se.endpoint(a.ip(), a.port(), [] as [(&str, &str); 0])
        })
        .to_string()
}

/// A DestinationRule for an [`Upstream`]: a traffic policy and subsets, each optional.
#[derive(Debug)]
pub(crate) struct DestinationRule {
    upstream: &'static Upstream,
    policy: String,
    subsets: String,
}

impl DestinationRule {
    /// The DestinationRule of `upstream`, with no traffic policy and no subsets yet.
    pub(crate) fn new(upstream: &'static Upstream) -> Self {
        Self {
            upstream,
            policy: String::new(),
            subsets: String::new(),
        }
    }

    /// The `trafficPolicy` lines (indented by four spaces); empty: no `trafficPolicy`.
    pub(crate) fn policy(mut self, lines: &str) -> Self {
        lines.clone_into(&mut self.policy);
        self
    }

    /// One subset per version, named after it, selecting the endpoints labelled with it.
    pub(crate) fn versions(mut self, versions: &[&str]) -> Self {
        for v in versions {
            self.subsets
                .push_str(&format!("  - {{name: {v}, labels: {{version: {v}}}}}\n"));
        }
        self
    }

    /// A subset for `version`, as [`versions`](Self::versions), with its own traffic policy
    /// (a YAML flow mapping, e.g. `{tls: {mode: ISTIO_MUTUAL}}`).
    pub(crate) fn subset_with_policy(mut self, version: &str, policy: &str) -> Self {
        self.subsets.push_str(&format!(
            "  - {{name: {version}, labels: {{version: {version}}}, trafficPolicy: {policy}}}\n"
        ));
        self
    }
}

impl fmt::Display for DestinationRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = self.upstream;
        write!(
            f,
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {}
spec:
  host: {}
",
            u.metadata, u.host
        )?;
        if !self.policy.is_empty() {
            write!(f, "  trafficPolicy:\n{}", self.policy)?;
        }
        if !self.subsets.is_empty() {
            write!(f, "  subsets:\n{}", self.subsets)?;
        }
        Ok(())
    }
}

/// Subsets `v1` and `v2`.
pub(crate) const V1_V2: &[&str] = &["v1", "v2"];

/// Subsets `v1`, `v2` and `v3`.
pub(crate) const V1_V2_V3: &[&str] = &["v1", "v2", "v3"];

/// The DestinationRule of [`API`] with one subset per version in `subsets` and the traffic
/// policy `policy` (lines indented by four spaces; empty: none).
pub(crate) fn api_rule(subsets: &[&str], policy: &str) -> String {
    DestinationRule::new(&API)
        .versions(subsets)
        .policy(policy)
        .to_string()
}

/// The DestinationRule of [`CONN_TEST`] with the traffic policy `policy` and no subsets.
pub(crate) fn conn_rule(policy: &str) -> String {
    DestinationRule::new(&CONN_TEST).policy(policy).to_string()
}

/// A VirtualService for `upstream` with the `http` list items `http` (indented by two spaces).
pub(crate) fn virtual_service(upstream: &Upstream, http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {}
spec:
  hosts: [{}]
  http:
{http}",
        upstream.metadata, upstream.host
    )
}

/// A VirtualService for [`API`] with one route, to `subset`, and the route lines `extra`
/// (indented by four spaces, e.g. `"    timeout: 1s\n"`).
pub(crate) fn route_to(subset: &str, extra: &str) -> String {
    virtual_service(
        &API,
        &format!(
            "  - route:\n    - destination: {{host: {}, subset: {subset}}}\n{extra}",
            API.host
        ),
    )
}

/// A VirtualService for [`API`] with one route splitting `v1`:`v2` by weight between subsets
/// `v1` and `v2`, and the route lines `extra` (indented by four spaces).
pub(crate) fn split(v1: u32, v2: u32, extra: &str) -> String {
    let host = API.host;
    virtual_service(
        &API,
        &format!(
            "  - route:
    - destination: {{host: {host}, subset: v1}}
      weight: {v1}
    - destination: {{host: {host}, subset: v2}}
      weight: {v2}
{extra}"
        ),
    )
}

/// A VirtualService for `upstream` sending everything to it with no retries
/// (`attempts: 0`).
pub(crate) fn no_retries(upstream: &Upstream) -> String {
    virtual_service(
        upstream,
        &format!(
            "  - retries: {{attempts: 0}}\n    route: [{{destination: {{host: {}}}}}]\n",
            upstream.host
        ),
    )
}

/// Loads YAML documents, asserting that none has an error.
pub(crate) fn load(docs: &[&str]) -> mesh_model::MeshConfig {
    let mut loader = mesh_model::Loader::new();
    for (i, d) in docs.iter().enumerate() {
        loader.add_str(&format!("doc{i}.yaml"), d);
    }
    let loaded = loader.finish();
    let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "config errors: {errors:#?}");
    loaded.into_config()
}

/// One backend on `port` as subset `v1` of [`API`], a DestinationRule with subsets `v1`, `v2`
/// and `v3`, and a VirtualService routing to `v1` with the route lines `route_extra`.
pub(crate) fn config_for(port: u16, route_extra: &str) -> mesh_model::MeshConfig {
    load(&[
        &api_entry(&[(port, "v1")]),
        &api_rule(V1_V2_V3, ""),
        &route_to("v1", route_extra),
    ])
}
