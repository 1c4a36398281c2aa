//! The OTLP/HTTP sink of the outbox ([`OtlpSink`]): turns a batch of spans (built by
//! `crate::otel`) into one gzipped protobuf `ExportTraceServiceRequest`, POSTs it to
//! `<endpoint>/v1/traces` with a blocking ureq agent, classifies the answer as an
//! [`ExportOutcome`], and makes of it one attempt per job (the doubling backoff, given up after
//! `outbox.export_retry_for`). Log records go the same way as an `ExportLogsServiceRequest` to
//! `<endpoint>/v1/logs`.
//!
//! Why opentelemetry-proto messages posted by hand rather than `opentelemetry-otlp`'s
//! `SpanExporter`: the exporter's `export` returns `OTelSdkError::InternalFailure(String)` after
//! running its own retry loop (sleeping inside the call), so the caller never sees the status code,
//! the `Retry-After` delay or the response body; it only logs `partial_success` instead of returning
//! it; it takes SDK `SpanData` and a process-wide resource rather than our per-environment ones; and
//! its `HttpClient` is async. A durable outbox must decide retry-versus-failed itself, persist the
//! next attempt time and show each attempt, so it needs all of those. What we use from the
//! OpenTelemetry project is the generated protobuf types of `opentelemetry-proto`, so the wire
//! format is still theirs.
//!
//! Classification follows the OTLP/HTTP specification: 2xx is success (possibly partial), 429, 502,
//! 503 and 504 and connection failures are retryable (with the collector's `Retry-After`, read by
//! `policy::parse_retry_after`), every other status is a permanent failure. When to try again is
//! decided here with the one retry policy of every sink (`outbox::policy`). Redirects
//! are not followed: they would re-send the API-key headers to another URL and the specification
//! does not ask for them.
//!
//! Must not: touch redb, sleep, or retry by itself; the dispatcher owns claiming and the writer
//! durability. Must not run on the async runtime's threads: `export_spans` blocks for up to the
//! target timeout.

use std::io::{Read, Write};
use std::ops::Range;
use std::time::{Duration, SystemTime};

use flate2::write::GzEncoder;
use flate2::Compression;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use rand::Rng;

use super::sink::{RequestBudget, Requests, Sink, SinkDeps};
use crate::destination::{guarded_agent, DestinationPolicy};
use crate::model::job::{Attempt, Job, JobKind, OtlpLogsJob, OtlpSpanJob};
use crate::model::{DeliveryStatus, Headers, Timestamp};
use crate::otel::OtelTarget;
use crate::outbox::policy::{self, parse_retry_after, Schedule};
use crate::write::RecordedAttempt;

/// Most spans in one export request (issue #5).
pub const MAX_SPANS_PER_REQUEST: usize = 512;
/// Most uncompressed protobuf bytes `plan_batches` puts in one request; collectors commonly refuse
/// bodies past a few megabytes, and a single larger span is still sent alone.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Most response bytes read; a success response or an error status is far smaller.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// Longest excerpt of an error response kept in a failure reason.
pub const MAX_BODY_EXCERPT: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("a batch of {0} spans is more than the {MAX_SPANS_PER_REQUEST} one request may carry")]
    BatchTooLarge(usize),
    #[error("cannot gzip the export request: {0}")]
    Compress(#[source] std::io::Error),
}

/// What one export attempt came to. The dispatcher records it and, for `Retry`, schedules the next
/// attempt with `policy::retry_in`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportOutcome {
    /// The collector accepted the request with this 2xx `status`. `rejected` > 0 is a partial
    /// success: that many spans (or log records) were refused for good (retrying would not help)
    /// and `message` says why.
    Delivered {
        status: u16,
        rejected: i64,
        message: Option<String>,
    },
    /// Try again later: a throttling/unavailable status or a connection failure. `after` is the
    /// collector's `Retry-After` as it asked (the policy caps it at `outbox.max_retry_after`).
    Retry {
        status: Option<u16>,
        after: Option<Duration>,
        reason: String,
    },
    /// The collector refused the request; sending it again unchanged would fail the same way.
    Failed { status: Option<u16>, reason: String },
}

