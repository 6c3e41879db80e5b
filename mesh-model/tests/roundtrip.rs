//! Round trip (issue 2, item 9): generated valid configurations are written as YAML and loaded
//! (A); `A.to_yaml()` loaded again under the same source name (B) gives the same configuration.
//! Plus the value types' own round trips and the loader's robustness on arbitrary text.

use mesh_model::{load_str, Duration, Loaded, Percentage};
use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_yaml::{Mapping, Value};

// ---------------------------------------------------------------------------------------------
// Building YAML values.
// ---------------------------------------------------------------------------------------------

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in entries {
        if !v.is_null() {
            m.insert(Value::String(k.to_owned()), v);
        }
    }
    Value::Mapping(m)
}

fn s(x: &str) -> Value {
    Value::String(x.to_owned())
}

fn n(x: i64) -> Value {
    Value::Number(x.into())
}

fn opt(v: Option<Value>) -> Value {
    v.unwrap_or(Value::Null)
}

fn list(v: Vec<Value>) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        Value::Sequence(v)
    }
}

/// A duration of whole milliseconds written in one of the spellings Istio accepts.
fn duration() -> impl Strategy<Value = Value> {
    (1u64..=7_200_000, 0u8..4).prop_map(|(ms, form)| {
        let text = match form {
            0 => format!("{ms}ms"),
            1 if ms % 1000 == 0 => format!("{}s", ms / 1000),
            1 | 2 => format!("{}.{:03}s", ms / 1000, ms % 1000),
            _ => format!("{}us", ms * 1000),
        };
        s(&text)
    })
}

/// A percentage as Istio's `Percent` message: 0 or within [0.0001, 100].
fn percent() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(0.0),
        (1u32..=1_000_000).prop_map(|ppm| Percentage::from_per_million(ppm).value()),
        (0u32..=100).prop_map(f64::from),
    ]
    .prop_map(|v| map(vec![("value", Value::Number(v.into()))]))
}

const HOSTS: [&str; 5] = [
    "reviews",
    "ratings.prod.svc.cluster.local",
    "api.example.com",
    "*.example.org",
    "details",
];
const SUBSETS: [&str; 3] = ["v1", "v2", "canary"];

fn string_match() -> impl Strategy<Value = Value> {
    let regexes = prop::sample::select(vec!["/api/v[0-9]+/.*", "[a-z]+", "(foo|bar)-[0-9]{2}"]);
    let word = "[a-z0-9/._-]{1,12}";
    prop_oneof![
        word.prop_map(|w| map(vec![("exact", s(&w))])),
        word.prop_map(|w| map(vec![("prefix", s(&w))])),
        regexes.prop_map(|r| map(vec![("regex", s(r))])),
        // `{}`: presence.
        Just(Value::Mapping(Mapping::new())),
    ]
}

fn string_map(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    subsequence(keys, 0..=keys.len().min(2))
        .prop_flat_map(|ks| {
            let n = ks.len();
            (Just(ks), prop::collection::vec(string_match(), n))
        })
        .prop_map(|(ks, vs)| {
            let mut m = Mapping::new();
            for (k, v) in ks.into_iter().zip(vs) {
                // `{}` (presence) is written as an empty mapping.
                let v = if v.is_null() {
                    Value::Mapping(Mapping::new())
                } else {
                    v
                };
                m.insert(s(k), v);
            }
            if m.is_empty() {
                Value::Null
            } else {
                Value::Mapping(m)
            }
        })
}

