//! The deterministic synthetic data behind the routes: the customers
//! ([`SimCustomer`]: the documented one first, one without data, the rest with
//! generated names, ids and domains), their service costs ([`SimCosts`],
//! [`SimDetail`]: monthly amounts that grow with the month) and their usage
//! records (docs/partner-center.md §6: Azure-plan and legacy shapes, budgets,
//! 20-digit decimals). Everything follows from the seed and the customer's id.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;
use time::{Date, Duration};

use crate::codec::{
    amount, date_time_offset, decimal20, end_of_day, month_of, start_of_day, today,
};
use crate::util::{fnv1a, SplitMix64};

/// The customer of the documented service-costs example (docs/partner-center.md §2).
pub(crate) const DOCUMENTED_ID: &str = "ae1d5b32-f9ff-4252-b2bf-40e21937a51a";

/// One customer of the simulated partner.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCustomer {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub costs: SimCosts,
}

/// What the customer's `servicecosts/MostRecent` answers.
#[derive(Debug, Clone, PartialEq)]
pub enum SimCosts {
    /// The documented example body, verbatim (fixture `servicecosts-mostrecent.json`).
    Documented,
    /// 404: no service-costs data for this customer.
    NoData,
    /// A body in the documented shape with these details.
    Generated(Vec<SimDetail>),
}

/// One `details[]` entry; `afterTaxTotal` is `pretax + tax`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimDetail {
    pub invoice_type: String,
    pub currency: String,
    pub pretax: f64,
    pub tax: f64,
    pub billing_start: String,
    pub billing_end: String,
}

/// A customer as stored: either with fixed costs, or synthetic with monthly
/// amounts that grow with the month (recomputed per day).
pub(crate) struct Entry {
    /// The lower-case id.
    pub(crate) key: String,
    pub(crate) customer: SimCustomer,
    monthly: Option<Vec<MonthlyDetail>>,
}

struct MonthlyDetail {
    invoice_type: &'static str,
    currency: &'static str,
    /// Pre-tax amount of the whole month.
    full_pretax: f64,
    tax_rate: f64,
    /// Whole-currency amounts (licence purchases): served as integers.
    whole: bool,
}

impl Entry {
    pub(crate) fn fixed(customer: SimCustomer) -> Self {
        Self {
            key: customer.id.to_ascii_lowercase(),
            customer,
            monthly: None,
        }
    }

    pub(crate) fn costs(&self, period: &Period) -> SimCosts {
        match &self.monthly {
            None => self.customer.costs.clone(),
            Some(monthly) => SimCosts::Generated(
                monthly
                    .iter()
                    .map(|m| {
                        let grown = m.full_pretax * period.fraction;
                        let pretax = if m.whole {
                            grown.round()
                        } else {
                            round2(grown)
                        };
                        SimDetail {
                            invoice_type: m.invoice_type.to_owned(),
                            currency: m.currency.to_owned(),
                            pretax,
                            tax: round2(pretax * m.tax_rate),
                            billing_start: period.start.clone(),
                            billing_end: period.end.clone(),
                        }
                    })
                    .collect(),
            ),
        }
    }

    /// The currency of the customer's service costs (USD when it has none).
    fn currency(&self) -> &str {
        if let Some(first) = self.monthly.as_ref().and_then(|m| m.first()) {
            return first.currency;
        }
        match &self.customer.costs {
            SimCosts::Generated(details) => details.first().map_or("USD", |d| &d.currency),
            SimCosts::Documented | SimCosts::NoData => "USD",
        }
    }

    pub(crate) fn current(&self, period: &Period) -> SimCustomer {
        SimCustomer {
            costs: self.costs(period),
            ..self.customer.clone()
        }
    }
}

/// The current calendar month (UTC) and how much of it has passed, by whole days.
pub(crate) struct Period {
    pub(crate) start: String,
    pub(crate) end: String,
    fraction: f64,
}

impl Period {
    pub(crate) fn current() -> Self {
        Self::of(today())
    }

