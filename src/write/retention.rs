//! Retention's command: removes what is older than the cutoff, a bounded amount per commit.

use super::engine::{Command, Tx, WriteError};
use crate::model::{Removed, Timestamp};

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

    fn apply(self, tx: &mut Tx<'_>) -> Result<Removed, WriteError> {
        let operations = tx.db.remove_created_before(self.cutoff, REMOVE_BUDGET)?;
        let jobs = tx
            .db
            .remove_finished_jobs_before(self.cutoff, self.jobs_from, REMOVE_BUDGET)?;
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
