//! What the three notifier sinks (`slack`, `pagerduty`, `email`) share: finding the
//! environment's notifier when sending (so a changed URL, key or password applies to what is
//! still queued), posting JSON over the outbox's guarded HTTP agent, and turning an answer into
//! the attempt the writer records, by `outbox::policy`.
//!
//! Must not: log or record a secret: attempts carry the destination as the job shows it (the
//! Slack URL masked, the PagerDuty endpoint, `mailto:` the recipients).

use std::time::Duration;

use rand::Rng;

use super::sink::{not_sent, SinkDeps};
use super::webhook::{SignedRequest, WebhookSender, USER_AGENT};
use crate::model::job::{Attempt, Job, WebhookJob};
use crate::model::{DeliveryStatus, Headers, Timestamp};
use crate::outbox::policy::{self, AttemptResult, Decision, NotifierAnswer};
use crate::settings::EnvSettings;
use crate::write::RecordedAttempt;

/// The environment's settings as they are now, or the failed attempt of a job whose environment
/// is gone.
pub(super) fn settings_of(
    deps: &SinkDeps,
    job: &Job,
    shown: &str,
) -> Result<std::sync::Arc<EnvSettings>, Box<RecordedAttempt>> {
    deps.settings.get(&job.environment).ok_or_else(|| {
        Box::new(not_sent(
            job,
            shown,
            format!("environment `{}` is no longer configured", job.environment),
        ))
    })
}

/// The failed attempt of a notification whose notifier was taken away after it was queued.
pub(super) fn not_set_up(job: &Job, shown: &str, notifier: &str) -> RecordedAttempt {
    not_sent(
        job,
        shown,
        format!(
            "the {notifier} notifier is no longer set up for `{}`; set `notifiers.{notifier}` and retry",
            job.environment
        ),
    )
}

/// POSTs `body` as JSON to `url` (through the guarded agent: the destination policy applies to
/// every address the name resolves to), and reads the answer as an HTTP notifier's. Each of
/// `secrets` (the URL itself when its path is the secret, a routing key) is masked wherever the
/// client's error or the peer's answer repeats it, so the attempt and the log never hold it.
pub(super) fn post_json(
    sender: &WebhookSender,
    url: &str,
    body: String,
    timeout: Duration,
    secrets: &[&str],
) -> (Answered, Headers) {
    let request = SignedRequest {
        url: url.to_owned(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), USER_AGENT.into()),
        ],
        body,
        timestamp: 0,
    };
    let headers = request.headers.iter().cloned().collect();
    let mut sent = sender.send(&request, timeout);
    sent.excerpt = sent.excerpt.map(|e| without(e, secrets));
    if let AttemptResult::NoResponse(error) = &mut sent.result {
        *error = without(std::mem::take(error), secrets);
    }
    let answered = match sent.result {
        AttemptResult::Response {
            status,
            retry_after,
        } => {
            let mut answer = policy::http_notifier_answer(status, retry_after);
            if let (NotifierAnswer::Refused(reason), Some(excerpt)) = (&mut answer, &sent.excerpt) {
                reason.push_str(&format!(" ({})", excerpt.trim()));
            }
            Answered {
                answer,
                status: Some(status),
                error: None,
                excerpt: sent.excerpt,
                duration: sent.duration,
            }
        }
        AttemptResult::NoResponse(error) => Answered {
            answer: NotifierAnswer::Retryable { retry_after: None },
            status: None,
            error: Some(error),
            excerpt: None,
            duration: sent.duration,
        },
    };
    (answered, headers)
}

/// `text` with each of `secrets` masked (longest first, so a URL goes before its own path). A
/// piece under 8 characters (a Slack URL's path of `/x` in a test) is no secret, and masking it
/// would garble the text.
fn without(mut text: String, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| s.len() >= 8).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        if text.contains(secret) {
            text = text.replace(secret, &crate::secrets::mask(secret));
        }
    }
    text
}

/// What one notification attempt came to.
pub(super) struct Answered {
    pub answer: NotifierAnswer,
    /// The HTTP status, or the SMTP reply code.
    pub status: Option<u16>,
    /// Why no answer came.
    pub error: Option<String>,
    pub excerpt: Option<String>,
    pub duration: Duration,
}

/// The attempt the writer records for `answered`, and what the job does next.
pub(super) fn recorded(
    deps: &SinkDeps,
    settings: &EnvSettings,
    job: &Job,
    delivery: &WebhookJob,
    started_at: Timestamp,
    answered: Answered,
    request_headers: Headers,
) -> RecordedAttempt {
    deps.metrics.delivery_attempts.inc();
    let decision = policy::decide_notification(
        &answered.answer,
        job.round_attempts + 1,
        &settings.webhooks.retry_schedule,
        deps.config.max_retry_after.0,
        rand::rng().random_range(-1.0..=1.0),
    );
    let mut error = answered.error;
    let (outcome, retry_at) = match decision {
        Decision::Delivered => (DeliveryStatus::Delivered, None),
        Decision::RetryIn(delay) => (
            DeliveryStatus::Pending,
            Some(Timestamp::now().plus_millis(policy::millis(delay))),
        ),
        Decision::Failed(reason) => {
            error = Some(match error {
                Some(e) => format!("{e}; {reason}"),
                None => reason,
            });
            (DeliveryStatus::Failed, None)
        }
    };
    let number = job.attempts + 1;
    match outcome {
        DeliveryStatus::Delivered => {
            tracing::debug!(delivery_id = %job.id, number, to = %delivery.url, "notification delivered")
        }
        _ => tracing::info!(
            delivery_id = %job.id,
            number,
            to = %delivery.url,
            status = answered.status,
            error = error.as_deref().unwrap_or(""),
            outcome = %outcome,
            "notification attempt not delivered"
        ),
    }
    RecordedAttempt {
        job: job.id,
        attempt: Attempt {
            number,
            started_at,
            url: delivery.url.clone(),
            status: answered.status,
            error,
            response_excerpt: answered.excerpt,
            duration_ms: answered.duration.as_millis() as u64,
            webhook_timestamp: 0,
            outcome,
            retry_at,
            batch_size: None,
            rejected: None,
        },
        request_headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_repeating_a_secret_shows_it_masked() {
        let url = "https://hooks.slack.com/services/T0/B0/SecretPath";
        let text = format!("bad uri: {url} (path /services/T0/B0/SecretPath)");
        let shown = without(text, &[url, "/services/T0/B0/SecretPath"]);
        assert!(!shown.contains("SecretPath"), "{shown}");
        assert!(shown.starts_with("bad uri: http…(masked)"), "{shown}");
        assert_eq!(without("HTTP 400".into(), &[url, ""]), "HTTP 400");
    }
}
