//! Handlers for operations and their messages: start, update, read, append, page.
//!
//! Writes go through the writer and answer only once durable; reads run on the blocking pool.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::extract::{parse_json_object, parse_json_objects, read_json_body, Auth, Path};
use super::{json, AppState, DataPage};
use crate::ingest::input::{
    validate_message, validate_new_operation, validate_patch, FieldError, NewMessage, NewOperation,
    OperationPatch, MAX_BATCH,
};
use crate::model::{Id, Message, OpState, Operation};
use crate::scope::Scope;
use crate::write::{AppendMessages, CreateOperation, CreateOperations, Created, UpdateOperation};

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Starts one operation (an object), or several at once (an array, all or nothing); each may
/// carry its first `messages`, stored in the same commit.
pub async fn create_operation(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Ingest)?;
    let idempotency_key = idempotency_key(&headers)?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        if idempotency_key.is_some() {
            return Err(ApiError::bad_request(
                "invalid_header",
                "Idempotency-Key names one operation: send an array without it, or each operation alone with its key",
            )
            .with_field(IDEMPOTENCY_HEADER));
        }
        return create_operations(&state, env, &headers, &bytes).await;
    }
    let input: NewOperation = parse_json_object(&bytes)?;
    let mut draft = validate_new_operation(input, &state.redaction)?;
    if draft.trace_context.is_none() {
        draft.trace_context = super::extract::trace_context(&headers);
    }
    let idempotency = idempotency_key.map(|k| (k, Sha256::digest(&bytes).into()));
    let Created {
        operation,
        replayed,
    } = state
        .writer
        .submit(CreateOperation {
            environment: env,
            idempotency,
            draft,
        })
        .await?;
    let mut response = json(StatusCode::CREATED, &operation);
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// `POST /operations` with an array: at most 1,000 operations and 1,000 messages in all.
async fn create_operations(
    state: &Arc<AppState>,
    environment: String,
    headers: &HeaderMap,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let inputs: Vec<NewOperation> = parse_json_objects(bytes)?;
    check_batch_size(inputs.len(), "operations")?;
    let mut messages = 0;
    let mut drafts = Vec::with_capacity(inputs.len());
    // One request, one caller: its trace headers hold for every operation without its own.
    let trace_context = super::extract::trace_context(headers);
    for (i, input) in inputs.into_iter().enumerate() {
        let mut draft =
            validate_new_operation(input, &state.redaction).map_err(|e| e.in_item(i))?;
        if draft.trace_context.is_none() {
            draft.trace_context = trace_context.clone();
        }
        messages += draft.messages.len();
        drafts.push(draft);
    }
    check_batch_size(messages, "messages")?;
    let created = state
        .writer
        .submit(CreateOperations {
            environment,
            drafts,
        })
        .await?;
    Ok(if prefers_minimal(headers) {
        minimal_created()
    } else {
        json(
            StatusCode::CREATED,
            &DataPage::all(created.iter().collect()),
        )
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or("");
    let valid = !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY
        && key.bytes().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters"),
        )
        .with_field("Idempotency-Key"));
    }
    Ok(Some(key.to_owned()))
}

pub async fn update_operation(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Ingest)?;
    let id = parse_id(&id)?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    let patch: OperationPatch = parse_json_object(&bytes)?;
    let patch = validate_patch(patch, &state.redaction)?;
    let operation = state
        .writer
        .submit(UpdateOperation {
            environment: env,
            id,
            patch,
        })
        .await?;
    Ok(json(StatusCode::OK, &operation))
}

pub async fn get_operation(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let id = parse_id(&id)?;
    let operation = load_operation(&state, &env, id).await?;
    Ok(json(StatusCode::OK, &operation))
}

