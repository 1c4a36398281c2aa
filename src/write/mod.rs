//! The single write path (docs/architecture.md §3): `engine` gathers requests into groups and
//! commits each group once; every change is a command, which lives here with its domain and
//! answers with its own reply type.
//!
//! - `operations`: create, update, append messages, time out the overdue;
//! - `effects`: what an operation's change queues in the outbox (deliveries, spans, log records);
//! - `outbox`: recording attempts, requeueing deliveries and exports;
//! - `settings`: `PUT /settings` and rotations; `views`: saved views; `alerts`: alert rules'
//!   counts;
//! - `audit`: the audit log's record of an admin action, in the action's own commit;
//! - `retention`: removing what expired, or the oldest above the disk cap; `erase`: an erasure
//!   job's steps; `import`: loading an export file.
//!
//! The domain rules themselves stay below, in `ingest::lifecycle`, `outbox::{events, policy}`,
//! `settings` and `model::alert`; a command applies them inside the transaction.

mod alerts;
mod audit;
mod effects;
mod engine;
mod erase;
mod import;
mod operations;
mod outbox;
mod retention;
mod settings;
mod views;

pub use alerts::ObserveAlerts;
pub use audit::{AppendAudit, Audited, RemoveExpiredAudit, AUDIT_REMOVE_BUDGET};
pub use engine::{start, Check, Command, Tx, WriteError, Writer, WriterDeps};
pub use erase::{EraseStep, StartErase, Stepped};
pub use import::{Import, Imported, IngestOtlp, Ingested};
pub use operations::{
    AppendMessages, CreateOperation, CreateOperations, Created, TimeOutOverdue, UpdateOperation,
};
pub use outbox::{RecordAttempts, RecordedAttempt, Requeue, RequeueJobs, REPLAY_LIMIT};
pub use retention::{Cutoffs, RemoveExpired, RemoveExpiredIn, RemoveOldest, REMOVE_BUDGET};
pub use settings::{ChangeSettings, SettingsChange};
pub use views::{ChangeView, ViewChange};
