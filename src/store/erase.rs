//! Erasure jobs' rows, and the outbox side of an erasure: jobs (with their attempts and due rows)
//! whose operation an erasure covers. Operations and messages leave through `remove`.

use redb::ReadableTable;

use super::tables::*;
use super::{codec, ReadTx, StoreError, WriteTx};
use crate::model::erase::{EraseJob, ErasePhase};
use crate::model::job::Job;
use crate::model::{DeliveryStatus, Id};

/// What `WriteTx::remove_jobs_where` removed.
#[derive(Debug, Default)]
pub struct ErasedJobs {
    pub jobs: u64,
    pub attempts: u64,
    /// The delivery log operations (`webhook:deliver`) of the removed jobs.
    pub log_operations: Vec<Id>,
    /// The scan stopped at its budget: the next call continues from this job id.
    pub resume_from: Option<u128>,
}

impl ReadTx {
    pub fn erase_job(&self, id: Id) -> Result<Option<EraseJob>, StoreError> {
        let table = self.txn.open_table(ERASE_JOBS)?;
        let value = table.get(id.0)?;
        value
            .map(|v| codec::decode_erase_job(v.value()))
            .transpose()
    }

    /// Erasure jobs, newest first, those with ids below `before` only, at most `limit`.
    pub fn erase_jobs(&self, before: u128, limit: usize) -> Result<Vec<EraseJob>, StoreError> {
        let table = self.txn.open_table(ERASE_JOBS)?;
        let mut jobs = Vec::new();
        for row in table.range(..before)?.rev().take(limit) {
            jobs.push(codec::decode_erase_job(row?.1.value())?);
        }
        Ok(jobs)
    }

    /// Erasure jobs not done yet, oldest first: what a start resumes.
    pub fn unfinished_erase_jobs(&self) -> Result<Vec<EraseJob>, StoreError> {
        let table = self.txn.open_table(ERASE_JOBS)?;
        let mut jobs = Vec::new();
        for row in table.iter()? {
            let job = codec::decode_erase_job(row?.1.value())?;
            if job.phase != ErasePhase::Done {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }
}

impl WriteTx {
    pub fn erase_job(&self, id: Id) -> Result<Option<EraseJob>, StoreError> {
        let table = self.txn.open_table(ERASE_JOBS)?;
        let value = table.get(id.0)?;
        value
            .map(|v| codec::decode_erase_job(v.value()))
            .transpose()
    }

    pub fn put_erase_job(&mut self, job: &EraseJob) -> Result<(), StoreError> {
        self.txn
            .open_table(ERASE_JOBS)?
            .insert(job.id.0, codec::encode_erase_job(job).as_slice())?;
        Ok(())
    }

    /// Removes the outbox jobs with ids in `[from, ..)` for which `remove(self, job)` holds,
    /// with their attempts and due rows, looking at about `budget` jobs.
    pub fn remove_jobs_where(
        &mut self,
        from: u128,
        budget: usize,
        mut remove: impl FnMut(&WriteTx, &Job) -> Result<bool, StoreError>,
    ) -> Result<ErasedJobs, StoreError> {
        let mut erased = ErasedJobs::default();
        let mut chosen = Vec::new();
        {
            let jobs = self.txn.open_table(OUTBOX)?;
            for (scanned, row) in jobs.range(from..)?.enumerate() {
                let (id, value) = row?;
                if scanned >= budget {
                    erased.resume_from = Some(id.value());
                    break;
                }
                let job = codec::decode_job(value.value())?;
                if remove(self, &job)? {
                    chosen.push(job);
                }
            }
        }
        for job in chosen {
            erased.attempts += self.remove_job(&job)?;
            erased.jobs += 1;
            erased.log_operations.extend(job.operations().1);
        }
        Ok(erased)
    }

    /// Removes `job` with its attempts and its due row; answers how many attempts went. The one
    /// way a job leaves the outbox.
    pub(super) fn remove_job(&mut self, job: &Job) -> Result<u64, StoreError> {
        let mut gone = 0;
        self.txn.open_table(OUTBOX_ATTEMPTS)?.retain_in(
            (job.id.0, 0)..=(job.id.0, u32::MAX),
            |_, _| {
                gone += 1;
                false
            },
        )?;
        if let (DeliveryStatus::Pending, Some(at)) = (job.status, job.next_attempt_at) {
            self.txn
                .open_table(OUTBOX_DUE)?
                .remove((at.millis(), job.id.0))?;
        }
        self.txn.open_table(OUTBOX)?.remove(job.id.0)?;
        self.outbox_depth.count(job, -1);
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::sample_job;
    use crate::store::Store;

    #[test]
    fn removing_a_pending_job_takes_its_attempts_and_due_row_along() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tx = store.write().unwrap();
        let mut kept = sample_job();
        kept.id = Id(8);
        if let crate::model::job::JobKind::Webhook(w) = &mut kept.kind {
            w.operation_id = Id(50);
        }
        for job in [sample_job(), kept] {
            tx.put_job(&job, None).unwrap();
            tx.put_attempt(job.id, &crate::store::codec::tests::sample_attempt())
                .unwrap();
        }
        // A budget of one job stops after the first, saying where to go on.
        let none = tx.remove_jobs_where(0, 1, |_, _| Ok(false)).unwrap();
        assert_eq!((none.jobs, none.resume_from), (0, Some(8)));
        let erased = tx
            .remove_jobs_where(0, 100, |_, job| Ok(job.operations().0 == Id(42)))
            .unwrap();
        assert_eq!((erased.jobs, erased.attempts), (1, 1));
        assert_eq!(erased.log_operations, vec![Id(43)]);
        assert_eq!(erased.resume_from, None);
        // Two pending webhook jobs put, one removed.
        assert_eq!(tx.outbox_depth_change().0[0][0], 1);
        tx.commit().unwrap();
        let read = store.read().unwrap();
        assert!(read.job(Id(7)).unwrap().is_none());
        assert!(read.attempts(Id(7)).unwrap().is_empty());
        let due = read
            .due_jobs(crate::model::Timestamp(i64::MAX), None, 10)
            .unwrap();
        let due: Vec<Id> = due.jobs.iter().map(|(_, job)| job.id).collect();
        assert_eq!(due, vec![Id(8)], "only the kept job is due");
    }
}
