//! Import's command: operations and messages from an export file, keeping their ids.

use std::collections::HashSet;

use super::engine::{Command, Tx, WriteError};
use crate::model::{Id, Message, Operation};

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

impl Command for Import {
    type Reply = Imported;

    fn apply(self, tx: &mut Tx<'_>) -> Result<Imported, WriteError> {
        let Import {
            environment,
            operations,
            messages,
        } = self;
        let mut counts = Imported::default();
        let mut new_ops = Vec::new();
        for operation in operations {
            match tx.operation(operation.id) {
                Ok(_) => counts.operations_skipped += 1,
                Err(WriteError::OperationNotFound(_)) => new_ops.push(operation),
                Err(e) => return Err(e),
            }
        }
        // Check every message's operation before writing: a refused import writes nothing.
        let new_ids: HashSet<Id> = new_ops.iter().map(|o| o.id).collect();
        for message in &messages {
            if !new_ids.contains(&message.operation_id) {
                tx.operation_in(message.operation_id, &environment)?;
            }
        }
        for mut operation in new_ops {
            operation.environment = environment.clone();
            operation.message_count = 0;
            tx.insert_operation(operation);
            counts.operations_added += 1;
        }
        let mut fresh = Vec::new();
        for message in messages {
            if !tx.db.insert_message(&message)? {
                counts.messages_skipped += 1;
                continue;
            }
            tx.operation(message.operation_id)?.count_messages(1);
            fresh.push(message);
        }
        counts.messages_added = fresh.len() as u64;
        tx.feed_messages(fresh.into());
        Ok(counts)
    }
}
