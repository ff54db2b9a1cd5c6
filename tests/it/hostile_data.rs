//! Bodies a careless or hostile upstream sends: duplicate details, dates of every
//! form, customer lists with duplicates, broken items, an empty list after a full
//! one, and next links that never end. For each, what /metrics shows and how many
//! requests it cost.

use std::collections::HashSet;

use partnercenter_exporter::collectors::PollOutcome;
use partnercenter_exporter::simulator::{SimCustomer, Simulator};
use testkit::{field, simulator, Metrics, TestApp, SERVICECOSTS};

use crate::helpers::{cached_customers, DOCUMENTED_ID};

fn finished_counts(outcome: PollOutcome) -> (String, usize, usize) {
    match outcome {
        PollOutcome::Finished {
            result,
            customers,
            failed,
        } => (result.as_str().to_owned(), customers, failed),
        PollOutcome::AlreadyRunning => panic!("poll did not run"),
    }
}

/// No two samples of the exposition share a name and label set: Prometheus would
/// keep one of them and drop the other.
fn assert_unique_series(text: &str) {
    let mut seen = HashSet::new();
    let mut samples = 0;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, _) = line.rsplit_once(' ').expect("sample line");
        // One key per series however its labels are ordered.
        let one = Metrics::parse(line);
        let (name, labels, _) = &one.samples[0];
        assert!(
            seen.insert(format!("{name}{labels:?}")),
            "two samples of {series}:\n{text}"
        );
        samples += 1;
    }
    assert!(samples > 0, "no samples in\n{text}");
}

/// A service-costs body with these details: (invoice type, currency, pretax, tax,
/// billing start, billing end).
fn costs_body(details: &[(&str, &str, f64, f64, &str, &str)]) -> String {
    let details: Vec<serde_json::Value> = details
        .iter()
        .map(|(invoice_type, currency, pretax, tax, start, end)| {
            serde_json::json!({
                "invoiceType": invoice_type,
                "summary": {
                    "billingStartDate": start,
                    "billingEndDate": end,
                    "pretaxTotal": pretax,
                    "tax": tax,
                    "afterTaxTotal": pretax + tax,
                    "currencyCode": currency,
                    "currencySymbol": "$",
                }
            })
        })
        .collect();
    serde_json::json!({
        "details": details,
        "attributes": {"objectType": "ServiceCostsSummary"},
    })
    .to_string()
}

#[tokio::test]
async fn duplicate_details_and_currencies_give_one_sample_per_series() {
    let exporter = TestApp::new().customers(6).start_in_process().await;
    let sim = exporter.sim();
    let victim = sim.customers()[2].id.clone();
    sim.knobs().set_service_costs_body(
        &victim,
        Some(&costs_body(&[
            (
                "Recurring",
                "USD",
                10.25,
                1.0,
                "2026-03-01T00:00:00Z",
                "2026-03-31T00:00:00Z",
            ),
            (
                "Recurring",
                "USD",
                5.5,
                0.5,
                "2026-02-15T00:00:00Z",
                "2026-03-15T00:00:00Z",
            ),
            (
                "Recurring",
                "EUR",
                7.0,
                0.7,
                "2026-01-01T00:00:00Z",
                "2026-04-30T00:00:00Z",
            ),
            (
                "OneTime",
                "USD",
                2.0,
                0.0,
                "2026-03-01T00:00:00Z",
                "2026-03-31T00:00:00Z",
            ),
        ])),
    );
    let (result, _, failed) = finished_counts(exporter.poller.poll_once().await);
    assert_eq!((result.as_str(), failed), ("success", 0));
    let m = exporter.metrics().await;
    assert_unique_series(&m.text);

    let money = |name: &str, invoice_type: &str, currency: &str| {
        m.get(
            name,
            &[
                ("customer_id", &victim),
                ("invoice_type", invoice_type),
                ("currency", currency),
            ],
        )
    };
    assert_eq!(
        money("partnercenter_service_costs_pretax", "Recurring", "USD"),
        Some(10.25 + 5.5)
    );
    assert_eq!(
        money("partnercenter_service_costs_tax", "Recurring", "USD"),
        Some(1.0 + 0.5)
    );
    assert_eq!(
        money("partnercenter_service_costs_after_tax", "Recurring", "USD"),
        Some((10.25 + 1.0) + (5.5 + 0.5))
    );
    assert_eq!(
        money("partnercenter_service_costs_after_tax", "Recurring", "EUR"),
        Some(7.0 + 0.7)
    );
    assert_eq!(
        m.matching(
            "partnercenter_service_costs_after_tax",
            &[("customer_id", &victim)]
        )
        .count(),
        3
    );
    // The period gauges have no currency: the earliest start and latest end of all.
    let period = |name: &str, invoice_type: &str| {
        m.get(
            name,
            &[("customer_id", &victim), ("invoice_type", invoice_type)],
        )
    };
    assert_eq!(
        period(
            "partnercenter_service_costs_billing_period_start_timestamp_seconds",
            "Recurring"
        ),
        Some(1_767_225_600.0) // 2026-01-01
    );
    assert_eq!(
        period(
            "partnercenter_service_costs_billing_period_end_timestamp_seconds",
            "Recurring"
        ),
        Some(1_777_507_200.0) // 2026-04-30
    );
    assert_eq!(
        period(
            "partnercenter_service_costs_billing_period_start_timestamp_seconds",
            "OneTime"
        ),
        Some(1_772_323_200.0) // 2026-03-01
    );
    exporter.stop().await;
}