fn http_match() -> impl Strategy<Value = Value> {
    (
        prop::option::of(string_match()),
        string_map(&["x-user", "end-user", "x-env"]),
        string_map(&["q", "debug"]),
        prop::option::of(prop::sample::select(vec!["GET", "POST", "PUT"])),
        prop::option::of(1u16..=65535),
        prop::option::of(any::<bool>()),
        string_map(&["x-canary"]),
        (
            prop::option::of(prop::sample::select(vec!["frontend", "v1"])),
            prop::option::of(prop::sample::select(vec!["web", "batch"])),
            prop::option::of("[a-z]{1,6}"),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(uri, headers, query, method, port, icase, without, (label, ns, name, mesh))| {
                map(vec![
                    ("name", opt(name.map(|x| s(&x)))),
                    ("sourceLabels", opt(label.map(|l| map(vec![("app", s(l))])))),
                    ("sourceNamespace", opt(ns.map(s))),
                    (
                        "gateways",
                        if mesh {
                            Value::Sequence(vec![s("mesh")])
                        } else {
                            Value::Null
                        },
                    ),
                    ("uri", opt(uri.filter(|u| !u.is_null()))),
                    ("headers", headers),
                    ("queryParams", query),
                    ("method", opt(method.map(|m| map(vec![("exact", s(m))])))),
                    ("port", opt(port.map(|p| n(i64::from(p))))),
                    ("ignoreUriCase", opt(icase.map(Value::Bool))),
                    ("withoutHeaders", without),
                ])
            },
        )
}

fn destination() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(
            HOSTS
                .iter()
                .filter(|h| !h.starts_with('*'))
                .copied()
                .collect::<Vec<_>>(),
        ),
        prop::option::of(prop::sample::select(SUBSETS.to_vec())),
        prop::option::of(1u16..=65535),
    )
        .prop_map(|(host, subset, port)| {
            map(vec![
                ("host", s(host)),
                ("subset", opt(subset.map(s))),
                (
                    "port",
                    opt(port.map(|p| map(vec![("number", n(i64::from(p)))]))),
                ),
            ])
        })
}

fn header_ops() -> impl Strategy<Value = Value> {
    let names = vec!["x-a", "x-b", "x-request-id"];
    (
        subsequence(names.clone(), 0..=2),
        subsequence(names.clone(), 0..=1),
        subsequence(names, 0..=2),
        "[a-zA-Z0-9 ,;=-]{0,12}",
    )
        .prop_map(|(set, add, remove, value)| {
            let kv = |ks: Vec<&str>| {
                let mut m = Mapping::new();
                for k in ks {
                    m.insert(s(k), s(&value));
                }
                if m.is_empty() {
                    Value::Null
                } else {
                    Value::Mapping(m)
                }
            };
            map(vec![
                ("set", kv(set)),
                ("add", kv(add)),
                ("remove", list(remove.into_iter().map(s).collect())),
            ])
        })
}

fn headers() -> impl Strategy<Value = Value> {
    (
        prop::option::of(header_ops()),
        prop::option::of(header_ops()),
    )
        .prop_map(|(rq, rs)| {
            map(vec![
                (
                    "request",
                    opt(rq.filter(|v| v.as_mapping().is_some_and(|m| !m.is_empty()))),
                ),
                (
                    "response",
                    opt(rs.filter(|v| v.as_mapping().is_some_and(|m| !m.is_empty()))),
                ),
            ])
        })
}

fn retries() -> impl Strategy<Value = Value> {
    let tokens = vec![
        "5xx",
        "gateway-error",
        "reset",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "unavailable",
        "cancelled",
        "503",
    ];
    (
        1i64..=10,
        prop::option::of(duration()),
        subsequence(tokens, 0..=3),
        prop::option::of(duration()),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(attempts, per_try, on, backoff, ignore)| {
            map(vec![
                ("attempts", n(attempts)),
                ("perTryTimeout", opt(per_try)),
                (
                    "retryOn",
                    if on.is_empty() {
                        Value::Null
                    } else {
                        s(&on.join(","))
                    },
                ),
                ("backoff", opt(backoff)),
                ("retryIgnorePreviousHosts", opt(ignore.map(Value::Bool))),
            ])
        })
}

fn fault() -> impl Strategy<Value = Value> {
    let delay =
        (duration(), percent()).prop_map(|(d, p)| map(vec![("fixedDelay", d), ("percentage", p)]));
    let abort = (
        prop_oneof![
            (200i64..=599).prop_map(|c| ("httpStatus", n(c))),
            prop::sample::select(vec!["UNAVAILABLE", "INTERNAL", "NOT_FOUND"])
                .prop_map(|g| ("grpcStatus", s(g))),
        ],
        percent(),
    )
        .prop_map(|((k, v), p)| map(vec![(k, v), ("percentage", p)]));
    (prop::option::of(delay), prop::option::of(abort))
        .prop_filter("a fault has a delay or an abort", |(d, a)| {
            d.is_some() || a.is_some()
        })
        .prop_map(|(d, a)| map(vec![("delay", opt(d)), ("abort", opt(a))]))
}

