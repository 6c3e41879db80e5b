//! Reload.

use crate::support::*;

fn split(v1: u32, v2: u32) -> String {
    vs(&format!(
        "  - route:
    - {{destination: {{host: api.mesh.test, subset: v1}}, weight: {v1}}}
    - {{destination: {{host: api.mesh.test, subset: v2}}, weight: {v2}}}
"
    ))
}

fn share_v1(mock: &Mock, from: usize) -> usize {
    mock.seen()[from..]
        .iter()
        .filter(|s| s.authority() == "10.0.0.1:8080")
        .count()
}

#[tokio::test(start_paused = true)]
async fn reload_shifts_traffic_from_90_10_to_0_100() {
    let mock = Mock::always(200);
    let (mut svc, handle) = mesh(&[SE, SUBSETS, &split(90, 10)], &mock);
    for _ in 0..200 {
        send(&mut svc, get("/")).await.unwrap();
    }
    let v1 = share_v1(&mock, 0);
    assert!((160..=195).contains(&v1), "v1 got {v1} of 200");

    handle
        .reload(config(&[SE, SUBSETS, &split(0, 100)]))
        .unwrap();
    for _ in 0..50 {
        send(&mut svc, get("/")).await.unwrap();
    }
    assert_eq!(share_v1(&mock, 200), 0);
    // Cluster state carried over: v2's counters include the first phase.
    let stats = handle.stats();
    let v2 = stats.cluster("api.mesh.test", Some("v2")).unwrap();
    assert_eq!(v2.requests(), (200 - v1 + 50) as u64);
}

#[tokio::test(start_paused = true)]
async fn invalid_reload_keeps_the_old_configuration() {
    let dir = std::env::temp_dir().join(format!("mesh-tower-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("a.yaml");
    std::fs::write(&good, format!("{SE}---\n{SUBSETS}---\n{}", split(100, 0))).unwrap();
    let cfg = mesh_tower::load_files(&[&dir]).unwrap();
    let layer = MeshLayer::builder().config(cfg).build().unwrap();
    let handle = layer.handle();
    let mock = Mock::always(200);
    let mut svc = layer.layer(mock.clone());

    std::fs::write(&good, split(101, 0)).unwrap();
    let err = handle.reload_files(&[&dir]).unwrap_err();
    assert!(
        matches!(err, mesh_tower::ReloadError::Load(ref e) if !e.diagnostics().is_empty()),
        "{err}"
    );
    let missing = handle
        .reload_files(&[dir.join("missing.yaml")])
        .unwrap_err();
    assert!(matches!(
        missing,
        mesh_tower::ReloadError::Load(mesh_tower::LoadFilesError::Io { .. })
    ));

    send(&mut svc, get("/")).await.unwrap();
    assert_eq!(
        mock.seen()[0].authority(),
        "10.0.0.1:8080",
        "old table still serves"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(start_paused = true)]
async fn watch_reloads_on_change_and_reports_failures() {
    let dir = std::env::temp_dir().join(format!("mesh-tower-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mesh.yaml");
    std::fs::write(&file, format!("{SE}---\n{SUBSETS}---\n{}", split(100, 0))).unwrap();
    let layer = MeshLayer::builder()
        .config(mesh_tower::load_files(&[&file]).unwrap())
        .build()
        .unwrap();
    let handle = layer.handle();
    let mock = Mock::always(200);
    let mut svc = layer.layer(mock.clone());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let f = Arc::clone(&failures);
    let watch = handle.watch(vec![file.clone()], Duration::from_secs(1), move |e| {
        f.lock().unwrap().push(e.to_string());
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    std::fs::write(&file, format!("{SE}---\n{SUBSETS}---\n{} ", split(0, 100))).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    send(&mut svc, get("/")).await.unwrap();
    assert_eq!(mock.seen()[0].authority(), "10.0.0.2:8080", "reloaded");

    std::fs::write(&file, "kind: VirtualService\nspec: [").unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(failures.lock().unwrap().len(), 1);
    send(&mut svc, get("/")).await.unwrap();
    assert_eq!(
        mock.seen()[1].authority(),
        "10.0.0.2:8080",
        "still the last good table"
    );
    drop(watch);
    std::fs::remove_dir_all(&dir).unwrap();
}
