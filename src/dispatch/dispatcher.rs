//! The dispatcher: one claim thread reads due jobs from the outbox and hands them to a fixed set
//! of sender threads, keeping at most `outbox.concurrency` attempts in flight overall and
//! `outbox.per_destination` requests at once per URL. Each result goes back through the writer
//! (attempt row, new job state, log message) in one commit; the URL takes its next request as soon
//! as a response is in, while the result is still being committed.
//!
//! Claims are in memory only: a job stays `pending` with its due time in redb until its attempt
//! is recorded, so one in flight at a crash is simply due again after the restart and is sent
//! again with the same `webhook-id`. Sinks are chosen by `JobKind`; the claim/retry machinery
//! knows nothing about HTTP.
//!
//! Due jobs are read a page at a time in due order; a destination that is full (slow or dead)
//! with a long backlog at the front does not hide the jobs behind it (`scan_due_jobs` has the
//! rule).
//!
//! Webhooks go one job per request. Export jobs due for the same environment and collector are
//! claimed together, up to one request's worth (`otlp::RequestBudget`: 512 items, 4 MiB), and
//! sent as one request; a batch counts as one attempt in flight, its outcome applies to every job
//! in it, and each job still gets its own attempt row.
//!
//! Must not: run on the async runtime (ureq and redb block), or write to the store directly.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::Rng;

use super::otlp::{self, ExportOutcome};
use super::webhook::{self, WebhookSender};
use crate::config::OutboxConfig;
use crate::metrics::Metrics;
use crate::model::job::{Attempt, Job, JobKind, OtlpLogsJob, OtlpSpanJob, WebhookJob};
use crate::model::{DeliveryStatus, EventType, Headers, Id, Timestamp};
use crate::outbox::policy::{self, AttemptResult, Decision, Schedule};
use crate::settings::Settings;
use crate::store::{DueJobs, DueKey, Store, StoreError};
use crate::write::{RecordAttempts, RecordedAttempt, WriteError, Writer};

/// The longest the claim thread sleeps without a wake-up (a safety net; commits wake it).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Due rows read per page; a claim pass reads one, and a deep scan up to `DEEP_SCAN_PAGES` more
/// (see `scan_due_jobs`).
const CLAIM_SCAN: usize = 1000;
/// Pages a deep scan reads at most, after the first page of a pass.
const DEEP_SCAN_PAGES: usize = 10;
/// How long after a deep scan that claimed nothing the next may start. A deep scan of 10 pages
/// over a blocked backlog took ~30 ms on a loaded 2-core machine, so this caps it near 6% of a
/// core.
const DEEP_SCAN_REST: Duration = Duration::from_millis(500);
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
    /// Jobs claimed and not yet released.
    in_flight: HashSet<Id>,
    /// Work items (a delivery or an export batch) claimed and not yet released.
    in_flight_work: usize,
    /// Requests in flight per destination URL (released when the response is in).
    per_destination: HashMap<String, usize>,
}

impl Wake {
    /// New work may be due.
    pub fn notify(&self) {
        self.state.lock().expect("outbox lock").woken = true;
        self.changed.notify_all();
    }

    /// The work's request is over: its URL may take another.
    fn release_destination(&self, work: &Work) {
        let destination = work.destination();
        let mut state = self.state.lock().expect("outbox lock");
        if let Some(n) = state.per_destination.get_mut(destination) {
            *n -= 1;
            if *n == 0 {
                state.per_destination.remove(destination);
            }
        }
        state.woken = true;
        self.changed.notify_all();
    }

    /// The work's outcome is recorded (or given up on): its jobs may be claimed again.
    fn release(&self, work: &Work) {
        let mut state = self.state.lock().expect("outbox lock");
        for job in work.jobs() {
            state.in_flight.remove(&job.id);
        }
        state.in_flight_work -= 1;
        state.woken = true;
        self.changed.notify_all();
    }
}

