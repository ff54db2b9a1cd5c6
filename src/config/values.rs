//! One setting at a time: durations, numbers, URLs, the listen address, the customer
//! selection, the collectors' settings and the secret files, each validated with an
//! error that names its flag or file key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;

use super::file::FileCollector;
use super::flags::CollectorFlags;
use super::{CollectorSettings, ConfigError, CustomerConfig, CustomerSelection};

/// Each registered collector's settings: flags, then the file's `collectors:`, then
/// the collector's default (interval: `--poll.interval`). `--demo` shows every
/// collector: there, the opt-in ones are on by default too.
pub(super) fn collector_settings(
    flags: &[CollectorFlags],
    mut file: std::collections::BTreeMap<String, FileCollector>,
    poll_interval: Duration,
    demo: bool,
) -> Result<Vec<CollectorSettings>, ConfigError> {
    let mut settings = Vec::new();
    for info in crate::collectors::COLLECTORS {
        let given = flags.iter().find(|f| f.name == info.name);
        let from_file = file.remove(info.name).unwrap_or_default();
        let enabled = match given {
            Some(f) if f.enable && f.disable => {
                return Err(ConfigError::new(format!(
                    "--{} and --{}: both given; give one",
                    info.flag, info.no_flag
                )))
            }
            Some(f) if f.enable => true,
            Some(f) if f.disable => false,
            _ => from_file.enabled.unwrap_or(info.enabled_by_default || demo),
        };
        let interval = match given.and_then(|f| f.interval.clone()) {
            Some(text) => duration_setting(Some(text), &format!("--{}", info.interval_flag), "")?,
            None => match from_file.interval {
                Some(text) => duration_setting(
                    Some(text),
                    &format!("collectors.{}.interval", info.name),
                    "",
                )?,
                None => poll_interval,
            },
        };
        let mut from_file_options = from_file.options;
        let mut options = Vec::with_capacity(info.options.len());
        for option in info.options {
            let file_key = option.file_key();
            let in_file = from_file_options.remove(&file_key);
            let flag = given.and_then(|f| f.options.iter().find(|(k, _)| *k == option.key));
            let (text, source) = match (flag, in_file) {
                (Some((_, text)), _) => (text.clone(), format!("--{}", option.flag)),
                (None, Some(value)) => {
                    (value.text(), format!("collectors.{}.{file_key}", info.name))
                }
                (None, None) => (option.default.to_owned(), format!("--{}", option.flag)),
            };
            options.push((option.key, option_value(option, text, &source)?));
        }
        if let Some(unknown) = from_file_options.keys().next() {
            let mut known = vec!["enabled".to_owned(), "interval".to_owned()];
            known.extend(info.options.iter().map(|o| o.file_key()));
            return Err(ConfigError::new(format!(
                "collectors.{}.{unknown}: unknown setting; the {} collector has: {}",
                info.name,
                info.name,
                known.join(", ")
            )));
        }
        settings.push(CollectorSettings {
            name: info.name,
            enabled,
            interval,
            options,
        });
    }
    if let Some(unknown) = file.keys().next() {
        let known: Vec<&str> = crate::collectors::COLLECTORS
            .iter()
            .map(|c| c.name)
            .collect();
        return Err(ConfigError::new(format!(
            "collectors.{unknown}: unknown collector; known collectors: {}",
            known.join(", ")
        )));
    }
    Ok(settings)
}

/// A collector setting's value from its text, checked for its kind.
fn option_value(
    option: &crate::collectors::OptionInfo,
    text: String,
    source: &str,
) -> Result<crate::collectors::OptionValue, ConfigError> {
    use crate::collectors::{OptionKind, OptionValue};
    match option.kind {
        OptionKind::Duration => duration_setting(Some(text), source, "").map(OptionValue::Duration),
        OptionKind::Count { min, max } => {
            number_setting(Some(text), None, source, min, min..=max).map(OptionValue::Count)
        }
    }
}

/// Reads a secret file: its value is the text without a leading UTF-8 byte-order
/// mark (Windows editors write one, and Azure AD would take it as part of the
/// secret) and without surrounding whitespace (the trailing newline editors add).
/// `Ok(None)` when nothing is left.
pub fn read_secret(path: &Path) -> std::io::Result<Option<SecretString>> {
    let text = std::fs::read_to_string(path)?;
    let value = secret_value(&text);
    Ok((!value.is_empty()).then(|| SecretString::from(value.to_owned())))
}

/// The value of a secret file's text (see [`read_secret`]).
pub(super) fn secret_value(text: &str) -> &str {
    text.strip_prefix('\u{FEFF}').unwrap_or(text).trim()
}

