//! The `invoices` collector: what the partner is billed by Microsoft and still owes.
//! Every page of the partner's invoice list (`GET /v1/invoices`), of which the
//! invoices and amendments dated within `--collector.invoices.history` are
//! exported, and the unpaid balance per currency (`GET /v1/invoices/summaries`).
//!
//! The part is keyed `invoice/{id}` and `summary/{currency}`; an invoice that leaves
//! the history window leaves the part at the end of the run that no longer finds it
//! inside. Both requests must succeed for a run to succeed: a 403 (an account
//! without a billing role) fails this collector only, and the last good values stay.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::exposition::{Family, Render};
use crate::partner_center::client::ApiError;
use crate::partner_center::invoices::{Invoice, InvoiceSummary};
use crate::partner_center::model::unix_seconds;
use crate::snapshot::{Part, Snapshot};

use super::{register, Api, Collector, OptionKind, Plan, Scope};

pub const NAME: &str = "invoices";

/// How far back invoices are exported by default: a year of monthly invoices
/// and a month of slack.
pub const DEFAULT_HISTORY: Duration = Duration::from_secs(400 * 86_400);

pub const INFO: super::Info = crate::collector_info!(
    "invoices",
    "INVOICES",
    true,
    "the partner's invoices and its unpaid balance per currency (a few requests)",
    Invoices,
    |settings| register(Invoices {
        history: settings.duration("history").unwrap_or(DEFAULT_HISTORY),
    }),
    &[crate::collector_option!(
        "invoices",
        "INVOICES",
        "history",
        "HISTORY",
        OptionKind::Duration,
        "400d",
        "Export the invoices dated within this time before now"
    )]
);

/// One entry of the part: an invoice (or amendment), or a currency's balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Billing {
    Invoice(Invoice),
    Summary(InvoiceSummary),
}

/// The collector.
pub struct Invoices {
    /// `--collector.invoices.history`.
    pub history: Duration,
}

impl Invoices {
    pub fn part(snapshot: &Snapshot) -> Option<&Part<Billing>> {
        snapshot.part::<Billing>(NAME)
    }

    /// Whether a document dated `date` is inside the history window ending `now`.
    /// An undated document is not: nothing says it is recent.
    fn within_history(&self, date: Option<f64>, now: f64) -> bool {
        date.is_some_and(|d| d >= now - self.history.as_secs_f64())
    }
}

impl Collector for Invoices {
    type Value = Billing;
    const NAME: &'static str = NAME;
    const PLAN: Plan = Plan::Partner;
    const FORBIDDEN: &'static str = "the signed-in user needs a Partner Center billing role \
        (Billing admin or Global admin) to read invoices";

    async fn fetch(
        &self,
        api: &Api<'_>,
        _scope: Scope<'_>,
    ) -> Result<Vec<(String, Billing)>, ApiError> {
        // The summaries' request, beside the invoice list's first page.
        api.add_targets(1);
        let on_page = |more: bool| {
            api.target_done();
            if more {
                api.add_targets(1);
            }
        };
        let invoices = api.client.invoices(&on_page).await?;
        let summaries = api.client.invoice_summaries().await?;
        api.target_done();
        let now = unix_seconds(SystemTime::now());
        let mut values: Vec<(String, Billing)> = invoices
            .into_iter()
            .filter(|i| self.within_history(i.date, now))
            .map(|i| (format!("invoice/{}", i.id), Billing::Invoice(i)))
            .collect();
        values.extend(
            summaries
                .into_iter()
                .map(|s| (format!("summary/{}", s.currency), Billing::Summary(s))),
        );
        Ok(values)
    }

    fn render(&self, _snapshot: &Snapshot, part: &Part<Billing>, out: &mut Render<'_>) {
        let invoices = || {
            part.entries
                .iter()
                .filter_map(|(_, f)| match f.value.as_ref()? {
                    Billing::Invoice(i) => Some(i),
                    Billing::Summary(_) => None,
                })
        };
        let summaries = || {
            part.entries
                .iter()
                .filter_map(|(_, f)| match f.value.as_ref()? {
                    Billing::Summary(s) => Some(s),
                    Billing::Invoice(_) => None,
                })
        };
        out.header(&TOTAL_CHARGES);
        for i in invoices() {
            out.sample(
                &TOTAL_CHARGES,
                &[
                    ("invoice_id", i.id.as_str()),
                    ("invoice_type", i.invoice_type.as_str()),
                    ("document_type", i.document_type.as_str()),
                    ("currency", i.currency.as_str()),
                ],
                i.total_charges,
            );
        }
        out.header(&PAID_AMOUNT);
        for i in invoices() {
            if let Some(paid) = i.paid_amount {
                out.sample(
                    &PAID_AMOUNT,
                    &[
                        ("invoice_id", i.id.as_str()),
                        ("currency", i.currency.as_str()),
                    ],
                    paid,
                );
            }
        }
        out.header(&DATE);
        for i in invoices() {
            if let Some(date) = i.date {
                out.sample(&DATE, &[("invoice_id", i.id.as_str())], date);
            }
        }
        out.header(&BALANCE);
        for s in summaries() {
            out.sample(&BALANCE, &[("currency", s.currency.as_str())], s.balance);
        }
        out.header(&LAST_PAYMENT_AMOUNT);
        for s in summaries() {
            if let Some(amount) = s.last_payment_amount {
                out.sample(
                    &LAST_PAYMENT_AMOUNT,
                    &[("currency", s.currency.as_str())],
                    amount,
                );
            }
        }
        out.header(&LAST_PAYMENT);
        for s in summaries() {
            if let Some(at) = s.last_payment {
                out.sample(&LAST_PAYMENT, &[("currency", s.currency.as_str())], at);
            }
        }
        out.header(&LATEST_INVOICE);
        for s in summaries() {
            if let Some(at) = s.latest_invoice {
                out.sample(&LATEST_INVOICE, &[("currency", s.currency.as_str())], at);
            }
        }
    }

