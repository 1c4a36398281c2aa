//! What `/deliveries` and `/exports` share: both list outbox jobs of one family (newest first,
//! `{data, next_cursor, total}` pages, `status`/`from`/`to` filters), show one with its attempts,
//! retry one and replay a window. The endpoint files say only how a job looks in their JSON.
//!
//! Reads run on the blocking pool; retries and replays go through the writer.

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::parse_query;
use super::{json, AppState, DataPage};
use crate::model::audit::{AuditAction, AuditActor, AuditDraft};
use crate::model::{DeliveryStatus, Id, Timestamp};
use crate::outbox::{Attempt, Job, JobFamily};
use crate::store::{id_range, ReadTx, StoreError};
use crate::write::{Audited, Requeue, RequeueJobs, REPLAY_LIMIT};

/// How a family's ids and errors are named.
pub(super) struct Family {
    pub family: JobFamily,
    /// `delivery`, `export`: in messages and error codes.
    pub noun: &'static str,
    /// The endpoint that lists them, for error messages.
    pub listed_by: &'static str,
}

/// The listing filters both endpoints take, parsed.
pub(super) struct Listing {
    pub status: Option<DeliveryStatus>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub limit: usize,
    pub before: Option<Id>,
}

impl Listing {
    pub fn parse(
        status: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Listing, ApiError> {
        let (from, to) = window(from, to)?;
        Ok(Listing {
            status: status
                .map(|s| parse_status(s, DeliveryStatus::ALL))
                .transpose()?,
            from,
            to,
            limit: super::page_limit(limit)?,
            before: cursor.map(decode_cursor).transpose()?,
        })
    }
}

/// One page of `family`'s jobs in `env`, newest first: those `view` shows (it may filter more)
/// that match `listing`, each then given to `complete` (for what only the page's rows need).
pub(super) async fn list<V: Serialize + Send + 'static>(
    state: &AppState,
    env: String,
    family: &Family,
    listing: Listing,
    view: impl Fn(&Job) -> Option<V> + Send + 'static,
    complete: impl Fn(&ReadTx, &mut V) -> Result<(), StoreError> + Send + 'static,
) -> Result<Response, ApiError> {
    let store = state.store.clone();
    let wanted = family.family;
    let limit = listing.limit;
    let (data, total, more, last) = super::blocking(move || {
        let read = store.read()?;
        let (low, high) = id_range(listing.from, listing.to);
        let mut data: Vec<V> = Vec::new();
        let (mut total, mut more, mut last) = (0u64, false, None);
        read.scan_jobs_newest_first(low, high, |job| {
            if job.kind.family() != wanted
                || job.environment != env
                || listing.status.is_some_and(|s| s != job.status)
            {
                return true;
            }
            let Some(shown) = view(&job) else {
                return true;
            };
            total += 1;
            if listing.before.is_none_or(|b| job.id < b) {
                if data.len() < limit {
                    data.push(shown);
                    last = Some(job.id);
                } else {
                    more = true;
                }
            }
            true
        })?;
        for row in &mut data {
            complete(&read, row)?;
        }
        Ok((data, total, more, last))
    })
    .await?;
    let next_cursor = if more {
        last.map(|id| format!("before.{id}"))
    } else {
        None
    };
    Ok(json(
        StatusCode::OK,
        &DataPage {
            data,
            next_cursor,
            total,
        },
    ))
}

/// One job of `family` in `env` with every attempt; another environment's or family's is not
/// found.
pub(super) async fn load(
    state: &AppState,
    env: String,
    family: &Family,
    id: &str,
) -> Result<(Job, Vec<Attempt>), ApiError> {
    let id = parse_id(family, id)?;
    let store = state.store.clone();
    let wanted = family.family;
    let found = super::blocking(move || {
        let read = store.read()?;
        let Some(job) = read
            .job(id)?
            .filter(|j| j.environment == env && j.kind.family() == wanted)
        else {
            return Ok(None);
        };
        let attempts = read.attempts(id)?;
        Ok(Some((job, attempts)))
    })
    .await?;
    found.ok_or_else(|| not_found(family, id))
}

