//! Commands on operations and their messages: create (with `Idempotency-Key`), update, append
//! messages, and time out what is overdue. The state machine itself is `ingest::lifecycle`.

use std::sync::Arc;

use super::engine::{Check, Command, Tx, WriteError};
use crate::ingest::input::{MessageDraft, OperationDraft, OperationPatch};
use crate::ingest::lifecycle::{self, Change};
use crate::model::{Id, Message, Operation, Timestamp};
use crate::store::{IdempotencyRecord, StoreError};

/// The most operations one sweep times out; the rest wait for the next sweep.
const SWEEP_LIMIT: usize = 1000;

pub struct CreateOperation {
    pub environment: String,
    /// `Idempotency-Key` and the SHA-256 of the request body.
    pub idempotency: Option<(String, [u8; 32])>,
    pub draft: OperationDraft,
}

/// The operation created, or the one an earlier request with the same `Idempotency-Key` made.
#[derive(Debug)]
pub struct Created {
    pub operation: Operation,
    pub replayed: bool,
}

/// What `CreateOperation` decided.
pub enum CreatePlan {
    /// An earlier request with the same `Idempotency-Key` and body made it.
    Replay(Operation),
    New(CreateOperation),
}

impl Command for CreateOperation {
    type Reply = Created;
    type Plan = CreatePlan;

    fn check(self, tx: &mut Check<'_>) -> Result<CreatePlan, WriteError> {
        if let Some((key, body_sha256)) = &self.idempotency {
            if let Some(seen) = tx.db.idempotency(&self.environment, key)? {
                if &seen.body_sha256 != body_sha256 {
                    return Err(WriteError::IdempotencyMismatch(key.clone()));
                }
                return Ok(CreatePlan::Replay(tx.operation(seen.operation_id)?.clone()));
            }
        }
        Ok(CreatePlan::New(self))
    }

    fn write(plan: CreatePlan, tx: &mut Tx<'_>) -> Result<Created, StoreError> {
        let CreateOperation {
            environment,
            idempotency,
            draft,
        } = match plan {
            CreatePlan::Replay(operation) => {
                return Ok(Created {
                    operation,
                    replayed: true,
                })
            }
            CreatePlan::New(create) => create,
        };
        let operation = create(tx, &environment, idempotency, draft)?;
        Ok(Created {
            operation,
            replayed: false,
        })
    }
}

/// Stores a new operation and its first messages, and queues what its creation causes; returns
/// it as stored (with its message count).
fn create(
    tx: &mut Tx<'_>,
    environment: &str,
    idempotency: Option<(String, [u8; 32])>,
    mut draft: OperationDraft,
) -> Result<Operation, StoreError> {
    let id = tx.next_id();
    let deadline = tx.deps.deadlines.for_type(draft.input.kind);
    let first_messages = std::mem::take(&mut draft.messages);
    // Created ended or not, `operation_changed` below sees it with no `before`.
    let (operation, _) = lifecycle::new_operation(id, environment, draft, tx.now, deadline);
    if let Some((key, body_sha256)) = idempotency {
        let record = IdempotencyRecord {
            operation_id: id,
            body_sha256,
        };
        tx.db.put_idempotency(environment, &key, &record)?;
    }
    tx.deps.metrics.operations_created.inc();
    tx.insert_operation(operation);
    if !first_messages.is_empty() {
        let now = tx.now;
        let messages: Arc<[Message]> = first_messages
            .into_iter()
            .map(|draft| draft.into_message(tx.next_id(), id, now))
            .collect();
        tx.store_messages(messages.clone())?;
        tx.export_messages(environment, &messages);
        tx.deps
            .metrics
            .messages_appended
            .inc_by(messages.len() as u64);
    }
    // Its messages are stored first, so a span of an operation created ended carries them.
    let operation = tx.checked_operation(id)?.current.clone();
    tx.operation_changed(None, &operation)?;
    Ok(operation)
}

/// Several operations, each with its first messages, in one request (`POST /operations` with
/// an array): all stored or none.
pub struct CreateOperations {
    pub environment: String,
    pub drafts: Vec<OperationDraft>,
}