/// What one sender thread is handed: one webhook delivery, or a batch of export jobs of one
/// environment and signal for one collector, sent in one request.
enum Work {
    Delivery(Box<Job>),
    Exports(Vec<Job>),
}

impl Work {
    fn jobs(&self) -> &[Job] {
        match self {
            Work::Delivery(job) => std::slice::from_ref(job.as_ref()),
            Work::Exports(jobs) => jobs,
        }
    }

    /// The per-destination key: the same for every job of a batch.
    fn destination(&self) -> &str {
        self.jobs()[0].kind.destination()
    }
}

/// An export batch being filled by the claim thread.
struct OpenBatch {
    environment: String,
    /// Which `JobKind` (signal) and collector URL its jobs share.
    kind: std::mem::Discriminant<JobKind>,
    destination: String,
    budget: otlp::RequestBudget,
    jobs: Vec<Job>,
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
        let destinations = deps.settings.destinations().clone();
        let context = Arc::new(Context {
            deps,
            wake: wake.clone(),
            webhooks: WebhookSender::new(destinations.clone()),
            otlp: otlp::export_agent(destinations),
        });
        let (work_tx, work_rx) = sync_channel::<Work>(senders);
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

/// The claim thread: reads due jobs and hands out work whose destination has room, until
/// stopped. Dropping `work` on return lets the sender threads finish and end.
fn claim_due_jobs(context: &Context, work: SyncSender<Work>) {
    let config = &context.deps.config;
    let mut deep_scan = DeepScan::default();
    loop {
        let (room, in_flight, per_destination) = {
            let state = context.wake.state.lock().expect("outbox lock");
            if state.stopping {
                return;
            }
            (
                config.concurrency.saturating_sub(state.in_flight_work),
                state.in_flight.clone(),
                state.per_destination.clone(),
            )
        };
        let now = Timestamp::now();
        let started = Instant::now();
        let mut next_due = None;
        let mut claims = Claims {
            room,
            per_destination_limit: config.per_destination,
            in_flight: &in_flight,
            per_destination,
            deliveries: Vec::new(),
            batches: Vec::new(),
        };
        if room > 0 {
            let scanned = context.deps.store.read().and_then(|read| {
                scan_due_jobs(&mut claims, &mut deep_scan, started, |after| {
                    read.due_jobs(now, after, CLAIM_SCAN)
                })
            });
            match scanned {
                Ok(due) => next_due = due,
                Err(e) => tracing::error!(error = %e, "cannot read due outbox jobs"),
            }
        }
        let claimed = claims.into_work();
        {
            let mut state = context.wake.state.lock().expect("outbox lock");
            for work in &claimed {
                state.in_flight_work += 1;
                state.in_flight.extend(work.jobs().iter().map(|j| j.id));
                *state
                    .per_destination
                    .entry(work.destination().to_owned())
                    .or_default() += 1;
            }
        }
        for item in claimed {
            // Never blocks for long: the channel holds `concurrency` items and at most that many
            // are claimed and not yet released.
            if work.send(item).is_err() {
                return;
            }
        }
        let mut wait = next_due
            .map(|at| Duration::from_millis(at.millis().saturating_sub(now.millis()).max(0) as u64))
            .unwrap_or(IDLE_POLL)
            .min(IDLE_POLL);
        if let Some(rest_until) = deep_scan.rest_until.filter(|&at| at > started) {
            wait = wait.min(rest_until - started);
        }
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

/// Where the deep scan of the due jobs (past the first page) stands between claim passes.
#[derive(Default)]
struct DeepScan {
    /// The next deep scan starts after this row; `None`: right after the first page.
    resume_after: Option<DueKey>,
    /// The last deep scan claimed nothing: the next waits until then.
    rest_until: Option<Instant>,
}

/// One claim pass over the due jobs: offers them to `claims` in due order, reading pages of
/// `CLAIM_SCAN` rows with `page(after)`, and returns when the next job after now is due.
///
/// The rule, so that one slow or dead destination with a long backlog cannot starve the others:
/// - Every pass reads the first page, from the front of the due order: the jobs waiting longest
///   go first, as long as their destination has room.
/// - If that page was full and the pass still has room (the front is held by destinations that
///   are full), it reads on — a deep scan of at most `DEEP_SCAN_PAGES` more pages, stopping
///   early once the pass has no room left. A deep scan starts where the last one stopped and
///   wraps round to just after the first page at the end of the due jobs, so successive scans
///   go round the whole backlog rather than rereading its start.
/// - A deep scan that claimed nothing makes the next one wait `DEEP_SCAN_REST`: a blocked
///   backlog costs at most `DEEP_SCAN_PAGES` pages per rest, however often commits wake the
///   claim thread. So every due job is looked at within about
///   backlog / (`DEEP_SCAN_PAGES` × `CLAIM_SCAN`) rests.
fn scan_due_jobs(
    claims: &mut Claims,
    deep_scan: &mut DeepScan,
    now: Instant,
    mut page: impl FnMut(Option<DueKey>) -> Result<DueJobs, StoreError>,
) -> Result<Option<Timestamp>, StoreError> {
    let first = page(None)?;
    for (_, job) in first.jobs {
        claims.offer(job);
    }
    let Some(first_end) = first.more_after else {
        // Every due job fitted in the first page.
        *deep_scan = DeepScan::default();
        return Ok(first.next_due);
    };
    if claims.is_full() || deep_scan.rest_until.is_some_and(|at| now < at) {
        return Ok(first.next_due);
    }
    let mut after = deep_scan
        .resume_after
        .filter(|&row| row > first_end)
        .unwrap_or(first_end);
    let (mut claimed_any, mut went_round) = (false, false);
    'pages: for _ in 0..DEEP_SCAN_PAGES {
        let due = page(Some(after))?;
        for (row, job) in due.jobs {
            if claims.is_full() {
                break 'pages;
            }
            claimed_any |= claims.offer(job);
            after = row;
        }
        match due.more_after {
            Some(row) => after = row,
            None => {
                went_round = true;
                break;
            }
        }
    }
    *deep_scan = DeepScan {
        resume_after: (!went_round).then_some(after),
        rest_until: (!claimed_any).then(|| now + DEEP_SCAN_REST),
    };
    Ok(first.next_due)
}

/// The work one claim pass hands out, decided job by job in due order.
struct Claims<'a> {
    /// Work items the pass may claim: `outbox.concurrency` less those in flight.
    room: usize,
    per_destination_limit: usize,
    /// Jobs already claimed by earlier passes and not yet released.
    in_flight: &'a HashSet<Id>,
    /// Work items in flight per destination, counting those claimed by this pass.
    per_destination: HashMap<String, usize>,
    deliveries: Vec<Work>,
    batches: Vec<OpenBatch>,
}

impl Claims<'_> {
    fn is_full(&self) -> bool {
        self.deliveries.len() + self.batches.len() >= self.room
    }

