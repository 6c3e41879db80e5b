//! `meshctl envoy`: the Envoy bootstrap istiod would give a sidecar for this configuration.
//!
//! The bootstrap translates the decisions of the route table the mesh runs
//! ([`RouteTable::compile`] for this client), so Envoy and the mesh cannot disagree on what
//! the configuration means:
//!
//! * [`routes`]: one virtual host per host and port of every VirtualService that won a host
//!   for this client, with the names the table answers to; the routes and match blocks the
//!   table kept for the client (selectors evaluated, nothing after the first catch-all); each
//!   destination's and mirror's cluster as the router picks it. The route-level details
//!   (matches, rewrites, header operations, retries, timeouts, faults) are translated from
//!   the VirtualService's `http[]` entry by [`details`].
//! * [`clusters`]: one cluster `outbound|<port>|<subset>|<fqdn>` per destination, mirror and
//!   service port, with the table's merged DestinationRule policy ([`RouteTable::policy`]:
//!   connection pool → circuit breakers, outlier detection, load balancer) and the table's
//!   endpoints for it; the policy's `tls` block becomes the cluster's upstream TLS transport
//!   socket ([`tls`]).
//! * [`listener`]: the listener, its HTTP filters and the bootstrap around them (istio-semantics.md,
//!   dataplane-semantics.md §9).
//!
//! It never reaches a cluster or DNS: hosts need a ServiceEntry with `resolution: STATIC`.
//! `ISTIO_MUTUAL` needs the workload's certificates (`--workload-certificates`); without them
//! such clusters are written in plaintext and a warning says so.

mod clusters;
mod details;
mod listener;
mod routes;
#[cfg(test)]
mod tests;
pub(crate) mod tls;

use std::net::SocketAddr;
use std::time::Duration as StdDuration;

use mesh_model::{MeshConfig, Percentage, VirtualService};
use mesh_routing::{ClientContext, ClusterId, RouteTable, VirtualServiceId};
use serde_json::{json, Value};

use crate::{EnvoyArgs, Failure, Format};

/// Where Envoy listens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Addresses {
    /// The outbound listener.
    pub(crate) listen: SocketAddr,
    /// The admin interface.
    pub(crate) admin: SocketAddr,
}

/// The bootstrap and what could not be translated.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    /// The Envoy bootstrap, as JSON.
    pub(crate) value: Value,
    /// Settings left out, one sentence each.
    pub(crate) warnings: Vec<String>,
}

/// Which retry budget a cluster gets when its DestinationRule sets none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum BudgetMode {
    /// None, exactly as istiod writes it (only `max_retries`, 2^32 - 1 by default), and as
    /// the mesh runs by default.
    #[default]
    Istio,
    /// Envoy's default budget (20% of active requests, at least 3 retries), as a mesh built
    /// with `MeshBuilder::retry_budget(Some(RetryBudget::default()))` runs.
    Envoy,
}

/// Runs `meshctl envoy`.
pub(crate) fn run(a: &EnvoyArgs) -> Result<u8, Failure> {
    let cfg = crate::sources::load_files_for_routing(&a.config.files, a.config.quiet)?;
    let client = crate::request::client_context(&a.namespace, &a.source_labels, None)?;
    let addrs = Addresses {
        listen: a.listen,
        admin: a.admin,
    };
    let budget = if a.retry_budget && !a.istio_exact {
        BudgetMode::Envoy
    } else {
        BudgetMode::Istio
    };
    let tls = tls::options(
        a.workload_certificates.as_deref(),
        &a.trust_domain,
        !a.no_verify_trust_domain,
        a.system_roots.as_deref(),
    )
    .map_err(Failure::usage)?;
    let boot = bootstrap_with(&cfg, &client, addrs, budget, &tls).map_err(Failure::config)?;
    if !a.config.quiet {
        for w in &boot.warnings {
            crate::err_line(&format!("meshctl envoy: warning: {w}"));
        }
    }
    let text = match a.format {
        Format::Text => serde_yaml::to_string(&boot.value)
            .map_err(|e| Failure::usage(format!("cannot write YAML: {e}")))?,
        Format::Json => crate::output::json_text(&boot.value)?,
    };
    match &a.output {
        Some(path) => {
            crate::output::write_atomically(path, &text)
                .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
            if !a.config.quiet {
                crate::err_line(&format!("meshctl envoy: wrote {}", path.display()));
            }
        }
        None => crate::out(&text)?,
    }
    Ok(crate::exit::OK)
}

/// Builds the bootstrap for `cfg` as seen by `client`: from the route table the mesh compiles
/// for that client; `tls` says where the certificates of `ISTIO_MUTUAL` clusters are.
pub(crate) fn bootstrap_with(
    cfg: &MeshConfig,
    client: &ClientContext,
    addrs: Addresses,
    budget: BudgetMode,
    tls: &tls::TlsOptions,
) -> Result<Bootstrap, String> {
    let table = RouteTable::compile(cfg, client)
        .map_err(|e| format!("the route table cannot be built: {e}"))?;
    let mut t = Translation {
        cfg,
        table: &table,
        services: clusters::Services::visible(cfg, client),
        clusters: Vec::new(),
        warnings: Vec::new(),
        uses_fault: false,
        tls,
    };
    let virtual_hosts = routes::virtual_hosts(&mut t)?;
    let clusters = clusters::clusters(&mut t, budget)?;
    let value = listener::bootstrap(addrs, virtual_hosts, clusters, t.uses_fault);
    Ok(Bootstrap {
        value,
        warnings: t.warnings,
    })
}

/// What the translation reads and collects.
struct Translation<'a> {
    cfg: &'a MeshConfig,
    /// The table the mesh runs for this client: every decision comes from it.
    table: &'a RouteTable,
    /// The hosts ServiceEntries declare to this client, with their ports.
    services: clusters::Services<'a>,
    /// Every cluster a route, a mirror or a service names (unknown subsets left out).
    clusters: Vec<ClusterId>,
    /// Settings left out, one sentence each.
    warnings: Vec<String>,
    /// Whether a route injects faults (the fault filter is needed).
    uses_fault: bool,
    /// Where TLS credentials come from.
    tls: &'a tls::TlsOptions,
}

impl<'a> Translation<'a> {
    /// The VirtualService behind a virtual host of the table.
    fn virtual_service(&self, id: VirtualServiceId<'_>) -> Result<&'a VirtualService, String> {
        self.cfg
            .virtual_services()
            .iter()
            .find(|vs| vs.meta().namespace() == id.namespace && vs.meta().name() == id.name)
            .ok_or_else(|| format!("VirtualService {id} is in the route table but not in the configuration (a bug)"))
    }

    /// Records a cluster to emit.
    fn use_cluster(&mut self, cluster: ClusterId) {
        if !self.clusters.contains(&cluster) {
            self.clusters.push(cluster);
        }
    }
}

/// A duration in Envoy's JSON form (`"1.5s"`).
pub(crate) fn dur(d: StdDuration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{}s", d.as_secs())
    } else {
        let frac = format!("{nanos:09}");
        format!("{}.{}s", d.as_secs(), frac.trim_end_matches('0'))
    }
}

/// A percentage as Envoy's `FractionalPercent` (per million).
fn fraction(p: Percentage) -> Value {
    json!({"numerator": p.per_million(), "denominator": "MILLION"})
}
