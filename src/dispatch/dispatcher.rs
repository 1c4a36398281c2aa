//! The dispatcher: one claim thread reads due jobs from the outbox and hands them to a fixed set
//! of sender threads, keeping at most `outbox.concurrency` attempts in flight overall and
//! `outbox.per_destination` requests at once per URL. Each result goes back through the writer
//! (attempt row, new job state, log message) in one commit; the URL takes its next request as soon
//! as a response is in, while the result is still being committed.
//!
//! Claims are in memory only: a job stays `pending` with its due time in redb until its attempt
//! is recorded, so one in flight at a crash is simply due again after the restart and is sent
//! again with the same `webhook-id`. Each job goes to the sink that `sends` its `JobKind`
//! (`dispatch::sinks`); the sink makes the attempt and says what follows, so the claim machinery
//! knows nothing about HTTP or any destination.
//!
//! Due jobs are read a page at a time in due order; a destination that is full (slow or dead)
//! with a long backlog at the front does not hide the jobs behind it (`scan_due_jobs` has the
//! rule).
//!
//! A sink's jobs go one per request, or, when the sink batches (`sink::Requests::Batched`, the
//! OTLP exports: 512 items, 4 MiB), jobs due for the same environment, kind and destination are
//! claimed together up to one request's worth and handed to the sink as one work item; a batch
//! counts as one attempt in flight, and each job still gets its own attempt row.
//!
//! Must not: run on the async runtime (ureq and redb block), or write to the store directly.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sink::{not_sent, RequestBudget, Requests, Sink, SinkDeps};
use crate::config::OutboxConfig;
use crate::metrics::Metrics;
use crate::model::job::{Job, JobKind};
use crate::model::{Id, Timestamp};
use crate::settings::Settings;
use crate::store::{DueJobs, DueKey, Store, StoreError};
use crate::write::{RecordAttempts, WriteError, Writer};

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

/// What one sender thread is handed: the jobs of one request, for one sink — one job, or a
/// batch of one environment, kind and destination.
struct Work {
    /// Which of `Context::sinks` sends it; `None`: no sink sends its kind.
    sink: Option<usize>,
    jobs: Vec<Job>,
}

impl Work {
    fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// The per-destination key: the same for every job of a batch.
    fn destination(&self) -> &str {
        self.jobs[0].kind.destination()
    }
}

/// A batch being filled by the claim thread.
struct OpenBatch {
    sink: usize,
    environment: String,
    /// Which `JobKind` and destination its jobs share.
    kind: std::mem::Discriminant<JobKind>,
    destination: String,
    budget: RequestBudget,
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
    sinks: Vec<Box<dyn Sink>>,
}

