//! The single writer: one thread owns redb's write transaction and applies every change.
//!
//! Requests queue on a bounded channel. The thread takes what has gathered (up to `MAX_GROUP`),
//! applies each command in one write transaction, commits once with `Durability::Immediate`, and
//! only then answers each request: an answer is a promise that the change is on disk (group commit).
//! A command that fails validation against the stored state (unknown operation, a conflict) is
//! answered with its error and has written nothing; a storage failure fails the whole group.
//!
//! Every change of an operation passes `operation_changed` inside the transaction that makes it:
//! that is where the webhook events it causes are derived and their deliveries written to the
//! outbox, so a commit can never leave an operation changed without its deliveries queued. The
//! outbox's own bookkeeping (attempts, retries, replays) and settings changes come through here
//! too, so there is one write path.
//!
//! Must not: run on the async runtime's threads, or answer before the commit returned.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};
use ulid::Ulid;

use super::input::{MessageDraft, NewOperation, OperationDraft, OperationPatch};
use super::lifecycle::{self, Change, LifecycleError};
use crate::alerts;
use crate::config::DeadlinesConfig;
use crate::config::WebhookFormat;
use crate::index::{Fed, IndexShared};
use crate::metrics::Metrics;
use crate::model::*;
use crate::outbox::{
    events, policy, Attempt, Job, JobFamily, JobKind, NangoWebhookJob, OtlpLogsJob, OtlpSpanJob,
    Wake, WebhookJob, OTLP_LOGS_FORMAT_V1, OTLP_SPAN_FORMAT_V1,
};
use crate::settings::{
    self, AlertSettings, EnvSettings, OtelSettings, Settings, SettingsError, SettingsUpdate,
};
use crate::store::{
    id_range, FeedEntry, IdempotencyRecord, OutboxDepth, Store, StoreError, WriteTx,
};
use opentelemetry_proto::tonic::logs::v1::ScopeLogs;

/// The most requests one commit carries.
const MAX_GROUP: usize = 1024;
/// Requests waiting for the writer before senders wait too (backpressure).
const QUEUE: usize = 4096;
/// The most operations one sweep times out; the rest wait for the next sweep.
const SWEEP_LIMIT: usize = 1000;
/// Free space needed before writing again after the disk was full.
const REOPEN_FREE_BYTES: u64 = 4 << 20;
/// About the most records (operations + messages) one retention command removes, so one commit
/// stays short and writers are not held up.
const REMOVE_BUDGET: usize = 20_000;
/// The most deliveries one replay requeues; a larger window is replayed in several calls.
pub const REPLAY_LIMIT: usize = 10_000;

pub enum Command {
    CreateOperation {
        environment: String,
        /// `Idempotency-Key` and the SHA-256 of the request body.
        idempotency: Option<(String, [u8; 32])>,
        /// Boxed: a draft is several times larger than any other command.
        draft: Box<OperationDraft>,
    },
    UpdateOperation {
        environment: String,
        id: Id,
        patch: OperationPatch,
    },
    AppendMessages {
        environment: String,
        messages: Vec<(Id, MessageDraft)>,
    },
    TimeOutOverdue {
        now: Timestamp,
    },
    /// Retention: removes operations created before `cutoff`, with everything that hangs on them,
    /// and finished outbox jobs created before it (looking from job id `jobs_from` on).
    RemoveExpired {
        cutoff: Timestamp,
        jobs_from: u128,
    },
    /// Logs one attempt of an outbox job and moves the job on, as `attempt.outcome` says.
    RecordAttempt {
        job: Id,
        attempt: Attempt,
        /// The request headers, for the `http` message of the `webhook:deliver` operation.
        request_headers: Headers,
    },
    /// Logs the attempts of one batched export request (one per job) and moves each job on.
    RecordAttempts {
        attempts: Vec<(Id, Attempt)>,
    },
    /// Sends deliveries again from a fresh start of the retry schedule.
    Requeue {
        environment: String,
        selection: Requeue,
    },
    ChangeSettings {
        environment: String,
        change: SettingsChange,
    },
    /// Adds operations and messages from an export, keeping their ids; what is already stored
    /// is skipped, so importing a file twice adds nothing the second time. Imported records are
    /// history: they queue no webhooks or exports.
    Import {
        environment: String,
        operations: Vec<Operation>,
        messages: Vec<Message>,
    },
    /// Alert rules' counts (`alerts::evaluate`): fires and resolves rules that crossed their
    /// threshold, queueing their events with the new state.
    ObserveAlerts {
        environment: String,
        observations: Vec<alerts::Observation>,
    },
}

/// What one import command added and skipped (already stored).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub operations_added: u64,
    pub operations_skipped: u64,
    pub messages_added: u64,
    pub messages_skipped: u64,
}

/// Which deliveries or exports to send again; jobs of the other family are not found.
#[derive(Debug, Clone)]
pub enum Requeue {
    /// One job: a pending one is made due now; a delivered or failed one starts a new round.
    One(JobFamily, Id),
    /// Every job of the family created in the window with this status (`delivered` or `failed`).
    Window {
        family: JobFamily,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        status: DeliveryStatus,
    },
}

#[derive(Debug)]
pub enum SettingsChange {
    /// `PUT /settings`: every section it names, applied together or not at all.
    Update(Box<SettingsUpdate>),
    /// A new webhook secret; the old one keeps signing for the grace period.
    RotateSecret {
        grace: Option<std::time::Duration>,
        /// The secret to sign with from now on (an existing Nango signing key, checked by the
        /// caller); `None` issues a fresh `whsec_` one.
        secret: Option<String>,
    },
    RotateIngressToken,
}

#[derive(Debug)]
pub enum Outcome {
    Operation {
        operation: Box<Operation>,
        replayed: bool,
    },
    /// Shared with the search index, which takes them from the commit instead of the store.
    Messages(Arc<[Message]>),
    TimedOut(usize),
    Removed(Removed),
    AttemptRecorded,
    /// The deliveries requeued, in id order.
    Requeued(Vec<Job>),
    /// The settings now in force (already installed in the registry).
    Settings(Box<EnvSettings>),
    Imported(Imported),
    AlertsObserved,
}