    /// The month of `date`, of which the days up to `date` have passed.
    fn of(date: Date) -> Self {
        let (first, last) = month_of(date);
        Period {
            start: start_of_day(first),
            end: end_of_day(last),
            fraction: f64::from(date.day()) / f64::from(last.day()),
        }
    }
}

#[rustfmt::skip]
const NAME_FIRST: [&str; 60] = [
    "Contoso", "Northwind", "Adventure", "Tailspin", "Woodgrove", "Litware", "Proseware",
    "Lucerne", "Alpine", "Coho", "Trey", "Wingtip", "Fourth", "Humongous", "Relecloud",
    "VanArsdel", "Datum", "Southridge", "Consolidated", "Wide World", "Blue Yonder", "Margie's",
    "Lamna", "Munson's", "Nod", "Liberty's", "Bellows", "Boulder", "Cascade", "Cedar", "Copper",
    "Evergreen", "Fjord", "Granite", "Harbor", "Juniper", "Kestrel", "Lakeside", "Maple",
    "Meridian", "Nimbus", "Oakridge", "Orchid", "Pinnacle", "Quarry", "Redwood", "Riverbend",
    "Sapphire", "Sequoia", "Silverline", "Summit", "Tidewater", "Trillium", "Upland", "Vertex",
    "Willow", "Zephyr", "Aurora", "Beacon", "Cobalt",
];
#[rustfmt::skip]
const NAME_SECOND: [&str; 40] = [
    "Traders", "Works", "Toys", "Bank", "Systems", "Publishing", "Ski House", "Winery", "Research",
    "Coffee", "Insurance", "Electric", "Airlines", "Video", "Logistics", "Health", "Foods",
    "Pharmaceuticals", "Consulting", "Engineering", "Studios", "Partners", "Labs", "Retail",
    "Energy", "Motors", "Analytics", "Dental", "Legal", "Architects", "Brewing", "Capital",
    "Clinics", "Construction", "Design", "Farms", "Freight", "Hotels", "Media", "Outfitters",
];
#[rustfmt::skip]
const NAME_SUFFIX: [&str; 16] = [
    "Inc.", "Ltd", "LLC", "GmbH", "AG", "S.A.", "B.V.", "Pty Ltd", "AB", "Oy", "SAS", "S.r.l.",
    "Corp.", "plc", "ApS", "AS",
];
const TAX_RATES: [f64; 8] = [0.0, 0.05, 0.07, 0.08, 0.1, 0.16, 0.19, 0.2];

/// A distinct company name for synthetic index `i` (a seeded bijection onto
/// first × second × suffix; a number is added past 38,400 names).
fn company_name(i: usize, seed: u64) -> String {
    const N: usize = NAME_FIRST.len() * NAME_SECOND.len() * NAME_SUFFIX.len();
    const STRIDE: usize = 7_919; // prime, coprime with N = 2^9 * 3 * 5^2
    let offset = (seed % N as u64) as usize;
    let k = ((i % N) * STRIDE + offset) % N;
    let first = NAME_FIRST[k % NAME_FIRST.len()];
    let second = NAME_SECOND[(k / NAME_FIRST.len()) % NAME_SECOND.len()];
    let suffix = NAME_SUFFIX[k / (NAME_FIRST.len() * NAME_SECOND.len())];
    match i / N {
        0 => format!("{first} {second} {suffix}"),
        group => format!("{first} {second} {} {suffix}", group + 1),
    }
}

/// A GUID-shaped id (version 4 layout) from the generator.
pub(crate) fn guid(rng: &mut SplitMix64) -> String {
    let hi = rng.next_u64();
    let lo = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0x0FFF,
        0x8000 | ((lo >> 48) & 0x3FFF),
        lo & 0xFFFF_FFFF_FFFF
    )
}

