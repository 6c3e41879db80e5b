//! The seed's canary configuration (a 90/10 split with retries and timeouts, pool limits and
//! outlier detection) plus a ServiceEntry with four endpoints, shared by the benches.

/// The YAML.
pub(crate) const CANARY: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: api-vs-canary, namespace: default}
spec:
  hosts: [api]
  http:
  - match: [{sourceLabels: {app: frontend}}]
    route: [{destination: {host: api, subset: v2}}]
    retries: {attempts: 3, perTryTimeout: 2s}
    timeout: 5s
  - route:
    - {destination: {host: api, subset: v1}, weight: 90}
    - {destination: {host: api, subset: v2}, weight: 10}
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure,refused-stream"}
    timeout: 5s
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: api-dr, namespace: default}
spec:
  host: api
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 100}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      connectionPool: {http: {idleTimeout: 10s}}
      loadBalancer: {simple: ROUND_ROBIN}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api-endpoints, namespace: default}
spec:
  hosts: [api.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: 9001}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 9002}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: 9003}, labels: {version: v2}}
  - {address: 127.0.0.1, ports: {http: 9004}, labels: {version: v2}}
"#;

/// The validated configuration.
pub(crate) fn config() -> mesh_model::MeshConfig {
    mesh_model::load_str("canary.yaml", CANARY)
        .into_result()
        .expect("valid canary config")
}
