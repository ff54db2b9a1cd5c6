//! Continuity: the cache file carries the last snapshot across restarts, crashes
//! and shutdowns; readiness never depends on Partner Center or Azure AD.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use partnercenter_exporter::simulator::Simulator;

use crate::helpers::*;

/// A simulator with `customers`, and exporter flags that point at it with a cache
/// file in a fresh directory.
async fn with_cache(customers: usize) -> (Simulator, tempfile::TempDir, PathBuf, Vec<String>) {
    let sim = simulator(customers).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("snapshot.json");
    let mut flags = sim_flags(&sim, dir.path());
    flags.extend(["--poll.cache-file".to_owned(), cache.display().to_string()]);
    (sim, dir, cache, flags)
}

#[tokio::test]
async fn a_restart_with_both_services_unreachable_serves_the_same_series() {
    let (sim, _dir, cache, flags) = with_cache(8).await;
    let before = {
        let mut exporter = Exporter::spawn(&flags);
        let m = exporter.wait_for_polls(1.0).await;
        assert_eq!(exporter.terminate(), Some(0));
        m
    };
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "spend per customer is sensitive");
    }
    let url = sim.url();
    sim.shutdown().await;
    // Azure AD and Partner Center are both gone now (connection refused).
    assert!(reqwest::get(format!("{url}/v1/customers")).await.is_err());
    let exporter = Exporter::spawn(&flags);
    let first = exporter.metrics().await;
    assert_eq!(
        first.cost_series(),
        before.cost_series(),
        "same series, same values, same timestamps"
    );
    assert!(!first.cost_series().is_empty());
    assert_eq!(
        exporter.get("/-/ready").await.0,
        200,
        "readiness does not depend on Partner Center"
    );
    assert_eq!(
        first.get(
            "partnercenter_poll_last_success_timestamp_seconds",
            SERVICECOSTS
        ),
        before.get(
            "partnercenter_poll_last_success_timestamp_seconds",
            SERVICECOSTS
        ),
    );
    assert!(
        exporter.logs().contains("serving the cached snapshot"),
        "{}",
        exporter.logs()
    );
}

#[tokio::test]
async fn a_corrupt_or_foreign_cache_starts_cleanly_with_a_warning() {
    let (_sim, _dir, cache, flags) = with_cache(3).await;
    for (contents, needle) in [
        (
            &b"{\"version\":1,\"snapshot\":{\"customers\":[{\"id\":"[..],
            "not a valid cache file",
        ),
        (&b"\x00\xff\x13garbage"[..], "not a valid cache file"),
        (
            &b"{\"version\":999,\"snapshot\":{}}"[..],
            "format version 999",
        ),
        (
            // A whole file of the format before collectors: ignored.
            &b"{\"version\":1,\"snapshot\":{\"customers\":[],\"poll_last_success\":null}}"[..],
            "format version 1",
        ),
    ] {
        std::fs::write(&cache, contents).unwrap();
        let exporter = Exporter::spawn(&flags);
        assert_eq!(exporter.get("/-/ready").await.0, 200);
        let m = exporter.wait_for_polls(1.0).await;
        assert_eq!(
            m.get(
                "partnercenter_polls_total",
                &[("collector", "servicecosts"), ("result", "success")]
            ),
            Some(1.0)
        );
        let logs = exporter.logs();
        let warnings: Vec<_> = logs
            .lines()
            .filter(|l| l.contains("level=warn") && l.contains(needle))
            .collect();
        assert_eq!(warnings.len(), 1, "logged once: {logs}");
        // The poll rewrote a valid cache.
        assert!(cached_customers(&cache).unwrap().is_some());
    }
}

#[tokio::test]
async fn sigkill_at_random_moments_never_leaves_a_broken_cache() {
    let (sim, dir, cache, mut flags) = with_cache(30).await;
    sim.knobs().set_latency(Duration::from_millis(20));
    flags.extend([
        "--poll.interval".to_owned(),
        "200ms".into(),
        "--poll.rate-limit".into(),
        "100000".into(),
    ]);
    let mut loaded = 0;
    for round in 0..6u64 {
        let mut exporter = Exporter::spawn(&flags);
        let logs = exporter.logs();
        assert!(
            !logs.contains("ignoring the cache file"),
            "round {round}: {logs}"
        );
        if logs.contains("serving the cached snapshot") {
            loaded += 1;
            let m = exporter.metrics().await;
            assert_eq!(
                m.count("partnercenter_customer_info"),
                30,
                "a complete snapshot"
            );
        }
        // Somewhere inside a poll or a cache write.
        let wait = 150 + fastrand::u64(0..700) + round * 37;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        exporter.kill();
        match cached_customers(&cache) {
            Ok(Some(n)) => assert_eq!(n, 30),
            Ok(None) => {}
            Err(e) => panic!("round {round}: the cache is broken after SIGKILL: {e}"),
        }
    }
    assert!(
        loaded >= 3,
        "the cache was loaded after most kills ({loaded})"
    );
    // No temporary files pile up beyond the one a kill may have interrupted.
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .count();
    assert!(leftovers <= 6, "{leftovers}");
}

#[tokio::test]
async fn sigterm_mid_poll_exits_0_promptly_and_keeps_the_previous_cache() {
    let (sim, _dir, cache, mut flags) = with_cache(6).await;
    flags.extend([
        "--poll.interval".to_owned(),
        "1s".into(),
        "--poll.concurrency".into(),
        "1".into(),
    ]);
    let mut exporter = Exporter::spawn(&flags);
    exporter.wait_for_polls(1.0).await;
    let previous = std::fs::read(&cache).unwrap();
    // The next poll is slow: 6 customers, one at a time, 2 s each.
    sim.knobs().set_latency(Duration::from_secs(2));
    let deadline = Instant::now() + Duration::from_secs(10);
    while exporter
        .metrics()
        .await
        .get("partnercenter_poll_in_progress", SERVICECOSTS)
        != Some(1.0)
    {
        assert!(Instant::now() < deadline, "the second poll did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    assert_eq!(exporter.terminate(), Some(0), "{}", exporter.logs());
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "exited within seconds: {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        std::fs::read(&cache).unwrap(),
        previous,
        "no half snapshot written"
    );
    assert!(cached_customers(&cache).unwrap().is_some());
    assert!(
        exporter.logs().contains("run cancelled"),
        "{}",
        exporter.logs()
    );
}

#[tokio::test]
async fn readiness_is_immediate_while_the_first_poll_is_slow() {
    let sim = simulator(4).await;
    sim.knobs().set_latency(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let exporter = Exporter::spawn(&sim_flags(&sim, dir.path()));
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    let m = exporter.metrics().await;
    assert_eq!(
        m.get("partnercenter_poll_in_progress", SERVICECOSTS),
        Some(1.0),
        "the first poll is running"
    );
    assert_eq!(m.sum_of("partnercenter_polls_total", SERVICECOSTS), 0.0);
}
