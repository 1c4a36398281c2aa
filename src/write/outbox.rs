//! The outbox's bookkeeping commands: record attempts (and log each on the delivery's
//! `webhook:deliver` operation), and send deliveries or exports again from a fresh round.

use std::sync::Arc;

use super::effects::DeliveryCause;
use super::engine::{Check, Command, Tx, WriteError};
use crate::ingest::lifecycle;
use crate::model::job::{Attempt, Job, JobFamily};
use crate::model::{
    DeliveryStatus, ErrorInfo, Headers, HttpRequest, HttpResponse, Id, Json, Level, Message,
    MessageType, OpState, Retry, Source, Timestamp,
};
use crate::store::{id_range, StoreError};

/// The most deliveries one replay requeues; a larger window is replayed in several calls.
pub const REPLAY_LIMIT: usize = 10_000;

/// One attempt of an outbox job, as the dispatcher made it.
pub struct RecordedAttempt {
    pub job: Id,
    pub attempt: Attempt,
    /// The request headers, for the `http` message of a webhook's `webhook:deliver` operation
    /// (empty for exports).
    pub request_headers: Headers,
}

/// Logs the attempts of one request (one delivery, or one per job of a batched export) and
/// moves each job on, as its `attempt.outcome` says. A job erased while it was being sent is
/// gone: its attempt is dropped, the others are recorded.
pub struct RecordAttempts(pub Vec<RecordedAttempt>);

impl Command for RecordAttempts {
    type Reply = ();
    /// Each attempt with its job as stored.
    type Plan = Vec<(RecordedAttempt, Job)>;

    fn check(self, tx: &mut Check<'_>) -> Result<Self::Plan, WriteError> {
        let mut plan = Vec::new();
        for recorded in self.0 {
            if let Some(job) = tx.db.job(recorded.job)? {
                plan.push((recorded, job));
            }
        }
        Ok(plan)
    }

    fn write(plan: Self::Plan, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        for (recorded, stored) in plan {
            record_attempt(tx, recorded, stored)?;
        }
        Ok(())
    }
}

/// Which deliveries or exports to send again; jobs of the other family are not found.
#[derive(Debug, Clone)]
pub enum Requeue {
    /// One job: a pending one is made due now; a delivered or failed one starts a new round.
    One(JobFamily, Id),
    /// Every job of the family created in the window with this status (`delivered` or `failed`).
    Window {
        family: JobFamily,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        status: DeliveryStatus,
    },
}

/// Sends deliveries or exports again from a fresh start of the retry schedule.
pub struct RequeueJobs {
    pub environment: String,
    pub selection: Requeue,
}

impl Command for RequeueJobs {
    /// The jobs requeued, in id order.
    type Reply = Vec<Job>;
    /// The jobs to requeue, as stored.
    type Plan = Vec<Job>;

    fn check(self, tx: &mut Check<'_>) -> Result<Vec<Job>, WriteError> {
        let RequeueJobs {
            environment,
            selection,
        } = self;
        let (family, ids) = match selection {
            Requeue::One(family, id) => (family, vec![id]),
            Requeue::Window {
                family, from, to, ..
            } => {
                let (low, high) = id_range(from, to);
                (family, tx.db.job_ids(low, high, usize::MAX)?)
            }
        };
        let mut selected = Vec::new();
        for id in ids {
            let found = tx
                .db
                .job(id)?
                .filter(|j| j.environment == environment && j.kind.family() == family);
            let Some(job) = found else {
                if let Requeue::One(..) = selection {
                    return Err(match family {
                        JobFamily::Delivery => WriteError::DeliveryNotFound(id),
                        JobFamily::Export => WriteError::ExportNotFound(id),
                    });
                }
                continue;
            };
            if let Requeue::Window { status, .. } = selection {
                if job.status != status {
                    continue;
                }
                if selected.len() == REPLAY_LIMIT {
                    break;
                }
            }
            selected.push(job);
        }
        Ok(selected)
    }

    fn write(jobs: Vec<Job>, tx: &mut Tx<'_>) -> Result<Vec<Job>, StoreError> {
        jobs.into_iter().map(|job| requeue(tx, job)).collect()
    }
}

fn record_attempt(
    tx: &mut Tx<'_>,
    recorded: RecordedAttempt,
    stored: Job,
) -> Result<(), StoreError> {
    let RecordedAttempt {
        job: job_id,
        attempt,
        request_headers,
    } = recorded;
    let now = tx.now;
    let mut job = stored.clone();
    job.attempts = job.attempts.max(attempt.number);
    job.round_attempts += 1;
    job.updated_at = now;
    job.status = attempt.outcome;
    job.next_attempt_at = match attempt.outcome {
        DeliveryStatus::Pending => Some(attempt.retry_at.unwrap_or(now)),
        _ => None,
    };
    job.last_error = match (&attempt.error, attempt.status) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(s)) if !(200..300).contains(&s) => Some(format!("HTTP {s}")),
        _ => None,
    };
    tx.db.put_attempt(job_id, &attempt)?;
    tx.db.put_job(&job, Some(&stored))?;
    let metrics = &tx.deps.metrics;
    let counter = match (job.kind.family(), attempt.outcome) {
        (_, DeliveryStatus::Pending) => None,
        (JobFamily::Delivery, DeliveryStatus::Delivered) => Some(&metrics.deliveries_delivered),
        (JobFamily::Delivery, DeliveryStatus::Failed) => Some(&metrics.deliveries_failed),
        (JobFamily::Export, DeliveryStatus::Delivered) => Some(&metrics.exports_delivered),
        (JobFamily::Export, DeliveryStatus::Failed) => Some(&metrics.exports_failed),
    };
    if let Some(counter) = counter {
        counter.inc();
    }
    // Spans have no log operation: the job and its attempts are the whole record.
    let Some(webhook) = job.webhook() else {
        return Ok(());
    };
    log_attempt(
        tx,
        webhook.log_operation_id,
        &job,
        &attempt,
        request_headers,
    )
}

