//! A faithful fake of Azure AD's token endpoints and the Partner Center REST API,
//! served on loopback, for `--demo` mode and for every test.
//!
//! This module owns everything the fake server does: the AAD v1 and v2 token
//! endpoints (`/{tenant}/oauth2/token`, `/{tenant}/oauth2/v2.0/token`), the legacy
//! `generatetoken` exchange, customer discovery (`GET /v1/customers`, paged with
//! `MS-ContinuationToken`), the service-costs summary
//! (`GET /v1/customers/{id}/servicecosts/{period}`) and the usage records of all
//! customers (`GET /v1/customers/usagerecords`), the deterministic synthetic
//! customers and usage records behind them, the fault-injection [`Knobs`] and the
//! request counters ([`Stats`], [`LoggedRequest`]). Behaviour follows
//! `docs/partner-center.md` (authentication, service costs, discovery, REST
//! conventions, throttling, usage records).
//!
//! "Partner Center API routes" below means customers, servicecosts and
//! usagerecords: throttling, the error rate and the in-flight count apply to them
//! only. `generatetoken` is an authentication route; like the token endpoints it is
//! only subject to latency. Everything is in memory; no lock is held across an
//! `.await`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The Partner Center resource (audience), docs/partner-center.md §1.
const PC_RESOURCE: &str = "https://api.partnercenter.microsoft.com";
/// The Partner Center resource app id, accepted as an audience too.
const PC_APP_ID: &str = "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd";
/// The old AAD Graph audience, accepted only by the legacy `/generatetoken`.
const AAD_GRAPH: &str = "https://graph.windows.net";
/// What a v2 scope without a resource prefix (e.g. `User.Read`) is issued for.
const MS_GRAPH: &str = "https://graph.microsoft.com";
/// The customer of the documented service-costs example (docs/partner-center.md §2).
const DOCUMENTED_ID: &str = "ae1d5b32-f9ff-4252-b2bf-40e21937a51a";

const FIXTURE_COSTS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/servicecosts-mostrecent.json"
));
const FIXTURE_403: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/error-403-no-relationship.json"
));
const FIXTURE_401_MFA: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/error-401-mfa.json"
));
const FIXTURE_429: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/throttled-429.json"
));

/// A body cut off in the middle of a number: what `set_malformed` serves.
const MALFORMED_BODY: &str =
    "{\"billingStartDate\": \"2015-12-12T00:00:00Z\", \"pretaxTotal\": 17.22, \
     \"details\": [{\"invoiceType\": \"Recurring\", \"summary\": {\"pretaxTotal\": 17.";

const MAX_FORM_BODY: usize = 64 * 1024;
const HUGE_BODY_BYTES: usize = 64 * 1024 * 1024;
const LOG_CAPACITY: usize = 100_000;
const DEFAULT_PAGE_SIZE_CAP: usize = 500;
const JSON_UTF8: &str = "application/json; charset=utf-8";
const BOM: &[u8] = b"\xEF\xBB\xBF";

type Body = UnsyncBoxBody<Bytes, Infallible>;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

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

/// One customer of the simulated partner.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCustomer {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub costs: SimCosts,
}

/// What the customer's `servicecosts/MostRecent` answers.
#[derive(Debug, Clone, PartialEq)]
pub enum SimCosts {
    /// The documented example body, verbatim (fixture `servicecosts-mostrecent.json`).
    Documented,
    /// 404: no service-costs data for this customer.
    NoData,
    /// A body in the documented shape with these details.
    Generated(Vec<SimDetail>),
}

/// One `details[]` entry; `afterTaxTotal` is `pretax + tax`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDetail {
    pub invoice_type: String,
    pub currency: String,
    pub pretax: f64,
    pub tax: f64,
    pub billing_start: String,
    pub billing_end: String,
}

/// Request counters (a copy; see [`Simulator::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests to the AAD token endpoints (v1 and v2).
    pub token: u64,
    /// Requests to `GET /v1/customers`.
    pub customers: u64,
    /// Requests to `.../servicecosts/{period}`.
    pub servicecosts: u64,
    /// Requests to `GET /v1/customers/usagerecords`.
    pub usagerecords: u64,
    /// Requests to `/generatetoken` and `/v3/generatetoken`.
    pub generatetoken: u64,
    /// 429 responses sent.
    pub throttled: u64,
    /// Every response sent, by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Largest number of concurrent Partner Center API requests observed.
    pub in_flight_max: u64,
}

/// Which route a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Token,
    Customers,
    ServiceCosts,
    UsageRecords,
    GenerateToken,
    Other,
}

impl Endpoint {
    /// Partner Center API routes: throttled, faulted and counted in flight.
    fn is_api(self) -> bool {
        matches!(
            self,
            Endpoint::Customers | Endpoint::ServiceCosts | Endpoint::UsageRecords
        )
    }
}

/// One answered request.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    pub endpoint: Endpoint,
    /// The path, without the query string.
    pub path: String,
    pub status: u16,
    /// The `MS-RequestId` header the client sent, if any.
    pub ms_request_id: Option<String>,
    /// When the request arrived.
    pub at: Instant,
}

/// A fault of the AAD token endpoints (all grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenFault {
    #[default]
    None,
    /// 503 with a non-JSON body, as a gateway in front of AAD would send.
    Down,
    /// 400 `invalid_grant`, AADSTS700082 (refresh token expired through inactivity).
    InvalidGrant,
    /// 400 `interaction_required`, AADSTS50076 (MFA required).
    InteractionRequired,
    /// 401 `invalid_client`, AADSTS7000215 (bad client secret).
    InvalidClient,
    /// 503 with the AAD error `temporarily_unavailable` (AADSTS90033) and `Retry-After: 1`.
    TemporarilyUnavailable,
}

// ---------------------------------------------------------------------------
// Knobs: fault injection
// ---------------------------------------------------------------------------

/// Fault injection, settable while the simulator runs.
pub struct Knobs {
    inner: Mutex<KnobState>,
}

struct KnobState {
    latency: Duration,
    page_size_cap: usize,
    next_link_without_v1: bool,
    rate: Option<Bucket>,
    throttle_next: u32,
    throttle_secs: u32,
    error_rate: f64,
    rng: SplitMix64,
    malformed: HashSet<String>,
    hang: HashSet<String>,
    huge: HashSet<String>,
    status: HashMap<String, u16>,
    status_all: Option<u16>,
    bodies: HashMap<String, Arc<str>>,
    extra_items: Arc<[Value]>,
    looping_pages: bool,
    loop_nonce: u64,
    bom: bool,
    token_fault: TokenFault,
    access_token_lifetime: Duration,
    token_expires_in: Option<Value>,
    token_refresh_token: Option<String>,
    usage: UsageKnobs,
}

/// The knobs of `GET /v1/customers/usagerecords`.
#[derive(Clone, Default)]
struct UsageKnobs {
    status: Option<u16>,
    page_size: Option<usize>,
    body: Option<Arc<str>>,
    budget_null: bool,
    /// Records served instead of the synthetic ones, by lower-case customer id;
    /// `Value::Null` is no record.
    records: BTreeMap<String, Value>,
}

/// A token bucket: `per_minute` requests a minute, holding 5 seconds' worth.
struct Bucket {
    per_minute: u32,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32) -> Self {
        let capacity = (f64::from(per_minute) / 12.0).max(1.0);
        Self {
            per_minute,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// Takes one token, or says how many whole seconds until one is available.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let rate = f64::from(self.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else if rate <= 0.0 {
            Err(60)
        } else {
            let secs = ((1.0 - self.tokens) / rate).ceil();
            Err((secs as u64).max(1))
        }
    }
}

/// A fault that applies to any Partner Center API request.
enum ApiFault {
    Throttle(u64),
    Unavailable,
}

/// The faults set for one customer's servicecosts.
#[derive(Default)]
struct CustomerFaults {
    hang: bool,
    status: Option<u16>,
    malformed: bool,
    huge: bool,
    body: Option<Arc<str>>,
}

fn set_flag(set: &mut HashSet<String>, customer_id: &str, on: bool) {
    let key = customer_id.to_ascii_lowercase();
    if on {
        set.insert(key);
    } else {
        set.remove(&key);
    }
}

