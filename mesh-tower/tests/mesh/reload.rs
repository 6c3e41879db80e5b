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

    // A negative weight: istiod refuses it.
    std::fs::write(
        &good,
        format!(
            "{SE}---\n{SUBSETS}---\n{}",
            split(100, 0).replace("weight: 0", "weight: -1")
        ),
    )
    .unwrap();
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

/// A directory for one test's files, removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-tower-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A mesh watching `dir`, starting from the config in it, with the errors it reports.
async fn watched(
    dir: &std::path::Path,
    options: mesh_tower::WatchOptions,
) -> (
    Mesh<Mock>,
    Mock,
    MeshHandle,
    mesh_tower::WatchHandle,
    Arc<Mutex<Vec<String>>>,
) {
    let layer = MeshLayer::builder()
        .config(mesh_tower::load_files(&[dir]).unwrap())
        .build()
        .unwrap();
    let handle = layer.handle();
    let mock = Mock::always(200);
    let svc = layer.layer(mock.clone());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let f = Arc::clone(&failures);
    let watch = handle.watch_with(vec![dir.to_path_buf()], options, move |e| {
        f.lock().unwrap().push(e.to_string());
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    (svc, mock, handle, watch, failures)
}

#[tokio::test(start_paused = true)]
async fn a_file_rewritten_after_a_truncation_is_applied_whole() {
    let dir = TempDir::new("truncate");
    let file = dir.0.join("mesh.yaml");
    std::fs::write(&file, format!("{SE}---\n{SUBSETS}---\n{}", split(100, 0))).unwrap();
    let options = mesh_tower::WatchOptions::default()
        .interval(Duration::from_millis(100))
        .settle(Duration::from_millis(250));
    let (mut svc, mock, handle, _watch, failures) = watched(&dir.0, options).await;
    let before = handle.resources();
    // An editor truncates, then writes the new content 100 ms later; the watcher looks in
    // between.
    std::fs::write(&file, "").unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        handle.resources(),
        before,
        "the empty file was never applied"
    );
    std::fs::write(&file, format!("{SE}---\n{SUBSETS}---\n{}  ", split(0, 100))).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        failures.lock().unwrap().is_empty(),
        "{:?}",
        failures.lock().unwrap()
    );
    send(&mut svc, get("/")).await.unwrap();
    assert_eq!(
        mock.seen()[0].authority(),
        "10.0.0.2:8080",
        "the new config, whole"
    );
}

#[tokio::test(start_paused = true)]
async fn deleting_the_files_of_a_watched_directory_keeps_the_config() {
    let dir = TempDir::new("delete");
    let file = dir.0.join("mesh.yaml");
    std::fs::write(&file, format!("{SE}---\n{SUBSETS}---\n{}", split(100, 0))).unwrap();
    let options = mesh_tower::WatchOptions::default().interval(Duration::from_millis(100));
    let (mut svc, mock, handle, _watch, failures) = watched(&dir.0, options).await;
    std::fs::remove_file(&file).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(handle.resources(), 3);
    let errors = failures.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("hold no VirtualService"), "{errors:?}");
    send(&mut svc, get("/")).await.unwrap();
    assert_eq!(
        mock.seen()[0].authority(),
        "10.0.0.1:8080",
        "the old config serves"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_directory_replaces_the_config_when_allowed() {
    let dir = TempDir::new("allow-empty");
    let file = dir.0.join("mesh.yaml");
    std::fs::write(&file, format!("{SE}---\n{SUBSETS}---\n{}", split(100, 0))).unwrap();
    let options = mesh_tower::WatchOptions::default()
        .interval(Duration::from_millis(100))
        .allow_empty(true);
    let (_svc, _mock, handle, _watch, failures) = watched(&dir.0, options).await;
    std::fs::remove_file(&file).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(failures.lock().unwrap().is_empty());
    assert_eq!(handle.resources(), 0);
}

#[tokio::test(start_paused = true)]
async fn clusters_of_retired_configurations_are_freed() {
    // Each reload names a new subset: the cluster states of the old ones go away after their
    // last request instead of piling up.
    let config_with = |subset: usize| {
        config(&[
            SE,
            &format!(
                "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.mesh.test
  subsets: [{{name: s{subset}, labels: {{version: v1}}}}]
"
            ),
            &vs(&format!(
                "  - route: [{{destination: {{host: api.mesh.test, subset: s{subset}}}}}]\n"
            )),
        ])
    };
    let mock = Mock::always(200);
    let layer = MeshLayer::builder().config(config_with(0)).build().unwrap();
    let handle = layer.handle();
    let mut svc = layer.layer(mock.clone());
    for i in 1..=200 {
        handle.reload(config_with(i)).unwrap();
        send(&mut svc, get("/")).await.unwrap();
    }
    assert_eq!(mock.count(), 200);
    let stats = handle.stats();
    assert!(
        stats.cluster_states() <= 3,
        "{} cluster states kept after 200 reloads",
        stats.cluster_states()
    );
}
