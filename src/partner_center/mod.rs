//! Partner Center's REST API as the exporter uses it: the client (rate limit,
//! concurrency bound, retries, paging, bounded bodies), the wire types and tolerant
//! parsers of each endpoint, and the timestamps.
//!
//! The facts these rely on are in `docs/partner-center.md`.

pub mod client;
mod discovery;
pub mod invoices;
pub mod lineitems;
pub mod model;
pub mod time;
pub mod usage;
