//! The real exporter binary as a child process: started on 127.0.0.1:0 with an
//! empty environment, its stderr collected line by line, killed on drop; and
//! [`run_to_exit`] for start-up failures.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::logs::field;
use crate::metrics::Metrics;

/// How long the binary may take to log that it listens.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long [`Binary::wait_for_runs`] waits.
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The exporter binary that cargo built for the running test or benchmark.
///
/// Cargo names it in `CARGO_BIN_EXE_partnercenter-exporter` when it runs an
/// integration test or a benchmark of the exporter's package; where it does not
/// (older cargo sets the variable only while compiling that crate), the binary is
/// next to the `deps` directory the test executable is in.
pub fn exporter_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("CARGO_BIN_EXE_partnercenter-exporter") {
            return PathBuf::from(path);
        }
        let test = std::env::current_exe().expect("the path of the test executable");
        let path = test
            .parent()
            .and_then(Path::parent)
            .map(|profile| profile.join("partnercenter-exporter"))
            .expect("the test executable is in target/<profile>/deps");
        assert!(
            path.is_file(),
            "no exporter binary at {} (run the tests with cargo)",
            path.display()
        );
        path
    })
}

/// The real binary, started on 127.0.0.1:0; its stderr is collected.
pub struct Binary {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl Binary {
    /// Starts the binary with `args` and only `env` as its environment, and waits
    /// until its "listening" line names the address (at most 20 s).
    pub(crate) fn spawn(args: &[String], env: &[(String, String)]) -> Binary {
        let mut child = Command::new(exporter_binary())
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("exporter starts");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(String::new()));
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
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(START_LIMIT) {
            Ok(addr) => addr.parse().expect("address"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "exporter did not start listening; logs:\n{}",
                    logs.lock().unwrap()
                );
            }
        };
        Binary { child, addr, logs }
    }

    /// `http://{addr}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything the process has logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// How many of the lines logged so far satisfy `pred` (without copying them).
    pub fn count_log_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.logs
            .lock()
            .unwrap()
            .lines()
            .filter(|l| pred(l))
            .count()
    }

    /// `GET path`: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        super::get(self.url(path)).await
    }

    /// `GET /metrics`, which must answer 200, parsed.
    pub async fn metrics(&self) -> Metrics {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200);
        Metrics::parse(&body)
    }

    /// Waits until `polls` runs of the service-costs collector have finished (any
    /// result), at most 60 s.
    pub async fn wait_for_polls(&self, polls: f64) -> Metrics {
        self.wait_for_runs("servicecosts", polls).await
    }

    /// Waits until `runs` runs of `collector` have finished (any result), at most
    /// 60 s.
    pub async fn wait_for_runs(&self, collector: &str, runs: f64) -> Metrics {
        self.wait_for_metrics(
            &format!("{runs} {collector} runs finished"),
            RUN_LIMIT,
            |m| m.sum_of("partnercenter_polls_total", &[("collector", collector)]) >= runs,
        )
        .await
    }

    /// Scrapes every 50 ms until the metrics satisfy `done`, and returns them;
    /// after `limit` it panics with `what` (the state waited for) and the logs.
    pub async fn wait_for_metrics(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let deadline = Instant::now() + limit;
        loop {
            let m = self.metrics().await;
            if done(&m) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} in vain for: {what}; logs:\n{}",
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

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status once the process has exited; `None` if it has not within
    /// `limit` (it is killed then) or was killed by a signal.
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

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the binary to completion with `args` and only `env` as its environment
/// (for start-up failures): the exit code and stderr.
pub fn run_to_exit<I, S>(args: I, env: &[(&str, &str)]) -> (Option<i32>, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(exporter_binary())
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
