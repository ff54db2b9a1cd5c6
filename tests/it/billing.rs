//! The partner-level `invoices` collector and the opt-in `lineitems` collector:
//! the documented values exactly, paging, the history window, the cardinality cap,
//! failures that stay inside their collector, and label escaping.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use testkit::{finished, promtool_check_metrics, simulator, Metrics, TestApp};

use crate::helpers::DOCUMENTED_ID;

const DAY: f64 = 86_400.0;

fn result(outcome: partnercenter_exporter::collectors::PollOutcome) -> String {
    finished(outcome).0
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The invoice ids on `/metrics`.
fn invoice_ids(m: &Metrics) -> BTreeSet<String> {
    m.matching("partnercenter_invoice_total_charges", &[])
        .map(|(_, l, _)| l["invoice_id"].clone())
        .collect()
}

#[tokio::test]
async fn the_documented_invoices_and_balances_export_exactly() {
    let app = TestApp::new()
        .flag("--collector.invoices.history", "20000d")
        .start_in_process()
        .await;
    assert_eq!(
        result(app.collector("invoices").poll_once().await),
        "success"
    );
    let m = app.metrics().await;
    let charges = |id: &str, invoice_type: &str, document_type: &str, currency: &str| {
        m.get(
            "partnercenter_invoice_total_charges",
            &[
                ("invoice_id", id),
                ("invoice_type", invoice_type),
                ("document_type", document_type),
                ("currency", currency),
            ],
        )
    };
    assert_eq!(
        charges("D02005YFHI", "Recurring", "invoice", "GBP"),
        Some(24606.35)
    );
    assert_eq!(
        charges("G000024130", "OneTime", "void_note", "CHF"),
        Some(586366.0)
    );
    assert_eq!(
        charges("G000024131", "OneTime", "adjustment_note", "CHF"),
        Some(107661.12)
    );
    let paid = |id: &str, currency: &str| {
        m.get(
            "partnercenter_invoice_paid_amount",
            &[("invoice_id", id), ("currency", currency)],
        )
    };
    assert_eq!(paid("D02005YFHI", "GBP"), Some(1000.0));
    assert_eq!(paid("G000024131", "CHF"), Some(0.0));
    let date = |id: &str| {
        m.get(
            "partnercenter_invoice_date_timestamp_seconds",
            &[("invoice_id", id)],
        )
    };
    assert_eq!(date("D02005YFHI"), Some(1_484_956_800.0));
    assert!((date("G000024131").unwrap() - 1_518_115_477.538_145_6).abs() < 1e-3);

    let by_currency = |name: &str, currency: &str| m.get(name, &[("currency", currency)]);
    assert_eq!(
        by_currency("partnercenter_invoices_balance", "USD"),
        Some(751094.39)
    );
    assert_eq!(
        by_currency("partnercenter_invoices_balance", "GBP"),
        Some(23606.35)
    );
    assert_eq!(
        by_currency("partnercenter_invoices_balance", "CHF"),
        Some(694027.12)
    );
    assert_eq!(
        by_currency("partnercenter_invoices_last_payment_amount", "USD"),
        Some(1000.0)
    );
    assert_eq!(
        by_currency(
            "partnercenter_invoices_last_payment_timestamp_seconds",
            "USD"
        ),
        Some(1_483_272_000.0)
    );
    // "2018-03-16T00:00:00", without an offset: UTC.
    assert_eq!(
        by_currency(
            "partnercenter_invoices_latest_invoice_timestamp_seconds",
            "USD"
        ),
        Some(1_521_158_400.0)
    );
    assert_eq!(
        by_currency(
            "partnercenter_invoices_last_payment_timestamp_seconds",
            "CHF"
        ),
        None,
        "0001-01-01 is no payment: no series"
    );
    assert_eq!(
        m.count("partnercenter_invoices_last_payment_timestamp_seconds"),
        2
    );

    // Every page is read: all documents, on pages of the simulator's 5.
    let documents = app.sim().invoices();
    let listed = documents.iter().filter(|d| d.amends.is_none()).count();
    assert_eq!(invoice_ids(&m).len(), documents.len());
    assert_eq!(app.sim().stats().invoices as usize, listed.div_ceil(5));
    assert_eq!(app.sim().stats().invoicesummaries, 1);
    assert_eq!(
        m.get(
            "partnercenter_poll_targets_done",
            &[("collector", "invoices")]
        ),
        Some((listed.div_ceil(5) + 1) as f64)
    );
    assert_eq!(promtool_check_metrics(&m.text), "");
}

#[tokio::test]
async fn the_history_window_drops_old_documents() {
    for (flag, days) in [(Some("60d"), 60.0), (None, 400.0)] {
        let mut app = TestApp::new();
        if let Some(history) = flag {
            app = app.flag("--collector.invoices.history", history);
        }
        let app = app.start_in_process().await;
        assert_eq!(
            result(app.collector("invoices").poll_once().await),
            "success"
        );
        let got = invoice_ids(&app.metrics().await);
        let documents = app.sim().invoices();
        let cutoff = now() - days * DAY;
        let want: BTreeSet<String> = documents
            .iter()
            .filter(|d| d.date >= cutoff)
            .map(|d| d.id.clone())
            .collect();
        // A document within a minute of the boundary may fall on either side.
        let near = |id: &String| {
            documents
                .iter()
                .any(|d| &d.id == id && (d.date - cutoff).abs() < 60.0)
        };
        let differ: Vec<&String> = want
            .symmetric_difference(&got)
            .filter(|id| !near(id))
            .collect();
        assert!(differ.is_empty(), "{days} days: {differ:?}");
        assert!(!got.contains("D02005YFHI"), "{days} days");
        assert!(
            !got.is_empty() && got.len() < documents.len(),
            "{days} days: {}",
            got.len()
        );
    }
}

#[tokio::test]
async fn a_403_fails_invoices_alone_with_one_line_per_run_naming_the_role() {
    let sim = simulator(4).await;
    sim.knobs().set_invoices_status(Some(403));
    let app = TestApp::with_simulator(sim)
        .flag("--collector.invoices.interval", "1s")
        .spawn_binary()
        .await;
    app.wait_for_metrics(
        "2 failed invoices runs",
        Duration::from_secs(60),
        |m: &Metrics| m.polls("invoices", "failure").unwrap_or(0.0) >= 2.0,
    )
    .await;
    app.wait_for_runs("servicecosts", 1.0).await;
    let m = app.wait_for_runs("usage", 1.0).await;
    assert_eq!(m.polls("invoices", "success"), Some(0.0));
    assert_eq!(m.polls("servicecosts", "success"), Some(1.0));
    assert_eq!(m.polls("usage", "success"), Some(1.0));
    assert!(!m.cost_series().is_empty());
    assert!(m.count("partnercenter_usage_cost_estimate") > 0);
    assert_eq!(m.count("partnercenter_invoices_balance"), 0);
    let failures = m.polls("invoices", "failure").unwrap() as usize;
    let lines =
        app.count_log_lines(|l| l.contains("collector=invoices") && l.contains("billing role"));
    assert!(
        lines == failures || lines == failures + 1,
        "{lines} lines for {failures} failed runs:\n{}",
        app.logs()
    );
}

#[tokio::test]
async fn a_failed_invoices_run_keeps_the_last_good_values() {
    let app = TestApp::new().start_in_process().await;
    let invoices = app.collector("invoices");
    assert_eq!(result(invoices.poll_once().await), "success");
    let before = app.metrics().await;
    for status in [403, 500] {
        app.sim().knobs().set_invoices_status(Some(status));
        assert_eq!(result(invoices.poll_once().await), "failure", "{status}");
        let m = app.metrics().await;
        assert_eq!(invoice_ids(&m), invoice_ids(&before));
        assert_eq!(
            m.get("partnercenter_invoices_balance", &[("currency", "USD")]),
            Some(751094.39)
        );
    }
}

#[tokio::test]
async fn invoice_next_links_that_loop_or_leave_the_host_fail_the_run_not_hang() {
    let app = TestApp::new().start_in_process().await;
    let invoices = app.collector("invoices");
    let stranger = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    stranger.set_nonblocking(true).unwrap();
    let foreign = format!(
        "http://{}/v1/invoices?size=5&offset=5",
        stranger.local_addr().unwrap()
    );
    for uri in ["/invoices?size=5&offset=0", foreign.as_str()] {
        let before = app.sim().stats().invoices;
        app.sim().knobs().set_invoices_next_uri(Some(uri));
        assert_eq!(result(invoices.poll_once().await), "failure", "{uri}");
        let pages = app.sim().stats().invoices - before;
        assert!(pages <= 2, "{uri}: {pages} pages read");
    }
    assert!(
        stranger.accept().is_err(),
        "no request went to the other host"
    );
    let m = app.metrics().await;
    assert_eq!(m.polls("invoices", "failure"), Some(2.0));
}

#[tokio::test]
async fn demo_shows_invoices_the_balance_and_subscriptions() {
    let app = TestApp::demo().spawn_binary().await;
    let m = app.wait_for_runs("invoices", 1.0).await;
    assert!(m.count("partnercenter_invoice_total_charges") > 10);
    assert_eq!(m.count("partnercenter_invoices_balance"), 3);
    let (status, page) = app.get("/").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<h2>Billing</h2>") && page.contains("751094.39"),
        "{page}"
    );
    let m = app.wait_for_runs("lineitems", 1.0).await;
    assert!(m.count("partnercenter_subscription_info") > 0);
}

