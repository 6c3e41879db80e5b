//! The demo's `/metrics`: a Prometheus recorder with Envoy's bucket bounds, served over HTTP
//! on loopback, and the per-version summary computed back from its text.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use mesh_tower::telemetry::ENVOY_HISTOGRAM_BUCKETS;
use mesh_tower::MeshHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Installs the Prometheus recorder as the global `metrics` recorder, with Envoy's default
/// bucket bounds for Istio's histograms.
pub(crate) fn install() -> Result<PrometheusHandle, BoxError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Prefix("istio_".to_owned()),
            &ENVOY_HISTOGRAM_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics recorder: {e}"))?;
    Ok(handle)
}

/// The exposition text: Envoy's cluster stats published first, then everything rendered.
pub(crate) fn render(prom: &PrometheusHandle, mesh: &MeshHandle) -> String {
    mesh.record_envoy_stats();
    prom.render()
}

/// Serves `GET /metrics` on `listener` until the task is dropped (a minimal HTTP/1.1 server:
/// one response per connection).
pub(crate) async fn serve(listener: TcpListener, prom: PrometheusHandle, mesh: MeshHandle) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait a little instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (prom, mesh) = (prom.clone(), mesh.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut read = 0;
            // Read until the end of the request head (bounded by the buffer).
            while read < buf.len() {
                match socket.read(&mut buf[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
                if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..read]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = if path == "/metrics" {
                ("200 OK", render(&prom, &mesh))
            } else {
                ("404 Not Found", "try /metrics\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

/// Fetches `http://addr/metrics` (the demo reads its own endpoint, as Prometheus would).
pub(crate) async fn scrape(addr: SocketAddr) -> Result<String, BoxError> {
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    socket.read_to_string(&mut response).await?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .ok_or("no HTTP response from /metrics")?;
    Ok(body)
}

/// Binds `addr` for `/metrics`.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, BoxError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve /metrics on {addr}: {e}").into())
}

/// One sample of the exposition text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) value: f64,
}

/// Parses Prometheus's text format (the subset the exporter writes: no escaped quotes in
/// values, no timestamps).
pub(crate) fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(p) => p,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while let Some((k, after)) = rest.split_once("=\"") {
            let Some((v, tail)) = after.split_once('"') else {
                break;
            };
            map.insert(k.trim_start_matches(',').to_owned(), v.to_owned());
            rest = tail;
        }
        out.push(Sample {
            name: name.to_owned(),
            labels: map,
            value,
        });
    }
    out
}

/// Per `destination_version`: requests counted by `istio_requests_total`, and the p99 of
/// `istio_request_duration_milliseconds` computed from its buckets as Prometheus's
/// `histogram_quantile` does (linear within the bucket).
pub(crate) fn per_version(samples: &[Sample]) -> BTreeMap<String, (f64, Option<f64>)> {
    let mut out: BTreeMap<String, (f64, Option<f64>)> = BTreeMap::new();
    let mut buckets: BTreeMap<String, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
    for s in samples {
        let Some(version) = s.labels.get("destination_version") else {
            continue;
        };
        if s.name == "istio_requests_total" {
            out.entry(version.clone()).or_default().0 += s.value;
        }
        if s.name == "istio_request_duration_milliseconds_bucket" {
            let le = s
                .labels
                .get("le")
                .map_or(f64::INFINITY, |v| v.parse().unwrap_or(f64::INFINITY));
            let slot = buckets
                .entry(version.clone())
                .or_default()
                .entry(le.to_bits())
                .or_insert((le, 0.0));
            slot.1 += s.value;
        }
    }
    for (version, b) in buckets {
        let mut bounds: Vec<(f64, f64)> = b.into_values().collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.entry(version).or_default().1 = quantile(0.99, &bounds);
    }
    out
}

/// `histogram_quantile(q, ...)` over cumulative buckets `(le, count)` sorted by `le`.
pub(crate) fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let in_bucket = count - lower.1;
            let fraction = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some((le - lower.0).mul_add(fraction, lower.0));
        }
        lower = (le, count);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_exporters_text() {
        let text = "# TYPE istio_requests_total counter\nistio_requests_total{destination_version=\"v1\",response_code=\"200\"} 27\nistio_request_duration_milliseconds_bucket{destination_version=\"v1\",le=\"0.5\"} 3\nistio_request_duration_milliseconds_bucket{destination_version=\"v1\",le=\"+Inf\"} 27\n";
        let s = parse(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name, "istio_requests_total");
        assert_eq!(s[0].labels["response_code"], "200");
        assert_eq!(s[0].value, 27.0);
        assert_eq!(s[2].labels["le"], "+Inf");
    }

    #[test]
    fn quantile_interpolates_like_prometheus() {
        // 100 observations: 50 in (0, 1], 50 in (1, 5].
        let b = [(1.0, 50.0), (5.0, 100.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.5, &b), Some(1.0));
        let p99 = quantile(0.99, &b).unwrap();
        assert!((p99 - 4.92).abs() < 1e-9, "{p99}");
        assert_eq!(quantile(0.99, &[(f64::INFINITY, 0.0)]), None);
    }

    /// The rendered histogram has exactly Envoy's bucket bounds, plus `+Inf`.
    #[test]
    fn the_histograms_use_envoys_buckets() {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Prefix("istio_".to_owned()),
                &ENVOY_HISTOGRAM_BUCKETS,
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("istio_request_duration_milliseconds").record(3.0);
        });
        let les: Vec<String> = parse(&handle.render())
            .into_iter()
            .filter(|s| s.name == "istio_request_duration_milliseconds_bucket")
            .map(|s| s.labels["le"].clone())
            .collect();
        let mut expected: Vec<String> = ENVOY_HISTOGRAM_BUCKETS
            .iter()
            .map(|b| b.to_string())
            .collect();
        expected.push("+Inf".to_owned());
        assert_eq!(les, expected);
    }
}
