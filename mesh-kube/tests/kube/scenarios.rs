//! The scenarios of issue 15: initial sync, scaling under traffic, label and readiness
//! changes, configuration updates (valid and not), lost watches, several slices.

use mesh_kube::testing;

use crate::support::*;

#[tokio::test]
async fn initial_sync_routes_per_pod() {
    let pods = Pods::start(10, &["v1", "v1", "v2"]).await;
    let mut objects = pods.objects();
    objects.extend(testing::yaml(&destination_rule("")));
    objects.extend(testing::yaml(&virtual_service(100)));
    let mut env = Env::start(objects).await;
    let s = env.discovery.status();
    assert!(s.ready);
    assert_eq!(
        (s.services, s.endpoint_slices, s.pods, s.config_objects),
        (1, 1, 3, 2)
    );
    assert_eq!(s.config_generation, 1);
    assert!(env.errors().is_empty(), "{:?}", env.errors());
    send_ok(&mut env.client, 40).await;
    let counts = pods.counts();
    assert_eq!(counts["reviews-v2-0"], 0, "{counts:?}");
    assert!(
        counts["reviews-v1-0"] > 0 && counts["reviews-v1-1"] > 0,
        "{counts:?}"
    );
    assert_eq!(counts["reviews-v1-0"] + counts["reviews-v1-1"], 40);
    let cfg = env.discovery.config().unwrap();
    assert_eq!(
        cfg.virtual_services()[0].meta().source(),
        "kubernetes:VirtualService/shop/reviews"
    );
}