/// The synthetic customers: index 0 is the documented Fabrikam, exactly one other
/// has no data, the rest have generated costs. Deterministic from `seed`.
pub(crate) fn synthetic_customers(count: usize, seed: u64) -> Vec<Arc<Entry>> {
    let mut entries = Vec::with_capacity(count);
    if count == 0 {
        return entries;
    }
    entries.push(Arc::new(Entry::fixed(SimCustomer {
        id: DOCUMENTED_ID.to_owned(),
        name: "Fabrikam".to_owned(),
        domain: "fabrikam.onmicrosoft.com".to_owned(),
        costs: SimCosts::Documented,
    })));
    let no_data = if count > 1 {
        1 + (SplitMix64(seed ^ 0x00DA_7A00).next_u64() % (count as u64 - 1)) as usize
    } else {
        0
    };
    let mut ids: HashSet<String> = HashSet::from([DOCUMENTED_ID.to_owned()]);
    let mut domains: HashSet<String> = HashSet::from(["fabrikam.onmicrosoft.com".to_owned()]);
    let mut id_rng = SplitMix64(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1D5);
    for i in 1..count {
        let mut rng = SplitMix64(seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let mut id = guid(&mut id_rng);
        while !ids.insert(id.clone()) {
            id = guid(&mut id_rng);
        }
        let name = company_name(i - 1, seed);
        let stem: String = name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let mut domain = format!("{stem}.onmicrosoft.com");
        if !domains.insert(domain.clone()) {
            domain = format!("{stem}{i}.onmicrosoft.com");
            domains.insert(domain.clone());
        }
        let currency = if rng.next_f64() < 2.0 / 3.0 {
            "USD"
        } else {
            "EUR"
        };
        let tax_rate = TAX_RATES[(rng.next_u64() % TAX_RATES.len() as u64) as usize];
        let mut monthly = vec![MonthlyDetail {
            invoice_type: "Recurring",
            currency,
            full_pretax: round2(log_uniform(&mut rng, 40.0, 8_000.0)),
            tax_rate,
            whole: false,
        }];
        if rng.next_f64() < 0.8 {
            let whole = rng.next_f64() < 0.35;
            let full = log_uniform(&mut rng, 10.0, 2_500.0);
            monthly.push(MonthlyDetail {
                invoice_type: "OneTime",
                currency,
                full_pretax: if whole { full.round() } else { round2(full) },
                tax_rate,
                whole,
            });
        }
        let customer = SimCustomer {
            id,
            name,
            domain,
            costs: if i == no_data {
                SimCosts::NoData
            } else {
                SimCosts::Generated(Vec::new())
            },
        };
        let monthly = (i != no_data).then_some(monthly);
        entries.push(Arc::new(Entry {
            key: customer.id.clone(),
            customer,
            monthly,
        }));
    }
    entries
}

fn log_uniform(rng: &mut SplitMix64, low: f64, high: f64) -> f64 {
    (low.ln() + rng.next_f64() * (high.ln() - low.ln())).exp()
}

/// Rounded to cents.
pub(crate) fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

// Usage records (docs/partner-center.md §6).

/// A record as served: its JSON and whether its amounts are written with 20
/// fractional digits, as Partner Center writes .NET decimals.
pub(crate) struct ServedRecord {
    pub(crate) value: Value,
    pub(crate) long_decimals: bool,
}

impl ServedRecord {
    /// A record as given (by a knob): written as it is.
    pub(crate) fn given(value: Value) -> Self {
        Self {
            value,
            long_decimals: false,
        }
    }

    /// The record's JSON text. A `Value` holds an f64, which serde writes in its
    /// shortest form; a long-decimal record has its amounts rewritten with 20
    /// fractional digits that read back as the same f64.
    pub(crate) fn to_json(&self) -> String {
        let mut text = self.value.to_string();
        if self.long_decimals {
            for key in ["totalCost", "usdTotalCost"] {
                let value = self.value.get(key).filter(|v| v.is_f64());
                if let Some(x) = value.and_then(Value::as_f64) {
                    let shortest = format!("\"{key}\":{}", Value::from(x));
                    let long = format!("\"{key}\":{}", decimal20(x));
                    text = text.replacen(&shortest, &long, 1);
                }
            }
        }
        text
    }
}

/// The documented example's Azure-plan `totalCost`, which the documented customer
/// spends against a budget of 20 (docs/partner-center.md, "Usage records").
#[allow(clippy::excessive_precision)]
pub(crate) const DOCUMENTED_USAGE_TOTAL: f64 = 120.5682999999995904716;
/// Budgets set on synthetic customers, in the customer's currency.
const USAGE_BUDGETS: [f64; 7] = [25.0, 50.0, 100.0, 250.0, 500.0, 1_000.0, 2_500.0];
/// What share of the budget a synthetic customer has used: under, trending over
/// (close to it early in the month) and over.
const USAGE_PERCENTS: [f64; 7] = [23.5, 48.2, 71.9, 88.4, 93.7, 112.6, 164.3];

/// The synthetic usage record of a customer, derived from its id alone (so that a
/// customer keeps its record whatever else is added or removed): about every
/// fourth customer has none (no usage-based subscription), about every seventh a
/// legacy one (`currencyLocale`, `isUpgraded: false`), the rest an Azure-plan one
/// in the currency of their service costs. About 60% have a budget; about half of
/// the Azure-plan records carry amounts with 20 fractional digits. The documented
/// customer is over budget, as in the documented example. The estimate was last
/// refreshed the day before `today` (UTC).
pub(crate) fn usage_record(entry: &Entry, today: Date, budget_null: bool) -> Option<ServedRecord> {
    let mut rng = SplitMix64(fnv1a(entry.key.as_bytes()) ^ 0x05A6_E5EC_0DE5_u64);
    let documented = entry.key == DOCUMENTED_ID;
    let legacy = match rng.next_u64() % 28 {
        _ if documented => false,
        0..7 => return None,
        7..11 => true,
        _ => false,
    };
    let currency = entry.currency();
    let (budget, total, percent, long) = if documented {
        (Some(20.0), DOCUMENTED_USAGE_TOTAL, 602.84, true)
    } else if rng.next_f64() < 0.6 {
        let budget = USAGE_BUDGETS[(rng.next_u64() % USAGE_BUDGETS.len() as u64) as usize];
        let target = USAGE_PERCENTS[(rng.next_u64() % USAGE_PERCENTS.len() as u64) as usize];
        let long = !legacy && rng.next_f64() < 0.5;
        let raw = budget * target / 100.0;
        let total = if long { raw } else { round2(raw) };
        (Some(budget), total, round2(total / budget * 100.0), long)
    } else {
        let long = !legacy && rng.next_f64() < 0.5;
        let raw = log_uniform(&mut rng, 3.0, 4_000.0);
        (None, if long { raw } else { round2(raw) }, 0.0, long)
    };
    let number = |x: f64| {
        if long {
            serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
        } else {
            amount(x, true)
        }
    };
    let usd = total * usd_rate(currency);
    let mut spending_budget = serde_json::Map::new();
    match budget {
        Some(budget) => {
            spending_budget.insert("amount".to_owned(), amount(budget, true));
        }
        None if budget_null => {
            spending_budget.insert("amount".to_owned(), Value::Null);
        }
        // No budget: the key is left out, as in the documented example.
        None => {}
    }
    spending_budget.insert(
        "attributes".to_owned(),
        serde_json::json!({"objectType": "SpendingBudget"}),
    );
    let budget = Value::Object(spending_budget);
    let id = Value::from(entry.customer.id.as_str());
    let name = Value::from(entry.customer.name.as_str());
    let mut record = serde_json::Map::new();
    record.insert("budget".to_owned(), budget.clone());
    record.insert("customerSpendingBudget".to_owned(), budget);
    record.insert("percentUsed".to_owned(), amount(percent, true));
    record.insert("isUpgraded".to_owned(), Value::from(!legacy));
    record.insert("resourceId".to_owned(), id.clone());
    record.insert("id".to_owned(), id);
    record.insert("resourceName".to_owned(), name.clone());
    record.insert("name".to_owned(), name);
    record.insert("totalCost".to_owned(), number(total));
    if legacy {
        // The documented legacy record has a locale, not a currency, and a zero
        // `usdTotalCost`: the USD estimate is an Azure-plan field.
        record.insert("currencyLocale".to_owned(), Value::from(locale(currency)));
        record.insert("usdTotalCost".to_owned(), Value::from(0));
    } else {
        record.insert("currencyCode".to_owned(), Value::from(currency));
        record.insert(
            "currencySymbol".to_owned(),
            Value::from(currency_symbol(currency)),
        );
        let usd = if long { usd } else { round2(usd) };
        record.insert("usdTotalCost".to_owned(), number(usd));
    }
    record.insert(
        "lastModifiedDate".to_owned(),
        Value::from(refreshed_at(
            today.previous_day().unwrap_or(today),
            &mut rng,
        )),
    );
    record.insert(
        "attributes".to_owned(),
        serde_json::json!({"objectType": "CustomerMonthlyUsageRecord"}),
    );
    Some(ServedRecord {
        value: Value::Object(record),
        long_decimals: long,
    })
}

/// A time on `day` (UTC) as Partner Center writes `lastModifiedDate`.
fn refreshed_at(day: Date, rng: &mut SplitMix64) -> String {
    let second = rng.next_u64() % 86_400;
    let millis = rng.next_u64() % 1_000;
    let midnight = day.midnight().assume_utc();
    let at = midnight
        .checked_add(Duration::milliseconds((second * 1_000 + millis) as i64))
        .unwrap_or(midnight);
    date_time_offset(at)
}

/// The culture of a legacy customer billed in `currency`.
fn locale(currency: &str) -> &'static str {
    match currency {
        "EUR" => "fr-FR",
        "GBP" => "en-GB",
        "SEK" => "sv-SE",
        "JPY" => "ja-JP",
        _ => "en-US",
    }
}

