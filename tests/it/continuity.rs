//! Continuity: the cache file carries the last snapshot across restarts, crashes
//! and shutdowns; readiness never depends on Partner Center or Azure AD.

use std::time::{Duration, Instant};

use testkit::{simulator, TestApp, SERVICECOSTS};

use crate::helpers::cached_customers;

/// An exporter with a cache file against a simulator of `customers`.
fn with_cache(customers: usize) -> TestApp {
    TestApp::new().customers(customers).cache_file()
}

#[tokio::test]
async fn a_restart_with_both_services_unreachable_serves_the_same_series() {
    let app = with_cache(8);
    let cache = app.cache_path();
    let mut exporter = app.spawn_binary().await;
    let before = exporter.wait_for_polls(1.0).await;
    assert_eq!(exporter.terminate(), Some(0));
    let mut app = exporter.stop();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "spend per customer is sensitive");
    }
    let url = app.sim().url();
    app.shutdown_simulator().await;
    // Azure AD and Partner Center are both gone now (connection refused).
    assert!(reqwest::get(format!("{url}/v1/customers")).await.is_err());
    let exporter = app.spawn_binary().await;
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
    let mut app = with_cache(3);
    let cache = app.cache_path();
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
        let exporter = app.spawn_binary().await;
        assert_eq!(exporter.get("/-/ready").await.0, 200);
        let m = exporter.wait_for_polls(1.0).await;
        assert_eq!(m.polls("servicecosts", "success"), Some(1.0));
        let logs = exporter.logs();
        let warnings: Vec<_> = logs
            .lines()
            .filter(|l| l.contains("level=warn") && l.contains(needle))
            .collect();
        assert_eq!(warnings.len(), 1, "logged once: {logs}");
        // The poll rewrote a valid cache.
        assert!(cached_customers(&cache).unwrap().is_some());
        app = exporter.stop();
    }
}

#[tokio::test]
async fn sigkill_at_random_moments_never_leaves_a_broken_cache() {
    let sim = simulator(30).await;
    sim.knobs().set_latency(Duration::from_millis(20));
    let mut app = TestApp::with_simulator(sim)
        .cache_file()
        .flag("--poll.interval", "200ms")
        .flag("--poll.rate-limit", "100000");
    let cache = app.cache_path();
    let mut loaded = 0;
    // Whether a cache file with the service-costs part was seen: the collectors
    // write the file as each run ends, so until the first service-costs run has
    // ended the file may hold only the other parts; from then on every file holds
    // all 30 customers' costs.
    let mut complete = false;
    for round in 0..6u64 {
        let mut exporter = app.spawn_binary().await;
        let logs = exporter.logs();
        assert!(
            !logs.contains("ignoring the cache file"),
            "round {round}: {logs}"
        );
        if logs.contains("serving the cached snapshot") && complete {
            loaded += 1;
            let m = exporter.metrics().await;
            assert_eq!(
                m.count("partnercenter_customer_info"),
                30,
                "a complete snapshot"
            );
        }
        if round == 0 {
            // One complete service-costs run first, however loaded the machine: the
            // kills that follow land in later runs and cache writes.
            exporter.wait_for_polls(1.0).await;
        }
        // Somewhere inside a poll or a cache write.
        let wait = 150 + fastrand::u64(0..700) + round * 37;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        exporter.kill();
        match cached_customers(&cache) {
            Ok(Some(0)) => assert!(!complete, "round {round}: the service costs left the cache"),
            Ok(Some(n)) => {
                assert_eq!(n, 30, "round {round}");
                complete = true;
            }
            Ok(None) => {}
            Err(e) => panic!("round {round}: the cache is broken after SIGKILL: {e}"),
        }
        app = exporter.stop();
    }
    assert!(
        loaded >= 3,
        "the cache was loaded after most kills ({loaded})"
    );
    // No temporary files pile up beyond the one a kill may have interrupted.
    let leftovers = std::fs::read_dir(app.dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .count();
    assert!(leftovers <= 6, "{leftovers}");
}

#[tokio::test]
async fn sigterm_mid_poll_exits_0_promptly_and_keeps_the_previous_cache() {
    // Service costs alone: the other collectors, on the same 1 s interval, would
    // write the cache file as their own runs end, which is not what this is about.
    let app = with_cache(6)
        .flag("--poll.interval", "1s")
        .flag("--poll.concurrency", "1")
        .arg("--no-collector.usage")
        .arg("--no-collector.invoices");
    let cache = app.cache_path();
    let mut exporter = app.spawn_binary().await;
    exporter.wait_for_polls(1.0).await;
    let previous = std::fs::read(&cache).unwrap();
    // The next poll is slow: 6 customers, one at a time, 2 s each.
    exporter.sim().knobs().set_latency(Duration::from_secs(2));
    exporter
        .wait_for_metrics("the second poll started", Duration::from_secs(10), |m| {
            m.get("partnercenter_poll_in_progress", SERVICECOSTS) == Some(1.0)
        })
        .await;
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
    let exporter = TestApp::with_simulator(sim).spawn_binary().await;
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    let m = exporter.metrics().await;
    assert_eq!(
        m.get("partnercenter_poll_in_progress", SERVICECOSTS),
        Some(1.0),
        "the first poll is running"
    );
    assert_eq!(m.sum_of("partnercenter_polls_total", SERVICECOSTS), 0.0);
}
