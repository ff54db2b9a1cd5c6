//! Shared test helpers: the simulator, the real exporter binary on port 0, an
//! in-process `Application` with short retry waits, and a small parser of the
//! Prometheus text format.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use partnercenter_exporter::app::Application;
use partnercenter_exporter::collectors::{PollOutcome, Runner};
use partnercenter_exporter::config::{Config, Flags, SecretEnv};
use partnercenter_exporter::http::retry::Backoff;
use partnercenter_exporter::simulator::{Simulator, SimulatorConfig};
use tokio_util::sync::CancellationToken;

pub const DOCUMENTED_ID: &str = "ae1d5b32-f9ff-4252-b2bf-40e21937a51a";

/// The label that picks the service-costs collector's run series.
pub const SERVICECOSTS: &[(&str, &str)] = &[("collector", "servicecosts")];
/// The label that picks the usage collector's run series.
pub const USAGE: &[(&str, &str)] = &[("collector", "usage")];

/// The number of customers in the service-costs part of a cache file, `None` when
/// there is no file.
pub fn cached_customers(
    path: &Path,
) -> Result<Option<usize>, partnercenter_exporter::snapshot::cache::CacheError> {
    let loaded = partnercenter_exporter::snapshot::cache::load_cache(
        path,
        &partnercenter_exporter::collectors::part_loaders(),
    )?;
    Ok(loaded.map(|l| l.snapshot.any_part("servicecosts").map_or(0, |p| p.len())))
}

pub fn init() {
    partnercenter_exporter::install_crypto_provider();
}

