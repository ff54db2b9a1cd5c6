//! The results: the machine they were measured on, the table of measures against
//! their targets (printed, and written to `target/bench/results.md`) and every
//! figure as JSON (`target/bench/results.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::opts::Opts;
use crate::phases::{
    IdleResult, LineItemsResult, MemoryResult, PollResultRow, SweepRow, LINE_ITEM_SUBSCRIPTIONS,
};
use crate::scrape::RunStats;
use crate::{CONCURRENCY, LATENCY, SCRAPERS};

/// The 1-minute load average: other work on the machine shows in the figures.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

pub fn machine() -> Value {
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
pub struct Results {
    pub machine: Value,
    pub opts: Value,
    pub idle: Option<IdleResult>,
    pub polled: Option<PollResultRow>,
    pub sweep: Vec<SweepRow>,
    pub memory: BTreeMap<usize, MemoryResult>,
    /// (VmHWM, VmRSS) in KiB after each soak poll.
    pub soak: Vec<(u64, u64)>,
    pub line_items: Option<LineItemsResult>,
    pub elapsed: Duration,
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

pub fn mib(kib: u64) -> f64 {
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
        if let Some(l) = &self.line_items {
            rows.push(row(
                format!(
                    "Line items on, {} customers x {LINE_ITEM_SUBSCRIPTIONS} subscriptions",
                    l.customers
                ),
                format!(
                    "{} series of partnercenter_subscription_*; /metrics {} plain, {} gzip; run {:.1} s; peak RSS {:.1} MiB",
                    l.series,
                    size(l.body_plain),
                    size(l.body_gzip),
                    l.run_s,
                    mib(l.peak_rss_kib)
                ),
            ));
            rows.push(row(
                "Scrape idle with line items on, plain / gzip",
                format!("{} / {}", lat(&l.plain), lat(&l.gzip)),
            ));
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
            "line_items": self.line_items.as_ref().map(|l| json!({
                "customers": l.customers,
                "subscriptions_per_customer": LINE_ITEM_SUBSCRIPTIONS,
                "series": l.series,
                "body_plain_bytes": l.body_plain,
                "body_gzip_bytes": l.body_gzip,
                "run_s": l.run_s,
                "peak_rss_kib": l.peak_rss_kib,
                "scrapes": { "plain": l.plain.json(), "gzip": l.gzip.json() },
            })),
            "soak_rss_kib_after_each_poll": self.soak.iter()
                .map(|(peak, current)| json!({ "peak": peak, "current": current }))
                .collect::<Vec<_>>(),
            "targets": self.rows().iter().filter(|r| r.met.is_some()).map(|r| json!({
                "measure": r.what, "result": r.value, "target": r.target, "met": r.met,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn report(&self, opts: &Opts) {
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
