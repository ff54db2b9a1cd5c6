//! The exporter under benchmark: the real release binary, started by the testkit
//! against the shared simulator, and what the benchmark reads of the process
//! besides `/metrics`: finished polls from its log, CPU time and peak RSS from
//! `/proc`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use partnercenter_exporter::simulator::Simulator;
use testkit::metrics::sample;
use testkit::{Binary, Running, TestApp};

use crate::scrape::gunzip;

/// How to start the exporter: extra environment for every start.
pub struct Launcher {
    pub env: Vec<(String, String)>,
}

impl Launcher {
    /// The binary on 127.0.0.1:0 against `sim`, with `extra` flags; killed on drop.
    pub async fn spawn(&self, sim: &Arc<Simulator>, extra: &[String]) -> Exporter {
        let mut app = TestApp::with_simulator(Arc::clone(sim)).args(extra.iter().cloned());
        for (key, value) in &self.env {
            app = app.env(key, value);
        }
        Exporter {
            app: app.spawn_binary().await,
        }
    }
}

/// The exporter binary, started on 127.0.0.1:0 against the simulator, with its
/// own directory of secret files; killed on drop.
pub struct Exporter {
    app: Running<Binary>,
}

impl Exporter {
    pub fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    pub fn polls_finished(&self) -> usize {
        self.runs_finished("servicecosts")
    }

    /// Runs of `collector` finished, from the log.
    pub fn runs_finished(&self, collector: &str) -> usize {
        let field = format!("collector={collector}");
        self.app
            .count_log_lines(|l| l.contains("msg=\"run finished\"") && l.contains(&field))
    }

    /// Waits, from the log (a scrape of 10,000 customers is not free), until `n`
    /// polls have finished.
    pub async fn wait_polls(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.polls_finished() < n {
            assert!(
                Instant::now() < deadline,
                "poll {n} did not finish within {limit:?}; logs:\n{}",
                self.app.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The exposition, fetched gzipped (cheaper for both sides) and decompressed.
    pub async fn metrics_text(&self, client: &reqwest::Client) -> String {
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

    pub fn pid(&self) -> u32 {
        self.app.pid()
    }

    /// utime + stime of the process (all threads), in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("stat");
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / clock_ticks()
    }

    /// VmHWM: the peak resident set size, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }
}

/// Whether the service-costs collector is running a poll, from `/metrics`.
pub async fn poll_in_progress(exporter: &Exporter, client: &reqwest::Client) -> bool {
    let text = exporter.metrics_text(client).await;
    sample(
        &text,
        "partnercenter_poll_in_progress{collector=\"servicecosts\"}",
    ) == Some(1.0)
}

/// How long the last service-costs poll took, from an exposition (NaN if none
/// finished).
pub fn poll_duration(text: &str) -> f64 {
    sample(
        text,
        "partnercenter_poll_duration_seconds{collector=\"servicecosts\"}",
    )
    .unwrap_or(f64::NAN)
}

/// A `kB` field of `/proc/{pid}/status` (`VmHWM:`, `VmRSS:`), in KiB.
pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
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