/// What an action returned: its `output` as stored, `null` when it reported none. This is the
/// `statusUrl` of Nango's `async_action` webhook, answered as Nango answers its own: the bare
/// output. 409 while it runs, or when it did not succeed (its error says why).
pub async fn get_output(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let id = parse_id(&id)?;
    let operation = load_operation(&state, &env, id).await?;
    match operation.state {
        OpState::Success => {
            let text = operation.output.as_ref().map_or("null", |o| o.text());
            let mut response = Response::new(Body::from(text.to_owned()));
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        OpState::Waiting | OpState::Running => Err(ApiError::new(
            StatusCode::CONFLICT,
            "operation_running",
            format!("operation `{id}` is still {}; its output is read once it ends (`action.completed` says when)", operation.state),
        )),
        state => Err(ApiError::new(
            StatusCode::CONFLICT,
            "operation_not_successful",
            format!(
                "operation `{id}` ended as {state}: {}",
                operation.error.as_ref().map_or("no error was reported", |e| e.message.as_str())
            ),
        )),
    }
}

/// One operation of `env`, or a 404 (also when it belongs to another environment).
async fn load_operation(state: &Arc<AppState>, env: &str, id: Id) -> Result<Operation, ApiError> {
    let store = state.store.clone();
    let found = super::blocking(move || Ok(store.read()?.operation(id)?)).await?;
    found
        .filter(|op| op.environment == env)
        .ok_or_else(|| operation_not_found(id))
}

pub async fn append_messages(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Ingest)?;
    let op_id = parse_id(&id)?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    let is_batch = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let inputs: Vec<NewMessage> = if is_batch {
        parse_json_objects(&bytes)?
    } else {
        vec![parse_json_object(&bytes)?]
    };
    check_batch_size(inputs.len(), "messages")?;
    let mut messages = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let located = |e: FieldError| if is_batch { e.in_item(i) } else { e };
        if input.operation_id.is_some() {
            return Err(located(FieldError::new(
                "operation_id",
                "must be left out here: the URL names the operation (POST /messages takes messages for many operations)",
            ))
            .into());
        }
        messages.push((
            op_id,
            validate_message(input, &state.redaction).map_err(located)?,
        ));
    }
    let stored = submit_messages(&state, env, messages).await?;
    Ok(if prefers_minimal(&headers) {
        minimal_created()
    } else if is_batch {
        json(StatusCode::CREATED, &DataPage::all(stored.iter().collect()))
    } else {
        json(StatusCode::CREATED, &stored[0])
    })
}

pub async fn append_batch(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Ingest)?;
    let bytes = read_json_body(&headers, body, state.max_body_bytes).await?;
    let inputs: Vec<NewMessage> = parse_json_objects(&bytes).map_err(|e| {
        if e.code == "invalid_field" && e.field.is_none() {
            ApiError::bad_request(
                "invalid_field",
                format!(
                    "{}; POST /messages takes a JSON array of messages, each with `operation_id`",
                    e.message
                ),
            )
        } else {
            e
        }
    })?;
    check_batch_size(inputs.len(), "messages")?;
    let mut messages = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let Some(op_id) = input.operation_id else {
            return Err(FieldError::new(
                "operation_id",
                "is required in a batch across operations",
            )
            .in_item(i)
            .into());
        };
        let draft = validate_message(input, &state.redaction).map_err(|e| e.in_item(i))?;
        messages.push((op_id, draft));
    }
    let stored = submit_messages(&state, env, messages).await?;
    Ok(if prefers_minimal(&headers) {
        minimal_created()
    } else {
        json(StatusCode::CREATED, &DataPage::all(stored.iter().collect()))
    })
}

/// `Prefer: return=minimal` (RFC 7240): the client needs only to know its messages are stored,
/// not to read them back, which spares serializing and sending every stored message.
fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| {
            let preference = preference.split(';').next().unwrap_or_default();
            let (name, value) = preference.split_once('=').unwrap_or((preference, ""));
            name.trim().eq_ignore_ascii_case("return")
                && value
                    .trim()
                    .trim_matches('"')
                    .eq_ignore_ascii_case("minimal")
        })
}

/// Stored (durable), nothing to read back: 204 with `Preference-Applied`.
fn minimal_created() -> Response {
    let mut response = axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT);
    response.headers_mut().insert(
        axum::http::header::HeaderName::from_static("preference-applied"),
        axum::http::HeaderValue::from_static("return=minimal"),
    );
    response
}

/// At most `MAX_BATCH` messages (or operations) in one request.
fn check_batch_size(len: usize, what: &str) -> Result<(), ApiError> {
    if len > MAX_BATCH {
        return Err(ApiError::bad_request(
            "batch_too_large",
            format!("{len} {what} in one request; the limit is {MAX_BATCH}. Split the batch"),
        ));
    }
    Ok(())
}

async fn submit_messages(
    state: &Arc<AppState>,
    environment: String,
    messages: Vec<(Id, crate::ingest::input::MessageDraft)>,
) -> Result<Arc<[Message]>, ApiError> {
    if messages.is_empty() {
        return Ok(Arc::new([]));
    }
    let stored = state
        .writer
        .submit(AppendMessages {
            environment,
            messages,
        })
        .await?;
    Ok(stored)
}

pub(super) fn parse_id(text: &str) -> Result<Id, ApiError> {
    Id::parse(text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_id",
            "operation ids are 26-character ULIDs, as returned by POST /operations",
        )
        .with_field("id")
    })
}

pub(super) fn operation_not_found(id: Id) -> ApiError {
    ApiError::not_found("operation_not_found", format!("operation `{id}` not found"))
}