/// The action and the fields that may go with it (faults, rewrites and mirrors only with
/// `route`, R2/R3).
fn action() -> impl Strategy<Value = Vec<(&'static str, Value)>> {
    let routed = (
        prop::collection::vec(
            (destination(), 1i64..=100, prop::option::of(headers())),
            1..=3,
        ),
        prop::option::of(fault()),
        prop::option::of(prop_oneof![
            "/[a-z]{0,8}".prop_map(|u| map(vec![("uri", s(&u))])),
            "[a-z]{1,8}\\.example\\.com".prop_map(|a| map(vec![("authority", s(&a))])),
            Just(map(vec![(
                "uriRegexRewrite",
                map(vec![("match", s("^/v1/(.*)$")), ("rewrite", s("/v2/\\1"))])
            )])),
        ]),
        prop_oneof![
            Just(None),
            (destination(), prop::option::of(percent()))
                .prop_map(|(d, p)| Some((true, vec![(d, p)]))),
            prop::collection::vec((destination(), prop::option::of(percent())), 1..=2)
                .prop_map(|v| Some((false, v))),
        ],
    )
        .prop_map(|(dests, fault, rewrite, mirrors)| {
            let route = dests
                .into_iter()
                .map(|(d, w, h)| {
                    map(vec![
                        ("destination", d),
                        ("weight", n(w)),
                        (
                            "headers",
                            opt(h.filter(|v| v.as_mapping().is_some_and(|m| !m.is_empty()))),
                        ),
                    ])
                })
                .collect();
            let mut out = vec![
                ("route", Value::Sequence(route)),
                ("fault", opt(fault)),
                ("rewrite", opt(rewrite)),
            ];
            match mirrors {
                None => {}
                Some((true, mut v)) => {
                    let (d, p) = v.remove(0);
                    out.push(("mirror", d));
                    out.push(("mirrorPercentage", opt(p)));
                }
                Some((false, v)) => out.push((
                    "mirrors",
                    Value::Sequence(
                        v.into_iter()
                            .map(|(d, p)| map(vec![("destination", d), ("percentage", opt(p))]))
                            .collect(),
                    ),
                )),
            }
            out
        });
    let redirect = (
        prop::option::of("/[a-z]{1,8}"),
        prop::option::of("[a-z]{1,8}\\.example\\.com"),
        prop::option::of(prop::sample::select(vec!["http", "https"])),
        prop::option::of(prop::sample::select(vec![301i64, 302, 303, 307, 308])),
        prop::option::of(prop_oneof![
            (1i64..=65535).prop_map(|p| ("port", n(p))),
            prop::sample::select(vec!["FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"])
                .prop_map(|d| ("derivePort", s(d))),
        ]),
    )
        .prop_filter("a redirect changes something", |(u, a, sc, _, p)| {
            u.is_some() || a.is_some() || sc.is_some() || p.is_some()
        })
        .prop_map(|(uri, authority, scheme, code, port)| {
            let mut m = vec![
                ("uri", opt(uri.map(|u| s(&u)))),
                ("authority", opt(authority.map(|a| s(&a)))),
                ("scheme", opt(scheme.map(s))),
                ("redirectCode", opt(code.map(n))),
            ];
            if let Some((k, v)) = port {
                m.push((k, v));
            }
            vec![("redirect", map(m))]
        });
    let direct = (
        200i64..=599,
        prop::option::of(prop_oneof![
            "[ -~]{0,40}".prop_map(|b| map(vec![("string", s(&b))])),
            prop::collection::vec(any::<u8>(), 0..32).prop_map(|b| {
                use base64::Engine;
                map(vec![(
                    "bytes",
                    s(&base64::engine::general_purpose::STANDARD.encode(b)),
                )])
            }),
        ]),
    )
        .prop_map(|(status, body)| {
            vec![(
                "directResponse",
                map(vec![("status", n(status)), ("body", opt(body))]),
            )]
        });
    prop_oneof![4 => routed, 1 => redirect, 1 => direct]
}

fn cors() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(
            prop_oneof![
                "https://[a-z]{1,8}\\.example\\.com".prop_map(|o| map(vec![("exact", s(&o))])),
                Just(map(vec![("prefix", s("https://"))])),
                Just(map(vec![("regex", s("https://.*\\.example\\.com"))])),
            ],
            0..=2,
        ),
        subsequence(vec!["GET", "POST", "OPTIONS"], 0..=3),
        subsequence(vec!["content-type", "x-user", "*"], 0..=2),
        prop::option::of(1u64..=86_400),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(origins, methods, headers, max_age, creds)| {
            map(vec![
                ("allowOrigins", list(origins)),
                ("allowMethods", list(methods.into_iter().map(s).collect())),
                ("allowHeaders", list(headers.into_iter().map(s).collect())),
                ("maxAge", opt(max_age.map(|m| s(&format!("{m}s"))))),
                ("allowCredentials", opt(creds.map(Value::Bool))),
            ])
        })
}

