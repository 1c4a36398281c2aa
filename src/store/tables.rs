//! Every redb table of opslog, in one place, so the on-disk format can be read here alone.
//!
//! Keys are fixed-width integers (ids are ULIDs as `u128`, so key order is creation order); values
//! are records encoded by `store::codec` behind a format-version byte. Renaming a table or changing
//! a key type is a format change: bump `FORMAT_VERSION` and migrate in `store::open`.

use redb::TableDefinition;

/// The format this binary writes. `store::open` refuses a data dir written by a newer one.
/// 2: a `MESSAGES` row may be a compressed block of several messages (keyed by its first), which
/// format 1 binaries cannot read; a format 1 file is upgraded by writing the number (its rows are
/// all valid in format 2).
/// 3: messages move from `MESSAGES` (rows and blocks per operation) to `MESSAGE_BLOCKS` (blocks of
/// compressed columns in commit order, addressed by sequence number) and `OPERATION_BLOCKS`;
/// `store::open` converts a format 1 or 2 file on first start (`messages::convert_legacy`).
pub(crate) const FORMAT_VERSION: u32 = 3;

/// Server-wide facts: the format version and generated credentials. Key → small value.
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Operation id → encoded `Operation`.
pub(crate) const OPERATIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("operations");

/// Formats 1 and 2 only, read once to convert them: (operation id, message id) → encoded
/// `Message`, or (operation id, first message id) → a block of the operation's messages.
pub(crate) const MESSAGES: TableDefinition<(u128, u128), &[u8]> = TableDefinition::new("messages");

/// Sequence number → a block of messages (`store::block`): messages of any operations in the order
/// they were stored, each with its own sequence number at or after the key and before the next
/// block's key. The search index names a message by its sequence number.
pub(crate) const MESSAGE_BLOCKS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("message_blocks");

/// (operation id, smallest id of its messages in the block) → varints: the block's key, how many
/// of the operation's messages it holds, their largest id minus the smallest. One row per
/// operation per block: how an operation's messages are found in id order.
pub(crate) const OPERATION_BLOCKS: TableDefinition<(u128, u128), &[u8]> =
    TableDefinition::new("operation_blocks");

/// (expires_at in ms, operation id) for operations not yet in a terminal state: the sweeper's
/// work list. A row leaves when its operation ends.
pub(crate) const OPEN_OPERATIONS: TableDefinition<(i64, u128), ()> =
    TableDefinition::new("open_operations");

/// "<environment>\0<Idempotency-Key>" → encoded idempotency record (operation id + body hash).
pub(crate) const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");

/// (environment, section) → encoded settings section: `webhooks` (`settings::StoredWebhooks`),
/// `ingress` (`settings::StoredIngress`), `otel` (`settings::StoredOtel`), `alerts`
/// (`model::alert::StoredAlerts`), `notifiers` (`model::notifier::Notifiers`). A new section is a new
/// row, so adding one changes no existing record.
pub(crate) const SETTINGS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("settings");

/// (environment, view id) → encoded `model::view::StoredView`: the views saved through the API
/// (the built-in ones are not stored). A binary from before views never opens this table.
pub(crate) const VIEWS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("views");

/// (environment, alert rule key) → encoded `model::alert::AlertState`: whether the rule is firing.
/// Written in the same transaction as the `alert.*` deliveries a change queues, so a restart
/// never fires a rule twice.
pub(crate) const ALERT_STATES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("alert_states");

/// Job id → encoded `model::job::Job`: every delivery (and later every export), in creation order.
/// Written in the same transaction as the operation change that caused it.
pub(crate) const OUTBOX: TableDefinition<u128, &[u8]> = TableDefinition::new("outbox");

/// (next attempt at in ms, job id) for pending jobs: the dispatcher's work list. A row leaves
/// when its job is delivered or failed, and moves when an attempt reschedules it.
pub(crate) const OUTBOX_DUE: TableDefinition<(i64, u128), ()> = TableDefinition::new("outbox_due");

/// (job id, attempt number) → encoded `model::job::Attempt`: every attempt of a job, in order.
pub(crate) const OUTBOX_ATTEMPTS: TableDefinition<(u128, u32), &[u8]> =
    TableDefinition::new("outbox_attempts");
/// Commit sequence number → encoded `FeedEntry`: what each write group changed that the search
/// index must (re)index. The index records the last sequence it committed; entries up to it are
/// trimmed by the writer, except the newest, which keeps the sequence going across restarts.
pub(crate) const INDEX_FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("index_feed");

/// Operation id → the idempotency table key that names it, so retention can remove both.
pub(crate) const IDEMPOTENCY_BY_OPERATION: TableDefinition<u128, &str> =
    TableDefinition::new("idempotency_by_operation");

/// Erasure jobs: job id → `EraseJob` (`codec::encode_erase_job`). Added without a format change:
/// a binary that does not know the table leaves it alone.
pub(crate) const ERASE_JOBS: TableDefinition<u128, &[u8]> = TableDefinition::new("erase_jobs");

/// The audit log: record id (a ULID: time order) → `model::audit::AuditRecord`
/// (`codec::encode_audit_record`). Added without a format change: a binary that does not know
/// the table leaves it alone.
pub(crate) const AUDIT: TableDefinition<u128, &[u8]> = TableDefinition::new("audit");

/// A row as its key's and its value's bytes.
#[cfg(test)]
pub(crate) type RawRow = (Vec<u8>, Vec<u8>);
/// Every table's rows, by table name.
#[cfg(test)]
pub(crate) type Dump = std::collections::BTreeMap<String, Vec<RawRow>>;

/// Every table as raw key and value bytes, by name: a whole picture of what is stored, which the
/// write commands' tests compare before and after a refused command. Panics on a table this list
/// does not name, so a new table cannot be left out of the comparison.
#[cfg(test)]
pub(crate) fn dump(txn: &redb::ReadTransaction) -> Dump {
    use redb::{Key, ReadableTable, TableHandle, Value};

    fn rows<K: Key + 'static, V: Value + 'static>(
        txn: &redb::ReadTransaction,
        table: TableDefinition<K, V>,
    ) -> (String, Vec<RawRow>) {
        let open = txn
            .open_table(table)
            .expect("every table is created at open");
        let rows = open
            .iter()
            .expect("reading a table")
            .map(|row| {
                let (key, value) = row.expect("reading a row");
                let (key, value) = (key.value(), value.value());
                let key = K::as_bytes(&key).as_ref().to_vec();
                let value = V::as_bytes(&value).as_ref().to_vec();
                (key, value)
            })
            .collect();
        (table.name().to_owned(), rows)
    }

    let all = std::collections::BTreeMap::from([
        rows(txn, META),
        rows(txn, OPERATIONS),
        rows(txn, MESSAGE_BLOCKS),
        rows(txn, OPERATION_BLOCKS),
        rows(txn, OPEN_OPERATIONS),
        rows(txn, IDEMPOTENCY),
        rows(txn, SETTINGS),
        rows(txn, ALERT_STATES),
        rows(txn, VIEWS),
        rows(txn, OUTBOX),
        rows(txn, OUTBOX_DUE),
        rows(txn, OUTBOX_ATTEMPTS),
        rows(txn, INDEX_FEED),
        rows(txn, IDEMPOTENCY_BY_OPERATION),
        rows(txn, ERASE_JOBS),
        rows(txn, AUDIT),
    ]);
    for table in txn.list_tables().expect("listing tables") {
        assert!(
            all.contains_key(table.name()),
            "table `{}` is missing from store::tables::dump",
            table.name()
        );
    }
    all
}
