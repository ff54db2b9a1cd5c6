//! Spend alerts delivered end to end: the real exporter against the simulator, a
//! real Prometheus evaluating the project's own rule files (`prometheus/`, with
//! every `for:` shortened in a copy), a real Alertmanager loaded with
//! `prometheus/alertmanager.example.yml` (its receivers pointed at this test),
//! and a webhook receiver that records what Alertmanager delivers.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use testkit::alertmanager::{amtool, rules_with_for};
use testkit::{simulator, Alertmanager, Prometheus, TestApp, WebhookReceiver};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// What the example configuration's receivers post to; the test replaces it with
/// its own receiver's address.
const EXAMPLE_RECEIVER: &str = "http://alert-receiver.example.com:9095";

/// The rule files a partner loads (prometheus/*.rules.yml).
fn shipped_rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("prometheus"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    files
}

/// The example Alertmanager configuration, its receivers posting to `receiver`
/// and its waits cut to a second; every replaced text must be there, so a change
/// of the example fails here rather than silently testing something else.
fn example_config(receiver: &str) -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join("prometheus/alertmanager.example.yml"))
        .unwrap();
    let mut out = text.clone();
    for (from, to) in [
        (EXAMPLE_RECEIVER, receiver),
        ("group_wait: 30s", "group_wait: 1s"),
        ("group_interval: 5m", "group_interval: 1s"),
    ] {
        assert!(out.contains(from), "the example has no {from:?}");
        out = out.replace(from, to);
    }
    out
}

/// A usage record in the documented Azure-plan shape (docs/partner-center.md §6).
fn usage_record(id: &str, name: &str, total: f64, budget: f64) -> Value {
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    json!({
        "budget": {"amount": budget, "attributes": {"objectType": "SpendingBudget"}},
        "percentUsed": total / budget * 100.0,
        "isUpgraded": true,
        "resourceId": id, "id": id,
        "resourceName": name, "name": name,
        "totalCost": total, "currencyCode": "USD", "currencyLocale": "en-US",
        "usdTotalCost": total,
        "lastModifiedDate": now,
        "attributes": {"objectType": "CustomerMonthlyUsageRecord"}
    })
}

