//! The records the outbox keeps: a job (one piece of work for one destination, with its status
//! and schedule position) and its attempts. Stored with `store::codec`; JSON views for the API.
//!
//! Must not: do I/O. The declaration order of enum variants is part of the on-disk format:
//! append new job kinds (e.g. `OtlpSpan`), never reorder.

use bincode::{Decode, Encode};
use serde::Serialize;

use crate::model::alert::Notifier;
use crate::model::{DeliveryStatus, EventType, Id, Timestamp};

/// One piece of outbound work and where it stands.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct Job {
    pub id: Id,
    pub environment: String,
    pub kind: JobKind,
    pub status: DeliveryStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Attempts made, over every round.
    pub attempts: u32,
    /// Attempts made in the current round: the position in the retry schedule. A manual retry
    /// or replay starts a new round.
    pub round_attempts: u32,
    /// When the next attempt is due; set exactly while `status` is `pending`.
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// When the current round began (queued, or retried/replayed by hand): exports give up
    /// retrying `outbox.export_retry_for` after it.
    pub round_started_at: Timestamp,
}

impl Job {
    /// The operation whose data the job carries, and the operation logging its delivery.
    pub fn operations(&self) -> (Id, Option<Id>) {
        match &self.kind {
            JobKind::Webhook(w) | JobKind::Slack(w) | JobKind::PagerDuty(w) | JobKind::Email(w) => {
                (w.operation_id, Some(w.log_operation_id))
            }
            JobKind::NangoWebhook(n) => {
                (n.delivery.operation_id, Some(n.delivery.log_operation_id))
            }
            JobKind::OtlpSpan(o) => (o.operation_id, None),
            JobKind::OtlpLogs(o) => (o.operation_id, None),
        }
    }
}

/// What the job sends, per sink. Append variants; never reorder.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub enum JobKind {
    Webhook(WebhookJob),
    /// One finished operation's span on its way to the environment's OTLP collector.
    OtlpSpan(OtlpSpanJob),
    /// The messages one commit appended to one operation, as OTLP log records.
    OtlpLogs(OtlpLogsJob),
    /// One Nango-format body on its way to a webhook URL whose `format` is `nango`: signed as
    /// Nango signs, with the third party's headers when it forwards an incoming webhook.
    NangoWebhook(NangoWebhookJob),
    /// An alert's message on its way to the environment's Slack incoming webhook. The job holds
    /// the message; the secret URL is the environment's setting when it is sent.
    Slack(WebhookJob),
    /// An alert's PagerDuty Events API v2 event (without the routing key, added when sent).
    PagerDuty(WebhookJob),
    /// An alert's email (subject, text and HTML), sent over the environment's SMTP server.
    Email(WebhookJob),
}

/// Which API lists a job: webhook deliveries (`/deliveries`) or OTLP exports (`/exports`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFamily {
    Delivery,
    Export,
}

impl JobKind {
    pub fn family(&self) -> JobFamily {
        match self {
            JobKind::Webhook(_)
            | JobKind::NangoWebhook(_)
            | JobKind::Slack(_)
            | JobKind::PagerDuty(_)
            | JobKind::Email(_) => JobFamily::Delivery,
            JobKind::OtlpSpan(_) | JobKind::OtlpLogs(_) => JobFamily::Export,
        }
    }

    /// Where a delivery goes: the webhook URLs (`webhook`) or one of the notifiers.
    pub fn notifier(&self) -> Option<Notifier> {
        match self {
            JobKind::Webhook(_) | JobKind::NangoWebhook(_) => Some(Notifier::Webhook),
            JobKind::Slack(_) => Some(Notifier::Slack),
            JobKind::PagerDuty(_) => Some(Notifier::Pagerduty),
            JobKind::Email(_) => Some(Notifier::Email),
            JobKind::OtlpSpan(_) | JobKind::OtlpLogs(_) => None,
        }
    }

    /// The destination the per-destination concurrency limit counts against.
    pub fn destination(&self) -> &str {
        match self {
            JobKind::Webhook(w) | JobKind::Slack(w) | JobKind::PagerDuty(w) | JobKind::Email(w) => {
                &w.url
            }
            JobKind::NangoWebhook(n) => &n.delivery.url,
            JobKind::OtlpSpan(o) => &o.url,
            JobKind::OtlpLogs(o) => &o.url,
        }
    }
}

/// One event on its way to one webhook URL (or, for a notification, to one notifier: `url` then
/// says where without its secret, and `body` is the message made for that notifier).
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct WebhookJob {
    pub event_id: String,
    pub event: EventType,
    pub url: String,
    /// The exact bytes sent and signed on every attempt (compact JSON envelope).
    pub body: String,
    /// The operation whose change caused the event.
    pub operation_id: Id,
    /// The `webhook:deliver` operation that logs this delivery's attempts (a new one per round).
    pub log_operation_id: Id,
}

