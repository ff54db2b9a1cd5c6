//! The foundation: sign-in, discovery, service costs, the exposition, endpoints,
//! configuration errors and secrets.

use std::time::Duration;

use partnercenter_exporter::simulator::TokenFault;
use testkit::{
    promtool_check_metrics, run_to_exit, secret_file, simulator, Metrics, TestApp, SERVICECOSTS,
};

use crate::helpers::DOCUMENTED_ID;

#[tokio::test]
async fn documented_body_exports_exactly_the_documented_values() {
    let exporter = TestApp::new().customers(25).spawn_binary().await;
    let m = exporter.wait_for_polls(1.0).await;
    let id = DOCUMENTED_ID;
    let v = |name: &str, invoice: &str| {
        m.get(
            name,
            &[
                ("customer_id", id),
                ("invoice_type", invoice),
                ("currency", "USD"),
            ],
        )
    };
    assert_eq!(
        v("partnercenter_service_costs_pretax", "Recurring"),
        Some(17.22)
    );
    assert_eq!(v("partnercenter_service_costs_tax", "Recurring"), Some(0.0));
    assert_eq!(
        v("partnercenter_service_costs_after_tax", "Recurring"),
        Some(17.22)
    );
    assert_eq!(
        v("partnercenter_service_costs_pretax", "OneTime"),
        Some(2.0)
    );
    assert_eq!(v("partnercenter_service_costs_tax", "OneTime"), Some(0.2));
    assert_eq!(
        v("partnercenter_service_costs_after_tax", "OneTime"),
        Some(2.2)
    );
    // 2019-04-30T23:59:59.9999999Z
    let end = m
        .get(
            "partnercenter_service_costs_billing_period_end_timestamp_seconds",
            &[("customer_id", id), ("invoice_type", "OneTime")],
        )
        .unwrap();
    assert!((end - 1_556_668_799.999_999_9).abs() < 1e-3, "{end}");
    // Exactly two invoice types and one currency for this customer; no root totals.
    assert_eq!(
        m.matching(
            "partnercenter_service_costs_after_tax",
            &[("customer_id", id)]
        )
        .count(),
        2
    );
    assert_eq!(
        m.get(
            "partnercenter_customer_info",
            &[("customer_id", id), ("customer_name", "Fabrikam")]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "partnercenter_customer_fetch_success",
            &[("customer_id", id)]
        ),
        Some(1.0)
    );
    // Every discovered customer is there; the no-data one succeeded with no cost series.
    assert_eq!(m.count("partnercenter_customer_info"), 25);
    assert_eq!(m.sum("partnercenter_customer_fetch_success"), 25.0);
    let with_costs: std::collections::BTreeSet<_> = m
        .matching("partnercenter_service_costs_after_tax", &[])
        .map(|s| s.1["customer_id"].clone())
        .collect();
    assert_eq!(with_costs.len(), 24, "one customer has no data (404)");
    let currencies: std::collections::BTreeSet<_> = m
        .matching("partnercenter_service_costs_after_tax", &[])
        .map(|s| s.1["currency"].clone())
        .collect();
    assert!(currencies.len() >= 2, "{currencies:?}");
    assert_eq!(m.polls("servicecosts", "success"), Some(1.0));
    assert!(
        m.get(
            "partnercenter_poll_last_success_timestamp_seconds",
            SERVICECOSTS
        )
        .unwrap()
            > 1e9
    );
    assert_eq!(
        m.get("partnercenter_poll_in_progress", SERVICECOSTS),
        Some(0.0)
    );
    assert!(
        m.get(
            "partnercenter_api_requests_total",
            &[("endpoint", "servicecosts"), ("code", "200")]
        )
        .unwrap()
            >= 24.0
    );
    assert_eq!(
        m.get(
            "partnercenter_api_requests_total",
            &[("endpoint", "servicecosts"), ("code", "404")]
        ),
        Some(1.0)
    );
    assert!(m.count("process_resident_memory_bytes") == 1);
    let build = m
        .matching("partnercenter_exporter_build_info", &[])
        .next()
        .unwrap();
    assert_eq!(build.1["version"], env!("CARGO_PKG_VERSION"));
    assert!(build.1["rustc_version"].starts_with("1."), "{:?}", build.1);
    assert_eq!(build.2, 1.0);
}

