//! The dashboard's HTTP side: the page and its embedded assets (content types, cache headers, a
//! strict Content-Security-Policy), login/logout (an HttpOnly session cookie) with the admin
//! token or, as a viewer of its environment, an environment key holding the `read` scope, and the
//! list of environments the switcher shows.
//!
//! Must not: give a session more than its key holds (an ingest-only key cannot sign in), echo
//! tokens or session ids anywhere but the one `Set-Cookie`, or log them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::audit;
use super::error::ApiError;
use super::extract::{parse_json_object, read_json_body, Auth, Path};
use super::{json, AppState, DataPage};
use crate::auth::Principal;
use crate::model::audit::{ActorRole, ActorVia, AuditAction, AuditDraft};
use crate::scope::Scope;
use crate::session;
use crate::ui::{Asset, Assets};

/// Scripts, styles and data only from this origin; no inline code, no framing, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub async fn index(headers: HeaderMap) -> Response {
    let assets = Assets::get();
    let mut response = asset_response(&assets.index, &headers);
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub async fn asset(
    Path((version, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let assets = Assets::get();
    let file = assets.file(&path).ok_or_else(|| {
        ApiError::not_found("asset_not_found", format!("no dashboard asset `{path}`"))
    })?;
    let mut response = asset_response(file, &headers);
    // An old version's URL still gets today's file, but must not be cached as if it were its own.
    let cache = if version == assets.version {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}

fn asset_response(asset: &Asset, request: &HeaderMap) -> Response {
    let accepts_gzip = request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let (body, gzipped) = match (&asset.gzip, accepts_gzip) {
        (Some(gz), true) => (Body::from(gz.clone()), true),
        _ => (Body::from(asset.bytes), false),
    };
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The admin token, or an environment key with the `read` scope (`read` or `ingest+read`),
    /// which signs in as a viewer of its environment.
    token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoggedIn {
    /// `admin`, or `environment` for a viewer signed in with an environment key.
    principal: &'static str,
    /// A viewer's environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
    /// A viewer's key scope: `read` or `ingest+read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'static str>,
    expires_in_seconds: u64,
}

/// POST /v1/session `{"token": "<admin token or read key>"}`: sets the session cookie. Failed
/// logins are limited per client address (`login_limit`).
pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let client = peer.ip();
    if let Err(wait) = state.login_limit.check(client, Instant::now()) {
        return Err(too_many_logins(wait));
    }
    let bytes = read_json_body(&headers, body, 64 * 1024).await?;
    let login: Login = parse_json_object(&bytes)?;
    let known = state.credentials.authenticate(login.token.trim());
    let principal = match known {
        Some(principal) if principal.allows(Scope::Read) => Ok(principal),
        Some(ref key) => Err((
            ApiError::unauthorized(
                "that key has only the `ingest` scope; sign in with a key holding the `read` scope (a viewer of its environment) or the admin token",
            ),
            Some(key.clone()),
            "ingest_only_key",
        )),
        None => Err((
            ApiError::unauthorized(
                "unknown token; use the admin token (printed on first start or set in server.admin_tokens) or an environment key with the `read` scope",
            ),
            None,
            "unknown_token",
        )),
    };
    let principal = match principal {
        Ok(principal) => principal,
        Err((refused, key, reason)) => {
            // The audit log records the refusal: the kind of key, if opslog knows it, and why;
            // never what was sent. Refusals are bounded by the login limit (an address refused
            // for a while is answered 429 above, unrecorded).
            let locked = state.login_limit.failed(client, Instant::now());
            let mut actor = match &key {
                Some(key) => audit::actor(key, ActorVia::Dashboard, Some(client)),
                None => audit::actor(&Principal::Admin, ActorVia::Dashboard, Some(client)),
            };
            if key.is_none() {
                actor.role = ActorRole::Unknown;
            }
            let environment = actor.environment.clone();
            let draft = AuditDraft::new(AuditAction::SignInRefused, actor, environment)
                .detail("reason", reason)
                .detail("locked_out", locked.is_some());
            audit::record(&state, draft).await?;
            if let Some(wait) = locked {
                tracing::warn!(client = %client, "failed dashboard logins; refusing this address for a while");
                return Err(too_many_logins(wait));
            }
            return Err(refused);
        }
    };
    state.login_limit.succeeded(client);
    let actor = audit::actor(&principal, ActorVia::Dashboard, Some(client));
    let environment = actor.environment.clone();
    audit::record(
        &state,
        AuditDraft::new(AuditAction::SignIn, actor, environment),
    )
    .await?;
    let (kind, environment, scope) = describe(&principal);
    let id = state.sessions.create(Instant::now(), principal);
    let ttl = state.sessions.ttl();
    let mut response = json(
        StatusCode::OK,
        &LoggedIn {
            principal: kind,
            environment,
            scope,
            expires_in_seconds: ttl.as_secs(),
        },
    );
    let cookie = session::set_cookie(&id, ttl, state.cookie_secure);
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("session cookies are ASCII"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn too_many_logins(wait: std::time::Duration) -> ApiError {
    let seconds = super::error::whole_seconds(wait);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_failed_logins",
        format!("too many failed logins from your address; try again in {seconds} s"),
    )
    .with_retry_after(wait)
}

/// DELETE /v1/session: ends the session server-side and clears the cookie. Always 204, so a
/// logout with an already-expired cookie still clears it.
pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    for value in headers.get_all(header::COOKIE) {
        if let Some(id) = value
            .to_str()
            .ok()
            .and_then(|v| session::cookie_value(v, session::COOKIE_NAME))
        {
            state.sessions.revoke(id);
        }
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&session::clear_cookie(state.cookie_secure))
            .expect("session cookies are ASCII"),
    );
    response
}

/// GET /v1/session: whether the caller is logged in. Always 200, so the page can ask on load
/// without a failed request in the browser console.
pub async fn session_status(auth: Result<Auth, ApiError>) -> Response {
    let (principal, environment, scope) = match &auth {
        Ok(Auth(principal)) => {
            let (kind, environment, scope) = describe(principal);
            (Some(kind), environment, scope)
        }
        Err(_) => (None, None, None),
    };
    let body = SessionStatus {
        authenticated: auth.is_ok(),
        principal,
        environment,
        scope,
    };
    let mut response = json(StatusCode::OK, &body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `admin` or `environment`, and an environment key's environment and scope.
fn describe(principal: &Principal) -> (&'static str, Option<String>, Option<&'static str>) {
    match principal {
        Principal::Admin => ("admin", None, None),
        Principal::Environment { name, scope } => {
            ("environment", Some(name.clone()), Some(scope.as_str()))
        }
    }
}

/// Whether the caller (a bearer token or the session cookie) is authenticated, and as whom.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionStatus {
    authenticated: bool,
    /// `admin` or `environment`, when authenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'static str>,
    /// The environment of an environment key.
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
    /// The scope of an environment key: `ingest`, `read` or `ingest+read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'static str>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Environment {
    name: String,
}

/// GET /v1/environments: the environments this caller may open (all, for the admin; its own,
/// for a key with the `read` scope).
pub async fn environments(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    super::require_scope(&principal, Scope::Read)?;
    let data: Vec<Environment> = state
        .environments
        .iter()
        .filter(|name| principal.may_access(name))
        .map(|name| Environment { name: name.clone() })
        .collect();
    let mut response = json(StatusCode::OK, &DataPage::all(data));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
