//! The sign-in and retry path against a hostile upstream: absurd token lifetimes, a
//! persistent 401, `Retry-After` floors that would outlast the waiting budget of a
//! call, empty or unwritable refresh tokens, and secret files that start with a
//! UTF-8 byte-order mark.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use testkit::{redeem_refresh_token, secret_file_bytes, simulator, TestApp, SERVICECOSTS};

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn read_token(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn absurd_token_lifetimes_never_stop_the_poller() {
    let cases: [(&str, Value); 6] = [
        ("v2", Value::from(u64::MAX)),
        ("v2", serde_json::from_str("1e19").unwrap()),
        ("v1", Value::from("18446744073709551615")),
        ("v1", Value::from("1e19")),
        ("v2", Value::from(-3600)),
        ("v2", Value::from(0.5)),
    ];
    for (endpoint, expires_in) in cases {
        let sim = simulator(3).await;
        sim.knobs().set_token_expires_in(Some(expires_in.clone()));
        let exporter = TestApp::with_simulator(sim)
            .flag("--auth.endpoint", endpoint)
            .flag("--poll.interval", "1s")
            .spawn_binary()
            .await;
        let m = exporter.wait_for_polls(2.0).await;
        let logs = exporter.logs();
        assert!(
            m.polls("servicecosts", "success").unwrap() >= 2.0,
            "expires_in {expires_in}: two polls in a row succeed\n{logs}"
        );
        assert_eq!(
            m.sum_of("partnercenter_polls_total", SERVICECOSTS),
            m.polls("servicecosts", "success").unwrap(),
            "expires_in {expires_in}\n{logs}"
        );
        assert!(
            !logs.contains("panicked"),
            "expires_in {expires_in}\n{logs}"
        );
        // The token lives (a clamped) long enough to serve the second poll too.
        assert_eq!(
            exporter.sim().stats().token,
            1,
            "expires_in {expires_in}\n{logs}"
        );
    }
}

#[tokio::test]
async fn a_persistent_401_renews_the_token_at_most_once_per_poll() {
    let exporter = TestApp::new()
        .customers(40)
        .flag("--poll.concurrency", "8")
        .flag("--poll.rate-limit", "6000")
        .start_in_process()
        .await;
    let sim = exporter.sim();
    sim.knobs().set_status_all(Some(401));
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("failure", 40));
    let stats = sim.stats();
    // The sign-in for the poll, and one renewal however many customers saw a 401.
    assert!(
        stats.token <= 2,
        "{} token requests in one poll of 40 customers",
        stats.token
    );
    assert!(stats.servicecosts <= 80, "{} tries", stats.servicecosts);
    // The next poll may renew once more, no more.
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "failure");
    let next = sim.stats().token - stats.token;
    assert!(next <= 1, "{next} token requests in the next poll");
    // Partner Center accepts the token again: the poll after that succeeds.
    sim.knobs().set_status_all(None);
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("success", 0));
    exporter.stop().await;
}

#[tokio::test]
async fn a_401_to_a_renewed_token_still_renews_in_the_next_poll() {
    // One customer's 401 renews the token; a 401 on that renewed token is final in
    // this poll, but the next poll may renew again (the token may have been revoked
    // meanwhile): rejections never latch for good.
    let exporter = TestApp::new().customers(3).start_in_process().await;
    let sim = exporter.sim();
    let victim = sim.customers()[1].id.clone();
    sim.knobs().set_status(&victim, Some(401));
    for poll in 1..=2u64 {
        let (result, failed) = exporter.poll().await;
        assert_eq!((result.as_str(), failed), ("partial", 1));
        assert_eq!(sim.stats().token, 1 + poll, "one renewal in poll {poll}");
    }
    exporter.stop().await;
}

#[tokio::test]
async fn retry_after_floors_count_against_the_waiting_budget_of_a_call() {
    let sim = simulator(3).await;
    let victim = sim.customers()[0].id.clone();
    // fast_backoff(): 4 retries, at most 3 s of waiting per call.
    let exporter = TestApp::with_simulator(sim)
        .flag("--customers", &victim)
        .start_in_process()
        .await;
    let sim = exporter.sim();
    sim.knobs().set_throttle_next(10, 2);
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("failure", 1));
    let tries: Vec<_> = sim
        .request_log()
        .into_iter()
        .filter(|r| r.path.contains(&victim))
        .collect();
    assert_eq!(
        tries.len(),
        2,
        "one try, one retry after 2 s; a second 2 s wait would exceed the 3 s budget"
    );
    assert!(tries.iter().all(|r| r.status == 429));
    let waited = tries[1].at.duration_since(tries[0].at);
    assert!(waited >= Duration::from_secs(2), "Retry-After honoured");
    assert!(
        waited <= Duration::from_secs(3),
        "{waited:?} of waiting exceeds the budget"
    );
    // The call gave up at once instead of waiting again.
    exporter.stop().await;
}

