//! Counters behind GET /metrics, in the Prometheus text format.
//!
//! Plain atomics, bumped where the work happens; rendering reads them without locking.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::model::{DeliveryStatus, OpState};

#[derive(Default)]
pub struct Metrics {
    pub commits: AtomicU64,
    pub failed_commits: AtomicU64,
    pub messages_appended: AtomicU64,
    pub operations_created: AtomicU64,
    pub operations_removed: AtomicU64,
    ended: [AtomicU64; 6],
    pub http_requests: AtomicU64,
    pub http_client_errors: AtomicU64,
    pub http_server_errors: AtomicU64,
    pub deliveries_queued: AtomicU64,
    pub delivery_attempts: AtomicU64,
    pub deliveries_delivered: AtomicU64,
    pub deliveries_failed: AtomicU64,
    pub exports_queued: AtomicU64,
    pub export_attempts: AtomicU64,
    pub exports_delivered: AtomicU64,
    pub exports_failed: AtomicU64,
    /// Exports in the outbox now, by `DeliveryStatus::ALL` order (a gauge).
    exports_by_status: [AtomicI64; 3],
}

impl Metrics {
    pub fn record_end(&self, state: OpState) {
        let slot = OpState::ALL.iter().position(|s| *s == state).unwrap_or(0);
        self.ended[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds committed changes of the exports-by-status gauge (`DeliveryStatus::ALL` order).
    pub fn add_exports_by_status(&self, delta: [i64; 3]) {
        for (gauge, d) in self.exports_by_status.iter().zip(delta) {
            gauge.fetch_add(d, Ordering::Relaxed);
        }
    }

    /// The slot of `status` in the exports-by-status gauge.
    pub fn status_slot(status: DeliveryStatus) -> usize {
        DeliveryStatus::ALL
            .iter()
            .position(|s| *s == status)
            .unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        };
        counter(
            "opslog_store_commits_total",
            "Durable redb commits (each carries a group of requests).",
            &self.commits,
        );
        counter(
            "opslog_store_failed_commits_total",
            "Write groups that failed and were answered with an error.",
            &self.failed_commits,
        );
        counter(
            "opslog_messages_appended_total",
            "Messages acknowledged as durable.",
            &self.messages_appended,
        );
        counter(
            "opslog_operations_created_total",
            "Operations created.",
            &self.operations_created,
        );
        counter(
            "opslog_operations_removed_total",
            "Operations removed by retention, with their messages.",
            &self.operations_removed,
        );
        counter(
            "opslog_http_requests_total",
            "HTTP requests answered.",
            &self.http_requests,
        );
        counter(
            "opslog_http_client_errors_total",
            "HTTP requests answered with a 4xx.",
            &self.http_client_errors,
        );
        counter(
            "opslog_http_server_errors_total",
            "HTTP requests answered with a 5xx.",
            &self.http_server_errors,
        );
        counter(
            "opslog_webhook_deliveries_queued_total",
            "Webhook deliveries written to the outbox (one per event per URL).",
            &self.deliveries_queued,
        );
        counter(
            "opslog_webhook_attempts_total",
            "Webhook delivery attempts made.",
            &self.delivery_attempts,
        );
        counter(
            "opslog_webhook_deliveries_delivered_total",
            "Webhook deliveries answered with a 2xx.",
            &self.deliveries_delivered,
        );
        counter(
            "opslog_webhook_deliveries_failed_total",
            "Webhook deliveries that ran out of attempts or got a 410.",
            &self.deliveries_failed,
        );
        counter(
            "opslog_exports_queued_total",
            "OTLP exports written to the outbox (a span per ended exported operation, a log batch per operation per commit).",
            &self.exports_queued,
        );
        counter(
            "opslog_exports_attempts_total",
            "OTLP export requests made (one per batch).",
            &self.export_attempts,
        );
        counter(
            "opslog_exports_delivered_total",
            "OTLP exports (spans, log batches) accepted by the collector.",
            &self.exports_delivered,
        );
        counter(
            "opslog_exports_failed_total",
            "OTLP exports the collector refused for good or that ran out of retries.",
            &self.exports_failed,
        );
        let name = "opslog_exports";
        let _ = writeln!(
            out,
            "# HELP {name} OTLP exports (spans, log batches) in the outbox, by status.\n# TYPE {name} gauge"
        );
        for (status, value) in DeliveryStatus::ALL.iter().zip(&self.exports_by_status) {
            let _ = writeln!(
                out,
                "{name}{{status=\"{status}\"}} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let name = "opslog_operations_ended_total";
        let _ = writeln!(
            out,
            "# HELP {name} Operations that reached a terminal state, by state.\n# TYPE {name} counter"
        );
        for (state, value) in OpState::ALL.iter().zip(&self.ended) {
            if state.is_terminal() {
                let _ = writeln!(
                    out,
                    "{name}{{state=\"{state}\"}} {}",
                    value.load(Ordering::Relaxed)
                );
            }
        }
        out
    }
}