    /// Claims `job` if it joins an open export batch for its collector or its destination has
    /// room for one more work item; says whether it did.
    fn offer(&mut self, job: Job) -> bool {
        if self.in_flight.contains(&job.id) {
            return false;
        }
        if let Some((items, bytes)) = job.kind.export_size() {
            let kind = std::mem::discriminant(&job.kind);
            if let Some(batch) = self.batches.iter_mut().find(|b| {
                b.environment == job.environment
                    && b.kind == kind
                    && b.destination == job.kind.destination()
            }) {
                if batch.budget.try_add(items, bytes) {
                    batch.jobs.push(job);
                    return true;
                }
            }
        }
        // Otherwise it needs a slot of its own.
        let destination = job.kind.destination();
        let busy = self.per_destination.get(destination).copied().unwrap_or(0);
        if self.is_full() || busy >= self.per_destination_limit {
            return false;
        }
        *self
            .per_destination
            .entry(destination.to_owned())
            .or_default() += 1;
        match job.kind.export_size() {
            None => self.deliveries.push(Work::Delivery(Box::new(job))),
            Some((items, bytes)) => {
                let mut budget = otlp::RequestBudget::default();
                budget.try_add(items, bytes);
                self.batches.push(OpenBatch {
                    environment: job.environment.clone(),
                    kind: std::mem::discriminant(&job.kind),
                    destination: destination.to_owned(),
                    budget,
                    jobs: vec![job],
                });
            }
        }
        true
    }

