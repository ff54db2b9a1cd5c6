//! Bodies a careless or hostile upstream sends: duplicate details, dates of every
//! form, customer lists with duplicates, broken items, an empty list after a full
//! one, and next links that never end. For each, what /metrics shows and how many
//! requests it cost.

use std::collections::HashSet;

use partnercenter_exporter::poller::PollOutcome;
use partnercenter_exporter::simulator::Simulator;

use crate::helpers::*;

/// The simulator with `customers` customers and an in-process exporter on it, with
/// `extra` flags.
async fn setup(customers: usize, extra: &[&str]) -> (Simulator, InProcess, tempfile::TempDir) {
    let sim = simulator(customers).await;
    let dir = tempfile::tempdir().unwrap();
    let mut flags = sim_flags(&sim, dir.path());
    flags.extend(extra.iter().map(|s| s.to_string()));
    let exporter = in_process(&flags).await;
    (sim, exporter, dir)
}

fn finished(outcome: PollOutcome) -> (String, usize, usize) {
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
    let (sim, exporter, _dir) = setup(6, &[]).await;
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
    let (result, _, failed) = finished(exporter.poller.poll_once().await);
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
    let (sim, exporter, _dir) = setup(4, &[]).await;
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
    let (result, _, failed) = finished(exporter.poller.poll_once().await);
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
