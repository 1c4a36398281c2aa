//! The engine: one thread owns redb's write transaction and applies every command.
//!
//! Requests queue on a bounded channel. The thread takes what has gathered (up to `MAX_GROUP`),
//! applies each command in one write transaction, writes back the operations the group changed,
//! feeds the search index, commits once with `Durability::Immediate`, and only then answers each
//! request: an answer is a promise that the change is on disk (group commit). After the commit it
//! hands the group's changes to the indexer, installs changed settings and wakes the dispatcher.
//!
//! A command ([`Command`]) runs in two phases, each command and its typed reply living with its
//! domain in this module's siblings. `check` sees the group's transaction through [`Check`],
//! which lends it only shared (`&WriteTx`): it reads and decides, and every refusal (unknown
//! operation, a conflict, bad settings) happens there. `write` then carries out the plan through
//! [`Tx`] and can fail only on storage. So a refused command has written nothing by the shape of
//! the types, not by the order of its statements; a storage failure fails the whole group. After
//! an I/O failure the database is reopened once the disk has room again.
//!
//! Must not: run on the async runtime's threads, or answer before the commit returned.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::config::DeadlinesConfig;
use crate::index::{Fed, IndexShared};
use crate::ingest::lifecycle::LifecycleError;
use crate::metrics::Metrics;
use crate::model::job::OutboxDepth;
use crate::model::{Id, Message, Operation, Timestamp};
use crate::settings::{EnvSettings, Settings, SettingsError};
use crate::store::{FeedEntry, Store, StoreError, WriteTx};

/// The most requests one commit carries.
const MAX_GROUP: usize = 1024;
/// Free space needed before writing again after the disk was full.
const REOPEN_FREE_BYTES: u64 = 4 << 20;

/// One change to apply in a write transaction, answered with `Reply` once it is durable.
pub trait Command: Send + 'static {
    type Reply: Send + 'static;
    /// What `check` decided: everything `write` needs, nothing it could refuse.
    type Plan;

    /// Reads and decides, seeing what earlier commands of the group wrote. Any error but
    /// `WriteError::Store` refuses this command alone; nothing can have been written, since
    /// `Check` holds the transaction only shared. A storage error fails the whole group.
    fn check(self, tx: &mut Check<'_>) -> Result<Self::Plan, WriteError>;

    /// Carries out the plan. It may still read, but it cannot refuse: its only error is a storage
    /// failure, which fails the whole group.
    fn write(plan: Self::Plan, tx: &mut Tx<'_>) -> Result<Self::Reply, StoreError>;
}

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
    #[error(transparent)]
    View(#[from] crate::views::ViewRefused),
    #[error("the writer is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A command on its way through the engine, with where its answer goes.
trait Pending: Send {
    /// Applies the command and keeps its answer; returns only a storage failure.
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError>;
    /// Sends the kept answer (the group committed).
    fn answer(self: Box<Self>);
    /// Sends `error` instead (the group failed or was refused).
    fn fail(self: Box<Self>, error: WriteError);
}

struct Queued<C: Command> {
    command: Option<C>,
    result: Option<Result<C::Reply, WriteError>>,
    reply: oneshot::Sender<Result<C::Reply, WriteError>>,
}

impl<C: Command> Pending for Queued<C> {
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        let command = self.command.take().expect("a command is applied once");
        let result = match command.check(&mut tx.check()) {
            Ok(plan) => Ok(C::write(plan, tx)?),
            Err(WriteError::Store(e)) => return Err(e),
            Err(refused) => Err(refused),
        };
        self.result = Some(result);
        Ok(())
    }

    fn answer(self: Box<Self>) {
        let result = self.result.expect("answered after being applied");
        let _ = self.reply.send(result);
    }

    fn fail(self: Box<Self>, error: WriteError) {
        let _ = self.reply.send(Err(error));
    }
}

enum Request {
    Apply(Box<dyn Pending>),
    /// Stop taking requests once the queue is drained.
    Stop,
}

/// Sends commands to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Request>,
}

impl Writer {
    /// Applies `command` and waits until it is durable (or refused).
    pub async fn submit<C: Command>(&self, command: C) -> Result<C::Reply, WriteError> {
        let (request, answer) = request(command);
        self.tx
            .send(request)
            .await
            .map_err(|_| WriteError::ShuttingDown)?;
        answer.await.map_err(|_| WriteError::ShuttingDown)?
    }

    /// `submit` for threads outside the async runtime (the dispatcher's sender threads).
    pub fn submit_blocking<C: Command>(&self, command: C) -> Result<C::Reply, WriteError> {
        let (request, answer) = request(command);
        self.tx
            .blocking_send(request)
            .map_err(|_| WriteError::ShuttingDown)?;
        answer
            .blocking_recv()
            .map_err(|_| WriteError::ShuttingDown)?
    }

