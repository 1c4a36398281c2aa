//! Removing operations: the one way an operation leaves the store, with everything that hangs on
//! it (its messages, its sweeper row, its idempotency key).
//!
//! Retention (by age, `remove_created_before`), the disk cap (the oldest first, `remove_oldest`)
//! and erasure and per-environment retention (chosen ids, each checked against a rule,
//! `remove_operations_where`) all go through `OperationRows::remove` for the operations' rows and
//! `WriteTx::remove_messages_of` for their messages, so a change to how operations or messages are
//! stored changes removal here alone.
//!
//! Must not: decide what to remove (callers pass the rule); touch the outbox beyond what the
//! removed operations carry.

use std::collections::{BTreeSet, HashSet};

use redb::{ReadableTable, Table};

use super::tables::*;
use super::{block, codec, messages};
use super::{first_id_at, StoreError, WriteTx};
use crate::model::{Id, Operation, Timestamp};

/// What a removal took away.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemovedOperations {
    pub ids: Vec<Id>,
    pub messages: u64,
    /// The bytes of the rows removed or freed (keys and values, and what the message blocks the
    /// removed messages shared with others shrank by): what the disk cap counts.
    pub bytes: u64,
    /// More candidates remain for another call (the budget ran out).
    pub more: bool,
}

impl RemovedOperations {
    fn add(&mut self, id: u128, gone: Gone) {
        self.ids.push(Id(id));
        self.messages += gone.messages;
        self.bytes += gone.bytes;
    }
}

/// What removing one operation's rows took away (its messages as counted on the operation; the
/// blocks are rewritten once per call).
#[derive(Clone, Copy, Debug, Default)]
struct Gone {
    messages: u64,
    bytes: u64,
}

impl Gone {
    /// Records (the operation and its messages): what a budget counts.
    fn records(self) -> usize {
        1 + self.messages as usize
    }
}

/// The tables an operation's removal touches, opened once per call.
struct OperationRows<'t> {
    operations: Table<'t, u128, &'static [u8]>,
    open: Table<'t, (i64, u128), ()>,
    idempotency: Table<'t, &'static str, &'static [u8]>,
    idempotency_by_operation: Table<'t, u128, &'static str>,
}

impl<'t> OperationRows<'t> {
    fn open(tx: &'t WriteTx) -> Result<OperationRows<'t>, StoreError> {
        Ok(OperationRows {
            operations: tx.txn.open_table(OPERATIONS)?,
            open: tx.txn.open_table(OPEN_OPERATIONS)?,
            idempotency: tx.txn.open_table(IDEMPOTENCY)?,
            idempotency_by_operation: tx.txn.open_table(IDEMPOTENCY_BY_OPERATION)?,
        })
    }

    /// The stored operation `id`, decoded, and the size of its row.
    fn get(&self, id: u128) -> Result<Option<(Operation, u64)>, StoreError> {
        let Some(row) = self.operations.get(id)? else {
            return Ok(None);
        };
        let bytes = row.value();
        Ok(Some((
            codec::decode_operation(bytes)?,
            16 + bytes.len() as u64,
        )))
    }

    /// The oldest stored operation.
    fn first(&self) -> Result<Option<u128>, StoreError> {
        Ok(self.operations.first()?.map(|(k, _)| k.value()))
    }

    /// Removes `op`'s rows (its row is `row_bytes` long), but not its messages: those of every
    /// operation a call removes go at once, in `WriteTx::remove_messages`.
    fn remove(&mut self, op: &Operation, row_bytes: u64) -> Result<Gone, StoreError> {
        let id = op.id.0;
        let mut gone = Gone {
            messages: op.message_count,
            bytes: row_bytes,
        };
        if !op.state.is_terminal() {
            self.open.remove((op.expires_at.millis(), id))?;
        }
        if let Some(key) = self.idempotency_by_operation.remove(id)? {
            let key = key.value().to_owned();
            if let Some(record) = self.idempotency.remove(key.as_str())? {
                gone.bytes += (key.len() + record.value().len()) as u64;
            }
        }
        self.operations.remove(id)?;
        Ok(gone)
    }
}

/// Blocks read to learn what a message takes, for `remove_oldest`'s estimate.
const MEAN_FROM_BLOCKS: usize = 16;
/// What a message is assumed to take when there is no block to learn from.
const MESSAGE_BYTES_GUESS: u64 = 100;

impl WriteTx {
    /// Removes operations created before `cutoff` (their ids sort before it), oldest first;
    /// stops after about `budget` records (operations and messages).
    pub fn remove_created_before(
        &mut self,
        cutoff: Timestamp,
        budget: usize,
    ) -> Result<RemovedOperations, StoreError> {
        let first_kept = first_id_at(cutoff);
        self.remove_oldest_while(budget, |id, _| id < first_kept)
    }

