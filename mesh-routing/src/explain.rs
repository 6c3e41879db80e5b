//! [`Trace`]: why a request went where it went, from [`RouteTable::explain`].
//!
//! The trace is plain owned data (no serde): every route of the virtual host that was
//! considered, which match block failed on which field, the compile notes about that virtual
//! service, and the outcome. `Display` renders it for humans.

use std::fmt;

use crate::compiled::RouteTable;
use crate::decision::Action;
use crate::host::HostMatch;
use crate::RequestView;

/// The explanation of one routing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The request line, as routed: `GET reviews:9080/path?query`.
    pub request: String,
    /// The virtual service chosen for the authority, if any.
    pub virtual_service: Option<TraceVirtualService>,
    /// Every route considered, in order, up to the one that matched.
    pub routes: Vec<TraceRoute>,
    /// Compile notes about the chosen virtual service (dropped routes, excluded blocks,
    /// duplicate hosts), so unreachable config is visible.
    pub notes: Vec<String>,
    /// The outcome.
    pub outcome: TraceOutcome,
}

/// The virtual service that owns the authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceVirtualService {
    /// `namespace/name`.
    pub id: String,
    /// How the authority matched a host of the virtual service (`exact "x"`, `wildcard "*.x"`,
    /// `"*"`).
    pub matched_by: String,
}

/// One route considered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRoute {
    /// Index in `http[]` as written.
    pub index: usize,
    /// The route's name.
    pub name: Option<String>,
    /// Whether it matched, and if not, why each block failed.
    pub result: TraceRouteResult,
}

/// The result of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceRouteResult {
    /// The route has no `match`: it matches everything.
    MatchedWithoutConditions,
    /// Block `index` (as written) matched; the failures of earlier blocks are listed.
    Matched {
        /// Index of the block in `match[]`.
        index: usize,
        /// Failures of the blocks before it.
        earlier: Vec<TraceBlock>,
    },
    /// No block matched.
    NotMatched(Vec<TraceBlock>),
}

/// Why one match block failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceBlock {
    /// Index of the block in `match[]` as written.
    pub index: usize,
    /// The block's name.
    pub name: Option<String>,
    /// The first condition that failed, e.g. `headers.end-user: exact "jason" did not match "bob"`.
    pub failure: String,
}

/// The decision, as plain data.
#[derive(Debug, Clone, PartialEq)]
pub enum TraceOutcome {
    /// Forward to one of the destinations (by weight).
    Route {
        /// Each weighted destination: cluster name, weight, and whether its subset is
        /// undefined (503 NC).
        destinations: Vec<TraceDestination>,
        /// The route timeout, e.g. `5s`, or `None` (disabled).
        timeout: Option<String>,
        /// Retry attempts and conditions, e.g. `2 retries on connect-failure,...`.
        retries: String,
    },
    /// Redirect.
    Redirect {
        /// Status code.
        code: u16,
        /// `Location` for this request.
        location: String,
    },
    /// Direct response with this status.
    DirectResponse {
        /// Status code.
        status: u16,
    },
    /// 404 NR.
    NoRoute,
    /// No virtual service for the authority: forwarded to the host itself.
    Passthrough {
        /// The host, or its cluster name when the host is a known service.
        target: String,
    },
}

/// One weighted destination in a [`TraceOutcome::Route`].
#[derive(Debug, Clone, PartialEq)]
pub struct TraceDestination {
    /// Envoy-style cluster name.
    pub cluster: String,
    /// Weight.
    pub weight: u32,
    /// Share of the traffic in percent.
    pub share: f64,
    /// Whether the subset is undefined (requests to it get 503 NC).
    pub unknown_subset: bool,
}