/// The documented customer's subscription.
const DOCUMENTED_SUBSCRIPTION: &str = "71b5bcdd-51c8-4bf2-b704-d3432ee33064";

#[tokio::test]
async fn the_documented_line_items_export_exactly() {
    let app = TestApp::new()
        .customers(6)
        .arg("--collector.lineitems")
        .start_in_process()
        .await;
    assert_eq!(
        result(app.collector("lineitems").poll_once().await),
        "success"
    );
    let m = app.metrics().await;
    let cost = |name: &str, invoice_type: &str| {
        m.get(
            name,
            &[
                ("customer_id", DOCUMENTED_ID),
                ("subscription_id", DOCUMENTED_SUBSCRIPTION),
                ("invoice_type", invoice_type),
                ("currency", "USD"),
            ],
        )
    };
    assert_eq!(
        cost("partnercenter_subscription_costs_after_tax", "Recurring"),
        Some(17.22)
    );
    assert_eq!(
        cost("partnercenter_subscription_costs_pretax", "Recurring"),
        Some(17.22)
    );
    assert_eq!(
        cost("partnercenter_subscription_costs_tax", "Recurring"),
        Some(0.0)
    );
    assert_eq!(
        cost("partnercenter_subscription_costs_after_tax", "OneTime"),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "partnercenter_subscription_info",
            &[
                ("customer_id", DOCUMENTED_ID),
                ("subscription_id", DOCUMENTED_SUBSCRIPTION),
                (
                    "subscription_name",
                    "Project Pro for Office 365 (Government Pricing)"
                ),
                ("offer_id", "11e3c9a9-24a2-4cfd-9f60-a9797d68e296"),
                ("offer_name", "Project for Office 365 (Government Pricing)"),
            ]
        ),
        Some(1.0)
    );
    // One request per customer.
    assert_eq!(app.sim().stats().lineitems, 6);
    assert_eq!(promtool_check_metrics(&m.text), "");
}

