//! The dispatcher: one claim thread reads due jobs from the outbox and hands them to a fixed set
//! of sender threads, keeping at most `outbox.concurrency` attempts in flight overall and
//! `outbox.per_destination` per URL. Each result goes back through the writer (attempt row, new
//! job state, log message) in one commit.
//!
//! Claims are in memory only: a job stays `pending` with its due time in redb until its attempt
//! is recorded, so one in flight at a crash is simply due again after the restart and is sent
//! again with the same `webhook-id`. Sinks are chosen by `JobKind`; the claim/retry machinery
//! knows nothing about HTTP.
//!
//! Must not: run on the async runtime (ureq and redb block), or write to the store directly.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rand::Rng;

use super::job::{Attempt, Job, JobKind, OtlpSpanJob, WebhookJob};
use super::otlp::{self, ExportOutcome};
use super::policy::{self, AttemptResult, Decision};
use super::webhook::{self, WebhookSender};
use crate::config::OutboxConfig;
use crate::ingest::{Command, WriteError, Writer};
use crate::metrics::Metrics;
use crate::model::{DeliveryStatus, Headers, Id, Timestamp};
use crate::settings::Settings;
use crate::store::Store;

/// The longest the claim thread sleeps without a wake-up (a safety net; commits wake it).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Due rows read per claim pass.
const CLAIM_SCAN: usize = 1000;
/// After a result could not be recorded, the job is held back this long before it is claimed
/// again (it is still due in the store).
const RECORD_FAILURE_BACKOFF: Duration = Duration::from_secs(1);

/// Shared between the claim thread, the sender threads and the writer (which wakes it after a
/// commit that queued work).
#[derive(Default)]
pub struct Wake {
    state: Mutex<ClaimState>,
    changed: Condvar,
}

#[derive(Default)]
struct ClaimState {
    woken: bool,
    stopping: bool,
    in_flight: HashSet<Id>,
    per_destination: HashMap<String, usize>,
}

impl Wake {
    /// New work may be due.
    pub fn notify(&self) {
        self.state.lock().expect("outbox lock").woken = true;
        self.changed.notify_all();
    }

    fn release(&self, id: Id, destination: &str) {
        let mut state = self.state.lock().expect("outbox lock");
        state.in_flight.remove(&id);
        if let Some(n) = state.per_destination.get_mut(destination) {
            *n -= 1;
            if *n == 0 {
                state.per_destination.remove(destination);
            }
        }
        state.woken = true;
        self.changed.notify_all();
    }
}

/// What the dispatcher needs.
pub struct DispatcherDeps {
    pub store: Arc<Store>,
    pub writer: Writer,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub config: OutboxConfig,
}

/// The running dispatcher: stop it before the writer.
pub struct Dispatcher {
    wake: Arc<Wake>,
    threads: Vec<JoinHandle<()>>,
}

struct Context {
    deps: DispatcherDeps,
    wake: Arc<Wake>,
    webhooks: WebhookSender,
    otlp: ureq::Agent,
}

impl Dispatcher {
    pub fn start(deps: DispatcherDeps, wake: Arc<Wake>) -> Dispatcher {
        let senders = deps.config.concurrency;
        let context = Arc::new(Context {
            deps,
            wake: wake.clone(),
            webhooks: WebhookSender::default(),
            otlp: otlp::export_agent(),
        });
        let (work_tx, work_rx) = sync_channel::<Job>(senders);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let mut threads = Vec::with_capacity(senders + 1);
        for i in 0..senders {
            let (context, work_rx) = (context.clone(), work_rx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("opslog-outbox-{i}"))
                    .spawn(move || send_claimed_jobs(&context, &work_rx))
                    .expect("spawning an outbox sender thread"),
            );
        }
        threads.push(
            std::thread::Builder::new()
                .name("opslog-outbox-claim".into())
                .spawn(move || claim_due_jobs(&context, work_tx))
                .expect("spawning the outbox claim thread"),
        );
        Dispatcher { wake, threads }
    }

    /// Stops claiming, lets attempts in flight finish for up to `drain`, and returns. Attempts
    /// still running then are abandoned: their jobs are still due in the store and are sent
    /// again (same `webhook-id`) after the next start.
    pub async fn stop(self, drain: Duration) {
        {
            self.wake.state.lock().expect("outbox lock").stopping = true;
            self.wake.changed.notify_all();
        }
        // A plain thread, not spawn_blocking: if an attempt outlives `drain`, the joiner is left
        // behind instead of holding up the runtime's shutdown.
        let threads = self.threads;
        let (joined_tx, joined) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            for thread in threads {
                let _ = thread.join();
            }
            let _ = joined_tx.send(());
        });
        if tokio::time::timeout(drain, joined).await.is_err() {
            tracing::warn!(
                drain_ms = drain.as_millis() as u64,
                "webhook attempts still in flight at shutdown; they are sent again after restart"
            );
        }
    }
}

