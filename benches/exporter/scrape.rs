//! The scrape load: keep-alive clients that fetch a URL over and over, plain or
//! gzip, and the latencies they measure. The same code scrapes the exporter and
//! nginx.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::SCRAPERS;

#[derive(Clone, Debug, Default)]
pub struct RunStats {
    /// Sorted latencies of every scrape, first byte sent to last byte read.
    pub latencies: Vec<Duration>,
    pub wall: Duration,
    pub body_bytes: usize,
    /// The server's CPU time over the run, where measured.
    pub server_cpu_s: Option<f64>,
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

    pub fn p50_ms(&self) -> f64 {
        self.percentile_ms(50.0)
    }

    pub fn p99_ms(&self) -> f64 {
        self.percentile_ms(99.0)
    }

    pub fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }

    pub fn cpu_ms_per_scrape(&self) -> Option<f64> {
        self.server_cpu_s
            .map(|s| s * 1000.0 / self.latencies.len().max(1) as f64)
    }

    pub fn json(&self) -> Value {
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

pub fn scrape_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(SCRAPERS * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// One scrape: sends the request and reads the body chunk by chunk, keeping only
/// its length (the load generator shares the machine; it should cost little).
pub async fn scrape(client: &reqwest::Client, url: &str, gzip: bool) -> (Duration, usize) {
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
pub async fn scrape_run(
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
pub async fn capture_bodies(client: &reqwest::Client, url: &str) -> (Vec<u8>, Vec<u8>) {
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

pub fn gunzip(body: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::MultiGzDecoder::new(body)
        .read_to_string(&mut out)
        .expect("valid gzip");
    out
}