/// A delivery in the Nango format: the body is what Nango would send for the event.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct NangoWebhookJob {
    pub delivery: WebhookJob,
    /// Headers of the third party's request, sent along when the body forwards it (`forward`),
    /// as Nango does; empty otherwise.
    pub forwarded_headers: Vec<(String, String)>,
}

/// The `format` of an [`OtlpSpanJob`] whose `span` is a prost-encoded OTLP `Span`.
pub const OTLP_SPAN_FORMAT_V1: u8 = 1;

/// One span, encoded when its operation ended, waiting to be exported.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct OtlpSpanJob {
    /// How `span` is encoded ([`OTLP_SPAN_FORMAT_V1`]); a later format gets a new number.
    pub format: u8,
    pub operation_id: Id,
    /// The `<endpoint>/v1/traces` URL at the time the span was queued (the per-destination key).
    pub url: String,
    /// The encoded span.
    pub span: Vec<u8>,
}

/// The `format` of an [`OtlpLogsJob`] whose `records` is a prost-encoded OTLP `ScopeLogs` holding
/// only `log_records`.
pub const OTLP_LOGS_FORMAT_V1: u8 = 1;

/// Messages of one operation appended in one commit, encoded as OTLP log records.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct OtlpLogsJob {
    /// How `records` is encoded ([`OTLP_LOGS_FORMAT_V1`]).
    pub format: u8,
    pub operation_id: Id,
    /// The `<endpoint>/v1/logs` URL at the time the records were queued.
    pub url: String,
    /// How many log records `records` holds.
    pub count: u32,
    pub records: Vec<u8>,
}

/// One attempt to send a job.
#[derive(Clone, Debug, PartialEq, Encode, Decode, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub number: u32,
    pub started_at: Timestamp,
    pub url: String,
    /// The response status, when a response came.
    pub status: Option<u16>,
    /// Why no usable response came (connection refused, timeout, ...).
    pub error: Option<String>,
    /// The start of the response body, at most 4 KB.
    pub response_excerpt: Option<String>,
    pub duration_ms: u64,
    /// The unix-seconds `webhook-timestamp` the attempt was signed with.
    pub webhook_timestamp: i64,
    /// What followed: `delivered`, `failed`, or `pending` with `retry_at`.
    pub outcome: DeliveryStatus,
    pub retry_at: Option<Timestamp>,
    /// Exports: how many jobs shared the request this attempt was part of (one attempt row each).
    /// Not part of the deliveries JSON, which predates it.
    #[serde(skip)]
    pub batch_size: Option<u32>,
    /// Exports: items of the whole request the collector refused for good (a partial success).
    #[serde(skip)]
    pub rejected: Option<i64>,
}

/// The JSON of a delivery in `GET /deliveries`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: Id,
    /// The `webhook-id` header: constant over every attempt, the receiver's dedup key.
    pub webhook_id: String,
    pub event_id: String,
    pub event: EventType,
    pub url: String,
    /// Where it goes: `webhook` (the signed event to `url`), `slack`, `pagerduty` or `email`
    /// (an alert's notification; `url` then names the destination without its secret).
    pub notifier: Notifier,
    /// The body shape sent (the URL's `format` when the delivery was queued).
    pub format: super::settings::WebhookFormat,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The response status of the latest attempt (null before the first attempt, or when that
    /// attempt got no response: `last_error` says why). Filled by the handler, which reads the
    /// attempts; `Job::view` leaves it empty.
    pub last_status: Option<u16>,
    pub operation_id: Id,
    pub log_operation_id: Id,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The JSON of `GET /deliveries/{id}`: the delivery, its body and every attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: DeliveryView,
    pub body: serde_json::Value,
    pub attempt_log: Vec<Attempt>,
}

/// The JSON of an export in `GET /exports`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportView {
    pub id: Id,
    /// `traces` (one operation's span) or `logs` (one operation's messages of one commit).
    pub signal: &'static str,
    pub operation_id: Id,
    /// Where it was queued to go: `<endpoint>/v1/traces` or `<endpoint>/v1/logs`.
    pub url: String,
    /// Spans or log records it carries.
    pub items: u32,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When retrying began; retryable failures give up `outbox.export_retry_for` after it.
    pub round_started_at: Timestamp,
}

/// The JSON of `GET /exports/{id}`: the export and every attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportDetail {
    #[serde(flatten)]
    pub export: ExportView,
    pub attempt_log: Vec<ExportAttemptView>,
}