pub use crate::model::Removed;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("operation `{0}` not found")]
    OperationNotFound(Id),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("Idempotency-Key `{0}` was already used with a different request body")]
    IdempotencyMismatch(String),
    #[error("delivery `{0}` not found")]
    DeliveryNotFound(Id),
    #[error("export `{0}` not found")]
    ExportNotFound(Id),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("the writer is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Request {
    /// `None` asks the writer to stop taking requests once the queue is drained.
    command: Option<Command>,
    reply: oneshot::Sender<Result<Outcome, WriteError>>,
}

/// Sends commands to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Applies `command` and waits until it is durable (or refused).
    pub async fn submit(&self, command: Command) -> Result<Outcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request {
                command: Some(command),
                reply,
            })
            .await
            .map_err(|_| WriteError::ShuttingDown)?;
        answer.await.map_err(|_| WriteError::ShuttingDown)?
    }

    /// `submit` for threads outside the async runtime (the outbox's sender threads).
    pub fn submit_blocking(&self, command: Command) -> Result<Outcome, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .blocking_send(Request {
                command: Some(command),
                reply,
            })
            .map_err(|_| WriteError::ShuttingDown)?;
        answer
            .blocking_recv()
            .map_err(|_| WriteError::ShuttingDown)?
    }

    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Asks the writer to finish what is queued and stop; later submits answer `ShuttingDown`.
    pub async fn stop(&self) {
        let (reply, _) = oneshot::channel();
        let _ = self
            .tx
            .send(Request {
                command: None,
                reply,
            })
            .await;
    }
}

/// What the writer thread works with besides the store.
pub struct WriterDeps {
    pub deadlines: DeadlinesConfig,
    pub metrics: Arc<Metrics>,
    /// Woken after a commit that fed the search index.
    pub index: Arc<IndexShared>,
    /// Read to route events; replaced after a committed settings change.
    pub settings: Arc<Settings>,
    /// Woken after a commit that queued outbox work.
    pub outbox: Arc<Wake>,
    pub max_retry_after: std::time::Duration,
}

/// Starts the writer thread. It ends once every `Writer` is dropped and the queue is drained.
pub fn start(store: Arc<Store>, deps: WriterDeps) -> Result<(Writer, JoinHandle<()>), StoreError> {
    let feed_seq = store.write()?.last_feed_seq()?;
    deps.metrics.feed_seq.store(feed_seq, Ordering::Relaxed);
    deps.metrics.add_outbox_depth(store.read()?.outbox_depth()?);
    let (tx, rx) = mpsc::channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("opslog-writer".into())
        .spawn(move || {
            WriterThread {
                store,
                deps,
                feed_seq,
                trimmed_to: 0,
                needs_reopen: false,
                last_id: 0,
                settings_changed: Vec::new(),
                outbox_queued: false,
            }
            .run(rx)
        })
        .expect("spawning the writer thread");
    Ok((Writer { tx }, thread))
}

struct WriterThread {
    store: Arc<Store>,
    deps: WriterDeps,
    /// The sequence of the newest committed feed entry.
    feed_seq: u64,
    /// Feed entries up to this one are already trimmed.
    trimmed_to: u64,
    /// The last group failed on I/O: reopen the database before the next one.
    needs_reopen: bool,
    last_id: u128,
    /// Settings written by the group being committed; installed once the commit succeeds.
    settings_changed: Vec<EnvSettings>,
    /// Whether the group being committed queued outbox work (the dispatcher is woken after).
    outbox_queued: bool,
}

/// What a committed group leaves for the writer to record.
struct Committed {
    /// What the commit added to the search index's feed, if anything.
    fed: Option<Fed>,
    trimmed_to: u64,
    /// Messages the group wrote.
    messages: u64,
    outbox_depth: OutboxDepth,
}

/// Operations read or changed by one group, written back once at its end.
#[derive(Default)]
struct Touched {
    ops: HashMap<Id, TouchedOp>,
    /// What the search index must pick up from this group.
    feed: FeedEntry,
    /// Messages appended in this group to operations of environments that export logs, by
    /// operation: each operation's become one `OtlpLogs` job at the end of the group.
    logged: BTreeMap<Id, Vec<Message>>,
    /// The messages of `feed.messages`, in the same order, handed to the index after the commit.
    fed_messages: Vec<Arc<[Message]>>,
}

struct TouchedOp {
    stored: Option<Operation>,
    current: Operation,
    dirty: bool,
    /// Changed in a way the index shows (not only its message count).
    reindex: bool,
}

