//! The routes: one module per service, and the dispatch of a request to them.
//!
//! - `aad`: the AAD v1 and v2 token endpoints (docs/partner-center.md §1);
//! - `devicecode`: the AAD v1 and v2 device code endpoints and the device code
//!   grant of the token endpoints (§9);
//! - `generatetoken`: the legacy Partner Center token exchange (§1);
//! - `customers`: `GET /v1/customers`, paged (§3);
//! - `servicecosts`: `GET /v1/customers/{id}/servicecosts/{period}` (§2);
//! - `usage`: `GET /v1/customers/usagerecords` (§6);
//! - `invoices`: `GET /v1/invoices`, `/v1/invoices/summaries` and `/summary` (§7);
//! - `lineitems`: `GET /v1/customers/{id}/servicecosts/{period}/lineitems` (§8);
//! - `common`: what more than one Partner Center route serves (links, paging by
//!   continuation token, forced statuses).
//!
//! Adding a route module (say `invoices`): write `routes/invoices.rs` with its
//! handler and its tests, declare it below, add an [`Endpoint`] variant and give it
//! an arm in [`Endpoint::classify`], [`Endpoint::is_api`], [`Endpoint::method`],
//! [`Endpoint::counter`] (a field of [`Stats`]) and [`route`]. The matches on
//! [`Endpoint`] are exhaustive, so the compiler points at each of them.

pub(crate) mod aad;
pub(crate) mod common;
pub(crate) mod customers;
pub(crate) mod devicecode;
pub(crate) mod generatetoken;
pub(crate) mod invoices;
pub(crate) mod lineitems;
pub(crate) mod servicecosts;
pub(crate) mod usage;

use http::{header, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::server::{empty, set_header, Body};
use crate::state::{Shared, Stats};

/// Which route a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Token,
    DeviceCode,
    Customers,
    ServiceCosts,
    UsageRecords,
    Invoices,
    InvoiceSummaries,
    LineItems,
    GenerateToken,
    Other,
}

impl Endpoint {
    /// The route of a path, whatever the method.
    pub(crate) fn classify(path: &str) -> Endpoint {
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        match segments.as_slice() {
            [_, "oauth2", "token"] | [_, "oauth2", "v2.0", "token"] => Endpoint::Token,
            [_, "oauth2", "devicecode"] | [_, "oauth2", "v2.0", "devicecode"] => {
                Endpoint::DeviceCode
            }
            ["generatetoken"] | ["v3", "generatetoken"] => Endpoint::GenerateToken,
            ["v1", "customers"] => Endpoint::Customers,
            ["v1", "customers", "usagerecords"] => Endpoint::UsageRecords,
            ["v1", "customers", _, "servicecosts", _] => Endpoint::ServiceCosts,
            ["v1", "customers", _, "servicecosts", _, "lineitems"] => Endpoint::LineItems,
            ["v1", "invoices"] => Endpoint::Invoices,
            ["v1", "invoices", "summaries" | "summary"] => Endpoint::InvoiceSummaries,
            _ => Endpoint::Other,
        }
    }

    /// Partner Center API routes: throttled, faulted and counted in flight.
    pub(crate) fn is_api(self) -> bool {
        match self {
            Endpoint::Customers
            | Endpoint::ServiceCosts
            | Endpoint::UsageRecords
            | Endpoint::Invoices
            | Endpoint::InvoiceSummaries
            | Endpoint::LineItems => true,
            Endpoint::Token | Endpoint::DeviceCode | Endpoint::GenerateToken | Endpoint::Other => {
                false
            }
        }
    }

    /// The one method the route answers; others get 405 with this in `Allow`.
    fn method(self) -> &'static str {
        match self {
            Endpoint::Token | Endpoint::DeviceCode | Endpoint::GenerateToken => "POST",
            Endpoint::Customers
            | Endpoint::ServiceCosts
            | Endpoint::UsageRecords
            | Endpoint::Invoices
            | Endpoint::InvoiceSummaries
            | Endpoint::LineItems
            | Endpoint::Other => "GET",
        }
    }

    /// The counter of the route's requests in [`Stats`].
    pub(crate) fn counter(self, stats: &mut Stats) -> Option<&mut u64> {
        match self {
            Endpoint::Token => Some(&mut stats.token),
            Endpoint::DeviceCode => Some(&mut stats.devicecode),
            Endpoint::Customers => Some(&mut stats.customers),
            Endpoint::ServiceCosts => Some(&mut stats.servicecosts),
            Endpoint::UsageRecords => Some(&mut stats.usagerecords),
            Endpoint::Invoices => Some(&mut stats.invoices),
            Endpoint::InvoiceSummaries => Some(&mut stats.invoicesummaries),
            Endpoint::LineItems => Some(&mut stats.lineitems),
            Endpoint::GenerateToken => Some(&mut stats.generatetoken),
            Endpoint::Other => None,
        }
    }
}

/// Hands the request to its route's handler: 404 for an unknown path, 405 for a
/// known one with the wrong method.
pub(crate) async fn route(
    shared: &Shared,
    endpoint: Endpoint,
    path: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    match (parts.method.as_str(), segments.as_slice()) {
        ("POST", [tenant, "oauth2", "token"]) => {
            aad::token(shared, tenant, aad::AadVersion::V1, headers, body).await
        }
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => {
            aad::token(shared, tenant, aad::AadVersion::V2, headers, body).await
        }
        ("POST", [tenant, "oauth2", "devicecode"]) => {
            devicecode::device_code(shared, tenant, aad::AadVersion::V1, body).await
        }
        ("POST", [tenant, "oauth2", "v2.0", "devicecode"]) => {
            devicecode::device_code(shared, tenant, aad::AadVersion::V2, body).await
        }
        ("POST", ["generatetoken"]) => {
            generatetoken::generate_token(shared, false, headers, body).await
        }
        ("POST", ["v3", "generatetoken"]) => {
            generatetoken::generate_token(shared, true, headers, body).await
        }
        ("GET", ["v1", "customers"]) => customers::customers(shared, headers, parts.uri.query()),
        ("GET", ["v1", "customers", "usagerecords"]) => {
            usage::usage_records(shared, headers, parts.uri.query())
        }
        ("GET", ["v1", "customers", id, "servicecosts", period]) => {
            servicecosts::service_costs(shared, headers, id, period).await
        }
        ("GET", ["v1", "customers", id, "servicecosts", period, "lineitems"]) => {
            lineitems::line_items(shared, headers, id, period)
        }
        ("GET", ["v1", "invoices"]) => invoices::invoices(shared, headers, parts.uri.query()),
        ("GET", ["v1", "invoices", "summaries"]) => invoices::summaries(shared, headers, true),
        ("GET", ["v1", "invoices", "summary"]) => invoices::summaries(shared, headers, false),
        _ if endpoint == Endpoint::Other => empty(StatusCode::NOT_FOUND),
        _ => {
            let mut resp = empty(StatusCode::METHOD_NOT_ALLOWED);
            set_header(&mut resp, header::ALLOW, endpoint.method());
            resp
        }
    }
}
