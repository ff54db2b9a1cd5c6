//! Fault injection ([`Knobs`]): what tests and `--demo` set while the simulator
//! runs (latency, paging quirks, throttling and the error rate, per-customer
//! faults of servicecosts, token faults, usage-record overrides), and what the
//! routes read back of it. Throttling follows docs/partner-center.md §5.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::routes::devicecode::DeviceCodeKnobs;
use crate::util::{lock, SplitMix64};
use crate::SimulatorConfig;

/// The largest page of `GET /v1/customers` unless set otherwise.
const DEFAULT_PAGE_SIZE_CAP: usize = 500;

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
    invoices: InvoiceKnobs,
    line_items: LineItemKnobs,
    device_code: DeviceCodeKnobs,
}

/// The knobs of `GET /v1/invoices` and the summaries.
#[derive(Clone)]
pub(crate) struct InvoiceKnobs {
    pub(crate) status: Option<u16>,
    pub(crate) page_size_cap: usize,
    /// Every page's `links.next.uri`, instead of the real next page.
    pub(crate) next_uri: Option<String>,
}

impl Default for InvoiceKnobs {
    fn default() -> Self {
        InvoiceKnobs {
            status: None,
            page_size_cap: 5,
            next_uri: None,
        }
    }
}

/// The knobs of `.../servicecosts/MostRecent/lineitems`.
#[derive(Clone, Default)]
pub(crate) struct LineItemKnobs {
    pub(crate) status: Option<u16>,
    /// Bodies served instead of the generated ones, by lower-case customer id.
    pub(crate) bodies: HashMap<String, Arc<str>>,
    /// Subscriptions of every generated customer, instead of one to five.
    pub(crate) subscriptions: Option<usize>,
}

/// The knobs of `GET /v1/customers/usagerecords`.
#[derive(Clone, Default)]
pub(crate) struct UsageKnobs {
    pub(crate) status: Option<u16>,
    pub(crate) page_size: Option<usize>,
    pub(crate) body: Option<Arc<str>>,
    pub(crate) budget_null: bool,
    /// Records served instead of the synthetic ones, by lower-case customer id;
    /// `Value::Null` is no record.
    pub(crate) records: BTreeMap<String, Value>,
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
pub(crate) enum ApiFault {
    Throttle(u64),
    Unavailable,
}

/// The faults set for one customer's servicecosts.
#[derive(Default)]
pub(crate) struct CustomerFaults {
    pub(crate) hang: bool,
    pub(crate) status: Option<u16>,
    pub(crate) malformed: bool,
    pub(crate) huge: bool,
    pub(crate) body: Option<Arc<str>>,
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
    pub(crate) fn new(config: &SimulatorConfig) -> Self {
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
                invoices: InvoiceKnobs::default(),
                line_items: LineItemKnobs::default(),
                device_code: DeviceCodeKnobs::default(),
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

    /// Answers `GET /v1/invoices` and the summaries with this status and the body
    /// [`Knobs::set_status`] gives it (403 → the no-permission body); `None` = the
    /// documents again.
    pub fn set_invoices_status(&self, status: Option<u16>) {
        self.state().invoices.status = status;
    }

    /// Largest page of `GET /v1/invoices` (default 5, so that every list is
    /// paged); 0 counts as 1.
    pub fn set_invoice_page_size_cap(&self, cap: usize) {
        self.state().invoices.page_size_cap = cap.max(1);
    }

    /// Every page of `GET /v1/invoices` links to this `links.next.uri` (a page
    /// already read, another host), even the last; `None` = the real next page.
    pub fn set_invoices_next_uri(&self, uri: Option<&str>) {
        self.state().invoices.next_uri = uri.map(str::to_owned);
    }

    /// Answers every customer's line items with this status (as
    /// [`Knobs::set_status`]); `None` = the items again.
    pub fn set_line_items_status(&self, status: Option<u16>) {
        self.state().line_items.status = status;
    }

    /// The customer's line items answer 200 with exactly this body (`None`: the
    /// generated items again).
    pub fn set_line_items_body(&self, customer_id: &str, body: Option<&str>) {
        let key = customer_id.to_ascii_lowercase();
        let mut state = self.state();
        match body {
            Some(body) => state.line_items.bodies.insert(key, Arc::from(body)),
            None => state.line_items.bodies.remove(&key),
        };
    }

    /// Every customer with generated costs has this many subscriptions in its line
    /// items (the one with 60 too); `None` = one to five, and 60 for one customer.
    pub fn set_line_item_subscriptions(&self, subscriptions: Option<usize>) {
        self.state().line_items.subscriptions = subscriptions.map(|n| n.max(1));
    }

    pub(crate) fn invoices(&self) -> InvoiceKnobs {
        self.state().invoices.clone()
    }

    /// The forced status, the given body of the customer, and the subscription count.
    pub(crate) fn line_items(
        &self,
        customer_id: &str,
    ) -> (Option<u16>, Option<Arc<str>>, Option<usize>) {
        let state = self.state();
        (
            state.line_items.status,
            state
                .line_items
                .bodies
                .get(&customer_id.to_ascii_lowercase())
                .cloned(),
            state.line_items.subscriptions,
        )
    }

    pub(crate) fn usage(&self) -> UsageKnobs {
        self.state().usage.clone()
    }

    pub(crate) fn latency(&self) -> Duration {
        self.state().latency
    }

    pub(crate) fn page_size_cap(&self) -> usize {
        self.state().page_size_cap
    }

    pub(crate) fn next_link_without_v1(&self) -> bool {
        self.state().next_link_without_v1
    }

    pub(crate) fn bom(&self) -> bool {
        self.state().bom
    }

    pub(crate) fn extra_customer_items(&self) -> Arc<[Value]> {
        Arc::clone(&self.state().extra_items)
    }

    /// A fresh number for a looping page's continuation token, if pages loop.
    pub(crate) fn loop_nonce(&self) -> Option<u64> {
        let mut state = self.state();
        state.looping_pages.then(|| {
            state.loop_nonce = state.loop_nonce.wrapping_add(1);
            state.loop_nonce
        })
    }

    pub(crate) fn token_fault(&self) -> TokenFault {
        self.state().token_fault
    }

    pub(crate) fn access_token_lifetime(&self) -> Duration {
        self.state().access_token_lifetime
    }

    pub(crate) fn token_expires_in(&self) -> Option<Value> {
        self.state().token_expires_in.clone()
    }

    /// How the device code endpoints behave (docs/partner-center.md §9).
    pub fn set_device_code(&self, knobs: DeviceCodeKnobs) {
        self.state().device_code = knobs;
    }

    pub(crate) fn device_code(&self) -> DeviceCodeKnobs {
        self.state().device_code.clone()
    }

    pub(crate) fn token_refresh_token(&self) -> Option<String> {
        self.state().token_refresh_token.clone()
    }

    /// Decides whether this Partner Center API request is throttled or failed.
    pub(crate) fn api_fault(&self) -> Option<ApiFault> {
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

    pub(crate) fn customer_faults(&self, key: &str) -> CustomerFaults {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

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
}