#[tokio::test]
async fn dates_with_offsets_before_1970_or_none_are_read() {
    let exporter = TestApp::new().customers(4).start_in_process().await;
    let sim = exporter.sim();
    let victim = sim.customers()[1].id.clone();
    sim.knobs().set_service_costs_body(
        &victim,
        Some(&costs_body(&[
            // .NET's "none" for the start; an end with an offset.
            (
                "Recurring",
                "USD",
                3.0,
                0.0,
                "0001-01-01T00:00:00",
                "2019-10-01T02:00:00+02:00",
            ),
            // Before 1970, with 7 fractional digits.
            (
                "OneTime",
                "USD",
                1.0,
                0.0,
                "1969-12-31T23:59:58.5000000Z",
                "2019-04-30T23:59:59.9999999-08:00",
            ),
        ])),
    );
    let (result, _, failed) = finished_counts(exporter.poller.poll_once().await);
    assert_eq!((result.as_str(), failed), ("success", 0));
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "partnercenter_customer_fetch_success",
            &[("customer_id", &victim)]
        ),
        Some(1.0)
    );
    let period = |name: &str, invoice_type: &str| {
        m.get(
            &format!("partnercenter_service_costs_billing_period_{name}_timestamp_seconds"),
            &[("customer_id", &victim), ("invoice_type", invoice_type)],
        )
    };
    assert_eq!(period("start", "Recurring"), None, "no series for none");
    assert_eq!(period("end", "Recurring"), Some(1_569_888_000.0));
    assert_eq!(period("start", "OneTime"), Some(-1.5));
    let end = period("end", "OneTime").unwrap();
    assert!(
        (end - (1_556_668_800.0 + 8.0 * 3600.0)).abs() < 1e-3,
        "{end}"
    );
    assert_eq!(
        m.get(
            "partnercenter_service_costs_pretax",
            &[("customer_id", &victim), ("invoice_type", "Recurring")]
        ),
        Some(3.0)
    );
    exporter.stop().await;
}

/// Runs the binary once on a fresh cache file, then applies `fault` and runs it
/// again on that cache until its first poll has finished. Returns the setup (with
/// the simulator), the metrics of both runs, and the second run's logs.
async fn restart_into_fault(
    customers: usize,
    fault: impl FnOnce(&Simulator),
) -> (TestApp, Metrics, Metrics, String) {
    let sim = simulator(customers).await;
    sim.knobs().set_page_size_cap(5);
    let mut exporter = TestApp::with_simulator(sim)
        .cache_file()
        .spawn_binary()
        .await;
    let before = exporter.wait_for_polls(1.0).await;
    assert_eq!(exporter.terminate(), Some(0));
    let app = exporter.stop();
    fault(app.sim());
    let mut exporter = app.spawn_binary().await;
    let after = exporter.wait_for_polls(1.0).await;
    assert_eq!(exporter.terminate(), Some(0));
    let logs = exporter.logs();
    (exporter.stop(), before, after, logs)
}

