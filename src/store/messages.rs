//! Messages in blocks: `MESSAGE_BLOCKS` holds them in the order they were stored, as compressed
//! columns (`store::block`), and `OPERATION_BLOCKS` says which blocks hold an operation's.
//!
//! Each write group's messages go into blocks in the commit that accepts them: nothing is written
//! as a row first and packed later. A block aims at a size that fills a redb page (`TARGET`); the
//! last block, while not full, takes the next groups' messages (it is rewritten with them), so a
//! message is compressed once or twice under load. Removing operations rewrites the blocks that
//! hold their messages under the same keys, so the other operations' rows stay valid.
//!
//! An operation's rows are keyed by the smallest id of its messages in each block: read in key
//! order, they give its messages in id order. Fresh ids grow with sequence numbers, so the id
//! ranges of an operation's blocks do not overlap; messages imported with older ids may make them
//! overlap, which readers handle by reading every block concerned.

use std::collections::{BTreeMap, HashMap, HashSet};

use redb::{ReadableTable, Table};

use super::block::{self, Decoded};
use super::codec;
use super::StoreError;
use crate::model::Message;

/// What a block aims at, compressed. redb gives a value a page of 4 KiB times a power of two: a
/// block a little under 16 KiB fills its page, one a little over would waste half of a 32 KiB one,
/// so the aim leaves room for blocks compressing a little worse than the last one.
const TARGET: usize = 13 * 1024;
/// Messages a block holds before any block tells how well they compress.
const FIRST_COUNT: usize = 256;
/// A block's messages stay under this much uncompressed whatever the count says (a run of very
/// large messages).
const MAX_RAW: usize = 512 * 1024;

type OpKey = (u128, u128);

/// One operation's messages in one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OpRun {
    /// The smallest id of the operation's messages in the block (the row's key).
    pub min_id: u128,
    pub max_id: u128,
    pub block: u64,
    pub count: u64,
}

fn encode_run(run: &OpRun) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    for value in [
        u128::from(run.block),
        u128::from(run.count),
        run.max_id - run.min_id,
    ] {
        let mut v = value;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    out
}

