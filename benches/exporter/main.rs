//! The performance benchmark of partnercenter-exporter: poll time against the ideal,
//! scrape latency (idle, during a poll, plain and gzip, next to nginx serving the
//! same bytes), peak memory and CPU.
//!
//! Run it with `cargo bench --bench exporter -- --customers 10000`; it prints a table
//! and writes `target/bench/results.json` and `target/bench/results.md`. Under
//! `cargo test --all-targets`, which starts it without arguments, it only says so.
//!
//! The exporter runs as the real release binary in a child process, so its peak RSS
//! (`VmHWM`) and CPU time (`utime + stime`) are its own. The simulated Partner Center
//! and the scrape load generator run in this process; on a small machine they compete
//! with the exporter for the same cores, which the numbers include. nginx, if
//! installed, runs as a second child serving the captured `/metrics` body as a static
//! file (`gzip_static` for the compressed body), measured by the same client code.
//! Everything listens on 127.0.0.1; every wait is bounded; children are killed when
//! their guard drops, also on panic.
//!
//! The exporter process, its secret files, free ports and metric lookups come
//! from the testkit crate; this benchmark holds its phases ([`phases`]), the scrape
//! load ([`scrape`]), what it reads of the exporter process ([`exporter`]), nginx
//! ([`nginx`]), its options ([`opts`]) and the table and JSON ([`report`]).
//!
//! Phases (sizes from `--customers N`; `--phases` runs a subset):
//!
//! 1. **Scrapes, idle, next to nginx**: one exporter, first poll with no simulated
//!    latency, then `SCRAPERS` keep-alive clients × `--scrapes` each against the
//!    exporter and nginx in turn, plain then gzip. CPU per scrape and the peak RSS at
//!    `N` customers come from this process.
//! 2. **Rate-limited poll** (100 ms latency, the simulator enforcing `--rate-limit R`
//!    per minute, the exporter set to the same R with concurrency 64). Polls start
//!    every ~2 × the ideal poll time, so the exporter is idle between the first and
//!    the second poll: scrape runs between the polls and during the second one are
//!    compared in the same process. A during-poll run counts only if
//!    `partnercenter_poll_in_progress` is 1 before and after it and no poll ended.
//! 3. **Concurrency sweep**: no rate limit, 100 ms latency, concurrency 4, 16, 64 on
//!    `--sweep-customers` customers (fewer, so that concurrency 4 fits the time).
//! 4. **Memory by size**: phase 1's workload at 100 and 1,000 customers.
//! 5. **Soak**: `--soak-polls` back-to-back polls at full speed while 8 clients
//!    scrape without pause (plain and gzip): the peak RSS must not creep up.
//! 6. **Line items**: every collector on, `lineitems` too, 5 subscriptions per
//!    customer, no rate limit: the exposition's size and series after the first
//!    line-items run, idle scrapes plain and gzip, and the peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod exporter;
mod nginx;
mod opts;
mod phases;
mod report;
mod scrape;

use std::sync::Arc;
use std::time::{Duration, Instant};

use partnercenter_exporter::simulator::Simulator;
use serde_json::json;

use crate::exporter::Launcher;
use crate::nginx::find_nginx;
use crate::opts::{parse_args, started_by_cargo_test, Opts};
use crate::phases::{idle_phase, line_items_phase, memory_run, poll_phase, soak_run, sweep_run};
use crate::report::{loadavg, machine, Results};

/// Concurrent scrapers, each with its own keep-alive connection.
const SCRAPERS: usize = 8;
/// Simulated Partner Center latency per request in the poll phases.
const LATENCY: Duration = Duration::from_millis(100);
/// Poll concurrency of the rate-limited poll and of the scrape phases.
const CONCURRENCY: usize = 64;
/// The largest `--poll.rate-limit` the exporter accepts: "no rate limit".
const UNLIMITED: u32 = 1_000_000;
/// Customers per discovery page (Partner Center's maximum, as the exporter asks).
const PAGE_SIZE: usize = 500;
/// Longest wait for any one poll.
const POLL_DEADLINE: Duration = Duration::from_secs(240);