/// One export request: at most [`MAX_SPANS_PER_REQUEST`] items (spans or log records) and, unless
/// a single job is larger, at most [`MAX_REQUEST_BYTES`] of encoded items.
pub const REQUEST_BUDGET: RequestBudget =
    RequestBudget::new(MAX_SPANS_PER_REQUEST, MAX_REQUEST_BYTES);

pub use crate::model::job::framed_len;

/// Splits spans into request-sized batches ([`RequestBudget`]). Order is kept.
pub fn plan_batches(spans: &[Span]) -> Vec<Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut budget = REQUEST_BUDGET;
    for (i, span) in spans.iter().enumerate() {
        let len = framed_len(span.encoded_len());
        if !budget.try_add(1, len) {
            batches.push(start..i);
            start = i;
            budget = REQUEST_BUDGET;
            budget.try_add(1, len);
        }
    }
    if start < spans.len() {
        batches.push(start..spans.len());
    }
    batches
}

/// The request body for `spans`: a gzipped protobuf `ExportTraceServiceRequest` with one resource
/// (the target's) and one scope (opslog's).
pub fn encode_request(target: &OtelTarget, spans: &[Span]) -> Result<Vec<u8>, OtlpError> {
    if spans.len() > MAX_SPANS_PER_REQUEST {
        return Err(OtlpError::BatchTooLarge(spans.len()));
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(target.resource().clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(crate::otel::scope()),
                spans: spans.to_vec(),
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    gzip(&request.encode_to_vec())
}

/// The request body for `records`: a gzipped protobuf `ExportLogsServiceRequest` with one resource
/// (the target's) and one scope (opslog's). One job's records may pass the 512-item budget and are
/// still sent whole.
pub fn encode_logs_request(
    target: &OtelTarget,
    records: &[LogRecord],
) -> Result<Vec<u8>, OtlpError> {
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(target.resource().clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(crate::otel::scope()),
                log_records: records.to_vec(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    };
    gzip(&request.encode_to_vec())
}

fn gzip(protobuf: &[u8]) -> Result<Vec<u8>, OtlpError> {
    let mut gzip = GzEncoder::new(
        Vec::with_capacity(protobuf.len() / 4 + 64),
        Compression::default(),
    );
    gzip.write_all(protobuf).map_err(OtlpError::Compress)?;
    gzip.finish().map_err(OtlpError::Compress)
}

/// The agent exports go through: status codes are answers, not errors, redirects are not
/// followed, and every address is checked against `destinations` before connecting. One agent
/// serves every target (its connection pool is per host); timeouts are set per request from the
/// target.
pub fn export_agent(destinations: DestinationPolicy) -> ureq::Agent {
    guarded_agent(destinations, concat!("opslog/", env!("CARGO_PKG_VERSION")))
}

/// Sends one batch (at most [`MAX_SPANS_PER_REQUEST`] spans) to `target` and classifies the answer.
/// Blocks for up to the target's timeout; call it from a dedicated thread. Nothing is retried here.
pub fn export_spans(agent: &ureq::Agent, target: &OtelTarget, spans: &[Span]) -> ExportOutcome {
    match encode_request(target, spans) {
        Ok(body) => post(agent, target, target.traces_url(), &body),
        Err(e) => ExportOutcome::Failed {
            status: None,
            reason: e.to_string(),
        },
    }
}

/// Sends one batch of log records to `target`'s `/v1/logs`, like [`export_spans`].
pub fn export_logs(
    agent: &ureq::Agent,
    target: &OtelTarget,
    records: &[LogRecord],
) -> ExportOutcome {
    match encode_logs_request(target, records) {
        Ok(body) => post(agent, target, target.logs_url(), &body),
        Err(e) => ExportOutcome::Failed {
            status: None,
            reason: e.to_string(),
        },
    }
}

fn post(agent: &ureq::Agent, target: &OtelTarget, url: &str, body: &[u8]) -> ExportOutcome {
    let mut request = agent
        .post(url)
        .config()
        .timeout_global(Some(target.timeout()))
        .build()
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip");
    for (name, value) in target.headers() {
        request = request.header(name.as_str(), value.as_str());
    }
    let mut response = match request.send(body) {
        Ok(response) => response,
        Err(e) => return classify_transport_error(&e),
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut answer = Vec::new();
    let read = response
        .body_mut()
        .as_reader()
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut answer);
    if let Err(e) = read {
        // The status line arrived, so the collector decided; only the details are lost.
        if (200..300).contains(&status) {
            return ExportOutcome::Delivered {
                status,
                rejected: 0,
                message: Some(format!("could not read the response body: {e}")),
            };
        }
    }
    classify_response(status, &headers, &answer, SystemTime::now())
}

/// What an HTTP answer from the collector means, per the OTLP/HTTP specification.
pub fn classify_response(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> ExportOutcome {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let protobuf = header("content-type").is_none_or(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("application/x-protobuf") || t.starts_with("application/protobuf")
    });
    if (200..300).contains(&status) {
        let partial = if protobuf {
            ExportResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
        } else {
            None
        };
        return match partial {
            Some(p) => ExportOutcome::Delivered {
                status,
                rejected: p.rejected,
                message: (!p.error_message.is_empty()).then_some(p.error_message),
            },
            None => ExportOutcome::Delivered {
                status,
                rejected: 0,
                message: None,
            },
        };
    }
    let mut reason = format!("collector answered {status}");
    if let Some(canonical) = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        reason.push(' ');
        reason.push_str(canonical);
    }
    if (300..400).contains(&status) {
        if let Some(location) = header("location") {
            reason.push_str(&format!(" (redirect to {location}, not followed)"));
        }
    }
    let detail = body_detail(body, protobuf);
    if !detail.is_empty() {
        reason.push_str(": ");
        reason.push_str(&detail);
    }
    match status {
        429 | 502 | 503 | 504 => ExportOutcome::Retry {
            status: Some(status),
            after: header("retry-after").and_then(|v| parse_retry_after(v, now)),
            reason,
        },
        _ => ExportOutcome::Failed {
            status: Some(status),
            reason,
        },
    }
}

/// `Export{Trace,Logs}ServiceResponse`: both carry `partial_success` as field 1 with the rejected
/// count as field 1 and the message as field 2, so one message type reads either signal's answer.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PartialSuccess {
    /// `rejected_spans` or `rejected_log_records`.
    #[prost(int64, tag = "1")]
    rejected: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// `google.rpc.Status`, which OTLP/HTTP servers send as the body of an error; only the fields we
/// show (prost skips `details`).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// The message of a protobuf `google.rpc.Status` body, else at most [`MAX_BODY_EXCERPT`] bytes of
/// the body as text.
fn body_detail(body: &[u8], protobuf: bool) -> String {
    if protobuf {
        if let Ok(status) = RpcStatus::decode(body) {
            if !status.message.is_empty() {
                return excerpt(status.message.as_bytes());
            }
        }
    }
    excerpt(body)
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY_EXCERPT)]);
    let mut text = text.trim().to_owned();
    // A cut in the middle of a character shows as U+FFFD; the excerpt stays within the limit.
    while text.len() > MAX_BODY_EXCERPT {
        text.pop();
    }
    text
}