impl RouteTable {
    /// Explain how `req` is routed: every route considered, which block failed on which
    /// field, and the outcome. Allocates freely; meant for tools and tests, not the hot path.
    pub fn explain(&self, req: &RequestView<'_>) -> Trace {
        let request = format!(
            "{} {}{}",
            req.method(),
            req.authority(),
            req.path_and_query()
        );
        let Some((&vh, how)) = self.hosts.lookup_with_pattern(req.authority()) else {
            let d = self.route(req, 0);
            let target = match d.action() {
                Action::Passthrough(p) => match p.cluster() {
                    Some(c) => self.cluster_key(c).to_string(),
                    None => req.host().to_owned(),
                },
                _ => req.host().to_owned(),
            };
            return Trace {
                request,
                virtual_service: None,
                routes: Vec::new(),
                notes: Vec::new(),
                outcome: TraceOutcome::Passthrough { target },
            };
        };
        let vhost = &self.vhosts[vh as usize];
        let id = format!("{}/{}", vhost.namespace, vhost.name);
        let matched_by = match how {
            HostMatch::Exact(h) => format!("exact {h:?}"),
            HostMatch::Suffix(s) => format!("wildcard \"*{s}\""),
            HostMatch::Any => "\"*\"".to_owned(),
        };
        let mut routes = Vec::new();
        for route in &vhost.routes {
            let name = route.name.as_deref().map(str::to_owned);
            if route.blocks.is_empty() {
                routes.push(TraceRoute {
                    index: route.index,
                    name,
                    result: TraceRouteResult::MatchedWithoutConditions,
                });
                break;
            }
            let mut failures = Vec::new();
            let mut matched = None;
            for kept in &route.blocks {
                match kept.block.first_failure(req) {
                    None => {
                        matched = Some(kept.index);
                        break;
                    }
                    Some(f) => failures.push(TraceBlock {
                        index: kept.index,
                        name: kept.block.name().map(str::to_owned),
                        failure: f.describe(req),
                    }),
                }
            }
            let done = matched.is_some();
            routes.push(TraceRoute {
                index: route.index,
                name,
                result: match matched {
                    Some(index) => TraceRouteResult::Matched {
                        index,
                        earlier: failures,
                    },
                    None => TraceRouteResult::NotMatched(failures),
                },
            });
            if done {
                break;
            }
        }
        let winner = format!("served by {id} ");
        let notes = self
            .notes
            .iter()
            .filter(|n| n.resource == id)
            .map(|n| n.message.clone())
            .chain(
                self.notes
                    .iter()
                    .filter(|n| n.resource != id && n.message.contains(&winner))
                    .map(ToString::to_string),
            )
            .collect();
        let d = self.route(req, 0);
        let outcome = match d.action() {
            Action::Route(r) | Action::UnknownSubset(r) => {
                let total: u32 = r.destinations().map(|d| d.weight()).sum();
                TraceOutcome::Route {
                    destinations: r
                        .destinations()
                        .map(|dest| {
                            let port = dest
                                .port()
                                .or_else(|| self.dests[dest.dest.dest as usize].single_port)
                                .unwrap_or(req.port());
                            TraceDestination {
                                cluster: crate::ClusterKey {
                                    host: dest.host(),
                                    subset: dest.subset(),
                                    port,
                                }
                                .to_string(),
                                weight: dest.weight(),
                                share: if total == 0 {
                                    100.0
                                } else {
                                    f64::from(dest.weight()) * 100.0 / f64::from(total)
                                },
                                unknown_subset: dest.is_unknown_subset(),
                            }
                        })
                        .collect(),
                    timeout: d.timeout().map(|t| format!("{t:?}")),
                    retries: {
                        let p = d.retry_policy();
                        match p.num_retries() {
                            0 => "retries disabled".to_owned(),
                            1 => format!("1 retry on {}", p.retry_on()),
                            n => format!("{n} retries on {}", p.retry_on()),
                        }
                    },
                }
            }
            Action::Redirect(r) => TraceOutcome::Redirect {
                code: r.code(),
                location: d.redirect_location(req).unwrap_or_default(),
            },
            Action::DirectResponse(dr) => TraceOutcome::DirectResponse {
                status: dr.status().as_u16(),
            },
            Action::NoRoute => TraceOutcome::NoRoute,
            Action::Passthrough(p) => TraceOutcome::Passthrough {
                target: p.host().unwrap_or(req.host()).to_owned(),
            },
        };
        Trace {
            request,
            virtual_service: Some(TraceVirtualService { id, matched_by }),
            routes,
            notes,
            outcome,
        }
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "request: {}", self.request)?;
        match &self.virtual_service {
            None => writeln!(f, "virtual service: none covers this authority")?,
            Some(vs) => writeln!(
                f,
                "virtual service: {} (host matched {})",
                vs.id, vs.matched_by
            )?,
        }
        for r in &self.routes {
            let name = r
                .name
                .as_deref()
                .map(|n| format!(" {n:?}"))
                .unwrap_or_default();
            match &r.result {
                TraceRouteResult::MatchedWithoutConditions => {
                    writeln!(
                        f,
                        "  http[{}]{name}: matched (no match conditions)",
                        r.index
                    )?;
                }
                TraceRouteResult::Matched { index, earlier } => {
                    for b in earlier {
                        writeln!(
                            f,
                            "  http[{}]{name} match[{}]: {}",
                            r.index, b.index, b.failure
                        )?;
                    }
                    writeln!(f, "  http[{}]{name}: matched by match[{index}]", r.index)?;
                }
                TraceRouteResult::NotMatched(blocks) => {
                    for b in blocks {
                        writeln!(
                            f,
                            "  http[{}]{name} match[{}]: {}",
                            r.index, b.index, b.failure
                        )?;
                    }
                    writeln!(f, "  http[{}]{name}: not matched", r.index)?;
                }
            }
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        match &self.outcome {
            TraceOutcome::Route {
                destinations,
                timeout,
                retries,
            } => {
                writeln!(f, "outcome: route")?;
                for d in destinations {
                    let nc = if d.unknown_subset {
                        " (undefined subset: 503 NC)"
                    } else {
                        ""
                    };
                    writeln!(
                        f,
                        "  {} weight {} ({:.1}%){nc}",
                        d.cluster, d.weight, d.share
                    )?;
                }
                writeln!(
                    f,
                    "  timeout: {}",
                    timeout.as_deref().unwrap_or("none (disabled)")
                )?;
                write!(f, "  {retries}")
            }
            TraceOutcome::Redirect { code, location } => {
                write!(f, "outcome: redirect {code} to {location}")
            }
            TraceOutcome::DirectResponse { status } => {
                write!(f, "outcome: direct response {status}")
            }
            TraceOutcome::NoRoute => write!(f, "outcome: 404 NR (no route matched)"),
            TraceOutcome::Passthrough { target } => write!(f, "outcome: passthrough to {target}"),
        }
    }
}
