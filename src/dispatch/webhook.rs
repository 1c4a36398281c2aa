//! The webhook sink ([`WebhookSink`]): one delivery per request, signed (Standard Webhooks
//! `webhook-signature` and the Nango-style `X-Nango-Signature`/`X-Nango-Hmac-Sha256`) and POSTed
//! with ureq, without following redirects, within the environment's `webhooks.timeout`, keeping at
//! most 4 KB of the response; the environment's retry schedule decides what follows.
//!
//! Must not: run on the async runtime (ureq blocks; the dispatcher's sender threads call it), or
//! sign anything but the exact bytes sent.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use super::sink::{Sink, SinkDeps};
use crate::destination::{guarded_agent, DestinationPolicy};
use crate::model::job::{Attempt, Job, JobKind, WebhookJob};
use crate::model::{DeliveryStatus, EventType, Headers, Timestamp};
use crate::outbox::policy::{self, parse_retry_after, AttemptResult, Decision};
use crate::settings::SECRET_PREFIX;
use crate::write::RecordedAttempt;

type HmacSha256 = Hmac<Sha256>;

/// The most of a response body kept with an attempt.
pub const EXCERPT_BYTES: usize = 4096;

pub const USER_AGENT: &str = concat!("opslog/", env!("CARGO_PKG_VERSION"));

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, the key being the base64-decoded
/// part of a `whsec_` secret, or the bytes of any other secret (an existing Nango signing key:
/// Standard Webhooks libraries verify it as `whsec_` + base64 of those bytes). `None` for a
/// `whsec_` secret that does not decode.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?,
        None => secret.as_bytes().to_vec(),
    };
    let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one `v1,` signature per active secret, space-separated.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|s| standard_signature(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Lowercase hex HMAC-SHA256 of the raw body, keyed with the whole secret string (the form
/// `X-Nango-Signature` receivers verify).
pub fn nango_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `X-Nango-Signature` as Nango computes it: lowercase hex SHA-256 of the secret followed by the
/// body (what its SDK's legacy `verifyWebhookSignature` checks). Sent only in the Nango format;
/// receivers should prefer the HMAC in `X-Nango-Hmac-Sha256`.
pub fn nango_legacy_signature(secret: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let mut hash = Sha256::new();
    hash.update(secret.as_bytes());
    hash.update(body);
    hex::encode(hash.finalize())
}

/// The request of one attempt, fully determined before it is sent.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub timestamp: i64,
}

/// Signs `body` for `webhook_id` at `timestamp` with every active secret (newest first).
pub fn sign(
    url: &str,
    webhook_id: &str,
    body: &str,
    secrets: &[&str],
    timestamp: i64,
) -> SignedRequest {
    let newest = secrets.first().copied().unwrap_or_default();
    let nango = nango_signature(newest, body.as_bytes());
    let mut request = standard_request(url, webhook_id, body, secrets, timestamp);
    request
        .headers
        .push(("x-nango-signature".into(), nango.clone()));
    request.headers.push(("x-nango-hmac-sha256".into(), nango));
    request
}

/// Signs a Nango-format `body` as Nango does (`X-Nango-Signature`: SHA-256 of secret + body;
/// `X-Nango-Hmac-Sha256`: HMAC-SHA256 keyed with the secret; both with the newest secret), plus
/// the Standard Webhooks headers and the `forwarded` headers of the third party.
pub fn sign_nango(
    url: &str,
    webhook_id: &str,
    body: &str,
    secrets: &[&str],
    timestamp: i64,
    forwarded: &[(String, String)],
) -> SignedRequest {
    let newest = secrets.first().copied().unwrap_or_default();
    let mut request = standard_request(url, webhook_id, body, secrets, timestamp);
    request.headers.extend(forwarded.iter().cloned());
    request.headers.push((
        "x-nango-signature".into(),
        nango_legacy_signature(newest, body.as_bytes()),
    ));
    request.headers.push((
        "x-nango-hmac-sha256".into(),
        nango_signature(newest, body.as_bytes()),
    ));
    request
}

/// The content type, user agent and Standard Webhooks headers every delivery carries.
fn standard_request(
    url: &str,
    webhook_id: &str,
    body: &str,
    secrets: &[&str],
    timestamp: i64,
) -> SignedRequest {
    SignedRequest {
        url: url.to_owned(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), USER_AGENT.into()),
            ("webhook-id".into(), webhook_id.to_owned()),
            ("webhook-timestamp".into(), timestamp.to_string()),
            (
                "webhook-signature".into(),
                signature_header(secrets, webhook_id, timestamp, body.as_bytes()),
            ),
        ],
        body: body.to_owned(),
        timestamp,
    }
}

/// What came back from one attempt.
#[derive(Debug, Clone)]
pub struct Sent {
    pub result: AttemptResult,
    pub excerpt: Option<String>,
    pub duration: Duration,
}

