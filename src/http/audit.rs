//! The audit log over HTTP: who is acting (the [`Acting`] extractor: the principal, and what a
//! record says of it: the kind of key, how it came, from which address — never the key),
//! appending the record of an action that writes nothing else, and `GET /v1/audit` (admin
//! only; filters by action and time; newest first, paged by a cursor).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::Response;

use super::error::ApiError;
use super::extract::Auth;
use super::{blocking, json, page_limit, require_scope, AppState, DataPage};
use crate::auth::Principal;
use crate::model::audit::{ActorRole, ActorVia, AuditAction, AuditActor, AuditDraft, AuditView};
use crate::model::{Id, Timestamp};
use crate::scope::Scope;
use crate::store::id_range;
use crate::write::AppendAudit;

/// The caller, authenticated, and how an audit record names it.
pub struct Acting {
    pub principal: Principal,
    pub actor: AuditActor,
}

impl FromRequestParts<Arc<AppState>> for Acting {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Acting, ApiError> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        let via = if parts.headers.contains_key(header::AUTHORIZATION) {
            ActorVia::Api
        } else {
            ActorVia::Dashboard
        };
        let actor = actor(&principal, via, peer(parts));
        Ok(Acting { principal, actor })
    }
}

/// The client's address, when the server knows it.
pub fn peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// How a record names `principal`: its kind, a key's environment and scope.
pub fn actor(principal: &Principal, via: ActorVia, address: Option<IpAddr>) -> AuditActor {
    let (role, environment, scope) = match principal {
        Principal::Admin => (ActorRole::Admin, None, None),
        Principal::Environment { name, scope } => (
            ActorRole::Key,
            Some(name.clone()),
            Some(scope.as_str().to_owned()),
        ),
    };
    AuditActor {
        role,
        environment,
        scope,
        via,
        address: address.map(|a| a.to_string()),
    }
}

/// Appends the record of an action that writes nothing else (its own commit).
pub async fn record(state: &AppState, draft: AuditDraft) -> Result<(), ApiError> {
    state.writer.submit(AppendAudit(draft)).await?;
    Ok(())
}

/// The query of `GET /v1/audit`.
struct AuditQuery {
    actions: Vec<AuditAction>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    limit: usize,
    before: Option<Id>,
}

fn parse_query(query: Option<&str>) -> Result<AuditQuery, ApiError> {
    let invalid = |field: &str, message: String| {
        ApiError::bad_request("invalid_query", message).with_field(field)
    };
    let mut parsed = AuditQuery {
        actions: Vec::new(),
        from: None,
        to: None,
        limit: 0,
        before: None,
    };
    let mut limit = None;
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key != "action" && !seen.insert(key.to_string()) {
            return Err(invalid(&key, format!("`{key}` is given twice")));
        }
        let time = |text: &str, field: &str| {
            Timestamp::parse(text).map_err(|e| invalid(field, format!("`{field}`: {e}")))
        };
        match key.as_ref() {
            "action" => {
                for name in value.split(',').filter(|n| !n.is_empty()) {
                    let action = AuditAction::parse(name).ok_or_else(|| {
                        let names: Vec<&str> =
                            AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                        invalid(
                            "action",
                            format!("`action` is `{name}`; use one of {}", names.join(", ")),
                        )
                    })?;
                    parsed.actions.push(action);
                }
            }
            "from" => parsed.from = Some(time(&value, "from")?),
            "to" => parsed.to = Some(time(&value, "to")?),
            "limit" => {
                let n = value.parse().map_err(|_| {
                    invalid(
                        "limit",
                        format!("`limit` is `{value}`; it must be a number"),
                    )
                })?;
                limit = Some(n);
            }
            "cursor" => {
                let id = value.strip_prefix("before.").and_then(Id::parse);
                parsed.before = Some(id.ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_cursor",
                        "`cursor` must be a `next_cursor` value from an earlier page",
                    )
                    .with_field("cursor")
                })?);
            }
            other => {
                return Err(invalid(
                    other,
                    format!(
                        "unknown query parameter `{other}`; use action, from, to, limit or cursor"
                    ),
                ))
            }
        }
    }
    parsed.limit = page_limit(limit)?;
    Ok(parsed)
}

/// `GET /v1/audit?action=&from=&to=&limit=&cursor=`: the audit log, newest first (admin only).
pub async fn list_audit(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    require_scope(&principal, Scope::Admin)?;
    let query = parse_query(query.as_deref())?;
    let store = state.store.clone();
    let page = blocking(move || {
        let range = id_range(query.from, query.to);
        Ok(store
            .read()?
            .audit_records(range, &query.actions, query.before, query.limit)?)
    })
    .await?;
    let next_cursor = if page.more {
        page.records.last().map(|r| format!("before.{}", r.id))
    } else {
        None
    };
    Ok(json(
        StatusCode::OK,
        &DataPage {
            data: page.records.into_iter().map(AuditView::new).collect(),
            next_cursor,
            total: page.total,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_what_is_wrong() {
        let q = parse_query(Some(
            "action=settings.change,backup.download&action=import&limit=5",
        ))
        .unwrap();
        assert_eq!(
            q.actions,
            [
                AuditAction::SettingsChange,
                AuditAction::BackupDownload,
                AuditAction::Import
            ]
        );
        assert_eq!(q.limit, 5);
        for (query, field) in [
            ("action=nope", "action"),
            ("from=yesterday", "from"),
            ("limit=0", "limit"),
            ("cursor=abc", "cursor"),
            ("q=x", "q"),
            (
                "from=2026-01-01T00:00:00Z&from=2026-01-01T00:00:00Z",
                "from",
            ),
        ] {
            let error = parse_query(Some(query)).err().unwrap();
            assert_eq!(error.field.as_deref(), Some(field), "{query}");
        }
    }
}
