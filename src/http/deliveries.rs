//! Handlers for webhook deliveries: list (filters, pages), one with every attempt, retry one,
//! replay a window. The listing, paging and requeueing are `outbox_jobs`, shared with `/exports`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_query, Auth, Path};
use super::outbox_jobs::{self, Family, Listing};
use super::{json, AppState};
use crate::model::job::DeliveryDetail;
use crate::model::EventType;
use crate::outbox::JobFamily;
use crate::scope::Scope;

const DELIVERIES: Family = Family {
    family: JobFamily::Delivery,
    noun: "delivery",
    listed_by: "GET /deliveries",
};

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
    state.authorize(&principal, &env, Scope::Read)?;
    let query: ListQuery = parse_query(query.as_deref())?;
    let listing = Listing::parse(
        query.status.as_deref(),
        query.from.as_deref(),
        query.to.as_deref(),
        query.limit,
        query.cursor.as_deref(),
    )?;
    let event = query.event.as_deref().map(parse_event).transpose()?;
    outbox_jobs::list(
        &state,
        env,
        &DELIVERIES,
        listing,
        move |job| job.view().filter(|v| event.is_none_or(|e| e == v.event)),
        |read, view| {
            view.last_status = read.last_attempt(view.id)?.and_then(|a| a.status);
            Ok(())
        },
    )
    .await
}

pub async fn get_delivery(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let (job, attempt_log) = outbox_jobs::load(&state, env, &DELIVERIES, &id).await?;
    let body = job
        .webhook()
        .map(|w| serde_json::from_str(&w.body).unwrap_or(serde_json::Value::Null))
        .unwrap_or_default();
    let mut delivery = job
        .view()
        .ok_or_else(|| outbox_jobs::not_found(&DELIVERIES, job.id))?;
    delivery.last_status = attempt_log.last().and_then(|a| a.status);
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
    acting: super::audit::Acting,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    let job = outbox_jobs::retry(&state, env, &DELIVERIES, &id, acting.actor).await?;
    let mut view = job
        .view()
        .ok_or_else(|| outbox_jobs::not_found(&DELIVERIES, job.id))?;
    let (store, id) = (state.store.clone(), job.id);
    let last = super::blocking(move || Ok(store.read()?.last_attempt(id)?)).await?;
    view.last_status = last.and_then(|a| a.status);
    Ok(json(StatusCode::ACCEPTED, &view))
}

pub async fn replay_deliveries(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: super::audit::Acting,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    outbox_jobs::replay(&state, env, &DELIVERIES, query.as_deref(), acting.actor).await
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