fn http_route(index: usize) -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(http_match(), 0..=2),
        action(),
        prop::option::of(duration()),
        prop::option::of(retries()),
        prop::option::of(headers()),
        any::<bool>(),
        prop::option::of(cors()),
    )
        .prop_map(
            move |(matches, action, timeout, retries, headers, named, cors)| {
                let mut m = vec![
                    (
                        "name",
                        if named {
                            s(&format!("r{index}"))
                        } else {
                            Value::Null
                        },
                    ),
                    ("match", list(matches)),
                ];
                m.extend(action);
                m.push(("timeout", opt(timeout)));
                m.push(("corsPolicy", opt(cors)));
                m.push(("retries", opt(retries)));
                m.push((
                    "headers",
                    opt(headers.filter(|v| v.as_mapping().is_some_and(|m| !m.is_empty()))),
                ));
                map(m)
            },
        )
}

fn virtual_service(index: usize) -> impl Strategy<Value = Value> {
    (
        subsequence(&HOSTS[..], 1..=2),
        prop::collection::vec(Just(()), 1..=4)
            .prop_flat_map(|v| (0..v.len()).map(http_route).collect::<Vec<_>>()),
        prop::sample::select(vec!["default", "prod"]),
        prop::option::of(subsequence(vec![".", "frontend", "istio-system"], 1..=2)),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(move |(hosts, http, ns, export_to, (mesh, tcp))| {
            map(vec![
                ("apiVersion", s("networking.istio.io/v1")),
                ("kind", s("VirtualService")),
                (
                    "metadata",
                    map(vec![
                        ("name", s(&format!("vs-{index}"))),
                        ("namespace", s(ns)),
                    ]),
                ),
                (
                    "spec",
                    map(vec![
                        ("hosts", Value::Sequence(hosts.into_iter().map(s).collect())),
                        ("http", Value::Sequence(http)),
                        (
                            "gateways",
                            if mesh {
                                Value::Sequence(vec![s("mesh")])
                            } else {
                                Value::Null
                            },
                        ),
                        (
                            "tcp",
                            if tcp {
                                Value::Sequence(vec![map(vec![
                                    (
                                        "match",
                                        Value::Sequence(vec![map(vec![("port", n(27017))])]),
                                    ),
                                    (
                                        "route",
                                        Value::Sequence(vec![map(vec![(
                                            "destination",
                                            map(vec![("host", s("mongo"))]),
                                        )])]),
                                    ),
                                ])])
                            } else {
                                Value::Null
                            },
                        ),
                        (
                            "exportTo",
                            opt(export_to.map(|e| Value::Sequence(e.into_iter().map(s).collect()))),
                        ),
                    ]),
                ),
            ])
        })
}

fn load_balancer() -> impl Strategy<Value = Value> {
    let simple = prop::sample::select(vec![
        "ROUND_ROBIN",
        "RANDOM",
        "LEAST_REQUEST",
        "PASSTHROUGH",
    ])
    .prop_map(|x| map(vec![("simple", s(x))]));
    let key = prop_oneof![
        "[a-z-]{1,10}".prop_map(|h| ("httpHeaderName", s(&h))),
        Just(("useSourceIp", Value::Bool(true))),
        "[a-z]{1,8}".prop_map(|q| ("httpQueryParameterName", s(&q))),
        (
            "[a-z]{1,8}",
            prop::option::of(duration()),
            prop::option::of("/[a-z]{0,5}")
        )
            .prop_map(|(name, ttl, path)| {
                (
                    "httpCookie",
                    map(vec![
                        ("name", s(&name)),
                        ("ttl", opt(ttl)),
                        ("path", opt(path.map(|p| s(&p)))),
                    ]),
                )
            }),
    ];
    let table = prop_oneof![
        Just(None),
        (1i64..=100_000).prop_map(|r| Some(("ringHash", map(vec![("minimumRingSize", n(r))])))),
        prop::sample::select(vec![65537i64, 251, 1021])
            .prop_map(|t| Some(("maglev", map(vec![("tableSize", n(t))])))),
    ];
    let hash = (key, table).prop_map(|((k, v), t)| {
        let mut m = vec![(k, v)];
        if let Some((tk, tv)) = t {
            m.push((tk, tv));
        }
        map(vec![("consistentHash", map(m))])
    });
    prop_oneof![simple, hash]
}

fn connection_pool() -> impl Strategy<Value = Value> {
    (
        prop::option::of((1i64..=100_000, prop::option::of(duration()))),
        prop::option::of((
            1i64..=100_000,
            1i64..=100_000,
            prop::option::of(0i64..=1000),
            prop::option::of(1i64..=100),
            prop::option::of(duration()),
        )),
    )
        .prop_filter("tcp or http", |(t, h)| t.is_some() || h.is_some())
        .prop_map(|(tcp, http)| {
            map(vec![
                (
                    "tcp",
                    opt(tcp.map(|(c, t)| {
                        map(vec![("maxConnections", n(c)), ("connectTimeout", opt(t))])
                    })),
                ),
                (
                    "http",
                    opt(http.map(|(p, r, per, retries, idle)| {
                        map(vec![
                            ("http1MaxPendingRequests", n(p)),
                            ("http2MaxRequests", n(r)),
                            ("maxRequestsPerConnection", opt(per.map(n))),
                            ("maxRetries", opt(retries.map(n))),
                            ("idleTimeout", opt(idle)),
                        ])
                    })),
                ),
            ])
        })
}

fn outlier() -> impl Strategy<Value = Value> {
    (
        prop::option::of(0i64..=20),
        prop::option::of(0i64..=20),
        prop::option::of(duration()),
        prop::option::of(duration()),
        prop::option::of(0i64..=100),
        prop::option::of(0i64..=100),
        prop::option::of(1i64..=10),
    )
        .prop_map(|(c5, cg, interval, base, max, min, local)| {
            map(vec![
                (
                    "splitExternalLocalOriginErrors",
                    opt(local.map(|_| Value::Bool(true))),
                ),
                ("consecutiveLocalOriginFailures", opt(local.map(n))),
                ("consecutive5xxErrors", opt(c5.map(n))),
                ("consecutiveGatewayErrors", opt(cg.map(n))),
                ("interval", opt(interval)),
                ("baseEjectionTime", opt(base)),
                ("maxEjectionPercent", opt(max.map(n))),
                ("minHealthPercent", opt(min.map(n))),
            ])
        })
}

fn traffic_policy() -> impl Strategy<Value = Value> {
    (
        prop::option::of(load_balancer()),
        prop::option::of(connection_pool()),
        prop::option::of(outlier()),
        prop::option::of((1i64..=65535, load_balancer())),
        prop::option::of(prop_oneof![
            Just(map(vec![("mode", s("ISTIO_MUTUAL"))])),
            Just(map(vec![("mode", s("DISABLE"))])),
            "[a-z]{1,8}\\.example\\.com".prop_map(|sni| map(vec![
                ("mode", s("SIMPLE")),
                ("sni", s(&sni)),
                ("subjectAltNames", Value::Sequence(vec![s(&sni)])),
            ])),
        ]),
    )
        .prop_filter("at least one field", |(a, b, c, d, e)| {
            a.is_some() || b.is_some() || c.is_some() || d.is_some() || e.is_some()
        })
        .prop_map(|(lb, pool, od, port, tls)| {
            map(vec![
                ("loadBalancer", opt(lb)),
                ("connectionPool", opt(pool)),
                ("outlierDetection", opt(od)),
                ("tls", opt(tls)),
                (
                    "portLevelSettings",
                    opt(port.map(|(p, lb)| {
                        Value::Sequence(vec![map(vec![
                            ("port", map(vec![("number", n(p))])),
                            ("loadBalancer", lb),
                        ])])
                    })),
                ),
            ])
        })
}

fn destination_rule(index: usize) -> impl Strategy<Value = Value> {
    (
        prop::sample::select(HOSTS.to_vec()),
        subsequence(&SUBSETS[..], 0..=3),
        prop::collection::vec(prop::option::of(traffic_policy()), 3),
        prop::option::of(traffic_policy()),
        prop::option::of(prop_oneof![
            Just((Some("."), Some("web"))),
            Just((Some("*"), None)),
            Just((None, Some("api"))),
        ]),
        prop::option::of((0u32..=100, 1i64..=10, prop::option::of(duration()))),
    )
        .prop_map(
            move |(host, subsets, sub_policies, policy, scope, budget)| {
                let (export_to, selector) = scope.unwrap_or((None, None));
                let mut policy = policy;
                if let (Some((pct, min, interval)), Some(Value::Mapping(p))) =
                    (budget, policy.as_mut())
                {
                    p.insert(
                        s("retryBudget"),
                        map(vec![
                            ("percent", Value::Number(f64::from(pct).into())),
                            ("minRetryConcurrency", n(min)),
                            ("budgetInterval", opt(interval)),
                        ]),
                    );
                }
                let subsets = subsets
                    .into_iter()
                    .zip(sub_policies)
                    .map(|(name, p)| {
                        map(vec![
                            ("name", s(name)),
                            ("labels", map(vec![("version", s(name))])),
                            ("trafficPolicy", opt(p)),
                        ])
                    })
                    .collect();
                map(vec![
                    ("apiVersion", s("networking.istio.io/v1")),
                    ("kind", s("DestinationRule")),
                    ("metadata", map(vec![("name", s(&format!("dr-{index}")))])),
                    (
                        "spec",
                        map(vec![
                            ("host", s(host)),
                            ("trafficPolicy", opt(policy)),
                            ("subsets", list(subsets)),
                            (
                                "exportTo",
                                opt(export_to.map(|e| Value::Sequence(vec![s(e)]))),
                            ),
                            (
                                "workloadSelector",
                                opt(selector
                                    .map(|a| map(vec![("matchLabels", map(vec![("app", s(a))]))]))),
                            ),
                        ]),
                    ),
                ])
            },
        )
}

fn service_entry(index: usize) -> impl Strategy<Value = Value> {
    let static_eps = prop::collection::vec(
        (
            (1u8..=254, 0u8..=255),
            prop::option::of(1i64..=100),
            prop::option::of(1i64..=65535),
        ),
        1..=3,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|((a, b), w, p)| {
                map(vec![
                    ("address", s(&format!("10.0.{a}.{b}"))),
                    ("weight", opt(w.map(n))),
                    ("ports", opt(p.map(|p| map(vec![("http", n(p))])))),
                    ("labels", map(vec![("version", s("v1"))])),
                    ("locality", s("us-east1/us-east1-b")),
                    ("network", s("net-1")),
                ])
            })
            .collect::<Vec<_>>()
    });
    prop_oneof![
        Just(("NONE", Vec::new())),
        static_eps.prop_map(|e| ("STATIC", e)),
        Just((
            "DNS",
            vec![map(vec![("address", s("backend.example.com"))])]
        )),
        Just(("DNS", Vec::new())),
    ]
    .prop_flat_map(|(res, eps)| {
        (
            Just(res),
            Just(eps),
            1i64..=65535,
            prop::sample::select(vec!["HTTP", "HTTPS", "GRPC", "TCP"]),
            prop::sample::select(vec!["MESH_EXTERNAL", "MESH_INTERNAL"]),
            prop::option::of((1u8..=254, 1u8..=254)),
        )
    })
    .prop_map(move |(res, eps, port, proto, location, address)| {
        map(vec![
            ("apiVersion", s("networking.istio.io/v1")),
            ("kind", s("ServiceEntry")),
            ("metadata", map(vec![("name", s(&format!("se-{index}")))])),
            (
                "spec",
                map(vec![
                    (
                        "hosts",
                        Value::Sequence(vec![s(&format!("svc{index}.example.com"))]),
                    ),
                    (
                        "ports",
                        Value::Sequence(vec![map(vec![
                            ("number", n(port)),
                            ("name", s("http")),
                            ("protocol", s(proto)),
                        ])]),
                    ),
                    ("location", s(location)),
                    (
                        "addresses",
                        opt(address
                            .map(|(a, b)| Value::Sequence(vec![s(&format!("192.168.{a}.{b}"))]))),
                    ),
                    ("resolution", s(res)),
                    ("endpoints", list(eps)),
                ]),
            ),
        ])
    })
}

