//! The protocol of a service port, as istiod reads it (`pkg/config/protocol/instance.go`
//! `Parse`, `pkg/config/kube/conversion.go` `ConvertProtocol`): what decides whether a
//! cluster speaks HTTP/1.1, HTTP/2, or follows its caller.

/// A port's protocol. `Unsupported` is what istiod calls a port it must detect (sniff): no
/// protocol, or one it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortProtocol {
    /// `HTTP`.
    Http,
    /// `HTTP2`.
    Http2,
    /// `HTTPS` (TLS passed through, not HTTP to the mesh).
    Https,
    /// `GRPC`.
    Grpc,
    /// `GRPC-WEB`.
    GrpcWeb,
    /// `TCP`.
    Tcp,
    /// `TLS`.
    Tls,
    /// `UDP`.
    Udp,
    /// `MONGO`.
    Mongo,
    /// `REDIS`.
    Redis,
    /// `MYSQL`.
    Mysql,
    /// `THRIFT`.
    Thrift,
    /// `HTTP_PROXY`.
    HttpProxy,
    /// Unset or unknown: detected per connection (a sidecar's cluster follows its caller).
    Unsupported,
}

impl PortProtocol {
    /// `protocol.Parse`: the name compared case-insensitively; anything else is
    /// [`Unsupported`](PortProtocol::Unsupported).
    pub fn parse(name: &str) -> PortProtocol {
        const NAMES: [(&str, PortProtocol); 13] = [
            ("http", PortProtocol::Http),
            ("http2", PortProtocol::Http2),
            ("https", PortProtocol::Https),
            ("grpc", PortProtocol::Grpc),
            ("grpc-web", PortProtocol::GrpcWeb),
            ("tcp", PortProtocol::Tcp),
            ("tls", PortProtocol::Tls),
            ("udp", PortProtocol::Udp),
            ("mongo", PortProtocol::Mongo),
            ("redis", PortProtocol::Redis),
            ("mysql", PortProtocol::Mysql),
            ("thrift", PortProtocol::Thrift),
            ("http_proxy", PortProtocol::HttpProxy),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or(PortProtocol::Unsupported, |(_, p)| *p)
    }

    /// The protocol of a ServiceEntry port: its `protocol` field.
    pub fn of_service_entry_port(protocol: Option<&str>) -> PortProtocol {
        protocol.map_or(PortProtocol::Unsupported, PortProtocol::parse)
    }

    /// The protocol of a Kubernetes Service port (`ConvertProtocol`): UDP by its transport;
    /// else `appProtocol` when set (the three Kubernetes standard values mapped first), else
    /// the port name: a `grpc-web` prefix, or the text before the first `-` (`http2-api`,
    /// `grpc`, `http-web`); unknown names are detected, except on ports 25, 53, 3306 and 27017,
    /// which are TCP.
    pub fn of_kubernetes_port(
        transport: Option<&str>,
        app_protocol: Option<&str>,
        name: &str,
        number: u16,
    ) -> PortProtocol {
        if transport.is_some_and(|t| t.eq_ignore_ascii_case("udp")) {
            return PortProtocol::Udp;
        }
        let input = match app_protocol {
            Some("kubernetes.io/h2c") => return PortProtocol::Http2,
            Some("kubernetes.io/ws") => return PortProtocol::Http,
            Some("kubernetes.io/wss") => return PortProtocol::Https,
            Some(a) => a,
            None => name,
        };
        let lower = input.to_ascii_lowercase();
        if lower.starts_with("grpc-web") {
            return PortProtocol::GrpcWeb;
        }
        let prefix = lower.split('-').next().unwrap_or("");
        match PortProtocol::parse(prefix) {
            PortProtocol::Unsupported if matches!(number, 25 | 53 | 3306 | 27017) => {
                PortProtocol::Tcp
            }
            p => p,
        }
    }

    /// Istio's `IsHTTP`: HTTP, HTTP2, HTTP_PROXY, GRPC, GRPC-Web.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            PortProtocol::Http
                | PortProtocol::Http2
                | PortProtocol::HttpProxy
                | PortProtocol::Grpc
                | PortProtocol::GrpcWeb
        )
    }

    /// Istio's `IsHTTP2`: HTTP2, GRPC, GRPC-Web (their clusters get HTTP/2 upstream options).
    pub fn is_http2(self) -> bool {
        matches!(
            self,
            PortProtocol::Http2 | PortProtocol::Grpc | PortProtocol::GrpcWeb
        )
    }
}

#[cfg(test)]
mod tests {
    use super::PortProtocol as P;

    #[test]
    fn names_parse_case_insensitively() {
        assert_eq!(P::parse("GRPC"), P::Grpc);
        assert_eq!(P::parse("Http2"), P::Http2);
        assert_eq!(P::parse("grpc-web"), P::GrpcWeb);
        assert_eq!(P::parse(""), P::Unsupported);
        assert_eq!(P::parse("h2c"), P::Unsupported);
        assert_eq!(P::of_service_entry_port(None), P::Unsupported);
    }

    #[test]
    fn kubernetes_ports_by_app_protocol_then_name_prefix() {
        let k = |app: Option<&str>, name: &str, n: u16| P::of_kubernetes_port(None, app, name, n);
        assert_eq!(k(None, "http2-api", 80), P::Http2);
        assert_eq!(k(None, "grpc", 80), P::Grpc);
        assert_eq!(k(None, "grpc-web-x", 80), P::GrpcWeb);
        assert_eq!(k(None, "HTTP-web", 80), P::Http);
        assert_eq!(k(None, "web-http", 80), P::Unsupported);
        assert_eq!(k(Some("kubernetes.io/h2c"), "web", 80), P::Http2);
        assert_eq!(k(Some("grpc"), "http", 80), P::Grpc, "appProtocol wins");
        assert_eq!(k(None, "db", 3306), P::Tcp);
        assert_eq!(P::of_kubernetes_port(Some("UDP"), None, "http", 53), P::Udp);
        assert!(P::Grpc.is_http() && P::Grpc.is_http2() && !P::Http.is_http2());
        assert!(!P::Https.is_http());
    }
}
