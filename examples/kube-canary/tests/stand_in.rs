//! The kube canary on the stand-in cluster: the split, retries and ejection act per pod.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_runs_on_the_stand_in_pods() {
    let phases = example_kube_canary::run_stand_in(600).await.unwrap();
    for p in &phases {
        eprint!("{p}");
    }
    let [split, shifted, scaled] = &phases[..] else {
        panic!("three phases")
    };
    // 90/10 per request. The failing pod's 503s are retried; a request fails only if every
    // attempt landed on that pod (least-request prefers it: it has nothing in flight, as in
    // Envoy), so each failure costs at least two of its attempts. Outlier detection ejects
    // it, and the ejection carries over the reload.
    let failing = split
        .by_endpoint
        .iter()
        .find(|(k, _)| k.contains("reviews-v1-1"))
        .map_or(0, |(_, n)| *n);
    assert_eq!(split.ok + split.failed, 600);
    assert!(split.failed * 2 <= failing, "{split}");
    let share = split.v2 as f64 / (split.v1 + split.v2) as f64;
    assert!((0.03..0.2).contains(&share), "v2 share {share}");
    assert!(split.retries > 0 && split.ejections >= 1, "{split}");
    let pods_hit = split
        .by_endpoint
        .keys()
        .filter(|k| k.contains("reviews-v1"))
        .count();
    assert_eq!(pods_hit, 3, "every v1 pod is balanced onto: {split}");
    // 50/50 after the VirtualService update; the ejected pod stays ejected.
    assert_eq!(shifted.failed, 0, "{shifted}");
    assert!(
        !shifted
            .by_endpoint
            .keys()
            .any(|k| k.contains("reviews-v1-1")),
        "{shifted}"
    );
    let share = shifted.v2 as f64 / (shifted.v1 + shifted.v2) as f64;
    assert!((0.35..0.65).contains(&share), "v2 share {share}");
    // The scaled-down pod gets nothing.
    assert_eq!(scaled.failed, 0);
    assert!(
        !scaled
            .by_endpoint
            .keys()
            .any(|k| k.contains("reviews-v1-0")),
        "{scaled}"
    );
}
