//! One operation's messages in `MESSAGES`: rows of one message each while the operation runs,
//! packed into compressed blocks once it has ended.
//!
//! A row's key is `(operation, id)`: for a block, the id of its first message. Rows of one
//! operation never overlap: a message whose id falls inside a block's span joins that block, so
//! reading rows in key order and each row's messages in order reads the operation in id order.

use redb::{ReadableTable, Table};

use super::codec::{self, BlockHeader};
use super::StoreError;
use crate::model::Message;

/// A block is closed once its records reach this many bytes (uncompressed): large enough to
/// compress well (~3.4x on message text), small enough that reading one message of it stays cheap.
const BLOCK_BYTES: usize = 16 * 1024;

type Key = (u128, u128);

/// The row of `operation` with the greatest key at or before `id`: the one that holds `id` if any
/// does. Returns its key's id and its block header (`None` for a row of one message).
pub(super) fn covering(
    table: &impl ReadableTable<Key, &'static [u8]>,
    operation: u128,
    id: u128,
) -> Result<Option<(u128, Option<BlockHeader>)>, StoreError> {
    let Some(row) = table.range((operation, 0)..=(operation, id))?.next_back() else {
        return Ok(None);
    };
    let (key, value) = row?;
    Ok(Some((key.value().1, codec::block_header(value.value())?)))
}

