//! Handlers for OTLP exports (spans and log batches on their way to the environment's collector):
//! list (filters, pages), one with every attempt, retry one, replay a window. The listing, paging
//! and requeueing are `outbox_jobs`, shared with `/deliveries`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_query, Auth, Path};
use super::outbox_jobs::{self, Family, Listing};
use super::{json, AppState};
use crate::model::job::ExportDetail;
use crate::outbox::JobFamily;
use crate::scope::Scope;

const EXPORTS: Family = Family {
    family: JobFamily::Export,
    noun: "export",
    listed_by: "GET /exports",
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn list_exports(
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
    outbox_jobs::list(
        &state,
        env,
        &EXPORTS,
        listing,
        |job| job.export_view(),
        |_, _| Ok(()),
    )
    .await
}

pub async fn get_export(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let (job, attempts) = outbox_jobs::load(&state, env, &EXPORTS, &id).await?;
    let export = job
        .export_view()
        .ok_or_else(|| outbox_jobs::not_found(&EXPORTS, job.id))?;
    Ok(json(
        StatusCode::OK,
        &ExportDetail {
            export,
            attempt_log: attempts.into_iter().map(Into::into).collect(),
        },
    ))
}

pub async fn retry_export(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    acting: super::audit::Acting,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    let job = outbox_jobs::retry(&state, env, &EXPORTS, &id, acting.actor).await?;
    let view = job
        .export_view()
        .ok_or_else(|| outbox_jobs::not_found(&EXPORTS, job.id))?;
    Ok(json(StatusCode::ACCEPTED, &view))
}

pub async fn replay_exports(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: super::audit::Acting,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    outbox_jobs::replay(&state, env, &EXPORTS, query.as_deref(), acting.actor).await
}