#[tokio::test]
async fn an_empty_rotated_refresh_token_never_replaces_the_stored_one() {
    let mut app = TestApp::new();
    app.prepare().await;
    let token_file = app.path("refresh_token");
    let original = read_token(&token_file);
    app.sim()
        .knobs()
        .set_token_refresh_token(Some(String::new()));
    let app = {
        let mut exporter = app.spawn_binary().await;
        let m = exporter.wait_for_polls(1.0).await;
        let logs = exporter.logs();
        assert_eq!(m.polls("servicecosts", "success"), Some(1.0), "{logs}");
        assert_eq!(
            read_token(&token_file),
            original,
            "the file keeps its token"
        );
        let warning = logs
            .lines()
            .find(|l| l.contains("empty refresh token"))
            .unwrap_or_else(|| panic!("no warning:\n{logs}"));
        assert!(warning.contains("level=warn"), "{warning}");
        for secret in exporter.sim().issued_secrets() {
            assert!(!logs.contains(&secret), "a secret was logged:\n{logs}");
        }
        assert_eq!(exporter.terminate(), Some(0));
        exporter.stop()
    };
    // Blanks are no better than nothing.
    app.sim()
        .knobs()
        .set_token_refresh_token(Some(" \t ".to_owned()));
    let exporter = app.start_in_process().await;
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "success");
    assert_eq!(read_token(&token_file), original);
    let app = exporter.stop().await;
    // A restart on the file signs in, and real rotated tokens are saved again.
    app.sim().knobs().set_token_refresh_token(None);
    let exporter = app.spawn_binary().await;
    let m = exporter.wait_for_polls(1.0).await;
    assert_eq!(
        m.polls("servicecosts", "success"),
        Some(1.0),
        "{}",
        exporter.logs()
    );
    assert_ne!(read_token(&token_file).trim(), original.trim());
    assert!(!read_token(&token_file).trim().is_empty());
}

#[tokio::test]
async fn a_refresh_token_that_cannot_be_saved_is_counted_and_logged_with_its_path() {
    let exporter = TestApp::new()
        .customers(2)
        .flag("--poll.interval", "1s")
        .spawn_binary()
        .await;
    let sim = exporter.sim();
    let token_file = exporter.path("refresh_token");
    let m = exporter.wait_for_polls(1.0).await;
    assert_eq!(
        m.get("partnercenter_refresh_token_persist_failures_total", &[]),
        Some(0.0),
        "exported at 0 from the start"
    );
    // The file becomes a directory: no write to that path succeeds, not even root's.
    std::fs::remove_file(&token_file).unwrap();
    std::fs::create_dir(&token_file).unwrap();
    std::fs::write(token_file.join("keep"), "x").unwrap();
    // The next poll has to sign in again, and gets a rotated refresh token.
    sim.expire_access_tokens();
    let m = exporter
        .wait_for_metrics("a persist failure counted", Duration::from_secs(30), |m| {
            m.get("partnercenter_refresh_token_persist_failures_total", &[]) >= Some(1.0)
        })
        .await;
    let logs = exporter.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("cannot save the rotated refresh token"))
        .unwrap_or_else(|| panic!("no error line:\n{logs}"));
    assert!(line.contains("level=error"), "{line}");
    assert!(
        line.contains(&token_file.display().to_string()),
        "the line names the file: {line}"
    );
    for secret in sim.issued_secrets() {
        assert!(!logs.contains(&secret), "a secret was logged:\n{logs}");
        assert!(!m.text.contains(&secret), "a secret is in the metrics");
    }
    // The token in memory keeps the exporter signed in.
    let polls = m.sum_of("partnercenter_polls_total", SERVICECOSTS);
    let m = exporter.wait_for_polls(polls + 1.0).await;
    assert_eq!(m.polls("servicecosts", "failure"), Some(0.0));
}

#[tokio::test]
async fn secret_files_starting_with_a_byte_order_mark_sign_in() {
    let sim = simulator(2).await;
    let creds = sim.credentials();
    let app = TestApp::with_simulator(sim);
    let with_bom = |value: &str| [BOM, value.as_bytes(), b"\r\n"].concat();
    secret_file_bytes(app.dir(), "refresh_token", &with_bom(&creds.refresh_token));
    secret_file_bytes(app.dir(), "client_secret", &with_bom(&creds.client_secret));
    let exporter = app.start_in_process().await;
    let sim = exporter.sim();
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("success", 0));
    let m = exporter.metrics().await;
    assert_eq!(m.sum("partnercenter_auth_failures_total"), 0.0);

    // After a refusal the file is read again: a new token saved with a BOM (as an
    // editor on Windows would) is used by the next poll.
    let token_file = exporter.path("refresh_token");
    let fresh = redeem_refresh_token(sim, read_token(&token_file).trim()).await;
    sim.revoke_refresh_tokens_except_latest();
    sim.expire_access_tokens();
    let (result, _) = exporter.poll().await;
    assert_eq!(result, "failure");
    secret_file_bytes(exporter.dir(), "refresh_token", &with_bom(&fresh));
    let (result, failed) = exporter.poll().await;
    assert_eq!((result.as_str(), failed), ("success", 0));
    exporter.stop().await;
}