    /// Removes the oldest operations of every environment until about `bytes` of rows are
    /// removed; stops after about `budget` records. For the disk cap.
    pub fn remove_oldest(
        &mut self,
        bytes: u64,
        budget: usize,
    ) -> Result<RemovedOperations, StoreError> {
        // Which blocks an operation's messages share with others is only known once they are
        // rewritten, so what goes is chosen by an estimate (the oldest blocks' bytes per message:
        // the oldest operations' messages are in them); what `bytes` reports is exact.
        let per_message = self.oldest_message_bytes()?;
        let mut estimate = 0;
        self.remove_oldest_while(budget, |_, gone: Option<(u64, u64)>| {
            if let Some((row_bytes, messages)) = gone {
                estimate += row_bytes + messages * per_message;
            }
            estimate < bytes
        })
    }

    /// Removes, of the operations `ids`, those stored and for which `remove` holds (a stale
    /// candidate is left alone); stops after about `budget` records, leaving the rest of `ids`.
    pub fn remove_operations_where(
        &mut self,
        ids: &[Id],
        budget: usize,
        remove: impl Fn(&Operation) -> bool,
    ) -> Result<RemovedOperations, StoreError> {
        let mut removed = RemovedOperations::default();
        {
            let mut rows = OperationRows::open(self)?;
            let mut spent = 0;
            for id in ids {
                if spent >= budget {
                    removed.more = true;
                    break;
                }
                let Some((op, row_bytes)) = rows.get(id.0)? else {
                    continue;
                };
                if !remove(&op) {
                    continue;
                }
                let gone = rows.remove(&op, row_bytes)?;
                spent += gone.records();
                removed.add(id.0, gone);
            }
        }
        self.remove_messages(&mut removed)?;
        Ok(removed)
    }

    /// Removes operations oldest first while `take(id, what the previous one took)` holds
    /// (`None` before the first), within about `budget` records.
    fn remove_oldest_while(
        &mut self,
        budget: usize,
        mut take: impl FnMut(u128, Option<(u64, u64)>) -> bool,
    ) -> Result<RemovedOperations, StoreError> {
        let mut removed = RemovedOperations::default();
        {
            let mut rows = OperationRows::open(self)?;
            let mut spent = 0;
            let mut previous = None;
            while let Some(id) = rows.first()? {
                if !take(id, previous) {
                    break;
                }
                if spent >= budget {
                    removed.more = true;
                    break;
                }
                let (op, row_bytes) = rows.get(id)?.expect("the first key has a row");
                let gone = rows.remove(&op, row_bytes)?;
                previous = Some((gone.bytes, gone.messages));
                spent += gone.records();
                removed.add(id, gone);
            }
        }
        self.remove_messages(&mut removed)?;
        Ok(removed)
    }

    /// Removes the messages of the operations `removed` took away, through the store's one
    /// message removal (`remove_messages_of`); counts what actually left, and the bytes the
    /// blocks they were in shrank by.
    fn remove_messages(&mut self, removed: &mut RemovedOperations) -> Result<(), StoreError> {
        let ids: HashSet<u128> = removed.ids.iter().map(|id| id.0).collect();
        if ids.is_empty() {
            return Ok(());
        }
        let (blocks, before) = {
            let runs = self.txn.open_table(OPERATION_BLOCKS)?;
            let mut keys = BTreeSet::new();
            let mut run_bytes = 0;
            for &op in &ids {
                for run in messages::runs(&runs, op, (0, u128::MAX))? {
                    keys.insert(run.block);
                    run_bytes += 32 + 8;
                }
            }
            let before = run_bytes + self.block_bytes(&keys)?;
            (keys, before)
        };
        removed.messages = self.remove_messages_of(&ids)?;
        removed.bytes += before.saturating_sub(self.block_bytes(&blocks)?);
        Ok(())
    }

    /// The bytes (key and value) of the message blocks `keys` that are stored.
    fn block_bytes(&self, keys: &BTreeSet<u64>) -> Result<u64, StoreError> {
        let blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let mut total = 0;
        for &key in keys {
            if let Some(value) = blocks.get(key)? {
                total += 8 + value.value().len() as u64;
            }
        }
        Ok(total)
    }

