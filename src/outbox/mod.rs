//! The durable outbox (docs/architecture.md §5): work that must reach another system is written
//! as a job row in the same redb transaction as the change that caused it, then claimed,
//! attempted, retried on a schedule and dead-lettered (`failed`) by the dispatcher.
//!
//! `job` holds the stored records, `policy` the pure retry/jitter/`Retry-After`/dead-letter rules,
//! `events` the derivation of webhook events from operation changes, `webhook` the webhook sink
//! (signing and sending), `dispatcher` the sink-agnostic claim loop and its sender threads.
//! `otlp` is the OTLP sink: `JobKind::OtlpSpan` and `JobKind::OtlpLogs` jobs are sent through it,
//! batched per collector.
//!
//! Must not: write to the store except through `ingest::writer` (the single writer), or send on
//! the async runtime's threads; sinks block on network I/O.

pub mod dispatcher;
pub mod events;
pub mod job;
pub mod otlp;
pub mod policy;
pub mod webhook;

pub use dispatcher::{Dispatcher, Wake};
pub use job::{
    Attempt, Job, JobFamily, JobKind, NangoWebhookJob, OtlpLogsJob, OtlpSpanJob, WebhookJob,
    OTLP_LOGS_FORMAT_V1, OTLP_SPAN_FORMAT_V1,
};
