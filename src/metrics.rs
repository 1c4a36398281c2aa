//! Counters, gauges and histograms behind GET /metrics, kept and rendered by the `prometheus`
//! crate (tikv/rust-prometheus) in the Prometheus text format 0.0.4.
//!
//! Every series is a handle resolved once, here, at start-up (labelled ones too), so the work
//! that bumps one pays a lock-free atomic add and nothing else: no lookup, no lock. Gauges whose
//! value lives elsewhere (the index's position and segments, the outbox depth, kept as raw sums
//! that may pass through negative while start-up and live changes interleave) are set at scrape
//! time. Each `Metrics` has its own registry, so daemons in one process do not share series.
//!
//! Must not: read the store or the index on its own; a scrape stays cheap at any data size.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::model::job::OutboxDepth;
use crate::model::OpState;
use crate::model::Removed;

/// The `Content-Type` of [`Metrics::render`]'s text: `text/plain; version=0.0.4`.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Upper bounds of the commit latency buckets, in seconds.
const COMMIT_SECONDS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Upper bounds of the messages-per-commit buckets.
const MESSAGES_PER_COMMIT: [f64; 7] = [0.0, 1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0];
/// The `record` label of `opslog_retention_removed_total`, in `Removed`'s order.
const REMOVED_RECORDS: [&str; 4] = ["operation", "message", "outbox_job", "outbox_attempt"];
/// The `record` label of `opslog_disk_cap_removed_total`.
const CAP_REMOVED_RECORDS: [&str; 2] = ["operation", "message"];

/// Gauges read from the search index at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct IndexGauges {
    /// The newest feed sequence the index has committed.
    pub indexed_seq: u64,
    pub segments: usize,
}

pub struct Metrics {
    registry: Registry,
    pub commits: IntCounter,
    pub failed_commits: IntCounter,
    /// Time from a write group's first command to its durable commit.
    pub commit_seconds: Histogram,
    pub messages_per_commit: Histogram,
    /// Requests refused because the disk was full (answered 507).
    pub disk_full_rejections: IntCounter,
    /// The newest feed sequence the writer committed (the index catches up to it).
    pub feed_seq: AtomicU64,
    pub messages_appended: IntCounter,
    pub operations_created: IntCounter,
    pub retention_sweeps: IntCounter,
    /// Records removed by retention, in [`REMOVED_RECORDS`] order.
    removed: [IntCounter; 4],
    /// Records removed because the data dir was above `retention.max_disk`.
    disk_cap_removed: [IntCounter; 2],
    /// Times the data dir was found above `retention.max_disk` and its oldest operations removed.
    pub disk_cap_trims: IntCounter,
    /// Erasures carried out to their end.
    pub erasures_done: IntCounter,
    /// The data dir's size on disk (allocated blocks) at the last retention sweep.
    pub data_dir_bytes: IntGauge,
    /// What the disk cap counts: the store's rows (estimated, with their overhead in the file)
    /// and the index's files; 0 without a cap.
    pub held_bytes: IntGauge,
    /// Outbox rows by kind and status (`OutboxDepth` order), kept by the writer.
    outbox_depth: [[AtomicI64; 3]; OutboxDepth::KINDS.len()],
    /// `opslog_outbox_jobs`, set from `outbox_depth` at scrape time.
    outbox_jobs: [[IntGauge; 3]; OutboxDepth::KINDS.len()],
    /// Operations ended, one counter per terminal state.
    ended: Vec<(OpState, IntCounter)>,
    index_lag: IntGauge,
    index_segments: IntGauge,
    pub http_requests: IntCounter,
    pub http_client_errors: IntCounter,
    pub http_server_errors: IntCounter,
    pub deliveries_queued: IntCounter,
    pub delivery_attempts: IntCounter,
    pub deliveries_delivered: IntCounter,
    pub deliveries_failed: IntCounter,
    pub exports_queued: IntCounter,
    pub export_attempts: IntCounter,
    pub exports_delivered: IntCounter,
    pub exports_failed: IntCounter,
    /// Alert rule evaluations recorded (one per environment per tick with rules).
    pub alert_evaluations: IntCounter,
    /// `alert.triggered` and `alert.resolved` transitions recorded.
    pub alert_transitions: IntCounter,
}

