//! Ingress for third-party webhooks: `POST /v1/hooks/{ingress_token}/{integration}`. The
//! unguessable per-environment token authenticates (no bearer). The payload is recorded as a
//! `webhook:incoming` operation, which queues `webhook.received`; the answer is a 200 only once
//! both are committed. The operation stays `running` until it is processed: the forwards of
//! `webhook.received` settle it (see the writer), or the platform does through the API.
//!
//! Must not: store the token (it is a credential) or sensitive header values.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::error::ApiError;
use super::extract::{read_limited, BodyRefused, Path};
use super::{json, AppState};
use crate::ingest::handshake;
use crate::ingest::input::{validate_new_operation, NewOperation, REDACTED};
use crate::model::{json_depth, Headers, HttpRequest, Json, OpState, OpType, MAX_JSON_DEPTH};
use crate::write::{CreateOperation, Created};

/// Transport headers that say nothing about the event; left out of what is stored.
const DROPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "accept-encoding",
    "keep-alive",
];

pub async fn receive_webhook(
    State(state): State<Arc<AppState>>,
    Path((token, integration)): Path<(String, String)>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let environment = state
        .settings
        .environment_of_ingress_token(&token)
        .ok_or_else(|| {
            ApiError::not_found(
                "hook_not_found",
                "no environment has this ingress token; copy the current one from GET /settings",
            )
        })?;
    // Third parties add their own query parameters: only `connection_id` and `provider` are ours.
    let params: BTreeMap<String, String> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(query.as_deref().unwrap_or(""))
            .unwrap_or_default()
            .into_iter()
            .collect();
    let limit = state.incoming_webhook_max_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the webhook body is larger than {limit} bytes (ingest.incoming_webhook_max_bytes)"
            ),
        )
    };
    let bytes = match read_limited(&headers, body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyRefused::TooLarge) => return Err(too_large()),
        Err(BodyRefused::Unreadable(e)) => return Err(e),
    };
    // The provider (Nango's `from`): `?provider=`, else the integration key, which Nango's
    // integrations are named after unless renamed. It decides which URL check is answered.
    let provider = params
        .get("provider")
        .cloned()
        .unwrap_or_else(|| integration.clone());
    let payload = payload(&provider, &headers, &bytes);
    let lowercase: BTreeMap<String, String> = headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let parsed: Option<serde_json::Value> = serde_json::from_str(payload.text()).ok();
    let request = handshake::Request {
        method: method.as_str(),
        query: &params,
        headers: &lowercase,
        body: parsed.as_ref(),
    };
    if let Some(answer) = handshake::answer(&provider, &request) {
        tracing::info!(%provider, %integration, method = %method, "ingress url check answered");
        return Ok(handshake_response(answer));
    }
    if method != Method::POST {
        // Nothing to read here: a GET is only ever a provider's URL check.
        return Err(ApiError::not_found(
            "no_url_check",
            format!(
                "this URL takes webhooks as POST; a {method} is answered only as a provider's URL check, and this is none that provider `{provider}` makes (set `?provider=` if the integration is named otherwise)"
            ),
        ));
    }
    let mut kept = Headers::new();
    for (name, value) in &headers {
        if DROPPED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        kept.entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut url = format!("/v1/hooks/{REDACTED}/{integration}");
    let ours = ["connection_id", "provider"];
    for (i, (name, value)) in ours
        .iter()
        .filter_map(|name| Some((name, params.get(*name)?)))
        .enumerate()
    {
        url.push(if i == 0 { '?' } else { '&' });
        url.push_str(name);
        url.push('=');
        url.push_str(&urlencoding::encode(value));
    }

    let input = NewOperation {
        kind: OpType::Webhook,
        action: Some("incoming".into()),
        // Open until something processes it: the backend's answer to `webhook.received`, or
        // the platform settling it through the API; else its deadline ends it.
        state: Some(OpState::Running),
        integration: Some(integration),
        connection_id: params.get("connection_id").cloned(),
        script: None,
        provider: Some(provider),
        message: None,
        error: None,
        request: Some(HttpRequest {
            method: "POST".into(),
            url,
            headers: Some(kept),
            body: Some(payload),
        }),
        response: None,
        records: None,
        meta: Some(Json::from_value(
            &serde_json::json!({ "payload_bytes": bytes.len() }),
        )),
        end_user: None,
        tags: None,
        is_async: None,
        sync_type: None,
        checkpoints: None,
        auth_mode: None,
        output: None,
        trace_context: None,
        started_at: None,
        ended_at: None,
        expires_at: None,
        messages: None,
    };
    let mut draft = validate_new_operation(input, &state.redaction)?;
    // A sender that traces its webhooks (`traceparent`) sees their handling in its trace.
    draft.trace_context = super::extract::trace_context(&headers);
    let Created { operation, .. } = state
        .writer
        .submit(CreateOperation {
            environment,
            idempotency: None,
            draft,
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &Received {
            status: "received",
            operation_id: operation.id,
        },
    ))
}

/// The answer to a third party: its webhook is recorded.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Received {
    /// Always `received`.
    status: &'static str,
    /// The `webhook:incoming` operation that records it.
    operation_id: crate::model::Id,
}

/// The answer a provider's URL check wants.
fn handshake_response(answer: handshake::Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    if let Some(content_type) = answer.content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    for (name, value) in answer.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// The body as JSON when it is JSON (at most `MAX_JSON_DEPTH` deep), a form as the JSON object
/// Nango makes of it (`handshake::form_payload`), else as a JSON string (lossy UTF-8); empty is
/// `null`.
fn payload(provider: &str, headers: &HeaderMap, bytes: &[u8]) -> Json {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Json::from_value(&serde_json::Value::Null);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let form = content_type.is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if form {
        if let Some(fields) = handshake::form_payload(provider, bytes) {
            if json_depth(fields.to_string().as_bytes()) <= MAX_JSON_DEPTH {
                return Json::from_value(&fields);
            }
        }
    }
    let declared_json = content_type.is_none_or(|ct| ct.contains("json"));
    // JSON nested deeper than a stored value may be is kept as text, like any other body.
    if declared_json && json_depth(bytes) <= MAX_JSON_DEPTH {
        if let Ok(raw) = serde_json::from_slice::<Box<serde_json::value::RawValue>>(bytes) {
            return Json(raw);
        }
    }
    Json::from_value(&serde_json::Value::String(
        String::from_utf8_lossy(bytes).into_owned(),
    ))
}