impl Dispatcher {
    pub fn start(deps: DispatcherDeps, wake: Arc<Wake>) -> Dispatcher {
        let senders = deps.config.concurrency;
        let sinks = super::sinks(&SinkDeps {
            settings: deps.settings.clone(),
            metrics: deps.metrics.clone(),
            config: deps.config.clone(),
            store: deps.store.clone(),
        });
        let context = Arc::new(Context {
            deps,
            wake: wake.clone(),
            sinks,
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
            sinks: &context.sinks,
            room,
            per_destination_limit: config.per_destination,
            in_flight: &in_flight,
            per_destination,
            singles: Vec::new(),
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
    sinks: &'a [Box<dyn Sink>],
    /// Work items the pass may claim: `outbox.concurrency` less those in flight.
    room: usize,
    per_destination_limit: usize,
    /// Jobs already claimed by earlier passes and not yet released.
    in_flight: &'a HashSet<Id>,
    /// Work items in flight per destination, counting those claimed by this pass.
    per_destination: HashMap<String, usize>,
    /// Work of one job each.
    singles: Vec<Work>,
    batches: Vec<OpenBatch>,
}

impl Claims<'_> {
    fn is_full(&self) -> bool {
        self.singles.len() + self.batches.len() >= self.room
    }

    /// Claims `job` if it joins an open batch for its destination or its destination has room
    /// for one more work item; says whether it did.
    fn offer(&mut self, job: Job) -> bool {
        if self.in_flight.contains(&job.id) {
            return false;
        }
        let sink = self.sinks.iter().position(|s| s.sends(&job.kind));
        let batched = sink.and_then(|i| match self.sinks[i].requests() {
            Requests::OnePerJob => None,
            Requests::Batched(budget) => Some((i, budget, self.sinks[i].size(&job))),
        });
        let kind = std::mem::discriminant(&job.kind);
        if let Some((sink, _, (items, bytes))) = batched {
            if let Some(batch) = self.batches.iter_mut().find(|b| {
                b.sink == sink
                    && b.environment == job.environment
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
        match batched {
            None => self.singles.push(Work {
                sink,
                jobs: vec![job],
            }),
            Some((sink, mut budget, (items, bytes))) => {
                budget.try_add(items, bytes);
                self.batches.push(OpenBatch {
                    sink,
                    environment: job.environment.clone(),
                    kind,
                    destination: destination.to_owned(),
                    budget,
                    jobs: vec![job],
                });
            }
        }
        true
    }

    fn into_work(self) -> Vec<Work> {
        let mut work = self.singles;
        work.extend(self.batches.into_iter().map(|b| Work {
            sink: Some(b.sink),
            jobs: b.jobs,
        }));
        work
    }
}

/// A sender thread: has claimed work attempted by its sink, one item at a time, and records the
/// outcome, until the claim thread is gone.
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
        let attempts = match item.sink {
            Some(sink) => context.sinks[sink].attempt(item.jobs()),
            None => item
                .jobs()
                .iter()
                .map(|job| {
                    let reason = "no sink of this opslog sends jobs of this kind".to_owned();
                    not_sent(job, job.kind.destination(), reason)
                })
                .collect(),
        };
        // The request is over: another may go to this URL while this outcome is committed.
        // The jobs stay claimed until it is, so none is sent twice meanwhile.
        context.wake.release_destination(&item);
        let recorded = context
            .deps
            .writer
            .submit_blocking(RecordAttempts(attempts));
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

    /// The registered sinks, over an empty store and the default configuration.
    fn registered_sinks() -> Vec<Box<dyn Sink>> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = crate::config::Config::default();
        let settings = Settings::load_or_init(&config, &store).unwrap();
        super::super::sinks(&SinkDeps {
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::default()),
            config: config.outbox,
            store: Arc::new(store),
        })
    }

    /// A job of every kind, one per `JobKind` variant.
    fn a_job_of_every_kind() -> Vec<Job> {
        let webhook = match crate::store::tests_support::sample_job().kind {
            JobKind::Webhook(w) => w,
            _ => unreachable!(),
        };
        let kinds = [
            JobKind::Webhook(webhook.clone()),
            JobKind::OtlpSpan(OtlpSpanJob {
                format: crate::outbox::OTLP_SPAN_FORMAT_V1,
                operation_id: Id(1),
                url: "http://collector/v1/traces".into(),
                span: vec![0; 16],
            }),
            JobKind::OtlpLogs(crate::model::job::OtlpLogsJob {
                format: crate::model::job::OTLP_LOGS_FORMAT_V1,
                operation_id: Id(1),
                url: "http://collector/v1/logs".into(),
                count: 2,
                records: vec![0; 16],
            }),
            JobKind::NangoWebhook(crate::model::job::NangoWebhookJob {
                delivery: webhook,
                forwarded_headers: Vec::new(),
            }),
        ];
        for kind in &kinds {
            // A new variant fails to compile here: add a job of it to `kinds` above (and its
            // sink to `dispatch::sinks`).
            match kind {
                JobKind::Webhook(_)
                | JobKind::OtlpSpan(_)
                | JobKind::OtlpLogs(_)
                | JobKind::NangoWebhook(_) => {}
            }
        }
        kinds
            .into_iter()
            .map(|kind| Job {
                kind,
                ..crate::store::tests_support::sample_job()
            })
            .collect()
    }

    #[test]
    fn every_job_kind_has_exactly_one_sink() {
        let sinks = registered_sinks();
        for job in a_job_of_every_kind() {
            let senders = sinks.iter().filter(|s| s.sends(&job.kind)).count();
            assert_eq!(senders, 1, "{:?}", std::mem::discriminant(&job.kind));
        }
    }

    /// A pass with room for `room` work items while `dead` has no room left.
    fn claims<'a>(
        sinks: &'a [Box<dyn Sink>],
        room: usize,
        in_flight: &'a HashSet<Id>,
    ) -> Claims<'a> {
        Claims {
            sinks,
            room,
            per_destination_limit: 4,
            in_flight,
            per_destination: HashMap::from([("dead".to_owned(), 4)]),
            singles: Vec::new(),
            batches: Vec::new(),
        }
    }

