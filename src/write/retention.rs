//! Retention's commands: remove what is older than the cutoff (everywhere, or in one environment
//! with its own retention), or the oldest of all when the data dir is above `max_disk`; a bounded
//! amount per commit. Each removes through `store`'s one removal path (`store::remove`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::engine::{Check, Command, Tx, WriteError};
use crate::model::{Id, Removed, Timestamp};
use crate::store::{RemovedOperations, StoreError};

/// About the most records (operations + messages) one retention command removes, so one commit
/// stays short and writers are not held up.
pub const REMOVE_BUDGET: usize = 20_000;

/// Where each environment's retention ends at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Cutoffs {
    /// The oldest cutoff (the longest retention): everything created before it goes, whatever
    /// its environment.
    pub everywhere: Timestamp,
    /// For an environment that is not configured (any more).
    pub default: Timestamp,
    pub by_environment: BTreeMap<String, Timestamp>,
}

impl Cutoffs {
    pub fn at(
        now: Timestamp,
        default: Duration,
        environments: &BTreeMap<String, Duration>,
    ) -> Cutoffs {
        let before = |period: Duration| {
            now.plus_millis(-(i64::try_from(period.as_millis()).unwrap_or(i64::MAX)))
        };
        let by_environment: BTreeMap<String, Timestamp> = environments
            .iter()
            .map(|(name, period)| (name.clone(), before(*period)))
            .collect();
        let default = before(default);
        let everywhere = by_environment
            .values()
            .copied()
            .fold(default, Timestamp::min);
        Cutoffs {
            everywhere,
            default,
            by_environment,
        }
    }

    /// The cutoff of `environment`'s records.
    pub fn of(&self, environment: &str) -> Timestamp {
        self.by_environment
            .get(environment)
            .copied()
            .unwrap_or(self.default)
    }

    /// The newest cutoff: nothing created after it has expired anywhere.
    pub fn newest(&self) -> Timestamp {
        self.by_environment
            .values()
            .copied()
            .fold(self.default, Timestamp::max)
    }

    /// Environments whose cutoff is after `everywhere`: their expired operations between the
    /// two are found through the index.
    pub fn shorter(&self) -> impl Iterator<Item = (&String, Timestamp)> {
        self.by_environment
            .iter()
            .filter(|(_, cutoff)| **cutoff > self.everywhere)
            .map(|(name, cutoff)| (name, *cutoff))
    }
}

/// Removes operations created before `cutoffs.everywhere`, with everything that hangs on them,
/// and finished outbox jobs created before their environment's cutoff (looking from job id
/// `jobs_from` on).
pub struct RemoveExpired {
    pub cutoffs: Cutoffs,
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
        let cutoffs = &plan.cutoffs;
        let operations = tx
            .db
            .remove_created_before(cutoffs.everywhere, REMOVE_BUDGET)?;
        let jobs = tx.db.remove_finished_jobs_before(
            cutoffs.newest(),
            |environment| cutoffs.of(environment),
            plan.jobs_from,
            REMOVE_BUDGET,
        )?;
        let removed = Removed {
            jobs: jobs.jobs,
            attempts: jobs.attempts,
            jobs_resume_from: jobs.resume_from,
            ..removed(&operations)
        };
        tx.deps.metrics.record_removed(&removed);
        tx.removed_operations(operations.ids);
        Ok(removed)
    }
}

/// Removes, of `ids` (found in the search index), the operations of `environment` created
/// before `cutoff`: an environment whose retention is shorter than the others'. Each id is
/// checked against the store, so a stale hit removes nothing.
pub struct RemoveExpiredIn {
    pub environment: String,
    pub cutoff: Timestamp,
    pub ids: Vec<Id>,
}

impl Command for RemoveExpiredIn {
    type Reply = Removed;
    /// Never refused: the ids are only candidates, each checked when writing.
    type Plan = Self;

    fn check(self, _: &mut Check<'_>) -> Result<Self, WriteError> {
        Ok(self)
    }

    fn write(plan: Self, tx: &mut Tx<'_>) -> Result<Removed, StoreError> {
        let first_kept = Id(crate::store::id_range(Some(plan.cutoff), None).0);
        let operations = tx
            .db
            .remove_operations_where(&plan.ids, REMOVE_BUDGET, |op| {
                op.environment == plan.environment && op.id < first_kept
            })?;
        let removed = removed(&operations);
        tx.deps.metrics.record_removed(&removed);
        tx.removed_operations(operations.ids);
        Ok(removed)
    }
}

/// Removes the oldest operations of every environment until `bytes` of rows are gone (or about
/// `REMOVE_BUDGET` records): the data dir is above `retention.max_disk`.
pub struct RemoveOldest {
    pub bytes: u64,
}

impl Command for RemoveOldest {
    type Reply = Removed;
    /// Never refused: what is oldest is read when writing.
    type Plan = Self;

    fn check(self, _: &mut Check<'_>) -> Result<Self, WriteError> {
        Ok(self)
    }

    fn write(plan: Self, tx: &mut Tx<'_>) -> Result<Removed, StoreError> {
        let operations = tx.db.remove_oldest(plan.bytes, REMOVE_BUDGET)?;
        let removed = removed(&operations);
        tx.deps.metrics.record_disk_cap_removed(&removed);
        tx.removed_operations(operations.ids);
        Ok(removed)
    }
}

fn removed(operations: &RemovedOperations) -> Removed {
    Removed {
        operations: operations.ids.len() as u64,
        messages: operations.messages,
        bytes: operations.bytes,
        more_operations: operations.more,
        ..Removed::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_environment_has_its_cutoff_and_the_longest_applies_everywhere() {
        let day = Duration::from_secs(86_400);
        let environments =
            BTreeMap::from([("prod".to_owned(), 30 * day), ("dev".to_owned(), 3 * day)]);
        let now = Timestamp(100 * 86_400_000);
        let cutoffs = Cutoffs::at(now, 15 * day, &environments);
        assert_eq!(cutoffs.of("prod"), Timestamp(70 * 86_400_000));
        assert_eq!(cutoffs.of("dev"), Timestamp(97 * 86_400_000));
        assert_eq!(
            cutoffs.of("gone"),
            Timestamp(85 * 86_400_000),
            "the default"
        );
        assert_eq!(cutoffs.everywhere, Timestamp(70 * 86_400_000));
        assert_eq!(cutoffs.newest(), Timestamp(97 * 86_400_000));
        let shorter: Vec<_> = cutoffs.shorter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(shorter, ["dev"]);
        // All alike: the store scan does everything.
        let same = BTreeMap::from([("prod".to_owned(), 15 * day)]);
        assert_eq!(Cutoffs::at(now, 15 * day, &same).shorter().count(), 0);
    }
}