/// A failure before any HTTP answer: connection refused, DNS, timeout, TLS, a dropped connection —
/// all retryable — or a request that can never be sent (bad URL or header), which is not.
pub fn classify_transport_error(error: &ureq::Error) -> ExportOutcome {
    match error {
        ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::RequireHttpsOnly(_) => ExportOutcome::Failed {
            status: None,
            reason: format!("the export request cannot be sent: {error}"),
        },
        ureq::Error::Timeout(_) => ExportOutcome::Retry {
            status: None,
            after: None,
            reason: format!("the collector did not answer in time ({error})"),
        },
        _ => ExportOutcome::Retry {
            status: None,
            after: None,
            reason: format!("cannot reach the collector: {error}"),
        },
    }
}

/// Exports spans (`JobKind::OtlpSpan`) and log records (`JobKind::OtlpLogs`) to each
/// environment's collector, batched per collector and signal.
pub struct OtlpSink {
    deps: SinkDeps,
    agent: ureq::Agent,
}

impl OtlpSink {
    pub fn new(deps: &SinkDeps) -> OtlpSink {
        OtlpSink {
            agent: export_agent(deps.settings.destinations().clone()),
            deps: deps.clone(),
        }
    }

    /// The attempt row of one job of an export request to `url` that came to `outcome`.
    fn export_attempt(
        &self,
        job: &Job,
        started_at: Timestamp,
        url: &str,
        batch_size: usize,
        outcome: &ExportOutcome,
        retry_at: Option<Timestamp>,
    ) -> RecordedAttempt {
        let duration_ms = Timestamp::now()
            .millis()
            .saturating_sub(started_at.millis())
            .max(0) as u64;
        let (status, error, rejected, outcome, retry_at) = match outcome {
            ExportOutcome::Delivered {
                status,
                rejected,
                message,
            } => {
                let error = (*rejected > 0 || message.is_some()).then(|| {
                    format!(
                        "partial success: the collector rejected {rejected} of the request's items: {}",
                        message.as_deref().unwrap_or("")
                    )
                });
                let rejected = (*rejected > 0).then_some(*rejected);
                (
                    Some(*status),
                    error,
                    rejected,
                    DeliveryStatus::Delivered,
                    None,
                )
            }
            ExportOutcome::Retry { status, reason, .. } => {
                let retry_for = self.deps.config.export_retry_for.0;
                let gives_up = retry_at.is_none_or(|at| {
                    policy::export_gives_up(job.round_started_at.millis(), at.millis(), retry_for)
                });
                if gives_up {
                    let reason = format!(
                        "gave up after {} attempts over {} (outbox.export_retry_for): {reason}",
                        job.round_attempts + 1,
                        humantime::format_duration(retry_for)
                    );
                    (*status, Some(reason), None, DeliveryStatus::Failed, None)
                } else {
                    (
                        *status,
                        Some(reason.clone()),
                        None,
                        DeliveryStatus::Pending,
                        retry_at,
                    )
                }
            }
            ExportOutcome::Failed { status, reason } => (
                *status,
                Some(reason.clone()),
                None,
                DeliveryStatus::Failed,
                None,
            ),
        };
        let attempt = Attempt {
            number: job.attempts + 1,
            started_at,
            url: url.to_owned(),
            status,
            error,
            response_excerpt: None,
            duration_ms,
            webhook_timestamp: 0,
            outcome,
            retry_at,
            batch_size: Some(batch_size as u32),
            rejected,
        };
        RecordedAttempt {
            job: job.id,
            attempt,
            request_headers: Headers::new(),
        }
    }
}

