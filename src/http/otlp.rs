//! OTLP/HTTP ingest (docs/otel.md "OTLP ingest"): `POST /v1/environments/{env}/otlp/v1/traces`
//! and `.../otlp/v1/logs`, so an OpenTelemetry SDK's exporter pointed at
//! `/v1/environments/{env}/otlp` sends spans and logs into opslog. Protobuf or JSON, plain or gzip.
//! The answer is OTLP's (in the request's encoding) once what was accepted is durable; spans and
//! records refused alone are counted in its `partialSuccess`. An undecodable body is a 400, a busy
//! writer a 503 with `Retry-After` (an exporter retries those).

use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message as _;

use super::error::ApiError;
use super::extract::{read_limited_body, Auth, Path};
use super::AppState;
use crate::ingest::otlp::{self, Encoding};
use crate::model::Timestamp;
use crate::scope::Scope;
use crate::write::{IngestOtlp, Ingested};

/// POST .../otlp/v1/traces: each span becomes an ended operation, its events its messages.
pub async fn traces(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Ingest)?;
    let (encoding, bytes) = read_request(&state, &headers, body).await?;
    let request = otlp::decode_traces(encoding, &bytes).map_err(undecodable)?;
    let (spans, refused) = otlp::span_operations(&env, request, &state.redaction);
    let ingested = ingest(&state, env, spans, Vec::new()).await?;
    let mut refused_spans = refused;
    if let Some(reason) = ingested.spans_refused.first {
        refused_spans.add_many(ingested.spans_refused.count, reason);
    }
    let answer = ExportTraceServiceResponse {
        partial_success: refused_spans
            .first
            .map(|error_message| ExportTracePartialSuccess {
                rejected_spans: refused_spans.count as i64,
                error_message,
            }),
    };
    let json = |p: &ExportTracePartialSuccess| {
        partial_json("rejectedSpans", p.rejected_spans, &p.error_message)
    };
    Ok(respond(
        encoding,
        &answer,
        answer.partial_success.as_ref().map(json),
    ))
}

/// POST .../otlp/v1/logs: each log record becomes a message of the operation of its span.
pub async fn logs(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Ingest)?;
    let (encoding, bytes) = read_request(&state, &headers, body).await?;
    let request = otlp::decode_logs(encoding, &bytes).map_err(undecodable)?;
    let (messages, refused) = otlp::log_messages(request, &state.redaction, Timestamp::now());
    let ingested = ingest(&state, env, Vec::new(), messages).await?;
    let mut refused_logs = refused;
    if let Some(reason) = ingested.logs_refused.first {
        refused_logs.add_many(ingested.logs_refused.count, reason);
    }
    let answer = ExportLogsServiceResponse {
        partial_success: refused_logs
            .first
            .map(|error_message| ExportLogsPartialSuccess {
                rejected_log_records: refused_logs.count as i64,
                error_message,
            }),
    };
    let json = |p: &ExportLogsPartialSuccess| {
        partial_json(
            "rejectedLogRecords",
            p.rejected_log_records,
            &p.error_message,
        )
    };
    Ok(respond(
        encoding,
        &answer,
        answer.partial_success.as_ref().map(json),
    ))
}

async fn ingest(
    state: &AppState,
    environment: String,
    spans: Vec<otlp::SpanOperation>,
    logs: Vec<otlp::LogMessage>,
) -> Result<Ingested, ApiError> {
    if spans.is_empty() && logs.is_empty() {
        return Ok(Ingested::default());
    }
    // An exporter retries a 503 after `Retry-After`; waiting here would hold its request open.
    if state.writer.is_busy() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the writer's queue is full; nothing was written. Retry after the delay",
        )
        .with_retry_after(std::time::Duration::from_secs(1)));
    }
    let ingested = state
        .writer
        .submit(IngestOtlp {
            environment,
            spans,
            logs,
        })
        .await?;
    state
        .metrics
        .operations_created
        .inc_by(ingested.operations_added);
    Ok(ingested)
}

/// The body's encoding (from `content-type`) and its bytes, gunzipped if it came gzipped; at
/// most `server.max_body_bytes` either way.
async fn read_request(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Encoding, Vec<u8>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let encoding = Encoding::of_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send OTLP as `content-type: application/x-protobuf` or `application/json`, not `{content_type}`"),
        )
        .with_field("content-type")
    })?;
    let gzipped = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("`content-encoding: {other}` is not supported; send gzip or nothing"),
            )
            .with_field("content-encoding"))
        }
    };
    let limit = state.max_body_bytes;
    let bytes = read_limited_body(headers, body, limit).await?;
    if !gzipped {
        return Ok((encoding, bytes.to_vec()));
    }
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut plain)
        .map_err(|e| undecodable(format!("not gzip: {e}")))?;
    if plain.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes (server.max_body_bytes) once decompressed; send smaller batches"),
        ));
    }
    Ok((encoding, plain))
}

fn undecodable(reason: String) -> ApiError {
    ApiError::bad_request("undecodable_body", reason).with_field("body")
}

/// `{"partialSuccess": {...}}` as OTLP/JSON writes it (an int64 as a string).
fn partial_json(count_key: &str, count: i64, message: &str) -> serde_json::Value {
    serde_json::json!({ "partialSuccess": { count_key: count.to_string(), "errorMessage": message } })
}

/// The answer in the request's encoding: `answer` as protobuf, or `partial` (`{}` when
/// everything was accepted) as JSON.
fn respond<T: prost::Message>(
    encoding: Encoding,
    answer: &T,
    partial: Option<serde_json::Value>,
) -> Response {
    let body = match encoding {
        Encoding::Protobuf => answer.encode_to_vec(),
        Encoding::Json => partial
            .unwrap_or_else(|| serde_json::json!({}))
            .to_string()
            .into_bytes(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer (its `details` are never sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The `google.rpc.Code` closest to an HTTP status.
fn rpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        400 | 415 | 422 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        404 => 5,             // NOT_FOUND
        405 => 12,            // UNIMPLEMENTED
        413 | 429 | 507 => 8, // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        500 => 13,            // INTERNAL
        _ => 2,               // UNKNOWN
    }
}

/// Middleware of the OTLP routes: an error answer becomes the `google.rpc.Status` OTLP/HTTP
/// specifies, in the request's encoding (JSON unless it was protobuf), with the same status and
/// headers (`Retry-After`, `WWW-Authenticate`). Its message is opslog's (`<code>: <message>`,
/// and the field at fault), for the person reading an exporter's log.
pub async fn status_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let encoding = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Encoding::of_content_type)
        .unwrap_or(Encoding::Json);
    let response = next.run(request).await;
    if response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // opslog's error bodies are small; a larger one is not one of them.
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let error = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_default();
    let error = &error["error"];
    let mut message = match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(text)) => format!("{code}: {text}"),
        _ => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_owned(),
    };
    if let Some(field) = error["field"].as_str() {
        message.push_str(&format!(" (field `{field}`)"));
    }
    let status = RpcStatus {
        code: rpc_code(parts.status),
        message,
    };
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into_bytes(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    Response::from_parts(parts, Body::from(body))
}
