//! Commands on operations and their messages: create (with `Idempotency-Key`), update, append
//! messages, and time out what is overdue. The state machine itself is `ingest::lifecycle`.

use std::collections::HashSet;
use std::sync::Arc;

use super::engine::{Command, Tx, WriteError};
use crate::ingest::input::{MessageDraft, OperationDraft, OperationPatch};
use crate::ingest::lifecycle::{self, Change};
use crate::model::{Id, Message, Operation, Timestamp};
use crate::store::IdempotencyRecord;

/// The most operations one sweep times out; the rest wait for the next sweep.
const SWEEP_LIMIT: usize = 1000;

pub struct CreateOperation {
    pub environment: String,
    /// `Idempotency-Key` and the SHA-256 of the request body.
    pub idempotency: Option<(String, [u8; 32])>,
    pub draft: OperationDraft,
}

/// The operation created, or the one an earlier request with the same `Idempotency-Key` made.
pub struct Created {
    pub operation: Operation,
    pub replayed: bool,
}

impl Command for CreateOperation {
    type Reply = Created;

    fn apply(self, tx: &mut Tx<'_>) -> Result<Created, WriteError> {
        let CreateOperation {
            environment,
            idempotency,
            draft,
        } = self;
        if let Some((key, body_sha256)) = &idempotency {
            if let Some(seen) = tx.db.idempotency(&environment, key)? {
                if &seen.body_sha256 != body_sha256 {
                    return Err(WriteError::IdempotencyMismatch(key.clone()));
                }
                let operation = tx.operation(seen.operation_id)?.current.clone();
                return Ok(Created {
                    operation,
                    replayed: true,
                });
            }
        }
        let id = tx.next_id();
        let deadline = tx.deps.deadlines.for_type(draft.input.kind);
        // Created ended or not, `operation_changed` below sees it with no `before`.
        let (operation, _) = lifecycle::new_operation(id, &environment, draft, tx.now, deadline);
        if let Some((key, body_sha256)) = idempotency {
            let record = IdempotencyRecord {
                operation_id: id,
                body_sha256,
            };
            tx.db.put_idempotency(&environment, &key, &record)?;
        }
        tx.deps.metrics.operations_created.inc();
        tx.insert_operation(operation.clone());
        tx.operation_changed(None, &operation)?;
        Ok(Created {
            operation,
            replayed: false,
        })
    }
}

pub struct UpdateOperation {
    pub environment: String,
    pub id: Id,
    pub patch: OperationPatch,
}

impl Command for UpdateOperation {
    /// The operation as it is now.
    type Reply = Operation;

    fn apply(self, tx: &mut Tx<'_>) -> Result<Operation, WriteError> {
        let now = tx.now;
        let entry = tx.operation_in(self.id, &self.environment)?;
        let before = entry.current.clone();
        let mut operation = before.clone();
        let change = lifecycle::apply_patch(&mut operation, self.patch, now)?;
        if change != Change::Unchanged {
            entry.set(operation.clone());
            tx.operation_changed(Some(&before), &operation)?;
        }
        Ok(operation)
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

    fn apply(self, tx: &mut Tx<'_>) -> Result<Arc<[Message]>, WriteError> {
        let AppendMessages {
            environment,
            messages,
        } = self;
        // Check every operation first: a refused batch writes nothing.
        let mut ended = HashSet::new();
        for (op_id, _) in &messages {
            if tx
                .operation_in(*op_id, &environment)?
                .current
                .state
                .is_terminal()
            {
                ended.insert(*op_id);
            }
        }
        let now = tx.now;
        let stored: Arc<[Message]> = messages
            .into_iter()
            .map(|(op_id, draft)| draft.into_message(tx.next_id(), op_id, now))
            .collect();
        tx.db
            .insert_fresh_messages(&stored, |op| ended.contains(&op))?;
        tx.feed_messages(stored.clone());
        for m in stored.iter() {
            tx.operation_in(m.operation_id, &environment)?
                .count_messages(1);
        }
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

    fn apply(self, tx: &mut Tx<'_>) -> Result<usize, WriteError> {
        let now = self.now;
        let overdue = tx.db.overdue_operations(now, SWEEP_LIMIT)?;
        let mut count = 0;
        for id in overdue {
            let entry = tx.operation(id)?;
            let before = entry.current.clone();
            let mut operation = before.clone();
            if operation.state.is_terminal() || operation.expires_at >= now {
                continue; // ended or extended earlier in this group
            }
            if lifecycle::time_out(&mut operation, now)? == Change::Ended {
                entry.set(operation.clone());
                tx.operation_changed(Some(&before), &operation)?;
                count += 1;
            }
        }
        Ok(count)
    }
}
