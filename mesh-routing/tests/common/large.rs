//! A large generated config: 1,000 virtual services × 10 routes mixing header, prefix and
//! regex matches (shared by tests/alloc.rs and benches/route.rs).
#![allow(unreachable_pub, dead_code)]

use std::fmt::Write;

/// Number of virtual services.
pub const HOSTS: usize = 1000;
/// Routes per virtual service.
pub const ROUTES: usize = 10;

/// The YAML: host `svc-{i}`; route `j` matches header `x-user: user-{j}` (j % 3 == 0),
/// prefix `/api/v{j}/` (j % 3 == 1) or regex `/items/[0-9]+/r{j}` (j % 3 == 2). No catch-all,
/// so unmatched requests get 404 NR.
pub fn yaml() -> String {
    let mut out = String::new();
    for i in 0..HOSTS {
        let _ = write!(
            out,
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{i}, namespace: default}}\nspec:\n  hosts: [svc-{i}]\n  http:\n"
        );
        for j in 0..ROUTES {
            let m = match j % 3 {
                0 => format!("{{headers: {{x-user: {{exact: user-{j}}}}}}}"),
                1 => format!("{{uri: {{prefix: /api/v{j}/}}}}"),
                _ => format!("{{uri: {{regex: \"/items/[0-9]+/r{j}\"}}}}"),
            };
            let _ = write!(
                out,
                "  - match: [{m}]\n    route: [{{destination: {{host: svc-{i}, port: {{number: 8080}}}}}}]\n"
            );
        }
    }
    out
}
