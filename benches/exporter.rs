//! The performance benchmark of partnercenter-exporter: poll time against the ideal,
//! scrape latency (idle, during a poll, plain and gzip, next to nginx serving the
//! same bytes), peak memory and CPU.
//!
//! Run it with `cargo bench --bench exporter -- --customers 10000`; it prints a table
//! and writes `target/bench/results.json` and `target/bench/results.md`.
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

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partnercenter_exporter::simulator::{Endpoint, Simulator, SimulatorConfig};
use serde_json::{json, Value};

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

const USAGE: &str = "usage: cargo bench --bench exporter -- [--customers N] [--rate-limit R] \
[--sweep-customers N] [--scrapes N] [--no-nginx]

  --customers N        customers of the simulated partner (default 10000)
  --rate-limit R       requests per minute, enforced by the simulator and set on the
                       exporter in the rate-limited poll (default 3 x customers: ~20 s)
  --sweep-customers N  customers of the concurrency sweep (default min(customers, 2000))
  --scrapes N          scrapes per scraper and run, 8 scrapers (default 40)
  --soak-polls N       back-to-back polls of the memory soak (default 6)
  --no-nginx           skip the nginx comparison
  --phases LIST        phases to run, e.g. 1,5 (default 1,2,3,4,5; see the source)
  --exporter-env K=V   extra environment of the exporter, for experiments (repeatable)";

struct Opts {
    /// Phases to run, 1 to 5.
    phases: Vec<u8>,
    /// Extra environment of the exporter (experiments such as MALLOC_ARENA_MAX).
    exporter_env: Vec<(String, String)>,
    customers: usize,
    soak_polls: usize,
    rate_limit: u32,
    sweep_customers: usize,
    scrapes: usize,
    nginx: bool,
}

