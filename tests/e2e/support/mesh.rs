//! The mesh around an inner client: hyper-util's legacy client, the mesh-owned connector
//! ([`MeshClient`]), or any other, with the builder options the tests vary.

use mesh_resilience::RetryBudget;
use mesh_tower::body::ReplayBody;
use mesh_tower::client::{MeshClient, MeshClientBuilder};
use mesh_tower::{ClientContext, Mesh, MeshHandle, MeshLayer};
use tower::Layer;

use super::requests::Body;
use super::yaml::load;

/// The inner client: hyper-util's legacy client, as the mesh drives it.
pub(crate) type Legacy = mesh_tower::client::LegacyClient<ReplayBody<Body>>;

/// The legacy client wrapped in the mesh.
pub(crate) type Client = Mesh<Legacy>;

/// The mesh-owned connector wrapped in the mesh.
pub(crate) type ConnectorClient = Mesh<MeshClient<ReplayBody<Body>>>;

/// What a test sets on the [`MeshLayer`] builder; anything unset keeps the builder's default.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct MeshOptions {
    client: Option<ClientContext>,
    seed: Option<u64>,
    retry_budget: Option<RetryBudget>,
    replay_cap: Option<usize>,
    attempt_counts: bool,
    max_concurrent_mirrors: Option<usize>,
}

impl MeshOptions {
    /// The builder's defaults.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The reliability tests' mesh (`hostile`, `exactly`, `load`...): client namespace
    /// `default`, seed 17, `x-envoy-attempt-count` on requests and responses.
    pub(crate) fn reliability() -> Self {
        Self::new()
            .client(ClientContext::new("default"))
            .seed(17)
            .attempt_counts(true)
    }

    /// The traffic tests' mesh (`mesh`, `retry_after_ejection`): a client workload in
    /// namespace `default` labelled `app: e2e`, `seed`, `x-envoy-attempt-count` on requests and
    /// responses.
    pub(crate) fn traffic(seed: u64) -> Self {
        Self::new()
            .client(ClientContext::new("default").with_label("app", "e2e"))
            .seed(seed)
            .attempt_counts(true)
    }

    /// The calling workload.
    pub(crate) fn client(mut self, client: ClientContext) -> Self {
        self.client = Some(client);
        self
    }

    /// The seed of every random roll.
    pub(crate) fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// A retry budget for clusters whose DestinationRule sets none.
    pub(crate) fn retry_budget(mut self, budget: Option<RetryBudget>) -> Self {
        self.retry_budget = budget;
        self
    }

    /// How many request-body bytes are kept for retries and mirrors.
    pub(crate) fn replay_cap(mut self, bytes: usize) -> Self {
        self.replay_cap = Some(bytes);
        self
    }

    /// Whether `x-envoy-attempt-count` is sent on requests and added to responses (`false`:
    /// the builder's defaults, on requests only).
    pub(crate) fn attempt_counts(mut self, on: bool) -> Self {
        self.attempt_counts = on;
        self
    }

    /// Mirror copies in flight at most.
    pub(crate) fn max_concurrent_mirrors(mut self, n: usize) -> Self {
        self.max_concurrent_mirrors = Some(n);
        self
    }

    /// The layer for `cfg`, which must compile.
    pub(crate) fn layer(self, cfg: mesh_model::MeshConfig) -> MeshLayer {
        let mut builder = MeshLayer::builder()
            .config(cfg)
            .retry_budget(self.retry_budget);
        if let Some(client) = self.client {
            builder = builder.client(client);
        }
        if let Some(seed) = self.seed {
            builder = builder.seed(seed);
        }
        if let Some(cap) = self.replay_cap {
            builder = builder.replay_cap(cap);
        }
        if self.attempt_counts {
            builder = builder
                .attempt_count_header(true)
                .attempt_count_in_response(true);
        }
        if let Some(n) = self.max_concurrent_mirrors {
            builder = builder.max_concurrent_mirrors(n);
        }
        builder.build().expect("the config compiles")
    }

    /// The mesh for `cfg` around `inner`, and its handle.
    pub(crate) fn build_around<S>(
        self,
        cfg: mesh_model::MeshConfig,
        inner: S,
    ) -> (Mesh<S>, MeshHandle) {
        let layer = self.layer(cfg);
        (layer.layer(inner), layer.handle())
    }

    /// The mesh for `cfg` around hyper-util's legacy client, and its handle.
    pub(crate) fn build(self, cfg: mesh_model::MeshConfig) -> (Client, MeshHandle) {
        self.build_around(cfg, mesh_tower::client::legacy_client())
    }

    /// The mesh for `cfg` around the mesh-owned connector made by `connector`, and its handle.
    pub(crate) fn build_connector(
        self,
        cfg: mesh_model::MeshConfig,
        connector: MeshClientBuilder,
    ) -> (ConnectorClient, MeshHandle) {
        let layer = self.layer(cfg);
        let client = connector.build_for(&layer);
        (layer.layer(client), layer.handle())
    }
}

/// The reliability tests' mesh ([`MeshOptions::reliability`]) for `cfg` around the legacy
/// client.
pub(crate) fn mesh(cfg: mesh_model::MeshConfig) -> (Client, MeshHandle) {
    MeshOptions::reliability().build(cfg)
}

/// The connector tests' mesh (seed 7, the builder's defaults otherwise) for the documents
/// `docs`, around the [`MeshClient`] that `connector` makes.
pub(crate) fn connector_mesh(
    docs: &[&str],
    connector: MeshClientBuilder,
) -> (ConnectorClient, MeshHandle) {
    MeshOptions::new()
        .seed(7)
        .build_connector(load(docs), connector)
}