    fn into_work(self) -> Vec<Work> {
        let mut work = self.deliveries;
        work.extend(self.batches.into_iter().map(|b| Work::Exports(b.jobs)));
        work
    }
}

/// A sender thread: attempts claimed work one item at a time until the claim thread is gone.
fn send_claimed_jobs(context: &Context, work: &Mutex<Receiver<Work>>) {
    loop {
        let item = match work.lock().expect("outbox work lock").recv() {
            Ok(item) => item,
            Err(_) => return,
        };
        if context.wake.state.lock().expect("outbox lock").stopping {
            // Claimed but not started: leave it due in the store for the next start.
            context.wake.release_destination(&item);
            context.wake.release(&item);
            continue;
        }
        let outcome = match &item {
            Work::Delivery(job) => match &job.kind {
                JobKind::Webhook(webhook) => attempt_webhook(context, job, webhook, None),
                JobKind::NangoWebhook(nango) => attempt_webhook(
                    context,
                    job,
                    &nango.delivery,
                    Some(&nango.forwarded_headers),
                ),
                _ => unreachable!("exports are claimed as batches"),
            },
            Work::Exports(jobs) => attempt_exports(context, jobs),
        };
        // The request is over: another may go to this URL while this outcome is committed.
        // The jobs stay claimed until it is, so none is sent twice meanwhile.
        context.wake.release_destination(&item);
        let recorded = context.deps.writer.submit_blocking(outcome);
        if let Err(e) = recorded {
            if !matches!(e, WriteError::ShuttingDown) {
                let job_id = item.jobs()[0].id;
                tracing::error!(%job_id, jobs = item.jobs().len(), error = %e, "cannot record an outbox attempt");
                std::thread::sleep(RECORD_FAILURE_BACKOFF);
            }
        }
        context.wake.release(&item);
    }
}

/// Signs and sends one attempt of a webhook delivery; answers the command that records it.
/// `nango`: the delivery is in the Nango format, with these forwarded headers.
fn attempt_webhook(
    context: &Context,
    job: &Job,
    webhook: &WebhookJob,
    nango: Option<&[(String, String)]>,
) -> RecordAttempts {
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
            batch_size: None,
            rejected: None,
        };
        return record(job, attempt, Headers::new());
    };
    let timestamp = started_at.millis().div_euclid(1000);
    let secrets = settings.webhooks.signing_secrets(started_at);
    let mut request = match nango {
        None => webhook::sign(
            &webhook.url,
            &job.webhook_id(),
            &webhook.body,
            &secrets,
            timestamp,
        ),
        Some(forwarded) => webhook::sign_nango(
            &webhook.url,
            &job.webhook_id(),
            &webhook.body,
            &secrets,
            timestamp,
            forwarded,
        ),
    };
    request.headers.extend(trace_headers(context, webhook));
    let sent = context.webhooks.send(&request, settings.webhooks.timeout);
    deps.metrics.delivery_attempts.inc();
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
            Some(Timestamp::now().plus_millis(policy::millis(delay))),
        ),
        Decision::Failed(reason) => {
            // The last answer leads, so an operation failed by this delivery says what it was.
            error = Some(match (error, status) {
                (Some(e), _) => format!("{e}; {reason}"),
                (None, Some(status)) if !reason.starts_with(&status.to_string()) => {
                    format!("HTTP {status}; {reason}")
                }
                (None, _) => reason,
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
        batch_size: None,
        rejected: None,
    };
    let logged: Headers = request
        .headers
        .iter()
        .filter(|(name, _)| !name.contains("signature") && !name.contains("hmac"))
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    record(job, attempt, logged)
}

/// `traceparent` (and `tracestate`) of the span of the operation a delivery is about, so the
/// receiver's handling joins its trace; none for an alert, or when the operation is gone.
fn trace_headers(context: &Context, webhook: &WebhookJob) -> Vec<(String, String)> {
    if matches!(
        webhook.event,
        EventType::AlertTriggered | EventType::AlertResolved
    ) {
        return Vec::new();
    }
    let operation = match context
        .deps
        .store
        .read()
        .and_then(|read| read.operation(webhook.operation_id))
    {
        Ok(Some(operation)) => operation,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(operation_id = %webhook.operation_id, error = %e, "cannot read a delivery's operation for its traceparent");
            return Vec::new();
        }
    };
    let mut headers = vec![(
        "traceparent".to_owned(),
        crate::otel::operation_traceparent(&operation),
    )];
    if let Some(state) = operation.trace_context.and_then(|ctx| ctx.tracestate) {
        headers.push(("tracestate".to_owned(), state));
    }
    headers
}

