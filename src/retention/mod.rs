//! Retention: what leaves the store by age or by size, on the `retention.every` timer, through
//! the writer like any change (a bounded amount per command, so ingest keeps being acknowledged).
//!
//! - **By age**: operations older than their environment's retention (`[environments.X]
//!   retention`, else `retention.days`), with their messages and search entries; finished outbox
//!   jobs older than their environment's retention. What is older than the longest retention is
//!   removed in key order from the store; an environment with a shorter one has its expired
//!   operations found through the search index (each checked against the store when removed).
//! - **The audit log**: records older than `audit.retention` (a year by default).
//! - **By size**: above `retention.max_disk`, the oldest operations of every environment (`disk`).
//!
//! Must not: remove anything itself (the write commands do, through `store::remove`).

pub mod disk;
pub mod erase;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::index::{Bound, Filters, Page, SearchIndex};
use crate::metrics::Metrics;
use crate::model::{Id, Removed, Timestamp};
use crate::store::Store;
use crate::write::{
    Cutoffs, RemoveExpired, RemoveExpiredAudit, RemoveExpiredIn, RemoveOldest, Writer,
    AUDIT_REMOVE_BUDGET,
};

/// Operation ids taken from the index per command of an environment's retention.
const IDS_PER_COMMAND: usize = 1_000;

/// What the retention task works with.
pub struct Retention {
    pub writer: Writer,
    pub store: Arc<Store>,
    pub index: Arc<SearchIndex>,
    pub metrics: Arc<Metrics>,
    pub config: RetentionConfig,
    /// How long each configured environment's operations are kept.
    pub environments: BTreeMap<String, Duration>,
    /// How long audit records are kept (`audit.retention`).
    pub audit: Duration,
    pub data_dir: PathBuf,
}

/// Runs every `retention.every` until `stop`: removes what expired, then keeps the data dir
/// under `retention.max_disk`.
pub async fn run(retention: Retention, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(retention.config.every.0);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cap = retention.config.max_disk.map(|max| disk::Cap::new(max.0));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        let cutoffs = Cutoffs::at(
            Timestamp::now(),
            retention.config.period(),
            &retention.environments,
        );
        let mut total = remove_expired(&retention, &cutoffs, &stop).await;
        for (environment, cutoff) in cutoffs.shorter() {
            let removed = remove_expired_in(&retention, environment, cutoff, &stop).await;
            add(&mut total, &removed);
        }
        retention.metrics.retention_sweeps.inc();
        if total != Removed::default() {
            tracing::info!(
                operations = total.operations,
                messages = total.messages,
                outbox_jobs = total.jobs,
                outbox_attempts = total.attempts,
                cutoff = %cutoffs.everywhere,
                "removed expired records"
            );
        }
        remove_expired_audit(&retention, &stop).await;
        keep_under_cap(&retention, cap.as_mut(), &stop).await;
    }
}

/// Audit records older than `audit.retention`, a bounded number per command.
async fn remove_expired_audit(retention: &Retention, stop: &CancellationToken) {
    let period = i64::try_from(retention.audit.as_millis()).unwrap_or(i64::MAX);
    let cutoff = Timestamp::now().plus_millis(-period);
    let mut removed = 0;
    while !stop.is_cancelled() {
        match retention.writer.submit(RemoveExpiredAudit { cutoff }).await {
            Ok(n) => {
                removed += n;
                if n < AUDIT_REMOVE_BUDGET as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "removing expired audit records failed");
                break;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, cutoff = %cutoff, "removed expired audit records");
    }
}

fn add(total: &mut Removed, removed: &Removed) {
    total.operations += removed.operations;
    total.messages += removed.messages;
    total.bytes += removed.bytes;
    total.jobs += removed.jobs;
    total.attempts += removed.attempts;
}