#[tokio::test]
async fn a_customer_over_its_budgets_is_notified_through_alertmanager_and_one_under_is_not() {
    let sim = simulator(4).await;
    let customers = sim.customers();
    let with_costs: Vec<_> = customers
        .iter()
        .filter(|c| c.costs != partnercenter_simulator::SimCosts::NoData)
        .collect();
    assert!(with_costs.len() >= 2, "{customers:?}");
    let (over, under) = (with_costs[0].id.clone(), with_costs[1].id.clone());
    let (over_name, under_name) = ("Over Budget Traders", "Within Budget Works");
    // Partner Center's usage budget: 150.25 of 100 USD used, and 5 of 100 (under
    // it, and not trending over it on any day of a month: 5 × 31 / 3 < 100).
    sim.knobs()
        .set_usage_record(&over, Some(usage_record(&over, over_name, 150.25, 100.0)));
    sim.knobs()
        .set_usage_record(&under, Some(usage_record(&under, under_name, 5.0, 100.0)));
    for c in customers.iter().filter(|c| c.id != over && c.id != under) {
        sim.knobs().set_usage_record(&c.id, Some(Value::Null));
    }
    // The partner's own budgets (config file): one unit of its currency for `over`, far above
    // any spend for `under`.
    let app = TestApp::with_simulator(sim);
    let config = app.path("config.yml");
    std::fs::write(
        &config,
        format!(
            "customers:\n  - id: {over}\n    name: {over_name}\n    budget: 1\n  - id: {under}\n    name: {under_name}\n    budget: 1000000000\n"
        ),
    )
    .unwrap();
    let exporter = app
        .flag("--config.file", config.display())
        .spawn_binary()
        .await;
    let m = exporter.wait_for_runs("usage", 1.0).await;
    let m = if m.polls("servicecosts", "success").is_some() {
        m
    } else {
        exporter.wait_for_runs("servicecosts", 1.0).await
    };
    let spent: Vec<(String, f64)> = m
        .matching(
            "partnercenter_service_costs_after_tax",
            &[("customer_id", &over)],
        )
        .map(|(_, l, v)| (l["currency"].clone(), *v))
        .collect();
    let currency = spent[0].0.clone();
    assert!(spent.iter().all(|(c, _)| *c == currency), "{spent:?}");
    let spent: f64 = spent.iter().map(|(_, v)| v).sum();
    assert!(spent > 1.0, "{spent}");

    let receiver = WebhookReceiver::start().await;
    let alertmanager = Alertmanager::start(&example_config(&receiver.url)).await;
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_with_for(&shipped_rule_files(), rules_dir.path(), "0s");
    let prometheus = Prometheus::start_with(
        &format!(
            "  - job_name: partnercenter-exporter\n    static_configs:\n      - targets: ['{}']\n",
            exporter.addr
        ),
        &rules,
        Some(&alertmanager.addr),
    )
    .await;
    prometheus
        .wait_for("count(partnercenter_usage_cost_estimate)", "2")
        .await;

    // Partner Center's usage budget, critical: on the critical receiver.
    let usage = receiver
        .wait_for(
            "for PartnerCenterUsageOverBudget",
            Duration::from_secs(90),
            |n| n.alert("PartnerCenterUsageOverBudget").is_some(),
        )
        .await;
    assert_eq!(usage.body["status"], "firing", "{:#}", usage.body);
    assert_eq!(usage.path, "/critical", "routed by severity");
    assert_eq!(usage.body["groupLabels"]["customer_id"], over.as_str());
    let alert = &usage.alert("PartnerCenterUsageOverBudget").unwrap();
    assert_eq!(alert["labels"]["customer_id"], over.as_str());
    assert_eq!(alert["labels"]["customer_name"], over_name);
    assert_eq!(alert["labels"]["currency"], "USD");
    assert_eq!(alert["labels"]["severity"], "critical");
    let description = alert["annotations"]["description"].as_str().unwrap();
    for needle in [over_name, over.as_str(), "150.25 USD", "100.00 USD"] {
        assert!(
            description.contains(needle),
            "{needle:?} not in {description:?}"
        );
    }
    assert!(alert["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains(over_name));
    assert!(alert["annotations"]["runbook_url"]
        .as_str()
        .unwrap()
        .ends_with("README.md#partnercenterusageoverbudget"));

    // The partner's own budget for service costs (config file), critical too.
    let budget = receiver
        .wait_for(
            "for PartnerCenterCustomerOverBudget",
            Duration::from_secs(60),
            |n| n.alert("PartnerCenterCustomerOverBudget").is_some(),
        )
        .await;
    assert_eq!(budget.path, "/critical");
    let alert = &budget.alert("PartnerCenterCustomerOverBudget").unwrap();
    assert_eq!(alert["labels"]["customer_id"], over.as_str());
    assert_eq!(alert["labels"]["customer_name"], over_name);
    let description = alert["annotations"]["description"].as_str().unwrap();
    let amount = format!("{spent:.2} {currency}");
    assert!(
        description.contains(&amount),
        "{amount:?} not in {description:?}"
    );

    // The customer under both budgets: Prometheus evaluated its ratio and holds
    // no alert for it, and after several more group intervals no notification
    // names it.
    let ratio = prometheus
        .query(&format!(
            "partnercenter:usage_budget_use:ratio{{customer_id=\"{under}\"}}"
        ))
        .await;
    assert_eq!(ratio.len(), 1, "{ratio:?}");
    assert_eq!(ratio[0]["value"][1], "0.05");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let firing = prometheus
        .query(&format!("ALERTS{{customer_id=\"{under}\"}}"))
        .await;
    assert!(firing.is_empty(), "{firing:?}");
    let received = receiver.received();
    let named: Vec<_> = received
        .iter()
        .flat_map(|n| n.alerts())
        .filter(|a| a["labels"]["customer_id"] == under.as_str())
        .collect();
    assert!(named.is_empty(), "{named:#?}");
    assert!(alertmanager
        .alerts()
        .await
        .iter()
        .all(|a| a["labels"]["customer_id"] != under.as_str()));
}

#[test]
fn the_example_alertmanager_configuration_routes_by_severity() {
    let file = Path::new(ROOT).join("prometheus/alertmanager.example.yml");
    let file = file.to_str().unwrap();
    let (ok, out, err) = amtool(&["check-config", file]);
    assert!(ok, "{out}{err}");
    for (labels, receiver) in [
        (
            vec![
                "alertname=PartnerCenterUsageOverBudget",
                "severity=critical",
            ],
            "partnercenter-critical",
        ),
        (
            vec![
                "alertname=PartnerCenterUsageEstimateStale",
                "severity=warning",
            ],
            "partnercenter-warning",
        ),
        (
            vec!["alertname=PartnerCenterExporterDown", "severity=critical"],
            "partnercenter-critical",
        ),
        (
            vec![
                "alertname=PartnerCenterCollectorFailing",
                "severity=warning",
            ],
            "partnercenter-warning",
        ),
    ] {
        let mut args = vec!["config", "routes", "test", "--config.file", file];
        args.extend(labels.iter().copied());
        let (ok, out, err) = amtool(&args);
        assert!(ok, "{out}{err}");
        assert_eq!(out.trim(), receiver, "{labels:?}");
    }
}
