//! How the simulator reads and writes values on the wire: form bodies and query
//! strings (with `form_urlencoded`), the dates of Partner Center and AAD answers
//! (calendar and formatting with `time`) and the amounts of Partner Center
//! bodies (docs/partner-center.md §2 and §6: integers and floats as in the
//! examples, 20-digit decimals).

use http::StatusCode;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

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

/// Today's date, UTC.
pub(crate) fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// The first and the last day of the calendar month of `date`.
pub(crate) fn month_of(date: Date) -> (Date, Date) {
    let last = date.month().length(date.year());
    (
        date.replace_day(1).unwrap_or(date),
        date.replace_day(last).unwrap_or(date),
    )
}

/// The first instant of `date` as Partner Center writes billing dates:
/// `2019-04-01T00:00:00Z` (docs/partner-center.md §2).
pub(crate) fn start_of_day(date: Date) -> String {
    date.midnight()
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// The last instant of `date` as Partner Center writes billing dates, with 7
/// fractional digits: `2019-04-30T23:59:59.9999999Z` (docs/partner-center.md §2).
pub(crate) fn end_of_day(date: Date) -> String {
    PrimitiveDateTime::new(date, Time::MAX)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
        ))
        .unwrap_or_default()
}

/// A `DateTimeOffset` as Partner Center writes `lastModifiedDate`: with its
/// offset (`+00:00`) and a fraction without trailing zeros, none for a whole
/// second: `2019-08-01T23:00:16.57+00:00` (docs/partner-center.md §6).
pub(crate) fn date_time_offset(at: OffsetDateTime) -> String {
    let formatted = if at.nanosecond() == 0 {
        at.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory]:[offset_minute]"
        ))
    } else {
        at.format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:1+][offset_hour sign:mandatory]:[offset_minute]"
        ))
    };
    formatted.unwrap_or_default()
}

/// An instant as Partner Center writes `invoiceDate`: UTC with 7 fractional
/// digits, `2018-02-08T18:44:37.5381456Z` (docs/partner-center.md §7).
pub(crate) fn invoice_date(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z"
        ))
        .unwrap_or_default()
}

/// A Unix time as AAD errors write their timestamp: `2026-01-09 02:02:12Z`.
pub(crate) fn aad_timestamp(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
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
    use time::macros::{date, datetime};
    use time::Duration;

    #[test]
    fn amounts_and_dates_format_as_documented() {
        assert_eq!(amount(2.0, true).to_string(), "2");
        assert_eq!(amount(2.0, false).to_string(), "2.0");
        assert_eq!(amount(17.22, true).to_string(), "17.22");
        assert_eq!(amount(0.0, false).to_string(), "0.0");
        // Unix days 0, 20,454 and 19,782.
        assert_eq!(aad_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(aad_timestamp(20_454 * 86_400), "2026-01-01 00:00:00Z");
        assert_eq!(aad_timestamp(19_782 * 86_400), "2024-02-29 00:00:00Z");
        // February has 29 days in 2024 and 28 in 2100.
        let (first, last) = month_of(date!(2024 - 02 - 10));
        assert_eq!(
            (first, last),
            (date!(2024 - 02 - 01), date!(2024 - 02 - 29))
        );
        assert_eq!(start_of_day(first), "2024-02-01T00:00:00Z");
        assert_eq!(end_of_day(last), "2024-02-29T23:59:59.9999999Z");
        assert_eq!(month_of(date!(2100 - 02 - 28)).1, date!(2100 - 02 - 28));
        assert_eq!(
            end_of_day(month_of(date!(2100 - 02 - 01)).1),
            "2100-02-28T23:59:59.9999999Z"
        );
        assert_eq!(
            month_of(date!(2025 - 12 - 31)),
            (date!(2025 - 12 - 01), date!(2025 - 12 - 31))
        );
        assert_eq!(aad_timestamp(1_767_924_132), "2026-01-09 02:02:12Z");
        let at = datetime!(2019-08-01 23:00:16 UTC);
        assert_eq!(date_time_offset(at), "2019-08-01T23:00:16+00:00");
        assert_eq!(
            date_time_offset(at + Duration::milliseconds(570)),
            "2019-08-01T23:00:16.57+00:00"
        );
        assert_eq!(
            date_time_offset(at + Duration::milliseconds(5)),
            "2019-08-01T23:00:16.005+00:00"
        );
    }
}
