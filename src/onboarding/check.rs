//! `partnercenter-exporter check`: proves a configuration end to end.
use super::StepFailed;
use crate::config::Config;

pub async fn run(_config: &Config) -> Result<(), StepFailed> {
    Err(StepFailed::new("check", "not implemented"))
}
