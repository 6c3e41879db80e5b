//! The access log: one `tracing` event per request at [`ACCESS_LOG_TARGET`], with the fields
//! of Istio's default access log (the keys of its JSON encoding), and [`AccessLogLine`], which
//! prints such an event in Envoy's default text format.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Version};
use mesh_resilience::headers::X_REQUEST_ID;

use crate::telemetry::metrics::Completed;

/// The `tracing` target of the access-log events: stable, filter on it
/// (`RUST_LOG=mesh_tower::access_log=info`).
pub const ACCESS_LOG_TARGET: &str = "mesh_tower::access_log";

/// The fields of an access-log event, in the order of Envoy's text format: the keys of
/// Istio's JSON access-log encoding.
pub const ACCESS_LOG_FIELDS: [&str; 24] = [
    "start_time",
    "method",
    "path",
    "protocol",
    "response_code",
    "response_flags",
    "response_code_details",
    "connection_termination_details",
    "upstream_transport_failure_reason",
    "bytes_received",
    "bytes_sent",
    "duration",
    "upstream_service_time",
    "x_forwarded_for",
    "user_agent",
    "request_id",
    "authority",
    "upstream_host",
    "upstream_cluster",
    "upstream_local_address",
    "downstream_local_address",
    "downstream_remote_address",
    "requested_server_name",
    "route_name",
];

/// What the access log keeps of a request from its start (only when the log is on).
#[derive(Debug)]
pub(crate) struct AccessEntry {
    start_time: SystemTime,
    method: Method,
    path: String,
    protocol: Version,
    authority: String,
    user_agent: Option<HeaderValue>,
    x_forwarded_for: Option<HeaderValue>,
    request_id: Option<HeaderValue>,
    pub(crate) route_name: String,
    pub(crate) upstream_host: Option<String>,
    pub(crate) upstream_cluster: Option<String>,
    /// When the last attempt started (for `x-envoy-upstream-service-time`).
    pub(crate) attempt_start: Option<tokio::time::Instant>,
    pub(crate) upstream_service_time: Option<Duration>,
}

impl AccessEntry {
    pub(crate) fn new<B>(req: &http::Request<B>) -> Self {
        let headers = req.headers();
        let get = |name: &str| headers.get(name).cloned();
        let authority = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        AccessEntry {
            start_time: crate::time::wall_now(),
            method: req.method().clone(),
            path: req
                .uri()
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            protocol: req.version(),
            authority,
            user_agent: get("user-agent"),
            x_forwarded_for: get("x-forwarded-for"),
            request_id: headers.get(X_REQUEST_ID).cloned(),
            route_name: "-".to_owned(),
            upstream_host: None,
            upstream_cluster: None,
            attempt_start: None,
            upstream_service_time: None,
        }
    }

    /// The id the mesh generated, when the caller sent none.
    pub(crate) fn set_request_id(&mut self, id: &HeaderValue) {
        if self.request_id.is_none() {
            self.request_id = Some(id.clone());
        }
    }

    /// Emits the event of the request that ended as `c` says.
    pub(crate) fn emit(&self, c: &Completed, details: &str) {
        let text = |v: &Option<HeaderValue>| {
            v.as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned()
        };
        let or_dash = |v: &Option<String>| v.as_deref().unwrap_or("-").to_owned();
        tracing::info!(
            target: ACCESS_LOG_TARGET,
            start_time = %Rfc3339Millis(self.start_time),
            method = %self.method,
            path = %self.path,
            protocol = protocol(self.protocol),
            response_code = c.status,
            response_flags = %c.flags,
            response_code_details = details,
            connection_termination_details = "-",
            upstream_transport_failure_reason = "-",
            bytes_received = c.request_bytes,
            bytes_sent = c.response_bytes,
            duration = c.duration.as_millis() as u64,
            upstream_service_time = %self.upstream_service_time.map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string()),
            x_forwarded_for = %text(&self.x_forwarded_for),
            user_agent = %text(&self.user_agent),
            request_id = %text(&self.request_id),
            authority = %self.authority,
            upstream_host = %or_dash(&self.upstream_host),
            upstream_cluster = %or_dash(&self.upstream_cluster),
            upstream_local_address = "-",
            downstream_local_address = "-",
            downstream_remote_address = "-",
            requested_server_name = "-",
            route_name = %self.route_name,
        );
    }
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Envoy's default `%START_TIME%`: `2026-12-03T09:16:30.123Z` (UTC, milliseconds).
struct Rfc3339Millis(SystemTime);

