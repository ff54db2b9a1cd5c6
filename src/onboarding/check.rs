//! `partnercenter-exporter check`: proves a configuration end to end before a
//! deploy (or in an init container). It signs in once with the exporter's own
//! [`Authenticator`] (so a rotated refresh token is written back to its file, as
//! the exporter does), lists the customers (page count and total), fetches a few
//! customers' data from every enabled collector with the exporter's
//! [`PartnerCenterClient`], and prints a short report on stdout: the tenant, the
//! grant, the customers, the currencies seen, about how many series the exporter
//! would serve, and each collector's answer. A failed step ends the report; the
//! error line (stderr, from the caller) names the step and the fix, in the words
//! of the README's Operating table. It reads the collectors' data but does not run
//! the collectors themselves (their seams belong to `collectors`).

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{http_client, StepFailed};
use crate::auth::{AuthError, Authenticator};
use crate::config::{Config, Grant};
use crate::http::retry::Backoff;
use crate::partner_center::client::{ApiError, PartnerCenterClient};
use crate::snapshot::cache::StateLock;
use crate::telemetry::Telemetry;

/// How many customers each per-customer collector is tried on.
const SAMPLE: usize = 3;

/// What one collector's check came to.
struct Answer {
    /// One line for the report.
    line: String,
    /// Series the exporter would serve for the part fetched, and for how many of
    /// the customers (0 for a partner-wide answer).
    series: usize,
    sampled: usize,
}

/// Runs `check`.
pub async fn run(config: &Config) -> Result<(), StepFailed> {
    let enabled: Vec<&'static str> = config
        .collectors
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.name)
        .collect();
    let telemetry = Arc::new(
        Telemetry::new(&enabled)
            .map_err(|e| StepFailed::new("start-up", format!("cannot create metrics: {e}")))?,
    );
    // Like the exporter: a second process rotating the same refresh token would
    // leave the other with a token Azure AD has replaced.
    let _lock = match (&config.auth.refresh_token_file, config.auth.grant) {
        (Some(path), Grant::RefreshToken) => Some(StateLock::acquire(path).map_err(|e| {
            StepFailed::new("start-up", format!("{e}; stop the exporter that uses this refresh token file, or run check with a copy of it"))
        })?),
        _ => None,
    };
    let http = http_client(config)?;
    let backoff = Backoff::standard();
    let auth = Arc::new(Authenticator::new(
        http.clone(),
        config.auth.clone(),
        config.partner_center_url.clone(),
        telemetry.clone(),
        backoff.clone(),
    ));
    let client = PartnerCenterClient::new(
        http,
        config.partner_center_url.clone(),
        auth.clone(),
        config.poll.rate_limit,
        config.poll.concurrency,
        telemetry.clone(),
        backoff,
    );

    println!("tenant:     {}", config.auth.tenant);
    println!("grant:      {}", grant_line(config));
    auth.begin_poll();
    auth.token().await.map_err(sign_in_failed)?;
    println!("sign-in:    ok");

    let customers: Vec<String> = if config.customers.discover {
        let listed = client
            .list_customers()
            .await
            .map_err(|e| api_failed("customers", &e))?;
        let pages = requests(&telemetry, "customers", "200");
        println!(
            "customers:  {} ({} page{} of GET /v1/customers)",
            listed.len(),
            pages,
            if pages == 1 { "" } else { "s" }
        );
        listed.into_iter().map(|c| c.id).collect()
    } else {
        let ids: Vec<String> = config
            .customers
            .customers
            .iter()
            .map(|c| c.id.clone())
            .collect();
        println!("customers:  {} (from the configuration)", ids.len());
        ids
    };
    let sample: Vec<&str> = customers.iter().take(SAMPLE).map(String::as_str).collect();

    let mut currencies = BTreeSet::new();
    let mut series = customers.len(); // partnercenter_customer_info
    let mut failed: Option<StepFailed> = None;
    for name in &enabled {
        let answer = check_collector(&client, name, &sample, &mut currencies).await;
        match answer {
            Ok(a) => {
                println!("{:<11} ok: {}", format!("{name}:"), a.line);
                // Extrapolated from the customers fetched to all of them.
                series += a
                    .series
                    .saturating_mul(customers.len())
                    .checked_div(a.sampled)
                    .unwrap_or(a.series);
            }
            Err(e) => {
                println!("{:<11} FAILED: {e}", format!("{name}:"));
                failed.get_or_insert_with(|| collector_failed(name, &e));
            }
        }
    }
    let shown: Vec<&str> = currencies.iter().map(String::as_str).collect();
    println!(
        "currencies: {}",
        if shown.is_empty() {
            "none seen".to_owned()
        } else {
            shown.join(", ")
        }
    );
    println!("series:     about {series} (cost series, from the customers fetched)");
    match failed {
        Some(failed) => Err(failed),
        None => {
            println!("Everything answered: the exporter can run with this configuration.");
            Ok(())
        }
    }
}

