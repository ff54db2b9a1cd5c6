//! Resilience: one fault at a time from the simulator's knobs. For each, what
//! /metrics shows afterwards, that no other customer's data was lost, and how many
//! requests each service received (no hot loop).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use partnercenter_exporter::collectors::PollOutcome;
use partnercenter_exporter::simulator::TokenFault;
use testkit::{redeem_refresh_token, secret_file, simulator, Metrics, TestApp};

use crate::helpers::DOCUMENTED_ID;

fn after_tax_by_customer(m: &Metrics) -> BTreeMap<String, f64> {
    m.matching("partnercenter_service_costs_after_tax", &[])
        .map(|(_, l, v)| (format!("{}/{}", l["customer_id"], l["invoice_type"]), *v))
        .collect()
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_with_retry_after() {
    // Customers named in a config file: no discovery, so the storm hits the fan-out.
    let sim = simulator(10).await;
    let mut yaml = String::from("customers:\n");
    for c in sim.customers() {
        yaml.push_str(&format!(
            "  - id: {}\n    name: {}\n",
            c.id,
            serde_json::to_string(&c.name).unwrap()
        ));
    }
    let app = TestApp::with_simulator(sim);
    let config = app.path("config.yml");
    std::fs::write(&config, yaml).unwrap();
    let exporter = app
        .flag("--config.file", config.display())
        .start_in_process()
        .await;
    let sim = exporter.sim();
    sim.knobs().set_throttle_next(6, 1);
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("success", 0));
    let stats = sim.stats();
    assert_eq!(stats.throttled, 6);
    assert_eq!(stats.customers, 0);
    // Every throttled request was retried once it was allowed, and nothing more.
    assert_eq!(stats.servicecosts, 10 + 6);
    // Retry-After (1 s) was honoured: no retry came sooner than a second after its 429.
    let log = sim.request_log();
    for (i, r) in log.iter().enumerate().filter(|(_, r)| r.status == 429) {
        if let Some(retry) = log[i + 1..]
            .iter()
            .find(|n| n.ms_request_id == r.ms_request_id && n.ms_request_id.is_some())
        {
            assert!(
                retry.at.duration_since(r.at) >= Duration::from_millis(990),
                "retried too soon"
            );
        } else {
            panic!("a throttled call was not retried");
        }
    }
    let m = exporter.metrics().await;
    assert_eq!(
        m.get("partnercenter_api_requests_total", &[("code", "429")]),
        Some(6.0)
    );
    exporter.stop().await;
}

#[tokio::test]
async fn thirty_percent_503s_lose_no_data() {
    let exporter = TestApp::new().customers(20).start_in_process().await;
    let sim = exporter.sim();
    exporter.poll().await;
    let before = after_tax_by_customer(&exporter.metrics().await);
    assert!(before.len() >= 30);
    let requests_before = sim.stats().servicecosts;
    sim.knobs().set_error_rate(0.3);
    let (result, _) = exporter.poll().await;
    let m = exporter.metrics().await;
    let after = after_tax_by_customer(&m);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "no series lost"
    );
    // Bounded: at most 5 tries per customer, never a hot loop.
    let made = sim.stats().servicecosts - requests_before;
    assert!((20..=100).contains(&made), "{made} requests");
    assert!(made > 20, "some requests were retried");
    assert!(result == "success" || result == "partial", "{result}");
    assert!(
        m.get(
            "partnercenter_api_requests_total",
            &[("endpoint", "servicecosts"), ("code", "503")]
        )
        .unwrap()
            >= 1.0
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_malformed_body_fails_only_that_customer() {
    let exporter = TestApp::new().customers(8).start_in_process().await;
    let sim = exporter.sim();
    exporter.poll().await;
    let before = exporter.metrics().await;
    let victim = sim.customers()[3].id.clone();
    sim.knobs().set_malformed(&victim, true);
    let requests_before = sim.stats().servicecosts;
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("partial", 1));
    assert_eq!(
        sim.stats().servicecosts - requests_before,
        8,
        "a bad body is not retried"
    );
    let after = exporter.metrics().await;
    assert_eq!(
        after_tax_by_customer(&before),
        after_tax_by_customer(&after),
        "the victim keeps its last values"
    );
    assert_eq!(
        after.get(
            "partnercenter_customer_fetch_success",
            &[("customer_id", &victim)]
        ),
        Some(0.0)
    );
    assert_eq!(after.sum("partnercenter_customer_fetch_success"), 7.0);
    assert_eq!(
        before.get(
            "partnercenter_customer_last_success_timestamp_seconds",
            &[("customer_id", &victim)]
        ),
        after.get(
            "partnercenter_customer_last_success_timestamp_seconds",
            &[("customer_id", &victim)]
        ),
        "its timestamp tells the age of the data"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_huge_body_is_refused_without_reading_it_all() {
    let exporter = TestApp::new().customers(4).start_in_process().await;
    let sim = exporter.sim();
    let victim = sim.customers()[2].id.clone();
    sim.knobs().set_huge_body(&victim, true);
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("partial", 1));
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "partnercenter_customer_fetch_success",
            &[("customer_id", &victim)]
        ),
        Some(0.0)
    );
    exporter.stop().await;
}

