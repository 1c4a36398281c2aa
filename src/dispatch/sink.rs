//! What a sink is: one kind of destination (webhook URLs, OTLP collectors, …) that owns how its
//! jobs are sent and what each attempt came to. The dispatcher claims due jobs, groups them into
//! requests as the sink says ([`Requests`]), keeps the concurrency limits, and records what
//! [`Sink::attempt`] answers through the writer; it never looks inside a job.
//!
//! Adding a sink (docs/architecture.md §8): its job record as a `JobKind` variant in
//! `src/model/job.rs`, one file in `src/dispatch/` with a type that implements [`Sink`], and its
//! line in `dispatch::sinks`. The test `every_job_kind_has_exactly_one_sink` fails until all three
//! agree.
//!
//! Must not: write to the store (a sink answers attempts; the writer records them), sleep or
//! retry by itself (the next attempt's time is part of the answer, from `outbox::policy`).

use std::sync::Arc;

use crate::config::OutboxConfig;
use crate::metrics::Metrics;
use crate::model::job::{Attempt, Job, JobKind};
use crate::model::{DeliveryStatus, Headers, Timestamp};
use crate::settings::Settings;
use crate::store::Store;
use crate::write::RecordedAttempt;

/// What every sink may use to make its attempts.
#[derive(Clone)]
pub struct SinkDeps {
    /// Each environment's settings as they are now (secrets, collectors, timeouts), and where
    /// sinks may connect (`settings.destinations()`).
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Retry limits shared by every sink (`outbox.max_retry_after`, the exports' backoff).
    pub config: OutboxConfig,
    /// Read only: what a webhook is about, for the `traceparent` of its operation's span.
    pub store: Arc<Store>,
}

/// How a sink's jobs go out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requests {
    /// One job per request (a webhook delivery).
    OnePerJob,
    /// Due jobs of one environment, one `JobKind` variant and one destination share a request,
    /// up to this budget ([`Sink::size`] says what each job takes); the request counts as one
    /// attempt in flight, and each job still gets its own attempt row.
    Batched(RequestBudget),
}

/// A destination kind. Implementations are shared by the dispatcher's sender threads and block
/// on network I/O (they never run on the async runtime).
pub trait Sink: Send + Sync {
    /// Whether this sink sends jobs of `kind`; exactly one registered sink says yes for each.
    fn sends(&self, kind: &JobKind) -> bool;

    /// How this sink's jobs share requests.
    fn requests(&self) -> Requests {
        Requests::OnePerJob
    }

    /// For [`Requests::Batched`]: the items and encoded bytes `job` adds to a request (kept
    /// together: one job is never split).
    fn size(&self, _job: &Job) -> (usize, usize) {
        (1, 0)
    }

    /// Makes one attempt at `jobs` (one job, or a batch the dispatcher built as [`Sink::requests`]
    /// says) and answers one attempt per job: what happened and what the job does next
    /// (`outcome`, and `retry_at` while it stays pending). Never fails: a job that cannot be sent
    /// gets a failed attempt saying why.
    fn attempt(&self, jobs: &[Job]) -> Vec<RecordedAttempt>;
}

/// How full one batched request is: at most `max_items` items and, unless a single job is larger,
/// at most `max_bytes` of encoded items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestBudget {
    max_items: usize,
    max_bytes: usize,
    items: usize,
    bytes: usize,
}

impl RequestBudget {
    /// An empty request that holds up to `max_items` items and `max_bytes` bytes.
    pub const fn new(max_items: usize, max_bytes: usize) -> RequestBudget {
        RequestBudget {
            max_items,
            max_bytes,
            items: 0,
            bytes: 0,
        }
    }

    /// Takes `items` items of `bytes` encoded bytes (kept together: one job's) when they fit; an
    /// empty request takes anything, so an oversized job is sent alone rather than never.
    pub fn try_add(&mut self, items: usize, bytes: usize) -> bool {
        let empty = self.items == 0 && self.bytes == 0;
        if !empty && (self.items + items > self.max_items || self.bytes + bytes > self.max_bytes) {
            return false;
        }
        self.items += items;
        self.bytes += bytes;
        true
    }
}

/// The attempt of a job that was not sent at all (its environment or target is gone, its stored
/// payload is unreadable): failed for good, with `reason`.
pub fn not_sent(job: &Job, url: &str, reason: String) -> RecordedAttempt {
    let started_at = Timestamp::now();
    RecordedAttempt {
        job: job.id,
        attempt: Attempt {
            number: job.attempts + 1,
            started_at,
            url: url.to_owned(),
            status: None,
            error: Some(reason),
            response_excerpt: None,
            duration_ms: 0,
            webhook_timestamp: 0,
            outcome: DeliveryStatus::Failed,
            retry_at: None,
            batch_size: None,
            rejected: None,
        },
        request_headers: Headers::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_takes_items_until_either_limit_and_an_oversized_job_alone() {
        let mut budget = RequestBudget::new(3, 100);
        assert!(budget.try_add(2, 40));
        assert!(!budget.try_add(2, 10), "five items");
        assert!(!budget.try_add(1, 61), "101 bytes");
        assert!(budget.try_add(1, 60));
        assert!(!budget.try_add(1, 0));

        let mut empty = RequestBudget::new(3, 100);
        assert!(empty.try_add(10, 1_000), "an empty request takes anything");
        assert!(!empty.try_add(1, 1));
    }
}
