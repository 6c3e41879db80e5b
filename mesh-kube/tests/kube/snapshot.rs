//! `Snapshot`: the cluster read once gives what a `Discovery` applies, page by page, and
//! `client_from_kubeconfig` picks the kubeconfig's context.

use mesh_kube::testing::{self, FakeApiServer, SliceEndpoint};
use mesh_kube::{
    client_from_kubeconfig, DiscoveryError, IstioKind, KubeconfigError, Scope, Snapshot,
};
use mesh_model::Strictness;
use mesh_routing::endpoints::Health;
use serde_json::Value;

use crate::support::{destination_rule, virtual_service, Env, HOST, NS};

const BROKEN: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: shop}
spec:
  hosts: [broken]
  http:
  - route: [{destination: {host: broken}, weight: -1}]
";

/// `reviews` in `shop` with four pods over two slices (one not ready, one terminating), its
/// VirtualService and DestinationRule, an invalid VirtualService, and 600 pods elsewhere
/// (more than one list page).
fn objects() -> Vec<Value> {
    let mut out = vec![
        testing::service(NS, "reviews", &[("http", 9080)]),
        testing::pod(NS, "p1", &[("app", "reviews"), ("version", "v1")]),
        testing::pod(NS, "p2", &[("app", "reviews"), ("version", "v2")]),
        testing::pod(NS, "p3", &[("app", "reviews"), ("version", "v2")]),
        testing::pod(NS, "p4", &[("app", "reviews"), ("version", "v1")]),
        testing::endpoint_slice(
            NS,
            "reviews-a",
            "reviews",
            "IPv4",
            &[("http", 8080)],
            &[
                SliceEndpoint::ready("10.1.0.1", "p1").at("zone-a", "node-1"),
                SliceEndpoint::ready("10.1.0.4", "p4").terminating(),
            ],
        ),
        testing::endpoint_slice(
            NS,
            "reviews-b",
            "reviews",
            "IPv4",
            &[("http", 8081)],
            &[
                SliceEndpoint::ready("10.1.0.2", "p2"),
                SliceEndpoint::ready("10.1.0.3", "p3").not_ready(),
            ],
        ),
    ];
    for i in 0..600 {
        out.push(testing::pod(
            "batch",
            &format!("job-{i}"),
            &[("app", "job")],
        ));
    }
    out.extend(testing::yaml(&virtual_service(80)));
    out.extend(testing::yaml(&destination_rule("")));
    out.extend(testing::yaml(BROKEN));
    out
}

#[tokio::test]
async fn a_snapshot_is_what_a_discovery_applies() {
    let env = Env::start(objects()).await;
    let lists_before = env.api.lists();
    let client = env.api.client().await.unwrap();
    let snap = Snapshot::read(&client, &Scope::AllNamespaces)
        .await
        .unwrap();
    // 3 kinds of objects + 3 Istio kinds, the pods in two pages of 500; nothing watched.
    assert_eq!(env.api.lists() - lists_before, 7);

    let applied = env.discovery.config().expect("a configuration");
    assert_eq!(snap.config().to_yaml(), applied.to_yaml());
    assert_eq!(snap.config().virtual_services().len(), 1, "broken left out");

    let refused: Vec<(IstioKind, String, String)> = snap
        .refused()
        .iter()
        .filter_map(|e| match e {
            DiscoveryError::Refused {
                kind,
                namespace,
                name,
                ..
            } => Some((*kind, namespace.clone(), name.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        [(
            IstioKind::VirtualService,
            NS.to_owned(),
            "broken".to_owned()
        )]
    );

    // Every object, refused ones included, in Istio's order, for validation.
    let names: Vec<String> = snap.objects().iter().map(ToString::to_string).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.contains(&"shop/broken (VirtualService)".to_owned()),
        "{names:?}"
    );
    let loaded = snap.load(Strictness::Standard);
    let errors: Vec<&str> = loaded.errors().map(|d| d.source()).collect();
    assert_eq!(errors, ["kubernetes:VirtualService/shop/broken"]);

    // The endpoints: both slices merged, the terminating one left out, the not-ready one
    // unhealthy, each at its slice's port for service port 9080, labels from the pods.
    let eps = snap
        .endpoints()
        .endpoints(HOST)
        .expect("reviews has endpoints");
    let summary: Vec<String> = eps
        .iter()
        .map(|e| {
            format!(
                "{}:{} {:?} {}",
                e.address(),
                e.port_for(9080),
                e.health(),
                e.label("version").unwrap_or("-")
            )
        })
        .collect();
    let mut sorted = summary.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            format!("10.1.0.1:8080 {:?} v1", Health::Healthy),
            format!("10.1.0.2:8081 {:?} v2", Health::Healthy),
            format!("10.1.0.3:8081 {:?} v2", Health::Unhealthy),
        ]
    );
    assert_eq!(snap.counts(), (1, 2, 604));
}

#[tokio::test]
async fn a_snapshot_keeps_to_its_scope() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply_all(objects());
    let client = api.client().await.unwrap();
    let snap = Snapshot::read(&client, &Scope::Namespaces(vec!["batch".into()]))
        .await
        .unwrap();
    assert!(snap.objects().is_empty());
    assert!(snap.endpoints().endpoints(HOST).is_none());
    assert_eq!(snap.counts(), (0, 0, 600));
}

#[tokio::test]
async fn the_kubeconfig_context_is_checked_and_used() {
    let api = FakeApiServer::start().await.unwrap();
    api.apply_all(testing::yaml(&virtual_service(100)));
    let dir = std::env::temp_dir().join(format!("mesh-kube-snapshot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config");
    std::fs::write(&path, api.kubeconfig()).unwrap();

    let client = client_from_kubeconfig(Some(&path), Some("stand-in"))
        .await
        .unwrap();
    let snap = Snapshot::read(&client, &Scope::AllNamespaces)
        .await
        .unwrap();
    assert_eq!(snap.config().virtual_services().len(), 1);

    let Err(err) = client_from_kubeconfig(Some(&path), Some("prod")).await else {
        panic!("a context the kubeconfig does not have");
    };
    assert!(
        matches!(&err, KubeconfigError::NoSuchContext { context, available, .. }
            if context == "prod" && available == &["stand-in".to_owned()]),
        "{err:?}"
    );
    assert!(err.to_string().contains("its contexts: stand-in"), "{err}");

    let Err(err) = client_from_kubeconfig(Some(&dir.join("missing")), None).await else {
        panic!("a kubeconfig that does not exist");
    };
    assert!(matches!(err, KubeconfigError::Read { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