/// One `http` message per attempt on the delivery's `webhook:deliver` operation, which ends
/// with the delivery.
fn log_attempt(
    tx: &mut Tx<'_>,
    log_id: Id,
    job: &Job,
    attempt: &Attempt,
    request_headers: Headers,
) -> Result<(), StoreError> {
    let now = tx.now;
    let Some(entry) = tx.find_operation(log_id)? else {
        // The log is gone (retention): the delivery record still has the attempt.
        return Ok(());
    };
    let before = entry.current.clone();
    let mut operation = before.clone();
    let state = match attempt.outcome {
        DeliveryStatus::Pending => OpState::Running,
        DeliveryStatus::Delivered => OpState::Success,
        DeliveryStatus::Failed => OpState::Failed,
    };
    let error = (attempt.outcome == DeliveryStatus::Failed).then(|| ErrorInfo {
        name: Some("delivery_failed".into()),
        message: job
            .last_error
            .clone()
            .unwrap_or_else(|| "delivery failed".into()),
        kind: None,
        payload: None,
    });
    let response = attempt.status.map(|status| HttpResponse {
        status,
        headers: None,
        body: None,
    });
    // A long Retry-After may wait past the deadline set at creation: move it on.
    if let Some(retry_at) = attempt.retry_at {
        let needed = retry_at.plus_millis(3_600_000);
        if needed > operation.expires_at {
            operation.expires_at = needed;
        }
    }
    lifecycle::settle_delivery_log(&mut operation, state, error, response, now);
    if operation != before {
        entry.set(operation.clone());
    }
    let schedule_len = tx
        .deps
        .settings
        .get(&job.environment)
        .map_or(0, |s| s.webhooks.retry_schedule.len() as u32);
    let waited_ms = attempt
        .started_at
        .millis()
        .saturating_sub(job.created_at.millis())
        .max(0) as u64;
    // An email's attempt is an SMTP transaction; every other delivery is an HTTP POST.
    let method = match job.kind {
        crate::model::job::JobKind::Email(_) => "SMTP",
        _ => "POST",
    };
    let message = Message {
        id: tx.next_id(),
        operation_id: log_id,
        kind: MessageType::Http,
        level: if attempt.outcome == DeliveryStatus::Delivered {
            Level::Info
        } else {
            Level::Error
        },
        source: Source::System,
        message: match (attempt.status, &attempt.error) {
            (Some(status), _) => format!("{method} {} -> {status}", attempt.url),
            (None, Some(error)) => format!("{method} {} failed: {error}", attempt.url),
            (None, None) => format!("{method} {}", attempt.url),
        },
        request: Some(HttpRequest {
            method: method.into(),
            url: attempt.url.clone(),
            headers: Some(request_headers),
            body: None,
        }),
        response: attempt.status.map(|status| HttpResponse {
            status,
            headers: None,
            body: attempt
                .response_excerpt
                .as_ref()
                .map(|e| Json::from_value(&serde_json::Value::String(e.clone()))),
        }),
        duration_ms: Some(attempt.duration_ms),
        retry: Some(Retry {
            attempt: job.round_attempts,
            max: schedule_len.max(job.round_attempts),
            waited_ms,
        }),
        error: attempt.error.as_ref().map(|e| ErrorInfo {
            name: Some("delivery_error".into()),
            message: e.clone(),
            kind: None,
            payload: None,
        }),
        meta: attempt
            .retry_at
            .map(|at| Json::from_value(&serde_json::json!({ "next_attempt_at": at }))),
        created_at: attempt.started_at,
    };
    let message: Arc<[Message]> = Arc::new([message]);
    tx.export_messages(&job.environment, &message);
    tx.store_messages(message)?;
    if operation != before {
        let after = tx.checked_operation(log_id)?.current.clone();
        tx.operation_changed(Some(&before), &after)?;
    }
    Ok(())
}

/// Starts a new round for `job`: due now, the schedule from its start, a fresh log operation
/// if the last one ended. A pending job is only made due now.
fn requeue(tx: &mut Tx<'_>, stored: Job) -> Result<Job, StoreError> {
    let now = tx.now;
    let mut job = stored.clone();
    job.next_attempt_at = Some(now);
    job.updated_at = now;
    if job.status != DeliveryStatus::Pending {
        job.status = DeliveryStatus::Pending;
        job.round_attempts = 0;
        job.round_started_at = now;
        let settings = tx.deps.settings.get(&job.environment);
        let job_id = job.id;
        let Some(webhook) = job.webhook_mut() else {
            tx.db.put_job(&job, Some(&stored))?;
            tx.outbox_queued();
            return Ok(job);
        };
        let cause = tx
            .find_operation(webhook.operation_id)?
            .map(|entry| entry.current.clone());
        if let (Some(cause), Some(settings)) = (cause, settings) {
            let url = webhook.url.clone();
            let cause = DeliveryCause::of(&cause);
            let log = tx.delivery_log(job_id, &cause, webhook.event, &url, &settings, now);
            webhook.log_operation_id = log.id;
            tx.insert_operation(log);
        }
    }
    tx.db.put_job(&job, Some(&stored))?;
    tx.outbox_queued();
    Ok(job)
}