/// The second run's poll failed and served the first run's data, every customer
/// marked failed.
fn assert_failed_and_kept(before: &Metrics, after: &Metrics, customers: usize, logs: &str) {
    assert_eq!(after.polls("servicecosts", "failure"), Some(1.0), "{logs}");
    assert_eq!(after.count("partnercenter_customer_info"), customers);
    assert_eq!(after.sum("partnercenter_customer_fetch_success"), 0.0);
    let money = |m: &Metrics| -> Vec<String> {
        m.cost_series()
            .into_iter()
            .filter(|s| !s.starts_with("partnercenter_customer_last_success"))
            .collect()
    };
    assert!(!money(before).is_empty());
    assert_eq!(money(after), money(before), "the last good data is kept");
    assert_eq!(
        after.get(
            "partnercenter_poll_last_success_timestamp_seconds",
            SERVICECOSTS
        ),
        before.get(
            "partnercenter_poll_last_success_timestamp_seconds",
            SERVICECOSTS
        ),
        "the staleness alert sees the age of the data"
    );
}

#[tokio::test]
async fn discovery_counts_each_customer_once_in_lower_case_and_skips_broken_items() {
    let sim = simulator(12).await;
    sim.knobs().set_page_size_cap(5); // three pages
    let customers = sim.customers();
    // One customer listed with its id in upper case.
    let shouting = customers[3].clone();
    sim.add_customer(SimCustomer {
        id: shouting.id.to_ascii_uppercase(),
        ..shouting.clone()
    });
    // A failing customer listed again on every page, and junk on every page.
    let victim = customers[1].clone();
    sim.knobs().set_status(&victim.id, Some(403));
    sim.knobs().set_extra_customer_items(vec![
        serde_json::json!({"id": victim.id.to_ascii_uppercase(), "companyProfile": {"companyName": "Impostor"}}),
        serde_json::json!({"id": "AE1D5B32-f9ff-4252-B2BF-40e21937a51a"}),
        serde_json::json!({"companyProfile": {"companyName": "No id"}}),
        serde_json::json!({"id": null}),
        serde_json::json!({"id": 42}),
        serde_json::json!({"id": "contoso.onmicrosoft.com"}),
    ]);
    let exporter = TestApp::with_simulator(sim).spawn_binary().await;
    let m = exporter.wait_for_polls(1.0).await;
    let logs = exporter.logs();

    assert_eq!(
        m.polls("servicecosts", "partial"),
        Some(1.0),
        "the junk did not fail discovery: {logs}"
    );
    let stats = exporter.sim().stats();
    assert_eq!(stats.customers, 3);
    assert_eq!(stats.servicecosts, 12, "each customer fetched once");
    let logged: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("customers failed"))
        .collect();
    assert_eq!(logged.len(), 1, "{logs}");
    assert!(logged[0].contains("1 of 12 customers failed"), "{logs}");

    assert_unique_series(&m.text);
    let ids: Vec<&String> = m
        .matching("partnercenter_customer_info", &[])
        .map(|s| &s.1["customer_id"])
        .collect();
    assert_eq!(ids.len(), 12);
    assert!(
        ids.iter().all(|id| id
            .chars()
            .all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_lowercase())),
        "{ids:?}"
    );
    for id in [DOCUMENTED_ID, shouting.id.as_str()] {
        assert_eq!(
            m.get(
                "partnercenter_customer_fetch_success",
                &[("customer_id", id)]
            ),
            Some(1.0),
            "{id}"
        );
    }
    assert_eq!(
        m.get(
            "partnercenter_service_costs_after_tax",
            &[("customer_id", DOCUMENTED_ID), ("invoice_type", "OneTime")]
        ),
        Some(2.2),
        "the documented customer keeps its series exactly"
    );
    // The first listing of a customer is the one kept.
    assert_eq!(
        m.get(
            "partnercenter_customer_info",
            &[("customer_id", &victim.id), ("customer_name", &victim.name)]
        ),
        Some(1.0)
    );
    assert_eq!(
        m.get(
            "partnercenter_customer_fetch_success",
            &[("customer_id", &victim.id)]
        ),
        Some(0.0)
    );

    // One warning for the poll, not one per item.
    let skipped: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("customer list items skipped"))
        .collect();
    assert_eq!(skipped.len(), 1, "{logs}");
    assert_eq!(field(skipped[0], "without_id").as_deref(), Some("9"));
    assert_eq!(field(skipped[0], "not_guid").as_deref(), Some("3"));
    assert_eq!(
        field(skipped[0], "example").as_deref(),
        Some("contoso.onmicrosoft.com")
    );
}

