//! Partner Center's timestamps: RFC 3339 as Partner Center writes it (fractions of
//! any length, `Z`, an offset or nothing for UTC, .NET's "none" date), parsed by
//! hand into Unix seconds without any arithmetic that could overflow.

use std::time::{SystemTime, UNIX_EPOCH};

use super::model::BodyError;

/// Parses a Partner Center timestamp into seconds since the Unix epoch. Absent or
/// empty is `None`; so is a date before 1900, which is how .NET's "none"
/// (`DateTime.MinValue`, `0001-01-01T00:00:00`) comes over the wire.
///
/// The form is RFC 3339's, as Partner Center writes it: `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction of any length (`.9999999`, 7 digits, is the usual one), then
/// `Z`, an offset (`+02:00`, `-0800`) or nothing, which means UTC. Offsets are
/// converted to UTC; dates before 1970 give negative seconds.
pub fn parse_timestamp(value: Option<&str>, field: &'static str) -> Result<Option<f64>, BodyError> {
    let Some(text) = value.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    parse_date_time(text).ok_or_else(|| BodyError::Invalid {
        field,
        value: text.chars().take(64).collect(),
    })
}

/// Years before this are a "none" sentinel, not a date anyone was billed on.
const FIRST_REAL_YEAR: i64 = 1900;

/// The date-time grammar of [`parse_timestamp`]: `None` when `text` is not one,
/// `Some(None)` for the "none" sentinel, else the Unix seconds. Every number is
/// read from a fixed, small number of digits, so no arithmetic here can overflow.
fn parse_date_time(text: &str) -> Option<Option<f64>> {
    let b = text.as_bytes();
    let digits = |at: usize, len: usize| -> Option<i64> {
        let field = b.get(at..at.checked_add(len)?)?;
        field.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let punctuated = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')]
        .iter()
        .all(|&(at, c)| b.get(at) == Some(&c));
    if !punctuated || !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, mut second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // A leap second: Unix time has none, so it is the last second of the minute.
    second = second.min(59);

    let mut rest = b.get(19..)?;
    let mut nanos: u32 = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        // Nanoseconds are all an f64 of today's Unix time can carry, and more.
        for (place, d) in fraction.iter().take(len.min(9)).enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - place as u32);
        }
        rest = fraction.get(len..)?;
    }
    let offset = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] | [sign @ (b'+' | b'-'), h1, h2, m1, m2] => {
            let two = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (hours, minutes) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -seconds
            } else {
                seconds
            }
        }
        _ => return None,
    };
    if year < FIRST_REAL_YEAR {
        return Some(None);
    }
    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(Some(seconds as f64 + f64::from(nanos) / 1e9))
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`), for any year of four digits.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Seconds since the Unix epoch, negative before it.
pub fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timestamp(text: &str) -> Result<Option<f64>, BodyError> {
        parse_timestamp(Some(text), "t")
    }

    #[test]
    fn timestamps_in_every_form_partner_center_sends() {
        for (text, want) in [
            ("2015-12-12T00:00:00Z", 1_449_878_400.0),
            // Without a zone, as line items send them: UTC.
            ("2016-01-11T00:00:00", 1_452_470_400.0),
            ("2016-01-11t00:00:00z", 1_452_470_400.0),
            ("2016-01-11 00:00:00", 1_452_470_400.0),
            ("2019-09-01T00:00:00+00:00", 1_567_296_000.0),
            ("2019-09-01T02:00:00+02:00", 1_567_296_000.0),
            ("2019-08-31T16:00:00-08:00", 1_567_296_000.0),
            ("2019-08-31T16:00:00-0800", 1_567_296_000.0),
            ("2019-09-01T05:30:00+05:30", 1_567_296_000.0),
            ("2016-02-26T09:42:54.5130558+00:00", 1_456_479_774.513_055_8),
            ("2016-02-26T09:42:54.5Z", 1_456_479_774.5),
            // A fraction beyond nanoseconds is read to nanoseconds.
            (
                "2016-02-26T09:42:54.123456789123Z",
                1_456_479_774.0 + 0.123_456_789,
            ),
            ("2020-02-29T00:00:00Z", 1_582_934_400.0),
            // A leap second is the last second of its minute.
            ("2016-12-31T23:59:60Z", 1_483_228_799.0),
            (" 2015-12-12T00:00:00Z ", 1_449_878_400.0),
        ] {
            assert_eq!(timestamp(text), Ok(Some(want)), "{text}");
        }
    }

    #[test]
    fn seven_digit_fractions_keep_their_value() {
        let end = timestamp("2019-04-30T23:59:59.9999999Z").unwrap().unwrap();
        assert_eq!(end, 1_556_668_799.0 + 0.999_999_9);
        assert!((end - 1_556_668_799.999_999_9).abs() < 1e-6, "{end}");
    }

    #[test]
    fn dates_before_1970_are_negative() {
        assert_eq!(timestamp("1969-12-31T23:59:59Z"), Ok(Some(-1.0)));
        assert_eq!(timestamp("1969-12-31T23:59:59.5Z"), Ok(Some(-0.5)));
        assert_eq!(timestamp("1950-06-15T12:00:00Z"), Ok(Some(-616_852_800.0)));
        assert_eq!(
            timestamp("1900-01-01T00:00:00Z"),
            Ok(Some(-2_208_988_800.0))
        );
        // An offset can carry a date across 1970 either way.
        assert_eq!(timestamp("1970-01-01T01:00:00+01:00"), Ok(Some(0.0)));
        assert_eq!(timestamp("1969-12-31T23:00:00-01:00"), Ok(Some(0.0)));
    }

    #[test]
    fn the_dotnet_none_date_is_no_value() {
        for text in [
            "0001-01-01T00:00:00",
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00.0000000+00:00",
            "0001-01-01T00:00:00-08:00",
            "1899-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
        ] {
            assert_eq!(timestamp(text), Ok(None), "{text}");
        }
        assert_eq!(timestamp(""), Ok(None));
        assert_eq!(parse_timestamp(None, "t"), Ok(None));
    }

    #[test]
    fn malformed_timestamps_are_invalid() {
        for text in [
            "yesterday",
            "2019-04-30",
            "2019-04-30T23:59",
            "2019-04-30T23:59:5",
            "2019-13-01T00:00:00Z",
            "2019-00-01T00:00:00Z",
            "2019-04-31T00:00:00Z",
            "2019-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2019-04-30T24:00:00Z",
            "2019-04-30T23:60:00Z",
            "2019-04-30T23:59:61Z",
            "2019-04-30T23:59:59.Z",
            "2019-04-30T23:59:59.",
            "2019-04-30T23:59:59ZZ",
            "2019-04-30T23:59:59 Z",
            "2019-04-30T23:59:59+2:00",
            "2019-04-30T23:59:59+24:00",
            "2019-04-30T23:59:59+01:60",
            "2019-04-30T23:59:59+01:00Z",
            "2019-04-30X23:59:59Z",
            "2019/04/30T23:59:59Z",
            "+2019-04-30T23:59:59Z",
            "-019-04-30T23:59:59Z",
            "2019-04-30T23:59:59.99é",
            "２０１９-04-30T23:59:59Z",
        ] {
            assert!(
                matches!(timestamp(text), Err(BodyError::Invalid { field: "t", .. })),
                "{text}: {:?}",
                timestamp(text)
            );
        }
    }
}