fn parse_args() -> Opts {
    let mut customers = 10_000usize;
    let mut rate_limit = None;
    let mut sweep = None;
    let mut scrapes = 40usize;
    let mut soak_polls = 6usize;
    let mut nginx = true;
    let mut phases = vec![1, 2, 3, 4, 5];
    let mut exporter_env = Vec::new();
    let mut args = std::env::args().skip(1);
    let number = |name: &str, v: Option<String>| -> usize {
        match v.as_deref().map(str::parse::<usize>) {
            Some(Ok(n)) if n > 0 => n,
            _ => {
                eprintln!("{name} needs a positive number\n{USAGE}");
                std::process::exit(2);
            }
        }
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // `cargo bench` passes --bench to harness = false targets.
            "--bench" => {}
            "--customers" => customers = number("--customers", args.next()),
            "--rate-limit" => rate_limit = Some(number("--rate-limit", args.next())),
            "--sweep-customers" => sweep = Some(number("--sweep-customers", args.next())),
            "--scrapes" => scrapes = number("--scrapes", args.next()),
            "--soak-polls" => soak_polls = number("--soak-polls", args.next()),
            "--no-nginx" => nginx = false,
            "--phases" => {
                phases = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|p| p.trim().parse().ok())
                    .collect();
            }
            "--exporter-env" => {
                let kv = args.next().unwrap_or_default();
                match kv.split_once('=') {
                    Some((k, v)) => exporter_env.push((k.to_owned(), v.to_owned())),
                    None => {
                        eprintln!("--exporter-env needs KEY=VALUE\n{USAGE}");
                        std::process::exit(2);
                    }
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let rate_limit = rate_limit
        .unwrap_or(customers * 3)
        .clamp(60, UNLIMITED as usize) as u32;
    Opts {
        phases,
        exporter_env,
        customers,
        soak_polls,
        rate_limit,
        sweep_customers: sweep.unwrap_or(customers.min(2000)),
        scrapes,
        nginx,
    }
}

fn main() {
    partnercenter_exporter::install_crypto_provider();
    let opts = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(opts));
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

async fn run(opts: Opts) {
    let started = Instant::now();
    let load_at_start = loadavg();
    let launcher = Launcher {
        binary: PathBuf::from(env!("CARGO_BIN_EXE_partnercenter-exporter")),
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

async fn simulator(customers: usize) -> Simulator {
    Simulator::start(SimulatorConfig {
        customers,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

// ---------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct MemoryResult {
    /// VmHWM of the exporter after its poll and the scrape runs, in KiB.
    peak_rss_kib: u64,
    /// Plain body size.
    body_bytes: usize,
}

struct IdleResult {
    /// The first plain scrape after the poll (it decompresses the text), alone.
    first_plain_ms: f64,
    /// The next one, alone.
    second_plain_ms: f64,
    body_plain: usize,
    body_gzip: usize,
    first_poll_s: f64,
    first_poll_cpu_s: f64,
    exporter_plain: RunStats,
    exporter_gzip: RunStats,
    nginx: Option<(RunStats, RunStats)>,
    nginx_version: Option<String>,
    memory: MemoryResult,
}

async fn idle_phase(
    launcher: &Launcher,
    sim: &Simulator,
    opts: &Opts,
    nginx_bin: Option<&Path>,
) -> IdleResult {
    sim.knobs().set_latency(Duration::ZERO);
    sim.knobs().set_rate_limit(None);
    let exporter = launcher.spawn(sim, &poll_args("1h", CONCURRENCY, UNLIMITED));
    let cpu0 = exporter.cpu_seconds();
    exporter.wait_polls(1, POLL_DEADLINE).await;
    let first_poll_cpu_s = exporter.cpu_seconds() - cpu0;
    let client = scrape_client();
    let text = exporter.metrics_text(&client).await;
    let first_poll_s = metric(
        &text,
        "partnercenter_poll_duration_seconds{collector=\"servicecosts\"}",
    )
    .unwrap_or(f64::NAN);
    assert_eq!(
        count_series(&text, "partnercenter_customer_info{"),
        sim.customers().len(),
        "every customer is exported"
    );
    // The first plain scrape after a poll decompresses the text once; time it alone.
    let (first_plain, _) = scrape(&client, &exporter.url("/metrics"), false).await;
    let (second_plain, _) = scrape(&client, &exporter.url("/metrics"), false).await;
    let (plain_body, gzip_body) = capture_bodies(&client, &exporter.url("/metrics")).await;

    // Side by side: exporter and nginx alternate, plain then gzip.
    let server = nginx_bin.map(|bin| Nginx::start(bin, &plain_body, &gzip_body));
    let url = exporter.url("/metrics");
    let mut exporter_runs = Vec::new();
    let mut nginx_runs = Vec::new();
    for gzip in [false, true] {
        let cpu = exporter.cpu_seconds();
        let mut stats = scrape_run(&client, &url, gzip, opts.scrapes).await;
        stats.server_cpu_s = Some(exporter.cpu_seconds() - cpu);
        exporter_runs.push(stats);
        if let Some(server) = &server {
            let stats = scrape_run(&client, &server.url("/metrics"), gzip, opts.scrapes).await;
            let want = if gzip {
                gzip_body.len()
            } else {
                plain_body.len()
            };
            assert_eq!(stats.body_bytes, want, "nginx serves the same body");
            nginx_runs.push(stats);
        }
    }
    assert_eq!(
        exporter.polls_finished(),
        1,
        "no poll ran during the idle scrapes"
    );
    let nginx_version = server.as_ref().map(|s| s.version.clone());
    drop(server);
    let exporter_gzip = exporter_runs.pop().expect("gzip run");
    let exporter_plain = exporter_runs.pop().expect("plain run");
    let nginx = match (nginx_runs.pop(), nginx_runs.pop()) {
        (Some(gzip), Some(plain)) => Some((plain, gzip)),
        _ => None,
    };
    let memory = MemoryResult {
        peak_rss_kib: exporter.peak_rss_kib(),
        body_bytes: plain_body.len(),
    };
    IdleResult {
        first_plain_ms: first_plain.as_secs_f64() * 1000.0,
        second_plain_ms: second_plain.as_secs_f64() * 1000.0,
        body_plain: plain_body.len(),
        body_gzip: gzip_body.len(),
        first_poll_s,
        first_poll_cpu_s,
        exporter_plain,
        exporter_gzip,
        nginx,
        nginx_version,
        memory,
    }
}

struct PollResultRow {
    requests: u64,
    duration_s: f64,
    ideal_s: f64,
    throttled: u64,
    cpu_s: f64,
    second_poll_s: f64,
    idle_plain: Option<RunStats>,
    idle_gzip: Option<RunStats>,
    during_plain: Option<RunStats>,
    during_gzip: Option<RunStats>,
    peak_rss_kib: u64,
}

async fn poll_phase(launcher: &Launcher, sim: &Simulator, opts: &Opts) -> PollResultRow {
    let n = sim.customers().len();
    let requests = (n + n.div_ceil(PAGE_SIZE)) as u64;
    let ideal_s = requests as f64 * 60.0 / f64::from(opts.rate_limit);
    let before = sim.stats();
    sim.knobs().set_latency(LATENCY);
    // The simulator's bucket starts full now, as a real one would be.
    sim.knobs().set_rate_limit(Some(opts.rate_limit));
    // Polls start every `interval`: the first one ends about halfway, which leaves an
    // idle window before the second. Idle and during-poll scrapes then run in the
    // same process, minutes apart at most, so machine noise hits both alike.
    let interval = Duration::from_secs((2.0 * ideal_s).ceil() as u64 + 5);
    let interval_arg = format!("{}s", interval.as_secs());
    let exporter = launcher.spawn(sim, &poll_args(&interval_arg, CONCURRENCY, opts.rate_limit));
    let spawned = Instant::now();
    let cpu0 = exporter.cpu_seconds();
    exporter.wait_polls(1, POLL_DEADLINE).await;
    let cpu_s = exporter.cpu_seconds() - cpu0;
    let client = scrape_client();
    let text = exporter.metrics_text(&client).await;
    let duration_s = metric(
        &text,
        "partnercenter_poll_duration_seconds{collector=\"servicecosts\"}",
    )
    .unwrap_or(f64::NAN);
    eprintln!("  poll: {duration_s:.2} s (ideal {ideal_s:.2} s), {cpu_s:.2} CPU s");

    // Idle: between the first and the second poll.
    let url = exporter.url("/metrics");
    let per_scraper = opts.scrapes * 2;
    let mut idle = [None, None];
    for (i, gzip) in [false, true].into_iter().enumerate() {
        let idle_before = !poll_in_progress(&exporter, &client).await;
        let stats = scrape_run(&client, &url, gzip, per_scraper).await;
        if idle_before
            && exporter.polls_finished() == 1
            && !poll_in_progress(&exporter, &client).await
        {
            idle[i] = Some(stats);
        } else {
            eprintln!("  the second poll started during an idle run; it is not counted");
        }
    }

    // During the second poll: a run counts only if the poll in progress before it is
    // still in progress after it.
    let deadline = spawned + interval + Duration::from_secs(30);
    while !poll_in_progress(&exporter, &client).await && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut during = [None, None];
    for (i, gzip) in [false, true].into_iter().enumerate() {
        let polls = exporter.polls_finished();
        if polls != 1 || !poll_in_progress(&exporter, &client).await {
            continue;
        }
        let stats = scrape_run(&client, &url, gzip, per_scraper).await;
        if exporter.polls_finished() == polls && poll_in_progress(&exporter, &client).await {
            during[i] = Some(stats);
        } else {
            eprintln!("  the poll ended during the scrape run; it is not counted");
        }
    }
    let [idle_plain, idle_gzip] = idle;
    let [during_plain, during_gzip] = during;
    exporter.wait_polls(2, POLL_DEADLINE).await;
    let text = exporter.metrics_text(&client).await;
    let second_poll_s = metric(
        &text,
        "partnercenter_poll_duration_seconds{collector=\"servicecosts\"}",
    )
    .unwrap_or(f64::NAN);
    let peak_rss_kib = exporter.peak_rss_kib();
    drop(exporter);
    let after = sim.stats();
    sim.knobs().set_rate_limit(None);
    sim.knobs().set_latency(Duration::ZERO);
    PollResultRow {
        requests,
        duration_s,
        ideal_s,
        throttled: after.throttled - before.throttled,
        cpu_s,
        second_poll_s,
        idle_plain,
        idle_gzip,
        during_plain,
        during_gzip,
        peak_rss_kib,
    }
}

struct SweepRow {
    concurrency: usize,
    customers: usize,
    duration_s: f64,
    fetch_s: f64,
    ideal_s: f64,
    in_flight_max: u64,
}

async fn sweep_run(launcher: &Launcher, sim: &Simulator, concurrency: usize) -> SweepRow {
    let n = sim.customers().len();
    sim.knobs().set_latency(LATENCY);
    sim.knobs().set_rate_limit(None);
    let since = Instant::now();
    let exporter = launcher.spawn(sim, &poll_args("1h", concurrency, UNLIMITED));
    exporter.wait_polls(1, POLL_DEADLINE).await;
    let client = scrape_client();
    let text = exporter.metrics_text(&client).await;
    let duration_s = metric(
        &text,
        "partnercenter_poll_duration_seconds{collector=\"servicecosts\"}",
    )
    .unwrap_or(f64::NAN);
    drop(exporter);
    // The fetch phase alone (discovery excluded): first to last servicecosts arrival,
    // plus the last one's latency.
    let arrivals: Vec<Instant> = sim
        .request_log()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::ServiceCosts && r.at >= since)
        .map(|r| r.at)
        .collect();
    let fetch_s = match (arrivals.iter().min(), arrivals.iter().max()) {
        (Some(a), Some(b)) => (*b - *a + LATENCY).as_secs_f64(),
        _ => f64::NAN,
    };
    let ideal_s = n as f64 * LATENCY.as_secs_f64() / concurrency as f64;
    eprintln!("  concurrency {concurrency}: poll {duration_s:.2} s, fetches {fetch_s:.2} s, ideal {ideal_s:.2} s");
    SweepRow {
        concurrency,
        customers: n,
        duration_s,
        fetch_s,
        ideal_s,
        in_flight_max: sim.stats().in_flight_max,
    }
}

async fn memory_run(launcher: &Launcher, sim: &Simulator, opts: &Opts) -> MemoryResult {
    sim.knobs().set_latency(Duration::ZERO);
    sim.knobs().set_rate_limit(None);
    let exporter = launcher.spawn(sim, &poll_args("1h", CONCURRENCY, UNLIMITED));
    exporter.wait_polls(1, POLL_DEADLINE).await;
    let client = scrape_client();
    let url = exporter.url("/metrics");
    let (plain, _) = capture_bodies(&client, &url).await;
    scrape_run(&client, &url, false, opts.scrapes).await;
    scrape_run(&client, &url, true, opts.scrapes).await;
    MemoryResult {
        peak_rss_kib: exporter.peak_rss_kib(),
        body_bytes: plain.len(),
    }
}

/// Peak and current RSS (KiB) after each of `polls` back-to-back polls (no
/// latency, no limit), with `SCRAPERS` clients scraping all along, plain and gzip.
async fn soak_run(launcher: &Launcher, sim: &Simulator, polls: usize) -> Vec<(u64, u64)> {
    sim.knobs().set_latency(Duration::ZERO);
    sim.knobs().set_rate_limit(None);
    let exporter = launcher.spawn(sim, &poll_args("1s", CONCURRENCY, UNLIMITED));
    exporter.wait_polls(1, POLL_DEADLINE).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = scrape_client();
    let scrapers: Vec<_> = (0..SCRAPERS)
        .map(|i| {
            let (client, url, stop) = (client.clone(), exporter.url("/metrics"), stop.clone());
            tokio::spawn(async move {
                let deadline = Instant::now() + POLL_DEADLINE;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline
                {
                    scrape(&client, &url, i % 2 == 1).await;
                }
            })
        })
        .collect();
    let mut out = Vec::new();
    for k in 1..=polls {
        exporter.wait_polls(k + 1, POLL_DEADLINE).await;
        out.push((
            exporter.peak_rss_kib(),
            proc_status_kib(exporter.pid(), "VmRSS:"),
        ));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in scrapers {
        task.await.expect("scraper");
    }
    eprintln!(
        "  RSS after each poll (peak, current) MiB: {:?}",
        out.iter()
            .map(|(p, c)| (mib(*p).round(), mib(*c).round()))
            .collect::<Vec<_>>()
    );
    out
}

fn poll_args(interval: &str, concurrency: usize, rate_limit: u32) -> Vec<String> {
    vec![
        "--poll.interval".into(),
        interval.into(),
        "--poll.concurrency".into(),
        concurrency.to_string(),
        "--poll.rate-limit".into(),
        rate_limit.to_string(),
    ]
}

// ---------------------------------------------------------------------------
// Scrape load
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct RunStats {
    /// Sorted latencies of every scrape, first byte sent to last byte read.
    latencies: Vec<Duration>,
    wall: Duration,
    body_bytes: usize,
    /// The server's CPU time over the run, where measured.
    server_cpu_s: Option<f64>,
}

impl RunStats {
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        // Nearest rank.
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[i].as_secs_f64() * 1000.0
    }

    fn p50_ms(&self) -> f64 {
        self.percentile_ms(50.0)
    }

    fn p99_ms(&self) -> f64 {
        self.percentile_ms(99.0)
    }

    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    fn cpu_ms_per_scrape(&self) -> Option<f64> {
        self.server_cpu_s
            .map(|s| s * 1000.0 / self.latencies.len().max(1) as f64)
    }

    fn json(&self) -> Value {
        json!({
            "scrapes": self.latencies.len(),
            "p50_ms": self.p50_ms(),
            "p99_ms": self.p99_ms(),
            "max_ms": self.latencies.last().map(|d| d.as_secs_f64() * 1000.0),
            "scrapes_per_second": self.latencies.len() as f64 / self.wall.as_secs_f64(),
            "body_bytes": self.body_bytes,
            "server_cpu_ms_per_scrape": self.cpu_ms_per_scrape(),
        })
    }
}

fn scrape_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(SCRAPERS * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// One scrape: sends the request and reads the body chunk by chunk, keeping only
/// its length (the load generator shares the machine; it should cost little).
async fn scrape(client: &reqwest::Client, url: &str, gzip: bool) -> (Duration, usize) {
    let started = Instant::now();
    let mut request = client.get(url);
    if gzip {
        request = request.header("Accept-Encoding", "gzip");
    }
    let mut response = request.send().await.expect("scrape");
    assert_eq!(response.status().as_u16(), 200, "scrape of {url}");
    let mut bytes = 0;
    while let Some(chunk) = response.chunk().await.expect("body") {
        bytes += chunk.len();
    }
    (started.elapsed(), bytes)
}

/// `SCRAPERS` tasks, `per_scraper` scrapes each after one warm-up scrape.
async fn scrape_run(
    client: &reqwest::Client,
    url: &str,
    gzip: bool,
    per_scraper: usize,
) -> RunStats {
    let warm: Vec<_> = (0..SCRAPERS)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move { scrape(&client, &url, gzip).await })
        })
        .collect();
    for task in warm {
        task.await.expect("warm-up");
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..SCRAPERS)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut out = Vec::with_capacity(per_scraper);
                for _ in 0..per_scraper {
                    out.push(scrape(&client, &url, gzip).await);
                }
                out
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(SCRAPERS * per_scraper);
    let mut body_bytes = 0;
    for task in tasks {
        for (latency, bytes) in task.await.expect("scraper") {
            latencies.push(latency);
            body_bytes = bytes;
        }
    }
    let wall = started.elapsed();
    latencies.sort();
    RunStats {
        latencies,
        wall,
        body_bytes,
        server_cpu_s: None,
    }
}

/// One plain and one gzip body, checked to hold the same exposition.
async fn capture_bodies(client: &reqwest::Client, url: &str) -> (Vec<u8>, Vec<u8>) {
    let plain = client.get(url).send().await.expect("plain scrape");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.expect("plain body").to_vec();
    let gzip = client
        .get(url)
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("gzip scrape");
    assert_eq!(
        gzip.headers()
            .get("content-encoding")
            .map(|v| v.as_bytes().to_vec()),
        Some(b"gzip".to_vec())
    );
    let gzip = gzip.bytes().await.expect("gzip body").to_vec();
    let text = gunzip(&gzip);
    let first_line = |t: &str| t.lines().next().unwrap_or_default().to_owned();
    assert_eq!(
        first_line(&text),
        first_line(&String::from_utf8_lossy(&plain))
    );
    assert!(text.len().abs_diff(plain.len()) < 4096, "same exposition");
    (plain, gzip)
}

fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::MultiGzDecoder::new(body)
        .read_to_string(&mut out)
        .expect("valid gzip");
    out
}

async fn poll_in_progress(exporter: &Exporter, client: &reqwest::Client) -> bool {
    let text = exporter.metrics_text(client).await;
    metric(
        &text,
        "partnercenter_poll_in_progress{collector=\"servicecosts\"}",
    ) == Some(1.0)
}

/// The value of an unlabelled series.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn count_series(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}

// ---------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------

/// How to start the exporter: the binary built by cargo, and extra environment.
struct Launcher {
    binary: PathBuf,
    env: Vec<(String, String)>,
}

impl Launcher {
    fn spawn(&self, sim: &Simulator, extra: &[String]) -> Exporter {
        Exporter::spawn(&self.binary, &self.env, sim, extra)
    }
}

/// The exporter binary, started on 127.0.0.1:0 against the simulator; killed on drop.
struct Exporter {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Exporter {
    fn spawn(
        binary: &Path,
        env: &[(String, String)],
        sim: &Simulator,
        extra: &[String],
    ) -> Exporter {
        let dir = tempfile::tempdir().expect("temp dir");
        let creds = sim.credentials();
        let token = secret_file(dir.path(), "refresh_token", &creds.refresh_token);
        let secret = secret_file(dir.path(), "client_secret", &creds.client_secret);
        let mut child = Command::new(binary)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .args(["--partner-center.url", &sim.url()])
            .args(["--auth.authority", &sim.url()])
            .args(["--auth.tenant", &creds.tenant])
            .args(["--auth.client-id", &creds.client_id])
            .arg("--auth.client-secret-file")
            .arg(&secret)
            .arg("--auth.refresh-token-file")
            .arg(&token)
            .args(extra)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("exporter starts");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("msg=listening") {
                    if let (Some(addr), Some(tx)) = (field(&line, "address"), tx.take()) {
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "exporter did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Exporter {
            child,
            addr,
            logs,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn polls_finished(&self) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("msg=\"run finished\"") && l.contains("collector=servicecosts"))
            .count()
    }

    /// Waits, from the log (a scrape of 10,000 customers is not free), until `n`
    /// polls have finished.
    async fn wait_polls(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.polls_finished() < n {
            assert!(
                Instant::now() < deadline,
                "poll {n} did not finish within {limit:?}; logs:\n{}",
                self.logs.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exposition, fetched gzipped (cheaper for both sides) and decompressed.
    async fn metrics_text(&self, client: &reqwest::Client) -> String {
        let body = client
            .get(self.url("/metrics"))
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .expect("scrape")
            .bytes()
            .await
            .expect("body");
        gunzip(&body)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// utime + stime of the process (all threads), in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / clock_ticks()
    }

    /// VmHWM: the peak resident set size, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn secret_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{contents}\n")).expect("write secret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// The value of `key=value` or `key="value"` in a logfmt line.
fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?,
        None => rest.split(' ').next()?,
    };
    Some(value.to_owned())
}

fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// nginx serving the captured body as a static file, `/metrics` plus `/metrics.gz`
/// for `gzip_static`, on a free loopback port. Stopped (SIGTERM, then SIGKILL) on drop.
struct Nginx {
    child: Child,
    port: u16,
    version: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(binary: &Path, plain: &[u8], gzip: &[u8]) -> Nginx {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("html");
        std::fs::create_dir(&root).expect("html dir");
        std::fs::write(root.join("metrics"), plain).expect("body");
        std::fs::write(root.join("metrics.gz"), gzip).expect("gz body");
        // Workers may run as an unprivileged user: let them read the files.
        for p in [dir.path(), &root] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let port = free_port();
        let prefix = dir.path().display().to_string();
        let conf = format!(
            r#"daemon off;
worker_processes auto;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ }}
    default_type "text/plain; version=0.0.4; charset=utf-8";
    server {{
        listen 127.0.0.1:{port};
        root {prefix}/html;
        location = /metrics {{
            gzip_static on;
        }}
    }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let version = Command::new(binary)
            .arg("-v")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
            .unwrap_or_default();
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let server = Nginx {
            child,
            port,
            version,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen; error.log:\n{}",
                std::fs::read_to_string(server._dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master (our child, by its id) stops its workers too.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

// ---------------------------------------------------------------------------
// Machine and report
// ---------------------------------------------------------------------------

/// The 1-minute load average: other work on the machine shows in the figures.
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "loadavg_at_end": loadavg(),
    })
}

#[derive(Default)]
struct Results {
    machine: Value,
    opts: Value,
    idle: Option<IdleResult>,
    polled: Option<PollResultRow>,
    sweep: Vec<SweepRow>,
    memory: BTreeMap<usize, MemoryResult>,
    /// (VmHWM, VmRSS) in KiB after each soak poll.
    soak: Vec<(u64, u64)>,
    elapsed: Duration,
}

/// One row of the table: what, the figure, the target, and whether it is met.
struct Row {
    what: String,
    value: String,
    target: String,
    met: Option<bool>,
}

fn row(what: impl Into<String>, value: impl Into<String>) -> Row {
    Row {
        what: what.into(),
        value: value.into(),
        target: String::new(),
        met: None,
    }
}

fn checked(
    what: impl Into<String>,
    value: impl Into<String>,
    target: impl Into<String>,
    met: bool,
) -> Row {
    Row {
        what: what.into(),
        value: value.into(),
        target: target.into(),
        met: Some(met),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn lat(s: &RunStats) -> String {
    format!("p50 {:.2} ms, p99 {:.2} ms", s.p50_ms(), s.p99_ms())
}

impl Results {
    fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        let n = self.opts["customers"].as_u64().unwrap_or(0);
        if let Some(p) = &self.polled {
            let ratio = p.duration_s / p.ideal_s;
            rows.push(checked(
                format!(
                    "Poll, {n} customers, {} ms latency, limit {}/min, concurrency {CONCURRENCY}",
                    LATENCY.as_millis(),
                    self.opts["rate_limit_per_minute"]
                ),
                format!(
                    "{:.2} s for {} requests = {ratio:.3} x ideal ({:.2} s)",
                    p.duration_s, p.requests, p.ideal_s
                ),
                "<= 1.05 x ideal",
                ratio <= 1.05,
            ));
            rows.push(checked(
                "429 answers during the rate-limited polls",
                p.throttled.to_string(),
                "0",
                p.throttled == 0,
            ));
            for (name, idle, during) in [
                ("plain", &p.idle_plain, &p.during_plain),
                ("gzip", &p.idle_gzip, &p.during_gzip),
            ] {
                let what = format!("Scrape during the poll vs between polls, {name}");
                match (idle, during) {
                    (Some(i), Some(d)) => {
                        let ratio = d.p99_ms() / i.p99_ms();
                        rows.push(checked(
                            what,
                            format!(
                                "during: {}; between: {}; p99 = {ratio:.2} x idle",
                                lat(d),
                                lat(i)
                            ),
                            "p99 <= 1.2 x idle",
                            ratio <= 1.2,
                        ));
                    }
                    _ => rows.push(checked(
                        what,
                        "a run did not fit its window",
                        "p99 <= 1.2 x idle",
                        false,
                    )),
                }
            }
        }
        for s in &self.sweep {
            rows.push(row(
                format!(
                    "Poll, no rate limit, concurrency {}, {} customers",
                    s.concurrency, s.customers
                ),
                format!(
                    "{:.2} s = {:.2} x ideal ({:.2} s); fetches alone {:.2} s = {:.2} x; max in flight {}",
                    s.duration_s,
                    s.duration_s / s.ideal_s,
                    s.ideal_s,
                    s.fetch_s,
                    s.fetch_s / s.ideal_s,
                    s.in_flight_max
                ),
            ));
        }
        if let Some(i) = &self.idle {
            rows.push(row(
                "/metrics body",
                format!("{} plain, {} gzip", size(i.body_plain), size(i.body_gzip)),
            ));
            let idle_plain = &i.exporter_plain;
            let idle_gzip = &i.exporter_gzip;
            rows.push(row(
                "First plain scrape after a poll, alone (decompresses the text once)",
                format!(
                    "{:.1} ms (the next one: {:.1} ms)",
                    i.first_plain_ms, i.second_plain_ms
                ),
            ));
            rows.push(row(
                "Scrape idle, plain (next to nginx)",
                format!("{}, {:.0} scrapes/s", lat(idle_plain), idle_plain.rate()),
            ));
            rows.push(row(
                "Scrape idle, gzip (next to nginx)",
                format!("{}, {:.0} scrapes/s", lat(idle_gzip), idle_gzip.rate()),
            ));
            match &i.nginx {
                Some((np, ng)) => {
                    for (name, ours, theirs) in [("plain", idle_plain, np), ("gzip", idle_gzip, ng)]
                    {
                        let ratio = ours.p50_ms() / theirs.p50_ms();
                        rows.push(checked(
                            format!("nginx, same body, {name}"),
                            format!("{}; our p50 = {ratio:.2} x nginx", lat(theirs)),
                            "our p50 <= 1.5 x nginx",
                            ratio <= 1.5,
                        ));
                    }
                }
                None => rows.push(checked(
                    "nginx, same body",
                    "skipped (not installed, or --no-nginx)",
                    "our p50 <= 1.5 x nginx",
                    false,
                )),
            }
            for (name, s) in [("plain", idle_plain), ("gzip", idle_gzip)] {
                if let Some(ms) = s.cpu_ms_per_scrape() {
                    rows.push(row(
                        format!("CPU per scrape, {name}"),
                        format!("{ms:.2} ms"),
                    ));
                }
            }
        }
        if let Some(p) = &self.polled {
            let per_k = p.cpu_s / (n as f64 / 1000.0);
            rows.push(row(
                "CPU per poll per 1,000 customers (rate-limited poll)",
                format!("{per_k:.3} s ({:.2} s for {n})", p.cpu_s),
            ));
        }
        if let Some(i) = &self.idle {
            let per_k = i.first_poll_cpu_s / (n as f64 / 1000.0);
            rows.push(row(
                "CPU per poll per 1,000 customers (no latency, no limit)",
                format!(
                    "{per_k:.3} s ({:.2} s for {n}; poll took {:.2} s)",
                    i.first_poll_cpu_s, i.first_poll_s
                ),
            ));
        }
        for (customers, m) in &self.memory {
            rows.push(row(
                format!("Peak RSS, {customers} customers (poll + scrapes)"),
                format!(
                    "{:.1} MiB (body {})",
                    mib(m.peak_rss_kib),
                    size(m.body_bytes)
                ),
            ));
        }
        if let (Some((small_n, small)), Some((big_n, big))) =
            (self.memory.iter().next(), self.memory.iter().next_back())
        {
            if big_n > small_n {
                let per = (big.peak_rss_kib as f64 - small.peak_rss_kib as f64) * 1024.0
                    / (big_n - small_n) as f64;
                rows.push(row(
                    "Peak RSS growth per customer",
                    format!("{:.2} KiB", per / 1024.0),
                ));
            }
        }
        // The 64 MiB target applies at 10,000 customers and more.
        let memory_row = |what: String, value: String, kib: u64| {
            if n >= 10_000 {
                checked(what, value, "<= 64 MiB at 10,000", mib(kib) <= 64.0)
            } else {
                row(what, value)
            }
        };
        if let Some(p) = &self.polled {
            let kib = self
                .memory
                .get(&(n as usize))
                .map_or(0, |m| m.peak_rss_kib)
                .max(p.peak_rss_kib);
            rows.push(memory_row(
                format!("Peak RSS, {n} customers, worst of the run above and of two rate-limited polls scraped between and during"),
                format!(
                    "{:.1} MiB (the polls alone: {:.1} MiB; second poll, scraped meanwhile: {:.2} s)",
                    mib(kib),
                    mib(p.peak_rss_kib),
                    p.second_poll_s
                ),
                kib,
            ));
        }
        if let (Some(first), Some(last)) = (self.soak.first(), self.soak.last()) {
            rows.push(memory_row(
                format!(
                    "Peak RSS, {n} customers, stress: {} back-to-back polls at full speed, 8 clients scraping non-stop",
                    self.soak.len()
                ),
                format!(
                    "{:.1} MiB after the first poll, {:.1} MiB after the last (current RSS {:.1} MiB)",
                    mib(first.0),
                    mib(last.0),
                    mib(last.1)
                ),
                last.0,
            ));
        }
        rows
    }

    fn table(&self) -> String {
        let mut out = String::from("| Measure | Result | Target | Met |\n|---|---|---|---|\n");
        for r in self.rows() {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**MISSED**",
                None => "",
            };
            out.push_str(&format!(
                "| {} | {} | {} | {met} |\n",
                r.what, r.value, r.target
            ));
        }
        out
    }

    fn json(&self) -> Value {
        let run_json = |s: &Option<RunStats>| s.as_ref().map(RunStats::json);
        json!({
            "machine": self.machine,
            "options": self.opts,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rate_limited_poll": self.polled.as_ref().map(|p| json!({
                "requests": p.requests,
                "duration_s": p.duration_s,
                "ideal_s": p.ideal_s,
                "ratio": p.duration_s / p.ideal_s,
                "throttled_429": p.throttled,
                "cpu_s": p.cpu_s,
                "second_poll_s": p.second_poll_s,
                "peak_rss_kib": p.peak_rss_kib,
                "scrapes_between_polls": {
                    "plain": run_json(&p.idle_plain),
                    "gzip": run_json(&p.idle_gzip),
                },
                "scrapes_during_poll": {
                    "plain": run_json(&p.during_plain),
                    "gzip": run_json(&p.during_gzip),
                },
            })),
            "concurrency_sweep": self.sweep.iter().map(|s| json!({
                "concurrency": s.concurrency,
                "customers": s.customers,
                "duration_s": s.duration_s,
                "fetch_s": s.fetch_s,
                "ideal_s": s.ideal_s,
                "ratio": s.duration_s / s.ideal_s,
                "fetch_ratio": s.fetch_s / s.ideal_s,
                "in_flight_max": s.in_flight_max,
            })).collect::<Vec<_>>(),
            "scrapes_idle": self.idle.as_ref().map(|i| json!({
                "body_plain_bytes": i.body_plain,
                "body_gzip_bytes": i.body_gzip,
                "exporter": { "plain": i.exporter_plain.json(), "gzip": i.exporter_gzip.json() },
                "nginx": i.nginx.as_ref().map(|(p, g)| json!({ "plain": p.json(), "gzip": g.json() })),
                "nginx_version": i.nginx_version,
                "first_poll_s": i.first_poll_s,
                "first_poll_cpu_s": i.first_poll_cpu_s,
                "first_plain_scrape_ms": i.first_plain_ms,
                "second_plain_scrape_ms": i.second_plain_ms,
            })),
            "peak_rss_kib_by_customers": self.memory.iter()
                .map(|(n, m)| (n.to_string(), json!({ "peak_rss_kib": m.peak_rss_kib, "body_bytes": m.body_bytes })))
                .collect::<serde_json::Map<_, _>>(),
            "soak_rss_kib_after_each_poll": self.soak.iter()
                .map(|(peak, current)| json!({ "peak": peak, "current": current }))
                .collect::<Vec<_>>(),
            "targets": self.rows().iter().filter(|r| r.met.is_some()).map(|r| json!({
                "measure": r.what, "result": r.value, "target": r.target, "met": r.met,
            })).collect::<Vec<_>>(),
        })
    }

    fn report(&self, opts: &Opts) {
        let m = &self.machine;
        let header = format!(
            "Machine: {} CPUs ({}), {} GiB memory, Linux {}; load average {} at start, {} at end. {} customers, {SCRAPERS} scrapers x {} scrapes per run; bench took {:.0} s.\n",
            m["nproc"],
            m["cpu_model"].as_str().unwrap_or("?"),
            m["memory_gib"],
            m["kernel"].as_str().unwrap_or("?"),
            m["loadavg_at_start"],
            m["loadavg_at_end"],
            opts.customers,
            opts.scrapes,
            self.elapsed.as_secs_f64()
        );
        let table = self.table();
        println!("\n{header}\n{table}");
        let dir = target_dir().join("bench");
        std::fs::create_dir_all(&dir).expect("target/bench");
        let json_path = dir.join("results.json");
        std::fs::write(
            &json_path,
            serde_json::to_string_pretty(&self.json()).expect("json"),
        )
        .expect("write results.json");
        std::fs::write(dir.join("results.md"), format!("{header}\n{table}")).expect("results.md");
        println!("Results written to {}", json_path.display());
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