fn decode_run(min_id: u128, bytes: &[u8]) -> Result<OpRun, StoreError> {
    let corrupt = || StoreError::Corrupt("operation block row: damaged".into());
    let mut values = [0u128; 3];
    let mut at = 0;
    for value in &mut values {
        let mut shift = 0;
        loop {
            let byte = *bytes.get(at).ok_or_else(corrupt)?;
            at += 1;
            if shift >= 128 {
                return Err(corrupt());
            }
            *value |= u128::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
    }
    if at != bytes.len() {
        return Err(corrupt());
    }
    Ok(OpRun {
        min_id,
        max_id: min_id.checked_add(values[2]).ok_or_else(corrupt)?,
        block: u64::try_from(values[0]).map_err(|_| corrupt())?,
        count: u64::try_from(values[1]).map_err(|_| corrupt())?,
    })
}

/// The runs of `operation` whose ids may fall in `[low, high]`, by smallest id.
pub(super) fn runs(
    runs: &impl ReadableTable<OpKey, &'static [u8]>,
    operation: u128,
    (low, high): (u128, u128),
) -> Result<Vec<OpRun>, StoreError> {
    let mut out = Vec::new();
    for row in runs.range((operation, 0)..=(operation, high))? {
        let (key, value) = row?;
        let run = decode_run(key.value().1, value.value())?;
        if run.max_id >= low {
            out.push(run);
        }
    }
    Ok(out)
}

pub(super) fn read_block(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    key: u64,
) -> Result<Decoded, StoreError> {
    let value = blocks
        .get(key)?
        .ok_or_else(|| StoreError::Corrupt(format!("message block {key} is missing")))?;
    block::decode(key, value.value())
}

/// The key of the block that holds sequence number `seq`, if one may.
fn block_of(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<Option<u64>, StoreError> {
    Ok(blocks
        .range(..=seq)?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value()))
}

/// The message with sequence number `seq`, if it is stored.
pub(super) fn at_seq(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    seq: u64,
) -> Result<Option<Message>, StoreError> {
    let Some(key) = block_of(blocks, seq)? else {
        return Ok(None);
    };
    let block = read_block(blocks, key)?;
    block.row_of(seq).map(|row| block.message(row)).transpose()
}

/// The messages with sequence numbers `seqs` (ascending), decompressing each block once; numbers
/// whose message is gone are left out.
pub(super) fn at_seqs(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    seqs: &[u64],
) -> Result<Vec<(u64, Message)>, StoreError> {
    let mut out = Vec::with_capacity(seqs.len());
    let mut current: Option<Decoded> = None;
    for &seq in seqs {
        let row = match current.as_ref().and_then(|b| b.row_of(seq)) {
            Some(row) => Some(row),
            None => {
                current = match block_of(blocks, seq)? {
                    Some(key) => Some(read_block(blocks, key)?),
                    None => None,
                };
                current.as_ref().and_then(|b| b.row_of(seq))
            }
        };
        if let (Some(row), Some(block)) = (row, &current) {
            out.push((seq, block.message(row)?));
        }
    }
    Ok(out)
}

/// Calls `f` with each message of `operation` whose id is in `[low, high]`, in id order (newest
/// first when `newest_first`), until `f` returns false.
pub(super) fn scan(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    op_runs: &impl ReadableTable<OpKey, &'static [u8]>,
    operation: u128,
    (low, high): (u128, u128),
    newest_first: bool,
    mut f: impl FnMut(Message) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    if low > high {
        return Ok(());
    }
    let mut found = runs(op_runs, operation, (low, high))?;
    let overlapping = found.windows(2).any(|w| w[1].min_id <= w[0].max_id);
    let in_block = |run: &OpRun| -> Result<Vec<Message>, StoreError> {
        let block = read_block(blocks, run.block)?;
        let mut out = Vec::with_capacity(run.count as usize);
        for row in 0..block.len() {
            let id = block.id(row).0;
            if block.operation(row).0 == operation && (low..=high).contains(&id) {
                out.push(block.message(row)?);
            }
        }
        out.sort_unstable_by_key(|m| m.id);
        Ok(out)
    };
    if overlapping {
        // Imported messages interleave with others: read them all, then order them.
        let mut all = Vec::new();
        for run in &found {
            all.extend(in_block(run)?);
        }
        all.sort_unstable_by_key(|m| m.id);
        if newest_first {
            all.reverse();
        }
        for m in all {
            if !f(m)? {
                return Ok(());
            }
        }
        return Ok(());
    }
    if newest_first {
        found.reverse();
    }
    for run in &found {
        let mut messages = in_block(run)?;
        if newest_first {
            messages.reverse();
        }
        for m in messages {
            if !f(m)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The message `id` of `operation`, if it is stored.
pub(super) fn find(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    op_runs: &impl ReadableTable<OpKey, &'static [u8]>,
    operation: u128,
    id: u128,
) -> Result<Option<Message>, StoreError> {
    for run in runs(op_runs, operation, (id, id))? {
        let block = read_block(blocks, run.block)?;
        let row = (0..block.len())
            .find(|&row| block.id(row).0 == id && block.operation(row).0 == operation);
        if let Some(row) = row {
            return block.message(row).map(Some);
        }
    }
    Ok(None)
}

/// Calls `f` with every stored message after sequence number `after`, in sequence order, until
/// `f` returns false.
pub(super) fn for_each_after(
    blocks: &impl ReadableTable<u64, &'static [u8]>,
    after: u64,
    mut f: impl FnMut(u64, Message) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let start = block_of(blocks, after.saturating_add(1))?.unwrap_or(0);
    for row in blocks.range(start..)? {
        let (key, value) = row?;
        let block = block::decode(key.value(), value.value())?;
        for row in 0..block.len() {
            if block.seq(row) > after && !f(block.seq(row), block.message(row)?)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The sequence number of the newest stored message (0 when there is none).
pub(super) fn last_seq(blocks: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    match blocks.last()? {
        Some((_, value)) => Ok(block::header(value.value())?.last_seq),
        None => Ok(0),
    }
}

/// About how many bytes `message` takes in a block's payload: a bound for blocks of very large
/// messages.
fn approximate_size(m: &Message) -> usize {
    let http = m.request.as_ref().map_or(0, |r| {
        r.method.len()
            + r.url.len()
            + r.body.as_ref().map_or(0, |b| b.0.get().len())
            + r.headers
                .as_ref()
                .map_or(0, |h| h.iter().map(|(k, v)| k.len() + v.len()).sum())
    }) + m.response.as_ref().map_or(0, |r| {
        8 + r.body.as_ref().map_or(0, |b| b.0.get().len())
            + r.headers
                .as_ref()
                .map_or(0, |h| h.iter().map(|(k, v)| k.len() + v.len()).sum())
    });
    let error = m.error.as_ref().map_or(0, |e| e.message.len() + 16);
    24 + m.message.len() + http + error + m.meta.as_ref().map_or(0, |j| j.0.get().len())
}

/// How many messages make a block of about `TARGET` bytes, from how well the last full block
/// compressed (a workload's messages compress alike from one block to the next).
fn target_count(blocks: &impl ReadableTable<u64, &'static [u8]>) -> Result<usize, StoreError> {
    for row in blocks.iter()?.rev().take(2) {
        let (_, value) = row?;
        let head = block::header(value.value())?;
        let compressed = block::compressed_len(value.value()).max(1);
        // The last block may hold only a few messages; a few dozen tell enough (a small block
        // compresses a little worse, so the estimate errs towards smaller blocks).
        if head.count >= 64 {
            let per_message = compressed as f64 / f64::from(head.count.max(1));
            return Ok(((TARGET as f64 / per_message) as usize).clamp(16, 16_384));
        }
    }
    Ok(FIRST_COUNT)
}

/// Splits `rows` into runs of `count` messages (fewer where they pass `MAX_RAW`).
fn cut<'a, 'm>(rows: &'a [(u64, &'m Message)], count: usize) -> Vec<&'a [(u64, &'m Message)]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, (_, m)) in rows.iter().enumerate() {
        let grows = approximate_size(m);
        if i > start && (i - start == count || size + grows > MAX_RAW) {
            out.push(&rows[start..i]);
            (start, size) = (i, 0);
        }
        size += grows;
    }
    if start < rows.len() {
        out.push(&rows[start..]);
    }
    out
}

/// Stores `fresh` (ascending sequence numbers, all after every stored one) in blocks of about
/// `TARGET` bytes: a last block not yet full takes them first (it is rewritten with them), and
/// whatever does not fill a block stays the new last one, compressed cheaply until it is full. A
/// message is so compressed once or twice under load, and more only in quiet times.
pub(super) fn append(
    blocks: &mut Table<u64, &'static [u8]>,
    op_runs: &mut Table<OpKey, &'static [u8]>,
    fresh: &[(u64, &Message)],
) -> Result<(), StoreError> {
    let Some(&(first_fresh, _)) = fresh.first() else {
        return Ok(());
    };
    let count = target_count(blocks)?;
    let tail = match blocks.last()? {
        Some((key, value)) => {
            let head = block::header(value.value())?;
            (head.count as usize * 4 < count * 3 && head.last_seq < first_fresh)
                .then_some(key.value())
        }
        None => None,
    };
    let mut kept = Vec::new();
    let mut key = first_fresh;
    if let Some(tail) = tail {
        let decoded = read_block(blocks, tail)?;
        forget_runs(op_runs, &decoded)?;
        kept = decoded.all()?;
        key = tail;
    }
    let rows: Vec<(u64, &Message)> = kept
        .iter()
        .map(|(s, m)| (*s, m))
        .chain(fresh.iter().copied())
        .collect();
    for run in cut(&rows, count) {
        let level = if run.len() * 4 >= count * 3 {
            block::FINAL
        } else {
            block::INTERIM
        };
        write_block(blocks, op_runs, key, run, level)?;
        key = run.last().map_or(key, |(seq, _)| seq + 1);
    }
    Ok(())
}

/// Writes `rows` as the block `key` (replacing what was there) and a run row per operation.
fn write_block(
    blocks: &mut Table<u64, &'static [u8]>,
    op_runs: &mut Table<OpKey, &'static [u8]>,
    key: u64,
    rows: &[(u64, &Message)],
    level: i32,
) -> Result<(), StoreError> {
    blocks.insert(key, block::encode(key, rows, level).as_slice())?;
    let mut by_op: BTreeMap<u128, OpRun> = BTreeMap::new();
    for (_, m) in rows {
        let id = m.id.0;
        by_op
            .entry(m.operation_id.0)
            .and_modify(|run| {
                run.min_id = run.min_id.min(id);
                run.max_id = run.max_id.max(id);
                run.count += 1;
            })
            .or_insert(OpRun {
                min_id: id,
                max_id: id,
                block: key,
                count: 1,
            });
    }
    for (op, run) in by_op {
        op_runs.insert((op, run.min_id), encode_run(&run).as_slice())?;
    }
    Ok(())
}

/// Removes the run rows of every operation in `block`.
fn forget_runs(
    op_runs: &mut Table<OpKey, &'static [u8]>,
    block: &Decoded,
) -> Result<(), StoreError> {
    let mut min: HashMap<u128, u128> = HashMap::new();
    for row in 0..block.len() {
        let (op, id) = (block.operation(row).0, block.id(row).0);
        min.entry(op)
            .and_modify(|m| *m = (*m).min(id))
            .or_insert(id);
    }
    for (op, id) in min {
        op_runs.remove((op, id))?;
    }
    Ok(())
}

/// Removes every message of `operations`; returns how many were removed. Each block holding some
/// is rewritten without them under the same key (or removed when nothing is left).
pub(super) fn remove_operations(
    blocks: &mut Table<u64, &'static [u8]>,
    op_runs: &mut Table<OpKey, &'static [u8]>,
    operations: &HashSet<u128>,
) -> Result<u64, StoreError> {
    let mut touched = BTreeMap::new();
    for &op in operations {
        for run in runs(op_runs, op, (0, u128::MAX))? {
            touched.insert(run.block, ());
            op_runs.remove((op, run.min_id))?;
        }
    }
    let mut removed = 0;
    for key in touched.into_keys() {
        let block = read_block(blocks, key)?;
        let kept: Vec<(u64, Message)> = (0..block.len())
            .filter(|&row| !operations.contains(&block.operation(row).0))
            .map(|row| Ok((block.seq(row), block.message(row)?)))
            .collect::<Result<_, StoreError>>()?;
        removed += (block.len() - kept.len()) as u64;
        if kept.is_empty() {
            blocks.remove(key)?;
        } else {
            let rows: Vec<(u64, &Message)> = kept.iter().map(|(s, m)| (*s, m)).collect();
            // The other operations' run rows name this key and keep their counts and ids.
            blocks.insert(key, block::encode(key, &rows, block::FINAL).as_slice())?;
        }
    }
    Ok(removed)
}

/// Converts the messages of a format 1 or 2 file (`MESSAGES`, rows and blocks per operation)
/// into blocks, at most `budget` messages per call, removing what it converted; returns how many
/// it converted (0 once nothing is left). Sequence numbers continue after `*seq`, in the old
/// table's order (by operation, then id).
pub(super) fn convert_legacy(
    legacy: &mut Table<(u128, u128), &'static [u8]>,
    blocks: &mut Table<u64, &'static [u8]>,
    op_runs: &mut Table<OpKey, &'static [u8]>,
    seq: &mut u64,
    budget: usize,
) -> Result<usize, StoreError> {
    let mut messages = Vec::new();
    let mut last_key = None;
    for row in legacy.iter()? {
        let (key, value) = row?;
        let (operation, id) = key.value();
        messages.extend(codec::decode_message_row_of(operation, id, value.value())?);
        last_key = Some((operation, id));
        if messages.len() >= budget {
            break;
        }
    }
    let Some(last_key) = last_key else {
        return Ok(0);
    };
    legacy.retain_in(..=last_key, |_, _| false)?;
    let rows: Vec<(u64, &Message)> = messages
        .iter()
        .map(|m| {
            *seq += 1;
            (*seq, m)
        })
        .collect();
    append(blocks, op_runs, &rows)?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use crate::model::*;
    use crate::store::{MessageRange, Store};

    const OP: Id = Id(7 << 100);

    fn message(op: Id, id: u128, text_len: usize) -> Message {
        Message {
            id: Id(op.0 + id),
            operation_id: op,
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
            page.push(message(OP, u128::from(more), 0));
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

    /// What a reader expects of `OP`: its messages in id order, read the simple way.
    fn expected(messages: &[Message]) -> Vec<Vec<Message>> {
        let mut all: Vec<Message> = messages
            .iter()
            .filter(|m| m.operation_id == OP)
            .cloned()
            .collect();
        all.sort_by_key(|m| m.id);
        let mut out = vec![all.clone()];
        let page = |low: u128, high: u128, limit: usize, newest_first: bool| {
            let mut inside: Vec<Message> = all
                .iter()
                .filter(|m| (low..=high).contains(&m.id.0))
                .cloned()
                .collect();
            if newest_first {
                inside.reverse();
            }
            let more = inside.len() > limit;
            inside.truncate(limit);
            if newest_first {
                inside.reverse();
            }
            inside.push(message(OP, u128::from(more), 0));
            inside
        };
        out.push(page(0, u128::MAX, 1000, false));
        for m in all.iter().step_by(7) {
            out.push(page(m.id.0, u128::MAX, 9, false));
            out.push(page(m.id.0 + 1, u128::MAX, 9, false));
            out.push(page(0, m.id.0 - 1, 9, true));
            out.push(page(0, m.id.0, 9, true));
            out.push(page(m.id.0 - 29, m.id.0 + 29, 100, false));
        }
        out.push(all.clone());
        let ends = if all.len() <= 20 {
            all.clone()
        } else {
            [&all[..10], &all[all.len() - 10..]].concat()
        };
        out.push(ends);
        out
    }

    fn write(store: &Store, f: impl FnOnce(&mut crate::store::WriteTx)) {
        let mut tx = store.write().unwrap();
        f(&mut tx);
        tx.commit().unwrap();
    }

    fn store_in_groups(store: &Store, messages: &[Message], group: usize) {
        for chunk in messages.chunks(group) {
            write(store, |tx| {
                let first = tx.last_message_seq().unwrap() + 1;
                let rows: Vec<(u64, &Message)> = (first..).zip(chunk).collect();
                tx.append_messages(&rows).unwrap();
            });
        }
    }

    /// Messages of `OP` and of two others, interleaved as concurrent writers make them.
    fn interleaved(n: u128) -> Vec<Message> {
        (1..=n)
            .map(|i| {
                let op = [OP, Id(OP.0 + (1 << 90)), Id(OP.0 + (2 << 90))][(i % 3) as usize];
                message(op, i * 10, if i % 40 == 0 { 9000 } else { i as usize % 30 })
            })
            .collect()
    }

    #[test]
    fn reads_agree_with_a_plain_scan_whatever_the_group_sizes() {
        let messages = interleaved(400);
        for group in [1, 7, 100, 400] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            store_in_groups(&store, &messages, group);
            assert_eq!(answers(&store), expected(&messages), "groups of {group}");
        }
    }

    #[test]
    fn small_groups_are_merged_instead_of_making_a_block_each() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let messages: Vec<Message> = (1..=300).map(|i| message(OP, i, 20)).collect();
        store_in_groups(&store, &messages, 1);
        let read = store.read().unwrap();
        let blocks = read.txn.open_table(super::super::MESSAGE_BLOCKS).unwrap();
        let count = redb::ReadableTableMetadata::len(&blocks).unwrap() as usize;
        assert!(
            count <= 300 / super::FIRST_COUNT + 1,
            "{count} blocks for 300 messages of one at a time"
        );
        let mut seqs = Vec::new();
        read.for_each_message_after(0, |seq, m| {
            seqs.push((seq, m.id));
            Ok(true)
        })
        .unwrap();
        let want: Vec<(u64, Id)> = (1u64..).zip(messages.iter().map(|m| m.id)).collect();
        assert_eq!(seqs, want);
        assert_eq!(read.message_at(150).unwrap(), Some(messages[149].clone()));
        assert_eq!(read.message_at(301).unwrap(), None);
    }

    #[test]
    fn removing_operations_keeps_the_others_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let messages = interleaved(600);
        store_in_groups(&store, &messages, 50);
        let gone = std::collections::HashSet::from([OP.0 + (1 << 90)]);
        write(&store, |tx| {
            let removed = tx.remove_messages_of(&gone).unwrap();
            assert_eq!(removed, 200);
        });
        assert_eq!(answers(&store), expected(&messages));
        let read = store.read().unwrap();
        let mut left = 0;
        read.for_each_message_after(0, |_, m| {
            assert!(!gone.contains(&m.operation_id.0));
            left += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(left, 400);
        // New messages keep their numbers after the rewritten blocks.
        drop(read);
        store_in_groups(&store, &[message(OP, 100_000, 3)], 1);
        assert_eq!(
            store.read().unwrap().message_at(601).unwrap().map(|m| m.id),
            Some(Id(OP.0 + 100_000))
        );
    }

    #[test]
    fn imported_messages_with_older_ids_read_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let fresh: Vec<Message> = (100..200).map(|i| message(OP, i * 10, 5)).collect();
        let imported: Vec<Message> = (0..150).map(|i| message(OP, i * 10 + 5, 5)).collect();
        store_in_groups(&store, &fresh, 30);
        store_in_groups(&store, &imported, 40);
        let all: Vec<Message> = fresh.iter().chain(&imported).cloned().collect();
        assert_eq!(answers(&store), expected(&all));
    }
}
