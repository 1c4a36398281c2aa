//! Sending the outbox (docs/architecture.md §6): `dispatcher` is the sink-agnostic claim loop
//! and its sender threads; `webhook` the webhook sink (signing and sending, opslog or Nango
//! format); `otlp` the OTLP/HTTP sink, through which `OtlpSpan` and `OtlpLogs` jobs go, batched
//! per collector. Each attempt's outcome is recorded through the writer
//! (`write::RecordAttempts`), which moves the job on by `outbox::policy`.
//!
//! Must not: write to the store except through the writer, or send on the async runtime's
//! threads; sinks block on network I/O.

pub mod dispatcher;
pub mod otlp;
pub mod webhook;

pub use dispatcher::{Dispatcher, DispatcherDeps, Wake};
