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

/// Pods, the DestinationRule and a VirtualService sending `v1_weight` % to v1.
async fn env_with(first_ip: u8, versions: &[&str], v1_weight: u32) -> (Pods, Env) {
    let pods = Pods::start(first_ip, versions).await;
    let mut objects = pods.objects();
    objects.extend(testing::yaml(&destination_rule("")));
    objects.extend(testing::yaml(&virtual_service(v1_weight)));
    let env = Env::start(objects).await;
    (pods, env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_and_down_under_traffic() {
    let (mut pods, env) = env_with(20, &["v1", "v1", "v1"], 100).await;
    let traffic = Traffic::start(&env.client, 4);
    eventually("every pod serves", || {
        pods.pods.iter().all(|p| p.count() > 0)
    })
    .await;

    // Scale up: the pod, then the slice naming it (as the EndpointSlice controller does).
    pods.add("v1").await.unwrap();
    let new = pods.get("reviews-v1-3");
    let ready: Vec<_> = pods.pods.iter().map(Pod::ready).collect();
    env.apply_endpoints(vec![new.object(), pods.slice("a", &ready)])
        .await;
    eventually("the new pod gets traffic", || new.count() > 0).await;

    // Scale down: reviews-v1-1 terminating, then gone from the slice, then stopped.
    let gone = pods.get("reviews-v1-1");
    let ends: Vec<_> = pods
        .pods
        .iter()
        .map(|p| {
            if p.name == gone.name {
                p.ready().terminating()
            } else {
                p.ready()
            }
        })
        .collect();
    env.apply_endpoints(vec![pods.slice("a", &ends)]).await;
    traffic.barrier().await;
    let at_update = gone.count();
    traffic.barrier().await;
    traffic.barrier().await;
    assert_eq!(
        gone.count(),
        at_update,
        "no request reaches a terminating pod after the update"
    );
    let kept: Vec<_> = pods
        .pods
        .iter()
        .filter(|p| p.name != gone.name)
        .map(Pod::ready)
        .collect();
    env.apply_endpoints(vec![pods.slice("a", &kept)]).await;
    env.api.delete("v1", "Pod", NS, &gone.name);
    traffic.barrier().await;
    let (ok, failures) = traffic.stop().await;
    assert!(failures.is_empty(), "{failures:?}");
    assert!(ok > 0);
    assert_eq!(gone.count(), at_update);
    let s = env.discovery.status();
    assert_eq!(s.pods, 3);
}

#[tokio::test]
async fn a_label_change_moves_a_pod_between_subsets() {
    let (pods, mut env) = env_with(40, &["v1", "v2"], 100).await;
    send_ok(&mut env.client, 20).await;
    assert_eq!(pods.get("reviews-v2-0").count(), 0);
    let moved = pods.get("reviews-v2-0");
    let relabelled = testing::pod(NS, &moved.name, &[("app", "reviews"), ("version", "v1")]);
    env.apply_endpoints(vec![relabelled]).await;
    pods.reset_counts();
    send_ok(&mut env.client, 40).await;
    let counts = pods.counts();
    assert!(
        counts["reviews-v2-0"] > 0,
        "the relabelled pod is in subset v1 now: {counts:?}"
    );
    assert_eq!(counts["reviews-v1-0"] + counts["reviews-v2-0"], 40);
}

#[tokio::test]
async fn an_unready_pod_gets_no_traffic_until_ready_again() {
    let (pods, mut env) = env_with(50, &["v1", "v1"], 100).await;
    let (a, b) = (pods.get("reviews-v1-0"), pods.get("reviews-v1-1"));
    env.apply_endpoints(vec![pods.slice("a", &[a.ready(), b.ready().not_ready()])])
        .await;
    pods.reset_counts();
    send_ok(&mut env.client, 30).await;
    assert_eq!((a.count(), b.count()), (30, 0));
    env.apply_endpoints(vec![pods.slice("a", &[a.ready(), b.ready()])])
        .await;
    send_ok(&mut env.client, 30).await;
    assert!(b.count() > 0);
}

#[tokio::test]
async fn a_virtual_service_update_applies() {
    let (pods, mut env) = env_with(60, &["v1", "v2"], 100).await;
    send_ok(&mut env.client, 10).await;
    assert_eq!(pods.get("reviews-v2-0").count(), 0);
    let s = env.apply_config(&virtual_service(0)).await;
    assert_eq!(s.config_generation, 2);
    pods.reset_counts();
    send_ok(&mut env.client, 20).await;
    assert_eq!(pods.get("reviews-v1-0").count(), 0);
    assert_eq!(pods.get("reviews-v2-0").count(), 20);
}

#[tokio::test]
async fn an_invalid_destination_rule_update_keeps_the_old_one() {
    let (pods, mut env) = env_with(70, &["v1", "v2"], 100).await;
    let generation = env.discovery.status().config_generation;
    let bad = destination_rule("  trafficPolicy: {loadBalancer: {simple: NOT_A_BALANCER}}\n");
    env.api.apply_all(testing::yaml(&bad));
    env.wait("the refusal", |s| s.objects_refused == 1).await;
    let errors = env.errors();
    let refused = errors
        .iter()
        .find_map(|e| match e {
            mesh_kube::DiscoveryError::Refused {
                kind,
                namespace,
                name,
                kept_previous,
                diagnostics,
                ..
            } => Some((
                *kind,
                namespace.clone(),
                name.clone(),
                *kept_previous,
                diagnostics.clone(),
            )),
            _ => None,
        })
        .expect("a refusal");
    assert_eq!(refused.0, mesh_kube::IstioKind::DestinationRule);
    assert_eq!(
        (refused.1.as_str(), refused.2.as_str(), refused.3),
        (NS, "reviews", true)
    );
    let d = refused.4.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(d.source(), "kubernetes:DestinationRule/shop/reviews");
    assert!(d.path().contains("loadBalancer"), "{d}");
    // Still the old rule: subset v1 is defined, so the route works.
    send_ok(&mut env.client, 10).await;
    assert_eq!(pods.get("reviews-v1-0").count(), 10);

    // A valid change next to a new invalid object: the valid one applies, the other is
    // skipped.
    let mut both = testing::yaml(&virtual_service(0));
    both.extend(testing::yaml(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken, namespace: shop}\nspec:\n  hosts: [broken]\n  http:\n  - route: [{destination: {host: broken}, weight: -1}]\n",
    ));
    env.api.apply_all(both);
    let s = env
        .wait("the valid update", |s| {
            s.config_generation > generation && s.objects_refused == 2
        })
        .await;
    assert_eq!(s.config_objects, 2, "the broken VirtualService is not held");
    send_ok(&mut env.client, 10).await;
    assert_eq!(pods.get("reviews-v2-0").count(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_resumes_and_a_410_relists_without_a_gap() {
    let (mut pods, env) = env_with(80, &["v1", "v1"], 100).await;
    let traffic = Traffic::start(&env.client, 2);
    eventually("both pods serve", || {
        pods.pods.iter().all(|p| p.count() > 0)
    })
    .await;

    // Cut every watch connection, and change the cluster before they come back.
    eventually("six watches open", || env.api.open_watches() >= 6).await;
    let watches = env.api.watches();
    assert!(env.api.drop_watches() >= 6);
    pods.add("v1").await.unwrap();
    let third = pods.get("reviews-v1-2");
    let all: Vec<_> = pods.pods.iter().map(Pod::ready).collect();
    env.api
        .apply_all(vec![third.object(), pods.slice("a", &all)]);
    eventually("the watches re-open", || env.api.watches() >= watches + 6).await;
    eventually("the change made during the outage arrives", || {
        third.count() > 0
    })
    .await;
    assert_eq!(
        env.discovery.status().relists,
        0,
        "resumed from the last version, no relist"
    );

    // 410 Gone: every watch relists; the pod removed meanwhile goes, the others stay.
    eventually("six watches open again", || env.api.open_watches() >= 6).await;
    let lists = env.api.lists();
    assert!(env.api.expire_watches() >= 6);
    let gone = pods.get("reviews-v1-0");
    let kept: Vec<_> = pods
        .pods
        .iter()
        .filter(|p| p.name != gone.name)
        .map(Pod::ready)
        .collect();
    env.api.apply_all(vec![pods.slice("a", &kept)]);
    env.api.delete("v1", "Pod", NS, &gone.name);
    let s = env
        .wait("a relist of every watch", |s| {
            s.relists >= 6 && s.lists_completed >= 12
        })
        .await;
    assert_eq!(s.pods, 2);
    assert!(env.api.lists() >= lists + 6);
    traffic.barrier().await;
    let at_relist = gone.count();
    traffic.barrier().await;
    traffic.barrier().await;
    let (ok, failures) = traffic.stop().await;
    assert!(
        failures.is_empty(),
        "no request failed across the outages: {failures:?}"
    );
    assert!(ok > 0);
    assert_eq!(gone.count(), at_relist);
    let s = env.discovery.status();
    assert_eq!((s.services, s.endpoint_slices, s.config_objects), (1, 1, 2));
    assert!(s.watch_errors >= 6, "{s:?}");
}

#[tokio::test]
async fn two_endpoint_slices_for_one_service() {
    let pods = Pods::start(90, &["v1", "v1", "v2"]).await;
    let (a, b, c) = (
        pods.get("reviews-v1-0"),
        pods.get("reviews-v1-1"),
        pods.get("reviews-v2-0"),
    );
    let mut objects = vec![testing::service(NS, "reviews", &[("http", SERVICE_PORT)])];
    objects.extend(pods.pods.iter().map(Pod::object));
    objects.push(pods.slice("a", &[a.ready()]));
    // `a` in both slices (a pod moving between slices): one endpoint.
    objects.push(pods.slice("b", &[b.ready(), c.ready(), a.ready()]));
    objects.extend(testing::yaml(&destination_rule("")));
    objects.extend(testing::yaml(&virtual_service(50)));
    let mut env = Env::start(objects).await;
    assert_eq!(env.discovery.status().endpoint_slices, 2);
    let statuses = send(&mut env.client, 100).await;
    assert!(statuses.iter().all(|s| *s == 200));
    assert!(
        a.count() > 0 && b.count() > 0 && c.count() > 0,
        "{:?}",
        pods.counts()
    );
    // With LEAST_REQUEST over sequential requests, `a` appearing twice would show as a
    // share near 2/3 of v1; once, it is near 1/2.
    let v1 = a.count() + b.count();
    assert!(a.count() * 10 <= v1 * 6, "{:?}", pods.counts());

    let before = env.discovery.status().endpoint_publications;
    env.api
        .delete("discovery.k8s.io/v1", "EndpointSlice", NS, "reviews-b");
    env.wait("the slice's removal", |s| s.endpoint_publications > before)
        .await;
    pods.reset_counts();
    let statuses = send(&mut env.client, 40).await;
    assert_eq!((b.count(), c.count()), (0, 0));
    // Subset v2 has no endpoint left: its share is 503 no healthy upstream.
    assert!(
        statuses.contains(&503) && statuses.contains(&200),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn namespace_and_sidecar_scopes_hold_only_what_is_in_scope() {
    let pods = Pods::start(100, &["v1"]).await;
    let mut objects = pods.objects();
    objects.extend(testing::yaml(&destination_rule("")));
    for ns in ["payments", "kube-system"] {
        objects.push(testing::service(ns, "api", &[("http", 80)]));
        objects.push(testing::pod(ns, "api-0", &[("app", "api")]));
    }
    objects.extend(testing::yaml(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: shop}\nspec:\n  egress:\n  - hosts: [./*, payments/api.payments.svc.cluster.local, ~/nothing.example.com]\n",
    ));
    let env = Env::start_scoped(
        objects.clone(),
        mesh_kube::Scope::Namespaces(vec![NS.into()]),
    )
    .await;
    let s = env.discovery.status();
    assert_eq!((s.services, s.pods), (1, 1));
    drop(env);
    let scope = mesh_kube::Scope::Sidecar(mesh_kube::SidecarScope::new(NS));
    let env = Env::start_scoped(objects, scope).await;
    let s = env.discovery.status();
    assert_eq!(
        s.services, 2,
        "shop/reviews and payments/api; not kube-system/api"
    );
    assert_eq!(s.pods, 2);
    assert!(env.errors().is_empty(), "{:?}", env.errors());
}