fn main() {
    if started_by_cargo_test() {
        eprintln!(
            "bench: not run under `cargo test` (a debug build of 10,000 customers is no test); \
             run it with `cargo bench --bench exporter -- --customers N`"
        );
        return;
    }
    partnercenter_exporter::install_crypto_provider();
    let opts = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(opts));
}

async fn run(opts: Opts) {
    let started = Instant::now();
    let load_at_start = loadavg();
    let launcher = Launcher {
        env: opts.exporter_env.clone(),
    };
    let nginx_bin = if opts.nginx { find_nginx() } else { None };
    if opts.nginx && nginx_bin.is_none() {
        eprintln!(
            "nginx is not installed (apt-get install -y nginx): the nginx comparison is skipped"
        );
    }
    let n = opts.customers;
    let phase = |p: u8| opts.phases.contains(&p);
    eprintln!(
        "bench: {n} customers, rate limit {}/min, sweep on {} customers, {SCRAPERS} scrapers x {} scrapes",
        opts.rate_limit, opts.sweep_customers, opts.scrapes
    );
    let mut results = Results::default();

    let sim = simulator(n).await;
    if phase(1) {
        // Phase 1: scrapes while idle, nginx alongside, memory and CPU per scrape.
        eprintln!("phase 1: idle scrapes ({n} customers)");
        let idle = idle_phase(&launcher, &sim, &opts, nginx_bin.as_deref()).await;
        results.memory.insert(n, idle.memory.clone());
        results.idle = Some(idle);
    }
    if phase(2) {
        // Phase 2: the rate-limited poll, then scrapes during the next poll.
        eprintln!(
            "phase 2: rate-limited poll ({n} customers, {} ms latency, {}/min)",
            LATENCY.as_millis(),
            opts.rate_limit
        );
        results.polled = Some(poll_phase(&launcher, &sim, &opts).await);
    }
    if phase(5) {
        // Phase 5: back-to-back polls under scrape load: does memory stay flat?
        eprintln!(
            "phase 5: {} back-to-back polls while scraping ({n} customers)",
            opts.soak_polls
        );
        results.soak = soak_run(&launcher, &sim, opts.soak_polls).await;
    }
    if phase(6) {
        eprintln!("phase 6: line items ({n} customers x 5 subscriptions, no rate limit)");
        results.line_items = Some(line_items_phase(&launcher, &sim, &opts).await);
    }
    drop(sim);
    if phase(3) {
        // Phase 3: the concurrency sweep without a rate limit.
        let sweep_n = opts.sweep_customers;
        eprintln!("phase 3: concurrency sweep ({sweep_n} customers, no rate limit)");
        let sweep_sim = simulator(sweep_n).await;
        for concurrency in [4, 16, 64] {
            results
                .sweep
                .push(sweep_run(&launcher, &sweep_sim, concurrency).await);
        }
    }
    if phase(4) {
        // Phase 4: memory at smaller sizes, with phase 1's workload.
        for size in [100, 1000] {
            if size < n {
                eprintln!("phase 4: memory at {size} customers");
                let sim = simulator(size).await;
                let m = memory_run(&launcher, &sim, &opts).await;
                results.memory.insert(size, m);
            }
        }
    }

    results.machine = machine();
    results.machine["loadavg_at_start"] = json!(load_at_start);
    results.elapsed = started.elapsed();
    results.opts = json!({
        "customers": n,
        "rate_limit_per_minute": opts.rate_limit,
        "sweep_customers": opts.sweep_customers,
        "scrapers": SCRAPERS,
        "scrapes_per_scraper": opts.scrapes,
        "latency_ms": LATENCY.as_millis() as u64,
        "poll_concurrency": CONCURRENCY,
        "phases": opts.phases,
        "exporter_env": opts.exporter_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
    });
    results.report(&opts);
}

/// The simulator, shared by the exporters that the phases start one after another.
async fn simulator(customers: usize) -> Arc<Simulator> {
    Arc::new(testkit::simulator(customers).await)
}
