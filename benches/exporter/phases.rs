//! The six phases of the benchmark (see the crate docs): each starts exporters
//! against the simulator, drives them and returns the figures of its rows.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use partnercenter_exporter::simulator::{Endpoint, Simulator};
use testkit::metrics::{count_series, sample};

use crate::exporter::{poll_duration, poll_in_progress, proc_status_kib, Launcher};
use crate::nginx::Nginx;
use crate::opts::Opts;
use crate::report::mib;
use crate::scrape::{capture_bodies, scrape, scrape_client, scrape_run, RunStats};
use crate::{CONCURRENCY, LATENCY, PAGE_SIZE, POLL_DEADLINE, SCRAPERS, UNLIMITED};

#[derive(Clone, Debug)]
pub struct MemoryResult {
    /// VmHWM of the exporter after its poll and the scrape runs, in KiB.
    pub peak_rss_kib: u64,
    /// Plain body size.
    pub body_bytes: usize,
}

pub struct IdleResult {
    /// The first plain scrape after the poll (it decompresses the text), alone.
    pub first_plain_ms: f64,
    /// The next one, alone.
    pub second_plain_ms: f64,
    pub body_plain: usize,
    pub body_gzip: usize,
    pub first_poll_s: f64,
    pub first_poll_cpu_s: f64,
    pub exporter_plain: RunStats,
    pub exporter_gzip: RunStats,
    pub nginx: Option<(RunStats, RunStats)>,
    pub nginx_version: Option<String>,
    pub memory: MemoryResult,
}

pub async fn idle_phase(
    launcher: &Launcher,
    sim: &Arc<Simulator>,
    opts: &Opts,
    nginx_bin: Option<&Path>,
) -> IdleResult {
    sim.knobs().set_latency(Duration::ZERO);
    sim.knobs().set_rate_limit(None);
    let exporter = launcher
        .spawn(sim, &poll_args("1h", CONCURRENCY, UNLIMITED))
        .await;
    let cpu0 = exporter.cpu_seconds();
    exporter.wait_polls(1, POLL_DEADLINE).await;
    let first_poll_cpu_s = exporter.cpu_seconds() - cpu0;
    let client = scrape_client();
    let text = exporter.metrics_text(&client).await;
    let first_poll_s = poll_duration(&text);
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

pub struct PollResultRow {
    pub requests: u64,
    pub duration_s: f64,
    pub ideal_s: f64,
    pub throttled: u64,
    pub cpu_s: f64,
    pub second_poll_s: f64,
    pub idle_plain: Option<RunStats>,
    pub idle_gzip: Option<RunStats>,
    pub during_plain: Option<RunStats>,
    pub during_gzip: Option<RunStats>,
    pub peak_rss_kib: u64,
}

pub async fn poll_phase(launcher: &Launcher, sim: &Arc<Simulator>, opts: &Opts) -> PollResultRow {
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
    let exporter = launcher
        .spawn(sim, &poll_args(&interval_arg, CONCURRENCY, opts.rate_limit))
        .await;
    let spawned = Instant::now();
    let cpu0 = exporter.cpu_seconds();
    exporter.wait_polls(1, POLL_DEADLINE).await;
    let cpu_s = exporter.cpu_seconds() - cpu0;
    let client = scrape_client();
    let text = exporter.metrics_text(&client).await;
    let duration_s = poll_duration(&text);
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
    let second_poll_s = poll_duration(&text);
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

pub struct SweepRow {
    pub concurrency: usize,
    pub customers: usize,
    pub duration_s: f64,
    pub fetch_s: f64,
    pub ideal_s: f64,
    pub in_flight_max: u64,
}

pub async fn sweep_run(launcher: &Launcher, sim: &Arc<Simulator>, concurrency: usize) -> SweepRow {
    let n = sim.customers().len();
    sim.knobs().set_latency(LATENCY);
    sim.knobs().set_rate_limit(None);
    let since = Instant::now();
    let exporter = launcher
        .spawn(sim, &poll_args("1h", concurrency, UNLIMITED))
        .await;
    exporter.wait_polls(1, POLL_DEADLINE).await;
    let client = scrape_client();
    let text = exporter.metrics_text(&client).await;
    let duration_s = poll_duration(&text);
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

pub async fn memory_run(launcher: &Launcher, sim: &Arc<Simulator>, opts: &Opts) -> MemoryResult {
    sim.knobs().set_latency(Duration::ZERO);
    sim.knobs().set_rate_limit(None);
    let exporter = launcher
        .spawn(sim, &poll_args("1h", CONCURRENCY, UNLIMITED))
        .await;
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
pub async fn soak_run(launcher: &Launcher, sim: &Arc<Simulator>, polls: usize) -> Vec<(u64, u64)> {
    sim.knobs().set_latency(Duration::ZERO);
    sim.knobs().set_rate_limit(None);
    let exporter = launcher
        .spawn(sim, &poll_args("1s", CONCURRENCY, UNLIMITED))
        .await;
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

/// Subscriptions per customer in the line-items phase.
pub const LINE_ITEM_SUBSCRIPTIONS: usize = 5;

pub struct LineItemsResult {
    pub customers: usize,
    /// Series of `partnercenter_subscription_*`.
    pub series: usize,
    pub body_plain: usize,
    pub body_gzip: usize,
    /// The `lineitems` run, from its duration gauge.
    pub run_s: f64,
    pub plain: RunStats,
    pub gzip: RunStats,
    pub peak_rss_kib: u64,
}

/// Phase 6: every collector on, `lineitems` too, with 5 subscriptions per customer
/// and no rate limit; after the first line-items run, the exposition's size and
/// idle scrapes, plain then gzip.
pub async fn line_items_phase(
    launcher: &Launcher,
    sim: &Arc<Simulator>,
    opts: &Opts,
) -> LineItemsResult {
    sim.knobs().set_latency(Duration::ZERO);
    sim.knobs().set_rate_limit(None);
    sim.knobs()
        .set_line_item_subscriptions(Some(LINE_ITEM_SUBSCRIPTIONS));
    let mut args = poll_args("1h", CONCURRENCY, UNLIMITED);
    args.push("--collector.lineitems".into());
    let exporter = launcher.spawn(sim, &args).await;
    let deadline = Instant::now() + POLL_DEADLINE;
    while exporter.runs_finished("lineitems") < 1 || exporter.polls_finished() < 1 {
        assert!(
            Instant::now() < deadline,
            "the line-items run did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = scrape_client();
    let text = exporter.metrics_text(&client).await;
    let run_s = sample(
        &text,
        "partnercenter_poll_duration_seconds{collector=\"lineitems\"}",
    )
    .unwrap_or(f64::NAN);
    let series = count_series(&text, "partnercenter_subscription_");
    let (plain_body, gzip_body) = capture_bodies(&client, &exporter.url("/metrics")).await;
    let url = exporter.url("/metrics");
    let plain = scrape_run(&client, &url, false, opts.scrapes).await;
    let gzip = scrape_run(&client, &url, true, opts.scrapes).await;
    sim.knobs().set_line_item_subscriptions(None);
    LineItemsResult {
        customers: sim.customers().len(),
        series,
        body_plain: plain_body.len(),
        body_gzip: gzip_body.len(),
        run_s,
        plain,
        gzip,
        peak_rss_kib: exporter.peak_rss_kib(),
    }
}