/// Creates series and registers them. Names and labels are fixed here, so a failure is a
/// programming mistake caught by the first test that builds `Metrics`.
struct Series(Registry);

impl Series {
    fn register<C: prometheus::core::Collector + Clone + 'static>(&self, collector: C) -> C {
        self.0
            .register(Box::new(collector.clone()))
            .expect("metric names are valid and unique");
        collector
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::new(name, help).expect("a valid counter"))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(name, help).expect("a valid gauge"))
    }

    /// One counter per value of `label`, resolved now so an increment never looks one up.
    fn counters<const N: usize>(
        &self,
        name: &str,
        help: &str,
        label: &str,
        values: [&str; N],
    ) -> [IntCounter; N] {
        let family = self.register(
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid counter family"),
        );
        values.map(|value| family.with_label_values(&[value]))
    }

    fn histogram(&self, name: &str, help: &str, bounds: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(bounds.to_vec());
        self.register(Histogram::with_opts(opts).expect("a valid histogram"))
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let s = Series(Registry::new());
        let index_lag = s.gauge(
            "opslog_index_lag",
            "Committed write groups the search index has not committed yet.",
        );
        let index_segments = s.gauge("opslog_index_segments", "Segments in the search index.");
        let jobs = s.register(
            IntGaugeVec::new(
                Opts::new(
                    "opslog_outbox_jobs",
                    "Outbox rows (webhook deliveries, OTLP spans) by kind and status.",
                ),
                &["kind", "status"],
            )
            .expect("a valid gauge family"),
        );
        let outbox_jobs = OutboxDepth::KINDS.map(|kind| {
            OutboxDepth::STATUSES.map(|status| jobs.with_label_values(&[kind, status.as_str()]))
        });
        let terminal: Vec<OpState> = OpState::ALL
            .iter()
            .copied()
            .filter(|s| s.is_terminal())
            .collect();
        let ended_family = s.register(
            IntCounterVec::new(
                Opts::new(
                    "opslog_operations_ended_total",
                    "Operations that reached a terminal state, by state.",
                ),
                &["state"],
            )
            .expect("a valid counter family"),
        );
        let ended = terminal
            .into_iter()
            .map(|state| (state, ended_family.with_label_values(&[state.as_str()])))
            .collect();
        Metrics {
            commits: s.counter(
                "opslog_store_commits_total",
                "Durable redb commits (each carries a group of requests).",
            ),
            failed_commits: s.counter(
                "opslog_store_failed_commits_total",
                "Write groups that failed and were answered with an error.",
            ),
            commit_seconds: s.histogram(
                "opslog_store_commit_seconds",
                "Time from a write group's first request to its durable commit.",
                &COMMIT_SECONDS,
            ),
            messages_per_commit: s.histogram(
                "opslog_store_messages_per_commit",
                "Messages carried by one durable commit.",
                &MESSAGES_PER_COMMIT,
            ),
            disk_full_rejections: s.counter(
                "opslog_disk_full_rejections_total",
                "Write requests refused with 507 because the disk was full.",
            ),
            feed_seq: AtomicU64::new(0),
            messages_appended: s.counter(
                "opslog_messages_appended_total",
                "Messages acknowledged as durable.",
            ),
            operations_created: s
                .counter("opslog_operations_created_total", "Operations created."),
            retention_sweeps: s.counter(
                "opslog_retention_sweeps_total",
                "Retention sweeps run (each removes what expired since the last).",
            ),
            removed: s.counters(
                "opslog_retention_removed_total",
                "Records removed by retention, by record kind.",
                "record",
                REMOVED_RECORDS,
            ),
            disk_cap_removed: s.counters(
                "opslog_disk_cap_removed_total",
                "Records removed, oldest first, because the data dir was above retention.max_disk.",
                "record",
                CAP_REMOVED_RECORDS,
            ),
            disk_cap_trims: s.counter(
                "opslog_disk_cap_trims_total",
                "Times the data dir was found above retention.max_disk and its oldest operations removed.",
            ),
            erasures_done: s.counter(
                "opslog_erasures_total",
                "Erasures (by connection, end user or integration) carried out to their end.",
            ),
            data_dir_bytes: s.gauge(
                "opslog_data_dir_bytes",
                "The data dir's size on disk (allocated blocks) at the last retention sweep.",
            ),
            held_bytes: s.gauge(
                "opslog_held_bytes",
                "What retention.max_disk is compared with: the store's rows (estimated, with their overhead in the file) plus the index's files, at the last sweep.",
            ),
            outbox_depth: Default::default(),
            outbox_jobs,
            ended,
            index_lag,
            index_segments,
            http_requests: s.counter("opslog_http_requests_total", "HTTP requests answered."),
            http_client_errors: s.counter(
                "opslog_http_client_errors_total",
                "HTTP requests answered with a 4xx.",
            ),
            http_server_errors: s.counter(
                "opslog_http_server_errors_total",
                "HTTP requests answered with a 5xx.",
            ),
            deliveries_queued: s.counter(
                "opslog_webhook_deliveries_queued_total",
                "Webhook deliveries written to the outbox (one per event per URL).",
            ),
            delivery_attempts: s.counter(
                "opslog_webhook_attempts_total",
                "Webhook delivery attempts made.",
            ),
            deliveries_delivered: s.counter(
                "opslog_webhook_deliveries_delivered_total",
                "Webhook deliveries answered with a 2xx.",
            ),
            deliveries_failed: s.counter(
                "opslog_webhook_deliveries_failed_total",
                "Webhook deliveries that ran out of attempts or got a 410.",
            ),
            exports_queued: s.counter(
                "opslog_exports_queued_total",
                "OTLP exports written to the outbox (a span per ended exported operation, a log batch per operation per commit).",
            ),
            export_attempts: s.counter(
                "opslog_exports_attempts_total",
                "OTLP export requests made (one per batch).",
            ),
            exports_delivered: s.counter(
                "opslog_exports_delivered_total",
                "OTLP exports (spans, log batches) accepted by the collector.",
            ),
            exports_failed: s.counter(
                "opslog_exports_failed_total",
                "OTLP exports the collector refused for good or that ran out of retries.",
            ),
            alert_evaluations: s.counter(
                "opslog_alert_evaluations_total",
                "Alert rule evaluations recorded (one per environment with rules per tick).",
            ),
            alert_transitions: s.counter(
                "opslog_alert_transitions_total",
                "Alert rules that started (alert.triggered) or stopped (alert.resolved) firing.",
            ),
            registry: s.0,
        }
    }
}