    /// The bytes per message of the oldest blocks, from their headers.
    fn oldest_message_bytes(&self) -> Result<u64, StoreError> {
        let blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let (mut bytes, mut count) = (0, 0);
        for row in blocks.iter()?.take(MEAN_FROM_BLOCKS) {
            let (_, value) = row?;
            bytes += 8 + value.value().len() as u64;
            count += u64::from(block::header(value.value())?.count);
        }
        Ok(match count {
            0 => MESSAGE_BYTES_GUESS,
            n => bytes.div_ceil(n),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::store::{codec, Store};

    fn op(id: u128, environment: &str) -> Operation {
        let mut op = codec::tests::sample_operation();
        op.id = Id(id);
        op.environment = environment.into();
        op
    }

    fn message(op: u128, id: u128) -> Message {
        Message {
            id: Id(id),
            operation_id: Id(op),
            kind: MessageType::Log,
            level: Level::Info,
            source: Source::User,
            message: format!("message {id} of {op}"),
            request: None,
            response: None,
            duration_ms: None,
            retry: None,
            error: None,
            meta: None,
            created_at: Timestamp(id as i64),
        }
    }

    /// Operations at 1..=n ms, each with two messages, alternating between prod and dev.
    fn seeded(n: u128) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tx = store.write().unwrap();
        let mut messages = Vec::new();
        for i in 1..=n {
            let id = first_id_at(Timestamp(i as i64)) | 1;
            let env = if i % 2 == 0 { "dev" } else { "prod" };
            let mut op = op(id, env);
            op.message_count = 2;
            tx.put_operation(&op, None).unwrap();
            tx.put_idempotency(
                env,
                &format!("key-{i}"),
                &codec::IdempotencyRecord {
                    operation_id: Id(id),
                    body_sha256: [0; 32],
                },
            )
            .unwrap();
            messages.extend([message(id, id + 1), message(id, id + 2)]);
        }
        // In commit order, so each block holds messages of several operations.
        let rows: Vec<(u64, &Message)> = (1..).zip(&messages).collect();
        tx.append_messages(&rows).unwrap();
        tx.commit().unwrap();
        (dir, store)
    }

    fn stored(store: &Store) -> Vec<u128> {
        let mut ids = Vec::new();
        store
            .read()
            .unwrap()
            .for_each_operation(|op| {
                ids.push(op.id.0 >> 80);
                Ok(())
            })
            .unwrap();
        ids
    }

    #[test]
    fn every_removal_takes_the_messages_and_the_idempotency_key_along() {
        let (_dir, store) = seeded(6);
        let mut tx = store.write().unwrap();
        let by_age = tx.remove_created_before(Timestamp(3), 100).unwrap();
        assert_eq!(
            (by_age.ids.len(), by_age.messages, by_age.more),
            (2, 4, false)
        );
        assert!(by_age.bytes > 0);
        let third = Id(first_id_at(Timestamp(3)) | 1);
        let sixth = Id(first_id_at(Timestamp(6)) | 1);
        let chosen = tx
            .remove_operations_where(&[third, sixth, Id(7)], 100, |op| op.environment == "dev")
            .unwrap();
        assert_eq!(
            chosen.ids,
            vec![sixth],
            "prod's third and an unknown id stay"
        );
        assert!(tx.idempotency("dev", "key-6").unwrap().is_none());
        assert!(tx.idempotency("prod", "key-3").unwrap().is_some());
        tx.commit().unwrap();
        assert_eq!(stored(&store), vec![3, 4, 5]);
        let read = store.read().unwrap();
        let kept = stored(&store);
        let mut left = 0;
        read.for_each_message_after(0, |_, m| {
            assert!(kept.contains(&(m.operation_id.0 >> 80)), "{m:?}");
            left += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(left, 6);
    }

    #[test]
    fn the_oldest_go_first_until_the_bytes_are_reached_within_the_budget() {
        let (_dir, store) = seeded(5);
        let mut tx = store.write().unwrap();
        let one = tx.remove_oldest(1, 100).unwrap();
        assert_eq!(one.ids.len(), 1, "one byte is one operation");
        let all_bytes = tx.remove_oldest(u64::MAX, 4).unwrap();
        // Each operation is 3 records: a budget of 4 stops after two.
        assert_eq!((all_bytes.ids.len(), all_bytes.more), (2, true));
        tx.commit().unwrap();
        assert_eq!(stored(&store), vec![4, 5]);
    }
}