#[tokio::test]
async fn discovery_follows_three_pages_in_both_link_forms() {
    for without_v1 in [false, true] {
        let sim = simulator(25).await;
        sim.knobs().set_page_size_cap(10);
        sim.knobs().set_next_link_without_v1(without_v1);
        let exporter = TestApp::with_simulator(sim).spawn_binary().await;
        let m = exporter.wait_for_polls(1.0).await;
        assert_eq!(
            m.count("partnercenter_customer_info"),
            25,
            "without_v1={without_v1}"
        );
        assert_eq!(
            m.get(
                "partnercenter_api_requests_total",
                &[("endpoint", "customers"), ("code", "200")]
            ),
            Some(3.0)
        );
        assert_eq!(exporter.sim().stats().customers, 3);
    }
}

#[tokio::test]
async fn restart_signs_in_with_the_rotated_refresh_token() {
    let mut app = TestApp::new().customers(5);
    app.prepare().await;
    let token_file = app.path("refresh_token");
    let original = std::fs::read_to_string(&token_file).unwrap();
    let app = {
        let mut exporter = app.spawn_binary().await;
        exporter.wait_for_polls(1.0).await;
        assert_eq!(exporter.terminate(), Some(0));
        exporter.stop()
    };
    let rotated = std::fs::read_to_string(&token_file).unwrap();
    assert_ne!(
        rotated.trim(),
        original.trim(),
        "the rotated token was written back"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Only the newest token is valid now: the old one would be refused.
    app.sim().revoke_refresh_tokens_except_latest();
    let exporter = app.spawn_binary().await;
    let m = exporter.wait_for_polls(1.0).await;
    assert_eq!(
        m.polls("servicecosts", "success"),
        Some(1.0),
        "{}",
        exporter.logs()
    );
    assert_eq!(m.sum("partnercenter_auth_failures_total"), 0.0);
}

#[tokio::test]
async fn v1_and_v2_token_endpoints_and_the_token_exchange() {
    for extra in [
        vec!["--auth.endpoint", "v1"],
        vec!["--auth.endpoint", "v2"],
        vec!["--auth.csp-token-exchange"],
    ] {
        let exporter = TestApp::new().args(extra.clone()).spawn_binary().await;
        let m = exporter.wait_for_polls(1.0).await;
        assert_eq!(
            m.polls("servicecosts", "success"),
            Some(1.0),
            "{extra:?}: {}",
            exporter.logs()
        );
        assert_eq!(
            m.get(
                "partnercenter_api_requests_total",
                &[("endpoint", "token"), ("code", "200")]
            ),
            Some(1.0)
        );
        let exchanged = m.get(
            "partnercenter_api_requests_total",
            &[("endpoint", "generatetoken"), ("code", "200")],
        );
        assert_eq!(
            exchanged.is_some(),
            extra.contains(&"--auth.csp-token-exchange"),
            "{extra:?}"
        );
    }
}

#[tokio::test]
async fn password_grant_works() {
    let sim = simulator(3).await;
    let creds = sim.credentials();
    let app = TestApp::with_simulator(sim);
    let password = secret_file(app.dir(), "password", &creds.password);
    let exporter = app
        .flag("--auth.grant", "password")
        .flag("--auth.username", &creds.username)
        .flag("--auth.password-file", password.display())
        .spawn_binary()
        .await;
    let m = exporter.wait_for_polls(1.0).await;
    assert_eq!(
        m.polls("servicecosts", "success"),
        Some(1.0),
        "{}",
        exporter.logs()
    );
}

#[tokio::test]
async fn client_credentials_warns_and_service_costs_are_refused() {
    let exporter = TestApp::new()
        .flag("--auth.grant", "client-credentials")
        .spawn_binary()
        .await;
    let m = exporter.wait_for_polls(1.0).await;
    let logs = exporter.logs();
    assert!(
        logs.contains("level=warn") && logs.contains("App+User"),
        "{logs}"
    );
    // The customers are listed (app-only may do that) but their costs are refused.
    assert_eq!(m.count("partnercenter_customer_info"), 3);
    assert_eq!(m.sum("partnercenter_customer_fetch_success"), 0.0);
    assert_eq!(m.polls("servicecosts", "failure"), Some(1.0));
    assert_eq!(m.count("partnercenter_service_costs_after_tax"), 0);
}

#[test]
fn bad_configuration_exits_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("c.yml");
    std::fs::write(&yaml, "poll:\n  interval: 1h\n  concurency: 4\n").unwrap();
    let yaml = yaml.display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--demo", "--poll.interval", "often"],
            "--poll.interval",
        ),
        (
            vec!["--demo", "--web.listen-address", "nonsense"],
            "--web.listen-address",
        ),
        (vec!["--auth.client-id", "x"], "--auth.tenant"),
        (vec!["--demo", "--config.file", &yaml], "concurency"),
        (vec!["--demo", "--no-such-flag"], "--no-such-flag"),
        (
            vec!["--demo", "--web.config.file", "/nonexistent/web.yml"],
            "web",
        ),
    ];
    for (args, needle) in cases {
        let (code, stderr) = run_to_exit(&args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // The environment works like the flag.
    let (code, stderr) = run_to_exit(["--demo"], &[("PARTNERCENTER_POLL_INTERVAL", "never")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--poll.interval"), "{stderr}");
}

#[tokio::test]
async fn no_secret_in_logs_metrics_or_landing_page() {
    let sim = simulator(4).await;
    sim.knobs()
        .set_access_token_lifetime(Duration::from_secs(2));
    let exporter = TestApp::with_simulator(sim)
        .flag("--log.level", "trace")
        .flag("--poll.interval", "1s")
        .spawn_binary()
        .await;
    let sim = exporter.sim();
    // The token lives 2 s and is renewed after 1 s: polls every second renew it.
    exporter.wait_for_polls(5.0).await;
    sim.knobs().set_token_fault(TokenFault::InvalidGrant);
    sim.expire_access_tokens();
    exporter.wait_for_polls(6.0).await;
    let (_, landing) = exporter.get("/").await;
    let metrics = exporter.metrics().await.text;
    let logs = exporter.logs();
    assert!(
        sim.stats().token >= 3,
        "token renewals happened: {}",
        sim.stats().token
    );
    assert!(
        logs.contains("level=trace") || logs.contains("level=debug"),
        "trace logging is on"
    );
    let secrets = sim.issued_secrets();
    assert!(secrets.len() >= 6);
    for secret in secrets {
        for (what, text) in [
            ("logs", &logs),
            ("metrics", &metrics),
            ("landing page", &landing),
        ] {
            assert!(!text.contains(&secret), "a secret appears in the {what}");
        }
    }
}

#[tokio::test]
async fn endpoints_answer_as_designed() {
    let exporter = TestApp::new().spawn_binary().await;
    exporter.wait_for_polls(1.0).await;
    assert_eq!(exporter.get("/-/healthy").await.0, 200);
    assert_eq!(exporter.get("/-/ready").await.0, 200);
    assert_eq!(exporter.get("/nope").await.0, 404);
    let (status, landing) = exporter.get("/").await;
    assert_eq!(status, 200);
    assert!(
        landing.contains("Fabrikam") && landing.contains("/metrics"),
        "{landing}"
    );
    let client = reqwest::Client::new();
    let post = client.post(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(post.status().as_u16(), 405);
    let head = client.head(exporter.url("/metrics")).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200);
    // gzip when accepted, and the same series.
    let raw = client
        .get(exporter.url("/metrics"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-encoding"], "gzip");
    let bytes = raw.bytes().await.unwrap();
    let mut text = String::new();
    use std::io::Read;
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .unwrap();
    let plain = exporter.metrics().await;
    let unzipped = Metrics::parse(&text);
    assert_eq!(unzipped.cost_series(), plain.cost_series());
    assert_eq!(
        unzipped
            .matching("partnercenter_polls_total", SERVICECOSTS)
            .count(),
        3
    );
}

#[tokio::test]
async fn sigterm_exits_0() {
    let mut exporter = TestApp::new().spawn_binary().await;
    exporter.wait_for_polls(1.0).await;
    assert_eq!(exporter.terminate(), Some(0), "{}", exporter.logs());
}

#[tokio::test]
async fn demo_mode_serves_synthetic_customers() {
    let exporter = TestApp::demo().spawn_binary().await;
    let m = exporter.wait_for_polls(1.0).await;
    assert!(m.count("partnercenter_customer_info") >= 20);
    assert!(
        m.count("partnercenter_customer_budget") >= 2,
        "demo budgets"
    );
    assert_eq!(
        m.polls("servicecosts", "success"),
        Some(1.0),
        "{}",
        exporter.logs()
    );
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let exporter = TestApp::demo().spawn_binary().await;
    let m = exporter.wait_for_polls(1.0).await;
    let report = promtool_check_metrics(&m.text);
    assert!(report.trim().is_empty(), "promtool has remarks:\n{report}");
}
