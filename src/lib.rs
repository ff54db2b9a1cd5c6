//! partnercenter-exporter: a Prometheus exporter for Microsoft Partner Center (CSP)
//! service costs.
//!
//! It signs in to Azure AD, fetches each monitored customer's `MostRecent`
//! service-costs summary in the background, and serves the pre-tax, tax and
//! after-tax amounts per customer and invoice type on `/metrics`. Polling is
//! decoupled from scraping on purpose: the data changes a few times a day, a full
//! poll of a large partner takes minutes under Partner Center's rate limits, and
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
//! - [`retry`]: the backoff policy and `Retry-After` parsing shared by both clients.
//! - [`model`]: the wire types and the tolerant body parsers.
//! - [`usage_records`]: the wire types and parser of the customers' usage records.
//! - [`poller`]: the background poll loop; builds a complete new snapshot per poll
//!   and swaps it in; `poll_once` for tests.
//! - [`snapshot`]: the snapshot type and its atomic cache file.
//! - [`metrics`]: self-metrics in the exporter's own registry, and the exposition of
//!   the snapshot, encoded (and gzipped) once per poll.
//! - [`server`]: the HTTP endpoints on bare hyper, with graceful shutdown.
//! - [`web_config`]: the exporter-toolkit web config file: TLS and basic auth.
//! - [`app`]: start-up wiring and lifecycle ([`app::Application`]).
//! - [`logging`]: logfmt and JSON log output.
//! - [`simulator`]: a faithful fake of Azure AD and Partner Center, for `--demo`
//!   and the tests.

pub mod app;
pub mod auth;
pub mod client;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod poller;
pub mod retry;
pub mod server;
pub mod simulator;
pub mod snapshot;
pub mod usage_records;
pub mod web_config;

/// Installs the process-wide TLS crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
