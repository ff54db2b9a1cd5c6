//! A real Alertmanager (Debian's `prometheus-alertmanager` package) and a webhook
//! receiver that records every notification Alertmanager delivers to it.
//!
//! The receiver is a few lines of HTTP/1.1 on a tokio listener: Alertmanager's
//! webhook is one `POST` with a JSON body and a `Content-Length`, answered here
//! with `200` and `Connection: close`. What a notification holds is kept as
//! Alertmanager sent it, so a test asserts on the real payload (version 4 of the
//! webhook format: `status`, `groupLabels`, `alerts[].labels`, `.annotations`).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::host::{find_on_path, free_port, spawn_server, wait_until_ready};

/// An Alertmanager on a free loopback port with the configuration a test gives,
/// clustering off and a temporary data directory; killed on drop.
pub struct Alertmanager {
    child: Child,
    pub url: String,
    /// `host:port`, as Prometheus's `alertmanagers` static targets want it.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with `config` (the YAML of an `alertmanager.yml`) and
    /// waits until it is ready (at most 30 s). The configuration is checked
    /// first with `amtool check-config`, so a bad one fails with amtool's words.
    pub async fn start(config: &str) -> Alertmanager {
        let binary = find_on_path("prometheus-alertmanager")
            .or_else(|| find_on_path("alertmanager"))
            .expect("Alertmanager is required (scripts/test.sh installs Debian's prometheus-alertmanager package)");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("alertmanager.yml");
        std::fs::write(&file, config).unwrap();
        let (ok, out, err) = amtool(&["check-config", &file.display().to_string()]);
        assert!(ok, "amtool check-config:\n{out}{err}\n{config}");
        let port = free_port();
        let args = [
            format!("--config.file={}", file.display()),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // No gossip: one instance, and no port of the machine's taken.
            "--cluster.listen-address=".to_owned(),
            "--log.level=warn".to_owned(),
        ];
        let am = Alertmanager {
            child: spawn_server(&binary, &args, "alertmanager"),
            url: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        wait_until_ready(&format!("{}/-/ready", am.url), "alertmanager").await;
        am
    }

    /// The alerts Alertmanager holds now (`GET /api/v2/alerts`).
    pub async fn alerts(&self) -> Vec<Value> {
        let request = reqwest::Client::new().get(format!("{}/api/v2/alerts", self.url));
        let answer = crate::send_for_json(request).await;
        answer.as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `amtool` with `args`; whether it succeeded, its standard output, and its
/// standard error (where it also prints warnings).
pub fn amtool(args: &[&str]) -> (bool, String, String) {
    let binary = find_on_path("amtool").expect(
        "amtool is required (scripts/test.sh installs Debian's prometheus-alertmanager package)",
    );
    let out = Command::new(binary)
        .args(args)
        .output()
        .expect("amtool runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One delivery: the path it was posted to and the JSON body.
#[derive(Clone, Debug)]
pub struct Notification {
    pub path: String,
    pub body: Value,
}

impl Notification {
    /// The alerts of the notification (`alerts[]`).
    pub fn alerts(&self) -> Vec<Value> {
        self.body["alerts"].as_array().cloned().unwrap_or_default()
    }

    /// The first of its alerts called `alertname`, if any.
    pub fn alert(&self, alertname: &str) -> Option<Value> {
        self.alerts()
            .into_iter()
            .find(|a| a["labels"]["alertname"] == alertname)
    }
}

/// A webhook receiver on a loopback port of its own; it records what it is sent
/// until it is dropped.
pub struct WebhookReceiver {
    /// `http://127.0.0.1:PORT`: append the path a receiver posts to.
    pub url: String,
    received: Arc<Mutex<Vec<Notification>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    if let Some(n) = read_post(stream).await {
                        sink.lock().unwrap().push(n);
                    }
                });
            }
        });
        WebhookReceiver {
            url,
            received,
            task,
        }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Notification> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) for a notification that `pred` accepts.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Notification) -> bool,
    ) -> Notification {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(n) = self.received().into_iter().find(|n| pred(n)) {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "no notification {what} within {limit:?}; received: {:#?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request (headers, then `Content-Length` bytes), answers
/// `200`, and returns the request's path and JSON body; `None` for anything that
/// is not such a request.
async fn read_post(mut stream: TcpStream) -> Option<Notification> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..header_end]).into_owned();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while data.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    }
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await;
    let body = serde_json::from_slice(&data[header_end..header_end + length]).ok()?;
    Some(Notification { path, body })
}

/// Copies of the rule files `files` into `dir` with every `for:` duration set to
/// `for_`: the shipped files wait 15 minutes and more before an alert fires; a
/// test cannot. Nothing else of the files changes. Returns the copies' paths.
pub fn rules_with_for(files: &[PathBuf], dir: &std::path::Path, for_: &str) -> Vec<PathBuf> {
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).unwrap();
            let changed: Vec<String> = text
                .lines()
                .map(|line| {
                    let indent = line.len() - line.trim_start().len();
                    if line.trim_start().starts_with("for: ") {
                        format!("{}for: {for_}", &line[..indent])
                    } else {
                        line.to_owned()
                    }
                })
                .collect();
            let copy = dir.join(file.file_name().unwrap());
            std::fs::write(&copy, changed.join("\n") + "\n").unwrap();
            copy
        })
        .collect()
}
