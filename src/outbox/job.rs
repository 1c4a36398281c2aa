//! The records the outbox keeps: a job (one piece of work for one destination, with its status
//! and schedule position) and its attempts. Stored with `store::codec`; JSON views for the API.
//!
//! Must not: do I/O. The declaration order of enum variants is part of the on-disk format:
//! append new job kinds (e.g. `OtlpSpan`), never reorder.

use bincode::{Decode, Encode};
use serde::Serialize;

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
}

/// What the job sends, per sink. Append variants; never reorder.
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub enum JobKind {
    Webhook(WebhookJob),
    /// One finished operation's span on its way to the environment's OTLP collector.
    OtlpSpan(OtlpSpanJob),
}

impl JobKind {
    /// The destination the per-destination concurrency limit counts against.
    pub fn destination(&self) -> &str {
        match self {
            JobKind::Webhook(w) => &w.url,
            JobKind::OtlpSpan(o) => &o.url,
        }
    }
}

/// One event on its way to one webhook URL.
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
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
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

impl Job {
    pub fn webhook(&self) -> Option<&WebhookJob> {
        match &self.kind {
            JobKind::Webhook(w) => Some(w),
            JobKind::OtlpSpan(_) => None,
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
            status: self.status,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
            operation_id: w.operation_id,
            log_operation_id: w.log_operation_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