/// Rough USD per unit of `currency`, for `usdTotalCost`.
fn usd_rate(currency: &str) -> f64 {
    match currency {
        "EUR" => 1.08,
        "GBP" => 1.27,
        "SEK" => 0.095,
        "JPY" => 0.0067,
        "AUD" => 0.66,
        "CAD" => 0.73,
        _ => 1.0,
    }
}

/// The symbol of a currency as Partner Center writes it; the code where it has none.
pub(crate) fn currency_symbol(code: &str) -> &str {
    match code {
        "USD" | "AUD" | "CAD" | "NZD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use time::macros::date;
    use uuid::Uuid;

    use crate::state::Shared;
    use crate::SimulatorConfig;

    #[test]
    fn synthetic_customers_are_deterministic_and_plausible() {
        let a = synthetic_customers(25, 1);
        let b = synthetic_customers(25, 1);
        let c = synthetic_customers(25, 2);
        let ids = |e: &[Arc<Entry>]| e.iter().map(|e| e.customer.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&a), ids(&b));
        assert_ne!(ids(&a), ids(&c));
        assert_eq!(a[0].customer.id, DOCUMENTED_ID);
        assert_eq!(a[0].customer.costs, SimCosts::Documented);
        assert_eq!(
            a.iter()
                .filter(|e| e.customer.costs == SimCosts::NoData)
                .count(),
            1
        );
        for entry in &a[1..] {
            assert!(Uuid::parse_str(&entry.customer.id).is_ok());
            assert!(entry.customer.domain.ends_with(".onmicrosoft.com"));
            assert_ne!(entry.customer.name, "Fabrikam");
        }

        let period = Period::current();
        let many = synthetic_customers(3_000, 1);
        let details: Vec<SimDetail> = many
            .iter()
            .filter_map(|e| match e.costs(&period) {
                SimCosts::Generated(d) => Some(d),
                _ => None,
            })
            .flatten()
            .collect();
        let recurring = details
            .iter()
            .filter(|d| d.invoice_type == "Recurring")
            .count();
        let usd =
            details.iter().filter(|d| d.currency == "USD").count() as f64 / details.len() as f64;
        assert_eq!(recurring, 2_998);
        assert!((0.55..0.78).contains(&usd), "{usd}");
        assert!(details.len() > 2_998 + 2_000, "most have OneTime");
        assert!(details
            .iter()
            .all(|d| d.tax <= d.pretax * 0.2 + 0.01 && d.tax >= 0.0));
        assert!(details
            .iter()
            .all(|d| d.billing_end.ends_with("T23:59:59.9999999Z")));
    }

    #[test]
    fn a_period_is_the_calendar_month_so_far() {
        let period = Period::of(date!(2024 - 02 - 10));
        assert_eq!(period.start, "2024-02-01T00:00:00Z");
        assert_eq!(period.end, "2024-02-29T23:59:59.9999999Z");
        assert_eq!(period.fraction, 10.0 / 29.0);
        assert_eq!(Period::of(date!(2025 - 12 - 31)).fraction, 1.0);
    }

    #[test]
    fn hundred_thousand_customers_are_fast_and_distinct() {
        let started = Instant::now();
        let entries = synthetic_customers(100_000, 42);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(entries.len(), 100_000);
        let names: HashSet<&str> = entries.iter().map(|e| e.customer.name.as_str()).collect();
        let ids: HashSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
        let domains: HashSet<&str> = entries.iter().map(|e| e.customer.domain.as_str()).collect();
        assert_eq!(
            (names.len(), ids.len(), domains.len()),
            (100_000, 100_000, 100_000)
        );
    }

    /// The number of fractional digits of the first `"key":<number>` in `text`.
    fn fraction_digits(text: &str, key: &str) -> Option<usize> {
        let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
        let number: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .collect();
        Some(number.split_once('.').map_or(0, |(_, f)| f.len()))
    }

    #[test]
    fn the_default_usage_records_show_every_shape() {
        let config = SimulatorConfig::default();
        let shared = Shared::new(&config);
        let served = shared.usage_records(false, BTreeMap::new());
        let records: Vec<&Value> = served.iter().map(|r| &r.value).collect();
        let azure_plan = records.iter().filter(|r| r["isUpgraded"] == true).count();
        let legacy = records.iter().filter(|r| r["isUpgraded"] == false).count();
        assert_eq!(azure_plan + legacy, records.len());
        assert!(legacy >= 1 && azure_plan > legacy, "{legacy} {azure_plan}");
        assert!(
            records.len() < config.customers,
            "some customers have no record"
        );
        assert!(records.iter().any(|r| r["resourceId"] == DOCUMENTED_ID));

        let percents: Vec<f64> = records
            .iter()
            .filter(|r| r["budget"].get("amount").is_some())
            .map(|r| r["percentUsed"].as_f64().unwrap())
            .collect();
        assert!(percents.len() < records.len(), "some have no budget");
        assert!(percents.iter().any(|p| *p > 100.0), "{percents:?}");
        assert!(
            percents.iter().any(|p| (70.0..=100.0).contains(p)),
            "{percents:?}"
        );
        assert!(
            records
                .iter()
                .any(|r| r["isUpgraded"] == false && r["budget"].get("amount").is_some()),
            "a legacy customer with a budget"
        );

        let digits: Vec<Option<usize>> = served
            .iter()
            .filter(|r| r.value["isUpgraded"] == true)
            .map(|r| fraction_digits(&r.to_json(), "totalCost"))
            .collect();
        assert!(digits.contains(&Some(20)), "{digits:?}");
        assert!(
            digits.iter().any(|d| d.is_some_and(|d| d <= 2)),
            "{digits:?}"
        );
        for record in &served {
            let text = record.to_json();
            let read: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(read, record.value, "the text reads back as the value");
        }
    }

    #[test]
    fn usage_records_are_deterministic_and_about_as_often_as_said() {
        let config = SimulatorConfig {
            customers: 3_000,
            ..SimulatorConfig::default()
        };
        let values = |shared: &Shared| -> Vec<Value> {
            shared
                .usage_records(false, BTreeMap::new())
                .into_iter()
                .map(|r| r.value)
                .collect()
        };
        let records = values(&Shared::new(&config));
        assert_eq!(records, values(&Shared::new(&config)));
        let none = config.customers - records.len();
        let legacy = records.iter().filter(|r| r["isUpgraded"] == false).count();
        let share = |n: usize| n as f64 / config.customers as f64;
        assert!((0.2..0.3).contains(&share(none)), "{none}");
        assert!((0.1..0.19).contains(&share(legacy)), "{legacy}");
        let budgets = records
            .iter()
            .filter(|r| r["budget"].get("amount").is_some())
            .count();
        assert!(
            (0.5..0.7).contains(&(budgets as f64 / records.len() as f64)),
            "{budgets}"
        );
    }
}
