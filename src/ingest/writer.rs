//! The single writer: one thread owns redb's write transaction and applies every change.
//!
//! Requests queue on a bounded channel. The thread takes what has gathered (up to `MAX_GROUP`),
//! applies each command in one write transaction, commits once with `Durability::Immediate`, and
//! only then answers each request: an answer is a promise that the change is on disk (group commit).
//! A command that fails validation against the stored state (unknown operation, a conflict) is
//! answered with its error and has written nothing; a storage failure fails the whole group.
//!
//! Must not: run on the async runtime's threads, or answer before the commit returned.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};
use ulid::Ulid;

use super::input::{MessageDraft, OperationDraft, OperationPatch};
use super::lifecycle::{self, Change, LifecycleError};
use crate::config::DeadlinesConfig;
use crate::index::IndexShared;
use crate::metrics::Metrics;
use crate::model::*;
use crate::store::{FeedEntry, IdempotencyRecord, Store, StoreError, WriteTx};

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

pub enum Command {
    CreateOperation {
        environment: String,
        /// `Idempotency-Key` and the SHA-256 of the request body.
        idempotency: Option<(String, [u8; 32])>,
        draft: OperationDraft,
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
    /// Retention: removes operations created before `cutoff`, with everything that hangs on them.
    RemoveExpired {
        cutoff: Timestamp,
    },
}

#[derive(Debug)]
pub enum Outcome {
    Operation {
        operation: Box<Operation>,
        replayed: bool,
    },
    Messages(Vec<Message>),
    TimedOut(usize),
    Removed {
        operations: usize,
        /// More expired records remain for another command.
        more: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("operation `{0}` not found")]
    OperationNotFound(Id),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("Idempotency-Key `{0}` was already used with a different request body")]
    IdempotencyMismatch(String),
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

/// Starts the writer thread. It ends once every `Writer` is dropped and the queue is drained.
pub fn start(
    store: Arc<Store>,
    deadlines: DeadlinesConfig,
    metrics: Arc<Metrics>,
    index: Arc<IndexShared>,
) -> Result<(Writer, JoinHandle<()>), StoreError> {
    let feed_seq = store.write()?.last_feed_seq()?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let thread = std::thread::Builder::new()
        .name("opslog-writer".into())
        .spawn(move || {
            WriterThread {
                store,
                deadlines,
                metrics,
                index,
                feed_seq,
                trimmed_to: 0,
                needs_reopen: false,
                last_id: 0,
            }
            .run(rx)
        })
        .expect("spawning the writer thread");
    Ok((Writer { tx }, thread))
}

struct WriterThread {
    store: Arc<Store>,
    deadlines: DeadlinesConfig,
    metrics: Arc<Metrics>,
    index: Arc<IndexShared>,
    /// The sequence of the newest committed feed entry.
    feed_seq: u64,
    /// Feed entries up to this one are already trimmed.
    trimmed_to: u64,
    /// The last group failed on I/O: reopen the database before the next one.
    needs_reopen: bool,
    last_id: u128,
}

/// Operations read or changed by one group, written back once at its end.
#[derive(Default)]
struct Touched {
    ops: HashMap<Id, TouchedOp>,
    /// What the search index must pick up from this group.
    feed: FeedEntry,
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
        let mut results = Vec::with_capacity(group.len());
        let outcome = (|| -> Result<(u64, u64), StoreError> {
            let mut tx = self.store.write()?;
            let mut touched = Touched::default();
            for request in group.iter_mut() {
                let command = request.command.take().expect("stop requests are removed");
                match self.apply(&mut tx, &mut touched, command) {
                    Err(WriteError::Store(e)) => return Err(e),
                    other => results.push(other),
                }
            }
            let mut feed = std::mem::take(&mut touched.feed);
            for (id, op) in touched.ops.into_iter().filter(|(_, op)| op.dirty) {
                tx.put_operation(&op.current, op.stored.as_ref())?;
                if op.reindex {
                    feed.operations.push(id);
                }
            }
            let seq = if feed.is_empty() {
                self.feed_seq
            } else {
                tx.append_feed(self.feed_seq + 1, &feed)?;
                self.feed_seq + 1
            };
            // What the index has committed is no longer needed, but the newest entry stays so the
            // sequence survives a restart.
            let indexed = self
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
            tx.commit()?;
            Ok((seq, trimmed_to))
        })();
        match outcome {
            Ok((seq, trimmed_to)) => {
                self.trimmed_to = trimmed_to;
                self.metrics.commits.fetch_add(1, Ordering::Relaxed);
                if seq != self.feed_seq {
                    self.feed_seq = seq;
                    self.index.wake();
                }
                for (request, result) in group.drain(..).zip(results) {
                    let _ = request.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = group.len(), "write group failed");
                self.metrics.failed_commits.fetch_add(1, Ordering::Relaxed);
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
                let deadline = self.deadlines.for_type(draft.input.kind);
                let (operation, change) =
                    lifecycle::new_operation(id, &environment, draft, now, deadline);
                if let Some((key, body_sha256)) = idempotency {
                    let record = IdempotencyRecord {
                        operation_id: id,
                        body_sha256,
                    };
                    tx.put_idempotency(&environment, &key, &record)?;
                }
                self.metrics
                    .operations_created
                    .fetch_add(1, Ordering::Relaxed);
                if change == Change::Ended {
                    self.operation_ended(tx, &operation)?;
                }
                touched.insert_new(operation.clone());
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
                let mut operation = entry.current.clone();
                let change = lifecycle::apply_patch(&mut operation, patch, now)?;
                if change != Change::Unchanged {
                    entry.current = operation.clone();
                    entry.dirty = true;
                    entry.reindex = true;
                }
                if change == Change::Ended {
                    self.operation_ended(tx, &operation)?;
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
                for (op_id, _) in &messages {
                    touched.get_in(tx, *op_id, &environment)?;
                }
                let stored: Vec<Message> = messages
                    .into_iter()
                    .map(|(op_id, draft)| draft.into_message(self.next_id(), op_id, now))
                    .collect();
                tx.insert_messages(&stored)?;
                touched
                    .feed
                    .messages
                    .extend(stored.iter().map(|m| (m.operation_id, m.id)));
                for m in &stored {
                    let entry = touched.get_in(tx, m.operation_id, &environment)?;
                    entry.current.message_count += 1;
                    entry.dirty = true;
                }
                self.metrics
                    .messages_appended
                    .fetch_add(stored.len() as u64, Ordering::Relaxed);
                Ok(Outcome::Messages(stored))
            }
            Command::TimeOutOverdue { now } => {
                let overdue = tx.overdue_operations(now, SWEEP_LIMIT)?;
                let mut count = 0;
                for id in overdue {
                    let entry = touched.get(tx, id)?;
                    let mut operation = entry.current.clone();
                    if operation.state.is_terminal() || operation.expires_at >= now {
                        continue; // ended or extended earlier in this group
                    }
                    if lifecycle::time_out(&mut operation, now)? == Change::Ended {
                        entry.current = operation.clone();
                        entry.dirty = true;
                        entry.reindex = true;
                        self.operation_ended(tx, &operation)?;
                        count += 1;
                    }
                }
                Ok(Outcome::TimedOut(count))
            }
            Command::RemoveExpired { cutoff } => {
                let (removed, more) = tx.remove_created_before(cutoff, REMOVE_BUDGET)?;
                for id in &removed {
                    touched.ops.remove(id);
                }
                self.metrics
                    .operations_removed
                    .fetch_add(removed.len() as u64, Ordering::Relaxed);
                let operations = removed.len();
                touched.feed.removed_operations.extend(removed);
                Ok(Outcome::Removed { operations, more })
            }
        }
    }

    /// Every end of an operation (by request, at creation, or by the sweeper) passes here, inside
    /// the write transaction that ends it: what must follow an end durably (webhook events,
    /// trace exports) is written here, in the same commit.
    fn operation_ended(&self, _tx: &mut WriteTx, operation: &Operation) -> Result<(), StoreError> {
        self.metrics.record_end(operation.state);
        Ok(())
    }
}

impl Touched {
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