fn config_text() -> impl Strategy<Value = String> {
    (
        (1usize..=3).prop_flat_map(|k| (0..k).map(virtual_service).collect::<Vec<_>>()),
        (0usize..=2).prop_flat_map(|k| (0..k).map(destination_rule).collect::<Vec<_>>()),
        (0usize..=2).prop_flat_map(|k| (0..k).map(service_entry).collect::<Vec<_>>()),
    )
        .prop_map(|(vss, drs, ses)| {
            vss.iter()
                .chain(&drs)
                .chain(&ses)
                .map(|d| serde_yaml::to_string(d).expect("serialisable"))
                .collect::<Vec<_>>()
                .join("---\n")
        })
}

/// Loads one source with validation only: the cross-resource analysis reports (for example)
/// subsets no generated DestinationRule defines, which does not keep anything out.
fn load(source: &str, text: &str) -> Loaded {
    let mut loader = mesh_model::Loader::new().without_analysis();
    loader.add_str(source, text);
    loader.finish()
}

fn errors(l: &Loaded) -> Vec<String> {
    l.errors().map(ToString::to_string).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn generated_configuration_round_trips(text in config_text()) {
        let a = load("gen.yaml", &text);
        prop_assert!(!a.has_errors(), "generated config invalid: {:?}\n{}", errors(&a), text);
        let written = a.config().to_yaml();
        let b = load("gen.yaml", &written);
        prop_assert!(!b.has_errors(), "to_yaml output invalid: {:?}\n{}", errors(&b), written);
        prop_assert_eq!(a.config(), b.config(), "\n--- input\n{}\n--- written\n{}", text, written);
        // Nothing was dropped on the way.
        let count = |l: &Loaded| (
            l.config().virtual_services().len(),
            l.config().destination_rules().len(),
            l.config().service_entries().len(),
        );
        prop_assert_eq!(count(&a), count(&b));
        prop_assert_eq!(text.matches("\nkind:").count() + usize::from(text.starts_with("kind:")),
            count(&a).0 + count(&a).1 + count(&a).2);
    }
}

