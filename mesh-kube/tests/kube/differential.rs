//! The same Istio objects as YAML files and from a cluster give the same configuration and
//! the same routing decisions.

use std::path::Path;

use http::HeaderMap;
use mesh_kube::testing;
use mesh_routing::{ClientContext, RequestView, RouteTable};

use crate::support::Env;

/// `examples/istio`, the bookinfo-like configuration (VirtualServices with header matches,
/// weighted splits, faults; DestinationRules with subsets; ServiceEntries).
fn istio_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/istio")
}

#[tokio::test]
async fn files_and_cluster_build_the_same_config_and_routes() {
    let dir = istio_dir();
    let from_files = mesh_tower::load_files(&[&dir]).expect("examples/istio validates");

    // The same documents applied to the cluster in file order (creation order = load order),
    // with the namespace `kubectl apply` would give them.
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for f in &files {
        for mut o in testing::yaml(&std::fs::read_to_string(f).unwrap()) {
            if o["metadata"]["namespace"].is_null() {
                o["metadata"]["namespace"] = "default".into();
            }
            objects.push(o);
        }
    }
    assert!(objects.len() >= 6, "{} objects", objects.len());
    let env = Env::start(objects).await;
    assert!(env.errors().is_empty(), "{:?}", env.errors());
    let from_cluster = env.discovery.config().expect("a configuration");

    assert_eq!(
        from_cluster.to_yaml(),
        from_files.to_yaml(),
        "same resources, same order"
    );

    let authorities = [
        "reviews:9080",
        "reviews.default.svc.cluster.local:9080",
        "reviews.default",
        "ratings:9080",
        "details:9080",
        "productpage:9080",
        "unknown.example.com",
    ];
    let paths = ["/", "/ratings/1", "/details/0?x=1"];
    let mut jason = HeaderMap::new();
    jason.insert("end-user", "jason".parse().unwrap());
    let headers = [HeaderMap::new(), jason];
    let mut compared = 0;
    for ns in ["default", "shop"] {
        let client = ClientContext::new(ns);
        let a = RouteTable::compile(&from_files, &client).unwrap();
        let b = RouteTable::compile(&from_cluster, &client).unwrap();
        for authority in authorities {
            for path in paths {
                for h in &headers {
                    let view = RequestView::new("GET", authority, path, h);
                    assert_eq!(
                        a.explain(&view).to_string(),
                        b.explain(&view).to_string(),
                        "{ns} {authority}{path}"
                    );
                    for roll in (0..100).step_by(3) {
                        let (da, db) = (a.route(&view, roll), b.route(&view, roll));
                        assert_eq!(
                            da.to_string(),
                            db.to_string(),
                            "{ns} {authority}{path} roll {roll}"
                        );
                        assert_eq!(
                            da.cluster().map(|c| a.cluster_name(c)),
                            db.cluster().map(|c| b.cluster_name(c))
                        );
                        compared += 1;
                    }
                }
            }
        }
    }
    assert_eq!(compared, 2 * 7 * 3 * 2 * 34);
}
