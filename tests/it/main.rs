//! Integration tests: the real exporter (binary or in-process `Application`) against
//! the simulated Azure AD and Partner Center over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerting;
mod api;
mod billing;
mod collectors;
mod continuity;
mod faults;
mod hardening;
mod helpers;
mod hostile_auth;
mod hostile_data;
mod onboarding;
mod security;