impl Knobs {
    fn new(config: &SimulatorConfig) -> Self {
        Self {
            inner: Mutex::new(KnobState {
                latency: Duration::ZERO,
                page_size_cap: DEFAULT_PAGE_SIZE_CAP,
                next_link_without_v1: false,
                rate: None,
                throttle_next: 0,
                throttle_secs: 1,
                error_rate: 0.0,
                rng: SplitMix64(config.seed ^ 0x5EED_FA17),
                malformed: HashSet::new(),
                hang: HashSet::new(),
                huge: HashSet::new(),
                status: HashMap::new(),
                status_all: None,
                bodies: HashMap::new(),
                extra_items: Arc::from([]),
                looping_pages: false,
                loop_nonce: 0,
                bom: false,
                token_fault: TokenFault::None,
                access_token_lifetime: config.access_token_lifetime,
                token_expires_in: None,
                token_refresh_token: None,
                usage: UsageKnobs::default(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, KnobState> {
        lock(&self.inner)
    }

    /// Delay added to every request (token and Partner Center).
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Largest page of `GET /v1/customers` (default 500); 0 counts as 1.
    pub fn set_page_size_cap(&self, cap: usize) {
        self.state().page_size_cap = cap.max(1);
    }

    /// Next links as `customers?size=..&seekOperation=Next` instead of
    /// `/v1/customers?..` (and the usage records' likewise).
    pub fn set_next_link_without_v1(&self, on: bool) {
        self.state().next_link_without_v1 = on;
    }

    /// Requests per minute across the Partner Center API routes; `None` = unlimited.
    /// The bucket holds 5 seconds' worth (at least 1) and starts full.
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        self.state().rate = per_minute.map(Bucket::new);
    }

    /// The next `count` Partner Center API requests get 429 with `Retry-After: secs`.
    pub fn set_throttle_next(&self, count: u32, secs: u32) {
        let mut state = self.state();
        state.throttle_next = count;
        state.throttle_secs = secs;
    }

    /// Fraction (0..=1) of Partner Center API requests answered 503.
    pub fn set_error_rate(&self, rate: f64) {
        self.state().error_rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
    }

    /// Servicecosts of this customer answers 200 with a broken JSON body.
    pub fn set_malformed(&self, customer_id: &str, on: bool) {
        set_flag(&mut self.state().malformed, customer_id, on);
    }

    /// Servicecosts of this customer never answers (until shutdown).
    pub fn set_hang(&self, customer_id: &str, on: bool) {
        set_flag(&mut self.state().hang, customer_id, on);
    }

    /// Servicecosts of this customer answers 200 with a streamed, valid 64 MiB JSON body.
    pub fn set_huge_body(&self, customer_id: &str, on: bool) {
        set_flag(&mut self.state().huge, customer_id, on);
    }

    /// Forces the status of this customer's servicecosts (401 → MFA body, 403 → no
    /// relationship body, 429 → throttled body, others → Partner Center error body).
    pub fn set_status(&self, customer_id: &str, status: Option<u16>) {
        let key = customer_id.to_ascii_lowercase();
        let mut state = self.state();
        match status {
            Some(status) => state.status.insert(key, status),
            None => state.status.remove(&key),
        };
    }

    /// Forces the status of every customer's servicecosts, as [`Knobs::set_status`]
    /// does for one (a status set for one customer wins).
    pub fn set_status_all(&self, status: Option<u16>) {
        self.state().status_all = status;
    }

    /// Servicecosts of this customer answers 200 with exactly this body (`None`: the
    /// customer's own costs again), for bodies the synthetic data never has.
    pub fn set_service_costs_body(&self, customer_id: &str, body: Option<&str>) {
        let key = customer_id.to_ascii_lowercase();
        let mut state = self.state();
        match body {
            Some(body) => state.bodies.insert(key, Arc::from(body)),
            None => state.bodies.remove(&key),
        };
    }

    /// Items added, as given, at the end of every page of `GET /v1/customers`: items
    /// without an id, ids of the wrong type or case, customers listed twice.
    pub fn set_extra_customer_items(&self, items: Vec<Value>) {
        self.state().extra_items = Arc::from(items);
    }

    /// Every page of `GET /v1/customers` links to a next page that is the same page
    /// again, under a fresh continuation token each time: a list that never ends.
    pub fn set_looping_customer_pages(&self, on: bool) {
        self.state().looping_pages = on;
    }

    /// Prefixes every JSON body (token and Partner Center) with a UTF-8 BOM.
    pub fn set_bom(&self, on: bool) {
        self.state().bom = on;
    }

    /// Makes the AAD token endpoints fail.
    pub fn set_token_fault(&self, fault: TokenFault) {
        self.state().token_fault = fault;
    }

    /// Lifetime of access tokens issued from now on.
    pub fn set_access_token_lifetime(&self, lifetime: Duration) {
        self.state().access_token_lifetime = lifetime;
    }

    /// The `expires_in` that successful AAD token answers carry, as this JSON value
    /// (e.g. `18446744073709551615`, `1e19`, `-1`, `"0.5"`), in both endpoint
    /// versions, instead of the lifetime the token really has; `None` = the truth.
    pub fn set_token_expires_in(&self, value: Option<Value>) {
        self.state().token_expires_in = value;
    }

    /// The `refresh_token` that successful AAD token answers carry where they would
    /// rotate it (e.g. `""` or blanks), instead of a newly issued one; the refresh
    /// tokens issued before stay valid. `None` = a new token each time.
    pub fn set_token_refresh_token(&self, value: Option<String>) {
        self.state().token_refresh_token = value;
    }

    /// Answers every `GET /v1/customers/usagerecords` with this status and the body
    /// [`Knobs::set_status`] gives it (401 → MFA body, 403 → no relationship body,
    /// 429 → throttled body, others → Partner Center error body); `None` = the
    /// records again.
    pub fn set_usage_status(&self, status: Option<u16>) {
        self.state().usage.status = status;
    }

    /// Splits the usage records into pages of at most this many records (0 counts
    /// as 1), linked by `links.next` with an `MS-ContinuationToken` header as the
    /// customer list is; `None` = one collection without a next link, as documented.
    pub fn set_usage_page_size(&self, size: Option<usize>) {
        self.state().usage.page_size = size.map(|size| size.max(1));
    }

    /// `GET /v1/customers/usagerecords` answers 200 with exactly this body (`None`:
    /// the records again), for bodies the synthetic records never have.
    pub fn set_usage_body(&self, body: Option<String>) {
        self.state().usage.body = body.map(Arc::from);
    }

    /// Synthetic records without a budget carry `"amount": null` in their budget
    /// instead of leaving the key out (both mean "no budget").
    pub fn set_usage_budget_null(&self, on: bool) {
        self.state().usage.budget_null = on;
    }

    /// Serves this record for the customer (ids compare case-insensitively), as
    /// given, instead of its synthetic one: `Some(Value::Null)` = no record, `None` =
    /// the synthetic record again. Records set for ids that are no current
    /// customer's come after the customers' records, in id order.
    pub fn set_usage_record(&self, customer_id: &str, record: Option<Value>) {
        let key = customer_id.to_ascii_lowercase();
        let mut state = self.state();
        match record {
            Some(record) => state.usage.records.insert(key, record),
            None => state.usage.records.remove(&key),
        };
    }

    fn usage(&self) -> UsageKnobs {
        self.state().usage.clone()
    }

    fn latency(&self) -> Duration {
        self.state().latency
    }

    fn page_size_cap(&self) -> usize {
        self.state().page_size_cap
    }

    fn next_link_without_v1(&self) -> bool {
        self.state().next_link_without_v1
    }

    fn bom(&self) -> bool {
        self.state().bom
    }

    fn extra_customer_items(&self) -> Arc<[Value]> {
        Arc::clone(&self.state().extra_items)
    }

    /// A fresh number for a looping page's continuation token, if pages loop.
    fn loop_nonce(&self) -> Option<u64> {
        let mut state = self.state();
        state.looping_pages.then(|| {
            state.loop_nonce = state.loop_nonce.wrapping_add(1);
            state.loop_nonce
        })
    }

    fn token_fault(&self) -> TokenFault {
        self.state().token_fault
    }

    fn access_token_lifetime(&self) -> Duration {
        self.state().access_token_lifetime
    }

    fn token_expires_in(&self) -> Option<Value> {
        self.state().token_expires_in.clone()
    }

    fn token_refresh_token(&self) -> Option<String> {
        self.state().token_refresh_token.clone()
    }

    /// Decides whether this Partner Center API request is throttled or failed.
    fn api_fault(&self) -> Option<ApiFault> {
        let mut state = self.state();
        if state.throttle_next > 0 {
            state.throttle_next -= 1;
            return Some(ApiFault::Throttle(u64::from(state.throttle_secs)));
        }
        if let Some(bucket) = state.rate.as_mut() {
            if let Err(secs) = bucket.take(Instant::now()) {
                return Some(ApiFault::Throttle(secs));
            }
        }
        if state.error_rate > 0.0 && state.rng.next_f64() < state.error_rate {
            return Some(ApiFault::Unavailable);
        }
        None
    }

    fn customer_faults(&self, key: &str) -> CustomerFaults {
        let state = self.state();
        CustomerFaults {
            hang: state.hang.contains(key),
            status: state.status.get(key).copied().or(state.status_all),
            malformed: state.malformed.contains(key),
            huge: state.huge.contains(key),
            body: state.bodies.get(key).cloned(),
        }
    }
}

// ---------------------------------------------------------------------------
// Simulator
// ---------------------------------------------------------------------------

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
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
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
        let state = lock(&self.shared.state);
        state
            .customers
            .iter()
            .map(|entry| entry.current(&period))
            .collect()
    }

    /// Removes a customer (ids compare case-insensitively); false if unknown.
    pub fn remove_customer(&self, id: &str) -> bool {
        let key = id.to_ascii_lowercase();
        let mut state = lock(&self.shared.state);
        if state.by_id.remove(&key).is_none() {
            return false;
        }
        state.customers.retain(|entry| entry.key != key);
        true
    }

    /// Adds a customer at the end of the discovery order, or replaces the one with
    /// the same id in place. Its costs are served as given.
    pub fn add_customer(&self, customer: SimCustomer) {
        let entry = Arc::new(Entry::fixed(customer));
        let mut state = lock(&self.shared.state);
        if state
            .by_id
            .insert(entry.key.clone(), Arc::clone(&entry))
            .is_some()
        {
            if let Some(slot) = state.customers.iter_mut().find(|e| e.key == entry.key) {
                *slot = entry;
            }
        } else {
            state.customers.push(entry);
        }
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

    /// Every access and refresh token ever issued, the client secret and the password.
    pub fn issued_secrets(&self) -> Vec<String> {
        let mut secrets = lock(&self.shared.state).secrets.clone();
        secrets.push(self.shared.creds.client_secret.clone());
        secrets.push(self.shared.creds.password.clone());
        secrets
    }

    /// From now on only the newest issued refresh token is accepted.
    pub fn revoke_refresh_tokens_except_latest(&self) {
        let mut state = lock(&self.shared.state);
        state.refresh_cutoff = state.latest_refresh_seq;
    }

    /// Every access token issued so far is rejected with 401 from now on.
    pub fn expire_access_tokens(&self) {
        let mut state = lock(&self.shared.state);
        state.access_cutoff = state.next_seq;
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

// ---------------------------------------------------------------------------
// Shared state
// ---------------------------------------------------------------------------

struct Shared {
    creds: Credentials,
    knobs: Knobs,
    state: Mutex<State>,
    stats: Mutex<Stats>,
    log: Mutex<VecDeque<LoggedRequest>>,
    in_flight: AtomicU64,
    in_flight_max: AtomicU64,
    salt: u64,
    server_id: String,
    cancel: CancellationToken,
}

struct State {
    customers: Vec<Arc<Entry>>,
    by_id: HashMap<String, Arc<Entry>>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, u64>,
    next_seq: u64,
    access_cutoff: u64,
    refresh_cutoff: u64,
    latest_refresh_seq: u64,
    redeemed_codes: HashSet<String>,
    secrets: Vec<String>,
}

#[derive(Clone)]
struct AccessToken {
    seq: u64,
    expires_at: Instant,
    audience: String,
    app_only: bool,
    kind: TokenKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Aad,
    PartnerCenter,
}

enum AccessCheck {
    Valid(AccessToken),
    Expired,
    Unknown,
}

enum RefreshCheck {
    Valid,
    Revoked,
    Unknown,
}

/// Who is calling a Partner Center API route.
struct Principal {
    app_only: bool,
}

/// Decrements the in-flight counter when the request ends (or is cancelled).
struct InFlight<'a>(&'a AtomicU64);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.in_flight_max.fetch_max(now, Ordering::SeqCst);
        InFlight(&shared.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn new(config: &SimulatorConfig) -> Self {
        let entries = synthetic_customers(config.customers, config.seed);
        let by_id = entries
            .iter()
            .map(|entry| (entry.key.clone(), Arc::clone(entry)))
            .collect();
        let initial_refresh = new_refresh_token();
        let mut ids = SplitMix64(config.seed ^ 0x00C1_1E17_u64);
        let creds = Credentials {
            tenant: "contoso-partner.onmicrosoft.com".to_owned(),
            client_id: guid(&mut ids),
            client_secret: format!("sim8Q~{}", Uuid::new_v4().simple()),
            username: "admin@contoso-partner.onmicrosoft.com".to_owned(),
            password: format!("Sim-{}!", Uuid::new_v4().simple()),
            refresh_token: initial_refresh.clone(),
        };
        let state = State {
            customers: entries,
            by_id,
            access: HashMap::new(),
            refresh: HashMap::from([(initial_refresh.clone(), 0)]),
            next_seq: 1,
            access_cutoff: 0,
            refresh_cutoff: 0,
            latest_refresh_seq: 0,
            redeemed_codes: HashSet::new(),
            secrets: vec![initial_refresh],
        };
        let salt = u64::from_be_bytes(
            Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or([0x5A; 8]),
        );
        Self {
            creds,
            knobs: Knobs::new(config),
            state: Mutex::new(state),
            stats: Mutex::new(Stats::default()),
            log: Mutex::new(VecDeque::new()),
            in_flight: AtomicU64::new(0),
            in_flight_max: AtomicU64::new(0),
            salt,
            server_id: format!("1011{:05}", config.seed % 100_000),
            cancel: CancellationToken::new(),
        }
    }

    /// The usage records served now, in discovery order (`overrides` instead of
    /// the synthetic ones where set), then the overrides of ids that are no current
    /// customer's.
    fn usage_records(
        &self,
        budget_null: bool,
        mut overrides: BTreeMap<String, Value>,
    ) -> Vec<ServedRecord> {
        let entries = lock(&self.state).customers.clone();
        let day = unix_now().div_euclid(86_400);
        let mut served = Vec::with_capacity(entries.len() + overrides.len());
        for entry in &entries {
            match overrides.remove(&entry.key) {
                Some(Value::Null) => {}
                Some(value) => served.push(ServedRecord {
                    value,
                    long_decimals: false,
                }),
                None => served.extend(usage_record(entry, day, budget_null)),
            }
        }
        served.extend(
            overrides
                .into_values()
                .filter(|value| !value.is_null())
                .map(|value| ServedRecord {
                    value,
                    long_decimals: false,
                }),
        );
        served
    }

    fn count_arrival(&self, endpoint: Endpoint) {
        let mut stats = lock(&self.stats);
        match endpoint {
            Endpoint::Token => stats.token += 1,
            Endpoint::Customers => stats.customers += 1,
            Endpoint::ServiceCosts => stats.servicecosts += 1,
            Endpoint::UsageRecords => stats.usagerecords += 1,
            Endpoint::GenerateToken => stats.generatetoken += 1,
            Endpoint::Other => {}
        }
    }

    fn record(&self, request: LoggedRequest) {
        {
            let mut stats = lock(&self.stats);
            *stats.by_status.entry(request.status).or_default() += 1;
            if request.status == 429 {
                stats.throttled += 1;
            }
        }
        let mut log = lock(&self.log);
        if log.len() >= LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(request);
    }

    // --- tokens ---

    fn issue_access(&self, audience: &str, app_only: bool, kind: TokenKind) -> (String, Duration) {
        let lifetime = self.knobs.access_token_lifetime();
        let token = new_access_token();
        let mut state = lock(&self.state);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.access.insert(
            token.clone(),
            AccessToken {
                seq,
                expires_at: Instant::now() + lifetime,
                audience: normalize_audience(audience),
                app_only,
                kind,
            },
        );
        state.secrets.push(token.clone());
        (token, lifetime)
    }

    fn issue_refresh(&self) -> String {
        let token = new_refresh_token();
        let mut state = lock(&self.state);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.latest_refresh_seq = seq;
        state.refresh.insert(token.clone(), seq);
        state.secrets.push(token.clone());
        token
    }

    fn check_refresh(&self, token: &str) -> RefreshCheck {
        let state = lock(&self.state);
        match state.refresh.get(token) {
            Some(&seq) if seq >= state.refresh_cutoff => RefreshCheck::Valid,
            Some(_) => RefreshCheck::Revoked,
            None => RefreshCheck::Unknown,
        }
    }

    fn check_access(&self, token: &str) -> AccessCheck {
        let state = lock(&self.state);
        match state.access.get(token) {
            None => AccessCheck::Unknown,
            Some(t) if t.seq < state.access_cutoff || Instant::now() >= t.expires_at => {
                AccessCheck::Expired
            }
            Some(t) => AccessCheck::Valid(t.clone()),
        }
    }

    /// Redeems an authorization code once; false if it was redeemed before.
    fn redeem_code(&self, code: &str) -> bool {
        lock(&self.state).redeemed_codes.insert(code.to_owned())
    }

    // --- continuation tokens: the offset, masked, behind a per-simulator salt ---

    /// A token for `offset`; with a nonce, one that no other token equals.
    fn continuation_token(&self, offset: usize, nonce: Option<u64>) -> String {
        let mut bytes = self.salt.to_be_bytes().to_vec();
        bytes.extend_from_slice(&((offset as u64) ^ self.offset_mask()).to_be_bytes());
        if let Some(nonce) = nonce {
            bytes.extend_from_slice(&nonce.to_be_bytes());
        }
        base64(&bytes, B64_STD, true)
    }

    fn parse_continuation(&self, token: &str) -> Option<usize> {
        let bytes = base64_decode(token.trim())?;
        let (salt, rest) = bytes.split_at_checked(8)?;
        if salt != self.salt.to_be_bytes() {
            return None;
        }
        let (offset, nonce) = rest.split_at_checked(8)?;
        if !(nonce.is_empty() || nonce.len() == 8) {
            return None;
        }
        let offset = u64::from_be_bytes(offset.try_into().ok()?) ^ self.offset_mask();
        usize::try_from(offset).ok()
    }

    fn offset_mask(&self) -> u64 {
        self.salt.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15
    }

    // --- responses ---

    fn json_bytes(
        &self,
        status: StatusCode,
        content_type: &'static str,
        body: &[u8],
    ) -> Response<Body> {
        let mut bytes = Vec::with_capacity(body.len() + BOM.len());
        if self.knobs.bom() {
            bytes.extend_from_slice(BOM);
        }
        bytes.extend_from_slice(body);
        response(status, Some(content_type), full(bytes))
    }

    fn json<T: Serialize>(&self, status: StatusCode, value: &T) -> Response<Body> {
        match serde_json::to_vec(value) {
            Ok(body) => self.json_bytes(status, JSON_UTF8, &body),
            Err(_) => response(StatusCode::INTERNAL_SERVER_ERROR, None, full(Bytes::new())),
        }
    }

    /// An error in the Partner Center shape (docs/partner-center.md §4).
    fn pc_error(&self, status: StatusCode, code: Value, description: &str) -> Response<Body> {
        self.json(
            status,
            &PcError {
                code,
                description,
                data: [],
                source: "PartnerFD",
            },
        )
    }

    /// 403 for an app-only token on a route that supports App+User only.
    fn app_user_only(&self) -> Response<Body> {
        self.pc_error(
            StatusCode::FORBIDDEN,
            Value::from(2032),
            "Access denied: this scenario supports authentication with App+User credentials only.",
        )
    }

    fn unauthorized(&self, code: Value, description: &str) -> Response<Body> {
        let mut resp = self.pc_error(StatusCode::UNAUTHORIZED, code, description);
        set_header(
            &mut resp,
            header::WWW_AUTHENTICATE,
            "OAuth realm=urn:cpsvc:cpid:00000000-0000-0000-0000-000000000000",
        );
        resp
    }

    /// The documented 429 (docs/partner-center.md §4), with the number of seconds adjusted.
    fn throttled(&self, secs: u64) -> Response<Body> {
        let body = FIXTURE_429.replace(
            "Try again in 57 seconds",
            &format!("Try again in {secs} seconds"),
        );
        let mut resp = self.json_bytes(
            StatusCode::TOO_MANY_REQUESTS,
            "application/json",
            body.as_bytes(),
        );
        set_header(&mut resp, header::RETRY_AFTER, &secs.to_string());
        resp
    }

    /// Partner Center API routes: throttling and error-rate faults, then the token.
    /// The error is the response to send (boxed: responses are large).
    fn api_gate(&self, headers: &HeaderMap) -> Result<Principal, Box<Response<Body>>> {
        match self.knobs.api_fault() {
            Some(ApiFault::Throttle(secs)) => return Err(Box::new(self.throttled(secs))),
            Some(ApiFault::Unavailable) => {
                return Err(Box::new(self.pc_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Value::from(503),
                    "The service is busy. Try again later.",
                )))
            }
            None => {}
        }
        self.authorize(headers)
    }

    /// Checks the bearer token of a Partner Center API request.
    fn authorize(&self, headers: &HeaderMap) -> Result<Principal, Box<Response<Body>>> {
        let Some(token) = bearer(headers) else {
            return Err(Box::new(self.unauthorized(
                Value::from(800_001),
                "Partner Token missing in request context.",
            )));
        };
        match self.check_access(token) {
            AccessCheck::Unknown => Err(Box::new(self.unauthorized(
                Value::from(400),
                "Access denied: the bearer token is not valid.",
            ))),
            AccessCheck::Expired => Err(Box::new(self.unauthorized(
                Value::from(400),
                "Access denied: the bearer token has expired.",
            ))),
            AccessCheck::Valid(t) if !is_pc_audience(&t.audience) => Err(Box::new(self.unauthorized(
                Value::from("900420"),
                &format!(
                    "The audience '{}' in the token is invalid and is no longer supported in Partner Center API.",
                    t.audience
                ),
            ))),
            AccessCheck::Valid(t) => Ok(Principal {
                app_only: t.app_only,
            }),
        }
    }
}

#[derive(Serialize)]
struct PcError<'a> {
    code: Value,
    description: &'a str,
    data: [(); 0],
    source: &'static str,
}

// ---------------------------------------------------------------------------
// Server and routing
// ---------------------------------------------------------------------------

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(err) = conn.await {
                            tracing::trace!(error = %err, "simulator connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    tracing::debug!(error = %err, "simulator accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}

fn classify(path: &str) -> Endpoint {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match segments.as_slice() {
        [_, "oauth2", "token"] | [_, "oauth2", "v2.0", "token"] => Endpoint::Token,
        ["generatetoken"] | ["v3", "generatetoken"] => Endpoint::GenerateToken,
        ["v1", "customers"] => Endpoint::Customers,
        ["v1", "customers", "usagerecords"] => Endpoint::UsageRecords,
        ["v1", "customers", _, "servicecosts", _] => Endpoint::ServiceCosts,
        _ => Endpoint::Other,
    }
}

/// The ids a Partner Center response echoes (docs/partner-center.md §4).
struct RequestIds {
    request_id: Option<String>,
    correlation_id: Option<String>,
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let endpoint = classify(&path);
    let ids = RequestIds {
        request_id: header_str(req.headers(), "ms-requestid").map(str::to_owned),
        correlation_id: header_str(req.headers(), "ms-correlationid").map(str::to_owned),
    };
    shared.count_arrival(endpoint);
    let in_flight = endpoint.is_api().then(|| InFlight::enter(&shared));

    let latency = shared.knobs.latency();
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = shared.cancel.cancelled() => {}
        }
    }
    let mut resp = route(&shared, endpoint, &path, req).await;
    drop(in_flight);

    if endpoint != Endpoint::Token {
        add_partner_center_headers(&shared, &mut resp, &ids);
    }
    shared.record(LoggedRequest {
        endpoint,
        path,
        status: resp.status().as_u16(),
        ms_request_id: ids.request_id,
        at,
    });
    Ok(resp)
}

async fn route(
    shared: &Shared,
    endpoint: Endpoint,
    path: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    match (parts.method.as_str(), segments.as_slice()) {
        ("POST", [tenant, "oauth2", "token"]) => {
            token(shared, tenant, AadVersion::V1, headers, body).await
        }
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
            token(shared, tenant, AadVersion::V2, headers, body).await
        }
        ("POST", ["generatetoken"]) => generate_token(shared, false, headers, body).await,
        ("POST", ["v3", "generatetoken"]) => generate_token(shared, true, headers, body).await,
        ("GET", ["v1", "customers"]) => customers(shared, headers, parts.uri.query()),
        ("GET", ["v1", "customers", "usagerecords"]) => {
            usage_records(shared, headers, parts.uri.query())
        }
        ("GET", ["v1", "customers", id, "servicecosts", period]) => {
            service_costs(shared, headers, id, period).await
        }
        _ if endpoint == Endpoint::Other => {
            response(StatusCode::NOT_FOUND, None, full(Bytes::new()))
        }
        _ => {
            let allow = match endpoint {
                Endpoint::Token | Endpoint::GenerateToken => "POST",
                _ => "GET",
            };
            let mut resp = response(StatusCode::METHOD_NOT_ALLOWED, None, full(Bytes::new()));
            set_header(&mut resp, header::ALLOW, allow);
            resp
        }
    }
}