/// `POST /{family}/{id}/retry`: the job as requeued (recorded in the audit log).
pub(super) async fn retry(
    state: &AppState,
    env: String,
    family: &Family,
    id: &str,
    actor: AuditActor,
) -> Result<Job, ApiError> {
    let id = parse_id(family, id)?;
    let action = match family.family {
        JobFamily::Delivery => AuditAction::DeliveryRetry,
        JobFamily::Export => AuditAction::ExportRetry,
    };
    let draft = AuditDraft::new(action, actor, Some(env.clone())).target(id.to_string());
    let requeued = requeue(state, env, Requeue::One(family.family, id), draft).await?;
    requeued
        .into_iter()
        .next()
        .ok_or_else(|| not_found(family, id))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Replayed {
    requeued: usize,
    /// Whether the window held more than one call requeues (call again for the rest).
    limit_reached: bool,
    ids: Vec<Id>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayQuery {
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
}

/// The statuses a replay may select, the default (`status` left out) first.
pub(super) const REPLAYABLE: [DeliveryStatus; 2] =
    [DeliveryStatus::Failed, DeliveryStatus::Delivered];

/// `POST /{family}/replay?from=&to=&status=` with its raw query: requeues the window's `failed`
/// (default) or `delivered` jobs (recorded in the audit log).
pub(super) async fn replay(
    state: &AppState,
    env: String,
    family: &Family,
    query: Option<&str>,
    actor: AuditActor,
) -> Result<Response, ApiError> {
    let query: ReplayQuery = parse_query(query)?;
    let (from, to, status) = (
        query.from.as_deref(),
        query.to.as_deref(),
        query.status.as_deref(),
    );
    if from.is_none() {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "`from` is required (RFC 3339): the start of the window of {} to send again",
                plural(family)
            ),
        )
        .with_field("from"));
    }
    let (from, to) = window(from, to)?;
    let status = match status {
        None => REPLAYABLE[0],
        Some(s) => parse_status(s, &REPLAYABLE)?,
    };
    let selection = Requeue::Window {
        family: family.family,
        from,
        to,
        status,
    };
    let action = match family.family {
        JobFamily::Delivery => AuditAction::DeliveriesReplay,
        JobFamily::Export => AuditAction::ExportsReplay,
    };
    let draft = AuditDraft::new(action, actor, Some(env.clone()))
        .detail("from", from)
        .detail("to", to)
        .detail("status", status.as_str());
    let requeued = requeue(state, env, selection, draft).await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &Replayed {
            requeued: requeued.len(),
            limit_reached: requeued.len() == REPLAY_LIMIT,
            ids: requeued.iter().map(|j| j.id).collect(),
        },
    ))
}

async fn requeue(
    state: &AppState,
    environment: String,
    selection: Requeue,
    draft: AuditDraft,
) -> Result<Vec<Job>, ApiError> {
    let command = RequeueJobs {
        environment,
        selection,
    };
    let requeued = state.writer.submit(Audited { command, draft }).await?;
    Ok(requeued)
}

fn plural(family: &Family) -> &'static str {
    match family.family {
        JobFamily::Delivery => "deliveries",
        JobFamily::Export => "exports",
    }
}

fn parse_status(text: &str, allowed: &[DeliveryStatus]) -> Result<DeliveryStatus, ApiError> {
    DeliveryStatus::parse(text)
        .filter(|s| allowed.contains(s))
        .ok_or_else(|| {
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(
                "invalid_query",
                format!("`status` is `{text}`; use one of {}", names.join(", ")),
            )
            .with_field("status")
        })
}

fn window(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<Timestamp>, Option<Timestamp>), ApiError> {
    let parse = |field: &'static str, text: Option<&str>| {
        text.map(|t| {
            Timestamp::parse(t).map_err(|e| {
                ApiError::bad_request("invalid_query", format!("`{field}`: {e}")).with_field(field)
            })
        })
        .transpose()
    };
    Ok((parse("from", from)?, parse("to", to)?))
}

fn decode_cursor(text: &str) -> Result<Id, ApiError> {
    text.strip_prefix("before.")
        .and_then(Id::parse)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_cursor",
                "`cursor` must be a `next_cursor` value from an earlier page",
            )
            .with_field("cursor")
        })
}

fn parse_id(family: &Family, text: &str) -> Result<Id, ApiError> {
    Id::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_id",
            format!(
                "{} ids are 26-character ULIDs, as listed by {}",
                family.noun, family.listed_by
            ),
        )
        .with_field("id")
    })
}

pub(super) fn not_found(family: &Family, id: Id) -> ApiError {
    ApiError::not_found(
        match family.family {
            JobFamily::Delivery => "delivery_not_found",
            JobFamily::Export => "export_not_found",
        },
        format!("{} `{id}` not found", family.noun),
    )
}