/// Exports a batch of queued jobs (one environment, one signal) in one request to the
/// environment's collector and records what happened: one attempt row per job, all in one commit.
/// A job whose stored payload cannot be read fails alone; the rest are still sent. Exports cause
/// no events and have no log operation.
fn attempt_exports(context: &Context, jobs: &[Job]) -> RecordAttempts {
    let deps = &context.deps;
    let started_at = Timestamp::now();
    let environment = &jobs[0].environment;
    // A batch holds one kind of job (the claim thread groups by kind), so one of these stays empty.
    let mut spans = Vec::new();
    let mut records = Vec::new();
    let mut sent = Vec::with_capacity(jobs.len());
    let mut attempts = Vec::with_capacity(jobs.len());
    for job in jobs {
        let decoded = match &job.kind {
            JobKind::OtlpSpan(span) => decode_span(span).map(|s| spans.push(s)),
            JobKind::OtlpLogs(logs) => decode_logs(logs).map(|r| records.extend(r)),
            JobKind::Webhook(_) | JobKind::NangoWebhook(_) => {
                Err("a webhook delivery is not an export".to_owned())
            }
        };
        match decoded {
            Ok(()) => sent.push(job),
            Err(reason) => {
                let outcome = ExportOutcome::Failed {
                    status: None,
                    reason,
                };
                let url = job.kind.destination();
                attempts.push(export_attempt(
                    deps, job, started_at, url, 1, &outcome, None,
                ));
            }
        }
    }
    if !sent.is_empty() {
        // Pending exports follow the environment's collector as it is now.
        let (url, outcome) = match deps.settings.otel(environment) {
            None => (
                sent[0].kind.destination().to_owned(),
                ExportOutcome::Failed {
                    status: None,
                    reason: format!("environment `{environment}` no longer has an OTel collector"),
                },
            ),
            Some(target) => {
                deps.metrics.export_attempts.inc();
                if records.is_empty() {
                    let outcome = otlp::export_spans(&context.otlp, &target, &spans);
                    (target.traces_url().to_owned(), outcome)
                } else {
                    let outcome = otlp::export_logs(&context.otlp, &target, &records);
                    (target.logs_url().to_owned(), outcome)
                }
            }
        };
        // One retry time for the whole batch, so its jobs stay due together; the backoff never
        // runs out (each job's retry window ends its round, in `export_attempt`).
        let retry_at = match &outcome {
            ExportOutcome::Retry { after, .. } => {
                let round = sent.iter().map(|j| j.round_attempts).max().unwrap_or(0);
                policy::retry_in(
                    Schedule::Backoff {
                        longest: deps.config.export_max_backoff.0,
                    },
                    round + 1,
                    *after,
                    deps.config.max_retry_after.0,
                    rand::rng().random_range(-1.0..=1.0),
                )
                .map(|delay| Timestamp::now().plus_millis(policy::millis(delay)))
            }
            _ => None,
        };
        tracing::debug!(
            job_id = %sent[0].id,
            jobs = sent.len(),
            outcome = ?outcome,
            "OTLP export attempt"
        );
        for job in sent.iter().copied() {
            attempts.push(export_attempt(
                deps,
                job,
                started_at,
                &url,
                sent.len(),
                &outcome,
                retry_at,
            ));
        }
    }
    RecordAttempts(attempts)
}

