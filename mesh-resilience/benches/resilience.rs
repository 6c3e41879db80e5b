//! Hot-path costs: a retry decision, a pool admission + release, an outlier record.
//!
//! Run with `cargo bench -p mesh-resilience --bench resilience -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use http::StatusCode;
use mesh_model::Percentage;
use mesh_resilience::{
    Admission, ConnectionPool, Deadlines, FaultAbort, FaultDelay, FaultInjection, Outcome,
    OutlierConfig, OutlierDetector, PoolLimits, RetryPolicy, RetryState,
};

/// The one clock read: an arbitrary anchor for the injected times.
#[allow(clippy::disallowed_methods)]
fn anchor() -> Instant {
    Instant::now()
}

fn retry_decision(c: &mut Criterion) {
    let t0 = anchor();
    let policy = RetryPolicy::new(
        2,
        "5xx,connect-failure,refused-stream,unavailable"
            .parse()
            .unwrap(),
    )
    .with_deadlines(
        Deadlines::new(
            Some(Duration::from_secs(3)),
            Some(Duration::from_millis(500)),
        )
        .unwrap(),
    );
    let mut pool = ConnectionPool::new(PoolLimits::default());
    let now = t0 + Duration::from_millis(40);
    let mut roll = 0u64;
    c.bench_function("retry: new state + retriable 503 decision", |b| {
        b.iter(|| {
            roll = roll.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut state = RetryState::new(black_box(&policy), t0);
            let d = state.on_outcome(
                black_box(Outcome::response(StatusCode::SERVICE_UNAVAILABLE)),
                now,
                roll,
                &mut pool,
            );
            state.release(&mut pool);
            d
        })
    });
    c.bench_function("retry: retriable 503 decision alone", |b| {
        b.iter_batched_ref(
            || RetryState::new(&policy, t0),
            |state| {
                roll = roll.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let d = state.on_outcome(
                    black_box(Outcome::response(StatusCode::SERVICE_UNAVAILABLE)),
                    now,
                    roll,
                    &mut pool,
                );
                state.release(&mut pool);
                d
            },
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("retry: new state", |b| {
        b.iter(|| RetryState::new(black_box(&policy), black_box(t0)))
    });
    c.bench_function("retry: final 200 decision", |b| {
        b.iter(|| {
            let mut state = RetryState::new(black_box(&policy), t0);
            state.on_outcome(
                black_box(Outcome::response(StatusCode::OK)),
                now,
                7,
                &mut pool,
            )
        })
    });
}

fn pool_admission(c: &mut Criterion) {
    let mut pool = ConnectionPool::new(
        PoolLimits::default()
            .with_max_connections(100)
            .with_max_requests(1000),
    );
    c.bench_function("pool: admission + release", |b| {
        b.iter(|| {
            let Ok(Admission::Ready(p)) = pool.try_acquire_request() else {
                unreachable!()
            };
            black_box(&p);
            pool.release(p)
        })
    });
}

fn outlier_record(c: &mut Criterion) {
    let t0 = anchor();
    let config = OutlierConfig::builder().build().unwrap();
    let mut od = OutlierDetector::new(config, 0..64usize, t0);
    let ok = Outcome::response(StatusCode::OK);
    let err = Outcome::response(StatusCode::BAD_GATEWAY);
    let mut i = 0usize;
    c.bench_function("outlier: record", |b| {
        b.iter(|| {
            i = (i + 1) & 63;
            let o = if i.is_multiple_of(3) { err } else { ok };
            od.record(black_box(i), black_box(o), t0)
        })
    });
}

fn fault_decision(c: &mut Criterion) {
    let fault = FaultInjection::new(
        Some(
            FaultDelay::new(
                Duration::from_secs(1),
                Percentage::from_value(10.0).unwrap(),
            )
            .unwrap(),
        ),
        Some(FaultAbort::http(503, Percentage::from_value(1.0).unwrap()).unwrap()),
    )
    .unwrap();
    let mut roll = 1u64;
    c.bench_function("fault: decide", |b| {
        b.iter(|| {
            roll = roll.wrapping_mul(6364136223846793005).wrapping_add(1);
            fault.decide(black_box(roll), black_box(roll >> 17))
        })
    });
}

criterion_group!(
    benches,
    retry_decision,
    pool_admission,
    outlier_record,
    fault_decision
);
criterion_main!(benches);
