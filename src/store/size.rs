//! How many bytes the store's rows hold, estimated cheaply enough to ask every retention sweep:
//! the disk cap needs what is live in the file, and the file's length says nothing about that
//! (its freed pages are reused, not given back).
//!
//! A table of up to `EXACT_ROWS` rows is summed row by row. A larger one is sampled: rows are
//! read in runs from `SAMPLES` points spread evenly over its key space (ids are creation times,
//! so this spreads the samples over time), and the mean row size is multiplied by the row count
//! (which redb keeps, so counting is free). redb's page overhead is not counted.

use redb::{Key, ReadOnlyTable, ReadableTable, ReadableTableMetadata, TableDefinition, Value};

use super::tables::*;
use super::{ReadTx, StoreError};

/// Tables with at most this many rows are summed exactly.
const EXACT_ROWS: u64 = 4_096;
/// Points a large table is sampled at, and rows read from each.
const SAMPLES: u128 = 64;
const RUN: usize = 8;

impl ReadTx {
    /// The bytes of every row (key and value) of every table, estimated (see the module header).
    pub fn stored_bytes_estimate(&self) -> Result<u64, StoreError> {
        let txn = &self.txn;
        let first_u128 = |k: u128| k;
        Ok(estimate(txn, OPERATIONS, |t| spread(t, first_u128, |x| x))?
            + estimate(txn, MESSAGE_BLOCKS, |t| {
                spread(t, |k: u64| u128::from(k), |x| x as u64)
            })?
            + estimate(txn, OPERATION_BLOCKS, |t| {
                spread(t, |k: (u128, u128)| k.0, |x| (x, 0))
            })?
            + estimate(txn, OUTBOX, |t| spread(t, first_u128, |x| x))?
            + estimate(txn, OUTBOX_ATTEMPTS, |t| {
                spread(t, |k: (u128, u32)| k.0, |x| (x, 0))
            })?
            + estimate(txn, IDEMPOTENCY_BY_OPERATION, |t| {
                spread(t, first_u128, |x| x)
            })?
            + estimate(txn, OPEN_OPERATIONS, |t| {
                spread(t, |k: (i64, u128)| k.1, |x| (0, x))
            })?
            + estimate(txn, OUTBOX_DUE, |t| {
                spread(t, |k: (i64, u128)| k.1, |x| (0, x))
            })?
            + estimate(txn, INDEX_FEED, front)?
            + estimate(txn, IDEMPOTENCY, front)?
            + estimate(txn, META, front)?
            + estimate(txn, SETTINGS, front)?
            + estimate(txn, ALERT_STATES, front)?)
    }
}

fn row_bytes<K: Key + 'static, V: Value + 'static>(
    row: Result<(redb::AccessGuard<'_, K>, redb::AccessGuard<'_, V>), redb::StorageError>,
) -> Result<u64, StoreError> {
    let (key, value) = row?;
    let key = K::as_bytes(&key.value()).as_ref().len();
    let value = V::as_bytes(&value.value()).as_ref().len();
    Ok((key + value) as u64)
}

/// The table's bytes: exact when small, else its row count times `sample`'s mean row size.
fn estimate<K: Key + 'static, V: Value + 'static>(
    txn: &redb::ReadTransaction,
    definition: TableDefinition<K, V>,
    sample: impl Fn(&ReadOnlyTable<K, V>) -> Result<(u64, u64), StoreError>,
) -> Result<u64, StoreError> {
    let table = txn.open_table(definition)?;
    let rows = table.len()?;
    if rows <= EXACT_ROWS {
        let mut total = 0;
        for row in table.iter()? {
            total += row_bytes(row)?;
        }
        return Ok(total);
    }
    let (sampled_rows, sampled_bytes) = sample(&table)?;
    Ok(match sampled_rows {
        0 => 0,
        n => rows.saturating_mul(sampled_bytes) / n,
    })
}

/// Runs of rows from points spread over the key space, whose position is the u128 that
/// `position` takes from a key and `at` makes a key from.
fn spread<K, V: Value + 'static>(
    table: &ReadOnlyTable<K, V>,
    position: impl Fn(K) -> u128,
    at: impl Fn(u128) -> K,
) -> Result<(u64, u64), StoreError>
where
    K: Key + 'static + for<'a> Value<SelfType<'a> = K>,
{
    let (Some((first, _)), Some((last, _))) = (table.first()?, table.last()?) else {
        return Ok((0, 0));
    };
    let (low, high) = (position(first.value()), position(last.value()));
    let step = ((high - low) / SAMPLES).max(1);
    let (mut rows, mut bytes) = (0, 0);
    for i in 0..SAMPLES {
        let start = at(low.saturating_add(step.saturating_mul(i)));
        for row in table.range(start..)?.take(RUN) {
            rows += 1;
            bytes += row_bytes(row)?;
        }
    }
    Ok((rows, bytes))
}

/// The first rows of a table whose keys cannot be spread (names): small tables in practice.
fn front<K: Key + 'static, V: Value + 'static>(
    table: &ReadOnlyTable<K, V>,
) -> Result<(u64, u64), StoreError> {
    let (mut rows, mut bytes) = (0, 0);
    for row in table.iter()?.take(EXACT_ROWS as usize) {
        rows += 1;
        bytes += row_bytes(row)?;
    }
    Ok((rows, bytes))
}
