//! How the simulator reads and writes values on the wire: form bodies and query
//! strings, the dates of Partner Center and AAD answers and the amounts of Partner Center bodies
//! (docs/partner-center.md §2 and §6: integers and floats as in the examples,
//! 20-digit decimals).

use http::StatusCode;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::Value;

/// The largest form body read; a larger one is answered 413.
pub(crate) const MAX_FORM_BODY: usize = 64 * 1024;

/// A parsed `application/x-www-form-urlencoded` body or query string: `+` is a
/// space, `%XX` a byte, anything else (a lone `%`, `%zz`) itself; not UTF-8 is
/// replaced.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(input: &[u8]) -> Self {
        Form(form_urlencoded::parse(input).into_owned().collect())
    }

    /// The first non-empty value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a form body of at most [`MAX_FORM_BODY`] bytes; the error is the status to answer.
pub(crate) async fn read_form(body: Incoming) -> Result<Form, StatusCode> {
    match Limited::new(body, MAX_FORM_BODY).collect().await {
        Ok(collected) => Ok(Form::parse(&collected.to_bytes())),
        Err(err) if err.is::<LengthLimitError>() => Err(StatusCode::PAYLOAD_TOO_LARGE),
        Err(_) => Err(StatusCode::BAD_REQUEST),
    }
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The number of days of this month.
pub(crate) fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `2026-01-09 02:02:12Z`, as in AAD errors.
pub(crate) fn aad_timestamp(unix: i64) -> String {
    let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// An amount as JSON: `OneTime` amounts that are whole come as integers (`2`), the
/// rest as floats (`17.22`, `0.0`), as in the documented example.
pub(crate) fn amount(value: f64, integer_when_whole: bool) -> Value {
    if integer_when_whole && value.fract() == 0.0 && value.abs() < 1e15 {
        Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

/// `x` with 20 fractional digits (`120.56829999999959568413`), or in its shortest
/// form where those would not read back as `x`.
pub(crate) fn decimal20(x: f64) -> String {
    let long = format!("{x:.20}");
    if long.parse::<f64>() == Ok(x) {
        long
    } else {
        Value::from(x).to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_dates_format_as_documented() {
        assert_eq!(amount(2.0, true).to_string(), "2");
        assert_eq!(amount(2.0, false).to_string(), "2.0");
        assert_eq!(amount(17.22, true).to_string(), "17.22");
        assert_eq!(amount(0.0, false).to_string(), "0.0");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(aad_timestamp(1_767_924_132), "2026-01-09 02:02:12Z");
    }
}