impl WriterThread {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        while let Some(first) = rx.blocking_recv() {
            group.push(first);
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            if group.iter().any(|r| r.command.is_none()) {
                group.retain(|r| r.command.is_some());
                rx.close();
            }
            if !group.is_empty() {
                self.commit_group(&mut group);
            }
        }
        tracing::debug!("writer stopped");
    }

    fn commit_group(&mut self, group: &mut Vec<Request>) {
        if self.needs_reopen {
            // The old handle still serves reads; replace it only once there is room to write,
            // and until then refuse writes without touching the database.
            let room = fs4::available_space(self.store.path()).unwrap_or(0);
            if room < REOPEN_FREE_BYTES {
                let error = StoreError::DiskFull(format!("{room} bytes free"));
                self.deps
                    .metrics
                    .disk_full_rejections
                    .inc_by(group.len() as u64);
                for request in group.drain(..) {
                    let _ = request.reply.send(Err(WriteError::Store(error.clone())));
                }
                return;
            }
            match self.store.reopen(std::time::Duration::from_secs(2)) {
                Ok(()) => {
                    tracing::info!("database reopened after an I/O failure");
                    self.needs_reopen = false;
                }
                Err(e) => tracing::warn!(error = %e, "database not reopened yet"),
            }
        }
        let started = std::time::Instant::now();
        let mut results = Vec::with_capacity(group.len());
        let outcome = (|| -> Result<Committed, StoreError> {
            let mut tx = self.store.write()?;
            let mut touched = Touched::default();
            for request in group.iter_mut() {
                let command = request.command.take().expect("stop requests are removed");
                match self.apply(&mut tx, &mut touched, command) {
                    Err(WriteError::Store(e)) => return Err(e),
                    other => results.push(other),
                }
            }
            self.queue_logs(&mut tx, &mut touched)?;
            let mut feed = std::mem::take(&mut touched.feed);
            let messages = feed.messages.len() as u64;
            let mut changed = HashMap::new();
            for (id, op) in touched.ops.into_iter().filter(|(_, op)| op.dirty) {
                tx.put_operation(&op.current, op.stored.as_ref())?;
                // An ended operation's messages are only read from now on: pack them (and any
                // that arrive late) into compressed blocks, after this group's last append.
                if op.current.state.is_terminal() {
                    tx.pack_messages(id)?;
                }
                if op.reindex {
                    feed.operations.push(id);
                }
                changed.insert(id, op.current);
            }
            let fed = if feed.is_empty() {
                None
            } else {
                tx.append_feed(self.feed_seq + 1, &feed)?;
                Some(Fed {
                    seq: self.feed_seq + 1,
                    entry: feed,
                    operations: changed,
                    messages: touched.fed_messages,
                })
            };
            let seq = fed.as_ref().map_or(self.feed_seq, |fed| fed.seq);
            // What the index has committed is no longer needed, but the newest entry stays so the
            // sequence survives a restart.
            let indexed = self
                .deps
                .index
                .indexed_seq
                .load(Ordering::Acquire)
                .min(seq.saturating_sub(1));
            let trimmed_to = if indexed > self.trimmed_to {
                tx.trim_feed(indexed)?;
                indexed
            } else {
                self.trimmed_to
            };
            let outbox_depth = tx.outbox_depth_change();
            tx.commit()?;
            Ok(Committed {
                fed,
                trimmed_to,
                messages,
                outbox_depth,
            })
        })();
        let settings_changed = std::mem::take(&mut self.settings_changed);
        let outbox_queued = std::mem::take(&mut self.outbox_queued);
        match outcome {
            Ok(committed) => {
                self.trimmed_to = committed.trimmed_to;
                let metrics = &self.deps.metrics;
                metrics.record_commit(started.elapsed(), committed.messages);
                metrics.add_outbox_depth(committed.outbox_depth);
                if let Some(fed) = committed.fed {
                    self.feed_seq = fed.seq;
                    metrics.feed_seq.store(fed.seq, Ordering::Relaxed);
                    self.deps.index.hand_off(fed);
                    self.deps.index.wake();
                }
                for settings in settings_changed {
                    self.deps.settings.replace(settings);
                }
                if outbox_queued {
                    self.deps.outbox.notify();
                }
                for (request, result) in group.drain(..).zip(results) {
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = group.len(), "write group failed");
                let metrics = &self.deps.metrics;
                metrics.failed_commits.inc();
                if matches!(e, StoreError::DiskFull(_)) {
                    metrics.disk_full_rejections.inc_by(group.len() as u64);
                }
                // redb refuses all further writes after an I/O failure until it is reopened.
                self.needs_reopen = matches!(e, StoreError::DiskFull(_) | StoreError::Storage(_));
                for request in group.drain(..) {
                    let _ = request.reply.send(Err(WriteError::Store(e.clone())));
                }
            }
        }
    }

    /// Ids sort by creation: a fresh ULID, or one past the last if the clock did not move on.
    fn next_id(&mut self) -> Id {
        let fresh = Ulid::new().0;
        self.last_id = if fresh > self.last_id {
            fresh
        } else {
            self.last_id + 1
        };
        Id(self.last_id)
    }

    fn apply(
        &mut self,
        tx: &mut WriteTx,
        touched: &mut Touched,
        command: Command,
    ) -> Result<Outcome, WriteError> {
        let now = Timestamp::now();
        match command {
            Command::CreateOperation {
                environment,
                idempotency,
                draft,
            } => {
                if let Some((key, body_sha256)) = &idempotency {
                    if let Some(seen) = tx.idempotency(&environment, key)? {
                        if &seen.body_sha256 != body_sha256 {
                            return Err(WriteError::IdempotencyMismatch(key.clone()));
                        }
                        let operation =
                            Box::new(touched.get(tx, seen.operation_id)?.current.clone());
                        return Ok(Outcome::Operation {
                            operation,
                            replayed: true,
                        });
                    }
                }
                let id = self.next_id();
                let deadline = self.deps.deadlines.for_type(draft.input.kind);
                // Created ended or not, `operation_changed` below sees it with no `before`.
                let (operation, _) =
                    lifecycle::new_operation(id, &environment, *draft, now, deadline);
                if let Some((key, body_sha256)) = idempotency {
                    let record = IdempotencyRecord {
                        operation_id: id,
                        body_sha256,
                    };
                    tx.put_idempotency(&environment, &key, &record)?;
                }
                self.deps.metrics.operations_created.inc();
                touched.insert_new(operation.clone());
                self.operation_changed(tx, touched, None, &operation)?;
                Ok(Outcome::Operation {
                    operation: Box::new(operation),
                    replayed: false,
                })
            }
            Command::UpdateOperation {
                environment,
                id,
                patch,
            } => {
                let entry = touched.get_in(tx, id, &environment)?;
                let before = entry.current.clone();
                let mut operation = before.clone();
                let change = lifecycle::apply_patch(&mut operation, patch, now)?;
                if change != Change::Unchanged {
                    entry.current = operation.clone();
                    entry.dirty = true;
                    entry.reindex = true;
                    self.operation_changed(tx, touched, Some(&before), &operation)?;
                }
                Ok(Outcome::Operation {
                    operation: Box::new(operation),
                    replayed: false,
                })
            }
            Command::AppendMessages {
                environment,
                messages,
            } => {
                // Check every operation first: a refused batch writes nothing.
                let mut ended = HashSet::new();
                for (op_id, _) in &messages {
                    if touched
                        .get_in(tx, *op_id, &environment)?
                        .current
                        .state
                        .is_terminal()
                    {
                        ended.insert(*op_id);
                    }
                }
                let stored: Arc<[Message]> = messages
                    .into_iter()
                    .map(|(op_id, draft)| draft.into_message(self.next_id(), op_id, now))
                    .collect();
                tx.insert_fresh_messages(&stored, |op| ended.contains(&op))?;
                touched.feed_messages(stored.clone());
                for m in stored.iter() {
                    let entry = touched.get_in(tx, m.operation_id, &environment)?;
                    entry.current.message_count += 1;
                    entry.dirty = true;
                }
                if self.exports_logs(&environment) {
                    for m in stored.iter() {
                        touched
                            .logged
                            .entry(m.operation_id)
                            .or_default()
                            .push(m.clone());
                    }
                }
                self.deps
                    .metrics
                    .messages_appended
                    .inc_by(stored.len() as u64);
                Ok(Outcome::Messages(stored))
            }
            Command::TimeOutOverdue { now } => {
                let overdue = tx.overdue_operations(now, SWEEP_LIMIT)?;
                let mut count = 0;
                for id in overdue {
                    let entry = touched.get(tx, id)?;
                    let before = entry.current.clone();
                    let mut operation = before.clone();
                    if operation.state.is_terminal() || operation.expires_at >= now {
                        continue; // ended or extended earlier in this group
                    }
                    if lifecycle::time_out(&mut operation, now)? == Change::Ended {
                        entry.current = operation.clone();
                        entry.dirty = true;
                        entry.reindex = true;
                        self.operation_changed(tx, touched, Some(&before), &operation)?;
                        count += 1;
                    }
                }
                Ok(Outcome::TimedOut(count))
            }
            Command::RemoveExpired { cutoff, jobs_from } => {
                let operations = tx.remove_created_before(cutoff, REMOVE_BUDGET)?;
                for id in &operations.ids {
                    touched.ops.remove(id);
                }
                let jobs = tx.remove_finished_jobs_before(cutoff, jobs_from, REMOVE_BUDGET)?;
                let removed = Removed {
                    operations: operations.ids.len() as u64,
                    messages: operations.messages,
                    jobs: jobs.jobs,
                    attempts: jobs.attempts,
                    more_operations: operations.more,
                    jobs_resume_from: jobs.resume_from,
                };
                self.deps.metrics.record_removed(&removed);
                touched.feed.removed_operations.extend(operations.ids);
                Ok(Outcome::Removed(removed))
            }
            Command::RecordAttempt {
                job,
                attempt,
                request_headers,
            } => {
                self.record_attempt(tx, touched, job, attempt, request_headers, now)?;
                Ok(Outcome::AttemptRecorded)
            }
            Command::RecordAttempts { attempts } => {
                for (job, attempt) in attempts {
                    self.record_attempt(tx, touched, job, attempt, Headers::new(), now)?;
                }
                Ok(Outcome::AttemptRecorded)
            }
            Command::Requeue {
                environment,
                selection,
            } => {
                let (family, ids) = match selection {
                    Requeue::One(family, id) => (family, vec![id]),
                    Requeue::Window {
                        family, from, to, ..
                    } => {
                        let (low, high) = id_range(from, to);
                        (family, tx.job_ids(low, high, usize::MAX)?)
                    }
                };
                let mut requeued = Vec::new();
                for id in ids {
                    let found = tx
                        .job(id)?
                        .filter(|j| j.environment == environment && j.kind.family() == family);
                    let Some(job) = found else {
                        if let Requeue::One(..) = selection {
                            return Err(match family {
                                JobFamily::Delivery => WriteError::DeliveryNotFound(id),
                                JobFamily::Export => WriteError::ExportNotFound(id),
                            });
                        }
                        continue;
                    };
                    if let Requeue::Window { status, .. } = selection {
                        if job.status != status {
                            continue;
                        }
                        if requeued.len() == REPLAY_LIMIT {
                            break;
                        }
                    }
                    requeued.push(self.requeue(tx, touched, job, now)?);
                }
                Ok(Outcome::Requeued(requeued))
            }
            Command::ChangeSettings {
                environment,
                change,
            } => {
                let file = self.deps.settings.file(&environment);
                let otel_file = self.deps.settings.otel_file(&environment).cloned();
                let mut webhooks = tx.webhook_settings(&environment)?.unwrap_or_default();
                let mut otel = tx.otel_settings(&environment)?.unwrap_or_default();
                let mut ingress = tx.ingress_settings(&environment)?.unwrap_or_default();
                let alerts_file = self.deps.settings.alerts_file(&environment).cloned();
                let mut alerts = tx.alert_settings(&environment)?.unwrap_or_default();
                match change {
                    SettingsChange::Update(update) => {
                        let update = *update;
                        if let Some(update) = update.webhooks {
                            webhooks = settings::apply_update(
                                &file,
                                &webhooks,
                                update,
                                self.deps.settings.destinations(),
                            )?;
                        }
                        if let Some(update) = update.otel {
                            otel = settings::apply_otel_update(
                                otel_file.as_ref(),
                                &otel,
                                update,
                                self.deps.settings.destinations(),
                            )?;
                            tx.put_otel_settings(&environment, &otel)?;
                        }
                        if let Some(rules) = update.alerts {
                            let keys: Vec<String> = rules.iter().map(|r| r.key()).collect();
                            alerts = settings::apply_alerts_update(alerts_file.as_ref(), rules)?;
                            // A rule taken away forgets whether it fired: added again, it
                            // starts from not firing.
                            for (key, _) in tx.alert_states(&environment)? {
                                if !keys.contains(&key) {
                                    tx.remove_alert_state(&environment, &key)?;
                                }
                            }
                            tx.put_alert_settings(&environment, &alerts)?;
                        }
                    }
                    SettingsChange::RotateSecret { grace, secret } => {
                        let grace = grace.unwrap_or(
                            file.rotation_grace
                                .map(|g| g.0)
                                .unwrap_or(settings::DEFAULT_ROTATION_GRACE),
                        );
                        webhooks = settings::rotate_secret(
                            &file,
                            &webhooks,
                            now,
                            grace,
                            secret.unwrap_or_else(settings::generate_secret),
                        )?;
                    }
                    SettingsChange::RotateIngressToken => {
                        ingress.token = settings::generate_ingress_token();
                    }
                }
                tx.put_webhook_settings(&environment, &webhooks)?;
                tx.put_ingress_settings(&environment, &ingress)?;
                let otel = OtelSettings::new(&environment, otel_file.as_ref(), &otel);
                let alerts = AlertSettings::new(&environment, alerts_file.as_ref(), &alerts);
                let effective =
                    settings::effective(&environment, &file, &webhooks, otel, &ingress, alerts);
                self.settings_changed.push(effective.clone());
                Ok(Outcome::Settings(Box::new(effective)))
            }
            Command::Import {
                environment,
                operations,
                messages,
            } => self.import(tx, touched, &environment, operations, messages),
            Command::ObserveAlerts {
                environment,
                observations,
            } => {
                self.observe_alerts(tx, touched, &environment, observations)?;
                self.deps.metrics.alert_evaluations.inc();
                Ok(Outcome::AlertsObserved)
            }
        }
    }

    fn import(
        &mut self,
        tx: &mut WriteTx,
        touched: &mut Touched,
        environment: &str,
        operations: Vec<Operation>,
        messages: Vec<Message>,
    ) -> Result<Outcome, WriteError> {
        let mut counts = Imported::default();
        let mut new_ops = Vec::new();
        for operation in operations {
            match touched.get(tx, operation.id) {
                Ok(_) => counts.operations_skipped += 1,
                Err(WriteError::OperationNotFound(_)) => new_ops.push(operation),
                Err(e) => return Err(e),
            }
        }
        // Check every message's operation before writing: a refused import writes nothing.
        let new_ids: HashSet<Id> = new_ops.iter().map(|o| o.id).collect();
        for message in &messages {
            if !new_ids.contains(&message.operation_id) {
                touched.get_in(tx, message.operation_id, environment)?;
            }
        }
        for mut operation in new_ops {
            operation.environment = environment.to_owned();
            operation.message_count = 0;
            touched.insert_new(operation);
            counts.operations_added += 1;
        }
        let mut fresh = Vec::new();
        for message in messages {
            if !tx.insert_message(&message)? {
                counts.messages_skipped += 1;
                continue;
            }
            let entry = touched.get(tx, message.operation_id)?;
            entry.current.message_count += 1;
            entry.dirty = true;
            fresh.push(message);
        }
        counts.messages_added = fresh.len() as u64;
        touched.feed_messages(fresh.into());
        Ok(Outcome::Imported(counts))
    }

    /// Every change of an operation (creation, update, timeout) passes here, inside the write
    /// transaction that makes it: the webhook events it causes are queued here, in the same
    /// commit, one delivery per event per URL. `before` is `None` at creation.
    fn operation_changed(
        &mut self,
        tx: &mut WriteTx,
        touched: &mut Touched,
        before: Option<&Operation>,
        after: &Operation,
    ) -> Result<(), WriteError> {
        if after.state.is_terminal() && before.is_none_or(|b| !b.state.is_terminal()) {
            self.deps.metrics.record_end(after.state);
            self.queue_span(tx, after)?;
        }
        let derived = events::derive(before, after);
        if derived.is_empty() {
            return Ok(());
        }
        let Some(settings) = self.deps.settings.get(&after.environment) else {
            return Ok(());
        };
        let now = Timestamp::now();
        let cause = DeliveryCause::of(after);
        for event in derived {
            // An open incoming webhook is settled by its forwards: their attempts are its own
            // `http` messages and their outcome its state, within a deadline covering retries.
            let settles = event.kind == EventType::WebhookReceived && !after.state.is_terminal();
            if settles && !settings.webhooks.destinations(event.kind).is_empty() {
                let span = policy::worst_case_span(
                    &settings.webhooks.retry_schedule,
                    settings.webhooks.timeout,
                    self.deps.max_retry_after,
                );
                let entry = touched.get(tx, after.id)?;
                let needed = now.plus_millis(span.as_millis() as i64);
                if entry.current.expires_at < needed {
                    entry.current.expires_at = needed;
                    entry.dirty = true;
                }
            }
            let bodies = Bodies {
                envelope: |event_id: &str| events::envelope(event_id, &event, after, now),
                nango: || events::nango_bodies(&event, after),
            };
            self.queue_deliveries(
                tx, touched, &settings, event.kind, bodies, &cause, settles, now,
            )?;
        }
        Ok(())
    }

    /// Queues one delivery of one event per URL subscribed to `kind` (several for a Nango-format
    /// URL when Nango sends several bodies), each with the `webhook:deliver` operation that logs
    /// it, or, when the delivery `settles` its cause (a forwarded incoming webhook), logged on
    /// the cause itself. Only the body formats some URL takes are made.
    #[allow(clippy::too_many_arguments)]
    fn queue_deliveries<E, N>(
        &mut self,
        tx: &mut WriteTx,
        touched: &mut Touched,
        settings: &EnvSettings,
        kind: EventType,
        bodies: Bodies<E, N>,
        cause: &DeliveryCause,
        settles: bool,
        now: Timestamp,
    ) -> Result<(), StoreError>
    where
        E: FnOnce(&str) -> String,
        N: FnOnce() -> Vec<events::NangoBody>,
    {
        let urls = settings.webhooks.destinations(kind);
        if urls.is_empty() {
            return Ok(());
        }
        let event_id = format!("evt_{}", self.next_id());
        let takes = |wanted: WebhookFormat| urls.iter().any(|(_, format)| *format == wanted);
        let envelope = if takes(WebhookFormat::Opslog) {
            (bodies.envelope)(&event_id)
        } else {
            String::new()
        };
        let nango = if takes(WebhookFormat::Nango) {
            (bodies.nango)()
        } else {
            Vec::new()
        };
        for (url, format) in urls {
            let bodies: Vec<events::NangoBody> = match format {
                WebhookFormat::Opslog => vec![events::NangoBody {
                    body: envelope.clone(),
                    forwarded_headers: Vec::new(),
                }],
                WebhookFormat::Nango => nango.clone(),
            };
            for body in bodies {
                let id = self.next_id();
                let log_operation_id = match cause.operation {
                    Some(operation) if settles => operation,
                    _ => {
                        let log = self.delivery_log(id, cause, kind, url, settings, now);
                        let log_id = log.id;
                        touched.insert_new(log);
                        log_id
                    }
                };
                let delivery = WebhookJob {
                    event_id: event_id.clone(),
                    event: kind,
                    url: url.to_owned(),
                    body: body.body,
                    // An alert has no operation: its delivery's own log stands for it.
                    operation_id: cause.operation.unwrap_or(log_operation_id),
                    log_operation_id,
                };
                let job = Job {
                    id,
                    environment: settings.environment.clone(),
                    kind: match format {
                        WebhookFormat::Opslog => JobKind::Webhook(delivery),
                        WebhookFormat::Nango => JobKind::NangoWebhook(NangoWebhookJob {
                            delivery,
                            forwarded_headers: body.forwarded_headers,
                        }),
                    },
                    status: DeliveryStatus::Pending,
                    created_at: now,
                    updated_at: now,
                    attempts: 0,
                    round_attempts: 0,
                    next_attempt_at: Some(first_attempt_at(settings, now)),
                    last_error: None,
                    round_started_at: now,
                };
                tx.put_job(&job, None)?;
                self.deps.metrics.deliveries_queued.inc();
                self.outbox_queued = true;
            }
        }
        Ok(())
    }

    /// Records each rule's new count against its stored state and, where it crossed its
    /// threshold, the new state and the `alert.*` deliveries, in this one commit. Counts of
    /// rules no longer configured are ignored, and their states removed.
    fn observe_alerts(
        &mut self,
        tx: &mut WriteTx,
        touched: &mut Touched,
        environment: &str,
        observations: Vec<alerts::Observation>,
    ) -> Result<(), StoreError> {
        let Some(settings) = self.deps.settings.get(environment) else {
            return Ok(());
        };
        let rules = &settings.alerts.rules;
        let stored: BTreeMap<String, alerts::AlertState> =
            tx.alert_states(environment)?.into_iter().collect();
        for key in stored.keys() {
            if !rules.iter().any(|r| r.key() == *key) {
                tx.remove_alert_state(environment, key)?;
            }
        }
        let now = Timestamp::now();
        for observed in observations {
            if !rules.contains(&observed.rule) {
                continue; // changed since it was counted; the next evaluation counts it anew
            }
            let key = observed.rule.key();
            let firing = stored.get(&key).is_some_and(|s| s.firing);
            let Some(change) = alerts::transition(firing, observed.count, observed.rule.above)
            else {
                continue;
            };
            let state = alerts::AlertState {
                firing: change == alerts::Transition::Triggered,
                since: now,
                count: observed.count,
            };
            tx.put_alert_state(environment, &key, &state)?;
            self.deps.metrics.alert_transitions.inc();
            tracing::info!(environment, rule = %key, count = observed.count, above = observed.rule.above, ?change, "alert rule changed");
            let kind = match change {
                alerts::Transition::Triggered => EventType::AlertTriggered,
                alerts::Transition::Resolved => EventType::AlertResolved,
            };
            let cause = DeliveryCause {
                operation: None,
                environment: environment.to_owned(),
                integration: observed.rule.integration.clone(),
                connection_id: None,
                label: format!("alert {key}"),
            };
            let bodies = Bodies {
                envelope: |event_id: &str| {
                    events::alert_envelope(event_id, kind, environment, &observed, now)
                },
                nango: || vec![events::nango_alert_body(kind, environment, &observed)],
            };
            self.queue_deliveries(tx, touched, &settings, kind, bodies, &cause, false, now)?;
        }
        Ok(())
    }

    /// Queues the span of `ended` (just become terminal) for its environment's OTLP collector,
    /// when the environment has one and the operation's type is exported.
    fn queue_span(&mut self, tx: &mut WriteTx, ended: &Operation) -> Result<(), StoreError> {
        let settings = self.deps.settings.clone();
        let Some(target) = settings.otel(&ended.environment) else {
            return Ok(());
        };
        if !crate::otel::is_exported_as(ended.kind, target.names()) {
            return Ok(());
        }
        let max_events = target.max_events_per_span();
        let messages = tx.message_ends(ended.id, max_events)?;
        let Some(span) =
            crate::otel::operation_span_named(ended, &messages, max_events, target.names())
        else {
            return Ok(());
        };
        let kind = JobKind::OtlpSpan(OtlpSpanJob {
            format: OTLP_SPAN_FORMAT_V1,
            operation_id: ended.id,
            url: target.traces_url().to_owned(),
            span: prost::Message::encode_to_vec(&span),
        });
        self.queue_export(tx, &ended.environment, kind)
    }

    /// Whether `environment` exports the messages of exported operations as log records now.
    fn exports_logs(&self, environment: &str) -> bool {
        self.deps
            .settings
            .otel(environment)
            .is_some_and(|target| target.exports_logs())
    }

    /// Queues the messages this group appended to each operation of an exported type as one
    /// `OtlpLogs` job per operation (not one per message: fewer rows, fewer requests).
    fn queue_logs(&mut self, tx: &mut WriteTx, touched: &mut Touched) -> Result<(), StoreError> {
        let now = Timestamp::now();
        for (op_id, messages) in std::mem::take(&mut touched.logged) {
            // Gone when retention removed it in this same group.
            let Some(op) = touched.ops.get(&op_id).map(|o| &o.current) else {
                continue;
            };
            let Some(target) = self.deps.settings.otel(&op.environment) else {
                continue;
            };
            if !crate::otel::is_exported_as(op.kind, target.names()) {
                continue;
            }
            let scope = ScopeLogs {
                log_records: messages
                    .iter()
                    .map(|m| crate::otel::message_log_record_named(op, m, now, target.names()))
                    .collect(),
                ..ScopeLogs::default()
            };
            let kind = JobKind::OtlpLogs(OtlpLogsJob {
                format: OTLP_LOGS_FORMAT_V1,
                operation_id: op_id,
                url: target.logs_url().to_owned(),
                count: messages.len() as u32,
                records: prost::Message::encode_to_vec(&scope),
            });
            let environment = op.environment.clone();
            self.queue_export(tx, &environment, kind)?;
        }
        Ok(())
    }

    /// Writes a new export job, due now.
    fn queue_export(
        &mut self,
        tx: &mut WriteTx,
        environment: &str,
        kind: JobKind,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let job = Job {
            id: self.next_id(),
            environment: environment.to_owned(),
            kind,
            status: DeliveryStatus::Pending,
            created_at: now,
            updated_at: now,
            attempts: 0,
            round_attempts: 0,
            next_attempt_at: Some(now),
            last_error: None,
            round_started_at: now,
        };
        tx.put_job(&job, None)?;
        self.deps.metrics.exports_queued.inc();
        self.outbox_queued = true;
        Ok(())
    }

    /// A new `webhook:deliver` operation that logs one round of a delivery's attempts. It waits
    /// until the first attempt, and its deadline covers the whole retry schedule.
    fn delivery_log(
        &mut self,
        delivery: Id,
        cause: &DeliveryCause,
        event: EventType,
        url: &str,
        settings: &EnvSettings,
        now: Timestamp,
    ) -> Operation {
        let span = policy::worst_case_span(
            &settings.webhooks.retry_schedule,
            settings.webhooks.timeout,
            self.deps.max_retry_after,
        );
        let input = NewOperation {
            kind: OpType::Webhook,
            action: None,
            state: Some(OpState::Waiting),
            integration: cause.integration.clone(),
            connection_id: cause.connection_id.clone(),
            script: None,
            provider: None,
            message: Some(format!("Webhook {event} to {url}")),
            error: None,
            request: Some(HttpRequest {
                method: "POST".into(),
                url: url.to_owned(),
                headers: None,
                body: None,
            }),
            response: None,
            records: None,
            end_user: None,
            tags: None,
            is_async: None,
            meta: Some(Json::from_value(&serde_json::json!({
                "delivery_id": delivery.to_string(),
                "event": event,
                "caused_by": cause.label,
            }))),
            started_at: None,
            ended_at: None,
            expires_at: Some(now.plus_millis(span.as_millis() as i64)),
        };
        let draft = OperationDraft {
            input,
            action: "deliver".into(),
        };
        let id = self.next_id();
        let (log, _) = lifecycle::new_operation(id, &cause.environment, draft, now, span);
        log
    }

    fn record_attempt(
        &mut self,
        tx: &mut WriteTx,
        touched: &mut Touched,
        job_id: Id,
        attempt: Attempt,
        request_headers: Headers,
        now: Timestamp,
    ) -> Result<(), WriteError> {
        let stored = tx
            .job(job_id)?
            .ok_or(WriteError::DeliveryNotFound(job_id))?;
        let mut job = stored.clone();
        job.attempts = job.attempts.max(attempt.number);
        job.round_attempts += 1;
        job.updated_at = now;
        job.status = attempt.outcome;
        job.next_attempt_at = match attempt.outcome {
            DeliveryStatus::Pending => Some(attempt.retry_at.unwrap_or(now)),
            _ => None,
        };
        job.last_error = match (&attempt.error, attempt.status) {
            (Some(e), _) => Some(e.clone()),
            (None, Some(s)) if !(200..300).contains(&s) => Some(format!("HTTP {s}")),
            _ => None,
        };
        tx.put_attempt(job_id, &attempt)?;
        tx.put_job(&job, Some(&stored))?;
        let metrics = &self.deps.metrics;
        let counter = match (job.kind.family(), attempt.outcome) {
            (_, DeliveryStatus::Pending) => None,
            (JobFamily::Delivery, DeliveryStatus::Delivered) => Some(&metrics.deliveries_delivered),
            (JobFamily::Delivery, DeliveryStatus::Failed) => Some(&metrics.deliveries_failed),
            (JobFamily::Export, DeliveryStatus::Delivered) => Some(&metrics.exports_delivered),
            (JobFamily::Export, DeliveryStatus::Failed) => Some(&metrics.exports_failed),
        };
        if let Some(counter) = counter {
            counter.inc();
        }
        // Spans have no log operation: the job and its attempts are the whole record.
        let Some(webhook) = job.webhook() else {
            return Ok(());
        };
        self.log_attempt(
            tx,
            touched,
            webhook.log_operation_id,
            &job,
            &attempt,
            request_headers,
            now,
        )
    }

    /// One `http` message per attempt on the delivery's `webhook:deliver` operation, which ends
    /// with the delivery.
    #[allow(clippy::too_many_arguments)]
    fn log_attempt(
        &mut self,
        tx: &mut WriteTx,
        touched: &mut Touched,
        log_id: Id,
        job: &Job,
        attempt: &Attempt,
        request_headers: Headers,
        now: Timestamp,
    ) -> Result<(), WriteError> {
        let entry = match touched.get(tx, log_id) {
            Ok(entry) => entry,
            // The log is gone (retention): the delivery record still has the attempt.
            Err(WriteError::OperationNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        let before = entry.current.clone();
        let mut operation = before.clone();
        let state = match attempt.outcome {
            DeliveryStatus::Pending => OpState::Running,
            DeliveryStatus::Delivered => OpState::Success,
            DeliveryStatus::Failed => OpState::Failed,
        };
        let error = (attempt.outcome == DeliveryStatus::Failed).then(|| ErrorInfo {
            name: Some("delivery_failed".into()),
            message: job
                .last_error
                .clone()
                .unwrap_or_else(|| "delivery failed".into()),
            kind: None,
            payload: None,
        });
        let patch = OperationPatch {
            state: (!operation.state.is_terminal()).then_some(state),
            message: None,
            error,
            records: None,
            meta: None,
            request: None,
            response: attempt.status.map(|status| HttpResponse {
                status,
                headers: None,
                body: None,
            }),
            started_at: None,
            ended_at: None,
        };
        // A long Retry-After may wait past the deadline set at creation: move it on.
        if let Some(retry_at) = attempt.retry_at {
            let needed = retry_at.plus_millis(3_600_000);
            if needed > operation.expires_at {
                operation.expires_at = needed;
            }
        }
        if patch.state.is_some() {
            lifecycle::apply_patch(&mut operation, patch, now)?;
        }
        if operation != before {
            entry.current = operation.clone();
            entry.dirty = true;
            entry.reindex = true;
        }
        let schedule_len = self
            .deps
            .settings
            .get(&job.environment)
            .map_or(0, |s| s.webhooks.retry_schedule.len() as u32);
        let waited_ms = attempt
            .started_at
            .millis()
            .saturating_sub(job.created_at.millis())
            .max(0) as u64;
        let message = Message {
            id: self.next_id(),
            operation_id: log_id,
            kind: MessageType::Http,
            level: if attempt.outcome == DeliveryStatus::Delivered {
                Level::Info
            } else {
                Level::Error
            },
            source: Source::System,
            message: match (attempt.status, &attempt.error) {
                (Some(status), _) => format!("POST {} -> {status}", attempt.url),
                (None, Some(error)) => format!("POST {} failed: {error}", attempt.url),
                (None, None) => format!("POST {}", attempt.url),
            },
            request: Some(HttpRequest {
                method: "POST".into(),
                url: attempt.url.clone(),
                headers: Some(request_headers),
                body: None,
            }),
            response: attempt.status.map(|status| HttpResponse {
                status,
                headers: None,
                body: attempt
                    .response_excerpt
                    .as_ref()
                    .map(|e| Json::from_value(&serde_json::Value::String(e.clone()))),
            }),
            duration_ms: Some(attempt.duration_ms),
            retry: Some(Retry {
                attempt: job.round_attempts,
                max: schedule_len.max(job.round_attempts),
                waited_ms,
            }),
            error: attempt.error.as_ref().map(|e| ErrorInfo {
                name: Some("delivery_error".into()),
                message: e.clone(),
                kind: None,
                payload: None,
            }),
            meta: attempt
                .retry_at
                .map(|at| Json::from_value(&serde_json::json!({ "next_attempt_at": at }))),
            created_at: attempt.started_at,
        };
        tx.insert_messages(std::slice::from_ref(&message))?;
        if self.exports_logs(&job.environment) {
            touched
                .logged
                .entry(log_id)
                .or_default()
                .push(message.clone());
        }
        touched.feed_messages(Arc::new([message]));
        let entry = touched.get(tx, log_id)?;
        entry.current.message_count += 1;
        entry.dirty = true;
        if operation != before {
            let after = entry.current.clone();
            self.operation_changed(tx, touched, Some(&before), &after)?;
        }
        Ok(())
    }

    /// Starts a new round for `job`: due now, the schedule from its start, a fresh log operation
    /// if the last one ended. A pending job is only made due now.
    fn requeue(
        &mut self,
        tx: &mut WriteTx,
        touched: &mut Touched,
        stored: Job,
        now: Timestamp,
    ) -> Result<Job, WriteError> {
        let mut job = stored.clone();
        job.next_attempt_at = Some(now);
        job.updated_at = now;
        if job.status != DeliveryStatus::Pending {
            job.status = DeliveryStatus::Pending;
            job.round_attempts = 0;
            job.round_started_at = now;
            let settings = self.deps.settings.get(&job.environment);
            let job_id = job.id;
            let Some(webhook) = job.webhook_mut() else {
                tx.put_job(&job, Some(&stored))?;
                self.outbox_queued = true;
                return Ok(job);
            };
            let cause = match touched.get(tx, webhook.operation_id) {
                Ok(entry) => Some(entry.current.clone()),
                Err(WriteError::OperationNotFound(_)) => None,
                Err(e) => return Err(e),
            };
            if let (Some(cause), Some(settings)) = (cause, settings) {
                let url = webhook.url.clone();
                let cause = DeliveryCause::of(&cause);
                let log = self.delivery_log(job_id, &cause, webhook.event, &url, &settings, now);
                webhook.log_operation_id = log.id;
                touched.insert_new(log);
            }
        }
        tx.put_job(&job, Some(&stored))?;
        self.outbox_queued = true;
        Ok(job)
    }
}

/// How to make an event's bodies: the standard envelope from the event id, and the Nango bodies.
struct Bodies<E, N> {
    envelope: E,
    nango: N,
}

/// What caused a delivery: an operation's change, or an alert rule's.
struct DeliveryCause {
    /// The operation whose change it was; `None` for an alert.
    operation: Option<Id>,
    environment: String,
    integration: Option<String>,
    connection_id: Option<String>,
    /// `caused_by` in the delivery log's `meta`: the operation id, or `alert <rule key>`.
    label: String,
}

impl DeliveryCause {
    fn of(op: &Operation) -> DeliveryCause {
        DeliveryCause {
            operation: Some(op.id),
            environment: op.environment.clone(),
            integration: op.integration.clone(),
            connection_id: op.connection_id.clone(),
            label: op.id.to_string(),
        }
    }
}

/// When a new delivery's first attempt is due: the first delay of the schedule.
fn first_attempt_at(settings: &EnvSettings, now: Timestamp) -> Timestamp {
    let first = settings
        .webhooks
        .retry_schedule
        .first()
        .copied()
        .unwrap_or_default();
    now.plus_millis(first.as_millis() as i64)
}

impl Touched {
    /// Puts messages this group stored on their way to the search index.
    fn feed_messages(&mut self, messages: Arc<[Message]>) {
        self.feed
            .messages
            .extend(messages.iter().map(|m| (m.operation_id, m.id)));
        self.fed_messages.push(messages);
    }

    fn insert_new(&mut self, operation: Operation) {
        self.ops.insert(
            operation.id,
            TouchedOp {
                stored: None,
                current: operation,
                dirty: true,
                reindex: true,
            },
        );
    }

    fn get(&mut self, tx: &WriteTx, id: Id) -> Result<&mut TouchedOp, WriteError> {
        match self.ops.entry(id) {
            Entry::Occupied(entry) => Ok(entry.into_mut()),
            Entry::Vacant(entry) => {
                let stored = tx.operation(id)?.ok_or(WriteError::OperationNotFound(id))?;
                Ok(entry.insert(TouchedOp {
                    current: stored.clone(),
                    stored: Some(stored),
                    dirty: false,
                    reindex: false,
                }))
            }
        }
    }

    /// Like `get`, but an operation of another environment is not found.
    fn get_in(
        &mut self,
        tx: &WriteTx,
        id: Id,
        environment: &str,
    ) -> Result<&mut TouchedOp, WriteError> {
        let entry = self.get(tx, id)?;
        if entry.current.environment != environment {
            return Err(WriteError::OperationNotFound(id));
        }
        Ok(entry)
    }
}