    /// Whether the queue is full, so a `submit` now would wait for room.
    pub fn is_busy(&self) -> bool {
        self.tx.capacity() == 0
    }

    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Asks the writer to finish what is queued and stop; later submits answer `ShuttingDown`.
    pub async fn stop(&self) {
        let _ = self.tx.send(Request::Stop).await;
    }
}

type Answer<C> = oneshot::Receiver<Result<<C as Command>::Reply, WriteError>>;

fn request<C: Command>(command: C) -> (Request, Answer<C>) {
    let (reply, answer) = oneshot::channel();
    let queued = Queued {
        command: Some(command),
        result: None,
        reply,
    };
    (Request::Apply(Box::new(queued)), answer)
}

/// What the writer thread works with besides the store.
pub struct WriterDeps {
    pub deadlines: DeadlinesConfig,
    pub metrics: Arc<Metrics>,
    /// Woken after a commit that fed the search index.
    pub index: Arc<IndexShared>,
    /// Read to route events; replaced after a committed settings change.
    pub settings: Arc<Settings>,
    /// Called after a commit that queued outbox work (wakes the dispatcher).
    pub outbox_queued: Box<dyn Fn() + Send>,
    pub max_retry_after: std::time::Duration,
    /// Requests that may wait in the queue (`ingest.writer_queue`).
    pub queue: usize,
}

/// Starts the writer thread. It ends once every `Writer` is dropped and the queue is drained.
pub fn start(store: Arc<Store>, deps: WriterDeps) -> Result<(Writer, JoinHandle<()>), StoreError> {
    let (feed_seq, last_id, message_seq) = {
        let db = store.write()?;
        (db.last_feed_seq()?, db.last_id()?, db.last_message_seq()?)
    };
    deps.metrics.feed_seq.store(feed_seq, Ordering::Relaxed);
    deps.metrics.add_outbox_depth(store.read()?.outbox_depth()?);
    let (tx, rx) = mpsc::channel(deps.queue);
    let thread = std::thread::Builder::new()
        .name("opslog-writer".into())
        .spawn(move || {
            Engine {
                store,
                deps,
                feed_seq,
                trimmed_to: 0,
                needs_reopen: false,
                last_id,
                message_seq,
            }
            .run(rx)
        })
        .expect("spawning the writer thread");
    Ok((Writer { tx }, thread))
}

struct Engine {
    store: Arc<Store>,
    deps: WriterDeps,
    /// The sequence of the newest committed feed entry.
    feed_seq: u64,
    /// Feed entries up to this one are already trimmed.
    trimmed_to: u64,
    /// The last group failed on I/O: reopen the database before the next one.
    needs_reopen: bool,
    /// The newest id handed out (or stored, at start): ids only grow.
    last_id: u128,
    /// The sequence number of the newest stored message.
    message_seq: u64,
}

/// What a committed group leaves for the engine to record and hand on.
struct Committed {
    /// What the commit added to the search index's feed, if anything.
    fed: Option<Fed>,
    trimmed_to: u64,
    /// Messages the group wrote.
    messages: u64,
    outbox_depth: OutboxDepth,
}

/// What one group has read and changed so far, beyond what is already in the transaction.
#[derive(Default)]
pub(super) struct Group {
    /// Operations read or changed, written back once at the group's end.
    pub(super) ops: HashMap<Id, TouchedOp>,
    /// What the search index must pick up from this group.
    feed: FeedEntry,
    /// Messages stored by this group, with the sequence number of each chunk's first (the rest
    /// follow it): written as blocks at the group's end, then handed to the index.
    messages: Vec<(u64, Arc<[Message]>)>,
    /// Messages appended to operations of environments that export logs, by operation: each
    /// operation's become one `OtlpLogs` job at the end of the group.
    pub(super) logged: BTreeMap<Id, Vec<Message>>,
    /// Settings written by the group; installed once the commit succeeds.
    settings_changed: Vec<EnvSettings>,
    /// Whether the group queued outbox work (the dispatcher is woken after the commit).
    outbox_queued: bool,
}

/// An operation as the group sees it.
pub(super) struct TouchedOp {
    stored: Option<Operation>,
    pub(super) current: Operation,
    /// To be written back.
    pub(super) dirty: bool,
    /// Changed in a way the index shows (not only its message count).
    pub(super) reindex: bool,
}

impl TouchedOp {
    /// Replaces the operation with `changed`, to be written back and indexed again.
    pub(super) fn set(&mut self, changed: Operation) {
        self.current = changed;
        self.dirty = true;
        self.reindex = true;
    }

    /// Counts `n` more messages.
    pub(super) fn count_messages(&mut self, n: u64) {
        self.current.message_count += n;
        self.dirty = true;
    }
}