fn add_partner_center_headers(shared: &Shared, resp: &mut Response<Body>, ids: &RequestIds) {
    let request_id = ids
        .request_id
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let correlation_id = ids
        .correlation_id
        .clone()
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    let cv = format!(
        "{}.0",
        base64(&Uuid::new_v4().as_bytes()[..12], B64_STD, false)
    );
    set_header(resp, HeaderName::from_static("ms-requestid"), &request_id);
    set_header(
        resp,
        HeaderName::from_static("ms-correlationid"),
        &correlation_id,
    );
    set_header(resp, HeaderName::from_static("ms-cv"), &cv);
    set_header(
        resp,
        HeaderName::from_static("ms-serverid"),
        &shared.server_id,
    );
}

// ---------------------------------------------------------------------------
// AAD token endpoints
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum AadVersion {
    V1,
    V2,
}

/// What a token request asks for, from `resource` (v1) or `scope` (v2).
struct Target {
    /// The audience as requested (v1 echoes it in `resource`).
    audience: String,
    /// The `scope` to answer for App+User tokens.
    scope: String,
    openid: bool,
    offline_access: bool,
    /// v2 only: the scope was `<resource>/.default`.
    default_scope: bool,
}

/// An AAD error with the fields of docs/partner-center.md §1.
#[derive(Serialize)]
struct AadError {
    error: &'static str,
    error_description: String,
    error_codes: [u32; 1],
    timestamp: String,
    trace_id: String,
    correlation_id: String,
    error_uri: String,
}

#[derive(Serialize)]
struct TokenV1 {
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// A string, unless overridden by [`Knobs::set_token_expires_in`].
    expires_in: Value,
    ext_expires_in: String,
    expires_on: String,
    not_before: String,
    resource: String,
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

#[derive(Serialize)]
struct TokenV2 {
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// A number, unless overridden by [`Knobs::set_token_expires_in`].
    expires_in: Value,
    ext_expires_in: u64,
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

/// Builds AAD errors for one token request.
struct Aad<'a> {
    shared: &'a Shared,
    correlation_id: String,
}

impl Aad<'_> {
    fn error(
        &self,
        status: StatusCode,
        error: &'static str,
        code: u32,
        message: &str,
    ) -> Response<Body> {
        let trace_id = Uuid::new_v4().to_string();
        let timestamp = aad_timestamp(unix_now());
        let body = AadError {
            error,
            error_description: format!(
                "AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {}\r\nTimestamp: {timestamp}",
                self.correlation_id
            ),
            error_codes: [code],
            timestamp,
            trace_id,
            correlation_id: self.correlation_id.clone(),
            error_uri: format!("https://login.microsoftonline.com/error?code={code}"),
        };
        let mut resp = self.shared.json(status, &body);
        no_store(&mut resp);
        resp
    }

    fn missing(&self, parameter: &str) -> Response<Body> {
        self.error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            &format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }

    fn fault(&self, fault: TokenFault) -> Option<Response<Body>> {
        let resp = match fault {
            TokenFault::None => return None,
            TokenFault::Down => response(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("text/html"),
                full("<html><body>Service Unavailable</body></html>"),
            ),
            TokenFault::InvalidGrant => self.error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                700_082,
                "The refresh token has expired due to inactivity.",
            ),
            TokenFault::InteractionRequired => self.error(
                StatusCode::BAD_REQUEST,
                "interaction_required",
                50_076,
                &format!(
                    "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '{PC_APP_ID}'."
                ),
            ),
            TokenFault::InvalidClient => self.error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            ),
            TokenFault::TemporarilyUnavailable => {
                let mut resp = self.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    90_033,
                    "A transient error has occurred. Please try again.",
                );
                set_header(&mut resp, header::RETRY_AFTER, "1");
                resp
            }
        };
        Some(resp)
    }
}

/// `POST /{tenant}/oauth2/token` and `POST /{tenant}/oauth2/v2.0/token`.
async fn token(
    shared: &Shared,
    tenant: &str,
    version: AadVersion,
    headers: &HeaderMap,
    body: Incoming,
) -> Response<Body> {
    let aad = Aad {
        shared,
        correlation_id: header_str(headers, "client-request-id")
            .filter(|id| Uuid::parse_str(id).is_ok())
            .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned),
    };
    if !tenant.eq_ignore_ascii_case(&shared.creds.tenant) {
        return aad.error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    }
    if let Some(resp) = aad.fault(shared.knobs.token_fault()) {
        return resp;
    }
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(status) => return response(status, None, full(Bytes::new())),
    };

    let Some(grant_type) = form.get("grant_type") else {
        return aad.missing("grant_type");
    };
    let Some(client_id) = form.get("client_id") else {
        return aad.missing("client_id");
    };
    if !client_id.eq_ignore_ascii_case(&shared.creds.client_id) {
        return aad.error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                shared.creds.tenant
            ),
        );
    }
    match form.get("client_secret") {
        None => {
            return aad.error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
        Some(secret) if secret != shared.creds.client_secret => {
            return aad.error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7_000_215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            )
        }
        Some(_) => {}
    }
    let target = match version {
        AadVersion::V1 => match form.get("resource") {
            Some(resource) => Target {
                audience: resource.to_owned(),
                scope: "user_impersonation".to_owned(),
                openid: form.get("scope").is_some_and(|s| has_scope(s, "openid")),
                offline_access: true,
                default_scope: false,
            },
            None => return aad.missing("resource"),
        },
        AadVersion::V2 => match form.get("scope").map(parse_v2_scope) {
            Some(Ok(target)) => target,
            Some(Err(message)) => {
                return aad.error(StatusCode::BAD_REQUEST, "invalid_scope", 28_000, &message)
            }
            None => return aad.missing("scope"),
        },
    };

    // (app_only, issue a refresh token)
    let (app_only, with_refresh) = match grant_type {
        "refresh_token" => {
            let Some(refresh_token) = form.get("refresh_token") else {
                return aad.missing("refresh_token");
            };
            match shared.check_refresh(refresh_token) {
                RefreshCheck::Valid => (false, true),
                RefreshCheck::Revoked => {
                    return aad.error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        700_082,
                        "The refresh token has expired due to inactivity. The token was issued on a date before the grant was revoked.",
                    )
                }
                RefreshCheck::Unknown => {
                    return aad.error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        70_000,
                        "Provided grant is invalid or malformed.",
                    )
                }
            }
        }
        "password" => {
            let (Some(username), Some(password)) = (form.get("username"), form.get("password"))
            else {
                return aad.missing(if form.get("username").is_none() {
                    "username"
                } else {
                    "password"
                });
            };
            if !username.eq_ignore_ascii_case(&shared.creds.username)
                || password != shared.creds.password
            {
                return aad.error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    50_126,
                    "Error validating credentials due to invalid username or password.",
                );
            }
            (false, version == AadVersion::V1 || target.offline_access)
        }
        "authorization_code" => {
            let Some(code) = form.get("code") else {
                return aad.missing("code");
            };
            if !shared.redeem_code(code) {
                return aad.error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    54_005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                );
            }
            (false, version == AadVersion::V1 || target.offline_access)
        }
        "client_credentials" => {
            if version == AadVersion::V2 && !target.default_scope {
                return aad.error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    1_002_012,
                    "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                );
            }
            (true, false)
        }
        other => {
            return aad.error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70_003,
                &format!("The app requested an unsupported grant type '{other}'."),
            )
        }
    };

    let (access_token, lifetime) = shared.issue_access(&target.audience, app_only, TokenKind::Aad);
    let refresh_token = with_refresh.then(|| {
        shared
            .knobs
            .token_refresh_token()
            .unwrap_or_else(|| shared.issue_refresh())
    });
    let expires_in = shared.knobs.token_expires_in();
    let id_token = (target.openid && !app_only).then(|| fake_id_token(&shared.creds, lifetime));
    let secs = lifetime.as_secs();
    let scope = (!app_only).then_some(target.scope);
    let mut resp = match version {
        AadVersion::V1 => {
            let now = unix_now();
            shared.json(
                StatusCode::OK,
                &TokenV1 {
                    token_type: "Bearer",
                    scope,
                    expires_in: expires_in.unwrap_or_else(|| Value::from(secs.to_string())),
                    ext_expires_in: secs.to_string(),
                    expires_on: (now.saturating_add_unsigned(secs)).to_string(),
                    not_before: (now - 300).to_string(),
                    resource: target.audience,
                    access_token,
                    refresh_token,
                    id_token,
                },
            )
        }
        AadVersion::V2 => shared.json(
            StatusCode::OK,
            &TokenV2 {
                token_type: "Bearer",
                scope,
                expires_in: expires_in.unwrap_or_else(|| Value::from(secs)),
                ext_expires_in: secs,
                access_token,
                refresh_token,
                id_token,
            },
        ),
    };
    no_store(&mut resp);
    resp
}

/// Reads the v2 `scope`: at most one resource, plus OIDC scopes.
fn parse_v2_scope(scope: &str) -> Result<Target, String> {
    let mut resource: Option<String> = None;
    let mut permissions = Vec::new();
    let (mut openid, mut offline_access, mut default_scope) = (false, false, false);
    for item in scope.split_whitespace() {
        match item.to_ascii_lowercase().as_str() {
            "openid" => openid = true,
            "offline_access" => offline_access = true,
            "profile" | "email" => {}
            _ => {
                let (res, permission) = match item.rsplit_once('/') {
                    Some((res, permission)) if !res.is_empty() => {
                        (normalize_audience(res), permission)
                    }
                    _ => (MS_GRAPH.to_owned(), item),
                };
                match &resource {
                    Some(existing) if !existing.eq_ignore_ascii_case(&res) => {
                        return Err(format!(
                            "The client has requested access to a resource which is not listed in the requested permissions in the client's application registration. Scopes for more than one resource were requested: '{existing}' and '{res}'."
                        ));
                    }
                    _ => resource = Some(res),
                }
                if permission == ".default" {
                    default_scope = true;
                    permissions.push("user_impersonation".to_owned());
                } else {
                    permissions.push(permission.to_owned());
                }
            }
        }
    }
    let audience = resource.unwrap_or_else(|| MS_GRAPH.to_owned());
    let scope = permissions
        .iter()
        .map(|p| format!("{audience}/{p}"))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Target {
        audience,
        scope,
        openid,
        offline_access,
        default_scope,
    })
}

// ---------------------------------------------------------------------------
// generatetoken (legacy exchange, docs/partner-center.md §1)
// ---------------------------------------------------------------------------

#[derive(Serialize)]
struct GeneratedToken {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// `POST /generatetoken` (`v3 == false`) and `POST /v3/generatetoken`.
async fn generate_token(
    shared: &Shared,
    v3: bool,
    headers: &HeaderMap,
    body: Incoming,
) -> Response<Body> {
    let aad_token = match bearer(headers).map(|t| shared.check_access(t)) {
        None => {
            return shared.unauthorized(
                Value::from(800_001),
                "Partner Token missing in request context.",
            )
        }
        Some(AccessCheck::Unknown) => {
            return shared.unauthorized(
                Value::from(400),
                "Access denied: the bearer token is not valid.",
            )
        }
        Some(AccessCheck::Expired) => {
            return shared.unauthorized(
                Value::from(400),
                "Access denied: the bearer token has expired.",
            )
        }
        Some(AccessCheck::Valid(t)) => t,
    };
    if aad_token.kind != TokenKind::Aad {
        return shared.unauthorized(
            Value::from(400),
            "Access denied: only Azure AD tokens can be exchanged.",
        );
    }
    let audience_ok = is_pc_audience(&aad_token.audience)
        || (!v3 && aad_token.audience.eq_ignore_ascii_case(AAD_GRAPH));
    if !audience_ok {
        return shared.unauthorized(
            Value::from("900420"),
            &format!(
                "The audience '{}' in the token is invalid and is no longer supported in Partner Center API.",
                aad_token.audience
            ),
        );
    }
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(status) => return response(status, None, full(Bytes::new())),
    };
    if form.get("grant_type") != Some("jwt_token") {
        return shared.pc_error(
            StatusCode::BAD_REQUEST,
            Value::from(400),
            "grant_type must be jwt_token.",
        );
    }
    let (access_token, lifetime) =
        shared.issue_access(PC_RESOURCE, aad_token.app_only, TokenKind::PartnerCenter);
    shared.json(
        StatusCode::OK,
        &GeneratedToken {
            access_token,
            token_type: "Bearer",
            expires_in: lifetime.as_secs(),
        },
    )
}

// ---------------------------------------------------------------------------
// GET /v1/customers (docs/partner-center.md §3)
// ---------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attributes {
    object_type: &'static str,
}

#[derive(Serialize)]
struct Link {
    uri: String,
    method: &'static str,
    headers: Vec<LinkHeader>,
}

#[derive(Serialize)]
struct LinkHeader {
    key: &'static str,
    value: String,
}