#[tokio::test]
async fn an_access_token_expiring_mid_poll_is_renewed_once() {
    let exporter = TestApp::new().customers(6).start_in_process().await;
    let sim = exporter.sim();
    exporter.poll().await;
    assert_eq!(sim.stats().token, 1);
    sim.expire_access_tokens();
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "success");
    assert_eq!(
        sim.stats().token,
        2,
        "one renewal however many requests saw the 401"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_down_for_a_poll_keeps_the_data() {
    let exporter = TestApp::new().customers(6).start_in_process().await;
    let sim = exporter.sim();
    exporter.poll().await;
    let before = after_tax_by_customer(&exporter.metrics().await);
    sim.expire_access_tokens();
    sim.knobs().set_token_fault(TokenFault::Down);
    let tokens_before = sim.stats().token;
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("failure", 6));
    let tries = sim.stats().token - tokens_before;
    assert!(
        (2..=5).contains(&tries),
        "transient errors are retried, boundedly: {tries}"
    );
    let m = exporter.metrics().await;
    assert_eq!(after_tax_by_customer(&m), before);
    assert_eq!(m.sum("partnercenter_customer_fetch_success"), 0.0);
    assert!(m.sum("partnercenter_auth_failures_total") >= 1.0);
    // Back up: the next poll recovers.
    sim.knobs().set_token_fault(TokenFault::None);
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "success");
    exporter.stop().await;
}

#[tokio::test]
async fn azure_ads_retry_after_is_waited_for_within_the_calls_budget() {
    // The in-process exporter's backoff waits 20 to 200 ms, 3 s in all per call;
    // `temporarily_unavailable` comes with `Retry-After: 1`.
    let exporter = TestApp::new().customers(2).start_in_process().await;
    let sim = exporter.sim();
    sim.expire_access_tokens();
    sim.knobs()
        .set_token_fault(TokenFault::TemporarilyUnavailable);
    let logged = sim.request_log().len();
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "failure");
    let tries: Vec<Instant> = sim.request_log()[logged..]
        .iter()
        .filter(|r| r.endpoint == partnercenter_exporter::simulator::Endpoint::Token)
        .map(|r| r.at)
        .collect();
    // Each wait is at least the second asked for, and the 3 s budget pays for
    // three of them: four tries, not the five the backoff alone would make in
    // under a second.
    assert_eq!(tries.len(), 4, "{tries:?}");
    for pair in tries.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(990),
            "{gap:?} between two tries"
        );
    }
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "partnercenter_auth_failures_total",
            &[("reason", "temporarily_unavailable")]
        ),
        Some(1.0),
        "{}",
        m.text
    );
    sim.knobs().set_token_fault(TokenFault::None);
    assert_eq!(exporter.poll().await.0, "success");
    exporter.stop().await;
}

