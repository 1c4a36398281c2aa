//! The outbox's tables: jobs, their attempts and the due list, read by the dispatcher and the
//! API and written by the writer. Every change to a job goes through `put_job`, which keeps the
//! due list and the depth counts in step.

use redb::ReadableTable;

use super::codec;
use super::tables::*;
use super::{first_id_at, ReadTx, StoreError, WriteTx};
use crate::model::job::{Attempt, Job, OutboxDepth};
use crate::model::{DeliveryStatus, Id, Timestamp};

/// A row of the due list: (next attempt at in ms, job id). Rows sort in due order.
pub type DueKey = (i64, u128);

/// A page of jobs due now, in due order, and when the next one after now is due.
pub struct DueJobs {
    /// Each job with its due-list row, to resume a later page after.
    pub jobs: Vec<(DueKey, Job)>,
    pub next_due: Option<Timestamp>,
    /// Set when the page read all `limit` rows: the last row read, after which more jobs may be
    /// due.
    pub more_after: Option<DueKey>,
}

/// What `WriteTx::remove_finished_jobs_before` removed.
#[derive(Debug, Default)]
pub struct RemovedJobs {
    pub jobs: u64,
    pub attempts: u64,
    scanned: usize,
    /// The job id to continue from: the scan stopped at its budget.
    pub resume_from: Option<u128>,
}

impl ReadTx {
    /// Up to `limit` pending jobs due at `now`, oldest due first, from the front of the due list
    /// or after the row `after`, and the due time of the first job after `now`.
    pub fn due_jobs(
        &self,
        now: Timestamp,
        after: Option<DueKey>,
        limit: usize,
    ) -> Result<DueJobs, StoreError> {
        use std::ops::Bound::{Excluded, Included, Unbounded};

        let due = self.txn.open_table(OUTBOX_DUE)?;
        let jobs_table = self.txn.open_table(OUTBOX)?;
        let end: DueKey = (now.millis(), u128::MAX);
        let rows = match after {
            // Nothing is due after a row past now (the clock went back).
            Some(after) if after >= end => None,
            Some(after) => Some(due.range::<DueKey>((Excluded(after), Included(end)))?),
            None => Some(due.range::<DueKey>(..=end)?),
        };
        let mut jobs = Vec::new();
        let (mut rows_read, mut last) = (0, None);
        for row in rows.into_iter().flatten().take(limit) {
            let key = row?.0.value();
            (rows_read, last) = (rows_read + 1, Some(key));
            if let Some(job) = jobs_table.get(key.1)? {
                jobs.push((key, codec::decode_job(job.value())?));
            }
        }
        let next_due = due
            .range::<DueKey>((Excluded(end), Unbounded))?
            .next()
            .transpose()?
            .map(|(key, _)| Timestamp(key.value().0));
        Ok(DueJobs {
            jobs,
            next_due,
            more_after: last.filter(|_| rows_read == limit),
        })
    }

    pub fn job(&self, id: Id) -> Result<Option<Job>, StoreError> {
        let table = self.txn.open_table(OUTBOX)?;
        let value = table.get(id.0)?;
        value.map(|v| codec::decode_job(v.value())).transpose()
    }

    /// Every attempt of a job, in order.
    pub fn attempts(&self, job: Id) -> Result<Vec<Attempt>, StoreError> {
        let table = self.txn.open_table(OUTBOX_ATTEMPTS)?;
        let mut out = Vec::new();
        for row in table.range((job.0, 0)..=(job.0, u32::MAX))? {
            out.push(codec::decode_attempt(row?.1.value())?);
        }
        Ok(out)
    }

    /// A job's latest attempt, if any.
    pub fn last_attempt(&self, job: Id) -> Result<Option<Attempt>, StoreError> {
        let table = self.txn.open_table(OUTBOX_ATTEMPTS)?;
        let last = table.range((job.0, 0)..=(job.0, u32::MAX))?.next_back();
        last.map(|row| codec::decode_attempt(row?.1.value()))
            .transpose()
    }

    /// Outbox rows per kind and status, counted by reading every job (once, at start-up).
    pub fn outbox_depth(&self) -> Result<OutboxDepth, StoreError> {
        let mut depth = OutboxDepth::default();
        for row in self.txn.open_table(OUTBOX)?.iter()? {
            depth.count(&codec::decode_job(row?.1.value())?, 1);
        }
        Ok(depth)
    }