impl Link {
    fn get(uri: String) -> Self {
        Link {
            uri,
            method: "GET",
            headers: Vec::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomersPage<'a> {
    total_count: usize,
    items: Vec<PageItem<'a>>,
    links: PageLinks,
    attributes: Attributes,
}

#[derive(Serialize)]
struct PageLinks {
    #[serde(rename = "self")]
    self_link: Link,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<Link>,
}

/// An item of a customers page: a customer, or what `set_extra_customer_items` adds.
#[derive(Serialize)]
#[serde(untagged)]
enum PageItem<'a> {
    Customer(CustomerItem<'a>),
    Raw(&'a Value),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerItem<'a> {
    id: &'a str,
    commerce_id: &'a str,
    company_profile: CompanyProfile<'a>,
    relationship_to_partner: &'static str,
    attributes: Attributes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompanyProfile<'a> {
    tenant_id: &'a str,
    domain: &'a str,
    company_name: &'a str,
    attributes: Attributes,
}

/// Where the page asked for starts: `None` for the first page, else the offset in
/// the `MS-ContinuationToken` of a `seekOperation=Next` request. The error is the
/// response to send.
fn seek_offset(
    shared: &Shared,
    headers: &HeaderMap,
    query: &Form,
) -> Result<Option<usize>, Box<Response<Body>>> {
    match query.get("seekOperation") {
        None => return Ok(None),
        Some(op) if op.eq_ignore_ascii_case("next") || op == "0" => {}
        Some(_) => {
            return Err(Box::new(shared.pc_error(
                StatusCode::BAD_REQUEST,
                Value::from(400),
                "Unsupported seekOperation; only Next is supported.",
            )))
        }
    }
    match header_str(headers, "ms-continuationtoken")
        .and_then(|token| shared.parse_continuation(token))
    {
        Some(offset) => Ok(Some(offset)),
        None => Err(Box::new(shared.pc_error(
            StatusCode::BAD_REQUEST,
            Value::from(400),
            "The MS-ContinuationToken header is missing or invalid.",
        ))),
    }
}

/// The prefix of next-link URIs: `/v1/`, or nothing as some Partner Center
/// answers have it ([`Knobs::set_next_link_without_v1`]).
fn next_link_prefix(shared: &Shared) -> &'static str {
    if shared.knobs.next_link_without_v1() {
        ""
    } else {
        "/v1/"
    }
}

fn customers(shared: &Shared, headers: &HeaderMap, query: Option<&str>) -> Response<Body> {
    if let Err(resp) = shared.api_gate(headers) {
        return *resp;
    }
    let query = Form::parse(query.unwrap_or(""));
    let cap = shared.knobs.page_size_cap();
    let size = match query.get("size").map(str::parse::<usize>) {
        None => cap,
        Some(Ok(size)) if size > 0 => size.min(cap),
        Some(_) => {
            return shared.pc_error(
                StatusCode::BAD_REQUEST,
                Value::from(400),
                "The size parameter must be a positive integer.",
            )
        }
    };
    let seek = match seek_offset(shared, headers, &query) {
        Ok(seek) => seek,
        Err(resp) => return *resp,
    };
    let (next, offset) = (seek.is_some(), seek.unwrap_or(0));

    let (page, end, more) = {
        let state = lock(&shared.state);
        let total = state.customers.len();
        let start = offset.min(total);
        let end = offset.saturating_add(size).min(total);
        (state.customers[start..end].to_vec(), end, end < total)
    };
    // A looping list links back to this very page, under a token never sent before.
    let (next_offset, nonce, more) = match shared.knobs.loop_nonce() {
        Some(nonce) => (offset, Some(nonce), true),
        None => (end, None, more),
    };

    let self_uri = if next {
        format!("/v1/customers?size={size}&seekOperation=Next")
    } else {
        format!("/v1/customers?size={size}")
    };
    let next_link = more.then(|| {
        let prefix = next_link_prefix(shared);
        Link {
            uri: format!("{prefix}customers?size={size}&seekOperation=Next"),
            method: "GET",
            headers: vec![LinkHeader {
                key: "MS-ContinuationToken",
                value: shared.continuation_token(next_offset, nonce),
            }],
        }
    });
    let extra = shared.knobs.extra_customer_items();
    let items: Vec<PageItem<'_>> = page
        .iter()
        .map(|entry| {
            PageItem::Customer(CustomerItem {
                id: &entry.customer.id,
                commerce_id: &entry.customer.id,
                company_profile: CompanyProfile {
                    tenant_id: &entry.customer.id,
                    domain: &entry.customer.domain,
                    company_name: &entry.customer.name,
                    attributes: Attributes {
                        object_type: "CustomerCompanyProfile",
                    },
                },
                relationship_to_partner: "reseller",
                attributes: Attributes {
                    object_type: "Customer",
                },
            })
        })
        .chain(extra.iter().map(PageItem::Raw))
        .collect();
    shared.json(
        StatusCode::OK,
        &CustomersPage {
            total_count: items.len(),
            items,
            links: PageLinks {
                self_link: Link::get(self_uri),
                next: next_link,
            },
            attributes: Attributes {
                object_type: "Collection",
            },
        },
    )
}

// ---------------------------------------------------------------------------
// GET /v1/customers/{id}/servicecosts/{period} (docs/partner-center.md §2)
// ---------------------------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CostsBody<'a> {
    billing_start_date: &'a str,
    billing_end_date: &'a str,
    pretax_total: Value,
    tax: Value,
    after_tax_total: Value,
    currency_symbol: &'a str,
    customer_id: &'a str,
    details: Vec<DetailBody<'a>>,
    links: CostsLinks,
    attributes: Attributes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DetailBody<'a> {
    invoice_type: &'a str,
    summary: SummaryBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SummaryBody<'a> {
    billing_start_date: &'a str,
    billing_end_date: &'a str,
    pretax_total: Value,
    tax: Value,
    after_tax_total: Value,
    currency_code: &'a str,
    currency_symbol: &'a str,
    customer_id: &'a str,
    links: serde_json::Map<String, Value>,
    attributes: Attributes,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CostsLinks {
    service_cost_line_items: Link,
    #[serde(rename = "self")]
    self_link: Link,
}

async fn service_costs(
    shared: &Shared,
    headers: &HeaderMap,
    id: &str,
    period: &str,
) -> Response<Body> {
    let principal = match shared.api_gate(headers) {
        Ok(principal) => principal,
        Err(resp) => return *resp,
    };
    if principal.app_only {
        return shared.app_user_only();
    }
    if !period.eq_ignore_ascii_case("MostRecent") {
        return shared.pc_error(
            StatusCode::BAD_REQUEST,
            Value::from(400),
            "Invalid billing period. The only supported value is MostRecent.",
        );
    }
    let key = id.to_ascii_lowercase();
    let faults = shared.knobs.customer_faults(&key);
    if faults.hang {
        shared.cancel.cancelled().await;
        return shared.pc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Value::from(503),
            "The simulator is shutting down.",
        );
    }
    if let Some(status) = faults.status {
        return forced_status(shared, status);
    }
    if faults.malformed {
        return shared.json_bytes(StatusCode::OK, JSON_UTF8, MALFORMED_BODY.as_bytes());
    }
    if faults.huge {
        return huge_body(shared, &key);
    }
    if let Some(body) = faults.body {
        return shared.json_bytes(StatusCode::OK, JSON_UTF8, body.as_bytes());
    }
    let entry = lock(&shared.state).by_id.get(&key).cloned();
    let Some(entry) = entry else {
        return shared.pc_error(
            StatusCode::NOT_FOUND,
            Value::from(1000),
            "Customer not found.",
        );
    };
    let period = Period::current();
    match entry.costs(&period) {
        SimCosts::Documented => {
            shared.json_bytes(StatusCode::OK, JSON_UTF8, FIXTURE_COSTS.as_bytes())
        }
        SimCosts::NoData => shared.pc_error(
            StatusCode::NOT_FOUND,
            Value::from(3000),
            "Customer does not have service costs data for the given billing period.",
        ),
        SimCosts::Generated(details) => shared.json(
            StatusCode::OK,
            &costs_body(&entry.customer.id, &details, &period),
        ),
    }
}

fn forced_status(shared: &Shared, status: u16) -> Response<Body> {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.as_u16() >= 200)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status.as_u16() {
        204 | 205 | 304 => response(status, None, full(Bytes::new())),
        401 => {
            let mut resp = shared.json_bytes(status, JSON_UTF8, FIXTURE_401_MFA.as_bytes());
            set_header(
                &mut resp,
                header::WWW_AUTHENTICATE,
                "OAuth realm=urn:cpsvc:cpid:00000000-0000-0000-0000-000000000000",
            );
            resp
        }
        403 => shared.json_bytes(status, JSON_UTF8, FIXTURE_403.as_bytes()),
        404 => shared.pc_error(status, Value::from(1000), "Not found."),
        429 => shared.throttled(1),
        500 => shared.pc_error(status, Value::from(800_003), "Unexpected service error."),
        code => shared.pc_error(
            status,
            Value::from(code),
            status.canonical_reason().unwrap_or("Error"),
        ),
    }
}

fn currency_symbol(code: &str) -> &str {
    match code {
        "USD" | "AUD" | "CAD" | "NZD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        other => other,
    }
}

/// An amount as JSON: `OneTime` amounts that are whole come as integers (`2`), the
/// rest as floats (`17.22`, `0.0`), as in the documented example.
fn amount(value: f64, integer_when_whole: bool) -> Value {
    if integer_when_whole && value.fract() == 0.0 && value.abs() < 1e15 {
        Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

fn summary<'a>(customer_id: &'a str, detail: &'a SimDetail) -> SummaryBody<'a> {
    let whole = detail.invoice_type.eq_ignore_ascii_case("OneTime");
    SummaryBody {
        billing_start_date: &detail.billing_start,
        billing_end_date: &detail.billing_end,
        pretax_total: amount(detail.pretax, whole),
        tax: amount(detail.tax, whole),
        after_tax_total: amount(round2(detail.pretax + detail.tax), whole),
        currency_code: &detail.currency,
        currency_symbol: currency_symbol(&detail.currency),
        customer_id,
        links: serde_json::Map::new(),
        attributes: Attributes {
            object_type: "ServiceCostsSummary",
        },
    }
}

fn costs_links(customer_id: &str) -> CostsLinks {
    let base = format!("/customers/{customer_id}/servicecosts/MostRecent");
    CostsLinks {
        service_cost_line_items: Link::get(format!("{base}/lineitems")),
        self_link: Link::get(base),
    }
}

/// The documented shape: deprecated root fields (mirroring the first detail, as in
/// the example, and without `currencyCode`), then `details[]`.
fn costs_body<'a>(
    customer_id: &'a str,
    details: &'a [SimDetail],
    period: &'a Period,
) -> CostsBody<'a> {
    let details: Vec<DetailBody<'a>> = details
        .iter()
        .map(|detail| DetailBody {
            invoice_type: &detail.invoice_type,
            summary: summary(customer_id, detail),
        })
        .collect();
    let root = details.first().map(|d| &d.summary);
    CostsBody {
        billing_start_date: root.map_or(period.start.as_str(), |s| s.billing_start_date),
        billing_end_date: root.map_or(period.end.as_str(), |s| s.billing_end_date),
        pretax_total: root.map_or(Value::from(0.0), |s| s.pretax_total.clone()),
        tax: root.map_or(Value::from(0.0), |s| s.tax.clone()),
        after_tax_total: root.map_or(Value::from(0.0), |s| s.after_tax_total.clone()),
        currency_symbol: root.map_or("$", |s| s.currency_symbol),
        customer_id,
        details,
        links: costs_links(customer_id),
        attributes: Attributes {
            object_type: "ServiceCostsSummary",
        },
    }
}

/// 200 with a valid JSON body of at least 64 MiB, streamed in 64 KiB chunks.
fn huge_body(shared: &Shared, customer_id: &str) -> Response<Body> {
    let period = Period::current();
    let detail = SimDetail {
        invoice_type: "Recurring".to_owned(),
        currency: "USD".to_owned(),
        pretax: 12.5,
        tax: 1.25,
        billing_start: period.start.clone(),
        billing_end: period.end.clone(),
    };
    let one = serde_json::to_string(&DetailBody {
        invoice_type: &detail.invoice_type,
        summary: summary(customer_id, &detail),
    })
    .unwrap_or_else(|_| "{}".to_owned());
    let bom = if shared.knobs.bom() { "\u{FEFF}" } else { "" };
    let head = Bytes::from(format!(
        "{bom}{{\"billingStartDate\":\"{}\",\"billingEndDate\":\"{}\",\"pretaxTotal\":12.5,\"tax\":1.25,\"afterTaxTotal\":13.75,\"currencySymbol\":\"$\",\"customerId\":\"{customer_id}\",\"details\":[{one}",
        period.start, period.end
    ));
    let tail = Bytes::from_static(b"],\"attributes\":{\"objectType\":\"ServiceCostsSummary\"}}");
    let per_block = (64 * 1024 / (one.len() + 1)).max(1);
    let block = Bytes::from(format!(",{one}").repeat(per_block));
    let blocks = (HUGE_BODY_BYTES.saturating_sub(head.len() + tail.len())).div_ceil(block.len());
    let chunks = std::iter::once(head)
        .chain(std::iter::repeat_n(block, blocks))
        .chain(std::iter::once(tail))
        .map(|chunk| Ok::<_, Infallible>(Frame::data(chunk)));
    let body = StreamBody::new(futures::stream::iter(chunks)).boxed_unsync();
    response(StatusCode::OK, Some(JSON_UTF8), body)
}

// ---------------------------------------------------------------------------
// GET /v1/customers/usagerecords (docs/partner-center.md, "Usage records")
// ---------------------------------------------------------------------------

/// A record as served: its JSON and whether its amounts are written with 20
/// fractional digits, as Partner Center writes .NET decimals.
struct ServedRecord {
    value: Value,
    long_decimals: bool,
}

impl ServedRecord {
    /// The record's JSON text. A `Value` holds an f64, which serde writes in its
    /// shortest form; a long-decimal record has its amounts rewritten with 20
    /// fractional digits that read back as the same f64.
    fn to_json(&self) -> String {
        let mut text = self.value.to_string();
        if self.long_decimals {
            for key in ["totalCost", "usdTotalCost"] {
                let value = self.value.get(key).filter(|v| v.is_f64());
                if let Some(x) = value.and_then(Value::as_f64) {
                    let shortest = format!("\"{key}\":{}", Value::from(x));
                    let long = format!("\"{key}\":{}", decimal20(x));
                    text = text.replacen(&shortest, &long, 1);
                }
            }
        }
        text
    }
}

/// `x` with 20 fractional digits (`120.56829999999959568413`), or in its shortest
/// form where those would not read back as `x`.
fn decimal20(x: f64) -> String {
    let long = format!("{x:.20}");
    if long.parse::<f64>() == Ok(x) {
        long
    } else {
        Value::from(x).to_string()
    }
}

fn usage_records(shared: &Shared, headers: &HeaderMap, query: Option<&str>) -> Response<Body> {
    let principal = match shared.api_gate(headers) {
        Ok(principal) => principal,
        Err(resp) => return *resp,
    };
    if principal.app_only {
        return shared.app_user_only();
    }
    let UsageKnobs {
        status,
        page_size,
        body,
        budget_null,
        records,
    } = shared.knobs.usage();
    if let Some(status) = status {
        return forced_status(shared, status);
    }
    if let Some(body) = body {
        return shared.json_bytes(StatusCode::OK, JSON_UTF8, body.as_bytes());
    }
    let seek = match seek_offset(shared, headers, &Form::parse(query.unwrap_or(""))) {
        Ok(seek) => seek,
        Err(resp) => return *resp,
    };
    let records = shared.usage_records(budget_null, records);
    let start = seek.unwrap_or(0).min(records.len());
    let end = start
        .saturating_add(page_size.unwrap_or(usize::MAX))
        .min(records.len());
    let self_uri = if seek.is_some() {
        "/v1/customers/usagerecords?seekOperation=Next"
    } else {
        "/v1/customers/usagerecords"
    };
    let links = PageLinks {
        self_link: Link::get(self_uri.to_owned()),
        next: (end < records.len()).then(|| Link {
            uri: format!(
                "{}customers/usagerecords?seekOperation=Next",
                next_link_prefix(shared)
            ),
            method: "GET",
            headers: vec![LinkHeader {
                key: "MS-ContinuationToken",
                value: shared.continuation_token(end, None),
            }],
        }),
    };
    let items: Vec<String> = records[start..end]
        .iter()
        .map(ServedRecord::to_json)
        .collect();
    let body = format!(
        "{{\"totalCount\":{},\"items\":[{}],\"links\":{},\"attributes\":{{\"objectType\":\"Collection\"}}}}",
        items.len(),
        items.join(","),
        serde_json::to_string(&links).unwrap_or_else(|_| "{}".to_owned()),
    );
    shared.json_bytes(StatusCode::OK, JSON_UTF8, body.as_bytes())
}

/// The documented example's Azure-plan `totalCost`, which the documented customer
/// spends against a budget of 20 (docs/partner-center.md, "Usage records").
#[allow(clippy::excessive_precision)]
const DOCUMENTED_USAGE_TOTAL: f64 = 120.5682999999995904716;
/// Budgets set on synthetic customers, in the customer's currency.
const USAGE_BUDGETS: [f64; 7] = [25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0];
/// What share of the budget a synthetic customer has used: under, trending over
/// (close to it early in the month) and over.
const USAGE_PERCENTS: [f64; 7] = [23.5, 48.2, 71.9, 88.4, 93.7, 112.6, 164.3];

/// The synthetic usage record of a customer, derived from its id alone (so that a
/// customer keeps its record whatever else is added or removed): about every
/// fourth customer has none (no usage-based subscription), about every seventh a
/// legacy one (`currencyLocale`, `isUpgraded: false`), the rest an Azure-plan one
/// in the currency of their service costs. About 60% have a budget; about half of
/// the Azure-plan records carry amounts with 20 fractional digits. The documented
/// customer is over budget, as in the documented example. `day` is today's Unix
/// day: the estimate was last refreshed yesterday.
fn usage_record(entry: &Entry, day: i64, budget_null: bool) -> Option<ServedRecord> {
    let mut rng = SplitMix64(fnv1a(entry.key.as_bytes()) ^ 0x05A6_E5EC_0DE5_u64);
    let documented = entry.key == DOCUMENTED_ID;
    let legacy = match rng.next_u64() % 28 {
        _ if documented => false,
        0..7 => return None,
        7..11 => true,
        _ => false,
    };
    let currency = entry.currency();
    let (budget, total, percent, long) = if documented {
        (Some(20.0), DOCUMENTED_USAGE_TOTAL, 602.84, true)
    } else if rng.next_f64() < 0.6 {
        let budget = USAGE_BUDGETS[(rng.next_u64() % USAGE_BUDGETS.len() as u64) as usize];
        let target = USAGE_PERCENTS[(rng.next_u64() % USAGE_PERCENTS.len() as u64) as usize];
        let long = !legacy && rng.next_f64() < 0.5;
        let raw = budget * target / 100.0;
        let total = if long { raw } else { round2(raw) };
        (Some(budget), total, round2(total / budget * 100.0), long)
    } else {
        let long = !legacy && rng.next_f64() < 0.5;
        let raw = log_uniform(&mut rng, 3.0, 4_000.0);
        (None, if long { raw } else { round2(raw) }, 0.0, long)
    };
    let number = |x: f64| {
        if long {
            serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
        } else {
            amount(x, true)
        }
    };
    let usd = total * usd_rate(currency);
    let mut spending_budget = serde_json::Map::new();
    match budget {
        Some(budget) => {
            spending_budget.insert("amount".to_owned(), amount(budget, true));
        }
        None if budget_null => {
            spending_budget.insert("amount".to_owned(), Value::Null);
        }
        // No budget: the key is left out, as in the documented example.
        None => {}
    }
    spending_budget.insert(
        "attributes".to_owned(),
        serde_json::json!({"objectType": "SpendingBudget"}),
    );
    let budget = Value::Object(spending_budget);
    let id = Value::from(entry.customer.id.as_str());
    let name = Value::from(entry.customer.name.as_str());
    let mut record = serde_json::Map::new();
    record.insert("budget".to_owned(), budget.clone());
    record.insert("customerSpendingBudget".to_owned(), budget);
    record.insert("percentUsed".to_owned(), amount(percent, true));
    record.insert("isUpgraded".to_owned(), Value::from(!legacy));
    record.insert("resourceId".to_owned(), id.clone());
    record.insert("id".to_owned(), id);
    record.insert("resourceName".to_owned(), name.clone());
    record.insert("name".to_owned(), name);
    record.insert("totalCost".to_owned(), number(total));
    if legacy {
        // The documented legacy record has a locale, not a currency, and a zero
        // `usdTotalCost`: the USD estimate is an Azure-plan field.
        record.insert("currencyLocale".to_owned(), Value::from(locale(currency)));
        record.insert("usdTotalCost".to_owned(), Value::from(0));
    } else {
        record.insert("currencyCode".to_owned(), Value::from(currency));
        record.insert(
            "currencySymbol".to_owned(),
            Value::from(currency_symbol(currency)),
        );
        let usd = if long { usd } else { round2(usd) };
        record.insert("usdTotalCost".to_owned(), number(usd));
    }
    record.insert(
        "lastModifiedDate".to_owned(),
        Value::from(refreshed_at(day - 1, &mut rng)),
    );
    record.insert(
        "attributes".to_owned(),
        serde_json::json!({"objectType": "CustomerMonthlyUsageRecord"}),
    );
    Some(ServedRecord {
        value: Value::Object(record),
        long_decimals: long,
    })
}

/// A time on Unix day `day` as Partner Center writes `lastModifiedDate`: a
/// fraction without trailing zeros and a `+00:00` offset.
fn refreshed_at(day: i64, rng: &mut SplitMix64) -> String {
    let (year, month, date) = civil_from_days(day);
    let second = rng.next_u64() % 86_400;
    let millis = format!("{:03}", rng.next_u64() % 1_000);
    let millis = millis.trim_end_matches('0');
    let fraction = if millis.is_empty() {
        String::new()
    } else {
        format!(".{millis}")
    };
    format!(
        "{year:04}-{month:02}-{date:02}T{:02}:{:02}:{:02}{fraction}+00:00",
        second / 3600,
        second / 60 % 60,
        second % 60
    )
}

/// The culture of a legacy customer billed in `currency`.
fn locale(currency: &str) -> &'static str {
    match currency {
        "EUR" => "fr-FR",
        "GBP" => "en-GB",
        "SEK" => "sv-SE",
        "JPY" => "ja-JP",
        _ => "en-US",
    }
}