/// Sends webhook requests. One per dispatcher; cheap to share between sender threads.
#[derive(Clone)]
pub struct WebhookSender {
    agent: ureq::Agent,
}

impl WebhookSender {
    /// A sender that connects only where `destinations` allows, checked on every address DNS
    /// answers.
    pub fn new(destinations: DestinationPolicy) -> WebhookSender {
        WebhookSender {
            agent: guarded_agent(destinations, USER_AGENT),
        }
    }

    /// POSTs `request`, giving up after `timeout` (connect, send and read together).
    pub fn send(&self, request: &SignedRequest, timeout: Duration) -> Sent {
        let started = Instant::now();
        let mut builder = self.agent.post(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value);
        }
        let response = builder
            .config()
            .timeout_global(Some(timeout))
            .build()
            .send(request.body.as_bytes());
        let mut response = match response {
            Ok(r) => r,
            Err(e) => {
                return Sent {
                    result: AttemptResult::NoResponse(describe(&e, timeout)),
                    excerpt: None,
                    duration: started.elapsed(),
                }
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut bytes = Vec::new();
        // A body that fails or stalls mid-read still leaves the status: the excerpt is best effort.
        let _ = response
            .body_mut()
            .as_reader()
            .take(EXCERPT_BYTES as u64)
            .read_to_end(&mut bytes);
        Sent {
            result: AttemptResult::Response {
                status,
                retry_after,
            },
            excerpt: (!bytes.is_empty()).then(|| excerpt(&bytes)),
            duration: started.elapsed(),
        }
    }
}

/// Sends webhook deliveries, in opslog's envelope (`JobKind::Webhook`) or Nango's
/// (`JobKind::NangoWebhook`).
pub struct WebhookSink {
    deps: SinkDeps,
    sender: WebhookSender,
}

impl WebhookSink {
    pub fn new(deps: &SinkDeps) -> WebhookSink {
        WebhookSink {
            sender: WebhookSender::new(deps.settings.destinations().clone()),
            deps: deps.clone(),
        }
    }

    /// `traceparent` (and `tracestate`) of the span of the operation a delivery is about, so the
    /// receiver's handling joins its trace; none for an alert, or when the operation is gone.
    fn trace_headers(&self, webhook: &WebhookJob) -> Vec<(String, String)> {
        if matches!(
            webhook.event,
            EventType::AlertTriggered | EventType::AlertResolved
        ) {
            return Vec::new();
        }
        let operation = match self
            .deps
            .store
            .read()
            .and_then(|read| read.operation(webhook.operation_id))
        {
            Ok(Some(operation)) => operation,
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!(operation_id = %webhook.operation_id, error = %e, "cannot read a delivery's operation for its traceparent");
                return Vec::new();
            }
        };
        let mut headers = vec![(
            "traceparent".to_owned(),
            crate::otel::operation_traceparent(&operation),
        )];
        if let Some(state) = operation.trace_context.and_then(|ctx| ctx.tracestate) {
            headers.push(("tracestate".to_owned(), state));
        }
        headers
    }

