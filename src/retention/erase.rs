//! Erasure: carries out the stored erasure jobs, one at a time, a bounded step per write command
//! (so ingest keeps being acknowledged meanwhile): first the outbox jobs carrying the covered
//! operations, then the operations themselves, found through the search index once it has taken
//! in everything written before the job (each checked against the store when removed). A job's
//! progress is saved with each step: a start resumes the unfinished ones.
//!
//! Must not: remove anything itself (`write::EraseStep` does, through `store::remove`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::index::{Bound, Filters, IndexError, Page, SearchIndex};
use crate::metrics::Metrics;
use crate::model::erase::{EraseJob, ErasePhase, EraseSelector};
use crate::model::Id;
use crate::store::Store;
use crate::write::{EraseStep, Writer};

/// Operation ids taken from the index per step.
const IDS_PER_STEP: usize = 1_000;
/// How often the eraser looks whether the index has caught up, or is rebuilt.
const INDEX_POLL: Duration = Duration::from_millis(20);

/// Where new erasure jobs are announced, and how their progress is watched.
#[derive(Clone)]
pub struct Erasures {
    queue: mpsc::UnboundedSender<Id>,
    /// Bumped after every step of any job.
    progress: watch::Receiver<u64>,
}

impl Erasures {
    /// Hands a stored job to the eraser.
    pub fn announce(&self, job: Id) {
        let _ = self.queue.send(job);
    }

    /// A receiver that sees the next step of any job.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.progress.clone()
    }
}

/// What the eraser works with.
pub struct Eraser {
    pub writer: Writer,
    pub store: Arc<Store>,
    pub index: Arc<SearchIndex>,
    pub metrics: Arc<Metrics>,
}

/// The handle to give the API, and the task to run (`run`).
pub fn channel() -> (Erasures, Queue) {
    let (queue, announced) = mpsc::unbounded_channel();
    let (progress_tx, progress) = watch::channel(0);
    (
        Erasures { queue, progress },
        Queue {
            announced,
            progress: progress_tx,
        },
    )
}

/// The eraser's side of `Erasures`.
pub struct Queue {
    announced: mpsc::UnboundedReceiver<Id>,
    progress: watch::Sender<u64>,
}