/// What a command works with: the group's transaction, the operations the group has read or
/// changed, and the writer's dependencies.
pub struct Tx<'a> {
    /// The group's redb write transaction.
    pub(super) db: &'a mut WriteTx,
    pub(super) deps: &'a WriterDeps,
    /// When the command is applied (read once per command).
    pub(super) now: Timestamp,
    pub(super) group: &'a mut Group,
    last_id: &'a mut u128,
    /// The sequence number of the newest message stored, this group's included.
    message_seq: &'a mut u64,
}

impl Tx<'_> {
    /// The next id: a ULID (creation time in ms, then 80 bits) whose 80 bits count on from the
    /// last id's, so ids sort by creation and ids made together are close: stored as deltas they
    /// take a byte where random bits took ten. The count starts from random bits on a new data
    /// dir (`Store::last_id`), so two data dirs do not hand out the same ids.
    pub(super) fn next_id(&mut self) -> Id {
        *self.last_id = next_id(*self.last_id, Timestamp::now());
        Id(*self.last_id)
    }

    /// Stores `messages` (fresh ones, or imported ones not stored yet) in this group: each gets
    /// the next sequence number, counts on its operation (which `check` found), and goes to the
    /// search index after the commit.
    pub(super) fn store_messages(&mut self, messages: Arc<[Message]>) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        for m in messages.iter() {
            self.checked_operation(m.operation_id)?.count_messages(1);
        }
        let first = *self.message_seq + 1;
        *self.message_seq += messages.len() as u64;
        self.group.feed.messages_through = *self.message_seq;
        self.group.messages.push((first, messages));
        Ok(())
    }

    /// The ids of `operation`'s messages in `[low, high]`, stored or stored by this group.
    pub(super) fn message_ids(
        &self,
        operation: Id,
        low: u128,
        high: u128,
    ) -> Result<Vec<Id>, StoreError> {
        let mut ids = self.db.message_ids(operation, low, high)?;
        let pending = self
            .group
            .messages
            .iter()
            .flat_map(|(_, chunk)| chunk.iter());
        ids.extend(
            pending
                .filter(|m| m.operation_id == operation && (low..=high).contains(&m.id.0))
                .map(|m| m.id),
        );
        Ok(ids)
    }

    /// The first and the last `each` messages of `operation`, oldest first, with those this
    /// group stores (after every stored one).
    pub(super) fn message_ends(
        &self,
        operation: Id,
        each: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let mut all = self.db.message_ends(operation, each)?;
        let pending = self
            .group
            .messages
            .iter()
            .flat_map(|(_, chunk)| chunk.iter());
        all.extend(pending.filter(|m| m.operation_id == operation).cloned());
        if all.len() > 2 * each {
            all.drain(each..all.len() - each);
        }
        Ok(all)
    }

    /// The group's transaction lent for reading only, for a command's `check`.
    pub(super) fn check(&mut self) -> Check<'_> {
        Check {
            db: &*self.db,
            deps: self.deps,
            now: self.now,
            ops: &mut self.group.ops,
        }
    }

    /// The operation as this group sees it (read from the store the first time), if it is stored.
    pub(super) fn find_operation(&mut self, id: Id) -> Result<Option<&mut TouchedOp>, StoreError> {
        touch(&mut self.group.ops, self.db, id)
    }

    /// An operation the command's `check` found: read then, so it is in the group. Not finding it
    /// is a broken invariant of the engine, reported as a storage failure (the group fails)
    /// rather than a panic of the writer thread.
    pub(super) fn checked_operation(&mut self, id: Id) -> Result<&mut TouchedOp, StoreError> {
        self.find_operation(id)?.ok_or_else(|| {
            StoreError::Corrupt(format!("operation `{id}` vanished between check and write"))
        })
    }

    /// A new operation, written at the group's end.
    pub(super) fn insert_operation(&mut self, operation: Operation) {
        self.group.ops.insert(
            operation.id,
            TouchedOp {
                stored: None,
                current: operation,
                dirty: true,
                reindex: true,
            },
        );
    }

    /// Operations removed from the store by this group: neither written back nor indexed.
    pub(super) fn removed_operations(&mut self, ids: Vec<Id>) {
        for id in &ids {
            self.group.ops.remove(id);
        }
        self.group.feed.removed_operations.extend(ids);
    }

    /// The settings of `environment` in force for this command: as an earlier command of the
    /// group changed them, else the registry's.
    pub(super) fn settings_in_force(&self, environment: &str) -> Option<EnvSettings> {
        let changed = self.group.settings_changed.iter().rev();
        changed
            .into_iter()
            .find(|s| s.environment == environment)
            .cloned()
            .or_else(|| self.deps.settings.get(environment).map(|s| (*s).clone()))
    }

    /// Settings to install once the group commits.
    pub(super) fn settings_changed(&mut self, settings: EnvSettings) {
        self.group.settings_changed.push(settings);
    }

    /// The group queued outbox work: wake the dispatcher after the commit.
    pub(super) fn outbox_queued(&mut self) {
        self.group.outbox_queued = true;
    }
}