    /// Signs and sends one attempt of a webhook delivery. `nango`: the delivery is in the Nango
    /// format, with these forwarded headers.
    fn attempt_delivery(
        &self,
        job: &Job,
        webhook: &WebhookJob,
        nango: Option<&[(String, String)]>,
    ) -> RecordedAttempt {
        let deps = &self.deps;
        let started_at = Timestamp::now();
        let number = job.attempts + 1;
        let Some(settings) = deps.settings.get(&job.environment) else {
            let attempt = Attempt {
                number,
                started_at,
                url: webhook.url.clone(),
                status: None,
                error: Some(format!(
                    "environment `{}` is no longer configured",
                    job.environment
                )),
                response_excerpt: None,
                duration_ms: 0,
                webhook_timestamp: started_at.millis() / 1000,
                outcome: DeliveryStatus::Failed,
                retry_at: None,
                batch_size: None,
                rejected: None,
            };
            return RecordedAttempt {
                job: job.id,
                attempt,
                request_headers: Headers::new(),
            };
        };
        let timestamp = started_at.millis().div_euclid(1000);
        let secrets = settings.webhooks.signing_secrets(started_at);
        let mut request = match nango {
            None => sign(
                &webhook.url,
                &job.webhook_id(),
                &webhook.body,
                &secrets,
                timestamp,
            ),
            Some(forwarded) => sign_nango(
                &webhook.url,
                &job.webhook_id(),
                &webhook.body,
                &secrets,
                timestamp,
                forwarded,
            ),
        };
        request.headers.extend(self.trace_headers(webhook));
        let sent = self.sender.send(&request, settings.webhooks.timeout);
        deps.metrics.delivery_attempts.inc();
        // A Nango-format URL reads answers as Nango does: no retry on a 3xx or 4xx.
        let mode = match nango {
            None => policy::RetryMode::Standard,
            Some(_) => policy::RetryMode::Nango,
        };
        let decision = policy::decide_with(
            mode,
            &sent.result,
            job.round_attempts + 1,
            &settings.webhooks.retry_schedule,
            deps.config.max_retry_after.0,
            rand::rng().random_range(-1.0..=1.0),
        );
        let (status, mut error) = match &sent.result {
            AttemptResult::Response { status, .. } => (Some(*status), None),
            AttemptResult::NoResponse(e) => (None, Some(e.clone())),
        };
        let (outcome, retry_at) = match decision {
            Decision::Delivered => (DeliveryStatus::Delivered, None),
            Decision::RetryIn(delay) => (
                DeliveryStatus::Pending,
                Some(Timestamp::now().plus_millis(policy::millis(delay))),
            ),
            Decision::Failed(reason) => {
                // The last answer leads, so an operation failed by this delivery says what it was.
                error = Some(match (error, status) {
                    (Some(e), _) => format!("{e}; {reason}"),
                    (None, Some(status)) if !reason.starts_with(&status.to_string()) => {
                        format!("HTTP {status}; {reason}")
                    }
                    (None, _) => reason,
                });
                (DeliveryStatus::Failed, None)
            }
        };
        match outcome {
            DeliveryStatus::Delivered => {
                tracing::debug!(delivery_id = %job.id, number, "webhook delivered")
            }
            _ => tracing::info!(
                delivery_id = %job.id,
                number,
                status,
                error = error.as_deref().unwrap_or(""),
                outcome = %outcome,
                "webhook attempt not delivered"
            ),
        }
        let attempt = Attempt {
            number,
            started_at,
            url: webhook.url.clone(),
            status,
            error,
            response_excerpt: sent.excerpt,
            duration_ms: sent.duration.as_millis() as u64,
            webhook_timestamp: timestamp,
            outcome,
            retry_at,
            batch_size: None,
            rejected: None,
        };
        // The delivery's log shows the request as sent, less what would let a reader forge one.
        let request_headers: Headers = request
            .headers
            .iter()
            .filter(|(name, _)| !name.contains("signature") && !name.contains("hmac"))
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        RecordedAttempt {
            job: job.id,
            attempt,
            request_headers,
        }
    }
}

impl Sink for WebhookSink {
    fn sends(&self, kind: &JobKind) -> bool {
        matches!(kind, JobKind::Webhook(_) | JobKind::NangoWebhook(_))
    }

    fn attempt(&self, jobs: &[Job]) -> Vec<RecordedAttempt> {
        jobs.iter()
            .map(|job| match &job.kind {
                JobKind::Webhook(webhook) => self.attempt_delivery(job, webhook, None),
                JobKind::NangoWebhook(nango) => {
                    self.attempt_delivery(job, &nango.delivery, Some(&nango.forwarded_headers))
                }
                other => super::sink::not_sent(
                    job,
                    other.destination(),
                    "not a webhook delivery".to_owned(),
                ),
            })
            .collect()
    }
}

/// At most `EXCERPT_BYTES` of a body as text, cut on a character boundary.
pub fn excerpt(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

fn describe(error: &ureq::Error, timeout: Duration) -> String {
    match error {
        ureq::Error::Timeout(_) => format!(
            "timed out after {} (webhooks.timeout)",
            humantime::format_duration(timeout)
        ),
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            standard_signature(secret, id, 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn rotation_sends_both_signatures_and_nango_is_hex_of_the_body() {
        let new = crate::settings::generate_secret();
        let old = crate::settings::generate_secret();
        let signed = sign("http://127.0.0.1:1/x", "msg_1", "{}", &[&new, &old], 1000);
        let header = |name: &str| {
            signed
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let signatures: Vec<String> = header("webhook-signature")
            .split(' ')
            .map(str::to_owned)
            .collect();
        assert_eq!(signatures.len(), 2);
        assert_eq!(
            signatures[1],
            standard_signature(&old, "msg_1", 1000, b"{}").unwrap()
        );
        let nango = header("x-nango-signature");
        assert_eq!(nango, header("x-nango-hmac-sha256"));
        assert_eq!(nango.len(), 64);
        assert!(nango
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(nango, nango_signature(&new, b"{}"));
        assert_eq!(
            header("user-agent"),
            format!("opslog/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn excerpts_are_bounded_and_cut_cleanly() {
        let long = "é".repeat(EXCERPT_BYTES);
        let cut = excerpt(long.as_bytes());
        assert!(cut.len() <= EXCERPT_BYTES && cut.chars().all(|c| c == 'é'));
    }
}