impl Sink for OtlpSink {
    fn sends(&self, kind: &JobKind) -> bool {
        matches!(kind, JobKind::OtlpSpan(_) | JobKind::OtlpLogs(_))
    }

    fn requests(&self) -> Requests {
        Requests::Batched(REQUEST_BUDGET)
    }

    fn size(&self, job: &Job) -> (usize, usize) {
        match &job.kind {
            JobKind::OtlpSpan(o) => (1, framed_len(o.span.len())),
            // `records` is already a sequence of framed log records.
            JobKind::OtlpLogs(o) => (o.count as usize, o.records.len()),
            JobKind::Webhook(_) | JobKind::NangoWebhook(_) => (1, 0),
        }
    }

    /// Exports a batch of queued jobs (one environment, one signal) in one request to the
    /// environment's collector: one attempt per job. A job whose stored payload cannot be read
    /// fails alone; the rest are still sent. Exports cause no events and have no log operation.
    fn attempt(&self, jobs: &[Job]) -> Vec<RecordedAttempt> {
        let deps = &self.deps;
        let started_at = Timestamp::now();
        let environment = &jobs[0].environment;
        // A batch holds one kind of job (the dispatcher groups by kind), so one of these stays
        // empty.
        let mut spans = Vec::new();
        let mut records = Vec::new();
        let mut sent = Vec::with_capacity(jobs.len());
        let mut attempts = Vec::with_capacity(jobs.len());
        for job in jobs {
            let decoded = match &job.kind {
                JobKind::OtlpSpan(span) => decode_span(span).map(|s| spans.push(s)),
                JobKind::OtlpLogs(logs) => decode_logs(logs).map(|r| records.extend(r)),
                JobKind::Webhook(_) | JobKind::NangoWebhook(_) => {
                    Err("a webhook delivery is not an export".to_owned())
                }
            };
            match decoded {
                Ok(()) => sent.push(job),
                Err(reason) => {
                    let outcome = ExportOutcome::Failed {
                        status: None,
                        reason,
                    };
                    let url = job.kind.destination();
                    attempts.push(self.export_attempt(job, started_at, url, 1, &outcome, None));
                }
            }
        }
        if sent.is_empty() {
            return attempts;
        }
        // Pending exports follow the environment's collector as it is now.
        let (url, outcome) = match deps.settings.otel(environment) {
            None => (
                sent[0].kind.destination().to_owned(),
                ExportOutcome::Failed {
                    status: None,
                    reason: format!("environment `{environment}` no longer has an OTel collector"),
                },
            ),
            Some(target) => {
                deps.metrics.export_attempts.inc();
                if records.is_empty() {
                    let outcome = export_spans(&self.agent, &target, &spans);
                    (target.traces_url().to_owned(), outcome)
                } else {
                    let outcome = export_logs(&self.agent, &target, &records);
                    (target.logs_url().to_owned(), outcome)
                }
            }
        };
        // One retry time for the whole batch, so its jobs stay due together; the backoff never
        // runs out (each job's retry window ends its round, in `export_attempt`).
        let retry_at = match &outcome {
            ExportOutcome::Retry { after, .. } => {
                let round = sent.iter().map(|j| j.round_attempts).max().unwrap_or(0);
                policy::retry_in(
                    Schedule::Backoff {
                        longest: deps.config.export_max_backoff.0,
                    },
                    round + 1,
                    *after,
                    deps.config.max_retry_after.0,
                    rand::rng().random_range(-1.0..=1.0),
                )
                .map(|delay| Timestamp::now().plus_millis(policy::millis(delay)))
            }
            _ => None,
        };
        tracing::debug!(
            job_id = %sent[0].id,
            jobs = sent.len(),
            outcome = ?outcome,
            "OTLP export attempt"
        );
        for job in sent.iter().copied() {
            attempts.push(self.export_attempt(
                job,
                started_at,
                &url,
                sent.len(),
                &outcome,
                retry_at,
            ));
        }
        attempts
    }
}

