//! The durable store: one redb file in the data dir, the source of truth for everything opslog keeps.
//!
//! Owns opening (format check), read transactions for the API, and the write-transaction helpers
//! the single writer (`write`) uses: operations, messages (`messages`), the index feed and
//! idempotency keys here; removing operations (`remove`); the outbox's tables in `outbox`, the
//! settings rows in `settings`. Every call here blocks on disk: never call it from an `async fn`
//! on the runtime's threads; use the writer thread or `spawn_blocking`.
//!
//! Must not: decide policy (state transitions, validation); it stores what it is given.

mod audit;
pub(crate) mod block;
pub(crate) mod codec;
mod erase;
mod messages;
mod outbox;
mod remove;
mod settings;
mod size;
mod tables;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

pub use audit::AuditPage;
pub use codec::{FeedEntry, IdempotencyRecord};
pub use erase::ErasedJobs;
pub use outbox::{DueJobs, DueKey, RemovedJobs};
pub use remove::RemovedOperations;
use tables::*;

use crate::model::job::OutboxDepth;
use crate::model::{Id, Message, Operation, Timestamp};

/// The id range of jobs (or operations) created in `[from, to]`: ULIDs start with their
/// creation time in ms, so a time window is a key range.
pub fn id_range(from: Option<Timestamp>, to: Option<Timestamp>) -> (u128, u128) {
    let at = |t: Timestamp| (t.millis().clamp(0, (1 << 48) - 1) as u128) << 80;
    let low = from.map(at).unwrap_or(0);
    let high = to
        .map(|t| at(t.plus_millis(1)).saturating_sub(1))
        .unwrap_or(u128::MAX);
    (low, high)
}

/// The file name of the database inside the data dir.
pub const DB_FILE: &str = "opslog.redb";

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("the disk is full: {0}")]
    DiskFull(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Incompatible(String),
    #[error("storage error: {0}")]
    Storage(String),
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> StoreError {
        let is_enospc = |io: &std::io::Error| io.raw_os_error() == Some(28);
        match e {
            redb::Error::Io(io) if is_enospc(&io) => StoreError::DiskFull(io.to_string()),
            redb::Error::Corrupted(what) => StoreError::Corrupt(what),
            redb::Error::DatabaseAlreadyOpen => StoreError::Incompatible(
                "the database is already open: is another opslog running on this data dir?".into(),
            ),
            other => StoreError::Storage(other.to_string()),
        }
    }
}

macro_rules! via_redb_error {
    ($($t:ty),+) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::from(redb::Error::from(e))
            }
        }
    )+};
}
via_redb_error!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    redb::Builder::new()
        .set_cache_size(cache_bytes)
        .create(path)
}

pub struct Store {
    /// Replaced by `reopen` after an I/O failure: redb refuses further work on a database whose
    /// write hit an I/O error (a full disk), until it is closed and opened again.
    db: RwLock<Option<Arc<Database>>>,
    path: PathBuf,
    cache_bytes: usize,
}

/// redb's page cache unless the config says otherwise (`server.store_cache_bytes`).
pub use crate::config::DEFAULT_STORE_CACHE_BYTES as DEFAULT_CACHE_BYTES;