/// Rough USD per unit of `currency`, for `usdTotalCost`.
fn usd_rate(currency: &str) -> f64 {
    match currency {
        "EUR" => 1.08,
        "GBP" => 1.27,
        "SEK" => 0.095,
        "JPY" => 0.0067,
        "AUD" => 0.66,
        "CAD" => 0.73,
        _ => 1.0,
    }
}

/// FNV-1a: a hash that is the same in every process (std's is seeded per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

// ---------------------------------------------------------------------------
// Synthetic data
// ---------------------------------------------------------------------------

/// A customer as stored: either with fixed costs, or synthetic with monthly
/// amounts that grow with the month (recomputed per day).
struct Entry {
    key: String,
    customer: SimCustomer,
    monthly: Option<Vec<MonthlyDetail>>,
}

struct MonthlyDetail {
    invoice_type: &'static str,
    currency: &'static str,
    /// Pre-tax amount of the whole month.
    full_pretax: f64,
    tax_rate: f64,
    /// Whole-currency amounts (licence purchases): served as integers.
    whole: bool,
}

impl Entry {
    fn fixed(customer: SimCustomer) -> Self {
        Self {
            key: customer.id.to_ascii_lowercase(),
            customer,
            monthly: None,
        }
    }

    fn costs(&self, period: &Period) -> SimCosts {
        match &self.monthly {
            None => self.customer.costs.clone(),
            Some(monthly) => SimCosts::Generated(
                monthly
                    .iter()
                    .map(|m| {
                        let grown = m.full_pretax * period.fraction;
                        let pretax = if m.whole {
                            grown.round()
                        } else {
                            round2(grown)
                        };
                        SimDetail {
                            invoice_type: m.invoice_type.to_owned(),
                            currency: m.currency.to_owned(),
                            pretax,
                            tax: round2(pretax * m.tax_rate),
                            billing_start: period.start.clone(),
                            billing_end: period.end.clone(),
                        }
                    })
                    .collect(),
            ),
        }
    }

    /// The currency of the customer's service costs (USD when it has none).
    fn currency(&self) -> &str {
        if let Some(first) = self.monthly.as_ref().and_then(|m| m.first()) {
            return first.currency;
        }
        match &self.customer.costs {
            SimCosts::Generated(details) => details.first().map_or("USD", |d| &d.currency),
            SimCosts::Documented | SimCosts::NoData => "USD",
        }
    }

    fn current(&self, period: &Period) -> SimCustomer {
        SimCustomer {
            costs: self.costs(period),
            ..self.customer.clone()
        }
    }
}

/// The current calendar month (UTC) and how much of it has passed, by whole days.
struct Period {
    start: String,
    end: String,
    fraction: f64,
}

impl Period {
    fn current() -> Self {
        let (year, month, day) = civil_from_days(unix_now().div_euclid(86_400));
        let last = days_in_month(year, month);
        Period {
            start: format!("{year:04}-{month:02}-01T00:00:00Z"),
            end: format!("{year:04}-{month:02}-{last:02}T23:59:59.9999999Z"),
            fraction: f64::from(day) / f64::from(last),
        }
    }
}

#[rustfmt::skip]
const NAME_FIRST: [&str; 60] = [
    "Contoso", "Northwind", "Adventure", "Tailspin", "Woodgrove", "Litware", "Proseware",
    "Lucerne", "Alpine", "Coho", "Trey", "Wingtip", "Fourth", "Humongous", "Relecloud",
    "VanArsdel", "Datum", "Southridge", "Consolidated", "Wide World", "Blue Yonder", "Margie's",
    "Lamna", "Munson's", "Nod", "Liberty's", "Bellows", "Boulder", "Cascade", "Cedar", "Copper",
    "Evergreen", "Fjord", "Granite", "Harbor", "Juniper", "Kestrel", "Lakeside", "Maple",
    "Meridian", "Nimbus", "Oakridge", "Orchid", "Pinnacle", "Quarry", "Redwood", "Riverbend",
    "Sapphire", "Sequoia", "Silverline", "Summit", "Tidewater", "Trillium", "Upland", "Vertex",
    "Willow", "Zephyr", "Aurora", "Beacon", "Cobalt",
];
#[rustfmt::skip]
const NAME_SECOND: [&str; 40] = [
    "Traders", "Works", "Toys", "Bank", "Systems", "Publishing", "Ski House", "Winery", "Research",
    "Coffee", "Insurance", "Electric", "Airlines", "Video", "Logistics", "Health", "Foods",
    "Pharmaceuticals", "Consulting", "Engineering", "Studios", "Partners", "Labs", "Retail",
    "Energy", "Motors", "Analytics", "Dental", "Legal", "Architects", "Brewing", "Capital",
    "Clinics", "Construction", "Design", "Farms", "Freight", "Hotels", "Media", "Outfitters",
];
#[rustfmt::skip]
const NAME_SUFFIX: [&str; 16] = [
    "Inc.", "Ltd", "LLC", "GmbH", "AG", "S.A.", "B.V.", "Pty Ltd", "AB", "Oy", "SAS", "S.r.l.",
    "Corp.", "plc", "ApS", "AS",
];
const TAX_RATES: [f64; 8] = [0.0, 0.05, 0.07, 0.08, 0.1, 0.16, 0.19, 0.2];

/// A distinct company name for synthetic index `i` (a seeded bijection onto
/// first × second × suffix; a number is added past 38,400 names).
fn company_name(i: usize, seed: u64) -> String {
    const N: usize = NAME_FIRST.len() * NAME_SECOND.len() * NAME_SUFFIX.len();
    const STRIDE: usize = 7_919; // prime, coprime with N = 2^9 * 3 * 5^2
    let offset = (seed % N as u64) as usize;
    let k = ((i % N) * STRIDE + offset) % N;
    let first = NAME_FIRST[k % NAME_FIRST.len()];
    let second = NAME_SECOND[(k / NAME_FIRST.len()) % NAME_SECOND.len()];
    let suffix = NAME_SUFFIX[k / (NAME_FIRST.len() * NAME_SECOND.len())];
    match i / N {
        0 => format!("{first} {second} {suffix}"),
        group => format!("{first} {second} {} {suffix}", group + 1),
    }
}

