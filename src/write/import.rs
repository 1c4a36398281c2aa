//! Import's command: operations and messages from an export file, keeping their ids.

use std::collections::{BTreeMap, HashSet};

use super::engine::{Check, Command, Tx, WriteError};
use crate::model::{Id, Message, Operation};
use crate::store::StoreError;

/// Adds operations and messages from an export, keeping their ids; what is already stored is
/// skipped, so importing a file twice adds nothing the second time. Imported records are
/// history: they queue no webhooks or exports.
pub struct Import {
    pub environment: String,
    pub operations: Vec<Operation>,
    pub messages: Vec<Message>,
}

/// What one import command added and skipped (already stored).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Imported {
    pub operations_added: u64,
    pub operations_skipped: u64,
    pub messages_added: u64,
    pub messages_skipped: u64,
}

/// An import with the operations it adds (those not stored yet); every message's operation is
/// stored or among them.
pub struct Importing {
    environment: String,
    new_ops: Vec<Operation>,
    skipped_ops: u64,
    messages: Vec<Message>,
}

impl Command for Import {
    type Reply = Imported;
    type Plan = Importing;

    fn check(self, tx: &mut Check<'_>) -> Result<Importing, WriteError> {
        let Import {
            environment,
            operations,
            messages,
        } = self;
        let mut skipped_ops = 0;
        let mut new_ops = Vec::new();
        for operation in operations {
            match tx.operation(operation.id) {
                Ok(_) => skipped_ops += 1,
                Err(WriteError::OperationNotFound(_)) => new_ops.push(operation),
                Err(e) => return Err(e),
            }
        }
        let new_ids: HashSet<Id> = new_ops.iter().map(|o| o.id).collect();
        for message in &messages {
            if !new_ids.contains(&message.operation_id) {
                tx.operation_in(message.operation_id, &environment)?;
            }
        }
        Ok(Importing {
            environment,
            new_ops,
            skipped_ops,
            messages,
        })
    }

    fn write(plan: Importing, tx: &mut Tx<'_>) -> Result<Imported, StoreError> {
        let Importing {
            environment,
            new_ops,
            skipped_ops,
            messages,
        } = plan;
        let mut counts = Imported {
            operations_skipped: skipped_ops,
            ..Imported::default()
        };
        for mut operation in new_ops {
            operation.environment = environment.clone();
            operation.message_count = 0;
            tx.insert_operation(operation);
            counts.operations_added += 1;
        }
        // What is stored already (or comes twice in the file) is skipped: the ids each
        // operation holds in the span the file covers, read once per operation.
        let mut spans: BTreeMap<Id, (u128, u128)> = BTreeMap::new();
        for m in &messages {
            let span = spans.entry(m.operation_id).or_insert((m.id.0, m.id.0));
            *span = (span.0.min(m.id.0), span.1.max(m.id.0));
        }
        let mut seen: HashSet<(Id, Id)> = HashSet::new();
        for (op, (low, high)) in spans {
            for id in tx.message_ids(op, low, high)? {
                seen.insert((op, id));
            }
        }
        let mut fresh = Vec::new();
        for message in messages {
            if !seen.insert((message.operation_id, message.id)) {
                counts.messages_skipped += 1;
                continue;
            }
            fresh.push(message);
        }
        counts.messages_added = fresh.len() as u64;
        tx.store_messages(fresh.into())?;
        Ok(counts)
    }
}
