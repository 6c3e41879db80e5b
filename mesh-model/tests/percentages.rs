//! Istio's percentage fields resolved into parts per million, once, by the loader: fault
//! `percentage` beats the deprecated integer `percent` and is 0 % when both are absent; a mirror
//! without a percentage mirrors 100 %, an explicit 0 turns it off, and the deprecated integer
//! `mirrorPercent` counts only when `mirrorPercentage` is absent.

use mesh_model::{load_str, Percentage};

fn route(http: &str) -> mesh_model::HttpRoute {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\n\
         spec:\n  hosts: [r]\n  http:\n  - {http}\n"
    );
    let loaded = load_str("p.yaml", &yaml);
    assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics());
    loaded.config().virtual_services()[0].http()[0].clone()
}

#[test]
fn fault_percentages() {
    // (fault yaml, delay ppm)
    let cases = [
        (
            "{delay: {fixedDelay: 1s, percentage: {value: 12.5}, percent: 90}}",
            125_000,
        ),
        ("{delay: {fixedDelay: 1s, percent: 90}}", 900_000),
        ("{delay: {fixedDelay: 1s}}", 0),
        ("{delay: {fixedDelay: 1s, percentage: {value: 0.0001}}}", 1),
    ];
    for (fault, ppm) in cases {
        let r = route(&format!(
            "fault: {fault}\n    route: [{{destination: {{host: r}}}}]"
        ));
        let delay = r.fault().and_then(|f| f.delay()).expect(fault);
        assert_eq!(delay.percentage().per_million(), ppm, "{fault}");
    }
}

#[test]
fn mirror_percentages() {
    // (mirror fields, ppm)
    let cases = [
        ("mirror: {host: m}", Percentage::HUNDRED.per_million()),
        ("mirror: {host: m}\n    mirrorPercentage: {value: 0.0}", 0),
        (
            "mirror: {host: m}\n    mirrorPercentage: {value: 0.0}\n    mirrorPercent: 50",
            0,
        ),
        (
            "mirror: {host: m}\n    mirrorPercentage: {value: 25.5}\n    mirrorPercent: 50",
            255_000,
        ),
        ("mirror: {host: m}\n    mirrorPercent: 50", 500_000),
        ("mirror: {host: m}\n    mirrorPercent: 0", 0),
        (
            "mirrors: [{destination: {host: m}}]",
            Percentage::HUNDRED.per_million(),
        ),
        (
            "mirrors: [{destination: {host: m}, percentage: {value: 5}}]",
            50_000,
        ),
    ];
    for (fields, ppm) in cases {
        let r = route(&format!(
            "{fields}\n    route: [{{destination: {{host: r}}}}]"
        ));
        assert_eq!(r.mirrors().len(), 1, "{fields}");
        assert_eq!(r.mirrors()[0].percentage().per_million(), ppm, "{fields}");
    }
}

#[test]
fn out_of_range_percentages_are_errors() {
    for bad in [
        "mirror: {host: m}\n    mirrorPercent: 200",
        "mirror: {host: m}\n    mirrorPercentage: {value: 101}",
        "fault: {abort: {httpStatus: 503, percentage: {value: 100.5}}}",
    ] {
        let yaml = format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\n\
             spec:\n  hosts: [r]\n  http:\n  - {bad}\n    route: [{{destination: {{host: r}}}}]\n"
        );
        assert!(load_str("p.yaml", &yaml).has_errors(), "{bad}");
    }
}