/// Everything older than the longest retention, and finished outbox jobs past their
/// environment's, in key order.
async fn remove_expired(
    retention: &Retention,
    cutoffs: &Cutoffs,
    stop: &CancellationToken,
) -> Removed {
    let mut total = Removed::default();
    // Each command removes a bounded amount; the outbox scan continues where the last stopped.
    let mut jobs_from = 0;
    loop {
        let command = RemoveExpired {
            cutoffs: cutoffs.clone(),
            jobs_from,
        };
        match retention.writer.submit(command).await {
            Ok(removed) => {
                add(&mut total, &removed);
                // Once the outbox is scanned to the cutoff, later commands skip it.
                jobs_from = removed.jobs_resume_from.unwrap_or(u128::MAX);
                let more = removed.more_operations || removed.jobs_resume_from.is_some();
                if !more || stop.is_cancelled() {
                    return total;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention failed");
                return total;
            }
        }
    }
}

/// The expired operations of an environment with a shorter retention than the longest: found
/// through the index, oldest first, a page per command.
async fn remove_expired_in(
    retention: &Retention,
    environment: &str,
    cutoff: Timestamp,
    stop: &CancellationToken,
) -> Removed {
    let mut total = Removed::default();
    let mut after: Option<u128> = None;
    while !stop.is_cancelled() {
        let (index, env) = (retention.index.clone(), environment.to_owned());
        let page = tokio::task::spawn_blocking(move || {
            let filters = Filters {
                to: Some(cutoff),
                ..Filters::default()
            };
            let page = Page {
                limit: IDS_PER_COMMAND,
                ascending: true,
                bound: after.map(Bound::After),
            };
            index.operations(&env, &filters, None, page)
        })
        .await;
        let hits = match page {
            Ok(Ok(hits)) => hits,
            // Rebuilding, or failing: the next sweep tries again.
            Ok(Err(e)) => {
                tracing::debug!(environment, error = %e, "retention waits for the search index");
                break;
            }
            Err(e) => {
                tracing::warn!(environment, error = %e, "retention search failed");
                break;
            }
        };
        let Some(&(last, _)) = hits.ids.last() else {
            break;
        };
        after = Some(last.0);
        let ids: Vec<Id> = hits.ids.iter().map(|(id, _)| *id).collect();
        loop {
            let command = RemoveExpiredIn {
                environment: environment.to_owned(),
                cutoff,
                ids: ids.clone(),
            };
            match retention.writer.submit(command).await {
                // What was removed is gone from the store: the same ids again skip it.
                Ok(removed) => {
                    add(&mut total, &removed);
                    if !removed.more_operations {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(environment, error = %e, "retention failed");
                    return total;
                }
            }
        }
        if !hits.more {
            break;
        }
    }
    total
}

/// What the cap needs to know of the data dir, and its whole size on disk.
fn measure(store: &Store, data_dir: &Path) -> Result<(disk::Measured, u64), String> {
    let rows = store
        .read()
        .and_then(|read| read.stored_bytes_estimate())
        .map_err(|e| e.to_string())?;
    let file_len = std::fs::metadata(store.path())
        .map_err(|e| e.to_string())?
        .len();
    let index =
        disk::size_on_disk(&crate::index::index_dir(data_dir)).map_err(|e| e.to_string())?;
    let on_disk = disk::size_on_disk(data_dir).map_err(|e| e.to_string())?;
    Ok((
        disk::Measured {
            rows,
            file_len,
            index,
        },
        on_disk,
    ))
}

/// Measures the data dir and, above the cap, removes the oldest operations of every environment.
async fn keep_under_cap(
    retention: &Retention,
    cap: Option<&mut disk::Cap>,
    stop: &CancellationToken,
) {
    let (store, dir) = (retention.store.clone(), retention.data_dir.clone());
    let (measured, on_disk) = match tokio::task::spawn_blocking(move || measure(&store, &dir)).await
    {
        Ok(Ok(measured)) => measured,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot measure the data dir");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot measure the data dir");
            return;
        }
    };
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    retention.metrics.data_dir_bytes.set(gauge(on_disk));
    let Some(cap) = cap else { return };
    let to_remove = cap.to_remove(measured);
    let held = cap.held(measured);
    retention.metrics.held_bytes.set(gauge(held));
    let Some(bytes) = to_remove else {
        return;
    };

    tracing::warn!(
        held_bytes = held,
        on_disk_bytes = on_disk,
        max_disk = cap.max(),
        removing_bytes = bytes,
        "the data dir is above retention.max_disk: removing the oldest operations"
    );
    retention.metrics.disk_cap_trims.inc();
    let mut total = Removed::default();
    while total.bytes < bytes && !stop.is_cancelled() {
        match retention
            .writer
            .submit(RemoveOldest {
                bytes: bytes - total.bytes,
            })
            .await
        {
            Ok(removed) if removed.operations == 0 => break,
            Ok(removed) => add(&mut total, &removed),
            Err(e) => {
                tracing::warn!(error = %e, "removing the oldest operations failed");
                break;
            }
        }
    }
    tracing::warn!(
        operations = total.operations,
        messages = total.messages,
        bytes = total.bytes,
        "removed the oldest operations to stay under retention.max_disk"
    );
}
