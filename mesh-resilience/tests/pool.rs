//! Connection-pool admission: limits, pending queue, wake-ups, permits, reloads.

use mesh_resilience::{
    Admission, ConnectionPool, Overflow, PendingTicket, PoolLimits, Protocol, RequestPermit,
    RetryBudget, UNLIMITED,
};

fn ready(pool: &mut ConnectionPool) -> RequestPermit {
    match pool.try_acquire_request() {
        Ok(Admission::Ready(p)) => p,
        other => panic!("expected ready, got {other:?}"),
    }
}

fn pending(pool: &mut ConnectionPool) -> PendingTicket {
    match pool.try_acquire_request() {
        Ok(Admission::Pending(t)) => t,
        other => panic!("expected pending, got {other:?}"),
    }
}

#[test]
fn istio_defaults_and_zero_means_default() {
    let l = PoolLimits::default();
    assert_eq!(
        (
            l.max_connections(),
            l.max_pending_requests(),
            l.max_requests(),
            l.max_retries()
        ),
        (UNLIMITED, UNLIMITED, UNLIMITED, UNLIMITED)
    );
    assert_eq!(l.max_requests_per_connection(), 0);
    assert_eq!(l.protocol(), Protocol::Http1);
    let l = l
        .with_max_connections(0)
        .with_max_pending_requests(0)
        .with_max_requests(0)
        .with_max_retries(0);
    assert_eq!(l, PoolLimits::default());
    let l = PoolLimits::default()
        .with_max_requests(7)
        .with_max_connections(3);
    assert_eq!((l.max_requests(), l.max_connections()), (7, 3));
}

#[test]
fn max_requests_overflows_immediately() {
    let mut pool = ConnectionPool::new(PoolLimits::default().with_max_requests(2));
    let a = ready(&mut pool);
    let b = ready(&mut pool);
    assert_eq!(pool.try_acquire_request().unwrap_err(), Overflow::Requests);
    assert_eq!(pool.active_requests(), 2);
    assert!(!pool.release(a));
    let c = ready(&mut pool);
    assert!(!pool.release(b));
    assert!(!pool.release(c));
    assert_eq!(pool.active_requests(), 0);
}

