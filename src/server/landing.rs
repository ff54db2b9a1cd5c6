//! The landing page (`/`): version and links, each collector's state and the
//! progress of a running one, the partner's unpaid balance per currency, and the
//! customers with their spend, usage estimate and budgets. Everything from Partner
//! Center is escaped.

use std::fmt::Write as _;
use std::time::Duration;

use crate::collectors::customers::Customers;
use crate::collectors::invoices::{Billing, Invoices};
use crate::collectors::servicecosts::ServiceCosts;
use crate::collectors::usage::Usage;
use crate::collectors::Plan;
use crate::snapshot::Snapshot;
use crate::telemetry::RunStatus;

/// Rows shown on the landing page; the full list is on /metrics.
const LANDING_ROWS: usize = 1000;

/// A collector as the landing page shows it.
pub struct CollectorView<'a> {
    pub name: &'a str,
    pub interval: Duration,
    /// Whether its progress counts customers or requests.
    pub plan: Plan,
    pub status: RunStatus,
}

/// One customer row of the landing page.
struct Row<'a> {
    id: &'a str,
    name: &'a str,
    domain: &'a str,
    budget: Option<f64>,
    costs: Option<&'a crate::snapshot::Fetched<crate::collectors::servicecosts::Costs>>,
    usage: Option<&'a crate::partner_center::usage::UsageRecord>,
}

