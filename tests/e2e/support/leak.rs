//! Waiting for the mesh to settle, and the leak check: no request left active or pending.

use std::time::Duration;

use mesh_tower::{MeshHandle, Stats};

/// Waits (bounded: 5 s) until no cluster has an active or pending request, and returns the
/// stats then. Response bodies must have been consumed or dropped first.
pub(crate) async fn settled(handle: &MeshHandle) -> Stats {
    for _ in 0..500 {
        let stats = handle.stats();
        if stats
            .clusters()
            .iter()
            .all(|c| c.active_requests() == 0 && c.pending_requests() == 0)
        {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = handle.stats();
    panic!("requests still active or pending: {:?}", stats.clusters());
}

/// Asserts nothing leaked: every cluster has zero active and pending requests.
pub(crate) async fn assert_no_leak(handle: &MeshHandle) -> Stats {
    let stats = settled(handle).await;
    for c in stats.clusters() {
        assert_eq!(c.active_requests(), 0, "{c:?}");
        assert_eq!(c.pending_requests(), 0, "{c:?}");
    }
    stats
}