#[tokio::test]
async fn invalid_grant_asks_once_per_poll_logs_once_and_keeps_serving() {
    let exporter = TestApp::new()
        .customers(5)
        .flag("--poll.interval", "1s")
        .spawn_binary()
        .await;
    let sim = exporter.sim();
    let first = exporter.wait_for_polls(1.0).await;
    let before = after_tax_by_customer(&first);
    sim.knobs().set_token_fault(TokenFault::InvalidGrant);
    sim.expire_access_tokens();
    let tokens_before = sim.stats().token;
    let m = exporter.wait_for_polls(4.0).await;
    // Every collector's runs sign in: one token request and one line per run.
    let polls_with_fault =
        m.sum("partnercenter_polls_total") - first.sum("partnercenter_polls_total");
    let token_requests = (sim.stats().token - tokens_before) as f64;
    assert!(
        token_requests <= polls_with_fault + 1.0,
        "{token_requests} token requests in {polls_with_fault} polls"
    );
    assert_eq!(
        after_tax_by_customer(&m),
        before,
        "the last good data is still served"
    );
    assert!(
        m.get(
            "partnercenter_auth_failures_total",
            &[("reason", "invalid_grant")]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    let logs = exporter.logs();
    let lines = logs.lines().filter(|l| l.contains("AADSTS700082")).count();
    assert!(lines >= 1, "{logs}");
    assert!(
        lines as f64 <= polls_with_fault + 1.0,
        "one line per poll: {lines} lines, {polls_with_fault} polls\n{logs}"
    );
    assert!(logs.contains("consent"), "the log says what to do: {logs}");
}

#[tokio::test]
async fn a_hanging_request_is_cut_by_the_timeout() {
    let exporter = TestApp::new()
        .customers(6)
        .flag("--poll.timeout", "300ms")
        .start_in_process()
        .await;
    let sim = exporter.sim();
    let victim = sim.customers()[4].id.clone();
    sim.knobs().set_hang(&victim, true);
    let started = Instant::now();
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("partial", 1));
    // 5 tries of 300 ms plus short backoff: the poll was not held up beyond them.
    assert!(started.elapsed() < Duration::from_secs(20));
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "partnercenter_customer_fetch_success",
            &[("customer_id", &victim)]
        ),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "partnercenter_api_requests_total",
            &[("endpoint", "servicecosts"), ("code", "error")]
        ),
        Some(5.0)
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_removed_customer_disappears_at_the_next_poll() {
    let exporter = TestApp::new().customers(6).start_in_process().await;
    let sim = exporter.sim();
    exporter.poll().await;
    let gone = sim.customers()[2].id.clone();
    assert!(exporter
        .metrics()
        .await
        .get("partnercenter_customer_info", &[("customer_id", &gone)])
        .is_some());
    assert!(sim.remove_customer(&gone));
    exporter.poll().await;
    let m = exporter.metrics().await;
    assert!(
        !m.text.contains(&gone),
        "every series of the removed customer is gone"
    );
    assert_eq!(m.count("partnercenter_customer_info"), 5);
    exporter.stop().await;
}

#[tokio::test]
async fn a_running_poll_is_not_started_twice() {
    let exporter = TestApp::new()
        .customers(4)
        .flag("--poll.concurrency", "1")
        .start_in_process()
        .await;
    let sim = exporter.sim();
    sim.knobs().set_latency(Duration::from_millis(100));
    let (a, b) = tokio::join!(exporter.poller.poll_once(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        exporter.poller.poll_once().await
    });
    assert!(matches!(a, PollOutcome::Finished { .. }));
    assert_eq!(b, PollOutcome::AlreadyRunning);
    assert_eq!(sim.stats().customers, 1);
    exporter.stop().await;
}

