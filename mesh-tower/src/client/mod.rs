//! Ready-made inner clients for the mesh.
//!
//! The mesh layers are written against any
//! `tower::Service<http::Request<B>, Response = http::Response<RB>>`. Two
//! clients fit after a little help:
//!
//! - **hyper-util** (feature `hyper-util`): `hyper_util::client::legacy::Client`
//!   is already such a service. [`legacy_client`] builds one with settings
//!   suited to mesh traffic (connect timeout, `TCP_NODELAY`, idle pool timer).
//! - **reqwest** (feature `reqwest`): [`ReqwestService`] turns a
//!   `reqwest::Client` into a `Service<http::Request<B>>` answering
//!   `http::Response<reqwest::Body>`. [`reqwest_client_builder`] switches off
//!   what would compete with the mesh: reqwest's own retries, redirects and
//!   proxies.
//!
//! Neither needs a TLS library: both features build plain HTTP/1 and HTTP/2
//! (prior knowledge) only. Enable TLS on reqwest or use a TLS connector with
//! hyper-util yourself if you need it.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(all(feature = "hyper-util", feature = "reqwest"))]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use mesh_tower::client::{legacy_client, ReqwestService};
//! use tower::ServiceExt;
//!
//! let hyper = legacy_client::<Full<Bytes>>();
//! let res = hyper.request(http::Request::get("http://127.0.0.1:8080/").body(Full::default())?).await?;
//! println!("{}", res.status());
//!
//! let reqwest = ReqwestService::with_mesh_defaults()?;
//! let res = reqwest
//!     .oneshot(http::Request::get("http://127.0.0.1:8080/").body(Full::<Bytes>::default())?)
//!     .await?;
//! println!("{}", res.status());
//! # Ok(()) }
//! ```

#[cfg(feature = "hyper-util")]
mod hyper;
#[cfg(feature = "mesh-client")]
mod mesh;
#[cfg(feature = "reqwest")]
mod reqwest;

#[cfg(feature = "hyper-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper-util")))]
pub use self::hyper::{
    http_connector, legacy_builder, legacy_client, LegacyClient, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_POOL_IDLE_TIMEOUT,
};
#[cfg(feature = "mesh-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "mesh-client")))]
pub use self::mesh::{
    ConnectError, MeshClient, MeshClientBody, MeshClientBuilder, DEFAULT_TRUST_DOMAIN,
    DEFAULT_WORKLOAD_CERTIFICATES,
};
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use self::reqwest::{reqwest_client_builder, ReqwestFuture, ReqwestService};

#[cfg(all(test, feature = "hyper-util", feature = "reqwest"))]
mod tests;