/// Resumes the unfinished jobs, then carries out each announced one, until `stop`.
pub async fn run(eraser: Eraser, mut queue: Queue, stop: CancellationToken) {
    let store = eraser.store.clone();
    let unfinished =
        tokio::task::spawn_blocking(move || store.read()?.unfinished_erase_jobs()).await;
    match unfinished {
        Ok(Ok(jobs)) => {
            for job in jobs {
                tracing::info!(erasure = %job.id, "resuming an erasure");
                carry_out(&eraser, &queue.progress, job.id, &stop).await;
            }
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot read the unfinished erasures"),
        Err(e) => tracing::error!(error = %e, "cannot read the unfinished erasures"),
    }
    loop {
        let job = tokio::select! {
            job = queue.announced.recv() => job,
            _ = stop.cancelled() => return,
        };
        let Some(job) = job else { return };
        carry_out(&eraser, &queue.progress, job, &stop).await;
    }
}

/// Carries out job `id` to its end (or until `stop`: the next start resumes it).
async fn carry_out(
    eraser: &Eraser,
    progress: &watch::Sender<u64>,
    id: Id,
    stop: &CancellationToken,
) {
    // Everything written before now must be in the index before it is asked.
    let written = eraser.metrics.feed_seq.load(Ordering::Acquire);
    let store = eraser.store.clone();
    let stored = tokio::task::spawn_blocking(move || store.read()?.erase_job(id)).await;
    let mut job = match stored {
        Ok(Ok(Some(job))) => job,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::error!(erasure = %id, error = %e, "cannot read the erasure");
            return;
        }
        Err(e) => {
            tracing::error!(erasure = %id, error = %e, "cannot read the erasure");
            return;
        }
    };
    while job.phase == ErasePhase::Outbox {
        if stop.is_cancelled() {
            return;
        }
        let Some(next) = step(eraser, progress, id, Vec::new()).await else {
            return;
        };
        job = next;
    }
    if job.phase == ErasePhase::Done || !wait_for_index(eraser, written, stop).await {
        return;
    }
    let mut after: Option<u128> = None;
    // The operations phase: a page of candidates per round, until the index has no more.
    loop {
        let hits = match candidates(eraser, &job, after).await {
            Ok(hits) => hits,
            Err(IndexError::Rebuilding(_)) => {
                tokio::select! {
                    _ = tokio::time::sleep(INDEX_POLL) => continue,
                    _ = stop.cancelled() => return,
                }
            }
            Err(e) => {
                tracing::warn!(erasure = %id, error = %e, "erasure search failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        if hits.is_empty() {
            // Finishes the job (an empty step in the operations phase).
            step(eraser, progress, id, Vec::new()).await;
            return;
        }
        after = hits.last().map(|id| id.0);
        loop {
            if stop.is_cancelled() {
                return;
            }
            let Some((job, more)) = step_more(eraser, progress, id, hits.clone()).await else {
                return;
            };
            if !more || job.phase != ErasePhase::Operations {
                break;
            }
        }
    }
}

/// Submits one step; `None` when the job is gone, done, or the writer failed.
async fn step(
    eraser: &Eraser,
    progress: &watch::Sender<u64>,
    job: Id,
    ids: Vec<Id>,
) -> Option<EraseJob> {
    step_more(eraser, progress, job, ids)
        .await
        .map(|(job, _)| job)
}

async fn step_more(
    eraser: &Eraser,
    progress: &watch::Sender<u64>,
    job: Id,
    ids: Vec<Id>,
) -> Option<(EraseJob, bool)> {
    match eraser.writer.submit(EraseStep { job, ids }).await {
        Ok(Some(stepped)) => {
            progress.send_modify(|n| *n += 1);
            if stepped.job.phase == ErasePhase::Done {
                let counts = stepped.job.counts;
                tracing::info!(
                    erasure = %job,
                    environment = stepped.job.environment,
                    selector = stepped.job.selector.field(),
                    operations = counts.operations,
                    messages = counts.messages,
                    outbox_jobs = counts.outbox_jobs,
                    attempts = counts.attempts,
                    "erasure done"
                );
                eraser.metrics.erasures_done.inc();
            }
            Some((stepped.job, stepped.more))
        }
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(erasure = %job, error = %e, "an erasure step failed; the next start resumes it");
            None
        }
    }
}

/// Waits until the index has taken in the feed up to `seq`; false on `stop`.
async fn wait_for_index(eraser: &Eraser, seq: u64, stop: &CancellationToken) -> bool {
    while eraser.index.shared.indexed_seq.load(Ordering::Acquire) < seq {
        tokio::select! {
            _ = tokio::time::sleep(INDEX_POLL) => {}
            _ = stop.cancelled() => return false,
        }
    }
    true
}

/// The next page of operations the index has for `job`, after `after`, oldest first.
async fn candidates(
    eraser: &Eraser,
    job: &EraseJob,
    after: Option<u128>,
) -> Result<Vec<Id>, IndexError> {
    let (index, env) = (eraser.index.clone(), job.environment.clone());
    let mut filters = Filters {
        from: job.from,
        to: Some(job.to),
        ..Filters::default()
    };
    let value = job.selector.value().to_owned();
    match job.selector {
        EraseSelector::ConnectionId(_) => filters.connection_ids = vec![value],
        EraseSelector::EndUserId(_) => filters.end_user_ids = vec![value],
        EraseSelector::Integration(_) => filters.integrations = vec![value],
    }
    let page = Page {
        limit: IDS_PER_STEP,
        ascending: true,
        bound: after.map(Bound::After),
    };
    let hits = tokio::task::spawn_blocking(move || index.operations(&env, &filters, None, page))
        .await
        .map_err(|e| IndexError::Query(e.to_string()))??;
    Ok(hits.ids.into_iter().map(|(id, _)| id).collect())
}