/// A command's view of the group while it decides: the transaction shared (so only its reads
/// are reachable), the operations the group has read or changed, the writer's dependencies.
pub struct Check<'a> {
    pub(super) db: &'a WriteTx,
    pub(super) deps: &'a WriterDeps,
    /// When the command is applied (the same clock its `write` sees).
    pub(super) now: Timestamp,
    ops: &'a mut HashMap<Id, TouchedOp>,
}

impl Check<'_> {
    /// The operation as this group sees it (read from the store the first time).
    pub(super) fn operation(&mut self, id: Id) -> Result<&Operation, WriteError> {
        match touch(self.ops, self.db, id)? {
            Some(entry) => Ok(&entry.current),
            None => Err(WriteError::OperationNotFound(id)),
        }
    }

    /// Like `operation`, but an operation of another environment is not found.
    pub(super) fn operation_in(
        &mut self,
        id: Id,
        environment: &str,
    ) -> Result<&Operation, WriteError> {
        let operation = self.operation(id)?;
        if operation.environment != environment {
            return Err(WriteError::OperationNotFound(id));
        }
        Ok(operation)
    }
}

/// Reads an operation into the group's cache the first time the group asks for it. Caching a
/// read writes nothing: an entry is written back only once a `write` marks it dirty.
fn touch<'g>(
    ops: &'g mut HashMap<Id, TouchedOp>,
    db: &WriteTx,
    id: Id,
) -> Result<Option<&'g mut TouchedOp>, StoreError> {
    Ok(match ops.entry(id) {
        Entry::Occupied(entry) => Some(entry.into_mut()),
        Entry::Vacant(entry) => db.operation(id)?.map(|stored| {
            entry.insert(TouchedOp {
                current: stored.clone(),
                stored: Some(stored),
                dirty: false,
                reindex: false,
            })
        }),
    })
}

