//! Ingress for third-party webhooks: `POST /v1/hooks/{ingress_token}/{integration}`. The
//! unguessable per-environment token authenticates (no bearer). The payload is recorded as a
//! `webhook:incoming` operation, which queues `webhook.received`; the answer is a 200 only once
//! both are committed. The operation stays `running` until it is processed: the forwards of
//! `webhook.received` settle it (see the writer), or the platform does through the API.
//!
//! Must not: store the token (it is a credential) or sensitive header values.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use super::error::ApiError;
use super::extract::{read_limited, BodyRefused, Path};
use super::{json, AppState};
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
    // Third parties add their own query parameters: only `connection_id` is ours.
    let params: HashMap<String, String> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
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
    let payload = payload(&headers, &bytes);
    let mut url = format!("/v1/hooks/{REDACTED}/{integration}");
    if let Some(connection) = params.get("connection_id") {
        url.push_str("?connection_id=");
        url.push_str(&urlencoding::encode(connection));
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
        provider: None,
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
        trace_context: None,
        started_at: None,
        ended_at: None,
        expires_at: None,
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

/// The body as JSON when it is JSON (at most `MAX_JSON_DEPTH` deep), else as a JSON string (lossy
/// UTF-8); empty is `null`.
fn payload(headers: &HeaderMap, bytes: &[u8]) -> Json {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Json::from_value(&serde_json::Value::Null);
    }
    let declared_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.contains("json"));
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