pub async fn simulator(customers: usize) -> Simulator {
    init();
    Simulator::start(SimulatorConfig {
        customers,
        ..SimulatorConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// Writes a file with mode 0600.
pub fn secret_file(dir: &Path, name: &str, contents: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("{contents}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Flags pointing the exporter at the simulator with the refresh-token grant. The
/// refresh token and the client secret are written to files in `dir`.
pub fn sim_flags(sim: &Simulator, dir: &Path) -> Vec<String> {
    let creds = sim.credentials();
    let token_path = dir.join("refresh_token");
    if !token_path.exists() {
        secret_file(dir, "refresh_token", &creds.refresh_token);
    }
    let secret = secret_file(dir, "client_secret", &creds.client_secret);
    vec![
        "--partner-center.url".into(),
        sim.url(),
        "--auth.authority".into(),
        sim.url(),
        "--auth.tenant".into(),
        creds.tenant,
        "--auth.client-id".into(),
        creds.client_id,
        "--auth.client-secret-file".into(),
        secret.display().to_string(),
        "--auth.refresh-token-file".into(),
        token_path.display().to_string(),
    ]
}

/// The real binary, started on 127.0.0.1:0; stderr is collected.
pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_partnercenter-exporter")
}

impl Exporter {
    pub fn spawn(args: &[String]) -> Exporter {
        Self::spawn_with_env(args, &[])
    }

    pub fn spawn_with_env(args: &[String], env: &[(&str, &str)]) -> Exporter {
        init();
        let mut cmd = Command::new(binary());
        cmd.args(["--web.listen-address", "127.0.0.1:0"])
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("exporter starts");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("msg=listening") {
                    if let Some(addr) = field(&line, "address") {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "exporter did not start listening; logs:\n{}",
                    logs.lock().unwrap()
                );
            }
        };
        Exporter { child, addr, logs }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(self.url(path)).await.expect("GET");
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    pub async fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        Metrics::parse(&body)
    }

    /// Waits until `polls` polls have finished (any result).
    pub async fn wait_for_polls(&self, polls: f64) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.metrics().await;
            if m.sum_of("partnercenter_polls_total", SERVICECOSTS) >= polls {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no poll finished; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `runs` runs of `collector` have finished (any result).
    pub async fn wait_for_runs(&self, collector: &str, runs: f64) -> Metrics {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let m = self.metrics().await;
            if m.sum_of("partnercenter_polls_total", &[("collector", collector)]) >= runs {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "no {collector} run finished; logs:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status (at most 15 s).
    pub fn terminate(&mut self) -> Option<i32> {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(15))
    }

    /// Sends a signal by name (`TERM`, `HUP`, …).
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args` (for start-up failures).
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of `key=value` or `key="value"` in a logfmt line.
pub fn field(line: &str, key: &str) -> Option<String> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    let value = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next()?
    } else {
        rest.split(' ').next()?
    };
    Some(value.to_owned())
}

/// The simulator with `customers` customers and an in-process exporter on it, with
/// `extra` flags; the directory holds the exporter's secret and state files.
pub async fn setup(customers: usize, extra: &[&str]) -> (Simulator, InProcess, tempfile::TempDir) {
    let sim = simulator(customers).await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = sim_flags(&sim, dir.path());
    flags.extend(extra.iter().map(|s| s.to_string()));
    let exporter = in_process(&flags).await;
    (sim, exporter, dir)
}

/// A finished poll's result and number of failed customers.
pub fn finished(outcome: PollOutcome) -> (String, usize) {
    match outcome {
        PollOutcome::Finished { result, failed, .. } => (result.as_str().to_owned(), failed),
        PollOutcome::AlreadyRunning => panic!("poll did not run"),
    }
}

/// An exporter in this process, with short retry waits, serving without a
/// background poll loop: tests call `poll_once`.
pub struct InProcess {
    pub addr: SocketAddr,
    /// The service-costs collector's scheduler.
    pub poller: Arc<dyn Runner>,
    /// The usage collector's scheduler, if enabled.
    pub usage: Option<Arc<dyn Runner>>,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn fast_backoff() -> Backoff {
    Backoff::new(
        Duration::from_millis(20),
        Duration::from_millis(200),
        4,
        Duration::from_secs(3),
    )
}

pub async fn in_process(args: &[String]) -> InProcess {
    init();
    let mut all = vec![
        "partnercenter-exporter".to_owned(),
        "--web.listen-address".into(),
        "127.0.0.1:0".into(),
    ];
    all.extend_from_slice(args);
    let flags = Flags::parse_args(all).expect("flags");
    let mut config = Config::from_flags(flags, SecretEnv::default()).expect("config");
    let app = Application::build_with_backoff(&mut config, fast_backoff())
        .await
        .expect("builds");
    let addr = app.local_addr();
    let poller = app
        .collector("servicecosts")
        .expect("servicecosts is enabled");
    let usage = app.collector("usage");
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.serve_only(shutdown.clone()));
    InProcess {
        addr,
        poller,
        usage,
        shutdown,
        task: Some(task),
    }
}

impl InProcess {
    pub async fn metrics(&self) -> Metrics {
        let body = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body");
        Metrics::parse(&body)
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A parsed exposition: (name, labels) → value.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().expect("value"),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), BTreeMap::new()),
                Some((name, rest)) => (name.to_owned(), parse_labels(rest.trim_end_matches('}'))),
            };
            samples.push((name, labels, value));
        }
        Metrics {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of the one series of `name` whose labels include `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<f64> = self.matching(name, labels).map(|s| s.2).collect();
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} series",
            found.len()
        );
        found.first().copied()
    }

    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a (String, BTreeMap<String, String>, f64)> + 'a {
        self.samples.iter().filter(move |(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }

    pub fn sum(&self, name: &str) -> f64 {
        self.matching(name, &[]).map(|s| s.2).sum()
    }

    /// The sum of the series of `name` that carry `labels`.
    pub fn sum_of(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.2).sum()
    }

    pub fn count(&self, name: &str) -> usize {
        self.matching(name, &[]).count()
    }

    /// Every cost series (pretax, tax, after_tax) as a sorted list, for comparisons.
    pub fn cost_series(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .samples
            .iter()
            .filter(|(n, _, _)| {
                n.starts_with("partnercenter_service_costs_")
                    || n == "partnercenter_customer_last_success_timestamp_seconds"
            })
            .map(|(n, l, v)| format!("{n}{l:?} {v}"))
            .collect();
        out.sort();
        out
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(o) => value.push(o),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.insert(name.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// A real Prometheus server (Debian's `prometheus`) on a free loopback port, with a
/// generated configuration and a temporary data directory.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Starts Prometheus with `scrape_configs` (YAML list items, already indented
    /// by two spaces) and a 1 s scrape interval.
    pub async fn start(scrape_configs: &str) -> Prometheus {
        let binary = find_on_path("prometheus")
            .expect("the prometheus server is required (scripts/test.sh installs Debian's prometheus package)");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{scrape_configs}"),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/-/ready", p.url)).await {
                if r.status().is_success() {
                    return p;
                }
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// An instant query; the `data.result` array.
    pub async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let r: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["status"], "success", "{expr}: {r}");
        r["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `expr` returns a sample with value `want` (at most 30 s).
    pub async fn wait_for(&self, expr: &str, want: &str) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let result = self.query(expr).await;
            if result.iter().any(|s| s["value"][1] == want) {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "{expr} never returned {want}: {result:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool check metrics` on an exposition; panics if it fails, returns its
/// remarks (lint findings) otherwise.
pub fn promtool_check_metrics(text: &str) -> String {
    use std::io::Write;
    let promtool = find_on_path("promtool")
        .expect("promtool is required (scripts/test.sh installs Debian's prometheus package)");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{report}"
    );
    report
}
