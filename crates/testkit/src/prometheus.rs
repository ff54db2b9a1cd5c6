//! A real Prometheus: the server (Debian's `prometheus` package) scraping what a
//! test serves, and `promtool check metrics` on an exposition.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::host::{find_on_path, free_port, spawn_server, wait_until_ready};

/// A Prometheus server on a free loopback port, with a generated configuration
/// and a temporary data directory; killed on drop.
pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with `scrape_configs` (YAML list items, already indented
    /// by two spaces) and a 1 s scrape interval, and waits until it is ready (at
    /// most 30 s).
    pub async fn start(scrape_configs: &str) -> Prometheus {
        Prometheus::start_with(scrape_configs, &[], None).await
    }

    /// As [`start`](Prometheus::start), with `rule_files` loaded and evaluated
    /// every second, and alerts sent to the Alertmanager at `alertmanager`
    /// (`host:port`) when one is given.
    pub async fn start_with(
        scrape_configs: &str,
        rule_files: &[PathBuf],
        alertmanager: Option<&str>,
    ) -> Prometheus {
        crate::install_crypto_provider();
        let binary = find_on_path("prometheus")
            .expect("the prometheus server is required (scripts/test.sh installs Debian's prometheus package)");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let mut text = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n",
        );
        if !rule_files.is_empty() {
            text.push_str("rule_files:\n");
            for file in rule_files {
                text.push_str(&format!("  - {}\n", file.display()));
            }
        }
        if let Some(target) = alertmanager {
            text.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{target}']\n"
            ));
        }
        text.push_str(&format!("scrape_configs:\n{scrape_configs}"));
        std::fs::write(&config, text).unwrap();
        let port = free_port();
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_owned(),
        ];
        let p = Prometheus {
            child: spawn_server(&binary, &args, "prometheus"),
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        wait_until_ready(&format!("{}/-/ready", p.url), "prometheus").await;
        p
    }

    /// An instant query; the `data.result` array.
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let request = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)]);
        let r = crate::send_for_json(request).await;
        assert_eq!(r["status"], "success", "{expr}: {r}");
        r["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `expr` returns a sample with value `want` (at most 30 s).
    pub async fn wait_for(&self, expr: &str, want: &str) -> Vec<Value> {
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
