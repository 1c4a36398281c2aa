//! Handlers for webhook deliveries: list (filters, pages), one with every attempt, retry one,
//! replay a window.
//!
//! Reads run on the blocking pool; retries and replays go through the writer.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{parse_query, Auth, Path};
use super::{json, AppState, DataPage};
use crate::ingest::{Command, Outcome, Requeue};
use crate::model::{DeliveryStatus, EventType, Id, Timestamp};
use crate::outbox::job::{DeliveryDetail, DeliveryView};
use crate::store::id_range;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    event: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env)?;
    let query: ListQuery = parse_query(query.as_deref())?;
    let limit = super::page_limit(query.limit)?;
    let status = query
        .status
        .as_deref()
        .map(|s| parse_status(s, DeliveryStatus::ALL))
        .transpose()?;
    let event = query.event.as_deref().map(parse_event).transpose()?;
    let (from, to) = window(query.from.as_deref(), query.to.as_deref())?;
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let store = state.store.clone();
    let (data, total, more) = super::blocking(move || {
        let read = store.read()?;
        let (low, high) = id_range(from, to);
        let mut data: Vec<DeliveryView> = Vec::new();
        let mut total = 0u64;
        let mut more = false;
        read.scan_jobs_newest_first(low, high, |job| {
            let Some(view) = job.view() else { return true };
            let matches = job.environment == env
                && status.is_none_or(|s| s == job.status)
                && event.is_none_or(|e| e == view.event);
            if matches {
                total += 1;
                if before.is_none_or(|b| job.id < b) {
                    if data.len() < limit {
                        data.push(view);
                    } else {
                        more = true;
                    }
                }
            }
            true
        })?;
        Ok((data, total, more))
    })
    .await?;
    let next_cursor = if more {
        data.last().map(|d| format!("before.{}", d.id))
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

pub async fn get_delivery(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env)?;
    let id = parse_id(&id)?;
    let store = state.store.clone();
    let found = super::blocking(move || {
        let read = store.read()?;
        let Some(job) = read.job(id)?.filter(|j| j.environment == env) else {
            return Ok(None);
        };
        let attempts = read.attempts(id)?;
        Ok(Some((job, attempts)))
    })
    .await?;
    let (job, attempt_log) = found.ok_or_else(|| not_found(id))?;
    let body = job
        .webhook()
        .map(|w| serde_json::from_str(&w.body).unwrap_or(serde_json::Value::Null))
        .unwrap_or_default();
    let delivery = job.view().ok_or_else(|| not_found(id))?;
    Ok(json(
        StatusCode::OK,
        &DeliveryDetail {
            delivery,
            body,
            attempt_log,
        },
    ))
}

pub async fn retry_delivery(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env)?;
    let id = parse_id(&id)?;
    let requeued = requeue(&state, env, Requeue::One(id)).await?;
    let view = requeued
        .first()
        .and_then(|job| job.view())
        .ok_or_else(|| not_found(id))?;
    Ok(json(StatusCode::ACCEPTED, &view))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayQuery {
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Replayed {
    requeued: usize,
    /// Whether the window held more than one call requeues (call again for the rest).
    limit_reached: bool,
    ids: Vec<Id>,
}

pub async fn replay_deliveries(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env)?;
    let query: ReplayQuery = parse_query(query.as_deref())?;
    if query.from.is_none() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "`from` is required (RFC 3339): the start of the window of deliveries to send again",
        )
        .with_field("from"));
    }
    let (from, to) = window(query.from.as_deref(), query.to.as_deref())?;
    let status = match query.status.as_deref() {
        None => DeliveryStatus::Failed,
        Some(s) => parse_status(s, &[DeliveryStatus::Failed, DeliveryStatus::Delivered])?,
    };
    let requeued = requeue(&state, env, Requeue::Window { from, to, status }).await?;
    Ok(json(
        StatusCode::ACCEPTED,
        &Replayed {
            requeued: requeued.len(),
            limit_reached: requeued.len() == crate::ingest::writer::REPLAY_LIMIT,
            ids: requeued.iter().map(|j| j.id).collect(),
        },
    ))
}

async fn requeue(
    state: &AppState,
    environment: String,
    selection: Requeue,
) -> Result<Vec<crate::outbox::Job>, ApiError> {
    match state
        .writer
        .submit(Command::Requeue {
            environment,
            selection,
        })
        .await?
    {
        Outcome::Requeued(jobs) => Ok(jobs),
        _ => unreachable!("a requeue answers with jobs"),
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

fn parse_event(text: &str) -> Result<EventType, ApiError> {
    EventType::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            format!("`event` is `{text}`; use one of {}", EventType::allowed()),
        )
        .with_field("event")
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
    let (from, to) = (parse("from", from)?, parse("to", to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if t < f {
            return Err(
                ApiError::bad_request("invalid_query", "`to` is before `from`").with_field("to"),
            );
        }
    }
    Ok((from, to))
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

fn parse_id(text: &str) -> Result<Id, ApiError> {
    Id::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_id",
            "delivery ids are 26-character ULIDs, as listed by GET /deliveries",
        )
        .with_field("id")
    })
}

fn not_found(id: Id) -> ApiError {
    ApiError::not_found("delivery_not_found", format!("delivery `{id}` not found"))
}