/// The attempt row of one job of an export request to `url` that came to `outcome`.
fn export_attempt(
    deps: &DispatcherDeps,
    job: &Job,
    started_at: Timestamp,
    url: &str,
    batch_size: usize,
    outcome: &ExportOutcome,
    retry_at: Option<Timestamp>,
) -> RecordedAttempt {
    let duration_ms = Timestamp::now()
        .millis()
        .saturating_sub(started_at.millis())
        .max(0) as u64;
    let (status, error, rejected, outcome, retry_at) = match outcome {
        ExportOutcome::Delivered {
            status,
            rejected,
            message,
        } => {
            let error = (*rejected > 0 || message.is_some()).then(|| {
                format!(
                    "partial success: the collector rejected {rejected} of the request's items: {}",
                    message.as_deref().unwrap_or("")
                )
            });
            let rejected = (*rejected > 0).then_some(*rejected);
            (
                Some(*status),
                error,
                rejected,
                DeliveryStatus::Delivered,
                None,
            )
        }
        ExportOutcome::Retry { status, reason, .. } => {
            let retry_for = deps.config.export_retry_for.0;
            let gives_up = retry_at.is_none_or(|at| {
                policy::export_gives_up(job.round_started_at.millis(), at.millis(), retry_for)
            });
            if gives_up {
                let reason = format!(
                    "gave up after {} attempts over {} (outbox.export_retry_for): {reason}",
                    job.round_attempts + 1,
                    humantime::format_duration(retry_for)
                );
                (*status, Some(reason), None, DeliveryStatus::Failed, None)
            } else {
                (
                    *status,
                    Some(reason.clone()),
                    None,
                    DeliveryStatus::Pending,
                    retry_at,
                )
            }
        }
        ExportOutcome::Failed { status, reason } => (
            *status,
            Some(reason.clone()),
            None,
            DeliveryStatus::Failed,
            None,
        ),
    };
    let attempt = Attempt {
        number: job.attempts + 1,
        started_at,
        url: url.to_owned(),
        status,
        error,
        response_excerpt: None,
        duration_ms,
        webhook_timestamp: 0,
        outcome,
        retry_at,
        batch_size: Some(batch_size as u32),
        rejected,
    };
    RecordedAttempt {
        job: job.id,
        attempt,
        request_headers: Headers::new(),
    }
}

fn decode_logs(
    job: &OtlpLogsJob,
) -> Result<Vec<opentelemetry_proto::tonic::logs::v1::LogRecord>, String> {
    if job.format != crate::model::job::OTLP_LOGS_FORMAT_V1 {
        return Err(format!("unknown log records format {}", job.format));
    }
    let scope: opentelemetry_proto::tonic::logs::v1::ScopeLogs =
        prost::Message::decode(&job.records[..])
            .map_err(|e| format!("cannot decode the stored log records: {e}"))?;
    Ok(scope.log_records)
}

fn decode_span(job: &OtlpSpanJob) -> Result<opentelemetry_proto::tonic::trace::v1::Span, String> {
    if job.format != crate::model::job::OTLP_SPAN_FORMAT_V1 {
        return Err(format!("unknown span format {}", job.format));
    }
    prost::Message::decode(&job.span[..]).map_err(|e| format!("cannot decode the stored span: {e}"))
}

