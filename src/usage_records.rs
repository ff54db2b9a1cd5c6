//! PLACEHOLDER until the usage_records branch merges.
use crate::model::{BodyError, Link};
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UsageRecord {
    pub customer_id: String,
    pub total_cost: f64,
    pub currency_code: Option<String>,
    pub currency_locale: Option<String>,
    pub usd_total_cost: Option<f64>,
    pub budget: Option<f64>,
    pub percent_used: Option<f64>,
    pub azure_plan: Option<bool>,
    pub last_modified: Option<f64>,
}
#[derive(Debug, Default)]
pub struct UsageRecordsPage {
    pub records: Vec<UsageRecord>,
    pub skipped: usize,
    pub next: Option<Link>,
}
pub fn parse_usage_records(_body: &[u8]) -> Result<UsageRecordsPage, BodyError> {
    Err(BodyError::Missing("items"))
}
