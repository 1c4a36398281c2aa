//! Counters, gauges and histograms behind GET /metrics, in the Prometheus text format.
//!
//! Plain atomics, bumped where the work happens; rendering reads them without locking. Gauges that
//! live elsewhere (the index's position and segments) are passed in at scrape time.
//!
//! Must not: read the store or the index on its own; a scrape stays cheap at any data size.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::ingest::writer::Removed;
use crate::model::OpState;
use crate::store::OutboxDepth;

/// Upper bounds of the commit latency buckets, in seconds.
const COMMIT_SECONDS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Upper bounds of the messages-per-commit buckets.
const MESSAGES_PER_COMMIT: [f64; 7] = [0.0, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];

/// A Prometheus histogram with fixed buckets: per-bucket counts (not cumulative; summed when
/// rendered), the sum in millionths and the count.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    sum_millionths: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_millionths: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        if let Some(slot) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_millionths
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_millionths.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// Gauges read from the search index at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct IndexGauges {
    /// The newest feed sequence the index has committed.
    pub indexed_seq: u64,
    pub segments: usize,
}

pub struct Metrics {
    pub commits: AtomicU64,
    pub failed_commits: AtomicU64,
    /// Time from a write group's first command to its durable commit.
    pub commit_seconds: Histogram,
    pub messages_per_commit: Histogram,
    /// Requests refused because the disk was full (answered 507).
    pub disk_full_rejections: AtomicU64,
    /// The newest feed sequence the writer committed (the index catches up to it).
    pub feed_seq: AtomicU64,
    pub messages_appended: AtomicU64,
    pub operations_created: AtomicU64,
    pub retention_sweeps: AtomicU64,
    /// Records removed by retention: operations, messages, outbox jobs, outbox attempts.
    removed: [AtomicU64; 4],
    /// Outbox rows by kind and status (`OutboxDepth` order), kept by the writer.
    outbox_depth: [[AtomicI64; 3]; 3],
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
    /// Alert rule evaluations recorded (one per environment per tick with rules).
    pub alert_evaluations: AtomicU64,
    /// `alert.triggered` and `alert.resolved` transitions recorded.
    pub alert_transitions: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            commits: AtomicU64::new(0),
            failed_commits: AtomicU64::new(0),
            commit_seconds: Histogram::new(&COMMIT_SECONDS),
            messages_per_commit: Histogram::new(&MESSAGES_PER_COMMIT),
            disk_full_rejections: AtomicU64::new(0),
            feed_seq: AtomicU64::new(0),
            messages_appended: AtomicU64::new(0),
            operations_created: AtomicU64::new(0),
            retention_sweeps: AtomicU64::new(0),
            removed: Default::default(),
            outbox_depth: Default::default(),
            ended: Default::default(),
            http_requests: AtomicU64::new(0),
            http_client_errors: AtomicU64::new(0),
            http_server_errors: AtomicU64::new(0),
            deliveries_queued: AtomicU64::new(0),
            delivery_attempts: AtomicU64::new(0),
            deliveries_delivered: AtomicU64::new(0),
            deliveries_failed: AtomicU64::new(0),
            exports_queued: AtomicU64::new(0),
            export_attempts: AtomicU64::new(0),
            exports_delivered: AtomicU64::new(0),
            exports_failed: AtomicU64::new(0),
            alert_evaluations: AtomicU64::new(0),
            alert_transitions: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// One committed write group: how long it took and how many messages it carried.
    pub fn record_commit(&self, took: Duration, messages: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_seconds.observe(took.as_secs_f64());
        self.messages_per_commit.observe(messages as f64);
    }

    pub fn record_removed(&self, removed: &Removed) {
        let counts = [
            removed.operations,
            removed.messages,
            removed.jobs,
            removed.attempts,
        ];
        for (counter, n) in self.removed.iter().zip(counts) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds `change` to the outbox depth gauges (the whole depth at start-up, then each
    /// committed transaction's change).
    pub fn add_outbox_depth(&self, change: OutboxDepth) {
        for (gauges, deltas) in self.outbox_depth.iter().zip(change.0) {
            for (gauge, delta) in gauges.iter().zip(deltas) {
                gauge.fetch_add(delta, Ordering::Relaxed);
            }
        }
    }

    pub fn record_end(&self, state: OpState) {
        let slot = OpState::ALL.iter().position(|s| *s == state).unwrap_or(0);
        self.ended[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, index: IndexGauges) -> String {
        let mut out = String::new();
        self.render_gauges(&mut out, index);
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
            "opslog_retention_sweeps_total",
            "Retention sweeps run (each removes what expired since the last).",
            &self.retention_sweeps,
        );
        counter(
            "opslog_disk_full_rejections_total",
            "Write requests refused with 507 because the disk was full.",
            &self.disk_full_rejections,
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
            "opslog_alert_evaluations_total",
            "Alert rule evaluations recorded (one per environment with rules per tick).",
            &self.alert_evaluations,
        );
        counter(
            "opslog_alert_transitions_total",
            "Alert rules that started (alert.triggered) or stopped (alert.resolved) firing.",
            &self.alert_transitions,
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
        let name = "opslog_retention_removed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Records removed by retention, by record kind.\n# TYPE {name} counter"
        );
        let records = ["operation", "message", "outbox_job", "outbox_attempt"];
        for (record, value) in records.iter().zip(&self.removed) {
            let value = value.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{record=\"{record}\"}} {value}");
        }
        self.commit_seconds.render(
            &mut out,
            "opslog_store_commit_seconds",
            "Time from a write group's first request to its durable commit.",
        );
        self.messages_per_commit.render(
            &mut out,
            "opslog_store_messages_per_commit",
            "Messages carried by one durable commit.",
        );
        out
    }

    fn render_gauges(&self, out: &mut String, index: IndexGauges) {
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let feed_seq = self.feed_seq.load(Ordering::Relaxed);
        gauge(
            "opslog_index_lag",
            "Committed write groups the search index has not committed yet.",
            feed_seq.saturating_sub(index.indexed_seq),
        );
        gauge(
            "opslog_index_segments",
            "Segments in the search index.",
            index.segments as u64,
        );
        let name = "opslog_outbox_jobs";
        let _ = writeln!(
            out,
            "# HELP {name} Outbox rows (webhook deliveries, OTLP spans) by kind and status.\n# TYPE {name} gauge"
        );
        for (kind, gauges) in OutboxDepth::KINDS.iter().zip(&self.outbox_depth) {
            for (status, value) in OutboxDepth::STATUSES.iter().zip(gauges) {
                let value = value.load(Ordering::Relaxed).max(0);
                let _ = writeln!(out, "{name}{{kind=\"{kind}\",status=\"{status}\"}} {value}");
            }
        }
    }
}
