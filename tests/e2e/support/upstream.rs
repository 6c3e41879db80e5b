//! The services the tests call: how the YAML names them and where requests go.

/// A service under test: the names its ServiceEntry, DestinationRule and VirtualService use,
/// and the URL requests to it are sent to.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// `metadata` of the ServiceEntry that declares it.
    pub(crate) entry_metadata: &'static str,
    /// `metadata` of its DestinationRule and VirtualService.
    pub(crate) metadata: &'static str,
    /// The ServiceEntry's host.
    pub(crate) fqdn: &'static str,
    /// The host the DestinationRule and VirtualService name.
    pub(crate) host: &'static str,
    /// The ServiceEntry's port number.
    pub(crate) port: u16,
    /// The ServiceEntry's port name (the key of each endpoint's `ports`).
    pub(crate) port_name: &'static str,
    /// Scheme and authority of the requests sent to it.
    pub(crate) base_url: &'static str,
}

impl Upstream {
    /// The URL of `path` (which starts with `/`) on this service.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// `api.default.svc.cluster.local` port 8080 (`http`), called as `http://api:8080`: the
/// service of the tests that run the mesh around hyper-util's legacy client.
pub(crate) const API: Upstream = Upstream {
    entry_metadata: "{name: api-pods}",
    metadata: "{name: api}",
    fqdn: "api.default.svc.cluster.local",
    host: "api",
    port: 8080,
    port_name: "http",
    base_url: "http://api:8080",
};

/// `api.conn.test` port 80 (`web`), namespace `default`, called as `http://api.conn.test`:
/// the service of the tests of the mesh-owned connector.
pub(crate) const CONN_TEST: Upstream = Upstream {
    entry_metadata: "{name: api, namespace: default}",
    metadata: "{name: api, namespace: default}",
    fqdn: "api.conn.test",
    host: "api.conn.test",
    port: 80,
    port_name: "web",
    base_url: "http://api.conn.test",
};
