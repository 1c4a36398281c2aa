//! Retention's command: removes what is older than the cutoff, a bounded amount per commit.

use super::engine::{Check, Command, Tx, WriteError};
use crate::model::{Removed, Timestamp};
use crate::store::StoreError;

/// About the most records (operations + messages) one retention command removes, so one commit
/// stays short and writers are not held up.
const REMOVE_BUDGET: usize = 20_000;

/// Removes operations created before `cutoff`, with everything that hangs on them, and finished
/// outbox jobs created before it (looking from job id `jobs_from` on).
pub struct RemoveExpired {
    pub cutoff: Timestamp,
    pub jobs_from: u128,
}

impl Command for RemoveExpired {
    type Reply = Removed;
    /// Never refused: what expired is read when writing.
    type Plan = Self;

    fn check(self, _: &mut Check<'_>) -> Result<Self, WriteError> {
        Ok(self)
    }

    fn write(plan: Self, tx: &mut Tx<'_>) -> Result<Removed, StoreError> {
        let RemoveExpired { cutoff, jobs_from } = plan;
        let operations = tx.db.remove_created_before(cutoff, REMOVE_BUDGET)?;
        let jobs = tx
            .db
            .remove_finished_jobs_before(cutoff, jobs_from, REMOVE_BUDGET)?;
        let removed = Removed {
            operations: operations.ids.len() as u64,
            messages: operations.messages,
            jobs: jobs.jobs,
            attempts: jobs.attempts,
            more_operations: operations.more,
            jobs_resume_from: jobs.resume_from,
        };
        tx.deps.metrics.record_removed(&removed);
        tx.removed_operations(operations.ids);
        Ok(removed)
    }
}
