//! Validated virtual services back to the wire form (`raw::*`), so a configuration can be written
//! out as YAML and loads back to the same value.

use std::collections::BTreeMap;

use http::HeaderValue;

use crate::matching::StringMatch;
use crate::policy::{AbortStatus, FaultInjection, RetryPolicy};
use crate::raw;

use super::cors::CorsPolicy;
use super::destination::Destination;
use super::direct_response::DirectResponse;
use super::headers::{HeaderOps, Headers};
use super::http_match::HttpMatch;
use super::redirect::{Redirect, RedirectPort};
use super::rewrite::Rewrite;
use super::route::{HttpRoute, RouteAction};
use super::VirtualService;

impl VirtualService {
    /// Back to the wire form.
    pub fn to_raw(&self) -> raw::VirtualService {
        raw::VirtualService {
            api_version: Some("networking.istio.io/v1".into()),
            kind: Some("VirtualService".into()),
            metadata: self.meta.to_raw(),
            spec: raw::VirtualServiceSpec {
                hosts: self.hosts.clone(),
                gateways: self.gateways.clone(),
                http: self
                    .http
                    .iter()
                    .chain(&self.skipped_delegations)
                    .map(|r| Some(r.to_raw()))
                    .collect(),
                tls: self.tls.clone(),
                tcp: self.tcp.clone(),
                export_to: self.export_to.clone(),
            },
        }
    }
}

impl HttpRoute {
    fn to_raw(&self) -> raw::HttpRoute {
        let mut r = raw::HttpRoute {
            name: self.name.clone(),
            matches: self.matches.iter().map(|m| Some(m.to_raw())).collect(),
            rewrite: self.rewrite.as_deref().map(Rewrite::to_raw),
            timeout: self.timeout.map(|d| d.to_string()),
            retries: self.retries.written.then(|| retry_to_raw(&self.retries)),
            fault: self.fault.as_ref().map(fault_to_raw),
            mirrors: self
                .mirrors
                .iter()
                .filter(|m| !m.legacy)
                .map(|m| {
                    Some(raw::HttpMirrorPolicy {
                        destination: Some(m.destination.to_raw()),
                        percentage: Some(raw::Percent {
                            value: Some(m.percentage.value()),
                        }),
                    })
                })
                .collect(),
            cors_policy: self.cors.as_deref().map(CorsPolicy::to_raw),
            headers: self.headers().to_raw(),
            ..Default::default()
        };
        if let Some(m) = self.mirrors.iter().find(|m| m.legacy) {
            r.mirror = Some(m.destination.to_raw());
            r.mirror_percentage = Some(raw::Percent {
                value: Some(m.percentage.value()),
            });
        }
        match &self.action {
            RouteAction::Route(ds) => {
                r.route = ds
                    .iter()
                    .map(|d| {
                        Some(raw::HttpRouteDestination {
                            destination: Some(d.destination.to_raw()),
                            weight: Some(i64::from(d.weight)),
                            headers: d.headers().to_raw(),
                        })
                    })
                    .collect();
            }
            RouteAction::Redirect(rd) => r.redirect = Some(rd.to_raw()),
            RouteAction::DirectResponse(dr) => r.direct_response = Some(dr.to_raw()),
            RouteAction::Delegate(d) => {
                r.delegate = Some(raw::Delegate {
                    name: Some(d.name.clone()),
                    namespace: d.namespace.clone(),
                })
            }
        }
        r
    }
}

impl Destination {
    fn to_raw(&self) -> raw::Destination {
        raw::Destination {
            host: Some(self.host.clone()),
            subset: self.subset.clone(),
            port: self.port.map(|n| raw::PortSelector {
                number: Some(i64::from(n)),
            }),
        }
    }
}

impl HttpMatch {
    fn to_raw(&self) -> raw::HttpMatchRequest {
        let map = |v: &[(String, StringMatch)]| {
            v.iter()
                .map(|(k, m)| (k.clone(), Some(sm_to_raw(m))))
                .collect()
        };
        raw::HttpMatchRequest {
            name: self.name.clone(),
            uri: self.uri.as_ref().map(sm_to_raw),
            scheme: self.scheme.as_ref().map(sm_to_raw),
            method: self.method.as_ref().map(sm_to_raw),
            authority: self.authority.as_ref().map(sm_to_raw),
            headers: map(&self.headers),
            port: self.port.map(i64::from),
            source_labels: self.source_labels.clone(),
            gateways: self.gateways.clone(),
            query_params: map(&self.query_params),
            ignore_uri_case: self.ignore_uri_case.then_some(true),
            without_headers: map(&self.without_headers),
            source_namespace: self.source_namespace.clone(),
            stat_prefix: self.stat_prefix.clone(),
        }
    }
}

impl Headers {
    fn to_raw(&self) -> Option<raw::Headers> {
        (!self.is_empty()).then(|| raw::Headers {
            request: self.request.to_raw(),
            response: self.response.to_raw(),
        })
    }
}