    /// Visits jobs with ids in `[low, high]`, newest first, until `visit` returns false.
    pub fn scan_jobs_newest_first(
        &self,
        low: u128,
        high: u128,
        mut visit: impl FnMut(Job) -> bool,
    ) -> Result<(), StoreError> {
        let table = self.txn.open_table(OUTBOX)?;
        for row in table.range(low..=high)?.rev() {
            if !visit(codec::decode_job(row?.1.value())?) {
                break;
            }
        }
        Ok(())
    }
}

impl WriteTx {
    /// Removes finished (delivered or failed) outbox jobs created before their environment's
    /// cutoff (`cutoff_of`), with their attempts, looking at jobs created before `newest` (the
    /// latest cutoff) from id `from` on, at most about `budget` rows. A pending job stays
    /// whatever its age: it is still owed to its receiver. `resume_from` says where the next
    /// call continues when the scan stopped early.
    pub fn remove_finished_jobs_before(
        &mut self,
        newest: Timestamp,
        cutoff_of: impl Fn(&str) -> Timestamp,
        from: u128,
        budget: usize,
    ) -> Result<RemovedJobs, StoreError> {
        let scan_to = first_id_at(newest);
        let mut removed = RemovedJobs::default();
        if from >= scan_to {
            return Ok(removed);
        }
        let jobs = self.txn.open_table(OUTBOX)?;
        let mut finished = Vec::new();
        for row in jobs.range(from..scan_to)? {
            let (id, value) = row?;
            if removed.scanned >= budget {
                removed.resume_from = Some(id.value());
                break;
            }
            removed.scanned += 1;
            let job = codec::decode_job(value.value())?;
            let expired = job.id.0 < first_id_at(cutoff_of(&job.environment));
            if job.status != DeliveryStatus::Pending && expired {
                finished.push(job);
            }
        }
        drop(jobs);
        for job in finished {
            removed.attempts += self.remove_job(&job)?;
            removed.jobs += 1;
        }
        Ok(removed)
    }

    pub fn job(&self, id: Id) -> Result<Option<Job>, StoreError> {
        let table = self.txn.open_table(OUTBOX)?;
        let value = table.get(id.0)?;
        value.map(|v| codec::decode_job(v.value())).transpose()
    }

    /// Stores `job`, keeping the due list in step with its status and next attempt time.
    /// `previous` is the stored version it replaces, if any.
    pub fn put_job(&mut self, job: &Job, previous: Option<&Job>) -> Result<(), StoreError> {
        self.txn
            .open_table(OUTBOX)?
            .insert(job.id.0, codec::encode_job(job).as_slice())?;
        if let Some(previous) = previous {
            self.outbox_depth.count(previous, -1);
        }
        self.outbox_depth.count(job, 1);
        let mut due = self.txn.open_table(OUTBOX_DUE)?;
        if let Some(at) = previous.and_then(due_at) {
            due.remove((at.millis(), job.id.0))?;
        }
        if let Some(at) = due_at(job) {
            due.insert((at.millis(), job.id.0), ())?;
        }
        Ok(())
    }

    pub fn put_attempt(&mut self, job: Id, attempt: &Attempt) -> Result<(), StoreError> {
        self.txn.open_table(OUTBOX_ATTEMPTS)?.insert(
            (job.0, attempt.number),
            codec::encode_attempt(attempt).as_slice(),
        )?;
        Ok(())
    }

    /// Ids of jobs created in `[low, high]`, oldest first, at most `limit`.
    pub fn job_ids(&self, low: u128, high: u128, limit: usize) -> Result<Vec<Id>, StoreError> {
        let table = self.txn.open_table(OUTBOX)?;
        let mut ids = Vec::new();
        for row in table.range(low..=high)?.take(limit) {
            ids.push(Id(row?.0.value()));
        }
        Ok(ids)
    }

    /// How this transaction changed the outbox's rows per kind and status so far.
    pub fn outbox_depth_change(&self) -> OutboxDepth {
        self.outbox_depth
    }
}

/// When a job is due, if it is pending.
fn due_at(job: &Job) -> Option<Timestamp> {
    match job.status {
        DeliveryStatus::Pending => job.next_attempt_at,
        _ => None,
    }
}
