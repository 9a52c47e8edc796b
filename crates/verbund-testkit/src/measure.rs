//! What every benchmark of the workspace measures with: a knob from the environment,
//! one request through the router timed as a client times it, percentiles of per-request
//! times, milliseconds for printing.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Sends `req` through `app` in-process and times it as an HTTP client times a request:
/// from sending it to the last byte of the answer's body. Reading the body (a JSON tree,
/// a page's text) is the client's own work and left out of the time. The status, the
/// body and the time.
///
/// # Panics
/// When the body cannot be read (an in-process body never fails).
pub async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Bytes, Duration) {
    let t = Instant::now();
    let resp = match app.clone().oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_else(|e| panic!("the answer's body could not be read: {e}"));
    (status, bytes, t.elapsed())
}

/// [`send`], with the body read as JSON afterwards (`null` when it is none).
pub async fn send_json(app: &Router, req: Request<Body>) -> (StatusCode, Duration, Value) {
    let (status, bytes, took) = send(app, req).await;
    (
        status,
        took,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The number in the environment variable `name`, or `default` when unset or not a
/// number (benchmarks' `VERBUND_BENCH_*` knobs).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether this is a full run (`cargo bench`, which passes `--bench`) rather than the
/// smoke run under `cargo test --all-targets`.
pub fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The stores a benchmark runs against: `VERBUND_BENCH_BACKENDS` (comma-separated), else
/// SQLite and PostgreSQL in a full run and SQLite alone in a smoke run.
pub fn backends(full: bool) -> Vec<String> {
    let default = if full { "sqlite,postgres" } else { "sqlite" };
    std::env::var("VERBUND_BENCH_BACKENDS")
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .collect()
}

/// The `p`-th percentile (0.0–1.0) of `sorted` durations, nearest rank; zero when empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    let i = ((last as f64) * p).round() as usize;
    sorted.get(i.min(last)).copied().unwrap_or_default()
}

/// A duration in milliseconds, for tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 0.5), Duration::from_millis(51));
        assert_eq!(percentile(&times, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&times, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }
}