#[tokio::test]
async fn concurrency_is_bounded() {
    let exporter = TestApp::new()
        .customers(30)
        .flag("--poll.concurrency", "3")
        .start_in_process()
        .await;
    let sim = exporter.sim();
    sim.knobs().set_latency(Duration::from_millis(30));
    exporter.poll().await;
    assert!(
        sim.stats().in_flight_max <= 3,
        "{}",
        sim.stats().in_flight_max
    );
    assert!(
        sim.stats().in_flight_max >= 2,
        "requests do run in parallel"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn the_rate_limit_paces_a_poll_of_1000_customers_without_429() {
    // The simulator enforces 6000 requests per minute with a 5-second bucket (500):
    // 1000 unpaced requests would overrun it.
    let exporter = TestApp::new()
        .customers(1000)
        .flag("--poll.rate-limit", "6000")
        .flag("--poll.concurrency", "16")
        .start_in_process()
        .await;
    let sim = exporter.sim();
    sim.knobs().set_rate_limit(Some(6000));
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("success", 0));
    assert_eq!(sim.stats().throttled, 0);
    assert_eq!(sim.stats().servicecosts, 1000);
    exporter.stop().await;
}

#[tokio::test]
async fn a_401_after_renewal_is_a_failure_not_a_loop() {
    let exporter = TestApp::new().customers(3).start_in_process().await;
    let sim = exporter.sim();
    let victim = sim.customers()[1].id.clone();
    sim.knobs().set_status(&victim, Some(401));
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("partial", 1));
    let log = sim.request_log();
    let tries = log.iter().filter(|r| r.path.contains(&victim)).count();
    assert_eq!(tries, 2, "one try, one renewal, one retry");
    for status in [400, 403] {
        sim.knobs().set_status(&victim, Some(status));
        let before = sim
            .request_log()
            .iter()
            .filter(|r| r.path.contains(&victim))
            .count();
        exporter.poll().await;
        let after = sim
            .request_log()
            .iter()
            .filter(|r| r.path.contains(&victim))
            .count();
        assert_eq!(after - before, 1, "{status} is not retried");
    }
    exporter.stop().await;
}

#[tokio::test]
async fn a_bom_prefixed_body_is_read() {
    let exporter = TestApp::new().customers(4).start_in_process().await;
    let sim = exporter.sim();
    sim.knobs().set_bom(true);
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "success");
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "partnercenter_service_costs_after_tax",
            &[("customer_id", DOCUMENTED_ID), ("invoice_type", "OneTime")]
        ),
        Some(2.2)
    );
    exporter.stop().await;
}

#[tokio::test]
async fn bad_http_to_our_server_is_refused_per_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exporter = TestApp::new().customers(2).start_in_process().await;
    exporter.poll().await;
    // Idle connections that never send a request do not block others.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(tokio::net::TcpStream::connect(exporter.addr).await.unwrap());
    }
    // Garbage gets 400.
    let mut s = tokio::net::TcpStream::connect(exporter.addr).await.unwrap();
    s.write_all(b"\x16\x03\x01garbage\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    // Huge headers are refused.
    let mut s = tokio::net::TcpStream::connect(exporter.addr).await.unwrap();
    let big = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let answer = String::from_utf8_lossy(&buf);
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 431")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // Everyone else is still served.
    let m = exporter.metrics().await;
    assert_eq!(m.count("partnercenter_customer_info"), 2);
    drop(idle);
    exporter.stop().await;
}

#[tokio::test]
async fn a_new_refresh_token_in_the_file_is_used_without_a_restart() {
    let exporter = TestApp::new().customers(3).start_in_process().await;
    let sim = exporter.sim();
    exporter.poll().await;
    // Someone else redeems the exporter's refresh token (as a fresh consent would
    // produce a new one), and every older token is revoked.
    let token_file = exporter.path("refresh_token");
    let current = std::fs::read_to_string(&token_file).unwrap();
    let fresh = redeem_refresh_token(sim, current.trim()).await;
    sim.revoke_refresh_tokens_except_latest();
    sim.expire_access_tokens();
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "failure");
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "partnercenter_auth_failures_total",
            &[("reason", "invalid_grant")]
        ),
        Some(1.0)
    );
    // The operator stores the new token; the next poll signs in with it.
    secret_file(exporter.dir(), "refresh_token", &fresh);
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "success");
    exporter.stop().await;
}