/// The landing page. Customer names come from Partner Center: everything is escaped.
pub fn landing_html(
    snapshot: &Snapshot,
    telemetry_path: &str,
    collectors: &[CollectorView<'_>],
) -> String {
    let customers = Customers::part(snapshot);
    let costs = ServiceCosts::part(snapshot);
    let usage = Usage::part(snapshot);
    // Every customer the list or the service costs know.
    let mut ids: Vec<&str> = customers
        .iter()
        .flat_map(|p| p.entries.iter().map(|(k, _)| k.as_str()))
        .chain(
            costs
                .iter()
                .flat_map(|p| p.entries.iter().map(|(k, _)| k.as_str())),
        )
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut rows: Vec<Row<'_>> = ids
        .into_iter()
        .map(|id| {
            let info = customers.and_then(|p| p.value(id));
            Row {
                id,
                name: info.map_or("", |c| c.name.as_str()),
                domain: info.map_or("", |c| c.domain.as_str()),
                budget: info.and_then(|c| c.budget),
                costs: costs.and_then(|p| p.get(id)),
                usage: usage.and_then(|p| p.value(id)),
            }
        })
        .collect();
    let spend = |r: &Row<'_>| {
        r.costs
            .and_then(|f| f.value.as_ref())
            .map_or(0.0, |c| c.after_tax())
    };
    rows.sort_by(|a, b| {
        spend(b)
            .total_cmp(&spend(a))
            .then_with(|| a.name.cmp(b.name))
    });
    let failed = rows
        .iter()
        .filter(|r| r.costs.is_some_and(|f| !f.success))
        .count();
    let mut out = String::with_capacity(4096 + rows.len().min(LANDING_ROWS) * 320);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Partner Center Exporter</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}}td.n,td.t{{white-space:nowrap}}td.n{{text-align:right}}.bad{{color:#b00}}</style></head>\n\
<body><h1>Partner Center Exporter</h1>\n<p>Version {version}. Collects from Microsoft Partner Center in the background and serves the last results; scrapes never wait on Partner Center.</p>\n\
<ul><li><a href=\"{path}\">Metrics</a></li><li><a href=\"/-/healthy\">Health</a></li><li><a href=\"/-/ready\">Readiness</a></li></ul>\n",
        version = escape_html(env!("CARGO_PKG_VERSION")),
        path = escape_html(telemetry_path),
    );
    out.push_str("<h2>Collectors</h2>\n<table><tr><th>Collector</th><th>Every</th><th>State</th><th>Last fully successful run</th><th>Runs (ok / partial / failed)</th></tr>\n");
    for c in collectors {
        let s = &c.status;
        let unit = match c.plan {
            Plan::EachCustomer => "customers",
            Plan::Partner => "requests",
        };
        let state = if s.in_progress {
            format!(
                "running: {} of {} {unit}",
                thousands(s.done),
                thousands(s.targets)
            )
        } else if s.runs.iter().sum::<u64>() == 0 {
            "waiting for its first run".to_owned()
        } else {
            "idle".to_owned()
        };
        let last = s
            .last_success
            .map_or_else(|| "never".to_owned(), format_time);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"n{}\">{} / {} / {}</td></tr>",
            escape_html(c.name),
            escape_html(&humantime::format_duration(c.interval).to_string()),
            escape_html(&state),
            escape_html(&last),
            if s.runs[2] > 0 { " bad" } else { "" },
            s.runs[0],
            s.runs[1],
            s.runs[2],
        );
    }
    out.push_str("</table>\n");
    billing(&mut out, snapshot);
    let _ = write!(
        out,
        "<h2>Customers</h2>\n<p>{} monitored, {} failing at the last service-costs run. Usage estimates are Microsoft's, refreshed about daily.</p>\n",
        thousands(rows.len() as i64),
        thousands(failed as i64),
    );
    out.push_str("<table><tr><th>Customer</th><th>Domain</th><th>Id</th><th>After tax</th><th>Budget (used)</th><th>Usage this month (estimate)</th><th>Partner Center budget (used)</th><th>Last fetch</th></tr>\n");
    for r in rows.iter().take(LANDING_ROWS) {
        let lines = r.costs.and_then(|f| f.value.as_ref());
        let spend_text = lines
            .map(|c| {
                c.after_tax_by_currency()
                    .iter()
                    .map(|(cur, v)| format!("{v:.2} {cur}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let spent = lines.map_or(0.0, |c| c.after_tax());
        let over_budget = r.budget.is_some_and(|b| spent > b);
        let budget = match r.budget {
            Some(b) if b > 0.0 => format!("{b:.2} ({:.0}%)", spent / b * 100.0),
            Some(b) => format!("{b:.2}"),
            None => String::new(),
        };
        let (usage_text, pc_budget, pc_over) = match r.usage {
            Some(u) => {
                let currency = Usage::currency(snapshot, u);
                let pc = match u.budget {
                    Some(b) if b > 0.0 => format!("{b:.2} ({:.0}%)", u.total_cost / b * 100.0),
                    Some(b) => format!("{b:.2}"),
                    None => String::new(),
                };
                (
                    format!("{:.2} {currency}", u.total_cost),
                    pc,
                    u.budget.is_some_and(|b| u.total_cost > b),
                )
            }
            None => (String::new(), String::new(), false),
        };
        let ok = r.costs.is_none_or(|f| f.success);
        let status = match r.costs {
            Some(f) => match (f.success, f.last_success) {
                (true, Some(t)) => format_time(t),
                (false, Some(t)) => format!("failing (data from {})", format_time(t)),
                (_, None) => "failing (no data yet)".to_owned(),
            },
            None => "not fetched yet".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"t{}\">{}</td></tr>",
            escape_html(r.name),
            escape_html(r.domain),
            escape_html(r.id),
            escape_html(&spend_text),
            if over_budget { " bad" } else { "" },
            escape_html(&budget),
            escape_html(&usage_text),
            if pc_over { " bad" } else { "" },
            escape_html(&pc_budget),
            if ok { "" } else { " bad" },
            escape_html(&status),
        );
    }
    out.push_str("</table>\n");
    if rows.len() > LANDING_ROWS {
        let _ = writeln!(
            out,
            "<p>{} more on the metrics page.</p>",
            thousands((rows.len() - LANDING_ROWS) as i64)
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// `1240` as `1,240`.
/// The partner's balance per currency and its invoices, when the `invoices`
/// collector has them.
fn billing(out: &mut String, snapshot: &Snapshot) {
    let Some(part) = Invoices::part(snapshot) else {
        return;
    };
    let values = || part.entries.iter().filter_map(|(_, f)| f.value.as_ref());
    let invoices = values()
        .filter(|v| matches!(v, Billing::Invoice(_)))
        .count();
    out.push_str("<h2>Billing</h2>\n<table><tr><th>Currency</th><th>Unpaid balance</th><th>Last payment</th><th>Latest invoice</th></tr>\n");
    for v in values() {
        let Billing::Summary(s) = v else { continue };
        let payment = match (s.last_payment, s.last_payment_amount) {
            (Some(at), Some(amount)) => format!("{amount:.2} on {}", format_time(at)),
            (Some(at), None) => format_time(at),
            (None, _) => "none".to_owned(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"n\">{:.2}</td><td class=\"t\">{}</td><td class=\"t\">{}</td></tr>",
            escape_html(&s.currency),
            s.balance,
            escape_html(&payment),
            escape_html(&s.latest_invoice.map_or_else(|| "none".to_owned(), format_time)),
        );
    }
    let _ = writeln!(
        out,
        "</table>\n<p>{} invoices and amendments exported (the last <code>--collector.invoices.history</code>).</p>",
        thousands(invoices as i64)
    );
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A Unix time as RFC 3339, or the number itself when it is no date between 1970
/// and 9999 (a cache file or an upstream may hold anything: never panic on it).
fn format_time(unix: f64) -> String {
    const YEAR_10000: f64 = 253_402_300_800.0;
    if !(0.0..YEAR_10000).contains(&unix) {
        return format!("{unix} (Unix time)");
    }
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::collectors::customers::CustomerInfo;
    use crate::collectors::servicecosts::Costs;
    use crate::snapshot::{Fetched, Part};

    /// A snapshot of one customer with service costs fetched at `last_success`.
    fn one_customer(
        name: &str,
        budget: Option<f64>,
        last_success: Option<f64>,
        success: bool,
    ) -> Snapshot {
        let info = Part::from_entries(
            vec![(
                "id-1".to_owned(),
                Fetched {
                    value: Some(CustomerInfo {
                        name: name.into(),
                        domain: "d".into(),
                        budget,
                    }),
                    success: true,
                    last_success: Some(0.0),
                },
            )],
            None,
        );
        let costs: Part<Costs> = Part::from_entries(
            vec![(
                "id-1".to_owned(),
                Fetched {
                    value: Some(Costs(vec![])),
                    success,
                    last_success,
                },
            )],
            None,
        );
        Snapshot::default()
            .with(crate::collectors::customers::NAME, Arc::new(info))
            .with(crate::collectors::servicecosts::NAME, Arc::new(costs))
    }

    fn view(status: RunStatus) -> CollectorView<'static> {
        CollectorView {
            name: "servicecosts",
            interval: Duration::from_secs(3600),
            plan: Plan::EachCustomer,
            status,
        }
    }

    #[test]
    fn times_beyond_any_calendar_do_not_panic() {
        assert_eq!(format_time(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(253_402_300_799.0), "9999-12-31T23:59:59Z");
        for t in [
            253_402_300_800.0,
            1e300,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::MAX,
        ] {
            assert!(format_time(t).ends_with("(Unix time)"), "{t}");
        }
        let snapshot = one_customer("n", Some(1.0), Some(1e300), false);
        let status = RunStatus {
            in_progress: false,
            targets: 0,
            done: 0,
            last_success: Some(f64::MAX),
            runs: [1, 0, 0],
        };
        let html = landing_html(&snapshot, "/metrics", &[view(status)]);
        assert!(html.contains("(Unix time)"));
    }

    #[test]
    fn a_running_collector_shows_its_progress() {
        let status = RunStatus {
            in_progress: true,
            targets: 10_000,
            done: 1_240,
            last_success: None,
            runs: [0, 0, 0],
        };
        let html = landing_html(&Snapshot::default(), "/metrics", &[view(status)]);
        assert!(
            html.contains("running: 1,240 of 10,000 customers"),
            "{html}"
        );
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(-1234), "-1,234");
    }

    #[test]
    fn landing_page_escapes_names() {
        let snapshot = one_customer(
            "<script>alert('x')</script> & \"Co\"",
            None,
            Some(0.0),
            true,
        );
        let html = landing_html(&snapshot, "/metrics", &[]);
        assert!(!html.contains("<script>"));
        assert!(
            html.contains("<td class=\"n\"></td>"),
            "no budget, no figure"
        );
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Co&quot;")
        );
    }

    #[test]
    fn the_balance_shows_per_currency_and_is_escaped() {
        use crate::partner_center::invoices::InvoiceSummary;
        let summary = |currency: &str, balance: f64, last_payment: Option<f64>| {
            let fetched = crate::snapshot::Fetched {
                value: Some(Billing::Summary(InvoiceSummary {
                    currency: currency.into(),
                    balance,
                    last_payment_amount: Some(1000.0),
                    last_payment,
                    latest_invoice: None,
                })),
                success: true,
                last_success: Some(1.0),
            };
            (format!("summary/{currency}"), fetched)
        };
        let part = crate::snapshot::Part::from_entries(
            vec![
                summary("<b>", 1.0, None),
                summary("USD", 751_094.39, Some(1_483_272_000.0)),
            ],
            None,
        );
        let snapshot =
            Snapshot::default().with(crate::collectors::invoices::NAME, std::sync::Arc::new(part));
        let html = landing_html(&snapshot, "/metrics", &[]);
        assert!(html.contains("<h2>Billing</h2>"));
        assert!(html.contains("<tr><td>USD</td><td class=\"n\">751094.39</td><td class=\"t\">1000.00 on 2017-01-01T12:00:00Z</td>"), "{html}");
        assert!(html.contains("<td>&lt;b&gt;</td>") && !html.contains("<b>"));
        assert!(html.contains("0 invoices and amendments exported"));
        assert!(!landing_html(&Snapshot::default(), "/metrics", &[]).contains("Billing"));
    }
}
