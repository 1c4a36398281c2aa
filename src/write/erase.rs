//! Erasure's commands: record an erasure job, then carry it out a bounded step per command (the
//! outbox jobs carrying its operations, then the operations found through the index), each step
//! saving the job's progress in the same commit, so a restart resumes where it stood.
//! Operations and messages leave through `store`'s one removal path (`store::remove`).

use std::collections::HashSet;

use super::engine::{Check, Command, Tx, WriteError};
use super::retention::REMOVE_BUDGET;
use crate::model::audit::{AuditAction, AuditActor, AuditDraft};
use crate::model::erase::{EraseCounts, EraseJob, ErasePhase, EraseSelector};
use crate::model::{Id, Timestamp};
use crate::store::{id_range, StoreError};

/// Outbox jobs one step looks at.
pub const ERASE_JOB_SCAN: usize = 20_000;

/// Records an erasure of `selector`'s operations of `environment` created in `[from, to)` (`to`
/// at most now).
pub struct StartErase {
    pub environment: String,
    pub selector: EraseSelector,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

impl Command for StartErase {
    type Reply = EraseJob;
    /// Never refused: the request was checked by the API.
    type Plan = Self;

    fn check(self, _: &mut Check<'_>) -> Result<Self, WriteError> {
        Ok(self)
    }

    fn write(plan: Self, tx: &mut Tx<'_>) -> Result<EraseJob, StoreError> {
        let id = tx.next_id();
        let job = EraseJob {
            id,
            environment: plan.environment,
            selector: plan.selector,
            from: plan.from,
            to: plan.to.map_or(tx.now, |to| to.min(tx.now)),
            phase: ErasePhase::Outbox,
            outbox_from: 0,
            counts: EraseCounts::default(),
            created_at: tx.now,
            finished_at: None,
        };
        tx.db.put_erase_job(&job)?;
        Ok(job)
    }
}

/// One step of the erasure `job`; `ids` are candidates (from the index) for the operations phase.
pub struct EraseStep {
    pub job: Id,
    pub ids: Vec<Id>,
}

/// What a step did.
#[derive(Debug)]
pub struct Stepped {
    /// The job after the step.
    pub job: EraseJob,
    /// Candidates are left for another step (the budget ran out).
    pub more: bool,
}

impl Command for EraseStep {
    /// `None`: no such job, or it is done.
    type Reply = Option<Stepped>;
    type Plan = Option<(EraseJob, Vec<Id>)>;

    fn check(self, tx: &mut Check<'_>) -> Result<Self::Plan, WriteError> {
        let job = tx.db.erase_job(self.job)?;
        Ok(job
            .filter(|job| job.phase != ErasePhase::Done)
            .map(|job| (job, self.ids)))
    }

    fn write(plan: Self::Plan, tx: &mut Tx<'_>) -> Result<Option<Stepped>, StoreError> {
        let Some((mut job, ids)) = plan else {
            return Ok(None);
        };
        let more = match job.phase {
            ErasePhase::Outbox => {
                erase_outbox_step(tx, &mut job)?;
                false
            }
            ErasePhase::Operations if ids.is_empty() => {
                job.phase = ErasePhase::Done;
                job.finished_at = Some(tx.now);
                false
            }
            ErasePhase::Operations => erase_operations_step(tx, &mut job, &ids)?,
            ErasePhase::Done => false,
        };
        tx.db.put_erase_job(&job)?;
        if job.phase == ErasePhase::Done {
            // The audit log says what was erased by its selector and how much, never what.
            let mut draft = AuditDraft::new(
                AuditAction::ErasureFinish,
                AuditActor::system(),
                Some(job.environment.clone()),
            )
            .target(job.id.to_string());
            super::audit::describe_erasure(&job, &mut draft);
            draft.set("removed", job.counts);
            super::audit::append(tx, draft)?;
        }
        Ok(Some(Stepped { job, more }))
    }
}

/// Removes, of a bounded part of the outbox, the jobs carrying an operation the erasure covers,
/// with their attempts and delivery logs; moves on to the operations once the outbox is scanned.
fn erase_outbox_step(tx: &mut Tx<'_>, job: &mut EraseJob) -> Result<(), StoreError> {
    let erased = tx
        .db
        .remove_jobs_where(job.outbox_from, ERASE_JOB_SCAN, |db, outbox_job| {
            if outbox_job.environment != job.environment {
                return Ok(false);
            }
            let (operation, _) = outbox_job.operations();
            Ok(db.operation(operation)?.is_some_and(|op| job.covers(&op)))
        })?;
    count_jobs(job, erased.jobs, erased.attempts);
    remove_logs(tx, job, erased.log_operations)?;
    match erased.resume_from {
        Some(from) => job.outbox_from = from,
        None => job.phase = ErasePhase::Operations,
    }
    Ok(())
}

/// Removes, of `ids`, the operations the erasure covers (each checked against the store, so a
/// stale index hit removes nothing), and the outbox jobs queued for them since the outbox scan.
fn erase_operations_step(
    tx: &mut Tx<'_>,
    job: &mut EraseJob,
    ids: &[Id],
) -> Result<bool, StoreError> {
    let removed = tx
        .db
        .remove_operations_where(ids, REMOVE_BUDGET, |op| job.covers(op))?;
    job.counts.operations += removed.ids.len() as u64;
    job.counts.messages += removed.messages;
    let gone: HashSet<Id> = removed.ids.iter().copied().collect();
    tx.removed_operations(removed.ids);
    if !gone.is_empty() {
        // Jobs queued while the erasure ran, after the outbox scan passed them.
        let since = id_range(Some(job.created_at), None).0;
        let erased = tx
            .db
            .remove_jobs_where(since, usize::MAX, |_, outbox_job| {
                Ok(gone.contains(&outbox_job.operations().0))
            })?;
        count_jobs(job, erased.jobs, erased.attempts);
        remove_logs(tx, job, erased.log_operations)?;
    }
    Ok(removed.more)
}

fn count_jobs(job: &mut EraseJob, jobs: u64, attempts: u64) {
    job.counts.outbox_jobs += jobs;
    job.counts.attempts += attempts;
}

/// Removes the delivery log operations of removed deliveries: they describe the erased data.
fn remove_logs(tx: &mut Tx<'_>, job: &mut EraseJob, logs: Vec<Id>) -> Result<(), StoreError> {
    if logs.is_empty() {
        return Ok(());
    }
    let removed = tx
        .db
        .remove_operations_where(&logs, usize::MAX, |op| op.environment == job.environment)?;
    job.counts.operations += removed.ids.len() as u64;
    job.counts.messages += removed.messages;
    tx.removed_operations(removed.ids);
    Ok(())
}