/// Reads a secret file with [`read_secret`] for `flag`; an empty one is an error.
/// Warns when the file is readable by group or others.
pub(super) fn read_secret_file(
    path: &Path,
    flag: &str,
    warnings: &mut Vec<String>,
) -> Result<SecretString, ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::new(format!("{flag}: cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        warnings.push(format!(
            "{flag}: {} is readable by group or others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        ));
    }
    read_secret(path)
        .map_err(|e| ConfigError::new(format!("{flag}: cannot read {}: {e}", path.display())))?
        .ok_or_else(|| ConfigError::new(format!("{flag}: {} is empty", path.display())))
}

/// `:PORT` → `0.0.0.0:PORT`; `HOST:PORT` and `[V6]:PORT` kept. The port is checked.
pub fn normalize_listen_address(value: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(format!(
            "--web.listen-address: {value:?} {why}; use :PORT or HOST:PORT, e.g. :10026"
        ))
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
    port.parse::<u16>()
        .map_err(|_| bad("has an invalid port"))?;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad("has an IPv6 host without brackets"));
    }
    Ok(format!("{host}:{port}"))
}

pub(super) fn duration_setting(
    value: Option<String>,
    flag: &str,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        ConfigError::new(format!(
            "{flag}: {text:?} is not a duration ({e}); use e.g. 30s, 5m, 1h"
        ))
    })?;
    if d.is_zero() {
        return Err(ConfigError::new(format!(
            "{flag}: must be longer than zero"
        )));
    }
    Ok(d)
}

pub(super) fn number_setting(
    flag_value: Option<String>,
    file_value: Option<u64>,
    flag: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let n = match flag_value {
        Some(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|_| ConfigError::new(format!("{flag}: {text:?} is not a whole number")))?,
        None => file_value.unwrap_or(default),
    };
    if !range.contains(&n) {
        return Err(ConfigError::new(format!(
            "{flag}: {n} is out of range; use {} to {}",
            range.start(),
            range.end()
        )));
    }
    Ok(n)
}

pub(super) fn url_setting(
    value: Option<String>,
    flag: &str,
    default: &str,
) -> Result<String, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(url.to_owned()),
        _ => Err(ConfigError::new(format!(
            "{flag}: {text:?} is not an http(s) URL"
        ))),
    }
}

pub(super) fn customer_selection(
    flag: Option<&str>,
    file: Option<Vec<CustomerConfig>>,
    file_name: &str,
) -> Result<CustomerSelection, ConfigError> {
    let mut file = file.unwrap_or_default();
    for i in 0..file.len() {
        let key = |field: &str| format!("--config.file {file_name}: customers[{i}].{field}");
        let c = &mut file[i];
        // A typo in an id must not pass as a customer without data (Partner Center
        // answers 404, which means "no data").
        c.id = crate::partner_center::model::normalize_customer_id(&c.id).ok_or_else(|| {
            ConfigError::new(format!(
                "{}: {:?} is not a customer id; give the customer's tenant id, a GUID such as ae1d5b32-f9ff-4252-b2bf-40e21937a51a",
                key("id"),
                c.id
            ))
        })?;
        if let Some(b) = c.budget {
            if !b.is_finite() || b < 0.0 {
                return Err(ConfigError::new(format!(
                    "{}: {b} must be a positive number",
                    key("budget")
                )));
            }
        }
        if file[..i].iter().any(|o| o.id == file[i].id) {
            return Err(ConfigError::new(format!(
                "{}: {} is listed twice",
                key("id"),
                file[i].id
            )));
        }
    }
    let Some(flag) = flag.map(str::trim).filter(|f| !f.is_empty()) else {
        return Ok(CustomerSelection {
            discover: file.is_empty(),
            customers: file,
        });
    };
    // The flag picks the customers; names and budgets for them still come from the file.
    let mut customers: Vec<CustomerConfig> = Vec::new();
    for text in flag.split(',').map(str::trim) {
        let id = crate::partner_center::model::normalize_customer_id(text).ok_or_else(|| {
            ConfigError::new(format!(
                "--customers: {text:?} is not a customer id; give comma-separated tenant ids (GUIDs such as ae1d5b32-f9ff-4252-b2bf-40e21937a51a)"
            ))
        })?;
        if customers.iter().any(|c| c.id == id) {
            continue;
        }
        let from_file = file.iter().find(|c| c.id == id);
        customers.push(CustomerConfig {
            name: from_file.and_then(|c| c.name.clone()),
            budget: from_file.and_then(|c| c.budget),
            id,
        });
    }
    Ok(CustomerSelection {
        discover: false,
        customers,
    })
}