/// One attempt of an export: the request it was part of and what came back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportAttemptView {
    pub number: u32,
    pub started_at: Timestamp,
    pub url: String,
    /// The collector's HTTP status, when it answered.
    pub status: Option<u16>,
    /// Why it failed, or the collector's partial-success message.
    pub error: Option<String>,
    pub duration_ms: u64,
    pub outcome: DeliveryStatus,
    pub retry_at: Option<Timestamp>,
    /// Jobs sent in the same request.
    pub batch_size: Option<u32>,
    /// Items of that request the collector refused for good (partial success).
    pub rejected: Option<i64>,
}

impl From<Attempt> for ExportAttemptView {
    fn from(a: Attempt) -> ExportAttemptView {
        ExportAttemptView {
            number: a.number,
            started_at: a.started_at,
            url: a.url,
            status: a.status,
            error: a.error,
            duration_ms: a.duration_ms,
            outcome: a.outcome,
            retry_at: a.retry_at,
            batch_size: a.batch_size,
            rejected: a.rejected,
        }
    }
}

impl Job {
    /// The JSON of an export, `None` for a webhook delivery.
    pub fn export_view(&self) -> Option<ExportView> {
        let (signal, operation_id, url, items) = match &self.kind {
            JobKind::Webhook(_)
            | JobKind::NangoWebhook(_)
            | JobKind::Slack(_)
            | JobKind::PagerDuty(_)
            | JobKind::Email(_) => return None,
            JobKind::OtlpSpan(o) => ("traces", o.operation_id, &o.url, 1),
            JobKind::OtlpLogs(o) => ("logs", o.operation_id, &o.url, o.count),
        };
        Some(ExportView {
            id: self.id,
            signal,
            operation_id,
            url: url.clone(),
            items,
            status: self.status,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            round_started_at: self.round_started_at,
        })
    }

    /// The delivery a webhook or notification job is (`None` for an export).
    pub fn webhook(&self) -> Option<&WebhookJob> {
        match &self.kind {
            JobKind::Webhook(w) | JobKind::Slack(w) | JobKind::PagerDuty(w) | JobKind::Email(w) => {
                Some(w)
            }
            JobKind::NangoWebhook(n) => Some(&n.delivery),
            JobKind::OtlpSpan(_) | JobKind::OtlpLogs(_) => None,
        }
    }

    pub fn webhook_mut(&mut self) -> Option<&mut WebhookJob> {
        match &mut self.kind {
            JobKind::Webhook(w) | JobKind::Slack(w) | JobKind::PagerDuty(w) | JobKind::Email(w) => {
                Some(w)
            }
            JobKind::NangoWebhook(n) => Some(&mut n.delivery),
            JobKind::OtlpSpan(_) | JobKind::OtlpLogs(_) => None,
        }
    }

    /// The body shape of a delivery.
    pub fn format(&self) -> super::settings::WebhookFormat {
        match &self.kind {
            JobKind::NangoWebhook(_) => super::settings::WebhookFormat::Nango,
            _ => super::settings::WebhookFormat::Opslog,
        }
    }

    /// The `webhook-id` of a delivery: its id, constant across attempts and restarts.
    pub fn webhook_id(&self) -> String {
        format!("msg_{}", self.id)
    }

    pub fn view(&self) -> Option<DeliveryView> {
        let w = self.webhook()?;
        Some(DeliveryView {
            id: self.id,
            webhook_id: self.webhook_id(),
            event_id: w.event_id.clone(),
            event: w.event,
            url: w.url.clone(),
            notifier: self.kind.notifier().unwrap_or(Notifier::Webhook),
            format: self.format(),
            status: self.status,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
            last_status: None,
            operation_id: w.operation_id,
            log_operation_id: w.log_operation_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The bytes one encoded item (`len` bytes) adds to its OTLP request: its field tag and length
/// prefix.
pub fn framed_len(len: usize) -> usize {
    len + 1 + prost::length_delimiter_len(len)
}

/// Outbox rows per job kind and status (or, in a write transaction, the change to them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDepth(pub [[i64; 3]; 4]);

impl OutboxDepth {
    /// The kinds and statuses, in the order of the counts.
    pub const KINDS: [&'static str; 4] = ["webhook", "otlp_span", "otlp_logs", "notification"];
    pub const STATUSES: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
    ];

    pub fn count(&mut self, job: &Job, by: i64) {
        let kind = match job.kind {
            JobKind::Webhook(_) | JobKind::NangoWebhook(_) => 0,
            JobKind::OtlpSpan(_) => 1,
            JobKind::OtlpLogs(_) => 2,
            JobKind::Slack(_) | JobKind::PagerDuty(_) | JobKind::Email(_) => 3,
        };
        let status = match job.status {
            DeliveryStatus::Pending => 0,
            DeliveryStatus::Delivered => 1,
            DeliveryStatus::Failed => 2,
        };
        self.0[kind][status] += by;
    }
}