/// The circuit-breaking task: maxConnections 1, http1MaxPendingRequests 1.
#[test]
fn max_connections_queues_then_pending_overflows() {
    let mut pool = ConnectionPool::new(
        PoolLimits::default()
            .with_max_connections(1)
            .with_max_pending_requests(1),
    );
    let first = ready(&mut pool);
    assert_eq!(pool.connections_in_use(), 1);
    let waiting = pending(&mut pool);
    assert_eq!(
        pool.try_acquire_request().unwrap_err(),
        Overflow::PendingRequests
    );
    assert_eq!((pool.active_requests(), pool.pending_requests()), (1, 1));

    // Woken too early (no connection free yet): it keeps its place.
    let waiting = match pool.try_promote(waiting) {
        Ok(Admission::Pending(t)) => t,
        other => panic!("{other:?}"),
    };
    assert!(pool.release(first), "a pending request must be woken");
    // The freed connection was handed to the pending request, as Envoy attaches it at once:
    // the pending queue has room again, and a newcomer waits behind it.
    let newcomer = match pool.try_acquire_request() {
        Err(o) => panic!("{o}"),
        Ok(Admission::Ready(_)) => panic!("jumped the queue"),
        Ok(Admission::Pending(t)) => t,
    };
    assert_eq!(
        pool.try_acquire_request().unwrap_err(),
        Overflow::PendingRequests
    );
    let second = match pool.try_promote(waiting) {
        Ok(Admission::Ready(p)) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!((pool.active_requests(), pool.pending_requests()), (1, 1));
    assert!(
        !pool.cancel_pending(newcomer),
        "no connection free: nobody to wake"
    );
    assert!(!pool.release(second));
    assert_eq!((pool.active_requests(), pool.pending_requests()), (0, 0));
}

#[test]
fn pending_limit_counts_before_admitting() {
    let mut pool = ConnectionPool::new(
        PoolLimits::default()
            .with_max_connections(1)
            .with_max_pending_requests(2),
    );
    let a = ready(&mut pool);
    let p1 = pending(&mut pool);
    let p2 = pending(&mut pool);
    assert_eq!(
        pool.try_acquire_request().unwrap_err(),
        Overflow::PendingRequests
    );
    // Cancel while the connection is busy: nobody to wake.
    assert!(!pool.cancel_pending(p1));
    assert!(pool.release(a));
    // p2 gives up after the wake-up: the next pending one must be woken instead.
    let p3 = pending(&mut pool);
    assert!(pool.cancel_pending(p2));
    let b = match pool.try_promote(p3) {
        Ok(Admission::Ready(p)) => p,
        other => panic!("{other:?}"),
    };
    assert!(!pool.release(b));
    assert_eq!((pool.active_requests(), pool.pending_requests()), (0, 0));
}

#[test]
fn promotion_can_overflow_max_requests() {
    // Envoy checks max requests when a pending request is attached to a connection.
    let mut pool = ConnectionPool::new(
        PoolLimits::default()
            .with_max_connections(2)
            .with_max_requests(1)
            .with_protocol(Protocol::Http1),
    );
    let a = ready(&mut pool);
    // A second request finds a free connection permit but the request limit is full.
    assert_eq!(pool.try_acquire_request().unwrap_err(), Overflow::Requests);
    assert!(!pool.release(a));

    let mut pool = ConnectionPool::new(PoolLimits::default().with_max_connections(1));
    let a = ready(&mut pool);
    let t = pending(&mut pool);
    assert!(pool.release(a));
    pool.set_limits(
        PoolLimits::default()
            .with_max_connections(1)
            .with_max_requests(1),
    );
    let b = ready_from(&mut pool, t);
    // Lower the request limit below what is active: promotion overflows.
    let t2 = pending(&mut pool);
    pool.set_limits(
        PoolLimits::default()
            .with_max_connections(2)
            .with_max_requests(1),
    );
    assert_eq!(pool.try_promote(t2).unwrap_err(), Overflow::Requests);
    assert_eq!(
        pool.pending_requests(),
        0,
        "an overflowed ticket is consumed"
    );
    assert!(!pool.release(b));
}

fn ready_from(pool: &mut ConnectionPool, t: PendingTicket) -> RequestPermit {
    match pool.try_promote(t) {
        Ok(Admission::Ready(p)) => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn http2_multiplexes_before_queueing() {
    let mut pool = ConnectionPool::new(
        PoolLimits::default()
            .with_max_connections(1)
            .with_max_pending_requests(1)
            .with_protocol(Protocol::Http2 {
                max_concurrent_streams: 0,
            }),
    );
    // Default streams per connection: far more than any test needs.
    let permits: Vec<_> = (0..1000).map(|_| ready(&mut pool)).collect();
    assert_eq!(pool.connections_in_use(), 1);
    for p in permits {
        let _ = pool.release(p);
    }
    assert_eq!(pool.connections_in_use(), 0);
}

#[test]
fn max_requests_per_connection_one_closes_connections() {
    let mut pool = ConnectionPool::new(PoolLimits::default().with_max_requests_per_connection(1));
    let p = ready(&mut pool);
    assert!(p.close_connection());
    let _ = pool.release(p);
    let mut pool = ConnectionPool::new(PoolLimits::default().with_max_requests_per_connection(2));
    let p = ready(&mut pool);
    assert!(!p.close_connection());
    let _ = pool.release(p);
}

#[test]
fn retry_slots() {
    let mut pool = ConnectionPool::new(
        PoolLimits::default()
            .with_max_retries(2)
            .with_retry_budget(Some(RetryBudget::new(50.0, 0).unwrap())),
    );
    // No active requests: the 50% budget allows 0 retries (minimum 0).
    assert_eq!(pool.allowed_retries(), 0);
    assert_eq!(pool.try_acquire_retry().unwrap_err(), Overflow::RetryBudget);
    let reqs: Vec<_> = (0..4).map(|_| ready(&mut pool)).collect();
    assert_eq!(pool.allowed_retries(), 2);
    let r1 = pool.try_acquire_retry().unwrap();
    let r2 = pool.try_acquire_retry().unwrap();
    // maxRetries (2) is checked first.
    assert_eq!(pool.try_acquire_retry().unwrap_err(), Overflow::Retries);
    pool.release_retry(r1);
    pool.release_retry(r2);
    for r in reqs {
        let _ = pool.release(r);
    }
    assert_eq!((pool.active_requests(), pool.retries_in_flight()), (0, 0));
    assert_eq!(
        Overflow::PendingRequests.to_string(),
        "http1MaxPendingRequests overflow"
    );
}

#[test]
fn pending_requests_count_toward_the_budget() {
    let mut pool = ConnectionPool::new(
        PoolLimits::default()
            .with_max_connections(5)
            .with_retry_budget(Some(RetryBudget::new(20.0, 1).unwrap())),
    );
    let active: Vec<_> = (0..5).map(|_| ready(&mut pool)).collect();
    assert_eq!(pool.allowed_retries(), 1);
    let waiting: Vec<_> = (0..5).map(|_| pending(&mut pool)).collect();
    assert_eq!(pool.allowed_retries(), 2); // 20% of 10
    for t in waiting {
        let _ = pool.cancel_pending(t);
    }
    for p in active {
        let _ = pool.release(p);
    }
}