#[tokio::test]
async fn the_cap_yields_the_limit_plus_other_and_keeps_the_total() {
    for (max, want) in [(None, 21), (Some("5"), 6)] {
        let mut app = TestApp::new().customers(6).arg("--collector.lineitems");
        if let Some(max) = max {
            app = app.flag("--collector.lineitems.max-subscriptions", max);
        }
        let app = app.start_in_process().await;
        assert_eq!(
            result(app.collector("lineitems").poll_once().await),
            "success"
        );
        let m = app.metrics().await;
        let many = app.sim().many_subscriptions_customer().unwrap();
        let customer = [("customer_id", many.as_str())];
        let subscriptions: BTreeSet<&str> = m
            .matching("partnercenter_subscription_costs_after_tax", &customer)
            .map(|(_, l, _)| l["subscription_id"].as_str())
            .collect();
        assert_eq!(subscriptions.len(), want, "{max:?}");
        assert!(subscriptions.contains("other"));
        assert_eq!(
            m.matching("partnercenter_subscription_info", &customer)
                .count(),
            want - 1
        );
        let costs = app
            .sim()
            .customers()
            .into_iter()
            .find(|c| c.id == many)
            .unwrap()
            .costs;
        let partnercenter_exporter::simulator::SimCosts::Generated(details) = costs else {
            panic!("generated costs")
        };
        let total: f64 = details.iter().map(|d| d.pretax + d.tax).sum();
        let got = m.sum_of("partnercenter_subscription_costs_after_tax", &customer);
        assert!((got - total).abs() < 0.02, "{got} vs {total}");
    }
}

