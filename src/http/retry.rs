//! Retry policy shared by the Azure AD and Partner Center clients: exponential
//! backoff with full jitter and `Retry-After` parsing.
//!
//! [`Backoff`] is the delay sequence handed to `backon`: attempt *n* waits a uniform
//! random time in `[0, min(cap, base·2ⁿ)]` ("full jitter"), for at most `max_retries`
//! retries and at most `max_total` of planned waiting. A server's `Retry-After` is the
//! floor of the next wait (applied with backon's `adjust`), capped by
//! [`MAX_RETRY_AFTER`]: a server asking for longer than that makes the call give up.
//!
//! `max_total` bounds what one call really waits, `Retry-After` floors included: a
//! [`RetryBudget`] per call keeps the sum of the waits actually taken, and a wait that
//! would take it past `max_total` makes the call give up instead (a server repeating
//! `Retry-After: 50` gets two retries under the standard 2 minutes, not four).

use std::time::{Duration, SystemTime};

/// The longest `Retry-After` the exporter honours; longer and the call gives up (the
/// customer keeps its last values and the next poll tries again).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Exponential backoff with full jitter; an iterator of waits, usable by backon.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    max_retries: usize,
    max_total: Duration,
    attempt: usize,
    planned: Duration,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration, max_retries: usize, max_total: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            max_retries,
            max_total,
            attempt: 0,
            planned: Duration::ZERO,
        }
    }

    /// The production policy: 4 retries, 1 s base, 30 s cap, 2 min of waiting in all.
    pub fn standard() -> Backoff {
        Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            4,
            Duration::from_secs(120),
        )
    }

    /// The most one call may wait in all, backoff and `Retry-After` together.
    pub fn max_total(&self) -> Duration {
        self.max_total
    }

    /// The upper bound of the wait before retry `attempt` (0-based).
    pub fn ceiling(&self, attempt: usize) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31) as u32).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.attempt >= self.max_retries {
            return None;
        }
        let ceiling = self.ceiling(self.attempt);
        let wait = ceiling.mul_f64(fastrand::f64());
        if self.planned + wait > self.max_total {
            return None;
        }
        self.attempt += 1;
        self.planned += wait;
        Some(wait)
    }
}

/// A parsed `Retry-After` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Parses delta-seconds (`57`) or an HTTP-date (`Fri, 31 Dec 1999 23:59:59 GMT`),
    /// relative to `now`. A date in the past is a zero wait. Anything else is `None`.
    pub fn parse(value: &str, now: SystemTime) -> Option<RetryAfter> {
        let value = value.trim();
        if let Ok(secs) = value.parse::<u64>() {
            return Some(RetryAfter(Duration::from_secs(secs)));
        }
        let at = httpdate::parse_http_date(value).ok()?;
        Some(RetryAfter(at.duration_since(now).unwrap_or(Duration::ZERO)))
    }

    pub fn from_headers(headers: &http::HeaderMap) -> Option<RetryAfter> {
        let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
        RetryAfter::parse(value, SystemTime::now())
    }
}

/// The wait before the next try: the backoff's, raised to `Retry-After`; `None` (give
/// up) when the backoff is exhausted or the server asks for more than
/// [`MAX_RETRY_AFTER`].
pub fn next_wait(
    backoff_wait: Option<Duration>,
    retry_after: Option<RetryAfter>,
) -> Option<Duration> {
    let wait = backoff_wait?;
    match retry_after {
        Some(RetryAfter(floor)) if floor > MAX_RETRY_AFTER => None,
        Some(RetryAfter(floor)) => Some(wait.max(floor)),
        None => Some(wait),
    }
}

/// The waiting left to one call: every wait it takes, whether the backoff's or a
/// server's `Retry-After`, is taken from it, and a wait it cannot pay ends the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudget {
    left: Duration,
}

impl RetryBudget {
    /// A budget of `total` waiting.
    pub fn new(total: Duration) -> RetryBudget {
        RetryBudget { left: total }
    }

    /// The budget of one call retried with `backoff`: its `max_total`.
    pub fn of(backoff: &Backoff) -> RetryBudget {
        RetryBudget::new(backoff.max_total())
    }

    /// The wait before the next try, as [`next_wait`] decides it, taken from the
    /// budget; `None` (give up) when [`next_wait`] gives up or the wait would exceed
    /// what is left.
    pub fn next_wait(
        &mut self,
        backoff_wait: Option<Duration>,
        retry_after: Option<RetryAfter>,
    ) -> Option<Duration> {
        let wait = next_wait(backoff_wait, retry_after)?;
        self.left = self.left.checked_sub(wait)?;
        Some(wait)
    }