impl HeaderOps {
    fn to_raw(&self) -> Option<raw::HeaderOperations> {
        if self.is_empty() {
            return None;
        }
        // A value built in code has no written form: escape its '%' signs.
        let s = |i: usize, v: &HeaderValue, written: &[String]| {
            written
                .get(i)
                .cloned()
                .unwrap_or_else(|| String::from_utf8_lossy(v.as_bytes()).replace('%', "%%"))
        };
        let mut set: BTreeMap<String, String> = self
            .set
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (k.to_string(), s(i, v, &self.set_written)))
            .collect();
        let mut add: BTreeMap<String, String> = self
            .add
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (k.to_string(), s(i, v, &self.add_written)))
            .collect();
        if let Some((a, via_set)) = &self.authority {
            if *via_set {
                set.insert("host".into(), a.clone());
            } else {
                add.insert("host".into(), a.clone());
            }
        }
        Some(raw::HeaderOperations {
            set,
            add,
            remove: self.remove.iter().map(ToString::to_string).collect(),
        })
    }
}

impl Rewrite {
    fn to_raw(&self) -> raw::HttpRewrite {
        raw::HttpRewrite {
            uri: self.uri.clone(),
            authority: self.authority.clone(),
            uri_regex_rewrite: self.uri_regex.as_ref().map(|r| raw::RegexRewrite {
                matcher: Some(r.pattern.as_str().to_owned()),
                rewrite: Some(r.rewrite.clone()),
            }),
        }
    }
}

impl Redirect {
    fn to_raw(&self) -> raw::HttpRedirect {
        let (port, derive_port) = match self.port {
            RedirectPort::Unchanged => (None, None),
            RedirectPort::Explicit(p) => (Some(i64::from(p)), None),
            RedirectPort::FromProtocolDefault => (None, Some("FROM_PROTOCOL_DEFAULT".to_owned())),
            RedirectPort::FromRequestPort => (None, Some("FROM_REQUEST_PORT".to_owned())),
        };
        raw::HttpRedirect {
            uri: self.uri.clone(),
            authority: self.authority.clone(),
            port,
            derive_port,
            scheme: self.scheme.clone(),
            redirect_code: Some(i64::from(self.code)),
            prefix_rewrite: self.prefix_rewrite.clone(),
        }
    }
}

impl DirectResponse {
    fn to_raw(&self) -> raw::HttpDirectResponse {
        use base64::Engine;
        raw::HttpDirectResponse {
            status: Some(i64::from(self.status)),
            body: self.body.as_ref().map(|b| {
                if self.body_is_text {
                    raw::HttpBody {
                        string: Some(String::from_utf8_lossy(b).into_owned()),
                        bytes: None,
                    }
                } else {
                    raw::HttpBody {
                        string: None,
                        bytes: Some(base64::engine::general_purpose::STANDARD.encode(b)),
                    }
                }
            }),
        }
    }
}

impl CorsPolicy {
    fn to_raw(&self) -> raw::CorsPolicy {
        raw::CorsPolicy {
            allow_origin: Vec::new(),
            allow_origins: self
                .allow_origins
                .iter()
                .map(|m| Some(sm_to_raw(m)))
                .collect(),
            allow_methods: self.allow_methods.clone(),
            allow_headers: self.allow_headers.clone(),
            expose_headers: self.expose_headers.clone(),
            max_age: self.max_age.map(|d| d.to_string()),
            allow_credentials: self.allow_credentials,
            unmatched_preflights: self.unmatched_preflights.clone(),
        }
    }
}

fn sm_to_raw(m: &StringMatch) -> raw::StringMatch {
    match m {
        StringMatch::Exact(s) => raw::StringMatch {
            exact: Some(s.clone()),
            ..Default::default()
        },
        StringMatch::Prefix(s) => raw::StringMatch {
            prefix: Some(s.clone()),
            ..Default::default()
        },
        StringMatch::Regex(r) => raw::StringMatch {
            regex: Some(r.as_str().to_owned()),
            ..Default::default()
        },
        StringMatch::Present => raw::StringMatch::default(),
    }
}

fn retry_to_raw(p: &RetryPolicy) -> raw::HttpRetry {
    raw::HttpRetry {
        attempts: Some(i64::from(p.attempts)),
        per_try_timeout: p.per_try_timeout.map(|d| d.to_string()),
        retry_on: p.retry_on_written.then(|| p.retry_on.to_string()),
        retry_remote_localities: p.retry_remote_localities,
        retry_ignore_previous_hosts: p.retry_ignore_previous_hosts,
        backoff: p.backoff.map(|d| d.to_string()),
    }
}

fn fault_to_raw(f: &FaultInjection) -> raw::HttpFaultInjection {
    raw::HttpFaultInjection {
        delay: f.delay.as_ref().map(|d| raw::FaultDelay {
            fixed_delay: Some(d.fixed_delay.to_string()),
            percentage: Some(raw::Percent {
                value: Some(d.percentage.value()),
            }),
            ..Default::default()
        }),
        abort: f.abort.as_ref().map(|a| raw::FaultAbort {
            http_status: match a.status {
                AbortStatus::Http(s) => Some(i64::from(s)),
                AbortStatus::Grpc(_) => None,
            },
            grpc_status: match a.status {
                AbortStatus::Grpc(g) => Some(g.name().to_owned()),
                AbortStatus::Http(_) => None,
            },
            http2_error: None,
            percentage: Some(raw::Percent {
                value: Some(a.percentage.value()),
            }),
        }),
    }
}