impl Metrics {
    /// One committed write group: how long it took and how many messages it carried.
    pub fn record_commit(&self, took: Duration, messages: u64) {
        self.commits.inc();
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
            counter.inc_by(n);
        }
    }

    pub fn record_disk_cap_removed(&self, removed: &Removed) {
        let counts = [removed.operations, removed.messages];
        for (counter, n) in self.disk_cap_removed.iter().zip(counts) {
            counter.inc_by(n);
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

    /// Counts an operation that reached `state`; only terminal states are counted.
    pub fn record_end(&self, state: OpState) {
        if let Some((_, counter)) = self.ended.iter().find(|(s, _)| *s == state) {
            counter.inc();
        }
    }

    /// Every series in the Prometheus text format ([`CONTENT_TYPE`]), families sorted by name.
    pub fn render(&self, index: IndexGauges) -> String {
        let feed_seq = self.feed_seq.load(Ordering::Relaxed);
        self.index_lag
            .set(saturating_i64(feed_seq.saturating_sub(index.indexed_seq)));
        self.index_segments
            .set(saturating_i64(index.segments as u64));
        for (gauges, depths) in self.outbox_jobs.iter().zip(&self.outbox_depth) {
            for (gauge, depth) in gauges.iter().zip(depths) {
                gauge.set(depth.load(Ordering::Relaxed).max(0));
            }
        }
        let mut text = String::new();
        TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut text)
            .expect("our series encode: names, labels and help are fixed here");
        text
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples of a rendering, by `name{labels}` as written.
    fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                (series.to_owned(), value.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn every_series_is_rendered_with_help_and_type() {
        let text = Metrics::default().render(IndexGauges::default());
        for (name, kind) in [
            ("opslog_store_commits_total", "counter"),
            ("opslog_operations_ended_total", "counter"),
            ("opslog_retention_removed_total", "counter"),
            ("opslog_outbox_jobs", "gauge"),
            ("opslog_index_lag", "gauge"),
            ("opslog_store_commit_seconds", "histogram"),
            ("opslog_store_messages_per_commit", "histogram"),
        ] {
            assert!(
                text.contains(&format!("\n# TYPE {name} {kind}\n")),
                "{name}"
            );
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        let samples = samples(&text);
        // 69 before notifiers, and an outbox kind's three statuses for `notification`.
        assert_eq!(samples.len(), 72, "{text}");
        assert!(samples.values().all(|v| *v == 0.0), "{text}");
        assert!(samples.contains_key(r#"opslog_operations_ended_total{state="success"}"#));
        assert!(
            !samples.contains_key(r#"opslog_operations_ended_total{state="running"}"#),
            "only terminal states"
        );
        assert!(samples.contains_key(r#"opslog_outbox_jobs{kind="otlp_logs",status="failed"}"#));
        assert!(samples.contains_key(r#"opslog_outbox_jobs{kind="notification",status="failed"}"#));
    }

    #[test]
    fn values_follow_what_was_recorded() {
        let m = Metrics::default();
        m.record_commit(Duration::from_millis(3), 12);
        m.record_commit(Duration::from_secs(9), 0);
        m.messages_appended.inc_by(12);
        m.record_end(OpState::Failed);
        m.record_end(OpState::Running);
        m.record_removed(&Removed {
            operations: 2,
            attempts: 5,
            ..Default::default()
        });
        let mut depth = OutboxDepth::default();
        depth.0[0][0] = 3;
        m.add_outbox_depth(depth);
        depth.0[0][0] = -5;
        depth.0[1][2] = 1;
        m.add_outbox_depth(depth);
        m.feed_seq.store(40, Ordering::Relaxed);
        let samples = samples(&m.render(IndexGauges {
            indexed_seq: 37,
            segments: 4,
        }));
        let value = |series: &str| samples[series];
        assert_eq!(value("opslog_store_commits_total"), 2.0);
        assert_eq!(value("opslog_messages_appended_total"), 12.0);
        assert_eq!(
            value(r#"opslog_operations_ended_total{state="failed"}"#),
            1.0
        );
        assert_eq!(
            value(r#"opslog_retention_removed_total{record="operation"}"#),
            2.0
        );
        assert_eq!(
            value(r#"opslog_retention_removed_total{record="outbox_attempt"}"#),
            5.0
        );
        assert_eq!(
            value(r#"opslog_outbox_jobs{kind="webhook",status="pending"}"#),
            0.0,
            "a depth below zero shows as 0"
        );
        assert_eq!(
            value(r#"opslog_outbox_jobs{kind="otlp_span",status="failed"}"#),
            1.0
        );
        assert_eq!(value("opslog_index_lag"), 3.0);
        assert_eq!(value("opslog_index_segments"), 4.0);
        assert_eq!(
            value(r#"opslog_store_commit_seconds_bucket{le="0.005"}"#),
            1.0
        );
        assert_eq!(
            value(r#"opslog_store_commit_seconds_bucket{le="2.5"}"#),
            1.0
        );
        assert_eq!(
            value(r#"opslog_store_commit_seconds_bucket{le="+Inf"}"#),
            2.0
        );
        assert_eq!(value("opslog_store_commit_seconds_count"), 2.0);
        assert!((value("opslog_store_commit_seconds_sum") - 9.003).abs() < 1e-9);
        assert_eq!(
            value(r#"opslog_store_messages_per_commit_bucket{le="0"}"#),
            1.0
        );
        assert_eq!(
            value(r#"opslog_store_messages_per_commit_bucket{le="100"}"#),
            2.0
        );
        assert_eq!(value("opslog_store_messages_per_commit_sum"), 12.0);
    }

    #[test]
    fn daemons_in_one_process_keep_their_own_series() {
        let a = Metrics::default();
        let b = Metrics::default();
        a.http_requests.inc();
        let a = samples(&a.render(IndexGauges::default()));
        let b = samples(&b.render(IndexGauges::default()));
        assert_eq!(a["opslog_http_requests_total"], 1.0);
        assert_eq!(b["opslog_http_requests_total"], 0.0);
    }
}