    /// One claim pass with `room` slots over `due` at `now`, and the pages of it that it read.
    fn run_pass<'a>(
        sinks: &'a [Box<dyn Sink>],
        due: &[(DueKey, Job)],
        in_flight: &'a HashSet<Id>,
        room: usize,
        deep_scan: &mut DeepScan,
        now: Instant,
    ) -> (Claims<'a>, usize) {
        let (mut pass, mut pages_read) = (claims(sinks, room, in_flight), 0);
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
        let sinks = registered_sinks();
        let mut destinations = vec!["dead"; 2_500];
        destinations.extend(["healthy"; 6]);
        let due = due_list(&destinations);
        let (in_flight, mut deep_scan) = (HashSet::new(), DeepScan::default());
        let (pass, pages_read) =
            run_pass(&sinks, &due, &in_flight, 12, &mut deep_scan, Instant::now());
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
        let sinks = registered_sinks();
        let mut destinations = vec!["dead"; 25_000];
        destinations.push("healthy");
        let due = due_list(&destinations);
        let in_flight = HashSet::new();
        let mut deep_scan = DeepScan::default();
        let start = Instant::now();
        let pass = |at: Duration, deep_scan: &mut DeepScan| {
            let (pass, pages_read) = run_pass(&sinks, &due, &in_flight, 12, deep_scan, start + at);
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
        let sinks = registered_sinks();
        let mut destinations = vec!["dead"; 1_000];
        destinations.extend(["a", "b", "c", "d"]);
        let due = due_list(&destinations);
        let in_flight = HashSet::new();
        let mut deep_scan = DeepScan::default();
        let pass = |deep_scan: &mut DeepScan| {
            claimed_ids(run_pass(&sinks, &due, &in_flight, 2, deep_scan, Instant::now()).0)
        };
        assert_eq!(pass(&mut deep_scan), [1_001, 1_002]);
        assert_eq!(deep_scan.resume_after, Some((1_001, 1_002)));
        assert_eq!(pass(&mut deep_scan), [1_003, 1_004]);
        assert_eq!(pass(&mut deep_scan), [1_001, 1_002], "round again");
    }

    #[test]
    fn a_short_due_list_is_read_in_one_page_and_jobs_in_flight_are_skipped() {
        let sinks = registered_sinks();
        let due = due_list(&["a", "a", "b", "dead"]);
        let in_flight = HashSet::from([Id(1)]);
        let mut deep_scan = DeepScan {
            resume_after: Some((7, 7)),
            rest_until: None,
        };
        let (pass, pages_read) =
            run_pass(&sinks, &due, &in_flight, 12, &mut deep_scan, Instant::now());
        assert_eq!(pages_read, 1);
        assert_eq!(claimed_ids(pass), [2, 3]);
        assert_eq!(deep_scan.resume_after, None, "nothing deeper to resume");
    }

    #[test]
    fn exports_for_one_collector_join_one_batch_even_when_the_pass_is_full() {
        let sinks = registered_sinks();
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
        let (pass, _) = run_pass(&sinks, &due, &in_flight, 2, &mut deep_scan, Instant::now());
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
