//! Handlers for erasures (admin): ask for one (`POST /erase`, answered with the counts once it is
//! done, or with its progress after `ERASE_WAIT`), list them, read one's progress.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_json_object, read_json_body, Auth, Path};
use super::{blocking, json, AppState, DataPage};
use crate::model::audit::{AuditAction, AuditDraft};
use crate::model::erase::{EraseJob, ErasePhase, EraseSelector, EraseView};
use crate::model::{Id, Timestamp};
use crate::scope::Scope;
use crate::write::{Audited, StartErase};

/// How long `POST /erase` waits for the erasure to end before answering 202 with its progress.
const ERASE_WAIT: Duration = Duration::from_secs(10);
/// The most erasures `GET /erasures` lists (the newest).
const LISTED: usize = 100;

/// The body of `POST /erase`: exactly one selector, and an optional window of creation times.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    pub connection_id: Option<String>,
    pub end_user_id: Option<String>,
    pub integration: Option<String>,
    /// Only operations created at or after it (RFC 3339).
    pub from: Option<String>,
    /// Only operations created before it (RFC 3339); never after the request.
    pub to: Option<String>,
}

impl EraseRequest {
    fn parse(self) -> Result<(EraseSelector, Option<Timestamp>, Option<Timestamp>), ApiError> {
        let given: Vec<EraseSelector> = [
            self.connection_id.map(EraseSelector::ConnectionId),
            self.end_user_id.map(EraseSelector::EndUserId),
            self.integration.map(EraseSelector::Integration),
        ]
        .into_iter()
        .flatten()
        .collect();
        let [selector] = <[EraseSelector; 1]>::try_from(given).map_err(|given| {
            let named: Vec<&str> = given.iter().map(EraseSelector::field).collect();
            ApiError::bad_request(
                "invalid_selector",
                format!(
                    "send exactly one of `connection_id`, `end_user_id` or `integration`; got {}",
                    if named.is_empty() {
                        "none".to_owned()
                    } else {
                        named.join(", ")
                    }
                ),
            )
            .with_field(named.first().copied().unwrap_or("connection_id"))
        })?;
        if selector.value().is_empty() {
            return Err(ApiError::bad_request(
                "invalid_selector",
                format!("`{}` is empty", selector.field()),
            )
            .with_field(selector.field()));
        }
        let time = |text: Option<String>, field: &'static str| {
            text.map(|t| Timestamp::parse(&t))
                .transpose()
                .map_err(|e| ApiError::bad_request("invalid_field", e).with_field(field))
        };
        // An empty window (`to` at or before `from`) erases nothing.
        Ok((selector, time(self.from, "from")?, time(self.to, "to")?))
    }
}

pub async fn erase(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: super::audit::Acting,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    let request: EraseRequest = parse_json_object(&bytes)?;
    let (selector, from, to) = request.parse()?;
    let mut progress = state.erasures.watch();
    let draft = AuditDraft::new(AuditAction::ErasureStart, acting.actor, Some(env.clone()));
    let command = StartErase {
        environment: env,
        selector,
        from,
        to,
    };
    let job = state.writer.submit(Audited { command, draft }).await?;
    state.erasures.announce(job.id);
    let deadline = tokio::time::Instant::now() + ERASE_WAIT;
    let mut job = job;
    loop {
        if job.phase == ErasePhase::Done {
            return Ok(json(StatusCode::OK, &job.view()));
        }
        let changed = tokio::time::timeout_at(deadline, progress.changed()).await;
        job = read(&state, job.id).await?.unwrap_or(job);
        if !matches!(changed, Ok(Ok(()))) {
            return Ok(json(StatusCode::ACCEPTED, &job.view()));
        }
    }
}

pub async fn list_erasures(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Admin)?;
    let store = state.store.clone();
    let jobs = blocking(move || Ok(store.read()?.erase_jobs(u128::MAX, usize::MAX)?)).await?;
    let data: Vec<EraseView> = jobs
        .iter()
        .filter(|job| job.environment == env)
        .take(LISTED)
        .map(EraseJob::view)
        .collect();
    Ok(json(StatusCode::OK, &DataPage::all(data)))
}

pub async fn get_erasure(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Admin)?;
    let not_found = || {
        ApiError::not_found(
            "erasure_not_found",
            format!("erasure `{id}` not found in `{env}`"),
        )
    };
    let parsed = Id::parse(&id).ok_or_else(not_found)?;
    match read(&state, parsed).await? {
        Some(job) if job.environment == env => Ok(json(StatusCode::OK, &job.view())),
        _ => Err(not_found()),
    }
}

async fn read(state: &AppState, id: Id) -> Result<Option<EraseJob>, ApiError> {
    let store = state.store.clone();
    blocking(move || Ok(store.read()?.erase_job(id)?)).await
}
