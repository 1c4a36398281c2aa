//! Handlers for an environment's settings: read (secrets masked), change, reveal the webhook
//! secret, rotate the webhook secret and the ingress token. All need the admin token: settings
//! hold the destinations an environment's data goes to, and its secrets.
//!
//! Changes go through the writer, which validates them against the file's values and installs
//! them once committed.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::audit::Acting;
use super::error::ApiError;
use super::extract::{parse_json_object, parse_query, read_json_body, Auth, Path};
use super::{json, AppState};
use crate::config::ApiDelay;
use crate::model::audit::{AuditAction, AuditDraft};
use crate::model::Timestamp;
use crate::scope::Scope;
use crate::settings::{EnvSettings, SettingsUpdate, SettingsView};
use crate::write::{Audited, ChangeSettings, SettingsChange};

pub async fn get_settings(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Admin)?;
    let settings = current(&state, &env)?;
    Ok(json(
        StatusCode::OK,
        &SettingsView::new(&settings, Timestamp::now()),
    ))
}

pub async fn put_settings(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: Acting,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    let update: SettingsUpdate = parse_json_object(&bytes)?;
    let settings = if update.changes_something() {
        let draft = AuditDraft::new(AuditAction::SettingsChange, acting.actor, Some(env.clone()))
            .target("settings");
        change(&state, env, SettingsChange::Update(Box::new(update)), draft).await?
    } else {
        current(&state, &env)?
    };
    Ok(json(
        StatusCode::OK,
        &SettingsView::new(&settings, Timestamp::now()),
    ))
}

/// The webhook secret in full (admin only).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecretReveal<'a> {
    secret: &'a str,
    /// The rotated-out secret while it still signs.
    previous_secret: Option<&'a str>,
    previous_secret_expires_at: Option<Timestamp>,
}

/// Shows the secret in full; the audit log records that it was shown (not the secret).
pub async fn reveal_webhook_secret(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: Acting,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    let settings = current(&state, &env)?;
    let draft = AuditDraft::new(AuditAction::WebhookSecretReveal, acting.actor, Some(env))
        .target("webhooks.secret");
    super::audit::record(&state, draft).await?;
    Ok(reveal(&settings))
}

fn reveal(settings: &EnvSettings) -> Response {
    let now = Timestamp::now();
    let previous = settings
        .webhooks
        .previous_secret
        .as_ref()
        .filter(|(_, until)| now < *until);
    json(
        StatusCode::OK,
        &SecretReveal {
            secret: &settings.webhooks.secret,
            previous_secret: previous.map(|(s, _)| s.as_str()),
            previous_secret_expires_at: previous.map(|(_, until)| *until),
        },
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateQuery {
    /// How long the old secret keeps signing (default `webhooks.rotation_grace`, 24h).
    grace: Option<ApiDelay>,
}

/// The optional body of a rotation: the secret to sign with from now on.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// An existing Nango signing key (16-256 visible ASCII characters; one starting `whsec_`
    /// must be a valid Standard Webhooks secret) to sign with; left out, opslog issues a fresh
    /// `whsec_` secret.
    #[schema(pattern = "^[!-~]{16,256}$")]
    secret: Option<String>,
}

/// Issues a new secret, or installs the one sent (an existing Nango signing key), and answers
/// with it in full (the caller must give a new one to the receiver); the old one keeps signing
/// for the grace period.
pub async fn rotate_webhook_secret(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: Acting,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    let query: RotateQuery = parse_query(query.as_deref())?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    let secret = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let body: RotateBody = parse_json_object(&bytes)?;
        body.secret
    };
    if let Some(secret) = &secret {
        crate::settings::check_secret(secret)
            .map_err(|m| ApiError::bad_request("invalid_field", format!("`secret` {m}")))?;
    }
    let draft = AuditDraft::new(
        AuditAction::WebhookSecretRotate,
        acting.actor,
        Some(env.clone()),
    )
    .target("webhooks.secret")
    .detail("given", secret.is_some())
    .detail("grace", query.grace);
    let settings = change(
        &state,
        env,
        SettingsChange::RotateSecret {
            grace: query.grace.map(|g| g.0),
            secret,
        },
        draft,
    )
    .await?;
    Ok(reveal(&settings))
}

/// Issues a new ingress token; the old one stops working at once.
pub async fn rotate_ingress_token(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: Acting,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    let draft = AuditDraft::new(
        AuditAction::IngressTokenRotate,
        acting.actor,
        Some(env.clone()),
    )
    .target("ingress.token");
    let settings = change(&state, env, SettingsChange::RotateIngressToken, draft).await?;
    Ok(json(
        StatusCode::OK,
        &SettingsView::new(&settings, Timestamp::now()),
    ))
}

fn current(state: &AppState, env: &str) -> Result<Arc<EnvSettings>, ApiError> {
    state.settings.get(env).ok_or_else(|| {
        ApiError::not_found(
            "environment_not_found",
            format!("environment `{env}` not found for this key"),
        )
    })
}

/// Changes the settings and records it in the audit log, in one commit.
async fn change(
    state: &AppState,
    environment: String,
    change: SettingsChange,
    draft: AuditDraft,
) -> Result<Arc<EnvSettings>, ApiError> {
    let command = ChangeSettings {
        environment,
        change,
    };
    let settings = state.writer.submit(Audited { command, draft }).await?;
    Ok(Arc::new(settings))
}