impl Engine {
    fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut group = Vec::with_capacity(MAX_GROUP);
        let mut stopping = false;
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Apply(pending) => group.push(pending),
                    Request::Stop => stopping = true,
                }
                if group.len() < MAX_GROUP {
                    next = rx.try_recv().ok();
                }
            }
            if stopping {
                rx.close();
            }
            if !group.is_empty() {
                self.commit_group(&mut group);
            }
        }
        tracing::debug!("writer stopped");
    }

    fn commit_group(&mut self, requests: &mut Vec<Box<dyn Pending>>) {
        if self.needs_reopen {
            // The old handle still serves reads; replace it only once there is room to write,
            // and until then refuse writes without touching the database.
            let room = fs4::available_space(self.store.path()).unwrap_or(0);
            if room < REOPEN_FREE_BYTES {
                let error = StoreError::DiskFull(format!("{room} bytes free"));
                self.deps
                    .metrics
                    .disk_full_rejections
                    .inc_by(requests.len() as u64);
                for request in requests.drain(..) {
                    request.fail(WriteError::Store(error.clone()));
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
        let mut group = Group::default();
        let outcome = self.apply_group(requests, &mut group);
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
                for settings in group.settings_changed {
                    self.deps.settings.replace(settings);
                }
                if group.outbox_queued {
                    (self.deps.outbox_queued)();
                }
                for request in requests.drain(..) {
                    request.answer();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = requests.len(), "write group failed");
                let metrics = &self.deps.metrics;
                metrics.failed_commits.inc();
                if matches!(e, StoreError::DiskFull(_)) {
                    metrics.disk_full_rejections.inc_by(requests.len() as u64);
                }
                // redb refuses all further writes after an I/O failure until it is reopened.
                self.needs_reopen = matches!(e, StoreError::DiskFull(_) | StoreError::Storage(_));
                for request in requests.drain(..) {
                    request.fail(WriteError::Store(e.clone()));
                }
            }
        }
    }

    /// Applies every request in one transaction, writes back what the group changed, feeds the
    /// index and commits.
    fn apply_group(
        &mut self,
        requests: &mut [Box<dyn Pending>],
        group: &mut Group,
    ) -> Result<Committed, StoreError> {
        let mut db = self.store.write()?;
        let mut message_seq = self.message_seq;
        let mut last_id = self.last_id;
        let mut tx = Tx {
            db: &mut db,
            deps: &self.deps,
            now: Timestamp::now(),
            group,
            last_id: &mut last_id,
            message_seq: &mut message_seq,
        };
        for request in requests.iter_mut() {
            tx.now = Timestamp::now();
            request.apply(&mut tx)?;
        }
        tx.queue_logs()?;
        let messages = store_group_messages(&mut db, group)?;
        let mut feed = std::mem::take(&mut group.feed);
        let mut changed = HashMap::new();
        for (id, op) in group.ops.drain().filter(|(_, op)| op.dirty) {
            db.put_operation(&op.current, op.stored.as_ref())?;
            if op.reindex {
                feed.operations.push(id);
            }
            changed.insert(id, op.current);
        }
        let fed = if feed.is_empty() {
            None
        } else {
            db.append_feed(self.feed_seq + 1, &feed)?;
            Some(Fed {
                seq: self.feed_seq + 1,
                entry: feed,
                operations: changed,
                messages: std::mem::take(&mut group.messages),
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
            db.trim_feed(indexed)?;
            indexed
        } else {
            self.trimmed_to
        };
        let outbox_depth = db.outbox_depth_change();
        db.commit()?;
        // Only a committed group moves the counters on; a failed one hands them out again.
        self.message_seq = message_seq;
        self.last_id = last_id;
        Ok(Committed {
            fed,
            trimmed_to,
            messages,
            outbox_depth,
        })
    }
}

/// Writes the messages `group` stored as blocks, leaving out those of operations it removed
/// (retention in the same group); returns how many were written.
fn store_group_messages(db: &mut WriteTx, group: &mut Group) -> Result<u64, StoreError> {
    let removed: std::collections::HashSet<Id> =
        group.feed.removed_operations.iter().copied().collect();
    let rows: Vec<(u64, &Message)> = group
        .messages
        .iter()
        .flat_map(|(first, chunk)| (*first..).zip(chunk.iter()))
        .filter(|(_, m)| !removed.contains(&m.operation_id))
        .collect();
    db.append_messages(&rows)?;
    Ok(rows.len() as u64)
}

/// The id after `last` at `now`: `now`'s milliseconds over the count after `last`'s, or one past
/// `last` when the clock did not move past it.
fn next_id(last: u128, now: Timestamp) -> u128 {
    const COUNT_BITS: u32 = 80;
    let count = (last.wrapping_add(1)) & ((1 << COUNT_BITS) - 1);
    let candidate = ((now.millis().max(0) as u128) << COUNT_BITS) | count;
    candidate.max(last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::ingest::input::{validate_message, validate_new_operation, Redaction};
    use crate::write::{AppendMessages, CreateOperation, TimeOutOverdue, UpdateOperation};

    fn engine(dir: &std::path::Path) -> (Engine, Arc<Store>) {
        let store = Arc::new(Store::open(dir).unwrap());
        let (index, _indexer) = crate::index::open(dir, store.clone()).unwrap();
        let settings = Settings::load_or_init(&Config::default(), &store).unwrap();
        let deps = WriterDeps {
            deadlines: DeadlinesConfig::default(),
            metrics: Arc::new(Metrics::default()),
            index: index.shared.clone(),
            settings: Arc::new(settings),
            outbox_queued: Box::new(|| {}),
            max_retry_after: std::time::Duration::from_secs(3600),
            queue: 16,
        };
        let engine = Engine {
            store: store.clone(),
            deps,
            feed_seq: 0,
            trimmed_to: 0,
            needs_reopen: false,
            last_id: 0,
            message_seq: 0,
        };
        (engine, store)
    }

    fn queued<C: Command>(command: C) -> (Box<dyn Pending>, Answer<C>) {
        let (request, answer) = request(command);
        let Request::Apply(pending) = request else {
            panic!("a command is queued as one to apply")
        };
        (pending, answer)
    }

    fn create(integration: &str) -> CreateOperation {
        let input = serde_json::from_value(serde_json::json!({
            "type": "sync", "integration": integration, "connection_id": "c1"
        }))
        .unwrap();
        CreateOperation {
            environment: "prod".into(),
            idempotency: None,
            draft: validate_new_operation(input, &Redaction::new(&[])).unwrap(),
        }
    }

    fn append(operation: Id, text: &str) -> AppendMessages {
        let input = serde_json::from_value(serde_json::json!({ "message": text })).unwrap();
        AppendMessages {
            environment: "prod".into(),
            messages: vec![(
                operation,
                validate_message(input, &Redaction::new(&[])).unwrap(),
            )],
        }
    }

    #[test]
    fn one_group_answers_each_command_with_its_own_reply_and_a_refused_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        let unknown = Id(42);
        let (first, created) = queued(create("github"));
        let (second, refused) = queued(append(unknown, "to nowhere"));
        let (third, swept) = queued(TimeOutOverdue {
            now: Timestamp::now(),
        });
        engine.commit_group(&mut vec![first, second, third]);

        let created = created.blocking_recv().unwrap().unwrap();
        assert!(!created.replayed);
        assert_eq!(created.operation.integration.as_deref(), Some("github"));
        let refused = refused.blocking_recv().unwrap();
        assert!(
            matches!(refused, Err(WriteError::OperationNotFound(id)) if id == unknown),
            "{refused:?}"
        );
        assert_eq!(swept.blocking_recv().unwrap().unwrap(), 0);
        let stored = store.read().unwrap();
        assert_eq!(
            stored.operation(created.operation.id).unwrap(),
            Some(created.operation.clone())
        );
        assert_eq!(stored.operation(unknown).unwrap(), None);
        drop(stored);

        // The next group sees what the first committed: messages count, a patch answers with
        // the operation as it now is.
        let id = created.operation.id;
        let (first, appended) = queued(append(id, "page 1 fetched"));
        let patch = serde_json::from_value(serde_json::json!({ "state": "success" })).unwrap();
        let (second, updated) = queued(UpdateOperation {
            environment: "prod".into(),
            id,
            patch,
        });
        engine.commit_group(&mut vec![first, second]);
        let appended = appended.blocking_recv().unwrap().unwrap();
        assert_eq!(appended.len(), 1);
        assert_eq!(appended[0].message, "page 1 fetched");
        assert_eq!(appended[0].operation_id, id);
        let updated = updated.blocking_recv().unwrap().unwrap();
        assert_eq!(updated.message_count, 1);
        assert!(updated.state.is_terminal());
        let stored = store.read().unwrap().operation(id).unwrap().unwrap();
        assert_eq!(stored, updated);
    }

    /// Applies `command` alone in a group and returns its answer, checking that a refusal left
    /// every table (and what the engine hands on after a commit) exactly as it was.
    fn refused_alone<C: Command>(engine: &mut Engine, store: &Store, command: C) -> WriteError
    where
        C::Reply: std::fmt::Debug,
    {
        let before = store.dump();
        let feed_seq = engine.feed_seq;
        let settings_before = engine.deps.settings.get("prod").map(|s| format!("{s:?}"));
        let (pending, answer) = queued(command);
        engine.commit_group(&mut vec![pending]);
        let error = answer
            .blocking_recv()
            .unwrap()
            .expect_err("the command is refused");
        assert!(!matches!(error, WriteError::Store(_)), "{error:?}");
        assert_eq!(store.dump(), before, "a refused command wrote nothing");
        assert_eq!(engine.feed_seq, feed_seq, "nothing was fed to the index");
        let settings_after = engine.deps.settings.get("prod").map(|s| format!("{s:?}"));
        assert_eq!(
            settings_after, settings_before,
            "no settings were installed"
        );
        error
    }

    fn commit<C: Command>(engine: &mut Engine, command: C) -> C::Reply
    where
        C::Reply: std::fmt::Debug,
    {
        let (pending, answer) = queued(command);
        engine.commit_group(&mut vec![pending]);
        answer.blocking_recv().unwrap().unwrap()
    }

    fn settings_change(json: serde_json::Value) -> crate::write::ChangeSettings {
        crate::write::ChangeSettings {
            environment: "prod".into(),
            change: crate::write::SettingsChange::Update(Box::new(
                serde_json::from_value(json).unwrap(),
            )),
        }
    }

    fn patch(id: Id, json: serde_json::Value) -> UpdateOperation {
        UpdateOperation {
            environment: "prod".into(),
            id,
            patch: serde_json::from_value(json).unwrap(),
        }
    }

    #[test]
    fn refused_create_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        let mut first = create("github");
        first.idempotency = Some(("run-1".into(), [1; 32]));
        commit(&mut engine, first);
        let mut other_body = create("github");
        other_body.idempotency = Some(("run-1".into(), [2; 32]));
        let error = refused_alone(&mut engine, &store, other_body);
        assert!(matches!(error, WriteError::IdempotencyMismatch(k) if k == "run-1"));
    }

    #[test]
    fn refused_update_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        let id = commit(&mut engine, create("github")).operation.id;
        commit(
            &mut engine,
            patch(id, serde_json::json!({ "state": "success" })),
        );
        let conflict = patch(
            id,
            serde_json::json!({ "state": "failed", "meta": { "a": 1 } }),
        );
        let error = refused_alone(&mut engine, &store, conflict);
        assert!(matches!(error, WriteError::Lifecycle(_)), "{error:?}");
        let mut elsewhere = patch(id, serde_json::json!({ "message": "renamed" }));
        elsewhere.environment = "dev".into();
        let error = refused_alone(&mut engine, &store, elsewhere);
        assert!(matches!(error, WriteError::OperationNotFound(i) if i == id));
    }

    /// OTLP ingest refuses spans and records one by one (partial success), never the command:
    /// when every one is refused, nothing is written.
    #[test]
    fn otlp_ingest_whose_spans_and_records_are_all_refused_writes_nothing() {
        use crate::ingest::otlp::{LogMessage, LogTarget, SpanOperation};
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        let stored = commit(&mut engine, create("github")).operation;
        let mut elsewhere = stored.clone();
        elsewhere.environment = "dev".into();
        let orphan = LogMessage {
            target: LogTarget::Span("\u{1}otlp-span never-sent".into()),
            message: append(stored.id, "lost").messages[0]
                .1
                .clone()
                .into_message(Id(42), Id(0), stored.created_at),
        };
        let before = store.dump();
        let ingested = commit(
            &mut engine,
            crate::write::IngestOtlp {
                environment: "dev".into(),
                spans: vec![SpanOperation {
                    key: "\u{1}otlp-span taken".into(),
                    operation: elsewhere,
                    messages: Vec::new(),
                }],
                logs: vec![orphan],
            },
        );
        assert_eq!(ingested.spans_refused.count, 1);
        assert_eq!(ingested.logs_refused.count, 1);
        assert_eq!(ingested.operations_added + ingested.messages_added, 0);
        assert_eq!(store.dump(), before, "nothing was written");
    }

    #[test]
    fn refused_append_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        let id = commit(&mut engine, create("github")).operation.id;
        // The first message's operation exists; the batch is refused for the second one's.
        let mut batch = append(id, "page 1");
        batch.messages.extend(append(Id(7), "to nowhere").messages);
        let error = refused_alone(&mut engine, &store, batch);
        assert!(matches!(error, WriteError::OperationNotFound(Id(7))));
    }

    #[test]
    fn refused_record_attempts_and_requeue_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        commit(
            &mut engine,
            settings_change(serde_json::json!({
                "webhooks": { "url": "http://127.0.0.1:9/hooks", "events": ["sync.completed"] }
            })),
        );
        let id = commit(&mut engine, create("github")).operation.id;
        commit(
            &mut engine,
            patch(id, serde_json::json!({ "state": "success" })),
        );
        let job = store
            .read()
            .unwrap()
            .due_jobs(Timestamp(i64::MAX), None, 10)
            .unwrap()
            .jobs[0]
            .1
            .id;
        let attempt = |job| crate::write::RecordedAttempt {
            job,
            attempt: crate::model::job::Attempt {
                number: 1,
                started_at: Timestamp::now(),
                url: "http://127.0.0.1:9/hooks".into(),
                status: Some(200),
                error: None,
                response_excerpt: None,
                duration_ms: 3,
                webhook_timestamp: 0,
                outcome: crate::model::DeliveryStatus::Delivered,
                retry_at: None,
                batch_size: None,
                rejected: None,
            },
            request_headers: Default::default(),
        };
        let unknown = Id(99);
        // A job erased while it was being sent: its attempt is dropped, the others recorded.
        commit(
            &mut engine,
            crate::write::RecordAttempts(vec![attempt(job), attempt(unknown)]),
        );
        assert_eq!(store.read().unwrap().attempts(job).unwrap().len(), 1);

        let requeue = crate::write::RequeueJobs {
            environment: "prod".into(),
            selection: crate::write::Requeue::One(crate::model::job::JobFamily::Delivery, unknown),
        };
        let error = refused_alone(&mut engine, &store, requeue);
        assert!(matches!(error, WriteError::DeliveryNotFound(i) if i == unknown));
    }

    #[test]
    fn refused_settings_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        // A valid otel section beside alert rules that are refused (two for one signal): the
        // otel section is not written either.
        let change = settings_change(serde_json::json!({
            "otel": { "endpoint": "http://127.0.0.1:4318", "service_name": "renamed" },
            "alerts": [
                { "signal": "sync_failures", "above": 1, "window": "5m" },
                { "signal": "sync_failures", "above": 2, "window": "5m" }
            ]
        }));
        let error = refused_alone(&mut engine, &store, change);
        assert!(matches!(error, WriteError::Settings(_)), "{error:?}");
    }

    /// An audited admin action that is refused writes no audit record (nor anything else); one
    /// that is carried out writes its record in its own commit, secrets masked.
    #[test]
    fn refused_audited_commands_write_no_audit_record() {
        use crate::model::audit::{AuditAction, AuditActor, AuditDraft};
        use crate::write::Audited;
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        let draft = |action| AuditDraft::new(action, AuditActor::system(), Some("prod".into()));
        let refused_settings = settings_change(serde_json::json!({
            "alerts": [
                { "signal": "sync_failures", "above": 1, "window": "5m" },
                { "signal": "sync_failures", "above": 2, "window": "5m" }
            ]
        }));
        let error = refused_alone(
            &mut engine,
            &store,
            Audited {
                command: refused_settings,
                draft: draft(AuditAction::SettingsChange),
            },
        );
        assert!(matches!(error, WriteError::Settings(_)), "{error:?}");
        let requeue = crate::write::RequeueJobs {
            environment: "prod".into(),
            selection: crate::write::Requeue::One(crate::model::job::JobFamily::Delivery, Id(9)),
        };
        let error = refused_alone(
            &mut engine,
            &store,
            Audited {
                command: requeue,
                draft: draft(AuditAction::DeliveryRetry),
            },
        );
        assert!(
            matches!(error, WriteError::DeliveryNotFound(_)),
            "{error:?}"
        );
        let delete = crate::write::ChangeView {
            environment: "prod".into(),
            change: crate::write::ViewChange::Delete { id: "nope".into() },
            may_change_alerted: true,
        };
        refused_alone(
            &mut engine,
            &store,
            Audited {
                command: delete,
                draft: draft(AuditAction::ViewDelete),
            },
        );
        let all = (0, u128::MAX);
        let read = || {
            store
                .read()
                .unwrap()
                .audit_records(all, &[], None, 10)
                .unwrap()
        };
        assert_eq!(read().total, 0);

        let accepted = settings_change(serde_json::json!({
            "webhooks": { "url": "http://127.0.0.1:9/hooks" }
        }));
        commit(
            &mut engine,
            Audited {
                command: accepted,
                draft: draft(AuditAction::SettingsChange),
            },
        );
        let page = read();
        assert_eq!(page.total, 1);
        let record = &page.records[0];
        assert_eq!(record.action, AuditAction::SettingsChange);
        let detail: serde_json::Value = serde_json::from_str(&record.detail).unwrap();
        let url = detail["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == "webhooks.url")
            .unwrap_or_else(|| panic!("the url change is listed: {detail}"));
        assert_eq!(url["new"], "http://127.0.0.1:9/hooks");
    }

    #[test]
    fn refused_import_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        let existing = commit(&mut engine, create("github")).operation;
        let mut new_op = existing.clone();
        new_op.id = Id(existing.id.0 + 1_000);
        let template = commit(&mut engine, append(existing.id, "copied"))[0].clone();
        let message = |id: u128, operation_id| Message {
            id: Id(id),
            operation_id,
            ..template.clone()
        };
        let ok = message(existing.id.0 + 2_000, new_op.id);
        let orphan = message(existing.id.0 + 3_000, Id(5));
        let import = crate::write::Import {
            environment: "prod".into(),
            operations: vec![existing, new_op],
            messages: vec![ok, orphan],
        };
        let error = refused_alone(&mut engine, &store, import);
        assert!(matches!(error, WriteError::OperationNotFound(Id(5))));
    }

    #[test]
    fn refused_view_changes_write_nothing() {
        use crate::write::{ChangeView, ViewChange};
        let dir = tempfile::tempdir().unwrap();
        let (mut engine, store) = engine(dir.path());
        let change = |change| ChangeView {
            environment: "prod".into(),
            change,
            may_change_alerted: false,
        };
        let query: crate::views::ViewQuery =
            serde_json::from_value(serde_json::json!({"state": ["failed"]})).unwrap();
        let create = |name: &str| {
            change(ViewChange::Create {
                id: None,
                name: name.into(),
                query: query.clone(),
            })
        };
        let saved = commit(&mut engine, create("Failures")).unwrap();
        commit(
            &mut engine,
            settings_change(serde_json::json!({
                "alerts": [{ "view": saved.id, "above": 1, "window": "5m" }]
            })),
        );
        let refusals = [
            (create("failures"), "a taken name"),
            (
                change(ViewChange::Delete {
                    id: "sync_failures".into(),
                }),
                "a built-in view",
            ),
            (change(ViewChange::Delete { id: "nope".into() }), "unknown"),
            (
                change(ViewChange::Delete {
                    id: saved.id.clone(),
                }),
                "counted by a rule",
            ),
            (
                change(ViewChange::Update {
                    id: saved.id.clone(),
                    name: Some("Renamed".into()),
                    query: Some(crate::views::ViewQuery::default()),
                }),
                "a reader changing a counted query",
            ),
        ];
        for (command, why) in refusals {
            let error = refused_alone(&mut engine, &store, command);
            assert!(matches!(error, WriteError::View(_)), "{why}: {error:?}");
        }
        // A rule on a view that does not exist is refused with the settings beside it.
        let on_nothing = settings_change(serde_json::json!({
            "otel": { "endpoint": "http://127.0.0.1:4318" },
            "alerts": [{ "view": "nope", "above": 1, "window": "5m" }]
        }));
        let error = refused_alone(&mut engine, &store, on_nothing);
        assert!(
            matches!(&error, WriteError::Settings(e) if e.field() == "alerts[0].view"),
            "{error:?}"
        );
    }

    // `TimeOutOverdue`, `ObserveAlerts` and `RemoveExpired` are never refused: their `check`
    // is `Ok(self)` and what they act on is read when writing.

    #[test]
    fn the_writer_thread_applies_what_is_submitted_and_refuses_after_stop() {
        let dir = tempfile::tempdir().unwrap();
        let (engine, store) = engine(dir.path());
        let (writer, thread) = start(store.clone(), engine.deps).unwrap();
        let created = writer.submit_blocking(create("hubspot")).unwrap();
        let stored = store
            .read()
            .unwrap()
            .operation(created.operation.id)
            .unwrap();
        assert_eq!(stored, Some(created.operation));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(writer.stop());
        thread.join().unwrap();
        assert!(matches!(
            writer.submit_blocking(create("late")),
            Err(WriteError::ShuttingDown)
        ));
    }
}