/// The claim thread: reads due jobs and hands out those whose destination has room, until
/// stopped. Dropping `work` on return lets the sender threads finish and end.
fn claim_due_jobs(context: &Context, work: SyncSender<Job>) {
    let config = &context.deps.config;
    loop {
        let (room, mut in_flight, mut per_destination) = {
            let state = context.wake.state.lock().expect("outbox lock");
            if state.stopping {
                return;
            }
            (
                config.concurrency.saturating_sub(state.in_flight.len()),
                state.in_flight.clone(),
                state.per_destination.clone(),
            )
        };
        let now = Timestamp::now();
        let mut next_due = None;
        let mut claimed = Vec::new();
        if room > 0 {
            match context
                .deps
                .store
                .read()
                .and_then(|read| read.due_jobs(now, CLAIM_SCAN))
            {
                Ok(due) => {
                    next_due = due.next_due;
                    for job in due.jobs {
                        if claimed.len() == room {
                            break;
                        }
                        let destination = job.kind.destination();
                        let busy = per_destination.get(destination).copied().unwrap_or(0);
                        if in_flight.contains(&job.id) || busy >= config.per_destination {
                            continue;
                        }
                        in_flight.insert(job.id);
                        *per_destination.entry(destination.to_owned()).or_default() += 1;
                        claimed.push(job);
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read due outbox jobs"),
            }
        }
        {
            let mut state = context.wake.state.lock().expect("outbox lock");
            for job in &claimed {
                state.in_flight.insert(job.id);
                *state
                    .per_destination
                    .entry(job.kind.destination().to_owned())
                    .or_default() += 1;
            }
        }
        for job in claimed {
            // Never blocks for long: the channel holds `concurrency` jobs and at most that many
            // are claimed and not yet released.
            if work.send(job).is_err() {
                return;
            }
        }
        let wait = next_due
            .map(|at| Duration::from_millis(at.millis().saturating_sub(now.millis()).max(0) as u64))
            .unwrap_or(IDLE_POLL)
            .min(IDLE_POLL);
        let mut state = context.wake.state.lock().expect("outbox lock");
        if !state.woken && !state.stopping {
            state = context
                .wake
                .changed
                .wait_timeout(state, wait)
                .expect("outbox lock")
                .0;
        }
        state.woken = false;
    }
}

/// A sender thread: attempts claimed jobs one at a time until the claim thread is gone.
fn send_claimed_jobs(context: &Context, work: &Mutex<Receiver<Job>>) {
    loop {
        let job = match work.lock().expect("outbox work lock").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let destination = job.kind.destination().to_owned();
        if context.wake.state.lock().expect("outbox lock").stopping {
            // Claimed but not started: leave it due in the store for the next start.
            context.wake.release(job.id, &destination);
            continue;
        }
        let recorded = match &job.kind {
            JobKind::Webhook(webhook) => attempt_webhook(context, &job, webhook),
            JobKind::OtlpSpan(span) => attempt_span(context, &job, span),
        };
        if let Err(e) = recorded {
            if !matches!(e, WriteError::ShuttingDown) {
                tracing::error!(job_id = %job.id, error = %e, "cannot record an outbox attempt");
                std::thread::sleep(RECORD_FAILURE_BACKOFF);
            }
        }
        context.wake.release(job.id, &destination);
    }
}

/// Signs and sends one attempt of a webhook delivery and records what happened.
fn attempt_webhook(context: &Context, job: &Job, webhook: &WebhookJob) -> Result<(), WriteError> {
    let deps = &context.deps;
    let started_at = Timestamp::now();
    let number = job.attempts + 1;
    let Some(settings) = deps.settings.get(&job.environment) else {
        let attempt = Attempt {
            number,
            started_at,
            url: webhook.url.clone(),
            status: None,
            error: Some(format!(
                "environment `{}` is no longer configured",
                job.environment
            )),
            response_excerpt: None,
            duration_ms: 0,
            webhook_timestamp: started_at.millis() / 1000,
            outcome: DeliveryStatus::Failed,
            retry_at: None,
        };
        return record(deps, job, attempt, Headers::new());
    };
    let timestamp = started_at.millis().div_euclid(1000);
    let secrets = settings.webhooks.signing_secrets(started_at);
    let request = webhook::sign(
        &webhook.url,
        &job.webhook_id(),
        &webhook.body,
        &secrets,
        timestamp,
    );
    let sent = context.webhooks.send(&request, settings.webhooks.timeout);
    deps.metrics
        .delivery_attempts
        .fetch_add(1, Ordering::Relaxed);
    let decision = policy::decide(
        &sent.result,
        job.round_attempts + 1,
        &settings.webhooks.retry_schedule,
        deps.config.max_retry_after.0,
        rand::rng().random_range(-1.0..=1.0),
    );
    let (status, mut error) = match &sent.result {
        AttemptResult::Response { status, .. } => (Some(*status), None),
        AttemptResult::NoResponse(e) => (None, Some(e.clone())),
    };
    let (outcome, retry_at) = match decision {
        Decision::Delivered => (DeliveryStatus::Delivered, None),
        Decision::RetryIn(delay) => (
            DeliveryStatus::Pending,
            Some(Timestamp::now().plus_millis(delay.as_millis() as i64)),
        ),
        Decision::Failed(reason) => {
            error = Some(match error {
                Some(e) => format!("{e}; {reason}"),
                None => reason,
            });
            (DeliveryStatus::Failed, None)
        }
    };
    match outcome {
        DeliveryStatus::Delivered => {
            tracing::debug!(delivery_id = %job.id, number, "webhook delivered")
        }
        _ => tracing::info!(
            delivery_id = %job.id,
            number,
            status,
            error = error.as_deref().unwrap_or(""),
            outcome = %outcome,
            "webhook attempt not delivered"
        ),
    }
    let attempt = Attempt {
        number,
        started_at,
        url: webhook.url.clone(),
        status,
        error,
        response_excerpt: sent.excerpt,
        duration_ms: sent.duration.as_millis() as u64,
        webhook_timestamp: timestamp,
        outcome,
        retry_at,
    };
    let logged: Headers = request
        .headers
        .iter()
        .filter(|(name, _)| !name.contains("signature") && !name.contains("hmac"))
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    record(deps, job, attempt, logged)
}

/// Exports one queued span to its environment's collector and records what happened. Spans
/// cause no events and have no log operation.
fn attempt_span(context: &Context, job: &Job, span: &OtlpSpanJob) -> Result<(), WriteError> {
    let deps = &context.deps;
    let started_at = Timestamp::now();
    let number = job.attempts + 1;
    let outcome = match deps.settings.otel(&job.environment) {
        None => ExportOutcome::Failed {
            status: None,
            reason: format!(
                "environment `{}` no longer has an OTel collector",
                job.environment
            ),
        },
        Some(target) => match decode_span(span) {
            Ok(decoded) => {
                deps.metrics.export_attempts.fetch_add(1, Ordering::Relaxed);
                otlp::export_spans(&context.otlp, target, &[decoded])
            }
            Err(reason) => ExportOutcome::Failed {
                status: None,
                reason,
            },
        },
    };
    let duration_ms = Timestamp::now()
        .millis()
        .saturating_sub(started_at.millis())
        .max(0) as u64;
    let (status, error, outcome, retry_at) = match outcome {
        ExportOutcome::Delivered {
            rejected_spans,
            message,
        } => {
            let error = (rejected_spans > 0 || message.is_some()).then(|| {
                format!(
                    "partial success: {rejected_spans} spans rejected: {}",
                    message.unwrap_or_default()
                )
            });
            (None, error, DeliveryStatus::Delivered, None)
        }
        ExportOutcome::Retry {
            status,
            after,
            reason,
        } => {
            let delay = otlp::retry_delay(after, job.round_attempts + 1, rand::rng().random());
            let retry_at = Timestamp::now().plus_millis(delay.as_millis() as i64);
            (
                status,
                Some(reason),
                DeliveryStatus::Pending,
                Some(retry_at),
            )
        }
        ExportOutcome::Failed { status, reason } => {
            (status, Some(reason), DeliveryStatus::Failed, None)
        }
    };
    tracing::debug!(
        job_id = %job.id,
        number,
        status,
        error = error.as_deref().unwrap_or(""),
        outcome = %outcome,
        "OTLP export attempt"
    );
    let attempt = Attempt {
        number,
        started_at,
        url: span.url.clone(),
        status,
        error,
        response_excerpt: None,
        duration_ms,
        webhook_timestamp: 0,
        outcome,
        retry_at,
    };
    record(deps, job, attempt, Headers::new())
}

fn decode_span(job: &OtlpSpanJob) -> Result<opentelemetry_proto::tonic::trace::v1::Span, String> {
    if job.format != super::job::OTLP_SPAN_FORMAT_V1 {
        return Err(format!("unknown span format {}", job.format));
    }
    prost::Message::decode(&job.span[..]).map_err(|e| format!("cannot decode the stored span: {e}"))
}

fn record(
    deps: &DispatcherDeps,
    job: &Job,
    attempt: Attempt,
    request_headers: Headers,
) -> Result<(), WriteError> {
    deps.writer
        .submit_blocking(Command::RecordAttempt {
            job: job.id,
            attempt,
            request_headers,
        })
        .map(|_| ())
}