// ---------------------------------------------------------------------------------------------
// Value types.
// ---------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn any_millisecond_duration_formats_and_parses_back(ms in 1u64..=u64::MAX / 1_000_000_000) {
        let d = Duration::from_millis(ms).expect("non-zero");
        let text = d.to_string();
        let back: Duration = text.parse().expect("own output parses");
        prop_assert_eq!(back, d);
        prop_assert_eq!(back.as_std(), std::time::Duration::from_millis(ms));
    }

    #[test]
    fn go_duration_grammar_never_panics(input in "[-+0-9.a-zµμ ]{0,24}") {
        let _ = mesh_model::duration::parse_go(&input);
        let _ = Duration::parse_istio(&input);
        let _ = Duration::parse_unbounded(&input);
        let _ = Duration::parse_istio_seconds(&input);
    }

    #[test]
    fn go_duration_arbitrary_text_never_panics(input in any::<String>()) {
        let _ = Duration::parse_istio(&input);
    }

    #[test]
    fn accepted_durations_are_whole_ms(input in "[0-9]{1,6}(\\.[0-9]{1,4})?(h|m|s|ms|us|ns)") {
        if let Ok(d) = Duration::parse_istio(&input) {
            prop_assert!(d.as_std().as_millis() >= 1);
            prop_assert_eq!(d.as_std().subsec_nanos() % 1_000_000, 0);
            prop_assert_eq!(d.to_string().parse::<Duration>().ok(), Some(d));
        }
    }

    #[test]
    fn percentages_round_trip_and_stay_in_range(v in -1000.0f64..1000.0) {
        match Percentage::from_value(v) {
            Ok(p) => {
                prop_assert!((0.0..=100.0).contains(&v));
                prop_assert!(p.per_million() <= 1_000_000);
                prop_assert_eq!(Percentage::from_value(p.value()).ok(), Some(p));
                // Istio truncates to parts per million.
                prop_assert!(f64::from(p.per_million()) <= v.mul_add(10_000.0, 1e-6));
            }
            Err(_) => prop_assert!(!(0.0..=100.0).contains(&v)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The loader never panics.
// ---------------------------------------------------------------------------------------------

fn fixture_texts() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for dir in ["valid", "invalid", "analysis"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("fixture dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "yaml")
                    && std::fs::metadata(p).is_ok_and(|m| m.len() < 20_000)
            })
            .collect();
        files.sort();
        out.extend(
            files
                .iter()
                .map(|p| std::fs::read_to_string(p).expect("read")),
        );
    }
    out
}

/// One edit of a text: delete, duplicate or replace a byte range, or insert YAML-ish tokens.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Duplicate(usize, usize),
    Insert(usize, String),
    SwapLines(usize, usize),
}

