//! A faithful fake of Azure AD's token endpoints and the Partner Center REST API,
//! served on loopback, for `--demo` mode and for every test.
//!
//! This crate owns everything the fake server does: the AAD v1 and v2 token
//! endpoints (`/{tenant}/oauth2/token`, `/{tenant}/oauth2/v2.0/token`), the legacy
//! `generatetoken` exchange, customer discovery (`GET /v1/customers`, paged with
//! `MS-ContinuationToken`), the service-costs summary
//! (`GET /v1/customers/{id}/servicecosts/{period}`) and its line items, the usage
//! records of all customers (`GET /v1/customers/usagerecords`), the partner's
//! invoices and balances (`GET /v1/invoices`, `/v1/invoices/summaries`), the
//! deterministic synthetic data behind them, the fault-injection [`Knobs`] and the
//! request counters ([`Stats`], [`LoggedRequest`]). Behaviour follows
//! `docs/partner-center.md` (authentication, service costs, discovery, REST
//! conventions, throttling, usage records, invoices, line items).
//!
//! "Partner Center API routes" below means customers, servicecosts, line items,
//! usagerecords and invoices: throttling, the error rate and the in-flight count apply to them
//! only. `generatetoken` is an authentication route; like the token endpoints it is
//! only subject to latency. Everything is in memory; no lock is held across an
//! `.await`.
//!
//! This file holds the [`Simulator`] and its configuration; the rest lives in:
//!
//! - `knobs`: the fault-injection [`Knobs`] and [`TokenFault`];
//! - `state`: what the server shares between requests ([`Stats`], the request log,
//!   the customers);
//! - `tokens`: the access and refresh tokens issued, and the bearer check of
//!   Partner Center API requests;
//! - `server`: the listener, the per-request bookkeeping (latency, in-flight
//!   count, Partner Center headers) and the responses every route builds
//!   (JSON, Partner Center errors, throttling, the error rate);
//! - `routes`: one module per service (AAD, `generatetoken`, customers,
//!   servicecosts, line items, usage records, invoices) and the dispatch to them ([`Endpoint`]);
//! - `synthetic`: the deterministic synthetic customers, service costs and usage
//!   records ([`SimCustomer`], [`SimCosts`], [`SimDetail`]);
//! - `codec`: how values are read and written on the wire (forms, dates,
//!   amounts);
//! - `util`: the generator, the lock helper and small header helpers.

mod codec;
mod knobs;
mod routes;
mod server;
mod state;
mod synthetic;
#[cfg(test)]
mod test_util;
mod tokens;
mod util;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use knobs::{Knobs, TokenFault};
pub use routes::devicecode::{DeviceCodeKnobs, DeviceOutcome};
pub use routes::invoices::SimInvoice;
pub use routes::lineitems::MANY_SUBSCRIPTIONS;
pub use routes::Endpoint;
pub use state::{LoggedRequest, Stats};
pub use synthetic::{SimCosts, SimCustomer, SimDetail};

use state::Shared;
use synthetic::{Entry, Period};
use util::lock;

/// How the simulator is set up; see [`Simulator::start`].
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Number of synthetic customers (the documented customer is the first).
    pub customers: usize,
    /// Seed of the deterministic synthetic data.
    pub seed: u64,
    /// Lifetime of issued access tokens (also settable later through [`Knobs`]).
    pub access_token_lifetime: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            customers: 25,
            seed: 1,
            access_token_lifetime: Duration::from_secs(3600),
        }
    }
}

/// What a client needs to sign in to the simulator. The secrets are random per
/// simulator so that leak tests can search for them.
#[derive(Clone)]
pub struct Credentials {
    pub tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    /// The initial refresh token (as if obtained through the one-time consent).
    pub refresh_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

/// The running fake server. Dropping it or calling [`Simulator::shutdown`] stops it.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Generates the synthetic data and starts serving on `127.0.0.1:0`.
    pub async fn start(config: SimulatorConfig) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&config));
        let task = tokio::spawn(server::serve(listener, Arc::clone(&shared)));
        Ok(Simulator {
            addr,
            shared,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Both the AAD authority and the Partner Center base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn credentials(&self) -> Credentials {
        self.shared.creds.clone()
    }

    pub fn knobs(&self) -> &Knobs {
        &self.shared.knobs
    }

    pub fn stats(&self) -> Stats {
        let mut stats = lock(&self.shared.stats).clone();
        stats.in_flight_max = self.shared.in_flight_max.load(Ordering::Relaxed);
        stats
    }

    /// The current customers in discovery order, with today's amounts.
    pub fn customers(&self) -> Vec<SimCustomer> {
        let period = Period::current();
        lock(&self.shared.directory)
            .customers
            .iter()
            .map(|entry| entry.current(&period))
            .collect()
    }

    /// Removes a customer (ids compare case-insensitively); false if unknown.
    pub fn remove_customer(&self, id: &str) -> bool {
        lock(&self.shared.directory).remove(&id.to_ascii_lowercase())
    }

    /// Adds a customer at the end of the discovery order, or replaces the one with
    /// the same id in place. Its costs are served as given.
    pub fn add_customer(&self, customer: SimCustomer) {
        lock(&self.shared.directory).upsert(Arc::new(Entry::fixed(customer)));
    }

    /// The records `GET /v1/customers/usagerecords` serves now, in order, with the
    /// records set by [`Knobs::set_usage_record`] and [`Knobs::set_usage_budget_null`]
    /// applied (not paging, a forced status or a given body). Amounts are the f64s
    /// that the served text, 20 fractional digits or not, reads back as.
    pub fn usage_records(&self) -> Vec<Value> {
        let knobs = self.shared.knobs.usage();
        self.shared
            .usage_records(knobs.budget_null, knobs.records)
            .into_iter()
            .map(|record| record.value)
            .collect()
    }

    /// Every document `GET /v1/invoices` serves now (amendments included), with its
    /// date: the documented ones and the synthetic monthly invoices.
    pub fn invoices(&self) -> Vec<SimInvoice> {
        routes::invoices::documents()
    }

    /// The customer whose line items name [`MANY_SUBSCRIPTIONS`] subscriptions.
    pub fn many_subscriptions_customer(&self) -> Option<String> {
        routes::lineitems::many_subscriptions_key(&lock(&self.shared.directory))
    }

    /// Every access and refresh token ever issued, the client secret and the password.
    pub fn issued_secrets(&self) -> Vec<String> {
        let mut secrets = lock(&self.shared.tokens).secrets.clone();
        secrets.push(self.shared.creds.client_secret.clone());
        secrets.push(self.shared.creds.password.clone());
        secrets
    }

    /// When each device code poll (a token request with the device code grant)
    /// arrived, in order: tests measure the client's gaps between polls.
    pub fn device_code_polls(&self) -> Vec<std::time::Instant> {
        lock(&self.shared.tokens).device.polls.clone()
    }

    /// From now on only the newest issued refresh token is accepted.
    pub fn revoke_refresh_tokens_except_latest(&self) {
        lock(&self.shared.tokens).revoke_refresh_except_latest();
    }

    /// Every access token issued so far is rejected with 401 from now on.
    pub fn expire_access_tokens(&self) {
        lock(&self.shared.tokens).expire_access();
    }

    /// The last 100,000 answered requests, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.shared.log).iter().cloned().collect()
    }

    /// Stops accepting, releases hanging requests and waits (briefly) for connections.
    pub async fn shutdown(mut self) {
        self.shared.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
