//! The durable outbox (docs/architecture.md §6), the part below the writer: what is queued and
//! why. Work that must reach another system is written as a job row (`model::job`) in the same
//! redb transaction as the change that caused it (`write::effects`); `dispatch` then claims,
//! attempts, retries and dead-letters (`failed`) it.
//!
//! `events` derives webhook events and their bodies from operation changes and alert crossings
//! (`nango_json` prints the Nango-format ones as Nango does); `policy` is the one retry policy of every sink (schedule, backoff, jitter, `Retry-After`,
//! dead-letter).
//!
//! Must not: do I/O; sending is `dispatch`'s, writing is `write`'s.

pub mod events;
pub mod nango_json;
pub mod policy;

pub use crate::model::job::{
    Attempt, Job, JobFamily, JobKind, NangoWebhookJob, OtlpLogsJob, OtlpSpanJob, WebhookJob,
    OTLP_LOGS_FORMAT_V1, OTLP_SPAN_FORMAT_V1,
};