    fn size_hint(&self, part: &Part<Billing>) -> usize {
        part.len().saturating_mul(400)
    }
}

const TOTAL_CHARGES: Family = Family {
    name: "partnercenter_invoice_total_charges",
    help: "Total charges of the partner's invoice or amendment (totalCharges of GET /v1/invoices), in its currency; documents dated within --collector.invoices.history.",
};
const PAID_AMOUNT: Family = Family {
    name: "partnercenter_invoice_paid_amount",
    help: "Amount paid on the invoice as Partner Center reports it (paidAmount; negative when a payment was received).",
};
const DATE: Family = Family {
    name: "partnercenter_invoice_date_timestamp_seconds",
    help: "Date of the invoice (invoiceDate, Unix time).",
};
const BALANCE: Family = Family {
    name: "partnercenter_invoices_balance",
    help: "The partner's unpaid balance in the currency: the total of unpaid invoices (balanceAmount of GET /v1/invoices/summaries).",
};
const LAST_PAYMENT_AMOUNT: Family = Family {
    name: "partnercenter_invoices_last_payment_amount",
    help: "Amount of the partner's last payment in the currency (lastPaymentAmount).",
};
const LAST_PAYMENT: Family = Family {
    name: "partnercenter_invoices_last_payment_timestamp_seconds",
    help: "When the partner last paid in the currency (lastPaymentDate, Unix time); no series when no payment is recorded.",
};
const LATEST_INVOICE: Family = Family {
    name: "partnercenter_invoices_latest_invoice_timestamp_seconds",
    help: "Date of the partner's latest invoice in the currency (latestInvoiceDate, Unix time).",
};

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::snapshot::Fetched;

    fn invoice(id: &str, date: Option<f64>) -> Invoice {
        Invoice {
            id: id.into(),
            invoice_type: "Recurring".into(),
            document_type: "invoice".into(),
            currency: "EUR".into(),
            total_charges: 10.5,
            paid_amount: Some(-10.5),
            date,
            amends: None,
        }
    }

    fn render(entries: Vec<Billing>) -> String {
        let part = Part::from_entries(
            entries
                .into_iter()
                .map(|b| {
                    let key = match &b {
                        Billing::Invoice(i) => format!("invoice/{}", i.id),
                        Billing::Summary(s) => format!("summary/{}", s.currency),
                    };
                    let fetched = Fetched {
                        value: Some(b),
                        success: true,
                        last_success: Some(1.0),
                    };
                    (key, fetched)
                })
                .collect(),
            None,
        );
        let snapshot = Snapshot::default().with(NAME, Arc::new(part));
        let collector = Invoices {
            history: DEFAULT_HISTORY,
        };
        crate::exposition::render_text(|out| {
            collector.render(&snapshot, Invoices::part(&snapshot).unwrap(), out)
        })
    }

    #[test]
    fn every_family_renders_and_none_dates_give_no_series() {
        let text = render(vec![
            Billing::Invoice(invoice("A1", Some(1_700_000_000.0))),
            Billing::Summary(InvoiceSummary {
                currency: "EUR".into(),
                balance: 42.25,
                last_payment_amount: Some(0.0),
                last_payment: None,
                latest_invoice: Some(1_700_000_000.0),
            }),
        ]);
        for line in [
            "partnercenter_invoice_total_charges{invoice_id=\"A1\",invoice_type=\"Recurring\",document_type=\"invoice\",currency=\"EUR\"} 10.5",
            "partnercenter_invoice_paid_amount{invoice_id=\"A1\",currency=\"EUR\"} -10.5",
            "partnercenter_invoice_date_timestamp_seconds{invoice_id=\"A1\"} 1700000000",
            "partnercenter_invoices_balance{currency=\"EUR\"} 42.25",
            "partnercenter_invoices_last_payment_amount{currency=\"EUR\"} 0",
            "partnercenter_invoices_latest_invoice_timestamp_seconds{currency=\"EUR\"} 1700000000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        assert!(text.contains("# TYPE partnercenter_invoices_last_payment_timestamp_seconds gauge"));
        assert!(!text.contains("partnercenter_invoices_last_payment_timestamp_seconds{"));
    }

    #[test]
    fn the_history_window_keeps_recent_dated_documents_only() {
        let c = Invoices {
            history: Duration::from_secs(100),
        };
        assert!(c.within_history(Some(950.0), 1000.0));
        assert!(c.within_history(Some(900.0), 1000.0));
        assert!(!c.within_history(Some(899.0), 1000.0));
        assert!(!c.within_history(None, 1000.0));
    }
}