fn apply(text: &str, edit: &Edit) -> String {
    let b = text.as_bytes();
    let at = |i: usize| if b.is_empty() { 0 } else { i % (b.len() + 1) };
    let bytes = match edit {
        Edit::Delete(i, len) => {
            let i = at(*i);
            let j = (i + len).min(b.len());
            [&b[..i], &b[j..]].concat()
        }
        Edit::Duplicate(i, len) => {
            let i = at(*i);
            let j = (i + len).min(b.len());
            [&b[..j], &b[i..j], &b[j..]].concat()
        }
        Edit::Insert(i, s) => {
            let i = at(*i);
            [&b[..i], s.as_bytes(), &b[i..]].concat()
        }
        Edit::SwapLines(x, y) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(x % n, y % n);
            }
            return lines.join("\n");
        }
    };
    String::from_utf8_lossy(&bytes).into_owned()
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop::sample::select(vec![
        "\n",
        "- ",
        ": ",
        "{",
        "}",
        "[",
        "]",
        "---\n",
        "*a",
        "&a ",
        "~",
        "null",
        "-1",
        "1e400",
        "\"",
        "'",
        "  ",
        "\t",
        "%",
        "!!binary ",
        "? ",
        "|\n",
        "99999999999999999999",
        "regex: \"(\"",
        "kind: List\nitems:\n- ",
        "http:\n",
        "route:\n",
        "0.0000001",
    ]);
    prop_oneof![
        (any::<usize>(), 0usize..64).prop_map(|(i, l)| Edit::Delete(i, l)),
        (any::<usize>(), 0usize..64).prop_map(|(i, l)| Edit::Duplicate(i, l)),
        (any::<usize>(), token).prop_map(|(i, t)| Edit::Insert(i, t.to_owned())),
        (any::<usize>(), any::<usize>()).prop_map(|(x, y)| Edit::SwapLines(x, y)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn load_str_never_panics_on_yamlish_text(
        text in "(([a-zA-Z]{1,8}|-|\\*|&|\\{|\\}|\\[|\\]|:|,|'|\"|[0-9.]{1,4}| |\n|  |---\n|kind: VirtualService\n|apiVersion: networking.istio.io/v1\n|spec:\n|http:\n|route:\n)){0,80}"
    ) {
        let l = load_str("fuzz.yaml", &text);
        // Every diagnostic renders, and lines stay within the text (YAML breaks lines at
        // `\r` too).
        let lines = text.matches(['\n', '\r']).count() as u32 + 1;
        for d in l.diagnostics() {
            let _ = d.to_string();
            prop_assert!(d.line().is_none_or(|x| x >= 1 && x <= lines + 1), "{d}");
        }
    }

    #[test]
    fn load_str_never_panics_on_mutated_fixtures(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        thread_local! {
            static TEXTS: Vec<String> = fixture_texts();
        }
        let text = TEXTS.with(|t| pick.get(t).clone());
        let mutated = edits.iter().fold(text, |t, e| apply(&t, e));
        let l = load_str("mutated.yaml", &mutated);
        for d in l.diagnostics() {
            let _ = d.to_string();
        }
        // Whatever loaded writes out and loads again without errors (the cross-resource
        // analysis is left out: its findings do not keep resources out of the configuration).
        let again = load("mutated.yaml", &l.config().to_yaml());
        prop_assert!(!again.has_errors(), "{:?}\n{}", errors(&again), l.config().to_yaml());
    }
}

/// Found by `load_str_never_panics_on_mutated_fixtures`: an abort without an error type is only a
/// warning, and must not come back out as an invalid empty `fault: {}`.
#[test]
fn abort_without_error_type_does_not_write_an_empty_fault() {
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - fault:\n      abort:\n        percentage: {value: 10}\n    route:\n    - destination: {host: r}\n";
    let a = load("a.yaml", text);
    assert!(!a.has_errors(), "{:?}", errors(&a));
    assert_eq!(a.warnings().count(), 1);
    assert!(a.config().virtual_services()[0].http()[0].fault().is_none());
    let b = load("a.yaml", &a.config().to_yaml());
    assert!(!b.has_errors(), "{:?}", errors(&b));
    assert_eq!(a.config(), b.config());
}
