//! The collectors: each on its own schedule, switched on and off, failing apart from
//! each other, showing progress during a long first run, surviving restarts through
//! the cache file; and the usage collector's values.

use std::time::{Duration, Instant};

use serde_json::json;
use testkit::{
    finished, promtool_check_metrics, run_to_exit, simulator, Metrics, TestApp, SERVICECOSTS, USAGE,
};

const FIXTURE: &str = include_str!("../fixtures/usagerecords.json");
/// The two documented records of the fixture.
const LEGACY_ID: &str = "11111111-1843-4d2b-9a1e-0123456789ab";
const PLAN_ID: &str = "11111111-6fb9-4c3a-8b2d-0123456789ab";

fn finished_result(outcome: partnercenter_exporter::collectors::PollOutcome) -> String {
    finished(outcome).0
}

/// The usage series of one customer, as text lines, for before/after comparisons.
fn usage_series(m: &Metrics) -> Vec<String> {
    let mut out: Vec<String> = m
        .samples
        .iter()
        .filter(|(n, _, _)| n.starts_with("partnercenter_usage_"))
        .map(|(n, l, v)| format!("{n}{l:?} {v}"))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn the_documented_usage_records_export_exactly() {
    let sim = simulator(5).await;
    sim.knobs().set_usage_body(Some(FIXTURE.to_owned()));
    let exporter = TestApp::with_simulator(sim).spawn_binary().await;
    let m = exporter.wait_for_runs("usage", 1.0).await;
    let plan = [("customer_id", PLAN_ID)];
    let plan_sek = [("customer_id", PLAN_ID), ("currency", "SEK")];
    assert_eq!(
        m.get("partnercenter_usage_cost_estimate", &plan_sek),
        Some("120.5682999999995904716".parse::<f64>().unwrap()),
        "{}",
        exporter.logs()
    );
    assert_eq!(
        m.get("partnercenter_usage_cost_estimate_usd", &plan),
        Some("12.39999999999999985235".parse::<f64>().unwrap())
    );
    assert_eq!(m.get("partnercenter_usage_budget", &plan_sek), Some(20.0));
    assert_eq!(m.get("partnercenter_usage_azure_plan", &plan), Some(1.0));
    // The legacy record: a locale and no currency; its customer has no service
    // costs here, so the currency is unknown. No budget amount: no budget series.
    let legacy = [("customer_id", LEGACY_ID)];
    assert_eq!(
        m.get(
            "partnercenter_usage_cost_estimate",
            &[("customer_id", LEGACY_ID), ("currency", "unknown")]
        ),
        Some(0.0)
    );
    assert_eq!(m.get("partnercenter_usage_azure_plan", &legacy), Some(0.0));
    assert_eq!(m.matching("partnercenter_usage_budget", &legacy).count(), 0);
    // 2019-08-01T23:00:16.57+00:00
    assert_eq!(
        m.get(
            "partnercenter_usage_last_modified_timestamp_seconds",
            &legacy
        ),
        Some(1_564_700_416.57)
    );
    // Customers without a record have no usage series.
    assert_eq!(m.count("partnercenter_usage_cost_estimate"), 2);
    assert_eq!(m.polls("usage", "success"), Some(1.0));
}

#[tokio::test]
async fn a_legacy_record_takes_the_currency_of_the_customers_service_costs() {
    let exporter = TestApp::new().customers(6).start_in_process().await;
    let sim = exporter.sim();
    let customers = sim.customers();
    let legacy = &customers[1].id;
    let without = &customers[2].id;
    sim.knobs().set_usage_record(
        legacy,
        Some(json!({
            "budget": {"attributes": {"objectType": "SpendingBudget"}},
            "percentUsed": 0, "isUpgraded": false,
            "resourceId": legacy, "id": legacy,
            "resourceName": "LEGACY", "name": "LEGACY",
            "totalCost": 7.5, "currencyLocale": "fr-FR", "usdTotalCost": 0,
            "lastModifiedDate": "2019-08-01T23:00:16.57+00:00",
            "attributes": {"objectType": "CustomerMonthlyUsageRecord"}
        })),
    );
    sim.knobs()
        .set_usage_record(without, Some(serde_json::Value::Null));
    let usage = exporter.usage.clone().expect("usage is on by default");
    assert_eq!(finished_result(usage.poll_once().await), "success");
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "partnercenter_usage_cost_estimate",
            &[("customer_id", legacy), ("currency", "unknown")]
        ),
        Some(7.5),
        "before the service costs are known"
    );
    exporter.poll().await;
    let m = exporter.metrics().await;
    let currency = m
        .matching(
            "partnercenter_service_costs_pretax",
            &[("customer_id", legacy)],
        )
        .next()
        .map(|(_, l, _)| l["currency"].clone())
        .expect("the customer has service costs");
    assert_eq!(
        m.get(
            "partnercenter_usage_cost_estimate",
            &[("customer_id", legacy), ("currency", &currency)]
        ),
        Some(7.5),
        "{}",
        m.text
    );
    assert_eq!(
        m.matching(
            "partnercenter_usage_cost_estimate",
            &[("customer_id", without)]
        )
        .count(),
        0,
        "no record, no usage series"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn one_usage_request_per_run_however_many_customers() {
    let exporter = TestApp::new()
        .customers(300)
        .flag("--poll.rate-limit", "100000")
        .start_in_process()
        .await;
    let sim = exporter.sim();
    let usage = exporter.usage.clone().unwrap();
    for _ in 0..2 {
        assert_eq!(finished_result(usage.poll_once().await), "success");
    }
    assert_eq!(sim.stats().usagerecords, 2);
    let m = exporter.metrics().await;
    assert!(m.count("partnercenter_usage_cost_estimate") > 100);
    assert_eq!(
        m.get("partnercenter_poll_targets_done", USAGE),
        m.get("partnercenter_poll_targets", USAGE)
    );
    exporter.stop().await;
}

#[tokio::test]
async fn usage_pages_are_followed_with_their_headers() {
    let exporter = TestApp::new().customers(40).start_in_process().await;
    let sim = exporter.sim();
    sim.knobs().set_usage_page_size(Some(10));
    let usage = exporter.usage.clone().unwrap();
    assert_eq!(finished_result(usage.poll_once().await), "success");
    let served = sim.usage_records().len();
    let m = exporter.metrics().await;
    assert_eq!(m.count("partnercenter_usage_cost_estimate"), served);
    let pages = served.div_ceil(10) as u64;
    assert_eq!(sim.stats().usagerecords, pages);
    assert_eq!(
        m.get("partnercenter_poll_targets", USAGE),
        Some(pages as f64)
    );
    exporter.stop().await;
}

#[tokio::test]
async fn usage_runs_on_its_own_interval() {
    let exporter = TestApp::new()
        .customers(5)
        .flag("--poll.interval", "1h")
        .flag("--collector.usage.interval", "1s")
        .spawn_binary()
        .await;
    let sim = exporter.sim();
    let m = exporter.wait_for_runs("usage", 3.0).await;
    assert_eq!(
        m.sum_of("partnercenter_polls_total", SERVICECOSTS),
        1.0,
        "service costs run once an hour"
    );
    assert!(sim.stats().usagerecords >= 3);
    assert_eq!(sim.stats().servicecosts, 5);
    assert!(
        exporter.logs().contains("usage every 1s"),
        "{}",
        exporter.logs()
    );
}

#[tokio::test]
async fn a_disabled_usage_collector_sends_nothing_and_exports_nothing() {
    let exporter = TestApp::new()
        .customers(5)
        .arg("--no-collector.usage")
        .spawn_binary()
        .await;
    let m = exporter.wait_for_polls(1.0).await;
    assert!(!m.text.contains("partnercenter_usage_"), "{}", m.text);
    assert_eq!(m.matching("partnercenter_polls_total", USAGE).count(), 0);
    assert_eq!(exporter.sim().stats().usagerecords, 0);
}

#[tokio::test]
async fn collector_switches_are_checked_and_read_from_the_file_too() {
    let app = TestApp::new();
    let file = app.path("config.yml");
    std::fs::write(
        &file,
        "collectors:\n  usage: {enabled: false, interval: 1s}\n",
    )
    .unwrap();
    let exporter = app
        .flag("--config.file", file.display())
        .spawn_binary()
        .await;
    let m = exporter.wait_for_polls(1.0).await;
    assert_eq!(m.matching("partnercenter_polls_total", USAGE).count(), 0);
    // The directory stays: the file is written again below.
    let _app = exporter.stop();

    for (args, needle) in [
        (
            vec!["--collector.usage", "--no-collector.usage"],
            "both given",
        ),
        (
            vec!["--collector.usage.interval", "soon"],
            "--collector.usage.interval",
        ),
        (vec!["--collector.nonsense"], "--collector.nonsense"),
    ] {
        let (code, stderr) = run_to_exit([&["--demo"][..], &args[..]].concat(), &[]);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    std::fs::write(&file, "collectors:\n  usgae: {enabled: false}\n").unwrap();
    let (code, stderr) = run_to_exit(["--demo", "--config.file", file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("collectors.usgae: unknown collector"));
}

#[tokio::test]
async fn a_failing_collector_keeps_its_values_and_leaves_the_others_alone() {
    let exporter = TestApp::new().customers(8).start_in_process().await;
    let sim = exporter.sim();
    let usage = exporter.usage.clone().unwrap();
    assert_eq!(exporter.poll().await.0, "success");
    assert_eq!(finished_result(usage.poll_once().await), "success");
    let before = exporter.metrics().await;
    let usage_before = usage_series(&before);
    assert!(!usage_before.is_empty());

    for status in [403, 500] {
        sim.knobs().set_usage_status(Some(status));
        assert_eq!(
            finished_result(usage.poll_once().await),
            "failure",
            "{status}"
        );
        assert_eq!(exporter.poll().await.0, "success");
        let m = exporter.metrics().await;
        assert_eq!(
            usage_series(&m),
            usage_before,
            "usage keeps its values on {status}"
        );
        assert_eq!(m.cost_series().len(), before.cost_series().len());
        assert_eq!(m.sum("partnercenter_customer_fetch_success"), 8.0);
    }
    let m = exporter.metrics().await;
    assert_eq!(m.polls("usage", "failure"), Some(2.0));
    sim.knobs().set_usage_status(None);

    // And the reverse: service costs fail, usage goes on.
    for c in sim.customers() {
        sim.knobs().set_status(&c.id, Some(503));
    }
    assert_eq!(exporter.poll().await.0, "failure");
    assert_eq!(finished_result(usage.poll_once().await), "success");
    let m = exporter.metrics().await;
    assert_eq!(usage_series(&m), usage_before);
    assert_eq!(m.sum("partnercenter_customer_fetch_success"), 0.0);
    assert_eq!(
        m.cost_series()
            .iter()
            .filter(|s| s.starts_with("partnercenter_service_costs_"))
            .count(),
        before
            .cost_series()
            .iter()
            .filter(|s| s.starts_with("partnercenter_service_costs_"))
            .count(),
        "failed customers keep their last costs"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_slow_first_run_shows_customers_and_progress_within_seconds() {
    let exporter = TestApp::new()
        .customers(200)
        .flag("--poll.rate-limit", "120")
        .spawn_binary()
        .await;
    let started = Instant::now();
    // 200 customers at 2 a second take 100 s; 15 s in, some must be visible.
    let deadline = started + Duration::from_secs(15);
    let mut seen = None;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let m = exporter.metrics().await;
        let with_costs = m
            .matching("partnercenter_service_costs_pretax", &[])
            .map(|(_, l, _)| l["customer_id"].clone())
            .collect::<std::collections::HashSet<_>>()
            .len();
        let targets = m.get("partnercenter_poll_targets", SERVICECOSTS);
        let done = m
            .get("partnercenter_poll_targets_done", SERVICECOSTS)
            .unwrap_or(0.0);
        if with_costs > 0 && targets == Some(200.0) && done > 0.0 && done < 200.0 {
            seen = Some((with_costs, done));
            break;
        }
    }
    let Some((with_costs, done)) = seen else {
        panic!(
            "no customer or no progress within 15 s:\n{}\n{}",
            exporter.metrics().await.text,
            exporter.logs()
        );
    };
    assert!(with_costs < 200, "{with_costs}");
    assert!(done < 200.0);
    let (status, page) = exporter.get("/").await;
    assert_eq!(status, 200);
    assert!(page.contains(" of 200 customers"), "{page}");
    assert!(page.contains("200 monitored"), "{page}");
}

#[tokio::test]
async fn a_restart_serves_both_parts_from_the_cache() {
    let mut exporter = TestApp::new()
        .customers(6)
        .cache_file()
        .spawn_binary()
        .await;
    exporter.wait_for_polls(1.0).await;
    let before = exporter.wait_for_runs("usage", 1.0).await;
    assert_eq!(exporter.terminate(), Some(0));
    assert!(!usage_series(&before).is_empty());
    let app = exporter.stop();

    // Nothing can finish now: every answer takes a minute.
    app.sim().knobs().set_latency(Duration::from_secs(60));
    let exporter = app.spawn_binary().await;
    let m = exporter.metrics().await;
    assert_eq!(usage_series(&m), usage_series(&before));
    assert_eq!(m.cost_series(), before.cost_series());
    assert_eq!(m.sum_of("partnercenter_polls_total", &[]), 0.0);
    assert_eq!(
        m.get("partnercenter_poll_last_success_timestamp_seconds", USAGE),
        before.get("partnercenter_poll_last_success_timestamp_seconds", USAGE),
        "restored from the cache"
    );
}

#[tokio::test]
async fn promtool_accepts_the_exposition_with_every_collector() {
    let exporter = TestApp::demo().spawn_binary().await;
    exporter.wait_for_polls(1.0).await;
    let m = exporter.wait_for_runs("usage", 1.0).await;
    assert!(m.count("partnercenter_usage_cost_estimate") > 0);
    assert!(m.count("partnercenter_usage_budget") > 0);
    let report = promtool_check_metrics(&m.text);
    assert!(report.trim().is_empty(), "promtool has remarks:\n{report}");
    let (_, page) = exporter.get("/").await;
    assert!(page.contains("<td>usage</td>"), "{page}");
    assert!(page.contains("Usage this month"), "{page}");
}
