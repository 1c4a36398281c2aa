//! Import's command: operations and messages from an export file, keeping their ids.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::engine::{Check, Command, Tx, WriteError};
use crate::ingest::otlp::{LogMessage, LogTarget, Refused, SpanOperation};
use crate::model::{Id, Message, Operation};
use crate::store::{IdempotencyRecord, StoreError};

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

/// OTLP ingest's command (`ingest::otlp`): operations made from spans and messages made from
/// their events and from log records, keeping their ids like an import. A span already stored
/// (found by its trace and span ids, or by its id) is skipped, and so is a message already
/// stored, so a retried export adds nothing. A log record whose operation is not stored (nor
/// among these spans), or a span whose id another environment holds, is refused alone: the rest
/// is stored. Like imported records, they are history and queue no webhooks or exports.
pub struct IngestOtlp {
    pub environment: String,
    pub spans: Vec<SpanOperation>,
    pub logs: Vec<LogMessage>,
}

/// What an OTLP ingest stored, skipped (already stored) and refused.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Ingested {
    pub operations_added: u64,
    pub operations_skipped: u64,
    pub messages_added: u64,
    pub messages_skipped: u64,
    pub spans_refused: Refused,
    pub logs_refused: Refused,
}

/// An ingest with the operations it adds (each with its span key) and every message's operation
/// found.
pub struct IngestingOtlp {
    environment: String,
    new_ops: Vec<(String, Operation)>,
    skipped_ops: u64,
    messages: Vec<Message>,
    spans_refused: Refused,
    logs_refused: Refused,
}

impl Command for IngestOtlp {
    type Reply = Ingested;
    type Plan = IngestingOtlp;

    fn check(self, tx: &mut Check<'_>) -> Result<IngestingOtlp, WriteError> {
        let IngestOtlp {
            environment,
            spans,
            logs,
        } = self;
        let mut spans_refused = Refused::default();
        let mut logs_refused = Refused::default();
        let mut skipped_ops = 0;
        let mut new_ops = Vec::new();
        let mut messages = Vec::new();
        // The operation of each span key seen: stored already, or new here.
        let mut by_key: HashMap<String, Id> = HashMap::new();
        for SpanOperation {
            key,
            operation,
            messages: events,
        } in spans
        {
            let id = match spanned(tx, &environment, &by_key, &key)? {
                // Its messages join it there (the ones not stored yet).
                Some(id) => {
                    skipped_ops += 1;
                    id
                }
                None => match tx.operation(operation.id) {
                    Ok(stored) if stored.environment == environment => {
                        skipped_ops += 1;
                        operation.id
                    }
                    Ok(_) => {
                        spans_refused.add(format!(
                            "operation `{}` belongs to another environment",
                            operation.id
                        ));
                        continue;
                    }
                    Err(WriteError::OperationNotFound(_)) => {
                        let id = operation.id;
                        new_ops.push((key.clone(), operation));
                        id
                    }
                    Err(e) => return Err(e),
                },
            };
            by_key.insert(key, id);
            messages.extend(events.into_iter().map(|m| Message {
                operation_id: id,
                ..m
            }));
        }
        let new_ids: HashSet<Id> = new_ops.iter().map(|(_, op)| op.id).collect();
        for LogMessage { target, message } in logs {
            let id = match target {
                LogTarget::Operation(id) => Some(id),
                LogTarget::Span(key) => spanned(tx, &environment, &by_key, &key)?,
            };
            let found = match id {
                Some(id) if new_ids.contains(&id) => Some(id),
                Some(id) => match tx.operation_in(id, &environment) {
                    Ok(_) => Some(id),
                    Err(WriteError::OperationNotFound(_)) => None,
                    Err(e) => return Err(e),
                },
                None => None,
            };
            match found {
                Some(id) => messages.push(Message {
                    operation_id: id,
                    ..message
                }),
                None => logs_refused.add(
                    "its operation is not in opslog: send its span before it or with it (or name the operation with `opslog.operation.id`)"
                        .into(),
                ),
            }
        }
        Ok(IngestingOtlp {
            environment,
            new_ops,
            skipped_ops,
            messages,
            spans_refused,
            logs_refused,
        })
    }

    fn write(plan: IngestingOtlp, tx: &mut Tx<'_>) -> Result<Ingested, StoreError> {
        let IngestingOtlp {
            environment,
            new_ops,
            skipped_ops,
            messages,
            spans_refused,
            logs_refused,
        } = plan;
        let mut ops = Vec::with_capacity(new_ops.len());
        for (key, operation) in new_ops {
            let record = IdempotencyRecord {
                operation_id: operation.id,
                body_sha256: [0; 32],
            };
            tx.db.put_idempotency(&environment, &key, &record)?;
            ops.push(operation);
        }
        let counts = Import::write(
            Importing {
                environment,
                new_ops: ops,
                skipped_ops,
                messages,
            },
            tx,
        )?;
        Ok(Ingested {
            operations_added: counts.operations_added,
            operations_skipped: counts.operations_skipped,
            messages_added: counts.messages_added,
            messages_skipped: counts.messages_skipped,
            spans_refused,
            logs_refused,
        })
    }
}

/// The operation a span key names, if it is stored in `environment` (read into the group, so its
/// messages can join it) or new in this command.
fn spanned(
    tx: &mut Check<'_>,
    environment: &str,
    by_key: &HashMap<String, Id>,
    key: &str,
) -> Result<Option<Id>, WriteError> {
    if let Some(id) = by_key.get(key) {
        return Ok(Some(*id));
    }
    let Some(seen) = tx.db.idempotency(environment, key)? else {
        return Ok(None);
    };
    match tx.operation_in(seen.operation_id, environment) {
        Ok(_) => Ok(Some(seen.operation_id)),
        Err(WriteError::OperationNotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