fn decode_logs(job: &OtlpLogsJob) -> Result<Vec<LogRecord>, String> {
    if job.format != crate::model::job::OTLP_LOGS_FORMAT_V1 {
        return Err(format!("unknown log records format {}", job.format));
    }
    let scope = ScopeLogs::decode(&job.records[..])
        .map_err(|e| format!("cannot decode the stored log records: {e}"))?;
    Ok(scope.log_records)
}

fn decode_span(job: &OtlpSpanJob) -> Result<Span, String> {
    if job.format != crate::model::job::OTLP_SPAN_FORMAT_V1 {
        return Err(format!("unknown span format {}", job.format));
    }
    Span::decode(&job.span[..]).map_err(|e| format!("cannot decode the stored span: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OtelConfig;
    use crate::model::{Id, OpState, OpType, Operation, Timestamp};
    use crate::otel::traces_url;
    use flate2::read::GzDecoder;
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn span(n: u128) -> Span {
        let op = Operation {
            id: Id(n),
            environment: "prod".into(),
            kind: OpType::Sync,
            action: "run".into(),
            state: OpState::Success,
            integration: None,
            connection_id: None,
            script: None,
            provider: None,
            message: "Sync execution".into(),
            error: None,
            request: None,
            response: None,
            records: None,
            meta: None,
            end_user: None,
            tags: Default::default(),
            is_async: false,
            sync_type: None,
            checkpoints: None,
            auth_mode: None,
            output: None,
            trace_context: None,
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            started_at: Some(Timestamp(1)),
            ended_at: Some(Timestamp(2)),
            expires_at: Timestamp(3),
            duration_ms: Some(1),
            message_count: 0,
        };
        crate::otel::operation_span(&op, &[], 128).unwrap()
    }

    fn target(endpoint: &str) -> OtelTarget {
        let mut settings = OtelConfig::with_endpoint(endpoint);
        settings
            .headers
            .insert("x-api-key".into(), "very-secret-key-123".into());
        settings
            .resource_attributes
            .insert("deployment.environment.name".into(), "prod".into());
        OtelTarget::new("prod", &settings).unwrap()
    }

    #[test]
    fn traces_url_handles_trailing_slashes_and_paths() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("https://otlp.example.com/otlp/"),
            "https://otlp.example.com/otlp/v1/traces"
        );
        assert_eq!(
            target("http://c:4318/").traces_url(),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn targets_refuse_bad_settings_and_hide_header_values() {
        let err = OtelTarget::new("prod", &OtelConfig::with_endpoint("ftp://x")).unwrap_err();
        assert!(
            err.to_string().contains("`endpoint`") && err.to_string().contains("prod"),
            "{err}"
        );
        let shown = format!("{:?}", target("http://c:4318"));
        assert!(!shown.contains("very-secret-key-123"), "{shown}");
        assert!(shown.contains("very…(masked)"), "{shown}");
    }

    #[test]
    fn requests_are_gzipped_protobuf_with_resource_and_scope() {
        let spans = [span(1), span(2)];
        let body = encode_request(&target("http://c:4318"), &spans).unwrap();
        assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
        let mut protobuf = Vec::new();
        GzDecoder::new(&body[..])
            .read_to_end(&mut protobuf)
            .unwrap();
        let request = ExportTraceServiceRequest::decode(&protobuf[..]).unwrap();
        assert_eq!(request.resource_spans.len(), 1);
        let resource_spans = &request.resource_spans[0];
        let keys: Vec<&str> = resource_spans
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(keys, ["service.name", "deployment.environment.name"]);
        let scope_spans = &resource_spans.scope_spans[0];
        assert_eq!(scope_spans.scope.as_ref().unwrap().name, "opslog");
        assert_eq!(scope_spans.spans, spans);

        let too_many: Vec<Span> = (0..=MAX_SPANS_PER_REQUEST as u128).map(span).collect();
        assert!(matches!(
            encode_request(&target("http://c:4318"), &too_many),
            Err(OtlpError::BatchTooLarge(513))
        ));
    }

    #[test]
    fn batches_hold_at_most_512_spans_and_4_mib() {
        let spans: Vec<Span> = (0..1100).map(span).collect();
        assert_eq!(plan_batches(&spans), [0..512, 512..1024, 1024..1100]);
        assert!(plan_batches(&[]).is_empty());

        let mut big = span(1);
        big.name = "x".repeat(MAX_REQUEST_BYTES / 3);
        let spans = vec![big.clone(), big.clone(), big.clone(), span(2)];
        assert_eq!(plan_batches(&spans), [0..2, 2..4]);
        big.name = "x".repeat(MAX_REQUEST_BYTES + 1);
        assert_eq!(
            plan_batches(&[span(1), big, span(2)]),
            [0..1, 1..2, 2..3],
            "an oversized span goes alone"
        );
    }

    #[test]
    fn classification_follows_the_otlp_http_spec() {
        let plain = headers(&[("content-type", "text/plain")]);
        for status in [429u16, 502, 503, 504] {
            match classify_response(status, &plain, b"busy", now()) {
                ExportOutcome::Retry {
                    status: Some(s),
                    after: None,
                    reason,
                } => {
                    assert_eq!(s, status);
                    assert!(
                        reason.contains(&status.to_string()) && reason.ends_with(": busy"),
                        "{reason}"
                    );
                }
                other => panic!("{status}: {other:?}"),
            }
        }
        for status in [400u16, 401, 403, 404, 408, 413, 415, 500, 501, 301, 307] {
            assert!(
                matches!(
                    classify_response(status, &plain, b"no", now()),
                    ExportOutcome::Failed { status: Some(s), .. } if s == status
                ),
                "{status} is permanent"
            );
        }
        for status in [200u16, 202, 204] {
            assert_eq!(
                classify_response(status, &headers(&[]), b"", now()),
                ExportOutcome::Delivered {
                    status,
                    rejected: 0,
                    message: None
                }
            );
        }
    }

    #[test]
    fn retryable_statuses_carry_the_retry_after_they_asked_for() {
        let outcome = classify_response(503, &headers(&[("retry-after", "7")]), b"", now());
        assert_eq!(
            outcome,
            ExportOutcome::Retry {
                status: Some(503),
                after: Some(Duration::from_secs(7)),
                reason: "collector answered 503 Service Unavailable".into()
            }
        );
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(86_400));
        let outcome = classify_response(429, &headers(&[("retry-after", &date)]), b"", now());
        assert!(
            matches!(outcome, ExportOutcome::Retry { after: Some(d), .. } if d == Duration::from_secs(86_400)),
            "an HTTP date, as asked (the policy caps it): {outcome:?}"
        );
        let outcome = classify_response(503, &headers(&[("retry-after", "later")]), b"", now());
        assert!(
            matches!(outcome, ExportOutcome::Retry { after: None, .. }),
            "{outcome:?}"
        );
        let outcome = classify_response(400, &headers(&[("retry-after", "7")]), b"", now());
        assert!(
            matches!(outcome, ExportOutcome::Failed { .. }),
            "only retryable statuses wait"
        );
    }

    #[test]
    fn partial_success_is_reported() {
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "3 spans had no name".into(),
            }),
        }
        .encode_to_vec();
        let proto = headers(&[("content-type", "application/x-protobuf")]);
        assert_eq!(
            classify_response(200, &proto, &body, now()),
            ExportOutcome::Delivered {
                status: 200,
                rejected: 3,
                message: Some("3 spans had no name".into())
            }
        );
        assert_eq!(
            classify_response(200, &proto, b"\xff\xff not protobuf", now()),
            ExportOutcome::Delivered {
                status: 200,
                rejected: 0,
                message: None
            },
            "an undecodable success is still a success"
        );
    }

    #[test]
    fn failures_carry_the_status_message_or_a_bounded_excerpt() {
        let body = RpcStatus {
            code: 3,
            message: "invalid trace id length".into(),
        }
        .encode_to_vec();
        let outcome = classify_response(
            400,
            &headers(&[("content-type", "application/x-protobuf")]),
            &body,
            now(),
        );
        assert_eq!(
            outcome,
            ExportOutcome::Failed {
                status: Some(400),
                reason: "collector answered 400 Bad Request: invalid trace id length".into()
            }
        );
        let long = "é".repeat(5000);
        let outcome = classify_response(
            413,
            &headers(&[("content-type", "text/plain")]),
            long.as_bytes(),
            now(),
        );
        let ExportOutcome::Failed { reason, .. } = outcome else {
            panic!("{outcome:?}")
        };
        let detail = reason.split_once(": ").unwrap().1;
        assert!(
            detail.len() <= MAX_BODY_EXCERPT && detail.len() > 4000,
            "{}",
            detail.len()
        );
        assert!(detail.starts_with("éé"));
        let outcome = classify_response(
            308,
            &headers(&[("location", "https://elsewhere/v1/traces")]),
            b"",
            now(),
        );
        assert!(
            matches!(&outcome, ExportOutcome::Failed { reason, .. } if reason.contains("https://elsewhere/v1/traces")),
            "{outcome:?}"
        );
    }

    #[test]
    fn transport_errors_are_retried_unless_the_request_is_unsendable() {
        for error in [
            ureq::Error::ConnectionFailed,
            ureq::Error::HostNotFound,
            ureq::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            ureq::Error::Timeout(ureq::Timeout::Global),
        ] {
            assert!(
                matches!(
                    classify_transport_error(&error),
                    ExportOutcome::Retry {
                        status: None,
                        after: None,
                        ..
                    }
                ),
                "{error}"
            );
        }
        assert!(matches!(
            classify_transport_error(&ureq::Error::BadUri("x".into())),
            ExportOutcome::Failed { status: None, .. }
        ));
    }
}
