//! partnercenter-exporter: a Prometheus exporter for Microsoft Partner Center (CSP)
//! costs.
//!
//! It signs in to Azure AD and runs collectors in the background, each on its own
//! schedule: each monitored customer's `MostRecent` service costs (`servicecosts`),
//! and every customer's estimated usage of the current month against its Partner
//! Center budget (`usage`). It serves the last results on `/metrics`. Polling is
//! decoupled from scraping on purpose: the data changes a few times a day, a full
//! run over a large partner takes minutes under Partner Center's rate limits, and
//! scrapes must stay fast.
//!
//! # Layout
//!
//! - [`config`]: flags, environment and YAML file, validated once into a typed
//!   [`config::Config`]; reads the secret files.
//! - [`auth`]: Azure AD sign-in; caches and renews the access token, persists the
//!   rotated refresh token, latches errors that need an operator.
//! - [`client`]: the Partner Center REST client: rate limit, retries with
//!   `Retry-After`, paging, bounded bodies.
//! - [`http`]: outbound HTTP shared by both clients: typed transport errors,
//!   bounded body reads, the backoff policy and `Retry-After` parsing.
//! - [`model`]: the wire types and the tolerant body parsers.
//! - [`usage_records`]: the wire types and parser of the customers' usage records.
//! - [`collectors`]: the Collector seam and its scheduler; one file per collector
//!   (`servicecosts`, `usage`), the shared customer discovery, and the published
//!   state (one pre-encoded exposition per part).
//! - [`snapshot`]: parts, the keep-last-good merge, and the atomic cache file.
//! - [`metrics`]: self-metrics in the exporter's own registry, and the encoding of
//!   the parts, each encoded (and gzipped) once per change.
//! - [`memory`]: the allocation policy of large buffers.
//! - [`server`]: the HTTP endpoints on bare hyper, with graceful shutdown.
//! - [`web_config`]: the exporter-toolkit web config file (TLS, basic auth,
//!   headers); re-exported from the `crates/web-config` crate of the workspace.
//! - [`app`]: start-up wiring and lifecycle ([`app::Application`]).
//! - [`logging`]: logfmt and JSON log output.
//! - [`simulator`]: a faithful fake of Azure AD and Partner Center, for `--demo`
//!   and the tests.

pub mod app;
pub mod auth;
pub mod client;
pub mod collectors;
pub mod config;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod server;
pub mod simulator;
pub mod snapshot;
pub mod usage_records;
pub use web_config;

/// Installs the process-wide TLS crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