/// A GUID-shaped id (version 4 layout) from the generator.
fn guid(rng: &mut SplitMix64) -> String {
    let hi = rng.next_u64();
    let lo = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0x0FFF,
        0x8000 | ((lo >> 48) & 0x3FFF),
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// The synthetic customers: index 0 is the documented Fabrikam, exactly one other
/// has no data, the rest have generated costs. Deterministic from `seed`.
fn synthetic_customers(count: usize, seed: u64) -> Vec<Arc<Entry>> {
    let mut entries = Vec::with_capacity(count);
    if count == 0 {
        return entries;
    }
    entries.push(Arc::new(Entry::fixed(SimCustomer {
        id: DOCUMENTED_ID.to_owned(),
        name: "Fabrikam".to_owned(),
        domain: "fabrikam.onmicrosoft.com".to_owned(),
        costs: SimCosts::Documented,
    })));
    let no_data = if count > 1 {
        1 + (SplitMix64(seed ^ 0x00DA_7A00).next_u64() % (count as u64 - 1)) as usize
    } else {
        0
    };
    let mut ids: HashSet<String> = HashSet::from([DOCUMENTED_ID.to_owned()]);
    let mut domains: HashSet<String> = HashSet::from(["fabrikam.onmicrosoft.com".to_owned()]);
    let mut id_rng = SplitMix64(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1D5);
    for i in 1..count {
        let mut rng = SplitMix64(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let mut id = guid(&mut id_rng);
        while !ids.insert(id.clone()) {
            id = guid(&mut id_rng);
        }
        let name = company_name(i - 1, seed);
        let stem: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let mut domain = format!("{stem}.onmicrosoft.com");
        if !domains.insert(domain.clone()) {
            domain = format!("{stem}{i}.onmicrosoft.com");
            domains.insert(domain.clone());
        }
        let currency = if rng.next_f64() < 2.0 / 3.0 {
            "USD"
        } else {
            "EUR"
        };
        let tax_rate = TAX_RATES[(rng.next_u64() % TAX_RATES.len() as u64) as usize];
        let mut monthly = vec![MonthlyDetail {
            invoice_type: "Recurring",
            currency,
            full_pretax: round2(log_uniform(&mut rng, 40.0, 8_000.0)),
            tax_rate,
            whole: false,
        }];
        if rng.next_f64() < 0.8 {
            let whole = rng.next_f64() < 0.35;
            let full = log_uniform(&mut rng, 10.0, 2_500.0);
            monthly.push(MonthlyDetail {
                invoice_type: "OneTime",
                currency,
                full_pretax: if whole { full.round() } else { round2(full) },
                tax_rate,
                whole,
            });
        }
        let customer = SimCustomer {
            id,
            name,
            domain,
            costs: if i == no_data {
                SimCosts::NoData
            } else {
                SimCosts::Generated(Vec::new())
            },
        };
        let monthly = (i != no_data).then_some(monthly);
        entries.push(Arc::new(Entry {
            key: customer.id.clone(),
            customer,
            monthly,
        }));
    }
    entries
}

fn log_uniform(rng: &mut SplitMix64, low: f64, high: f64) -> f64 {
    (low.ln() + rng.next_f64() * (high.ln() - low.ln())).exp()
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------

/// Deterministic PRNG (SplitMix64).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A parsed `application/x-www-form-urlencoded` body or query string.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(input: &str) -> Self {
        Form(
            input
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    /// The first non-empty value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn read_form(body: Incoming) -> Result<Form, StatusCode> {
    match Limited::new(body, MAX_FORM_BODY).collect().await {
        Ok(collected) => Ok(Form::parse(&String::from_utf8_lossy(&collected.to_bytes()))),
        Err(err) if err.is::<LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn has_scope(scopes: &str, wanted: &str) -> bool {
    scopes
        .split_whitespace()
        .any(|s| s.eq_ignore_ascii_case(wanted))
}

fn normalize_audience(audience: &str) -> String {
    audience.trim().trim_end_matches('/').to_owned()
}

fn is_pc_audience(audience: &str) -> bool {
    let audience = audience.trim().trim_end_matches('/');
    audience.eq_ignore_ascii_case(PC_RESOURCE) || audience.eq_ignore_ascii_case(PC_APP_ID)
}

fn new_access_token() -> String {
    format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.sim{}.{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

fn new_refresh_token() -> String {
    format!(
        "0.AXsim{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// An unsigned JWT-looking id token; clients are not meant to read it.
fn fake_id_token(creds: &Credentials, lifetime: Duration) -> String {
    let now = unix_now();
    let claims = serde_json::json!({
        "aud": creds.client_id,
        "iss": format!("https://sts.windows.net/{}/", creds.tenant),
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add_unsigned(lifetime.as_secs()),
        "upn": creds.username,
        "name": "Simulated Admin",
        "oid": Uuid::new_v4().to_string(),
    });
    format!(
        "{}.{}.",
        base64(br#"{"typ":"JWT","alg":"none"}"#, B64_URL, false),
        base64(claims.to_string().as_bytes(), B64_URL, false)
    )
}

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` on any other character.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.trim_end_matches('=').bytes() {
        let value = B64_STD.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | value;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `2026-01-09 02:02:12Z`, as in AAD errors.
fn aad_timestamp(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

fn response(status: StatusCode, content_type: Option<&'static str>, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Some(content_type) = content_type {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    resp
}

/// Sets a header; values that are not valid header values are skipped.
fn set_header(resp: &mut Response<Body>, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, value);
    }
}

fn no_store(resp: &mut Response<Body>) {
    set_header(resp, header::CACHE_CONTROL, "no-store, no-cache");
    set_header(resp, header::PRAGMA, "no-cache");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    async fn start() -> Simulator {
        Simulator::start(SimulatorConfig::default()).await.unwrap()
    }

    fn v1_url(sim: &Simulator) -> String {
        format!("{}/{}/oauth2/token", sim.url(), sim.credentials().tenant)
    }

    fn v2_url(sim: &Simulator) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            sim.url(),
            sim.credentials().tenant
        )
    }

    async fn post_form(client: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = client.post(url).form(form).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A v1 refresh-token grant; returns the whole response.
    async fn refresh_v1(
        sim: &Simulator,
        client: &reqwest::Client,
        refresh_token: &str,
    ) -> (u16, Value) {
        let creds = sim.credentials();
        post_form(
            client,
            &v1_url(sim),
            &[
                ("resource", PC_RESOURCE),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("scope", "openid"),
            ],
        )
        .await
    }

    async fn user_token(sim: &Simulator, client: &reqwest::Client) -> String {
        let (status, body) = refresh_v1(sim, client, &sim.credentials().refresh_token).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn get(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
        client.get(url).bearer_auth(token).send().await.unwrap()
    }

    fn costs_url(sim: &Simulator, id: &str) -> String {
        format!("{}/v1/customers/{id}/servicecosts/MostRecent", sim.url())
    }

    fn generated(sim: &Simulator) -> SimCustomer {
        sim.customers()
            .into_iter()
            .find(|c| matches!(c.costs, SimCosts::Generated(_)))
            .unwrap()
    }

    fn no_data(sim: &Simulator) -> SimCustomer {
        let mut found: Vec<SimCustomer> = sim
            .customers()
            .into_iter()
            .filter(|c| c.costs == SimCosts::NoData)
            .collect();
        assert_eq!(found.len(), 1);
        found.remove(0)
    }

    // --- AAD ---

    #[tokio::test]
    async fn v1_token_has_string_numbers_and_rotates_refresh_tokens() {
        let sim = start().await;
        let client = client();
        let initial = sim.credentials().refresh_token;
        let (status, body) = refresh_v1(&sim, &client, &initial).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], Value::from("3600"));
        assert_eq!(body["ext_expires_in"], Value::from("3600"));
        assert_eq!(body["resource"], PC_RESOURCE);
        assert_eq!(body["scope"], "user_impersonation");
        let expires_on: i64 = body["expires_on"].as_str().unwrap().parse().unwrap();
        let not_before: i64 = body["not_before"].as_str().unwrap().parse().unwrap();
        assert!(expires_on > unix_now() + 3500 && not_before < unix_now());
        assert!(body["id_token"].is_string());
        let rotated = body["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(rotated, initial);

        // The rotated one works, and the old one stays valid (as real AAD).
        assert_eq!(refresh_v1(&sim, &client, &rotated).await.0, 200);
        assert_eq!(refresh_v1(&sim, &client, &initial).await.0, 200);

        let secrets = sim.issued_secrets();
        assert!(secrets.contains(&rotated));
        assert!(secrets.contains(&body["access_token"].as_str().unwrap().to_owned()));
        assert!(secrets.contains(&sim.credentials().client_secret));
        assert!(secrets.contains(&sim.credentials().password));
        assert_eq!(sim.stats().token, 3);
    }

    #[tokio::test]
    async fn v2_token_has_numeric_expiry_and_no_v1_fields() {
        let sim = Simulator::start(SimulatorConfig {
            access_token_lifetime: Duration::from_secs(1200),
            ..SimulatorConfig::default()
        })
        .await
        .unwrap();
        let client = client();
        let creds = sim.credentials();
        let (status, body) = post_form(
            &client,
            &v2_url(&sim),
            &[
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &creds.refresh_token),
                ("scope", "https://api.partnercenter.microsoft.com/.default"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["expires_in"], Value::from(1200));
        assert_eq!(body["ext_expires_in"], Value::from(1200));
        assert_eq!(
            body["scope"],
            "https://api.partnercenter.microsoft.com/user_impersonation"
        );
        for absent in ["expires_on", "not_before", "resource", "id_token"] {
            assert!(body.get(absent).is_none(), "{absent} in {body}");
        }
        let rotated = body["refresh_token"].as_str().unwrap();
        assert_ne!(rotated, creds.refresh_token);
        let token = body["access_token"].as_str().unwrap();
        let resp = get(&client, &format!("{}/v1/customers", sim.url()), token).await;
        assert_eq!(resp.status(), 200);
    }

    #[tokio::test]
    async fn revoked_refresh_tokens_get_invalid_grant() {
        let sim = start().await;
        let client = client();
        let initial = sim.credentials().refresh_token;
        let (_, first) = refresh_v1(&sim, &client, &initial).await;
        let first = first["refresh_token"].as_str().unwrap().to_owned();
        let (_, second) = refresh_v1(&sim, &client, &first).await;
        let latest = second["refresh_token"].as_str().unwrap().to_owned();

        sim.revoke_refresh_tokens_except_latest();
        for old in [&initial, &first] {
            let (status, body) = refresh_v1(&sim, &client, old).await;
            assert_eq!(status, 400);
            assert_eq!(body["error"], "invalid_grant");
            assert_eq!(body["error_codes"], serde_json::json!([700082]));
        }
        let (status, body) = refresh_v1(&sim, &client, "not-a-token").await;
        assert_eq!(
            (status, body["error_codes"][0].as_u64()),
            (400, Some(70000))
        );
        assert_eq!(refresh_v1(&sim, &client, &latest).await.0, 200);
    }

    #[tokio::test]
    async fn wrong_secret_is_invalid_client() {
        let sim = start().await;
        let client = client();
        let creds = sim.credentials();
        let (status, body) = post_form(
            &client,
            &v1_url(&sim),
            &[
                ("resource", PC_RESOURCE),
                ("client_id", &creds.client_id),
                ("client_secret", "wrong-secret-value"),
                ("grant_type", "refresh_token"),
                ("refresh_token", &creds.refresh_token),
            ],
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_client");
        assert_eq!(body["error_codes"], serde_json::json!([7000215]));
        let description = body["error_description"].as_str().unwrap();
        assert!(description.starts_with("AADSTS7000215: "), "{description}");
        assert!(!description.contains("wrong-secret-value"));
        for field in ["timestamp", "trace_id", "correlation_id"] {
            assert!(body[field].is_string(), "{field}");
        }
        assert_eq!(
            body["error_uri"],
            "https://login.microsoftonline.com/error?code=7000215"
        );
    }

    #[tokio::test]
    async fn password_grant_and_unknown_tenant() {
        let sim = start().await;
        let client = client();
        let creds = sim.credentials();
        let form = |password: &'static str| {
            let creds = creds.clone();
            move |password_value: String| {
                vec![
                    ("resource".to_owned(), PC_RESOURCE.to_owned()),
                    ("client_id".to_owned(), creds.client_id.clone()),
                    ("client_secret".to_owned(), creds.client_secret.clone()),
                    ("grant_type".to_owned(), "password".to_owned()),
                    ("username".to_owned(), creds.username.clone()),
                    (password.to_owned(), password_value),
                ]
            }
        };
        let good = form("password")(creds.password.clone());
        let resp = client.post(v1_url(&sim)).form(&good).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert!(body["refresh_token"].is_string());

        let bad = form("password")("nope".to_owned());
        let resp = client.post(v1_url(&sim)).form(&bad).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (body["error"].as_str(), body["error_codes"][0].as_u64()),
            (Some("invalid_grant"), Some(50126))
        );

        let url = format!("{}/someone-else.onmicrosoft.com/oauth2/token", sim.url());
        let resp = client.post(url).form(&good).send().await.unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            (body["error"].as_str(), body["error_codes"][0].as_u64()),
            (Some("invalid_request"), Some(90002))
        );
    }

    #[tokio::test]
    async fn token_faults() {
        let sim = start().await;
        let client = client();
        let initial = sim.credentials().refresh_token;
        let cases = [
            (TokenFault::Down, 503, None),
            (
                TokenFault::InvalidGrant,
                400,
                Some(("invalid_grant", 700082)),
            ),
            (
                TokenFault::InteractionRequired,
                400,
                Some(("interaction_required", 50076)),
            ),
            (
                TokenFault::InvalidClient,
                401,
                Some(("invalid_client", 7000215)),
            ),
            (
                TokenFault::TemporarilyUnavailable,
                503,
                Some(("temporarily_unavailable", 90033)),
            ),
        ];
        for (fault, status, error) in cases {
            sim.knobs().set_token_fault(fault);
            let (got, body) = refresh_v1(&sim, &client, &initial).await;
            assert_eq!(got, status, "{fault:?}");
            if let Some((error, code)) = error {
                assert_eq!(body["error"], error);
                assert_eq!(body["error_codes"][0].as_u64(), Some(code));
            }
        }
        sim.knobs().set_token_fault(TokenFault::None);
        assert_eq!(refresh_v1(&sim, &client, &initial).await.0, 200);
    }

    #[tokio::test]
    async fn app_only_tokens_list_customers_but_not_service_costs() {
        let sim = start().await;
        let client = client();
        let creds = sim.credentials();
        let (status, body) = post_form(
            &client,
            &v1_url(&sim),
            &[
                ("resource", PC_RESOURCE),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert!(body.get("refresh_token").is_none());
        let token = body["access_token"].as_str().unwrap();
        let resp = get(&client, &format!("{}/v1/customers", sim.url()), token).await;
        assert_eq!(resp.status(), 200);
        let resp = get(&client, &costs_url(&sim, DOCUMENTED_ID), token).await;
        assert_eq!(resp.status(), 403);
        let body: Value = resp.json().await.unwrap();
        assert!(body["description"].is_string() && body["code"].is_number());

        // v2 app-only needs `/.default`.
        let (status, body) = post_form(
            &client,
            &v2_url(&sim),
            &[
                (
                    "scope",
                    "https://api.partnercenter.microsoft.com/user_impersonation",
                ),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope"))
        );
    }

    #[tokio::test]
    async fn graph_audience_is_rejected_with_900420() {
        let sim = start().await;
        let client = client();
        let creds = sim.credentials();
        let (status, body) = post_form(
            &client,
            &v1_url(&sim),
            &[
                ("resource", AAD_GRAPH),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
        assert_eq!(status, 200);
        let token = body["access_token"].as_str().unwrap();
        let resp = get(&client, &format!("{}/v1/customers", sim.url()), token).await;
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "900420");
        assert!(body["description"]
            .as_str()
            .unwrap()
            .contains("graph.windows.net"));
    }

    #[tokio::test]
    async fn generatetoken_exchanges_an_aad_token() {
        let sim = start().await;
        let client = client();
        let aad = user_token(&sim, &client).await;
        let url = format!("{}/v3/generatetoken", sim.url());
        let resp = client
            .post(&url)
            .bearer_auth(&aad)
            .form(&[("grant_type", "jwt_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], Value::from(3600));
        let pc = body["access_token"].as_str().unwrap().to_owned();
        assert_ne!(pc, aad);
        assert_eq!(
            get(&client, &costs_url(&sim, DOCUMENTED_ID), &pc)
                .await
                .status(),
            200
        );

        let no_auth = client
            .post(&url)
            .form(&[("grant_type", "jwt_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(no_auth.status(), 401);
        let again = client
            .post(format!("{}/generatetoken", sim.url()))
            .bearer_auth(&pc)
            .form(&[("grant_type", "jwt_token")])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 401);
        let wrong_grant = client
            .post(&url)
            .bearer_auth(&aad)
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_grant.status(), 400);
        assert_eq!(sim.stats().generatetoken, 4);
    }

    // --- customers ---

    /// Follows `links.next` from `first` (a path); returns every page and the
    /// next-link URIs seen. Each page is checked to be a Collection.
    async fn walk_pages(
        sim: &Simulator,
        client: &reqwest::Client,
        token: &str,
        first: &str,
    ) -> (Vec<Value>, Vec<String>) {
        let mut pages = Vec::new();
        let mut next_uris = Vec::new();
        let mut request = client.get(format!("{}{first}", sim.url()));
        loop {
            let resp = request.bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let page: Value = resp.json().await.unwrap();
            let items = page["items"].as_array().unwrap();
            assert_eq!(page["totalCount"].as_u64(), Some(items.len() as u64));
            assert_eq!(page["attributes"]["objectType"], "Collection");
            let next = page["links"].get("next").cloned();
            pages.push(page);
            let Some(next) = next else {
                break;
            };
            assert_eq!(next["method"], "GET");
            let uri = next["uri"].as_str().unwrap().to_owned();
            let url = match uri.strip_prefix("/v1/") {
                Some(rest) => format!("{}/v1/{rest}", sim.url()),
                None => format!("{}/v1/{uri}", sim.url()),
            };
            next_uris.push(uri);
            request = client.get(url);
            for h in next["headers"].as_array().unwrap() {
                request = request.header(h["key"].as_str().unwrap(), h["value"].as_str().unwrap());
            }
        }
        (pages, next_uris)
    }

    /// Follows `links.next` from `GET /v1/customers?size=10`; returns the ids and
    /// the next-link URIs seen.
    async fn crawl(
        sim: &Simulator,
        client: &reqwest::Client,
        token: &str,
    ) -> (Vec<String>, Vec<String>) {
        let (pages, next_uris) = walk_pages(sim, client, token, "/v1/customers?size=10").await;
        let mut ids = Vec::new();
        for page in &pages {
            assert!(page["links"]["self"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("/v1/customers?size=10"));
            for item in page["items"].as_array().unwrap() {
                let id = item["id"].as_str().unwrap();
                assert_eq!(item["companyProfile"]["tenantId"], id);
                assert_eq!(item["commerceId"], id);
                assert!(item["companyProfile"]["companyName"].is_string());
                assert!(item["companyProfile"]["domain"]
                    .as_str()
                    .unwrap()
                    .ends_with(".onmicrosoft.com"));
                ids.push(id.to_owned());
            }
        }
        (ids, next_uris)
    }

    #[tokio::test]
    async fn paging_follows_next_links_with_v1_prefix() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let (ids, next_uris) = crawl(&sim, &client, &token).await;
        let expected: Vec<String> = sim.customers().into_iter().map(|c| c.id).collect();
        assert_eq!(ids, expected);
        assert_eq!(
            next_uris,
            vec!["/v1/customers?size=10&seekOperation=Next"; 2]
        );
        assert_eq!(sim.stats().customers, 3);
    }

    #[tokio::test]
    async fn paging_follows_next_links_without_v1_prefix() {
        let sim = start().await;
        sim.knobs().set_next_link_without_v1(true);
        let client = client();
        let token = user_token(&sim, &client).await;
        let (ids, next_uris) = crawl(&sim, &client, &token).await;
        assert_eq!(ids.len(), 25);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25);
        assert_eq!(next_uris, vec!["customers?size=10&seekOperation=Next"; 2]);
    }

    #[tokio::test]
    async fn next_page_needs_a_valid_continuation_header() {
        let sim = start().await;
        let other = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let url = format!("{}/v1/customers?size=10&seekOperation=Next", sim.url());
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert!(body["description"]
            .as_str()
            .unwrap()
            .contains("MS-ContinuationToken"));

        let foreign = other.shared.continuation_token(10, None);
        for bad in ["garbage!", "AAAAAAAAAAAAAA==", foreign.as_str()] {
            let resp = client
                .get(&url)
                .bearer_auth(&token)
                .header("MS-ContinuationToken", bad)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 400, "{bad}");
        }
        let good = sim.shared.continuation_token(20, None);
        let resp = client
            .get(&url)
            .bearer_auth(&token)
            .header("MS-ContinuationToken", good)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        assert_eq!(page["totalCount"], 5);
        assert!(page["links"].get("next").is_none());
    }

    #[tokio::test]
    async fn looping_pages_extra_items_and_given_bodies() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        sim.knobs()
            .set_extra_customer_items(vec![serde_json::json!({"id": null}), Value::from(7)]);
        sim.knobs().set_looping_customer_pages(true);
        let url = format!("{}/v1/customers?size=10", sim.url());
        let first: Value = get(&client, &url, &token).await.json().await.unwrap();
        let items = first["items"].as_array().unwrap();
        assert_eq!(items.len(), 12);
        assert_eq!(items[10], serde_json::json!({"id": null}));
        assert_eq!(items[11], 7);
        let mut tokens = HashSet::new();
        let mut next = first["links"]["next"].clone();
        for _ in 0..3 {
            let value = next["headers"][0]["value"].as_str().unwrap().to_owned();
            assert!(tokens.insert(value.clone()), "a fresh token each time");
            let page: Value = client
                .get(format!("{}{}", sim.url(), next["uri"].as_str().unwrap()))
                .bearer_auth(&token)
                .header("MS-ContinuationToken", value)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(page["items"], first["items"], "the same page again");
            next = page["links"]["next"].clone();
        }
        sim.knobs().set_looping_customer_pages(false);
        sim.knobs().set_extra_customer_items(Vec::new());
        let (ids, _) = crawl(&sim, &client, &token).await;
        assert_eq!(ids.len(), 25);

        let id = generated(&sim).id;
        sim.knobs()
            .set_service_costs_body(&id.to_ascii_uppercase(), Some(r#"{"details":[]}"#));
        let resp = get(&client, &costs_url(&sim, &id), &token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), r#"{"details":[]}"#);
        sim.knobs().set_service_costs_body(&id, None);
        let body: Value = get(&client, &costs_url(&sim, &id), &token)
            .await
            .json()
            .await
            .unwrap();
        assert!(body["details"].as_array().is_some_and(|d| !d.is_empty()));
    }

    #[tokio::test]
    async fn page_size_is_capped() {
        let sim = start().await;
        sim.knobs().set_page_size_cap(7);
        let client = client();
        let token = user_token(&sim, &client).await;
        for query in ["?size=50", ""] {
            let resp = get(
                &client,
                &format!("{}/v1/customers{query}", sim.url()),
                &token,
            )
            .await;
            let page: Value = resp.json().await.unwrap();
            assert_eq!(page["totalCount"], 7, "{query}");
            assert_eq!(
                page["links"]["next"]["uri"],
                "/v1/customers?size=7&seekOperation=Next"
            );
        }
        let resp = get(
            &client,
            &format!("{}/v1/customers?size=abc", sim.url()),
            &token,
        )
        .await;
        assert_eq!(resp.status(), 400);
    }

    #[tokio::test]
    async fn customers_without_bearer_is_401() {
        let sim = start().await;
        let client = client();
        let resp = client
            .get(format!("{}/v1/customers", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let resp = get(&client, &format!("{}/v1/customers", sim.url()), "made-up").await;
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
    }

    // --- service costs ---

    #[tokio::test]
    async fn documented_body_is_byte_identical_with_headers() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let resp = client
            .get(costs_url(&sim, DOCUMENTED_ID))
            .bearer_auth(&token)
            .header("MS-RequestId", "11111111-2222-3333-4444-555555555555")
            .header("MS-CorrelationId", "66666666-7777-8888-9999-000000000000")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let headers = resp.headers().clone();
        assert_eq!(headers["content-type"], "application/json; charset=utf-8");
        assert_eq!(
            headers["ms-requestid"],
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(
            headers["ms-correlationid"],
            "66666666-7777-8888-9999-000000000000"
        );
        assert!(headers["ms-cv"].to_str().unwrap().ends_with(".0"));
        assert!(headers.contains_key("ms-serverid"));
        assert_eq!(resp.bytes().await.unwrap(), FIXTURE_COSTS.as_bytes());

        // Generated when absent.
        let resp = get(&client, &costs_url(&sim, DOCUMENTED_ID), &token).await;
        let id = resp.headers()["ms-requestid"].to_str().unwrap();
        assert!(Uuid::parse_str(id).is_ok());

        let log = sim.request_log();
        let logged: Vec<_> = log
            .iter()
            .filter(|r| r.endpoint == Endpoint::ServiceCosts)
            .collect();
        assert_eq!(logged.len(), 2);
        assert_eq!(
            logged[0].ms_request_id.as_deref(),
            Some("11111111-2222-3333-4444-555555555555")
        );
        assert_eq!(logged[1].ms_request_id, None);
        assert_eq!(
            logged[0].path,
            format!("/v1/customers/{DOCUMENTED_ID}/servicecosts/MostRecent")
        );
        assert_eq!(logged[0].status, 200);
    }

    #[tokio::test]
    async fn no_data_and_unknown_customers_are_404() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let resp = get(&client, &costs_url(&sim, &no_data(&sim).id), &token).await;
        assert_eq!(resp.status(), 404);
        let resp = get(
            &client,
            &costs_url(&sim, "00000000-0000-0000-0000-00000000dead"),
            &token,
        )
        .await;
        assert_eq!(resp.status(), 404);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 1000);
        assert_eq!(sim.stats().by_status.get(&404), Some(&2));
    }

    #[tokio::test]
    async fn period_is_case_insensitive() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        for period in ["mostrecent", "MOSTRECENT", "MostRecent", "mostRecent"] {
            let url = format!(
                "{}/v1/customers/{DOCUMENTED_ID}/servicecosts/{period}",
                sim.url()
            );
            assert_eq!(get(&client, &url, &token).await.status(), 200, "{period}");
        }
        for period in ["Current", "None", "mostrecen"] {
            let url = format!(
                "{}/v1/customers/{DOCUMENTED_ID}/servicecosts/{period}",
                sim.url()
            );
            assert_eq!(get(&client, &url, &token).await.status(), 400, "{period}");
        }
    }

    #[tokio::test]
    async fn generated_costs_have_the_documented_shape() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let customer = generated(&sim);
        let SimCosts::Generated(details) = &customer.costs else {
            unreachable!()
        };
        let resp = get(&client, &costs_url(&sim, &customer.id), &token).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert!(body.get("currencyCode").is_none());
        assert_eq!(body["customerId"], customer.id.as_str());
        assert_eq!(body["pretaxTotal"].as_f64(), Some(details[0].pretax));
        let served = body["details"].as_array().unwrap();
        assert_eq!(served.len(), details.len());
        for (got, want) in served.iter().zip(details) {
            let summary = &got["summary"];
            assert_eq!(got["invoiceType"], want.invoice_type.as_str());
            assert_eq!(summary["pretaxTotal"].as_f64(), Some(want.pretax));
            assert_eq!(summary["tax"].as_f64(), Some(want.tax));
            assert_eq!(
                summary["afterTaxTotal"].as_f64(),
                Some(round2(want.pretax + want.tax))
            );
            assert_eq!(summary["currencyCode"], want.currency.as_str());
            assert!(summary["billingStartDate"]
                .as_str()
                .unwrap()
                .ends_with("-01T00:00:00Z"));
            assert!(summary["billingEndDate"]
                .as_str()
                .unwrap()
                .ends_with("T23:59:59.9999999Z"));
            assert_eq!(summary["attributes"]["objectType"], "ServiceCostsSummary");
        }
        assert_eq!(
            body["links"]["self"]["uri"],
            format!("/customers/{}/servicecosts/MostRecent", customer.id)
        );
        // Stable within a test.
        assert_eq!(sim.customers(), sim.customers());
    }

    #[tokio::test]
    async fn added_and_removed_customers() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let victim = generated(&sim);
        assert!(sim.remove_customer(&victim.id));
        assert!(!sim.remove_customer(&victim.id));
        assert_eq!(
            get(&client, &costs_url(&sim, &victim.id), &token)
                .await
                .status(),
            404
        );
        assert_eq!(sim.customers().len(), 24);

        sim.add_customer(SimCustomer {
            id: "12345678-1234-4234-8234-123456789abc".to_owned(),
            name: "Added".to_owned(),
            domain: "added.onmicrosoft.com".to_owned(),
            costs: SimCosts::Generated(vec![SimDetail {
                invoice_type: "OneTime".to_owned(),
                currency: "GBP".to_owned(),
                pretax: 2.0,
                tax: 0.2,
                billing_start: "2019-04-01T00:00:00Z".to_owned(),
                billing_end: "2019-04-30T23:59:59.9999999Z".to_owned(),
            }]),
        });
        assert_eq!(sim.customers().last().unwrap().name, "Added");
        let resp = get(
            &client,
            &costs_url(&sim, "12345678-1234-4234-8234-123456789ABC"),
            &token,
        )
        .await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains("\"pretaxTotal\":2,"), "{text}");
        assert!(text.contains("\"afterTaxTotal\":2.2"), "{text}");
        assert!(text.contains("\"currencySymbol\":\"£\""), "{text}");
    }

    // --- faults ---

    #[tokio::test]
    async fn rate_limit_answers_429_with_retry_after() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        sim.knobs().set_rate_limit(Some(60)); // bucket of 5
        let url = costs_url(&sim, DOCUMENTED_ID);
        for _ in 0..5 {
            assert_eq!(get(&client, &url, &token).await.status(), 200);
        }
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let secs: u64 = resp.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&secs), "{secs}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["statusCode"], 429);
        assert_eq!(
            body["message"],
            format!("Rate limit is exceeded. Try again in {secs} seconds.")
        );
        // Token requests are not limited.
        assert_eq!(
            refresh_v1(&sim, &client, &sim.credentials().refresh_token)
                .await
                .0,
            200
        );
        assert_eq!(sim.stats().throttled, 1);
        sim.knobs().set_rate_limit(None);
        assert_eq!(get(&client, &url, &token).await.status(), 200);
    }

    #[tokio::test]
    async fn throttle_next_and_error_rate() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let url = costs_url(&sim, DOCUMENTED_ID);
        sim.knobs().set_throttle_next(2, 7);
        for _ in 0..2 {
            let resp = get(&client, &url, &token).await;
            assert_eq!(resp.status(), 429);
            assert_eq!(resp.headers()["retry-after"], "7");
        }
        assert_eq!(get(&client, &url, &token).await.status(), 200);

        sim.knobs().set_error_rate(1.0);
        assert_eq!(get(&client, &url, &token).await.status(), 503);
        sim.knobs().set_error_rate(0.5);
        let mut failed = 0;
        for _ in 0..40 {
            if get(&client, &url, &token).await.status() == 503 {
                failed += 1;
            }
        }
        assert!((8..=32).contains(&failed), "{failed}");
        assert_eq!(sim.stats().throttled, 2);
    }

    #[tokio::test]
    async fn bom_knob_prefixes_json_bodies() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let url = costs_url(&sim, DOCUMENTED_ID);
        sim.knobs().set_bom(true);
        let body = get(&client, &url, &token).await.bytes().await.unwrap();
        assert_eq!(&body[..3], BOM);
        assert_eq!(&body[3..], FIXTURE_COSTS.as_bytes());
        let resp = client
            .post(v1_url(&sim))
            .form(&[("grant_type", "password")])
            .send()
            .await
            .unwrap();
        assert!(resp.bytes().await.unwrap().starts_with(BOM));
        sim.knobs().set_bom(false);
        let body = get(&client, &url, &token).await.bytes().await.unwrap();
        assert_eq!(body, FIXTURE_COSTS.as_bytes());
    }

    #[tokio::test]
    async fn expired_access_tokens_get_401() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let url = costs_url(&sim, DOCUMENTED_ID);
        assert_eq!(get(&client, &url, &token).await.status(), 200);
        sim.expire_access_tokens();
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 401);
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["code"].is_number() && body["description"].as_str().unwrap().contains("expired")
        );
        let fresh = user_token(&sim, &client).await;
        assert_eq!(get(&client, &url, &fresh).await.status(), 200);

        sim.knobs()
            .set_access_token_lifetime(Duration::from_millis(300));
        let short = user_token(&sim, &client).await;
        assert_eq!(get(&client, &url, &short).await.status(), 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(get(&client, &url, &short).await.status(), 401);
    }

    #[tokio::test]
    async fn per_customer_faults() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let id = generated(&sim).id;
        let url = costs_url(&sim, &id);

        sim.knobs().set_malformed(&id, true);
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.unwrap();
        assert!(serde_json::from_slice::<Value>(&body).is_err());
        sim.knobs().set_malformed(&id, false);

        sim.knobs().set_status(&id.to_uppercase(), Some(403));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.bytes().await.unwrap(), FIXTURE_403.as_bytes());
        sim.knobs().set_status(&id, Some(401));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.bytes().await.unwrap(), FIXTURE_401_MFA.as_bytes());
        sim.knobs().set_status(&id, Some(500));
        assert_eq!(get(&client, &url, &token).await.status(), 500);
        sim.knobs().set_status(&id, None);
        assert_eq!(get(&client, &url, &token).await.status(), 200);
    }

    #[tokio::test]
    async fn huge_body_is_valid_and_at_least_64_mib() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let id = generated(&sim).id;
        sim.knobs().set_huge_body(&id, true);
        let resp = get(&client, &costs_url(&sim, &id), &token).await;
        assert_eq!(resp.status(), 200);
        assert!(resp.content_length().is_none());
        let body = resp.bytes().await.unwrap();
        assert!(body.len() >= HUGE_BODY_BYTES, "{}", body.len());
        assert!(body.len() < HUGE_BODY_BYTES + 128 * 1024);
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).unwrap();
    }

    #[tokio::test]
    async fn hanging_customer_never_answers_and_shutdown_releases_it() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let id = generated(&sim).id;
        sim.knobs().set_hang(&id, true);
        let result = client
            .get(costs_url(&sim, &id))
            .bearer_auth(&token)
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(result.unwrap_err().is_timeout());
        // Others are unaffected.
        assert_eq!(
            get(&client, &costs_url(&sim, DOCUMENTED_ID), &token)
                .await
                .status(),
            200
        );

        let pending = tokio::spawn({
            let (client, url, token) = (client.clone(), costs_url(&sim, &id), token.clone());
            async move { client.get(url).bearer_auth(token).send().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let addr = sim.addr();
        tokio::time::timeout(Duration::from_secs(5), sim.shutdown())
            .await
            .unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .unwrap()
            .unwrap();
        assert!(answered.map(|r| r.status() == 503).unwrap_or(true));
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn latency_and_in_flight_max() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        sim.knobs().set_latency(Duration::from_millis(200));
        let started = Instant::now();
        let url = costs_url(&sim, DOCUMENTED_ID);
        let requests = (0..4).map(|_| get(&client, &url, &token));
        let responses = futures::future::join_all(requests).await;
        assert!(responses.iter().all(|r| r.status() == 200));
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(sim.stats().in_flight_max, 4);
        assert_eq!(sim.stats().servicecosts, 4);
    }

    #[tokio::test]
    async fn garbage_requests_do_not_hurt_the_server() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sim = start().await;
        let client = client();
        for garbage in [
            &b"GARBAGE\r\n\r\n"[..],
            b"\x00\xff\xfe\r\n",
            b"GET /v1/customers HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        ] {
            let mut stream = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
            stream.write_all(garbage).await.unwrap();
            let mut buf = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut buf)).await;
        }
        let big = "x".repeat(MAX_FORM_BODY + 1);
        let resp = client.post(v1_url(&sim)).body(big).send().await.unwrap();
        assert_eq!(resp.status(), 413);
        let resp = client
            .post(v1_url(&sim))
            .body("grant_type=%zz%&client_id=%E2%28%A1&=&&")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let resp = client
            .get(format!("{}/v1//v1/customers", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let resp = client
            .get(format!("{}/nope", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let resp = client
            .delete(format!("{}/v1/customers", sim.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET");
        let resp = client.get(v1_url(&sim)).send().await.unwrap();
        assert_eq!(resp.status(), 405);
        assert!(!user_token(&sim, &client).await.is_empty());
    }

    // --- usage records ---

    fn usage_url(sim: &Simulator) -> String {
        format!("{}/v1/customers/usagerecords", sim.url())
    }

    async fn app_token(sim: &Simulator, client: &reqwest::Client) -> String {
        let creds = sim.credentials();
        let (status, body) = post_form(
            client,
            &v1_url(sim),
            &[
                ("resource", PC_RESOURCE),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Follows `links.next` from `GET /v1/customers/usagerecords`; returns the items
    /// of all pages and the next-link URIs seen.
    async fn crawl_usage(
        sim: &Simulator,
        client: &reqwest::Client,
        token: &str,
    ) -> (Vec<Value>, Vec<String>) {
        let (pages, next_uris) = walk_pages(sim, client, token, "/v1/customers/usagerecords").await;
        let items = pages
            .iter()
            .flat_map(|p| p["items"].as_array().unwrap().iter().cloned())
            .collect();
        (items, next_uris)
    }

    /// The number of fractional digits of the first `"key":<number>` in `text`.
    fn fraction_digits(text: &str, key: &str) -> Option<usize> {
        let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
        let number: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .collect();
        Some(number.split_once('.').map_or(0, |(_, f)| f.len()))
    }

    #[tokio::test]
    async fn usage_records_have_the_documented_shapes() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let resp = get(&client, &usage_url(&sim), &token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], JSON_UTF8);
        assert!(resp.headers().contains_key("ms-requestid"));
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        let items = body["items"].as_array().unwrap();
        assert_eq!(body["totalCount"].as_u64(), Some(items.len() as u64));
        assert_eq!(body["attributes"]["objectType"], "Collection");
        assert_eq!(body["links"]["self"]["uri"], "/v1/customers/usagerecords");
        assert!(
            body["links"].get("next").is_none(),
            "unpaged, as documented"
        );
        assert_eq!(items, &sim.usage_records());

        let customers: HashSet<String> = sim.customers().into_iter().map(|c| c.id).collect();
        let now = unix_now() as f64;
        for item in items {
            let id = item["resourceId"].as_str().unwrap();
            assert!(customers.contains(id), "{id}");
            assert_eq!(item["id"], id);
            assert_eq!(item["resourceName"], item["name"]);
            assert_eq!(
                item["attributes"]["objectType"],
                "CustomerMonthlyUsageRecord"
            );
            assert_eq!(item["budget"], item["customerSpendingBudget"]);
            assert_eq!(item["budget"]["attributes"]["objectType"], "SpendingBudget");
            let date = item["lastModifiedDate"].as_str().unwrap();
            assert!(date.ends_with("+00:00"), "{date}");
            let utc = format!("{}Z", date.trim_end_matches("+00:00"));
            let refreshed = humantime::parse_rfc3339_weak(&utc)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(
                refreshed < now && refreshed > now - 2.0 * 86_400.0,
                "{date}"
            );
            if item["isUpgraded"] == true {
                assert!(item["currencyCode"].is_string(), "{item}");
                assert!(item["usdTotalCost"].is_number(), "{item}");
                assert!(item.get("currencyLocale").is_none(), "{item}");
            } else {
                assert_eq!(item["isUpgraded"], false);
                assert!(item["currencyLocale"].is_string(), "{item}");
                assert!(item.get("currencyCode").is_none(), "{item}");
            }
            let total = item["totalCost"].as_f64().unwrap();
            let percent = item["percentUsed"].as_f64().unwrap();
            match item["budget"].get("amount") {
                None => assert_eq!(item["percentUsed"], 0, "{item}"),
                Some(budget) => {
                    let budget = budget.as_f64().unwrap();
                    assert!((percent - total / budget * 100.0).abs() < 0.01, "{item}");
                }
            }
        }

        // The documented customer spends the documented amount, in 20 digits.
        let documented = items
            .iter()
            .find(|item| item["resourceId"] == DOCUMENTED_ID)
            .unwrap();
        assert_eq!(
            documented["totalCost"].as_f64(),
            Some(DOCUMENTED_USAGE_TOTAL)
        );
        assert_eq!(documented["percentUsed"], 602.84);
        assert_eq!(documented["budget"]["amount"], 20);
        assert!(
            text.contains("\"totalCost\":120.56829999999959568413,"),
            "{text}"
        );

        // The exporter's parser reading every record to the same values is tested
        // in the exporter (`partner_center::usage`).

        assert_eq!(sim.stats().usagerecords, 1);
        let logged: Vec<LoggedRequest> = sim
            .request_log()
            .into_iter()
            .filter(|r| r.endpoint == Endpoint::UsageRecords)
            .collect();
        assert_eq!(logged.len(), 1);
        assert_eq!(
            (logged[0].path.as_str(), logged[0].status),
            ("/v1/customers/usagerecords", 200)
        );
    }

    #[test]
    fn the_default_usage_records_show_every_shape() {
        let config = SimulatorConfig::default();
        let shared = Shared::new(&config);
        let served = shared.usage_records(false, BTreeMap::new());
        let records: Vec<&Value> = served.iter().map(|r| &r.value).collect();
        let azure_plan = records.iter().filter(|r| r["isUpgraded"] == true).count();
        let legacy = records.iter().filter(|r| r["isUpgraded"] == false).count();
        assert_eq!(azure_plan + legacy, records.len());
        assert!(legacy >= 1 && azure_plan > legacy, "{legacy} {azure_plan}");
        assert!(
            records.len() < config.customers,
            "some customers have no record"
        );
        assert!(records.iter().any(|r| r["resourceId"] == DOCUMENTED_ID));

        let percents: Vec<f64> = records
            .iter()
            .filter(|r| r["budget"].get("amount").is_some())
            .map(|r| r["percentUsed"].as_f64().unwrap())
            .collect();
        assert!(percents.len() < records.len(), "some have no budget");
        assert!(percents.iter().any(|p| *p > 100.0), "{percents:?}");
        assert!(
            percents.iter().any(|p| (70.0..=100.0).contains(p)),
            "{percents:?}"
        );
        assert!(
            records
                .iter()
                .any(|r| r["isUpgraded"] == false && r["budget"].get("amount").is_some()),
            "a legacy customer with a budget"
        );

        let digits: Vec<Option<usize>> = served
            .iter()
            .filter(|r| r.value["isUpgraded"] == true)
            .map(|r| fraction_digits(&r.to_json(), "totalCost"))
            .collect();
        assert!(digits.contains(&Some(20)), "{digits:?}");
        assert!(
            digits.iter().any(|d| d.is_some_and(|d| d <= 2)),
            "{digits:?}"
        );
        for record in &served {
            let text = record.to_json();
            let read: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(read, record.value, "the text reads back as the value");
        }
    }

    #[test]
    fn usage_records_are_deterministic_and_about_as_often_as_said() {
        let config = SimulatorConfig {
            customers: 3_000,
            ..SimulatorConfig::default()
        };
        let values = |shared: &Shared| -> Vec<Value> {
            shared
                .usage_records(false, BTreeMap::new())
                .into_iter()
                .map(|r| r.value)
                .collect()
        };
        let records = values(&Shared::new(&config));
        assert_eq!(records, values(&Shared::new(&config)));
        let none = config.customers - records.len();
        let legacy = records.iter().filter(|r| r["isUpgraded"] == false).count();
        let share = |n: usize| n as f64 / config.customers as f64;
        assert!((0.2..0.3).contains(&share(none)), "{none}");
        assert!((0.1..0.19).contains(&share(legacy)), "{legacy}");
        let budgets = records
            .iter()
            .filter(|r| r["budget"].get("amount").is_some())
            .count();
        assert!(
            (0.5..0.7).contains(&(budgets as f64 / records.len() as f64)),
            "{budgets}"
        );
    }

    #[tokio::test]
    async fn usage_records_page_with_continuation_tokens() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let all = sim.usage_records();
        assert!(all.len() > 8, "{}", all.len());

        sim.knobs().set_usage_page_size(Some(4));
        let (items, next_uris) = crawl_usage(&sim, &client, &token).await;
        assert_eq!(items, all);
        let pages = all.len().div_ceil(4);
        assert_eq!(
            next_uris,
            vec!["/v1/customers/usagerecords?seekOperation=Next"; pages - 1]
        );
        assert_eq!(sim.stats().usagerecords, pages as u64);

        let next = format!("{}?seekOperation=Next", usage_url(&sim));
        let resp = get(&client, &next, &token).await;
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert!(body["description"]
            .as_str()
            .unwrap()
            .contains("MS-ContinuationToken"));

        sim.knobs().set_next_link_without_v1(true);
        let (items, next_uris) = crawl_usage(&sim, &client, &token).await;
        assert_eq!(items, all);
        assert_eq!(
            next_uris,
            vec!["customers/usagerecords?seekOperation=Next"; pages - 1]
        );
        sim.knobs().set_next_link_without_v1(false);

        sim.knobs().set_usage_page_size(Some(0));
        let (items, next_uris) = crawl_usage(&sim, &client, &token).await;
        assert_eq!(items, all, "pages of one");
        assert_eq!(next_uris.len(), all.len() - 1);

        sim.knobs().set_usage_page_size(None);
        let (items, next_uris) = crawl_usage(&sim, &client, &token).await;
        assert_eq!((items, next_uris.len()), (all, 0));
    }

    #[tokio::test]
    async fn usage_knobs_force_statuses_bodies_and_records() {
        let sim = start().await;
        let client = client();
        let token = user_token(&sim, &client).await;
        let url = usage_url(&sim);

        sim.knobs().set_usage_status(Some(403));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.bytes().await.unwrap(), FIXTURE_403.as_bytes());
        sim.knobs().set_usage_status(Some(500));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 500);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 800_003);
        let costs = get(&client, &costs_url(&sim, DOCUMENTED_ID), &token).await;
        assert_eq!(costs.status(), 200, "service costs are not affected");
        sim.knobs().set_usage_status(None);
        assert_eq!(get(&client, &url, &token).await.status(), 200);

        let given = r#"{"items":[1,{"resourceId":null}]}"#;
        sim.knobs().set_usage_body(Some(given.to_owned()));
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), given);
        sim.knobs().set_usage_body(None);

        // No budget: the key left out, or `"amount": null`.
        let records = sim.usage_records();
        let without: HashSet<&str> = records
            .iter()
            .filter(|r| r["budget"].get("amount").is_none())
            .map(|r| r["resourceId"].as_str().unwrap())
            .collect();
        assert!(!without.is_empty());
        sim.knobs().set_usage_budget_null(true);
        let text = get(&client, &url, &token).await.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        for item in body["items"].as_array().unwrap() {
            let amount = item["budget"].get("amount");
            if without.contains(item["resourceId"].as_str().unwrap()) {
                assert_eq!(amount, Some(&Value::Null), "{item}");
                assert_eq!(item["customerSpendingBudget"]["amount"], Value::Null);
            } else {
                assert!(amount.is_some_and(Value::is_number), "{item}");
            }
        }
        assert_eq!(body["items"], Value::from(sim.usage_records()));
        let no_budget = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["budget"].get("amount").is_none_or(Value::is_null))
            .count();
        assert_eq!(no_budget, without.len());
        sim.knobs().set_usage_budget_null(false);
        assert_eq!(sim.usage_records(), records);

        // Records set by hand: in place, removed, and for a stranger at the end.
        let first = records[0]["resourceId"].as_str().unwrap().to_owned();
        let second = records[1]["resourceId"].as_str().unwrap().to_owned();
        let stranger = "00000000-0000-4000-8000-00000000beef";
        let custom =
            serde_json::json!({"resourceId": first, "totalCost": 1.5, "currencyCode": "NOK"});
        sim.knobs()
            .set_usage_record(&first.to_ascii_uppercase(), Some(custom.clone()));
        sim.knobs().set_usage_record(&second, Some(Value::Null));
        let strange = serde_json::json!({"resourceId": stranger, "totalCost": 2});
        sim.knobs()
            .set_usage_record(stranger, Some(strange.clone()));
        let body: Value = get(&client, &url, &token).await.json().await.unwrap();
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), records.len());
        assert_eq!(items[0], custom);
        assert!(items
            .iter()
            .all(|item| item["resourceId"] != second.as_str()));
        assert_eq!(items.last(), Some(&strange));
        assert_eq!(items, &sim.usage_records());
        for id in [first.as_str(), second.as_str(), stranger] {
            sim.knobs().set_usage_record(id, None);
        }
        assert_eq!(sim.usage_records(), records);

        // A customer's record does not depend on the others.
        let gone = records[2]["resourceId"].as_str().unwrap();
        assert!(sim.remove_customer(gone));
        let rest: Vec<Value> = records
            .iter()
            .filter(|r| r["resourceId"] != gone)
            .cloned()
            .collect();
        assert_eq!(sim.usage_records(), rest);
    }

    #[tokio::test]
    async fn usage_records_are_an_app_plus_user_api_route() {
        let sim = start().await;
        let client = client();
        let url = usage_url(&sim);
        let app = app_token(&sim, &client).await;
        let resp = get(&client, &url, &app).await;
        assert_eq!(resp.status(), 403);
        let refused: Value = resp.json().await.unwrap();
        assert_eq!(refused["code"], 2032);
        assert!(refused["description"]
            .as_str()
            .unwrap()
            .contains("App+User"));
        let costs = get(&client, &costs_url(&sim, DOCUMENTED_ID), &app).await;
        assert_eq!(costs.status(), 403);
        assert_eq!(costs.json::<Value>().await.unwrap(), refused);
        assert_eq!(client.get(&url).send().await.unwrap().status(), 401);

        let token = user_token(&sim, &client).await;
        sim.knobs().set_throttle_next(1, 3);
        let resp = get(&client, &url, &token).await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.headers()["retry-after"], "3");
        sim.knobs().set_error_rate(1.0);
        assert_eq!(get(&client, &url, &token).await.status(), 503);
        sim.knobs().set_error_rate(0.0);

        sim.knobs().set_latency(Duration::from_millis(150));
        let started = Instant::now();
        let responses = futures::future::join_all((0..3).map(|_| get(&client, &url, &token))).await;
        assert!(responses.iter().all(|r| r.status() == 200));
        assert!(started.elapsed() >= Duration::from_millis(150));
        sim.knobs().set_latency(Duration::ZERO);

        let resp = client.post(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()["allow"], "GET");

        let stats = sim.stats();
        assert_eq!(stats.usagerecords, 8);
        assert_eq!(stats.servicecosts, 1);
        assert_eq!((stats.throttled, stats.in_flight_max), (1, 3));
    }

    // --- synthetic data and helpers ---

    #[test]
    fn synthetic_customers_are_deterministic_and_plausible() {
        let a = synthetic_customers(25, 1);
        let b = synthetic_customers(25, 1);
        let c = synthetic_customers(25, 2);
        let ids = |e: &[Arc<Entry>]| e.iter().map(|e| e.customer.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(ids(&a), ids(&c));
        assert_eq!(a[0].customer.id, DOCUMENTED_ID);
        assert_eq!(a[0].customer.costs, SimCosts::Documented);
        assert_eq!(
            a.iter()
                .filter(|e| e.customer.costs == SimCosts::NoData)
                .count(),
            1
        );
        for entry in &a[1..] {
            assert!(Uuid::parse_str(&entry.customer.id).is_ok());
            assert!(entry.customer.domain.ends_with(".onmicrosoft.com"));
            assert_ne!(entry.customer.name, "Fabrikam");
        }

        let period = Period::current();
        let many = synthetic_customers(3_000, 1);
        let details: Vec<SimDetail> = many
            .iter()
            .filter_map(|e| match e.costs(&period) {
                SimCosts::Generated(d) => Some(d),
                _ => None,
            })
            .flatten()
            .collect();
        let recurring = details
            .iter()
            .filter(|d| d.invoice_type == "Recurring")
            .count();
        let usd =
            details.iter().filter(|d| d.currency == "USD").count() as f64 / details.len() as f64;
        assert_eq!(recurring, 2_998);
        assert!((0.55..0.78).contains(&usd), "{usd}");
        assert!(details.len() > 2_998 + 2_000, "most have OneTime");
        assert!(details
            .iter()
            .all(|d| d.tax <= d.pretax * 0.2 + 0.01 && d.tax >= 0.0));
        assert!(details
            .iter()
            .all(|d| d.billing_end.ends_with("T23:59:59.9999999Z")));
    }

    #[test]
    fn hundred_thousand_customers_are_fast_and_distinct() {
        let started = Instant::now();
        let entries = synthetic_customers(100_000, 42);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(entries.len(), 100_000);
        let names: HashSet<&str> = entries.iter().map(|e| e.customer.name.as_str()).collect();
        let ids: HashSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        let domains: HashSet<&str> = entries.iter().map(|e| e.customer.domain.as_str()).collect();
        assert_eq!(
            (names.len(), ids.len(), domains.len()),
            (100_000, 100_000, 100_000)
        );
    }

    #[test]
    fn amounts_and_dates_format_as_documented() {
        assert_eq!(amount(2.0, true).to_string(), "2");
        assert_eq!(amount(2.0, false).to_string(), "2.0");
        assert_eq!(amount(17.22, true).to_string(), "17.22");
        assert_eq!(amount(0.0, false).to_string(), "0.0");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(aad_timestamp(1_767_924_132), "2026-01-09 02:02:12Z");
    }

    #[test]
    fn base64_and_continuation_tokens_round_trip() {
        assert_eq!(base64(b"hello", B64_STD, true), "aGVsbG8=");
        assert_eq!(base64(b"hello", B64_URL, false), "aGVsbG8");
        assert_eq!(base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64_decode("a*b"), None);
        let shared = Shared::new(&SimulatorConfig {
            customers: 0,
            ..SimulatorConfig::default()
        });
        for offset in [0, 10, 500, usize::MAX] {
            let token = shared.continuation_token(offset, None);
            assert_eq!(shared.parse_continuation(&token), Some(offset));
            let token = shared.continuation_token(offset, Some(7));
            assert_eq!(shared.parse_continuation(&token), Some(offset));
        }
        let token = shared.continuation_token(10, None);
        let mut tampered = token.into_bytes();
        tampered[2] = if tampered[2] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            shared.parse_continuation(std::str::from_utf8(&tampered).unwrap()),
            None
        );
    }

    #[test]
    fn token_bucket_holds_five_seconds_and_says_when_to_retry() {
        let now = Instant::now();
        let mut bucket = Bucket::new(120); // 2/s, capacity 10
        for _ in 0..10 {
            assert_eq!(bucket.take(now), Ok(()));
        }
        assert_eq!(bucket.take(now), Err(1));
        assert_eq!(bucket.take(now + Duration::from_millis(500)), Ok(()));
        let mut slow = Bucket::new(6); // 0.1/s, capacity 1
        assert_eq!(slow.take(now), Ok(()));
        assert_eq!(slow.take(now), Err(10));
    }

    #[test]
    fn forms_decode_leniently() {
        let form = Form::parse("a=1+2&b=%41%zz&c=&a=3&d");
        assert_eq!(form.get("a"), Some("1 2"));
        assert_eq!(form.get("b"), Some("A%zz"));
        assert_eq!(form.get("c"), None);
        assert_eq!(form.get("d"), None);
        let target = parse_v2_scope(
            "https://api.partnercenter.microsoft.com/user_impersonation offline_access",
        )
        .unwrap();
        assert!(is_pc_audience(&target.audience) && target.offline_access && !target.default_scope);
        assert!(parse_v2_scope("https://a.example/x https://b.example/y").is_err());
    }
}
