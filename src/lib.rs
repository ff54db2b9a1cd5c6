//! partnercenter-exporter: a Prometheus exporter for Microsoft Partner Center (CSP)
//! costs.
//!
//! It signs in to Azure AD and runs collectors in the background, each on its own
//! schedule: each monitored customer's `MostRecent` service costs (`servicecosts`),
//! every customer's estimated usage of the current month against its Partner
//! Center budget (`usage`), the partner's invoices and unpaid balance per currency
//! (`invoices`), and, opt-in, each customer's costs per subscription from its
//! line items (`lineitems`). It serves the last results on `/metrics`. Polling is
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
//! - [`partner_center`]: the Partner Center REST client (rate limit, concurrency
//!   bound, retries with `Retry-After`, paging, bounded bodies), the wire types and
//!   tolerant parsers of each endpoint (service costs, customers, usage records,
//!   invoices and summaries, line items), and Partner Center's timestamps.
//! - [`http`]: outbound HTTP shared by both clients: typed transport errors,
//!   bounded body reads, the backoff policy and `Retry-After` parsing.
//! - [`collectors`]: the Collector seam and its scheduler; one file per collector
//!   (`servicecosts`, `usage`, `invoices`, `lineitems`), the shared customer
//!   discovery, and the published state (one pre-encoded exposition per part).
//! - [`snapshot`]: parts, the keep-last-good merge, and the atomic cache file.
//! - [`exposition`]: the text format of the parts, each encoded (and gzipped)
//!   once per change.
//! - [`telemetry`]: the exporter's own metrics, in its own registry, and the label
//!   values of fixed sets.
//! - [`memory`]: the allocation policy of large buffers.
//! - [`server`]: the HTTP endpoints on bare hyper, with graceful shutdown.
//! - [`web_config`]: the exporter-toolkit web config file (TLS, basic auth,
//!   headers); re-exported from the `crates/web-config` crate of the workspace.
//! - [`onboarding`]: the `login` (device code sign-in) and `check` subcommands.
//! - [`app`]: start-up wiring and lifecycle ([`app::Application`]).
//! - [`logging`]: logfmt and JSON log output.
//! - [`simulator`]: a faithful fake of Azure AD and Partner Center, for `--demo`
//!   and the tests; re-exported from the `crates/simulator` crate of the workspace.
//!
//! The workspace's other crate, `crates/testkit` (dev-only), holds the test setup
//! that the integration tests and the benchmark share: the `TestApp` builder, the
//! metrics parser, a real Prometheus, the test certificates.

pub mod app;
pub(crate) mod auth;
pub mod collectors;
pub mod config;
pub(crate) mod exposition;
pub mod http;
pub mod logging;
pub(crate) mod memory;
pub mod onboarding;
pub(crate) mod partner_center;
pub(crate) mod server;
pub use partnercenter_simulator as simulator;
pub mod snapshot;
pub(crate) mod telemetry;
pub use web_config;

/// Installs the process-wide TLS crypto provider (ring). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