fn grant_line(config: &Config) -> String {
    let grant = match config.auth.grant {
        Grant::RefreshToken if config.auth.client_secret.is_some() => {
            "refresh-token (confidential client, with a client secret)"
        }
        Grant::RefreshToken => "refresh-token (public client: the token from login)",
        Grant::Password => "password",
        Grant::ClientCredentials => "client-credentials (app-only)",
    };
    format!("{grant}, Azure AD endpoint {:?}", config.auth.endpoint)
        .replace("V1", "v1")
        .replace("V2", "v2")
}

/// Fetches one collector's data for `sample` (or partner-wide).
async fn check_collector(
    client: &PartnerCenterClient,
    name: &str,
    sample: &[&str],
    currencies: &mut BTreeSet<String>,
) -> Result<Answer, ApiError> {
    match name {
        "servicecosts" => {
            let mut lines = 0;
            let mut no_data = 0;
            for id in sample {
                match client.service_costs(id).await? {
                    Some(costs) => {
                        lines += costs.len();
                        currencies.extend(costs.into_iter().map(|c| c.currency));
                    }
                    None => no_data += 1,
                }
            }
            Ok(Answer {
                line: format!(
                    "{} customers fetched, {lines} cost lines, {no_data} without data",
                    sample.len()
                ),
                series: lines * 5 + sample.len() * 2,
                sampled: sample.len(),
            })
        }
        "usage" => {
            let records = client.usage_records(&|_| {}).await?;
            currencies.extend(records.iter().filter_map(|r| r.currency_code.clone()));
            Ok(Answer {
                line: format!("{} usage records", records.len()),
                series: records.len() * 2,
                sampled: 0,
            })
        }
        "invoices" => {
            let invoices = client.invoices(&|_| {}).await?;
            let summaries = client.invoice_summaries().await?;
            currencies.extend(invoices.iter().map(|i| i.currency.clone()));
            currencies.extend(summaries.iter().map(|s| s.currency.clone()));
            Ok(Answer {
                line: format!("{} invoices, {} summaries", invoices.len(), summaries.len()),
                series: invoices.len() * 2 + summaries.len() * 4,
                sampled: 0,
            })
        }
        "lineitems" => {
            let mut items = 0;
            for id in sample {
                if let Some(found) = client.line_items(id).await? {
                    items += found.len();
                    currencies.extend(found.into_iter().map(|i| i.currency));
                }
            }
            Ok(Answer {
                line: format!("{} customers fetched, {items} line items", sample.len()),
                series: items * 2,
                sampled: sample.len(),
            })
        }
        _ => Ok(Answer {
            line: "not checked (no check for this collector yet)".to_owned(),
            series: 0,
            sampled: 0,
        }),
    }
}

/// `partnercenter_api_requests_total{endpoint, code}`, read off the exposition.
fn requests(telemetry: &Telemetry, endpoint: &str, code: &str) -> u64 {
    let mut out = Vec::new();
    telemetry.encode(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .filter(|l| l.starts_with("partnercenter_api_requests_total{"))
        .filter(|l| {
            l.contains(&format!("endpoint=\"{endpoint}\""))
                && l.contains(&format!("code=\"{code}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

fn sign_in_failed(err: AuthError) -> StepFailed {
    let fix = match &err {
        AuthError::Refused { .. } => {
            " (after a fresh sign-in with `partnercenter-exporter login`, or the one-time consent, the token file is read again)"
        }
        AuthError::Unavailable(_) | AuthError::Transport(_) | AuthError::Unusable(_) => {
            "; nothing to change if it passes: Azure AD or the network is down, run check again later"
        }
        AuthError::Exchange(_) => "; check --auth.csp-token-exchange",
    };
    StepFailed::new("sign-in", format!("{err}{fix}"))
}

fn api_failed(step: &str, err: &ApiError) -> StepFailed {
    if let ApiError::Auth(auth) = err {
        return sign_in_failed(auth.clone());
    }
    let fix = match err.kind() {
        "forbidden" => "check the partner account's roles in Partner Center (an admin agent role)",
        "unauthorized" => "Partner Center refused the token: check the app's Partner Center API permission (user_impersonation, admin consent)",
        "throttled" => "lower --poll.rate-limit or --poll.concurrency; other tools of the same partner tenant share Partner Center's limits",
        "paging" | "bad_body" => "nothing on the exporter's side; report it to Microsoft if it persists",
        _ => "nothing if it passes: run check again later; check --partner-center.url",
    };
    StepFailed::new(step, format!("{err}; {fix}"))
}

fn collector_failed(name: &str, err: &ApiError) -> StepFailed {
    if let ApiError::Status { status: 403, .. } = err {
        return StepFailed::new(
            name,
            format!("{err}; give the signed-in account an admin agent or billing role in Partner Center, or switch the collector off with --no-collector.{name}"),
        );
    }
    api_failed(name, err)
}