impl Command for CreateOperations {
    /// The operations as stored, in the order of the request.
    type Reply = Vec<Operation>;
    /// Never refused: validated before, and nothing stored is asked about.
    type Plan = Self;

    fn check(self, _: &mut Check<'_>) -> Result<Self, WriteError> {
        Ok(self)
    }

    fn write(plan: Self, tx: &mut Tx<'_>) -> Result<Vec<Operation>, StoreError> {
        let CreateOperations {
            environment,
            drafts,
        } = plan;
        drafts
            .into_iter()
            .map(|draft| create(tx, &environment, None, draft))
            .collect()
    }
}

pub struct UpdateOperation {
    pub environment: String,
    pub id: Id,
    pub patch: OperationPatch,
}

/// An operation before and after a change `check` accepted.
pub struct Changed {
    before: Operation,
    after: Operation,
    change: Change,
}

impl Command for UpdateOperation {
    /// The operation as it is now.
    type Reply = Operation;
    type Plan = Changed;

    fn check(self, tx: &mut Check<'_>) -> Result<Changed, WriteError> {
        let now = tx.now;
        let before = tx.operation_in(self.id, &self.environment)?.clone();
        let mut after = before.clone();
        let change = lifecycle::apply_patch(&mut after, self.patch, now)?;
        Ok(Changed {
            before,
            after,
            change,
        })
    }

    fn write(plan: Changed, tx: &mut Tx<'_>) -> Result<Operation, StoreError> {
        let Changed {
            before,
            after,
            change,
        } = plan;
        if change != Change::Unchanged {
            tx.checked_operation(after.id)?.set(after.clone());
            tx.operation_changed(Some(&before), &after)?;
        }
        Ok(after)
    }
}

pub struct AppendMessages {
    pub environment: String,
    pub messages: Vec<(Id, MessageDraft)>,
}

impl Command for AppendMessages {
    /// The messages stored, shared with the search index, which takes them from the commit
    /// instead of the store.
    type Reply = Arc<[Message]>;
    /// Every operation named is found.
    type Plan = Self;

    fn check(self, tx: &mut Check<'_>) -> Result<Self, WriteError> {
        for (op_id, _) in &self.messages {
            tx.operation_in(*op_id, &self.environment)?;
        }
        Ok(self)
    }

    fn write(plan: Self, tx: &mut Tx<'_>) -> Result<Arc<[Message]>, StoreError> {
        let AppendMessages {
            environment,
            messages,
        } = plan;
        let now = tx.now;
        let stored: Arc<[Message]> = messages
            .into_iter()
            .map(|(op_id, draft)| draft.into_message(tx.next_id(), op_id, now))
            .collect();
        tx.store_messages(stored.clone())?;
        tx.export_messages(&environment, &stored);
        tx.deps
            .metrics
            .messages_appended
            .inc_by(stored.len() as u64);
        Ok(stored)
    }
}

/// Ends operations past their deadline as `timeout` (at most `SWEEP_LIMIT` per command).
pub struct TimeOutOverdue {
    pub now: Timestamp,
}

impl Command for TimeOutOverdue {
    /// How many operations timed out.
    type Reply = usize;
    /// Never refused: what is overdue is read when writing.
    type Plan = Self;

    fn check(self, _: &mut Check<'_>) -> Result<Self, WriteError> {
        Ok(self)
    }

    fn write(plan: Self, tx: &mut Tx<'_>) -> Result<usize, StoreError> {
        let now = plan.now;
        let overdue = tx.db.overdue_operations(now, SWEEP_LIMIT)?;
        let mut count = 0;
        for id in overdue {
            let Some(entry) = tx.find_operation(id)? else {
                continue; // removed earlier in this group
            };
            if entry.current.state.is_terminal() || entry.current.expires_at >= now {
                continue; // ended or extended earlier in this group
            }
            let before = entry.current.clone();
            let mut operation = before.clone();
            if lifecycle::time_out(&mut operation, now) == Change::Ended {
                entry.set(operation.clone());
                tx.operation_changed(Some(&before), &operation)?;
                count += 1;
            }
        }
        Ok(count)
    }
}
