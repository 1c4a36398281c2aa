//! The retry policy of every sink, as pure functions: what a webhook attempt's result means
//! (delivered, retry later, dead-letter), the one schedule (a list of steps for webhooks, a
//! doubling backoff for OTLP exports), the one jitter rule, the one `Retry-After` parser and its
//! cap, and when an export's retry window is over. Each sink classifies its own answers (Standard
//! Webhooks for webhooks, the OTLP/HTTP specification for exports); when to try again is decided
//! here, the same way for both.
//!
//! Must not: do I/O or read a clock; callers pass `now` and the random jitter sample.

use std::time::{Duration, SystemTime};

/// Every scheduled delay varies by up to this fraction either way, so receivers that come back
/// are not hit by every queued attempt at the same instant.
pub const JITTER: f64 = 0.2;

/// The export backoff's first delay (after the first failed attempt of a round), before jitter.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);

/// How a sink spaces the attempts of a round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule<'a> {
    /// One delay per attempt, the first before the first attempt (a webhook environment's
    /// `retry_schedule`); the round gives up when they run out.
    Steps(&'a [Duration]),
    /// [`BACKOFF_FIRST`] after the first failure, doubling up to `longest`
    /// (`outbox.export_max_backoff`); it never runs out: exports give up when their retry window
    /// is over instead ([`export_gives_up`]).
    Backoff { longest: Duration },
}

impl Schedule<'_> {
    /// The delay before the next attempt once `failed` attempts of the round have failed,
    /// before jitter; `None` when the schedule has ended. `failed` 0 counts as 1.
    pub fn step(&self, failed: u32) -> Option<Duration> {
        match self {
            Schedule::Steps(steps) => steps.get(failed as usize).copied(),
            Schedule::Backoff { longest } => {
                let doublings = failed.saturating_sub(1).min(31);
                Some(
                    BACKOFF_FIRST
                        .saturating_mul(1u32 << doublings)
                        .min(*longest),
                )
            }
        }
    }
}

/// When to try again once attempt `failed` (1-based) of a round failed in a retryable way: the
/// schedule's next step moved by the jitter (`jitter_sample` uniform in [-1, 1]), and never
/// sooner than the receiver's `Retry-After`, which is cut to `max_retry_after`
/// (`outbox.max_retry_after`). `None`: the schedule has ended, the round gives up.
pub fn retry_in(
    schedule: Schedule,
    failed: u32,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
    jitter_sample: f64,
) -> Option<Duration> {
    let delay = jittered(schedule.step(failed)?, jitter_sample);
    Some(match retry_after {
        Some(wanted) => delay.max(wanted.min(max_retry_after)),
        None => delay,
    })
}

/// What one webhook attempt got back.
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

/// Decides after webhook attempt `attempts_in_round` (1-based) of a round, given the
/// environment's `retry_schedule`. 2xx delivers; 410 stops at once; anything else retries while
/// the schedule lasts, as [`retry_in`] says.
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
    match retry_in(
        Schedule::Steps(schedule),
        attempts_in_round,
        retry_after,
        max_retry_after,
        jitter_sample,
    ) {
        Some(delay) => Decision::RetryIn(delay),
        None => Decision::Failed(format!(
            "gave up after {attempts_in_round} attempts (the end of the retry schedule)"
        )),
    }
}

/// How a webhook URL's error answers are read. A URL in the Nango format gets Nango's rule, so a
/// receiver written for Nango is not sent again what it refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryMode {
    /// Every answer but 2xx and 410 is retried while the schedule lasts (Standard Webhooks).
    Standard,
    /// As Nango (`shouldRetry` of its webhooks package): a 3xx or 4xx answer is final. 408 and
    /// 429 are the exception, retried as in `Standard`: they say "later", not "no".
    Nango,
}

/// [`decide`] for a URL whose answers are read as `mode` says.
pub fn decide_with(
    mode: RetryMode,
    result: &AttemptResult,
    attempts_in_round: u32,
    schedule: &[Duration],
    max_retry_after: Duration,
    jitter_sample: f64,
) -> Decision {
    if let (RetryMode::Nango, AttemptResult::Response { status, .. }) = (mode, result) {
        if (300..500).contains(status) && !matches!(status, 408 | 410 | 429) {
            return Decision::Failed(format!(
                "{status} is final for a Nango-format URL (Nango does not retry a 3xx or 4xx answer)"
            ));
        }
    }
    decide(
        result,
        attempts_in_round,
        schedule,
        max_retry_after,
        jitter_sample,
    )
}

/// Whether a retryable export failure gives up instead: when the next attempt (`retry_at`) would
/// come more than `retry_for` after the round began. Times are unix ms.
pub fn export_gives_up(round_started_at_ms: i64, retry_at_ms: i64, retry_for: Duration) -> bool {
    retry_at_ms > round_started_at_ms.saturating_add(millis(retry_for))
}