    /// The waiting still allowed.
    pub fn left(&self) -> Duration {
        self.left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(
            RetryAfter::parse("57", now),
            Some(RetryAfter(Duration::from_secs(57)))
        );
        assert_eq!(
            RetryAfter::parse(" 0 ", now),
            Some(RetryAfter(Duration::ZERO))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            RetryAfter::parse(&later, now),
            Some(RetryAfter(Duration::from_secs(30)))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(
            RetryAfter::parse(&earlier, now),
            Some(RetryAfter(Duration::ZERO))
        );
        assert_eq!(RetryAfter::parse("-1", now), None);
        assert_eq!(RetryAfter::parse("soon", now), None);
    }

    #[test]
    fn retry_after_is_a_floor_and_a_limit() {
        let s = Duration::from_secs;
        assert_eq!(next_wait(Some(s(1)), Some(RetryAfter(s(10)))), Some(s(10)));
        assert_eq!(next_wait(Some(s(20)), Some(RetryAfter(s(10)))), Some(s(20)));
        assert_eq!(next_wait(Some(s(1)), Some(RetryAfter(s(3600)))), None);
        assert_eq!(next_wait(None, Some(RetryAfter(s(1)))), None);
    }

    #[test]
    fn retry_after_floors_count_against_the_total() {
        let s = Duration::from_secs;
        // The standard 2 minutes: a server repeating `Retry-After: 50` gets two waits.
        let mut budget = RetryBudget::of(&Backoff::standard());
        let mut backoff = Backoff::standard();
        let mut waits = Vec::new();
        while let Some(wait) = budget.next_wait(backoff.next(), Some(RetryAfter(s(50)))) {
            waits.push(wait);
        }
        assert_eq!(waits, vec![s(50), s(50)]);
        assert_eq!(budget.left(), s(20));
        // 3 s of budget and `Retry-After: 2`: one retry, then the call gives up.
        let mut budget = RetryBudget::new(s(3));
        assert_eq!(
            budget.next_wait(Some(Duration::from_millis(10)), Some(RetryAfter(s(2)))),
            Some(s(2))
        );
        assert_eq!(
            budget.next_wait(Some(Duration::from_millis(10)), Some(RetryAfter(s(2)))),
            None
        );
        // Backoff waits are paid from it too, and an exact fit is allowed.
        let mut budget = RetryBudget::new(s(1));
        assert_eq!(budget.next_wait(Some(s(1)), None), Some(s(1)));
        assert_eq!(
            budget.next_wait(Some(Duration::ZERO), None),
            Some(Duration::ZERO)
        );
        assert_eq!(budget.next_wait(Some(Duration::from_millis(1)), None), None);
        // An exhausted backoff still ends the call.
        assert_eq!(RetryBudget::new(s(60)).next_wait(None, None), None);
    }

    proptest! {
        #[test]
        fn a_call_never_waits_beyond_its_budget(
            total_ms in 0u64..300_000,
            retry_afters in proptest::collection::vec(proptest::option::of(0u64..200), 0..12),
        ) {
            let backoff = Backoff::new(
                Duration::from_millis(100),
                Duration::from_secs(30),
                retry_afters.len(),
                Duration::from_millis(total_ms),
            );
            let mut budget = RetryBudget::of(&backoff);
            let mut backoff = backoff;
            let mut waited = Duration::ZERO;
            for retry_after in retry_afters {
                let floor = retry_after.map(|s| RetryAfter(Duration::from_secs(s)));
                match budget.next_wait(backoff.next(), floor) {
                    Some(wait) => waited += wait,
                    None => break,
                }
            }
            prop_assert!(waited <= Duration::from_millis(total_ms));
        }

        #[test]
        fn retry_after_never_panics(value in ".{0,64}", secs in 0u64..4_000_000_000) {
            let _ = RetryAfter::parse(&value, SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        }

        #[test]
        fn retry_after_seconds_round_trip(n in 0u64..10_000_000) {
            prop_assert_eq!(RetryAfter::parse(&n.to_string(), SystemTime::now()), Some(RetryAfter(Duration::from_secs(n))));
        }

        #[test]
        fn backoff_stays_within_bounds(
            base_ms in 1u64..5_000,
            cap_ms in 1u64..60_000,
            retries in 0usize..12,
            total_ms in 0u64..600_000,
        ) {
            let b = Backoff::new(
                Duration::from_millis(base_ms),
                Duration::from_millis(cap_ms),
                retries,
                Duration::from_millis(total_ms),
            );
            let reference = b.clone();
            let waits: Vec<Duration> = b.collect();
            prop_assert!(waits.len() <= retries);
            let mut sum = Duration::ZERO;
            for (i, w) in waits.iter().enumerate() {
                prop_assert!(*w <= reference.ceiling(i));
                prop_assert!(*w <= Duration::from_millis(cap_ms));
                sum += *w;
            }
            prop_assert!(sum <= Duration::from_millis(total_ms));
        }
    }
}
