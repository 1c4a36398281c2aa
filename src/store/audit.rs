//! The audit log's rows: appended by the write commands (`write::audit`), read newest first by
//! `GET /v1/audit`, removed by age by retention.

use redb::ReadableTable;

use super::tables::*;
use super::{codec, ReadTx, StoreError, WriteTx};
use crate::model::audit::{AuditAction, AuditRecord};
use crate::model::Id;

/// One page of audit records, newest first.
#[derive(Debug, Default)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Every record matching, in every page.
    pub total: u64,
    /// Matching records are left after this page.
    pub more: bool,
}

impl ReadTx {
    /// The records with ids in `[low, high]` whose action is among `actions` (any when empty),
    /// newest first: the page of those with ids below `before`, at most `limit`.
    pub fn audit_records(
        &self,
        (low, high): (u128, u128),
        actions: &[AuditAction],
        before: Option<Id>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        let table = self.txn.open_table(AUDIT)?;
        let mut page = AuditPage::default();
        for row in table.range(low..=high)?.rev() {
            let (key, value) = row?;
            let record = codec::decode_audit_record(value.value())?;
            if !actions.is_empty() && !actions.contains(&record.action) {
                continue;
            }
            page.total += 1;
            if before.is_some_and(|b| key.value() >= b.0) {
                continue;
            }
            if page.records.len() < limit {
                page.records.push(record);
            } else {
                page.more = true;
            }
        }
        Ok(page)
    }
}

impl WriteTx {
    pub fn put_audit(&mut self, record: &AuditRecord) -> Result<(), StoreError> {
        let mut table = self.txn.open_table(AUDIT)?;
        table.insert(record.id.0, codec::encode_audit_record(record).as_slice())?;
        Ok(())
    }

    /// Removes up to `budget` records with ids below `before` (the oldest first); returns how
    /// many it removed.
    pub fn remove_audit_before(&mut self, before: u128, budget: usize) -> Result<u64, StoreError> {
        let mut table = self.txn.open_table(AUDIT)?;
        let keys: Vec<u128> = table
            .range(..before)?
            .take(budget)
            .map(|row| row.map(|(key, _)| key.value()))
            .collect::<Result<_, _>>()?;
        for key in &keys {
            table.remove(key)?;
        }
        Ok(keys.len() as u64)
    }
}