/// `delay` in whole milliseconds, saturating at `i64::MAX`, to add to a unix-ms time.
pub fn millis(delay: Duration) -> i64 {
    i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)
}

/// How long a round of webhook attempts can take at most: every delay at its longest jitter,
/// every attempt at its timeout, plus an hour of slack for `Retry-After` and restarts. The
/// deadline of the operation that logs the round.
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

/// `delay` moved by up to ±[`JITTER`] of itself (`sample` in [-1, 1]; outside is clamped, not a
/// number counts as 0).
pub fn jittered(delay: Duration, sample: f64) -> Duration {
    let sample = if sample.is_finite() {
        sample.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    Duration::try_from_secs_f64(delay.as_secs_f64() * (1.0 + JITTER * sample))
        .unwrap_or(Duration::MAX)
}

/// The wait a `Retry-After` value asks for (RFC 9110 section 10.2.3): delay-seconds (a number
/// too large to hold means "very long", cut later by the cap) or an HTTP-date (a date in the past
/// means now). `None` for anything else (empty, negative, signed, fractional, text), which
/// leaves the schedule alone.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
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
    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    fn now() -> SystemTime {
        httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap()
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        let at = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&at, now), Some(Duration::from_secs(90)));
        // The obsolete date forms HTTP recipients must still read.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:51:37 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:52:37 1994", now),
            Some(Duration::from_secs(180))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a past date means now"
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX)),
            "too large to hold: very long (the cap cuts it)"
        );
        for refused in [
            "",
            "  ",
            "-5",
            "+5",
            "1.5",
            "5s",
            "soon",
            "0x10",
            "Sun, 06 Nov",
        ] {
            assert_eq!(parse_retry_after(refused, now), None, "{refused:?}");
        }
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let d = Duration::from_secs(100);
        assert_eq!(jittered(d, -1.0), Duration::from_secs(80));
        assert_eq!(jittered(d, 0.0), d);
        assert_eq!(jittered(d, 1.0), Duration::from_secs(120));
        assert_eq!(jittered(d, -0.5), Duration::from_secs(90));
        assert_eq!(jittered(d, 7.0), Duration::from_secs(120), "clamped");
        assert_eq!(jittered(d, -7.0), Duration::from_secs(80), "clamped");
        assert_eq!(jittered(d, f64::NAN), d, "not a number counts as 0");
        assert_eq!(jittered(d, f64::INFINITY), d);
        assert_eq!(jittered(Duration::ZERO, 1.0), Duration::ZERO);
        assert_eq!(jittered(Duration::MAX, 1.0), Duration::MAX, "saturates");
        for i in 0..=200 {
            let sample = -1.0 + f64::from(i) / 100.0;
            for d in [Duration::from_millis(1), Duration::from_secs(5), 10 * HOUR] {
                let got = jittered(d, sample);
                assert!(
                    got >= d.mul_f64(0.8) && got <= d.mul_f64(1.2),
                    "{d:?} {sample}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn steps_are_taken_in_order_then_run_out() {
        let steps = secs(&[0, 5, 60]);
        let schedule = Schedule::Steps(&steps);
        assert_eq!(schedule.step(0), Some(Duration::ZERO));
        assert_eq!(schedule.step(1), Some(Duration::from_secs(5)));
        assert_eq!(schedule.step(2), Some(Duration::from_secs(60)));
        assert_eq!(schedule.step(3), None);
        assert_eq!(schedule.step(u32::MAX), None);
        assert_eq!(
            retry_in(schedule, 2, None, HOUR, 1.0),
            Some(Duration::from_secs(72))
        );
        assert_eq!(retry_in(schedule, 3, None, HOUR, 0.0), None);
        assert_eq!(
            retry_in(schedule, 3, Some(Duration::from_secs(1)), HOUR, 0.0),
            None,
            "Retry-After does not extend a schedule that has ended"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_longest_and_never_runs_out() {
        let schedule = Schedule::Backoff {
            longest: FIVE_MINUTES,
        };
        let nominal: Vec<u64> = (1..=11)
            .map(|n| schedule.step(n).unwrap().as_secs())
            .collect();
        assert_eq!(nominal, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(schedule.step(0), Some(BACKOFF_FIRST), "0 counts as 1");
        assert_eq!(schedule.step(u32::MAX), Some(FIVE_MINUTES));
        let short = Schedule::Backoff {
            longest: Duration::from_millis(1500),
        };
        assert_eq!(short.step(5), Some(Duration::from_millis(1500)));
        for failed in 1..=300 {
            let floor = retry_in(schedule, failed, None, HOUR, -1.0).unwrap();
            let ceiling = retry_in(schedule, failed, None, HOUR, 1.0).unwrap();
            let middle = schedule.step(failed).unwrap();
            assert_eq!(floor, middle.mul_f64(0.8), "{failed}");
            assert_eq!(ceiling, middle.mul_f64(1.2), "{failed}");
            assert!(floor >= BACKOFF_FIRST.mul_f64(0.8) && ceiling <= FIVE_MINUTES.mul_f64(1.2));
        }
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap_but_never_shortens_the_schedule() {
        for schedule in [
            Schedule::Steps(&secs(&[0, 5, 60])),
            Schedule::Backoff {
                longest: Duration::from_secs(5),
            },
        ] {
            // The nominal delay is 5 s either way: the second step, or the backoff's 8 s cut to
            // its longest.
            let failed = match schedule {
                Schedule::Steps(_) => 1,
                Schedule::Backoff { .. } => 4,
            };
            let with = |seconds: u64| Some(Duration::from_secs(seconds));
            assert_eq!(
                retry_in(schedule, failed, with(30), HOUR, 0.0),
                with(30),
                "{schedule:?}: later than the schedule: wait as asked"
            );
            assert_eq!(
                retry_in(schedule, failed, with(1), HOUR, 0.0),
                with(5),
                "{schedule:?}: sooner than the schedule: the schedule wins"
            );
            assert_eq!(
                retry_in(schedule, failed, with(0), HOUR, 1.0),
                with(6),
                "{schedule:?}: the jittered schedule wins"
            );
            assert_eq!(
                retry_in(schedule, failed, with(86_400), HOUR, 0.0),
                Some(HOUR),
                "{schedule:?}: capped by max_retry_after"
            );
            assert_eq!(
                retry_in(schedule, failed, Some(Duration::MAX), HOUR, 0.0),
                Some(HOUR),
                "{schedule:?}"
            );
        }
    }

    #[test]
    fn webhooks_deliver_on_2xx_and_stop_on_410() {
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
    fn webhook_errors_follow_the_schedule_then_dead_letter() {
        let schedule = secs(&[0, 5, 60]);
        for result in [
            status(500),
            status(408),
            status(301),
            status(404),
            status(429),
            AttemptResult::NoResponse("connection refused".into()),
        ] {
            assert_eq!(
                decide(&result, 1, &schedule, HOUR, 0.0),
                Decision::RetryIn(Duration::from_secs(5))
            );
            assert_eq!(
                decide(&result, 2, &schedule, HOUR, -0.5),
                Decision::RetryIn(Duration::from_secs(54))
            );
            assert!(matches!(
                decide(&result, 3, &schedule, HOUR, 0.0),
                Decision::Failed(reason) if reason.contains("3 attempts")
            ));
        }
        let asked = AttemptResult::Response {
            status: 503,
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            decide(&asked, 1, &schedule, HOUR, 0.0),
            Decision::RetryIn(Duration::from_secs(30))
        );
        assert!(matches!(
            decide(&asked, 3, &schedule, HOUR, 0.0),
            Decision::Failed(_)
        ));
    }

    #[test]
    fn nango_urls_take_no_retry_on_3xx_and_4xx_but_on_408_429_5xx_and_no_answer() {
        let schedule = secs(&[0, 5, 300]);
        let nango =
            |result: &AttemptResult| decide_with(RetryMode::Nango, result, 1, &schedule, HOUR, 0.0);
        for s in [301, 302, 400, 401, 403, 404, 422, 499] {
            match nango(&status(s)) {
                Decision::Failed(why) => assert!(why.starts_with(&s.to_string()), "{why}"),
                other => panic!("{s}: {other:?}"),
            }
            assert_eq!(
                decide_with(RetryMode::Standard, &status(s), 1, &schedule, HOUR, 0.0),
                Decision::RetryIn(Duration::from_secs(5)),
                "{s} is retried for other URLs"
            );
        }
        for s in [408, 429, 500, 503] {
            assert_eq!(
                nango(&status(s)),
                Decision::RetryIn(Duration::from_secs(5)),
                "{s}"
            );
        }
        assert_eq!(
            nango(&AttemptResult::NoResponse("connection refused".into())),
            Decision::RetryIn(Duration::from_secs(5))
        );
        assert_eq!(nango(&status(204)), Decision::Delivered);
        assert!(
            matches!(nango(&status(410)), Decision::Failed(why) if why.starts_with("410 Gone"))
        );
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
        // A round of backoff retries, each one's wait added, ends with the window.
        let schedule = Schedule::Backoff {
            longest: FIVE_MINUTES,
        };
        let window = Duration::from_secs(600);
        let mut at = start;
        let mut failed = 0;
        while !export_gives_up(start, at, window) {
            failed += 1;
            at += millis(retry_in(schedule, failed, None, HOUR, 0.0).unwrap());
            assert!(failed < 100, "bounded");
        }
        // 1+2+...+256 = 511 s, +300 s passes 600 s: the tenth retry would be too late.
        assert_eq!(failed, 10);
    }

    #[test]
    fn millis_saturate() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }
}