#[tokio::test]
async fn an_empty_customer_list_after_a_full_one_is_a_failed_discovery() {
    let exporter = TestApp::new()
        .customers(5)
        .cache_file()
        .start_in_process()
        .await;
    let sim = exporter.sim();
    let cache = exporter.cache_path();
    assert_eq!(
        finished_counts(exporter.poller.poll_once().await),
        ("success".to_owned(), 5, 0)
    );
    let before = exporter.metrics().await;
    for c in sim.customers() {
        assert!(sim.remove_customer(&c.id));
    }
    let servicecosts = sim.stats().servicecosts;
    assert_eq!(
        finished_counts(exporter.poller.poll_once().await),
        ("failure".to_owned(), 5, 5)
    );
    assert_eq!(sim.stats().servicecosts, servicecosts);
    let after = exporter.metrics().await;
    assert_failed_and_kept(&before, &after, 5, "");
    assert_eq!(after.polls("servicecosts", "success"), Some(1.0));
    // The cache still holds every customer.
    assert_eq!(cached_customers(&cache).unwrap(), Some(5));
    exporter.stop().await;
}

#[tokio::test]
async fn an_empty_customer_list_with_nothing_known_is_a_success() {
    let exporter = TestApp::new().customers(0).start_in_process().await;
    let sim = exporter.sim();
    assert_eq!(
        finished_counts(exporter.poller.poll_once().await),
        ("success".to_owned(), 0, 0)
    );
    assert_eq!(sim.stats().customers, 1);
    let m = exporter.metrics().await;
    assert_eq!(m.count("partnercenter_customer_info"), 0);
    assert!(
        m.get(
            "partnercenter_poll_last_success_timestamp_seconds",
            SERVICECOSTS
        )
        .unwrap()
            > 1e9
    );
    exporter.stop().await;
}

#[tokio::test]
async fn an_empty_customer_list_after_a_restart_logs_one_line() {
    let (_app, before, after, logs) = restart_into_fault(7, |sim| {
        for c in sim.customers() {
            sim.remove_customer(&c.id);
        }
    })
    .await;
    assert_failed_and_kept(&before, &after, 7, &logs);
    assert_eq!(after.polls("servicecosts", "success"), Some(0.0));
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("listed no customers"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert_eq!(field(lines[0], "known").as_deref(), Some("7"));
}

#[tokio::test]
async fn a_customer_list_that_loops_fails_discovery_at_once() {
    let exporter = TestApp::new().customers(12).start_in_process().await;
    let sim = exporter.sim();
    sim.knobs().set_page_size_cap(5);
    assert_eq!(
        finished_counts(exporter.poller.poll_once().await),
        ("success".to_owned(), 12, 0)
    );
    let before = exporter.metrics().await;
    let stats = sim.stats();
    assert_eq!(stats.customers, 3);
    sim.knobs().set_looping_customer_pages(true);
    assert_eq!(
        finished_counts(exporter.poller.poll_once().await),
        ("failure".to_owned(), 12, 12)
    );
    let requests = sim.stats().customers - stats.customers;
    assert!(
        (2..=3).contains(&requests),
        "{requests} customers requests for a list that never ends"
    );
    assert_eq!(sim.stats().servicecosts, stats.servicecosts);
    let after = exporter.metrics().await;
    assert_failed_and_kept(&before, &after, 12, "");
    // Once the list ends again, so does the failure.
    sim.knobs().set_looping_customer_pages(false);
    assert_eq!(
        finished_counts(exporter.poller.poll_once().await),
        ("success".to_owned(), 12, 0)
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_customer_list_that_loops_logs_one_paging_line() {
    let (app, before, after, logs) =
        restart_into_fault(12, |sim| sim.knobs().set_looping_customer_pages(true)).await;
    let sim = app.sim();
    assert_failed_and_kept(&before, &after, 12, &logs);
    assert_eq!(after.polls("servicecosts", "success"), Some(0.0));
    // Three pages for the first run, at most three for the second.
    assert!(sim.stats().customers <= 3 + 3, "{:?}", sim.stats());
    let lines: Vec<&str> = logs.lines().filter(|l| l.contains("kind=paging")).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(lines[0].contains("customer discovery failed"), "{logs}");
    assert!(lines[0].contains("loops"), "{logs}");
}
