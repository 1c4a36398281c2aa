//! Saved views of an environment: list (the built-in four first), one, save, change, delete.
//! Reading and saving need the `read` scope (a view is a way of reading); changing the query of
//! a view an alert rule counts, or deleting it, needs the admin token.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::audit::Acting;
use super::error::ApiError;
use super::extract::{parse_json_object, read_json_body, Auth, Path};
use super::{json, AppState, DataPage};
use crate::model::audit::{AuditAction, AuditDraft};
use crate::scope::Scope;
use crate::views::{self, ViewQuery, ViewRefused};
use crate::write::{Audited, ChangeView, ViewChange};

/// The body of `POST /views`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewView {
    /// 1-64 characters `a-z`, `0-9`, `_`, `-`; left out, one is made from the name.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    id: Option<String>,
    /// 1-100 characters, unique in the environment.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
    #[serde(default)]
    query: ViewQuery,
}

/// The body of `PUT /views/{id}`: a field left out is unchanged.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewUpdate {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: Option<String>,
    query: Option<ViewQuery>,
}

pub async fn list_views(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let saved = saved_views(&state, &env);
    Ok(json(StatusCode::OK, &DataPage::all(views::all(&saved))))
}

pub async fn get_view(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let view = views::find(&saved_views(&state, &env), &id)
        .ok_or_else(|| ApiError::from(ViewRefused::NotFound(id)))?;
    Ok(json(StatusCode::OK, &view))
}

pub async fn create_view(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: super::audit::Acting,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Read)?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    let new: NewView = parse_json_object(&bytes)?;
    if let Some(id) = &new.id {
        if !views::valid_id(id) {
            return Err(ApiError::bad_request(
                "invalid_view",
                format!("`id` `{id}` is not a view id: 1-64 characters a-z, 0-9, '_' and '-', starting with a letter or digit"),
            )
            .with_field("id"));
        }
    }
    let change = ViewChange::Create {
        id: new.id,
        name: views::check_name(&new.name).map_err(ViewRefused::from)?,
        query: views::check_query(new.query).map_err(ViewRefused::from)?,
    };
    let view = submit(&state, acting, env, change).await?;
    Ok(json(StatusCode::CREATED, &view))
}

pub async fn update_view(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    acting: super::audit::Acting,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Read)?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    let update: ViewUpdate = parse_json_object(&bytes)?;
    let change = ViewChange::Update {
        id,
        name: update
            .name
            .map(|n| views::check_name(&n))
            .transpose()
            .map_err(ViewRefused::from)?,
        query: update
            .query
            .map(views::check_query)
            .transpose()
            .map_err(ViewRefused::from)?,
    };
    let view = submit(&state, acting, env, change).await?;
    Ok(json(StatusCode::OK, &view))
}

pub async fn delete_view(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    acting: super::audit::Acting,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Read)?;
    submit(&state, acting, env, ViewChange::Delete { id }).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Changes a view and records it in the audit log, in one commit.
async fn submit(
    state: &AppState,
    acting: Acting,
    environment: String,
    change: ViewChange,
) -> Result<Option<views::View>, ApiError> {
    let (action, target) = match &change {
        ViewChange::Create { id, .. } => (AuditAction::ViewCreate, id.clone()),
        ViewChange::Update { id, .. } => (AuditAction::ViewChange, Some(id.clone())),
        ViewChange::Delete { id } => (AuditAction::ViewDelete, Some(id.clone())),
    };
    let mut draft = AuditDraft::new(action, acting.actor, Some(environment.clone()));
    draft.target = target;
    let command = ChangeView {
        environment,
        change,
        may_change_alerted: acting.principal.allows(Scope::Admin),
    };
    Ok(state.writer.submit(Audited { command, draft }).await?)
}

fn saved_views(state: &AppState, env: &str) -> Vec<views::StoredView> {
    state
        .settings
        .get(env)
        .map(|s| s.views.clone())
        .unwrap_or_default()
}
