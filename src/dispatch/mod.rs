//! Sending the outbox (docs/architecture.md §6): `dispatcher` is the sink-agnostic claim loop
//! and its sender threads; `sink` says what a sink is; each destination kind is one sink in its
//! own file — `webhook` (signing and sending, opslog or Nango format), `otlp` (OTLP/HTTP, through
//! which `OtlpSpan` and `OtlpLogs` jobs go, batched per collector), and the alert notifiers
//! `slack`, `pagerduty` and `email` (what they share is `notifier`) — listed once in [`sinks`].
//! Each attempt's outcome is recorded through the writer (`write::RecordAttempts`).
//!
//! Must not: write to the store except through the writer, or send on the async runtime's
//! threads; sinks block on network I/O.

pub mod dispatcher;
pub mod email;
mod notifier;
pub mod otlp;
pub mod pagerduty;
pub mod sink;
pub mod slack;
pub mod webhook;

pub use dispatcher::{Dispatcher, DispatcherDeps, Wake};
pub use sink::{Sink, SinkDeps};

/// Every sink the dispatcher sends through: a new destination kind is one line here (and its
/// file). Exactly one of them `sends` each `JobKind`.
pub fn sinks(deps: &SinkDeps) -> Vec<Box<dyn Sink>> {
    vec![
        Box::new(webhook::WebhookSink::new(deps)),
        Box::new(otlp::OtlpSink::new(deps)),
        Box::new(slack::SlackSink::new(deps)),
        Box::new(pagerduty::PagerDutySink::new(deps)),
        Box::new(email::EmailSink::new(deps)),
    ]
}