impl fmt::Display for Rfc3339Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self
            .0
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            since.subsec_millis()
        )
    }
}

/// One access-log event's fields, collected from a `tracing` event at [`ACCESS_LOG_TARGET`];
/// `Display` writes Envoy's default text format (Istio's `EnvoyTextLogFormat`), without the
/// final newline:
///
/// ```text
/// [2026-12-03T09:16:30.123Z] "GET /items/1 HTTP/1.1" 503 URX via_upstream - "-" 0 19 3 1 "-" "curl/8.5" "5b0c...-..." "api:8080" "10.0.0.2:8080" outbound|8080|v2|api.default.svc.cluster.local - - - - -
/// ```
///
/// Use it from any `tracing` subscriber: in a `tracing_subscriber::Layer`'s `on_event`,
/// `if let Some(line) = AccessLogLine::from_event(event) { println!("{line}") }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessLogLine {
    fields: [Option<String>; 24],
}

impl AccessLogLine {
    /// The fields of `event`, if it is an access-log event.
    pub fn from_event(event: &tracing::Event<'_>) -> Option<Self> {
        if event.metadata().target() != ACCESS_LOG_TARGET {
            return None;
        }
        let mut line = AccessLogLine::default();
        event.record(&mut line);
        Some(line)
    }

    /// The value of field `name` (one of [`ACCESS_LOG_FIELDS`]).
    pub fn get(&self, name: &str) -> Option<&str> {
        let i = ACCESS_LOG_FIELDS.iter().position(|f| *f == name)?;
        self.fields[i].as_deref()
    }

    fn set(&mut self, name: &str, value: String) {
        if let Some(i) = ACCESS_LOG_FIELDS.iter().position(|f| *f == name) {
            self.fields[i] = Some(value);
        }
    }
}

impl tracing::field::Visit for AccessLogLine {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.set(field.name(), value.to_string());
    }
}

impl fmt::Display for AccessLogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = |name: &str| self.get(name).unwrap_or("-");
        write!(
            f,
            "[{}] \"{} {} {}\" {} {} {} {} \"{}\" {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} {}",
            v("start_time"),
            v("method"),
            v("path"),
            v("protocol"),
            v("response_code"),
            v("response_flags"),
            v("response_code_details"),
            v("connection_termination_details"),
            v("upstream_transport_failure_reason"),
            v("bytes_received"),
            v("bytes_sent"),
            v("duration"),
            v("upstream_service_time"),
            v("x_forwarded_for"),
            v("user_agent"),
            v("request_id"),
            v("authority"),
            v("upstream_host"),
            v("upstream_cluster"),
            v("upstream_local_address"),
            v("downstream_local_address"),
            v("downstream_remote_address"),
            v("requested_server_name"),
            v("route_name"),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::Rfc3339Millis;

    #[test]
    fn start_time_is_envoys_utc_milliseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_289_390_123);
        assert_eq!(Rfc3339Millis(t).to_string(), "2026-12-03T09:16:30.123Z");
        let epoch = SystemTime::UNIX_EPOCH;
        assert_eq!(Rfc3339Millis(epoch).to_string(), "1970-01-01T00:00:00.000Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(Rfc3339Millis(leap).to_string(), "2000-02-29T00:00:00.000Z");
    }
}