/// Calls `f` with each message of `operation` whose id is in `[low, high]`, in id order (newest
/// first when `newest_first`), until `f` returns false.
pub(super) fn scan(
    table: &impl ReadableTable<Key, &'static [u8]>,
    operation: u128,
    (low, high): (u128, u128),
    newest_first: bool,
    mut f: impl FnMut(Message) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    if low > high {
        return Ok(());
    }
    // A block starting before `low` may hold messages from `low` on.
    let start = match covering(table, operation, low)? {
        Some((key, Some(block))) if block.last >= low => key,
        _ => low,
    };
    let rows = table.range((operation, start)..=(operation, high))?;
    let rows: Box<dyn Iterator<Item = _>> = if newest_first {
        Box::new(rows.rev())
    } else {
        Box::new(rows)
    };
    for row in rows {
        let (key, value) = row?;
        let mut messages = codec::decode_message_row_of(operation, key.value().1, value.value())?;
        if newest_first {
            messages.reverse();
        }
        for message in messages {
            if (low..=high).contains(&message.id.0) && !f(message)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Stores `message` unless one with its id is stored already; returns whether it was stored.
/// A message inside a block's span joins the block (only imports and a clock set back produce
/// one: fresh ids sort after every stored one).
pub(super) fn insert(
    table: &mut Table<Key, &'static [u8]>,
    message: &Message,
) -> Result<bool, StoreError> {
    let (operation, id) = (message.operation_id.0, message.id.0);
    match covering(table, operation, id)? {
        Some((key, None)) if key == id => Ok(false),
        Some((key, Some(block))) if id <= block.last => {
            let bytes = table
                .get((operation, key))?
                .map(|v| v.value().to_vec())
                .ok_or_else(|| StoreError::Corrupt("message block vanished".into()))?;
            let mut records = codec::decode_block_records(&bytes)?;
            let Err(at) = records.binary_search_by_key(&id, |r| r.0) else {
                return Ok(false);
            };
            records.insert(at, (id, codec::encode_message(message)));
            table.insert((operation, key), codec::encode_block(&records).as_slice())?;
            Ok(true)
        }
        _ => {
            insert_row(table, message)?;
            Ok(true)
        }
    }
}

/// Stores `message` as a row of its own.
pub(super) fn insert_row(
    table: &mut Table<Key, &'static [u8]>,
    message: &Message,
) -> Result<(), StoreError> {
    let key = (message.operation_id.0, message.id.0);
    table.insert(key, codec::encode_message(message).as_slice())?;
    Ok(())
}

/// Packs the rows of one message each at the end of `operation` (all of them, once it has
/// ended; a late message or two afterwards) into blocks. Fewer than two such rows stay as they are.
pub(super) fn pack(
    table: &mut Table<Key, &'static [u8]>,
    operation: u128,
) -> Result<(), StoreError> {
    append_packed(table, operation, &[])
}

/// Stores `fresh` messages of `operation` (in id order) packed into blocks together with the rows
/// of one message each at its end: an ended operation's messages reach disk compressed in the
/// commit that accepts them instead of as rows that packing rewrites. Fewer than two messages in
/// all stay rows. Fresh ids sort after every stored one; should one not (an import from a clock
/// ahead), the messages go in one by one, joining blocks as `insert` does, and are packed after.
pub(super) fn append_packed(
    table: &mut Table<Key, &'static [u8]>,
    operation: u128,
    fresh: &[&Message],
) -> Result<(), StoreError> {
    let first_fresh = fresh.first().map_or(u128::MAX, |m| m.id.0);
    let mut records = Vec::new();
    let mut after_every_stored = true;
    for row in table.range((operation, 0)..=(operation, u128::MAX))?.rev() {
        let (key, value) = row?;
        let (id, block) = (key.value().1, codec::block_header(value.value())?);
        if block.map_or(id, |b| b.last) >= first_fresh {
            after_every_stored = false;
            break;
        }
        if block.is_some() {
            break;
        }
        records.push((id, value.value().to_vec()));
    }
    if !after_every_stored {
        for message in fresh {
            insert(table, message)?;
        }
        return pack(table, operation);
    }
    records.reverse();
    let stored = records.len();
    records.extend(fresh.iter().map(|m| (m.id.0, codec::encode_message(m))));
    if records.len() < 2 {
        for (id, record) in &records[stored..] {
            table.insert((operation, *id), record.as_slice())?;
        }
        return Ok(());
    }
    if stored > 0 {
        let (first, last) = (records[0].0, records[stored - 1].0);
        table.retain_in((operation, first)..=(operation, last), |_, _| false)?;
    }
    let mut block = Vec::new();
    let mut bytes = 0;
    for record in records {
        bytes += record.1.len();
        block.push(record);
        if bytes >= BLOCK_BYTES {
            table.insert(
                (operation, block[0].0),
                codec::encode_block(&block).as_slice(),
            )?;
            block.clear();
            bytes = 0;
        }
    }
    if let Some(&(key, _)) = block.first() {
        table.insert((operation, key), codec::encode_block(&block).as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::*;
    use crate::store::{MessageRange, Store};

    const OP: Id = Id(7 << 100);

    fn message(id: u128, text_len: usize) -> Message {
        Message {
            id: Id(OP.0 + id),
            operation_id: OP,
            kind: MessageType::Log,
            level: Level::Info,
            source: Source::User,
            message: format!("message {id} {}", "x".repeat(text_len)),
            request: None,
            response: None,
            duration_ms: Some(id as u64),
            retry: None,
            error: None,
            meta: None,
            created_at: Timestamp(id as i64),
        }
    }

    /// Everything the store answers about `OP`'s messages: all of them, pages both ways from
    /// many places, each one by id, and the ends an export span takes.
    fn answers(store: &Store) -> Vec<Vec<Message>> {
        let read = store.read().unwrap();
        let mut all = Vec::new();
        read.for_each_message_of(OP, |m| {
            all.push(m);
            Ok(())
        })
        .unwrap();
        let mut out = vec![all.clone()];
        let page = |after: Option<Id>, before: Option<Id>, limit| {
            let range = MessageRange {
                after,
                before,
                limit,
            };
            let (mut page, more) = read.messages(OP, range).unwrap();
            page.push(message(u128::from(more), 0));
            page
        };
        out.push(page(None, None, 1000));
        for m in all.iter().step_by(7) {
            out.push(page(Some(Id(m.id.0 - 1)), None, 9));
            out.push(page(Some(m.id), None, 9));
            out.push(page(None, Some(m.id), 9));
            out.push(page(None, Some(Id(m.id.0 + 1)), 9));
            out.push(page(Some(Id(m.id.0 - 30)), Some(Id(m.id.0 + 30)), 100));
        }
        let by_id = all
            .iter()
            .flat_map(|m| [m.id.0 - 1, m.id.0])
            .filter_map(|id| read.message(OP, Id(id)).unwrap())
            .collect();
        out.push(by_id);
        let tx = store.write().unwrap();
        out.push(tx.message_ends(OP, 10).unwrap());
        out
    }

    fn rows(store: &Store) -> usize {
        use redb::ReadableTableMetadata;
        let read = store.read().unwrap();
        read.txn
            .open_table(crate::store::MESSAGES)
            .unwrap()
            .len()
            .unwrap() as usize
    }

    fn write(store: &Store, f: impl FnOnce(&mut crate::store::WriteTx)) {
        let mut tx = store.write().unwrap();
        f(&mut tx);
        tx.commit().unwrap();
    }

    #[test]
    fn fresh_messages_of_a_running_operation_are_stored_as_any_others() {
        let messages: Vec<Message> = (1..=50).map(|i| message(i * 10, i as usize)).collect();
        let (checked, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (checked, fresh) = (
            Store::open(checked.path()).unwrap(),
            Store::open(fresh.path()).unwrap(),
        );
        write(&checked, |tx| tx.insert_messages(&messages).unwrap());
        write(&fresh, |tx| {
            tx.insert_fresh_messages(&messages, |_| false).unwrap()
        });
        assert_eq!(answers(&fresh), answers(&checked));
        assert_eq!(rows(&fresh), 50);
        // Once the operation ends they pack and read the same.
        write(&fresh, |tx| tx.pack_messages(OP).unwrap());
        assert_eq!(answers(&fresh), answers(&checked));
        assert!(rows(&fresh) < 50);
    }

    #[test]
    fn fresh_messages_of_an_ended_operation_are_packed_as_they_arrive() {
        let messages: Vec<Message> = (1..=120)
            .map(|i| message(i * 10, if i % 40 == 0 { 9000 } else { i as usize % 30 }))
            .collect();
        let (checked, fresh) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (checked, fresh) = (
            Store::open(checked.path()).unwrap(),
            Store::open(fresh.path()).unwrap(),
        );
        write(&checked, |tx| {
            tx.insert_messages(&messages).unwrap();
            tx.pack_messages(OP).unwrap();
        });
        // Two rows from while it ran, then batches of 1, 2, 57 and 58 after it ended: the lone
        // message joins the rows before it, the others go straight into blocks.
        write(&fresh, |tx| {
            tx.insert_fresh_messages(&messages[..2], |_| false).unwrap()
        });
        let mut at = 2;
        for n in [1, 2, 57, 58] {
            let batch = &messages[at..at + n];
            write(&fresh, |tx| {
                tx.insert_fresh_messages(batch, |_| true).unwrap()
            });
            at += n;
        }
        assert_eq!(at, messages.len());
        assert_eq!(answers(&fresh), answers(&checked));
        assert!(rows(&fresh) <= 8, "{} rows", rows(&fresh));
        // Packing after finds nothing left to do.
        let before = rows(&fresh);
        write(&fresh, |tx| tx.pack_messages(OP).unwrap());
        assert_eq!((rows(&fresh), answers(&fresh)), (before, answers(&checked)));

        // A stored message after the "fresh" ones (an import from a clock ahead): they still
        // land in id order, packed.
        let ahead = message(99_999, 5);
        let late = [message(5_000, 1), message(5_010, 2), message(5_020, 3)];
        write(&fresh, |tx| {
            assert!(tx.insert_message(&ahead).unwrap());
            tx.insert_fresh_messages(&late, |_| true).unwrap();
        });
        let mut expected = messages.clone();
        expected.extend(late.iter().cloned());
        expected.push(ahead);
        assert_eq!(answers(&fresh)[0], expected);
        assert_eq!(rows(&fresh), before + 1);
    }

    #[test]
    fn packed_messages_read_as_they_did_unpacked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Ids 10 apart, so messages can be put between them; some large enough to fill a block.
        let messages: Vec<Message> = (1..=300)
            .map(|i| message(i * 10, if i % 50 == 0 { 9000 } else { i as usize % 40 }))
            .collect();
        write(&store, |tx| tx.insert_messages(&messages).unwrap());
        let unpacked = answers(&store);
        assert_eq!(unpacked[0], messages);
        assert_eq!(rows(&store), 300);

        write(&store, |tx| tx.pack_messages(OP).unwrap());
        assert!(rows(&store) < 10, "{} rows", rows(&store));
        assert_eq!(answers(&store), unpacked);

        // Packing again changes nothing; a lone late message stays a row of its own.
        let late = message(5000, 3);
        write(&store, |tx| {
            tx.pack_messages(OP).unwrap();
            assert!(tx.insert_message(&late).unwrap());
            tx.pack_messages(OP).unwrap();
        });
        let rows_with_late = rows(&store);
        let mut expected = messages.clone();
        expected.push(late.clone());
        assert_eq!(answers(&store)[0], expected);

        // Two late ones are packed; a message inside a block's span joins it, in order.
        let later = [message(6000, 1), message(6010, 2)];
        let inside = message(1555, 4);
        write(&store, |tx| {
            tx.insert_messages(&later).unwrap();
            tx.pack_messages(OP).unwrap();
            assert!(tx.insert_message(&inside).unwrap());
        });
        assert_eq!(rows(&store), rows_with_late);
        expected.extend(later);
        expected.push(inside);
        expected.sort_by_key(|m| m.id);
        let packed = answers(&store);
        assert_eq!(packed[0], expected);

        // Stored ids are refused again, packed or not, and nothing changes.
        write(&store, |tx| {
            for m in [&messages[0], &messages[150], &late, &expected[200]] {
                assert!(!tx.insert_message(m).unwrap(), "{:?}", m.id);
            }
        });
        assert_eq!(answers(&store), packed);
    }

    #[test]
    fn retention_counts_the_messages_of_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut op = crate::store::tests_support::sample_operation();
        op.id = OP;
        op.state = OpState::Success;
        let messages: Vec<Message> = (1..=40).map(|i| message(i, 20)).collect();
        write(&store, |tx| {
            tx.put_operation(&op, None).unwrap();
            tx.insert_messages(&messages).unwrap();
            tx.pack_messages(OP).unwrap();
            tx.insert_message(&message(99, 1)).unwrap();
        });
        assert_eq!(rows(&store), 2);
        let cutoff = Timestamp::parse("9999-01-01T00:00:00Z").unwrap();
        write(&store, |tx| {
            let removed = tx.remove_created_before(cutoff, 1000).unwrap();
            assert_eq!((removed.ids, removed.messages), (vec![OP], 41));
        });
        assert_eq!(rows(&store), 0);
    }
}
