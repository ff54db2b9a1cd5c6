//! What the server shares between requests ([`Shared`]): the credentials, the
//! knobs, the customers, the issued tokens, the counters ([`Stats`]), the request
//! log ([`LoggedRequest`]), the in-flight count and the continuation-token salt.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::knobs::Knobs;
use crate::routes::Endpoint;
use crate::synthetic::{guid, synthetic_customers, Entry};
use crate::tokens::{new_refresh_token, TokenStore};
use crate::util::{lock, SplitMix64};
use crate::{Credentials, SimulatorConfig};

/// How many answered requests the log keeps.
const LOG_CAPACITY: usize = 100_000;

/// Request counters (a copy; see [`Simulator::stats`](crate::Simulator::stats)).
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
    /// Requests to the device code endpoints (v1 and v2).
    pub devicecode: u64,
    /// Requests to `GET /v1/invoices`.
    pub invoices: u64,
    /// Requests to `GET /v1/invoices/summaries` and `/summary`.
    pub invoicesummaries: u64,
    /// Requests to `.../servicecosts/{period}/lineitems`.
    pub lineitems: u64,
    /// 429 responses sent.
    pub throttled: u64,
    /// Every response sent, by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Largest number of concurrent Partner Center API requests observed.
    pub in_flight_max: u64,
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

/// Everything the requests of one simulator share. Each mutex is held only for
/// the moment of a read or an update, never across an `.await`.
pub(crate) struct Shared {
    pub(crate) creds: Credentials,
    pub(crate) knobs: Knobs,
    pub(crate) directory: Mutex<Directory>,
    pub(crate) tokens: Mutex<TokenStore>,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) log: Mutex<VecDeque<LoggedRequest>>,
    /// Partner Center API requests being answered now, and the most at once.
    pub(crate) in_flight: AtomicU64,
    pub(crate) in_flight_max: AtomicU64,
    /// Per simulator: continuation tokens of one are no good at another.
    pub(crate) salt: u64,
    /// What `MS-ServerId` answers.
    pub(crate) server_id: String,
    /// Cancelled at shutdown: stops the listener and releases hanging requests.
    pub(crate) cancel: CancellationToken,
}

/// The customers: in discovery order, and by lower-case id.
pub(crate) struct Directory {
    pub(crate) customers: Vec<Arc<Entry>>,
    pub(crate) by_id: HashMap<String, Arc<Entry>>,
}

impl Directory {
    fn new(customers: Vec<Arc<Entry>>) -> Self {
        let by_id = customers
            .iter()
            .map(|entry| (entry.key.clone(), Arc::clone(entry)))
            .collect();
        Self { customers, by_id }
    }

    /// Removes the customer with this lower-case id; false if unknown.
    pub(crate) fn remove(&mut self, key: &str) -> bool {
        if self.by_id.remove(key).is_none() {
            return false;
        }
        self.customers.retain(|entry| entry.key != key);
        true
    }

    /// Adds a customer at the end of the discovery order, or replaces the one with
    /// the same id in place.
    pub(crate) fn upsert(&mut self, entry: Arc<Entry>) {
        if self
            .by_id
            .insert(entry.key.clone(), Arc::clone(&entry))
            .is_some()
        {
            if let Some(slot) = self.customers.iter_mut().find(|e| e.key == entry.key) {
                *slot = entry;
            }
        } else {
            self.customers.push(entry);
        }
    }
}

impl Shared {
    pub(crate) fn new(config: &SimulatorConfig) -> Self {
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
        let salt = u64::from_be_bytes(
            Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or([0x5A; 8]),
        );
        Self {
            creds,
            knobs: Knobs::new(config),
            directory: Mutex::new(Directory::new(synthetic_customers(
                config.customers,
                config.seed,
            ))),
            tokens: Mutex::new(TokenStore::new(initial_refresh)),
            stats: Mutex::new(Stats::default()),
            log: Mutex::new(VecDeque::new()),
            in_flight: AtomicU64::new(0),
            in_flight_max: AtomicU64::new(0),
            salt,
            server_id: format!("1011{:05}", config.seed % 100_000),
            cancel: CancellationToken::new(),
        }
    }

    /// Counts a request as it arrives, under its route's counter in [`Stats`].
    pub(crate) fn count_arrival(&self, endpoint: Endpoint) {
        let mut stats = lock(&self.stats);
        if let Some(counter) = endpoint.counter(&mut stats) {
            *counter += 1;
        }
    }

    /// Counts the answer by status and adds the request to the log (the last
    /// [`LOG_CAPACITY`] answered requests).
    pub(crate) fn record(&self, request: LoggedRequest) {
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
}