impl Store {
    /// Opens (or creates) the database in `data_dir`, creating the directory and every table.
    /// Refuses a file written by a newer format. On error nothing was changed on disk except a
    /// freshly created empty directory.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(data_dir, DEFAULT_CACHE_BYTES)
    }

    /// `open`, with at most `cache_bytes` of memory caching database pages.
    pub fn open_with_cache(data_dir: &Path, cache_bytes: usize) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Storage(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(DB_FILE);
        let db = open_database(&path, cache_bytes)?;
        let store = Store {
            db: RwLock::new(Some(Arc::new(db))),
            path,
            cache_bytes,
        };
        let tx = store.write()?;
        let found = {
            let mut meta = tx.txn.open_table(META)?;
            let found = meta
                .get("format_version")?
                .map(|v| u32::from_le_bytes(v.value().try_into().unwrap_or([0xff; 4])));
            match found {
                Some(v) if v > FORMAT_VERSION => {
                    return Err(StoreError::Incompatible(format!(
                        "{} was written by a newer opslog (format {v}; this binary reads up to {FORMAT_VERSION})",
                        store.path.display()
                    )))
                }
                None => {
                    meta.insert("format_version", FORMAT_VERSION.to_le_bytes().as_slice())?;
                }
                Some(_) => {}
            }
            found
        };
        tx.txn.open_table(OPERATIONS)?;
        tx.txn.open_table(MESSAGE_BLOCKS)?;
        tx.txn.open_table(OPERATION_BLOCKS)?;
        tx.txn.open_table(OPEN_OPERATIONS)?;
        tx.txn.open_table(IDEMPOTENCY)?;
        tx.txn.open_table(SETTINGS)?;
        tx.txn.open_table(ALERT_STATES)?;
        tx.txn.open_table(VIEWS)?;
        tx.txn.open_table(OUTBOX)?;
        tx.txn.open_table(OUTBOX_DUE)?;
        tx.txn.open_table(OUTBOX_ATTEMPTS)?;
        tx.txn.open_table(INDEX_FEED)?;
        tx.txn.open_table(IDEMPOTENCY_BY_OPERATION)?;
        tx.txn.open_table(ERASE_JOBS)?;
        tx.txn.open_table(AUDIT)?;
        tx.commit()?;
        if let Some(older) = found.filter(|v| *v < FORMAT_VERSION) {
            store.convert_messages(older)?;
        }
        Ok(store)
    }

    /// Moves the messages of a format 1 or 2 file into blocks (format 3), in transactions of a
    /// bounded size: a crash part way leaves both tables consistent, and the next start goes on
    /// where it stopped. The feed is replaced (the index is rebuilt for the new schema anyway);
    /// the format number is written last.
    fn convert_messages(&self, from: u32) -> Result<(), StoreError> {
        const BATCH: usize = 50_000;
        let started = std::time::Instant::now();
        tracing::info!(
            path = %self.path.display(),
            from,
            to = FORMAT_VERSION,
            "converting the data dir to the new format (messages into column blocks); this runs once"
        );
        let mut converted = 0u64;
        loop {
            let tx = self.write()?;
            let done = {
                let mut legacy = tx.txn.open_table(MESSAGES)?;
                let mut blocks = tx.txn.open_table(MESSAGE_BLOCKS)?;
                let mut runs = tx.txn.open_table(OPERATION_BLOCKS)?;
                let mut seq = messages::last_seq(&blocks)?;
                let n =
                    messages::convert_legacy(&mut legacy, &mut blocks, &mut runs, &mut seq, BATCH)?;
                converted += n as u64;
                n == 0
            };
            if converted > 0 && !done {
                tracing::info!(messages = converted, "converting: messages moved so far");
            }
            if done {
                let mut feed = tx.txn.open_table(INDEX_FEED)?;
                let last = feed.last()?.map(|(k, _)| k.value()).unwrap_or(0);
                feed.retain(|_, _| false)?;
                feed.insert(last, codec::encode_feed(&FeedEntry::default()).as_slice())?;
                drop(feed);
                tx.txn.delete_table(MESSAGES)?;
                tx.txn
                    .open_table(META)?
                    .insert("format_version", FORMAT_VERSION.to_le_bytes().as_slice())?;
                tx.commit()?;
                break;
            }
            tx.commit()?;
        }
        tracing::info!(
            messages = converted,
            seconds = started.elapsed().as_secs_f64(),
            "data dir converted to format {FORMAT_VERSION}"
        );
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn database(&self) -> Result<Arc<Database>, StoreError> {
        self.db.read().expect("store lock").clone().ok_or_else(|| {
            StoreError::Storage("the database is being reopened after an I/O error".into())
        })
    }

    /// Every table's rows as raw bytes (`tables::dump`), for tests that compare what is stored.
    #[cfg(test)]
    pub(crate) fn dump(&self) -> tables::Dump {
        tables::dump(&self.database().unwrap().begin_read().unwrap())
    }

    pub fn read(&self) -> Result<ReadTx, StoreError> {
        Ok(ReadTx {
            txn: self.database()?.begin_read()?,
        })
    }

    /// Closes and opens the database file again, as redb requires after a write failed with an
    /// I/O error. Waits up to `patience` for readers of the old handle to finish. On failure the
    /// store answers errors until a later call succeeds; committed data is never touched.
    pub fn reopen(&self, patience: std::time::Duration) -> Result<(), StoreError> {
        let mut slot = self.db.write().expect("store lock");
        let old = slot.take();
        let deadline = std::time::Instant::now() + patience;
        if let Some(old) = old {
            // Readers may still hold the old handle; it closes when the last one is done.
            let mut old = Some(old);
            while let Some(db) = old.take() {
                match Arc::try_unwrap(db) {
                    Ok(db) => drop(db),
                    Err(shared) if std::time::Instant::now() < deadline => {
                        old = Some(shared);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(shared) => {
                        *slot = Some(shared);
                        return Err(StoreError::Storage(
                            "readers still hold the database".into(),
                        ));
                    }
                }
            }
        }
        loop {
            match open_database(&self.path, self.cache_bytes) {
                Ok(db) => {
                    *slot = Some(Arc::new(db));
                    return Ok(());
                }
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "reopen: database still busy");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Starts a write transaction. Only the writer thread writes in normal operation; redb
    /// serializes any other writer behind it.
    pub fn write(&self) -> Result<WriteTx, StoreError> {
        let mut txn = self.database()?.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        Ok(WriteTx {
            txn,
            outbox_depth: OutboxDepth::default(),
        })
    }
}

/// Which page of an operation's messages to read (oldest first).
#[derive(Clone, Copy, Debug, Default)]
pub struct MessageRange {
    /// Only messages after this one.
    pub after: Option<Id>,
    /// Only messages before this one.
    pub before: Option<Id>,
    pub limit: usize,
}

pub struct ReadTx {
    txn: redb::ReadTransaction,
}

impl ReadTx {
    pub fn operation(&self, id: Id) -> Result<Option<Operation>, StoreError> {
        let table = self.txn.open_table(OPERATIONS)?;
        let value = table.get(id.0)?;
        value
            .map(|v| codec::decode_operation(v.value()))
            .transpose()
    }

    /// Up to `limit` messages of one operation, oldest first, and whether more lie beyond them in
    /// the direction read. With `before` and no `after`, the newest `limit` before it are taken.
    pub fn messages(
        &self,
        operation: Id,
        range: MessageRange,
    ) -> Result<(Vec<Message>, bool), StoreError> {
        let blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let runs = self.txn.open_table(OPERATION_BLOCKS)?;
        let low = match range.after {
            Some(after) if after.0 == u128::MAX => return Ok((Vec::new(), false)),
            Some(after) => after.0 + 1,
            None => 0,
        };
        let high = match range.before {
            Some(before) if before.0 == 0 => return Ok((Vec::new(), false)),
            Some(before) => before.0 - 1,
            None => u128::MAX,
        };
        let mut out = Vec::with_capacity(range.limit.min(512));
        let mut more = false;
        let newest_first = range.before.is_some() && range.after.is_none();
        messages::scan(
            &blocks,
            &runs,
            operation.0,
            (low, high),
            newest_first,
            |m| {
                if out.len() == range.limit {
                    more = true;
                    return Ok(false);
                }
                out.push(m);
                Ok(true)
            },
        )?;
        if newest_first {
            out.reverse();
        }
        Ok((out, more))
    }

    pub fn message(&self, operation: Id, id: Id) -> Result<Option<Message>, StoreError> {
        let blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let runs = self.txn.open_table(OPERATION_BLOCKS)?;
        messages::find(&blocks, &runs, operation.0, id.0)
    }

    /// The message with sequence number `seq` (how the search index names it), if stored.
    pub fn message_at(&self, seq: u64) -> Result<Option<Message>, StoreError> {
        messages::at_seq(&self.txn.open_table(MESSAGE_BLOCKS)?, seq)
    }

    /// The messages with these sequence numbers (ascending), each block read once; a number
    /// whose message is gone is left out.
    pub fn messages_at(&self, seqs: &[u64]) -> Result<Vec<(u64, Message)>, StoreError> {
        messages::at_seqs(&self.txn.open_table(MESSAGE_BLOCKS)?, seqs)
    }

    /// Calls `f` with every message stored after sequence number `after`, in the order they were
    /// stored, until `f` returns false.
    pub fn for_each_message_after(
        &self,
        after: u64,
        f: impl FnMut(u64, Message) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        messages::for_each_after(&self.txn.open_table(MESSAGE_BLOCKS)?, after, f)
    }

    /// The sequence number of the newest stored message (0 when there is none).
    pub fn last_message_seq(&self) -> Result<u64, StoreError> {
        messages::last_seq(&self.txn.open_table(MESSAGE_BLOCKS)?)
    }

    /// Calls `f` with every operation, in id order.
    pub fn for_each_operation(
        &self,
        mut f: impl FnMut(Operation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let table = self.txn.open_table(OPERATIONS)?;
        for row in table.iter()? {
            f(codec::decode_operation(row?.1.value())?)?;
        }
        Ok(())
    }

    /// Calls `f` with every operation whose id is in `[low, high]`, in id (creation) order, until
    /// `f` fails.
    pub fn scan_operations(
        &self,
        low: u128,
        high: u128,
        mut f: impl FnMut(Operation) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let table = self.txn.open_table(OPERATIONS)?;
        for row in table.range(low..=high)? {
            f(codec::decode_operation(row?.1.value())?)?;
        }
        Ok(())
    }

    /// Calls `f` with every message of `operation`, oldest first, until `f` fails.
    pub fn for_each_message_of(
        &self,
        operation: Id,
        mut f: impl FnMut(Message) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let runs = self.txn.open_table(OPERATION_BLOCKS)?;
        messages::scan(&blocks, &runs, operation.0, (0, u128::MAX), false, |m| {
            f(m)?;
            Ok(true)
        })
    }

    /// Writes a copy of the whole database as this transaction sees it (a consistent snapshot
    /// taken while writes go on) into `file`, a new redb file with every table. Returns the
    /// rows copied. On error `file` holds an unusable partial copy.
    pub fn copy_to(&self, file: std::fs::File) -> Result<u64, StoreError> {
        let backend = redb::backends::FileBackend::new(file)?;
        let copy = redb::Builder::new().create_with_backend(backend)?;
        let mut write = copy.begin_write()?;
        write
            .set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        let rows = copy_table(&self.txn, &write, META)?
            + copy_table(&self.txn, &write, OPERATIONS)?
            + copy_table(&self.txn, &write, MESSAGE_BLOCKS)?
            + copy_table(&self.txn, &write, OPERATION_BLOCKS)?
            + copy_table(&self.txn, &write, OPEN_OPERATIONS)?
            + copy_table(&self.txn, &write, IDEMPOTENCY)?
            + copy_table(&self.txn, &write, SETTINGS)?
            + copy_table(&self.txn, &write, ALERT_STATES)?
            + copy_table(&self.txn, &write, OUTBOX)?
            + copy_table(&self.txn, &write, OUTBOX_DUE)?
            + copy_table(&self.txn, &write, OUTBOX_ATTEMPTS)?
            + copy_table(&self.txn, &write, INDEX_FEED)?
            + copy_table(&self.txn, &write, IDEMPOTENCY_BY_OPERATION)?;
        write.commit()?;
        Ok(rows)
    }

    /// Feed entries after `seq`, oldest first, at most `limit`.
    pub fn feed_after(&self, seq: u64, limit: usize) -> Result<Vec<(u64, FeedEntry)>, StoreError> {
        let table = self.txn.open_table(INDEX_FEED)?;
        let mut out = Vec::new();
        for row in table.range(seq.saturating_add(1)..)?.take(limit) {
            let (key, value) = row?;
            out.push((key.value(), codec::decode_feed(value.value())?));
        }
        Ok(out)
    }

    /// The sequence of the newest and oldest feed entries (0 when empty).
    pub fn feed_bounds(&self) -> Result<(u64, u64), StoreError> {
        let table = self.txn.open_table(INDEX_FEED)?;
        let first = table.first()?.map(|(k, _)| k.value()).unwrap_or(0);
        let last = table.last()?.map(|(k, _)| k.value()).unwrap_or(0);
        Ok((first, last))
    }

    pub fn operation_count(&self) -> Result<u64, StoreError> {
        Ok(self.txn.open_table(OPERATIONS)?.len()?)
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.txn.open_table(META)?;
        let value = table.get(key)?;
        Ok(value.map(|v| v.value().to_vec()))
    }
}

pub struct WriteTx {
    txn: redb::WriteTransaction,
    /// How this transaction changed the outbox's rows per kind and status.
    outbox_depth: OutboxDepth,
}

impl WriteTx {
    pub fn operation(&self, id: Id) -> Result<Option<Operation>, StoreError> {
        let table = self.txn.open_table(OPERATIONS)?;
        let value = table.get(id.0)?;
        value
            .map(|v| codec::decode_operation(v.value()))
            .transpose()
    }

    /// Stores `op`, keeping the sweeper's list of open operations in step with its state.
    /// `previous` is the stored version it replaces, if any.
    pub fn put_operation(
        &mut self,
        op: &Operation,
        previous: Option<&Operation>,
    ) -> Result<(), StoreError> {
        self.txn
            .open_table(OPERATIONS)?
            .insert(op.id.0, codec::encode_operation(op).as_slice())?;
        let mut open = self.txn.open_table(OPEN_OPERATIONS)?;
        if let Some(prev) = previous.filter(|p| !p.state.is_terminal()) {
            if op.state.is_terminal() || prev.expires_at != op.expires_at {
                open.remove((prev.expires_at.millis(), prev.id.0))?;
            }
        }
        if !op.state.is_terminal() {
            open.insert((op.expires_at.millis(), op.id.0), ())?;
        }
        Ok(())
    }

    /// The first and the last `each` messages of `operation`, oldest first (all of them when
    /// there are at most `2 * each`), as seen by this transaction.
    pub fn message_ends(&self, operation: Id, each: usize) -> Result<Vec<Message>, StoreError> {
        let blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let runs = self.txn.open_table(OPERATION_BLOCKS)?;
        let all = (0, u128::MAX);
        let mut out = Vec::new();
        messages::scan(&blocks, &runs, operation.0, all, false, |m| {
            out.push(m);
            Ok(out.len() < each)
        })?;
        let Some(last_head) = out.last().map(|m| m.id.0) else {
            return Ok(out);
        };
        if out.len() < each {
            return Ok(out);
        }
        let mut tail = Vec::new();
        let after_head = (last_head + 1, u128::MAX);
        messages::scan(&blocks, &runs, operation.0, after_head, true, |m| {
            tail.push(m);
            Ok(tail.len() < each)
        })?;
        tail.reverse();
        out.extend(tail);
        Ok(out)
    }

    /// The ids of `operation`'s messages in `[low, high]`, in id order.
    pub fn message_ids(&self, operation: Id, low: u128, high: u128) -> Result<Vec<Id>, StoreError> {
        let blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let runs = self.txn.open_table(OPERATION_BLOCKS)?;
        let mut ids = Vec::new();
        messages::scan(&blocks, &runs, operation.0, (low, high), false, |m| {
            ids.push(m.id);
            Ok(true)
        })?;
        Ok(ids)
    }

    /// The sequence number of the newest stored message (0 when there is none).
    pub fn last_message_seq(&self) -> Result<u64, StoreError> {
        messages::last_seq(&self.txn.open_table(MESSAGE_BLOCKS)?)
    }

    /// The largest id stored (operations, outbox jobs, the newest block's messages), for the
    /// writer to count on from; on an empty store, random bits below the time part, so that
    /// separate data dirs do not count through the same ids.
    pub fn last_id(&self) -> Result<u128, StoreError> {
        let last_key = |table| -> Result<u128, StoreError> {
            let table = self.txn.open_table(table)?;
            let last = table.last()?.map_or(0, |(k, _)| k.value());
            Ok(last)
        };
        let mut last = last_key(OPERATIONS)?.max(last_key(OUTBOX)?);
        let blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        if let Some((key, _)) = blocks.last()? {
            let block = messages::read_block(&blocks, key.value())?;
            last = (0..block.len())
                .map(|row| block.id(row).0)
                .fold(last, u128::max);
        }
        if last == 0 {
            last = rand::random::<u128>() & ((1 << 79) - 1);
        }
        Ok(last)
    }

    /// Stores messages under their sequence numbers (ascending, after every stored one).
    pub fn append_messages(&mut self, rows: &[(u64, &Message)]) -> Result<(), StoreError> {
        let mut blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let mut runs = self.txn.open_table(OPERATION_BLOCKS)?;
        messages::append(&mut blocks, &mut runs, rows)
    }

    /// Removes every message of `operations`; returns how many.
    pub fn remove_messages_of(
        &mut self,
        operations: &std::collections::HashSet<u128>,
    ) -> Result<u64, StoreError> {
        let mut blocks = self.txn.open_table(MESSAGE_BLOCKS)?;
        let mut runs = self.txn.open_table(OPERATION_BLOCKS)?;
        messages::remove_operations(&mut blocks, &mut runs, operations)
    }

    pub fn last_feed_seq(&self) -> Result<u64, StoreError> {
        let table = self.txn.open_table(INDEX_FEED)?;
        let last = table.last()?.map(|(k, _)| k.value()).unwrap_or(0);
        Ok(last)
    }

    pub fn append_feed(&mut self, seq: u64, entry: &FeedEntry) -> Result<(), StoreError> {
        self.txn
            .open_table(INDEX_FEED)?
            .insert(seq, codec::encode_feed(entry).as_slice())?;
        Ok(())
    }

    /// Removes feed entries up to and including `seq`.
    pub fn trim_feed(&mut self, seq: u64) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(INDEX_FEED)?;
        table.retain_in(..=seq, |_, _| false)?;
        Ok(())
    }

    /// Ids of operations not in a terminal state whose deadline is before `now`, oldest first.
    pub fn overdue_operations(&self, now: Timestamp, limit: usize) -> Result<Vec<Id>, StoreError> {
        let table = self.txn.open_table(OPEN_OPERATIONS)?;
        let mut ids = Vec::new();
        for row in table.range((i64::MIN, 0)..(now.millis(), 0))?.take(limit) {
            ids.push(Id(row?.0.value().1));
        }
        Ok(ids)
    }

    pub fn idempotency(
        &self,
        environment: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let table = self.txn.open_table(IDEMPOTENCY)?;
        let value = table.get(idempotency_key(environment, key).as_str())?;
        value
            .map(|v| codec::decode_idempotency(v.value()))
            .transpose()
    }

    pub fn put_idempotency(
        &mut self,
        environment: &str,
        key: &str,
        record: &IdempotencyRecord,
    ) -> Result<(), StoreError> {
        let key = idempotency_key(environment, key);
        self.txn
            .open_table(IDEMPOTENCY)?
            .insert(key.as_str(), codec::encode_idempotency(record).as_slice())?;
        self.txn
            .open_table(IDEMPOTENCY_BY_OPERATION)?
            .insert(record.operation_id.0, key.as_str())?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = self.txn.open_table(META)?;
        let value = table.get(key)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    pub fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.txn.open_table(META)?.insert(key, value)?;
        Ok(())
    }

    /// Makes everything written in this transaction durable (fsync) before returning.
    pub fn commit(self) -> Result<(), StoreError> {
        self.txn.commit()?;
        Ok(())
    }

    /// Drops everything written in this transaction.
    pub fn abort(self) -> Result<(), StoreError> {
        self.txn.abort()?;
        Ok(())
    }
}

/// Copies every row of `table` from `read` into `write`.
fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    read: &redb::ReadTransaction,
    write: &redb::WriteTransaction,
    table: redb::TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let source = read.open_table(table)?;
    let mut target = write.open_table(table)?;
    let mut rows = 0;
    for row in source.iter()? {
        let (key, value) = row?;
        target.insert(key.value(), value.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// The smallest id created at or after `at`: a ULID's top 48 bits are its creation time in ms,
/// so every id below this one is older.
fn first_id_at(at: Timestamp) -> u128 {
    (at.millis().max(0) as u128) << 80
}

fn idempotency_key(environment: &str, key: &str) -> String {
    format!("{environment}\0{key}")
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::codec::tests::{sample_job, sample_operation};
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    fn message(op: Id, id: u128) -> Message {
        Message {
            id: Id(id),
            operation_id: op,
            kind: MessageType::Log,
            level: Level::Info,
            source: Source::User,
            message: format!("message {id}"),
            request: None,
            response: None,
            duration_ms: None,
            retry: None,
            error: None,
            meta: None,
            created_at: Timestamp(id as i64),
        }
    }

    #[test]
    fn message_pages_read_in_both_directions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let op = Id(7);
        let mut tx = store.write().unwrap();
        let all: Vec<Message> = (1..=10).map(|i| message(op, i)).collect();
        let other = message(Id(8), 5);
        let rows: Vec<(u64, &Message)> = (1..).zip(all.iter().chain([&other])).collect();
        tx.append_messages(&rows).unwrap();
        tx.commit().unwrap();
        let read = store.read().unwrap();
        let ids = |(page, more): (Vec<Message>, bool)| {
            (page.iter().map(|m| m.id.0).collect::<Vec<_>>(), more)
        };
        let page = |after: Option<u128>, before: Option<u128>, limit: usize| {
            ids(read
                .messages(
                    op,
                    MessageRange {
                        after: after.map(Id),
                        before: before.map(Id),
                        limit,
                    },
                )
                .unwrap())
        };
        assert_eq!(page(None, None, 3), (vec![1, 2, 3], true));
        assert_eq!(page(Some(3), None, 3), (vec![4, 5, 6], true));
        assert_eq!(page(Some(8), None, 3), (vec![9, 10], false));
        assert_eq!(page(None, Some(8), 3), (vec![5, 6, 7], true));
        assert_eq!(page(Some(2), Some(5), 10), (vec![3, 4], false));
        assert_eq!(page(Some(5), Some(2), 10), (vec![], false));
    }

    #[test]
    fn refuses_a_newer_format() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let mut tx = store.write().unwrap();
            tx.put_meta("format_version", &(FORMAT_VERSION + 1).to_le_bytes())
                .unwrap();
            tx.commit().unwrap();
        }
        let err = Store::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("newer opslog"), "{err}");
    }

    #[test]
    fn open_operations_follow_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut op = codec_sample();
        op.state = OpState::Running;
        let mut tx = store.write().unwrap();
        tx.put_operation(&op, None).unwrap();
        let later = op.expires_at.plus_millis(1);
        assert_eq!(tx.overdue_operations(later, 10).unwrap(), vec![op.id]);
        assert!(tx.overdue_operations(op.expires_at, 10).unwrap().is_empty());
        let mut ended = op.clone();
        ended.state = OpState::Success;
        tx.put_operation(&ended, Some(&op)).unwrap();
        assert!(tx.overdue_operations(later, 10).unwrap().is_empty());
        tx.commit().unwrap();
    }

    #[test]
    fn retention_removes_finished_jobs_and_their_attempts_but_keeps_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let at = |ms: i64, n: u128| first_id_at(Timestamp(ms)) | n;
        let job = |id: u128, status: DeliveryStatus| {
            let mut job = codec::tests::sample_job();
            job.id = Id(id);
            job.status = status;
            job.next_attempt_at = (status == DeliveryStatus::Pending).then_some(Timestamp(9_000));
            job
        };
        let old_delivered = job(at(1_000, 1), DeliveryStatus::Delivered);
        let old_pending = job(at(1_000, 2), DeliveryStatus::Pending);
        let old_failed = job(at(1_500, 3), DeliveryStatus::Failed);
        let new_delivered = job(at(5_000, 4), DeliveryStatus::Delivered);
        let mut tx = store.write().unwrap();
        for (job, attempts) in [
            (&old_delivered, 2),
            (&old_pending, 1),
            (&old_failed, 1),
            (&new_delivered, 1),
        ] {
            tx.put_job(job, None).unwrap();
            for number in 1..=attempts {
                let mut attempt = codec::tests::sample_attempt();
                attempt.number = number;
                tx.put_attempt(job.id, &attempt).unwrap();
            }
        }
        tx.commit().unwrap();
        let depth_before = store.read().unwrap().outbox_depth().unwrap();
        assert_eq!(depth_before.0[0], [1, 2, 1]);

        // A budget of one row scans one job per call and says where to go on.
        let mut tx = store.write().unwrap();
        let first = tx
            .remove_finished_jobs_before(Timestamp(2_000), |_| Timestamp(2_000), 0, 1)
            .unwrap();
        assert_eq!((first.jobs, first.attempts), (1, 2));
        assert_eq!(first.resume_from, Some(old_pending.id.0));
        let rest = tx
            .remove_finished_jobs_before(
                Timestamp(2_000),
                |_| Timestamp(2_000),
                old_pending.id.0,
                10,
            )
            .unwrap();
        assert_eq!((rest.jobs, rest.attempts, rest.resume_from), (1, 1, None));
        assert_eq!(tx.outbox_depth_change().0[0], [0, -1, -1]);
        tx.commit().unwrap();

        let read = store.read().unwrap();
        assert_eq!(read.job(old_delivered.id).unwrap(), None);
        assert_eq!(read.job(old_failed.id).unwrap(), None);
        assert!(read.attempts(old_delivered.id).unwrap().is_empty());
        assert_eq!(read.job(old_pending.id).unwrap(), Some(old_pending.clone()));
        assert_eq!(read.attempts(old_pending.id).unwrap().len(), 1);
        assert_eq!(read.job(new_delivered.id).unwrap(), Some(new_delivered));
        let due = read.due_jobs(Timestamp(10_000), None, 10).unwrap();
        assert_eq!(due.jobs, vec![((9_000, old_pending.id.0), old_pending)]);
        assert_eq!(read.outbox_depth().unwrap().0[0], [1, 1, 0]);
    }

    #[test]
    fn due_jobs_come_in_pages_that_resume_after_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tx = store.write().unwrap();
        // Due at 100, 100, 200, 300; and one at 900, not due yet at 500.
        for (id, at) in [(1, 100), (2, 100), (3, 200), (4, 300), (5, 900)] {
            let mut job = codec::tests::sample_job();
            job.id = Id(id);
            job.next_attempt_at = Some(Timestamp(at));
            tx.put_job(&job, None).unwrap();
        }
        tx.commit().unwrap();
        let read = store.read().unwrap();
        let keys = |due: &DueJobs| due.jobs.iter().map(|(key, _)| *key).collect::<Vec<_>>();

        let first = read.due_jobs(Timestamp(500), None, 2).unwrap();
        assert_eq!(keys(&first), [(100, 1), (100, 2)]);
        assert_eq!(first.jobs[1].1.id, Id(2));
        assert_eq!(first.more_after, Some((100, 2)));
        assert_eq!(first.next_due, Some(Timestamp(900)));
        let second = read.due_jobs(Timestamp(500), first.more_after, 2).unwrap();
        assert_eq!(keys(&second), [(200, 3), (300, 4)]);
        assert_eq!(
            second.more_after,
            Some((300, 4)),
            "a full page may have more"
        );
        let last = read.due_jobs(Timestamp(500), second.more_after, 2).unwrap();
        assert!(last.jobs.is_empty());
        assert_eq!(last.more_after, None, "the end of the due jobs");
        assert_eq!(last.next_due, Some(Timestamp(900)));

        // Resuming after a row in the middle of a page, and after a row past now.
        let middle = read.due_jobs(Timestamp(500), Some((100, 1)), 10).unwrap();
        assert_eq!(keys(&middle), [(100, 2), (200, 3), (300, 4)]);
        assert_eq!(middle.more_after, None);
        let past_now = read.due_jobs(Timestamp(250), Some((300, 4)), 10).unwrap();
        assert!(past_now.jobs.is_empty());
        assert_eq!(past_now.next_due, Some(Timestamp(300)));
    }

    fn codec_sample() -> Operation {
        codec::tests::sample_operation()
    }
}