fn record(job: &Job, attempt: Attempt, request_headers: Headers) -> RecordAttempts {
    RecordAttempts(vec![RecordedAttempt {
        job: job.id,
        attempt,
        request_headers,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{OtlpSpanJob, WebhookJob};

    /// Due webhook jobs, one per destination in `destinations`, due one ms apart in that order.
    fn due_list(destinations: &[&str]) -> Vec<(DueKey, Job)> {
        destinations
            .iter()
            .enumerate()
            .map(|(i, url)| {
                let mut job = crate::store::tests_support::sample_job();
                job.id = Id(i as u128 + 1);
                job.kind = JobKind::Webhook(WebhookJob {
                    url: (*url).to_owned(),
                    ..match job.kind {
                        JobKind::Webhook(w) => w,
                        _ => unreachable!(),
                    }
                });
                ((i as i64, job.id.0), job)
            })
            .collect()
    }

    /// Pages of `due` as `ReadTx::due_jobs` returns them, counting the pages read.
    fn pages<'a>(
        due: &'a [(DueKey, Job)],
        pages_read: &'a mut usize,
    ) -> impl FnMut(Option<DueKey>) -> Result<DueJobs, StoreError> + 'a {
        move |after| {
            *pages_read += 1;
            let start = after.map_or(0, |after| due.partition_point(|(row, _)| *row <= after));
            let jobs: Vec<_> = due[start..].iter().take(CLAIM_SCAN).cloned().collect();
            let more_after = (jobs.len() == CLAIM_SCAN).then(|| jobs[CLAIM_SCAN - 1].0);
            Ok(DueJobs {
                jobs,
                next_due: None,
                more_after,
            })
        }
    }

    /// A pass with room for `room` work items while `dead` has no room left.
    fn claims(room: usize, in_flight: &HashSet<Id>) -> Claims<'_> {
        Claims {
            room,
            per_destination_limit: 4,
            in_flight,
            per_destination: HashMap::from([("dead".to_owned(), 4)]),
            deliveries: Vec::new(),
            batches: Vec::new(),
        }
    }

    /// One claim pass with `room` slots over `due` at `now`, and the pages of it that it read.
    fn run_pass<'a>(
        due: &[(DueKey, Job)],
        in_flight: &'a HashSet<Id>,
        room: usize,
        deep_scan: &mut DeepScan,
        now: Instant,
    ) -> (Claims<'a>, usize) {
        let (mut pass, mut pages_read) = (claims(room, in_flight), 0);
        scan_due_jobs(&mut pass, deep_scan, now, pages(due, &mut pages_read)).unwrap();
        (pass, pages_read)
    }

    fn claimed_ids(claims: Claims) -> Vec<u128> {
        claims
            .into_work()
            .iter()
            .flat_map(|w| w.jobs().iter().map(|j| j.id.0))
            .collect()
    }

    #[test]
    fn jobs_behind_a_full_destinations_backlog_are_claimed_in_the_same_pass() {
        let mut destinations = vec!["dead"; 2_500];
        destinations.extend(["healthy"; 6]);
        let due = due_list(&destinations);
        let (in_flight, mut deep_scan) = (HashSet::new(), DeepScan::default());
        let (pass, pages_read) = run_pass(&due, &in_flight, 12, &mut deep_scan, Instant::now());
        assert_eq!(pages_read, 3, "the first page, then two more to the end");
        assert_eq!(
            claimed_ids(pass),
            [2_501, 2_502, 2_503, 2_504],
            "as many as the healthy destination takes"
        );
        assert_eq!(deep_scan.resume_after, None, "it went round to the end");
        assert_eq!(deep_scan.rest_until, None, "it claimed work");
    }

    #[test]
    fn deep_scans_go_round_the_backlog_and_rest_while_they_find_nothing() {
        let mut destinations = vec!["dead"; 25_000];
        destinations.push("healthy");
        let due = due_list(&destinations);
        let in_flight = HashSet::new();
        let mut deep_scan = DeepScan::default();
        let start = Instant::now();
        let pass = |at: Duration, deep_scan: &mut DeepScan| {
            let (pass, pages_read) = run_pass(&due, &in_flight, 12, deep_scan, start + at);
            (pages_read, claimed_ids(pass))
        };

        // Rows 0..1000 are the first page; the deep scan reads 1000..11000 and finds nothing.
        assert_eq!(pass(Duration::ZERO, &mut deep_scan), (11, vec![]));
        assert_eq!(deep_scan.resume_after, Some((10_999, 11_000)));
        // Until the rest is over, a wake-up reads the first page only.
        assert_eq!(pass(Duration::from_millis(1), &mut deep_scan), (1, vec![]));
        // The next deep scans go on where the last stopped, not from the front.
        assert_eq!(pass(DEEP_SCAN_REST, &mut deep_scan), (11, vec![]));
        assert_eq!(deep_scan.resume_after, Some((20_999, 21_000)));
        assert_eq!(pass(DEEP_SCAN_REST * 2, &mut deep_scan), (6, vec![25_001]));
        assert_eq!(deep_scan.resume_after, None, "round to the start");
        assert_eq!(deep_scan.rest_until, None);
    }

    #[test]
    fn a_deep_scan_that_runs_out_of_room_resumes_at_the_first_job_it_left() {
        let mut destinations = vec!["dead"; 1_000];
        destinations.extend(["a", "b", "c", "d"]);
        let due = due_list(&destinations);
        let in_flight = HashSet::new();
        let mut deep_scan = DeepScan::default();
        let pass = |deep_scan: &mut DeepScan| {
            claimed_ids(run_pass(&due, &in_flight, 2, deep_scan, Instant::now()).0)
        };
        assert_eq!(pass(&mut deep_scan), [1_001, 1_002]);
        assert_eq!(deep_scan.resume_after, Some((1_001, 1_002)));
        assert_eq!(pass(&mut deep_scan), [1_003, 1_004]);
        assert_eq!(pass(&mut deep_scan), [1_001, 1_002], "round again");
    }

    #[test]
    fn a_short_due_list_is_read_in_one_page_and_jobs_in_flight_are_skipped() {
        let due = due_list(&["a", "a", "b", "dead"]);
        let in_flight = HashSet::from([Id(1)]);
        let mut deep_scan = DeepScan {
            resume_after: Some((7, 7)),
            rest_until: None,
        };
        let (pass, pages_read) = run_pass(&due, &in_flight, 12, &mut deep_scan, Instant::now());
        assert_eq!(pages_read, 1);
        assert_eq!(claimed_ids(pass), [2, 3]);
        assert_eq!(deep_scan.resume_after, None, "nothing deeper to resume");
    }

    #[test]
    fn exports_for_one_collector_join_one_batch_even_when_the_pass_is_full() {
        let mut due = due_list(&["a", "b", "c", "d"]);
        for (_, job) in &mut due[1..3] {
            job.kind = JobKind::OtlpSpan(OtlpSpanJob {
                format: crate::outbox::OTLP_SPAN_FORMAT_V1,
                operation_id: job.id,
                url: "http://collector/v1/traces".into(),
                span: vec![0; 16],
            });
        }
        let in_flight = HashSet::new();
        let mut deep_scan = DeepScan::default();
        let (pass, _) = run_pass(&due, &in_flight, 2, &mut deep_scan, Instant::now());
        let work: Vec<Vec<u128>> = pass
            .into_work()
            .iter()
            .map(|w| w.jobs().iter().map(|j| j.id.0).collect())
            .collect();
        // The batch opened with the pass's last slot still takes the next export; the webhook
        // after it waits.
        assert_eq!(work, [vec![1], vec![2, 3]]);
    }
}