#[tokio::test]
async fn lineitems_is_off_by_default_and_makes_no_request() {
    let app = TestApp::new()
        .flag("--collector.invoices.interval", "1h")
        .spawn_binary()
        .await;
    let m = app.wait_for_runs("usage", 1.0).await;
    app.wait_for_runs("servicecosts", 1.0).await;
    assert_eq!(app.sim().stats().lineitems, 0);
    assert_eq!(m.count("partnercenter_subscription_costs_after_tax"), 0);
    assert_eq!(
        m.polls("lineitems", "success"),
        None,
        "not exported when off"
    );
}

#[tokio::test]
async fn a_failing_lineitems_run_keeps_its_values_and_leaves_the_others_alone() {
    let app = TestApp::new()
        .customers(5)
        .arg("--collector.lineitems")
        .start_in_process()
        .await;
    let lineitems = app.collector("lineitems");
    assert_eq!(result(lineitems.poll_once().await), "success");
    assert_eq!(app.poll().await.0, "success");
    let series = |m: &Metrics| {
        let mut s: Vec<String> = m
            .samples
            .iter()
            .filter(|(n, _, _)| n.starts_with("partnercenter_subscription_"))
            .map(|(n, l, v)| format!("{n}{l:?} {v}"))
            .collect();
        s.sort();
        s
    };
    let before = app.metrics().await;
    assert!(!series(&before).is_empty());
    for status in [403, 500] {
        app.sim().knobs().set_line_items_status(Some(status));
        assert_eq!(result(lineitems.poll_once().await), "failure", "{status}");
        assert_eq!(app.poll().await.0, "success");
        let m = app.metrics().await;
        assert_eq!(series(&m), series(&before), "{status}");
        assert_eq!(m.cost_series().len(), before.cost_series().len());
    }
}

#[tokio::test]
async fn subscription_names_with_quotes_newlines_and_non_ascii_are_escaped() {
    let sim = simulator(3).await;
    let customer = sim.customers()[2].id.clone();
    let body = serde_json::json!({"items": [{
        "subscriptionId": "AAAAAAAA-0000-4000-8000-000000000001",
        "subscriptionFriendlyName": "Team \"Blue\"\nline two \\ back ☃ Ünïcode",
        "offerId": "X", "offerName": "Offer \u{7f}",
        "invoiceType": "Recurring", "currencyCode": "EUR",
        "pretaxTotal": 10.0, "tax": 1.5, "afterTaxTotal": 11.5,
    }]});
    sim.knobs()
        .set_line_items_body(&customer, Some(&body.to_string()));
    let app = TestApp::with_simulator(sim)
        .arg("--collector.lineitems")
        .start_in_process()
        .await;
    assert_eq!(
        result(app.collector("lineitems").poll_once().await),
        "success"
    );
    let m = app.metrics().await;
    assert!(
        m.text
            .contains(r#"subscription_name="Team \"Blue\"\nline two \\ back ☃ Ünïcode""#),
        "{}",
        m.text
    );
    assert_eq!(
        m.get(
            "partnercenter_subscription_costs_after_tax",
            &[
                ("customer_id", customer.as_str()),
                ("subscription_id", "aaaaaaaa-0000-4000-8000-000000000001")
            ]
        ),
        Some(11.5)
    );
    assert_eq!(promtool_check_metrics(&m.text), "");
}
