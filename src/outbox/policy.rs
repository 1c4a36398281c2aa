//! Retry policy as pure functions, shared by every sink: what an attempt's result means
//! (delivered, retry later, dead-letter), the jittered schedule, and `Retry-After`.
//!
//! Must not: do I/O or read a clock; callers pass `now` and the random jitter sample.

use std::time::{Duration, SystemTime};

/// The schedule's delays vary by up to this fraction either way, so receivers that come back
/// are not hit by every queued delivery at the same instant.
pub const JITTER: f64 = 0.2;

/// What one attempt got back.
#[derive(Clone, Debug, PartialEq)]
pub enum AttemptResult {
    /// A response with this status (and its `Retry-After`, parsed).
    Response {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No response: connection refused, timeout, TLS failure, ...
    NoResponse(String),
}

/// What happens next.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    Delivered,
    RetryIn(Duration),
    /// Dead-letter: no more automatic attempts.
    Failed(String),
}

/// Decides after attempt `attempts_in_round` (1-based) of a round, given the schedule (one delay
/// per attempt; the first is the delay before the first attempt). `jitter_sample` is uniform in
/// [-1, 1]. 2xx delivers; 410 stops at once; anything else retries while the schedule lasts, no
/// sooner than a `Retry-After` (capped at `max_retry_after`).
pub fn decide(
    result: &AttemptResult,
    attempts_in_round: u32,
    schedule: &[Duration],
    max_retry_after: Duration,
    jitter_sample: f64,
) -> Decision {
    let retry_after = match result {
        AttemptResult::Response { status, .. } if (200..300).contains(status) => {
            return Decision::Delivered
        }
        AttemptResult::Response { status: 410, .. } => {
            return Decision::Failed(
                "410 Gone: the receiver asked not to be sent this again".into(),
            )
        }
        AttemptResult::Response { retry_after, .. } => *retry_after,
        AttemptResult::NoResponse(_) => None,
    };
    let Some(step) = schedule.get(attempts_in_round as usize) else {
        return Decision::Failed(format!(
            "gave up after {attempts_in_round} attempts (the end of the retry schedule)"
        ));
    };
    let mut delay = jittered(*step, jitter_sample);
    if let Some(wanted) = retry_after {
        delay = delay.max(wanted.min(max_retry_after));
    }
    Decision::RetryIn(delay)
}

/// Whether a retryable export failure gives up instead: when the next attempt (`retry_at`) would
/// come more than `retry_for` after the round began. Times are unix ms.
pub fn export_gives_up(round_started_at_ms: i64, retry_at_ms: i64, retry_for: Duration) -> bool {
    let deadline =
        round_started_at_ms.saturating_add(retry_for.as_millis().min(i64::MAX as u128) as i64);
    retry_at_ms > deadline
}

/// How long a round of attempts can take at most: every delay at its longest jitter, every
/// attempt at its timeout, plus an hour of slack for `Retry-After` and restarts. The deadline
/// of the operation that logs the round.
pub fn worst_case_span(
    schedule: &[Duration],
    timeout: Duration,
    max_retry_after: Duration,
) -> Duration {
    let waits: Duration = schedule
        .iter()
        .map(|d| jittered(*d, 1.0).max(d.min(&max_retry_after).to_owned()))
        .sum();
    waits + timeout * schedule.len() as u32 + Duration::from_secs(3600)
}

/// `delay` moved by up to ±20% (`sample` in [-1, 1]).
pub fn jittered(delay: Duration, sample: f64) -> Duration {
    let factor = 1.0 + JITTER * sample.clamp(-1.0, 1.0);
    Duration::from_secs_f64(delay.as_secs_f64() * factor)
}

/// The wait a `Retry-After` value asks for: delay-seconds or an HTTP date (past dates are 0).
/// Anything else is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &[u64]) -> Vec<Duration> {
        s.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    fn status(status: u16) -> AttemptResult {
        AttemptResult::Response {
            status,
            retry_after: None,
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn success_delivers_and_gone_stops() {
        let schedule = secs(&[0, 5, 60]);
        for s in [200, 201, 204, 299] {
            assert_eq!(
                decide(&status(s), 1, &schedule, HOUR, 0.0),
                Decision::Delivered
            );
        }
        assert!(matches!(
            decide(&status(410), 1, &schedule, HOUR, 0.0),
            Decision::Failed(reason) if reason.contains("410")
        ));
    }

    #[test]
    fn errors_follow_the_schedule_then_dead_letter() {
        let schedule = secs(&[0, 5, 60]);
        for result in [
            status(500),
            status(408),
            status(301),
            status(404),
            AttemptResult::NoResponse("connection refused".into()),
        ] {
            assert_eq!(
                decide(&result, 1, &schedule, HOUR, 0.0),
                Decision::RetryIn(Duration::from_secs(5))
            );
            assert_eq!(
                decide(&result, 2, &schedule, HOUR, 0.0),
                Decision::RetryIn(Duration::from_secs(60))
            );
            assert!(matches!(
                decide(&result, 3, &schedule, HOUR, 0.0),
                Decision::Failed(reason) if reason.contains("3 attempts")
            ));
        }
    }

    #[test]
    fn exports_give_up_once_the_next_attempt_would_pass_the_retry_window() {
        let day = Duration::from_secs(86_400);
        let start = 1_700_000_000_000;
        assert!(!export_gives_up(start, start + 1_000, day));
        assert!(
            !export_gives_up(start, start + 86_400_000, day),
            "the edge still retries"
        );
        assert!(export_gives_up(start, start + 86_400_001, day));
        assert!(export_gives_up(start, start + 5, Duration::ZERO));
        assert!(!export_gives_up(start, i64::MAX, Duration::MAX));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let d = Duration::from_secs(100);
        assert_eq!(jittered(d, -1.0), Duration::from_secs(80));
        assert_eq!(jittered(d, 1.0), Duration::from_secs(120));
        assert_eq!(jittered(d, 7.0), Duration::from_secs(120), "clamped");
        assert_eq!(jittered(Duration::ZERO, 1.0), Duration::ZERO);
        let schedule = secs(&[0, 100]);
        match decide(&status(503), 1, &schedule, HOUR, -0.5) {
            Decision::RetryIn(d) => assert_eq!(d, Duration::from_secs(90)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let schedule = secs(&[0, 5, 60]);
        let with = |seconds: u64| AttemptResult::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(seconds)),
        };
        assert_eq!(
            decide(&with(30), 1, &schedule, HOUR, 0.0),
            Decision::RetryIn(Duration::from_secs(30)),
            "later than the schedule: wait as asked"
        );
        assert_eq!(
            decide(&with(1), 1, &schedule, HOUR, 0.0),
            Decision::RetryIn(Duration::from_secs(5)),
            "sooner than the schedule: the schedule wins"
        );
        assert_eq!(
            decide(&with(86_400), 1, &schedule, HOUR, 0.0),
            Decision::RetryIn(HOUR),
            "capped"
        );
        assert!(matches!(
            decide(&with(1), 3, &schedule, HOUR, 0.0),
            Decision::Failed(_)
        ));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
