//! Export, import and backup: GET /export streams an environment's operations and messages as
//! NDJSON (`archive`) from one read snapshot; POST /import adds such lines through the writer,
//! keeping ids; GET /v1/backup streams a copy of the whole redb database from one read snapshot.
//!
//! Snapshots are read on the blocking pool and streamed through a bounded channel, so a large
//! export holds neither the runtime nor much memory, and never blocks the writer.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::channel::{Channel, Sender};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{parse_query, read_limited_body, Auth, Path};
use super::{json, AppState};
use crate::archive::{self, Line};
use crate::model::audit::{AuditAction, AuditDraft};
use crate::model::Timestamp;
use crate::scope::Scope;
use crate::write::{Audited, Import};

/// Bytes gathered before a chunk goes to the client.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting for a slow client before the snapshot reader waits too.
const CHUNKS_IN_FLIGHT: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    from: Option<String>,
    to: Option<String>,
}

fn parse_time(value: Option<&str>, field: &str) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|v| {
            Timestamp::parse(v)
                .map_err(|e| ApiError::bad_request("invalid_query", e).with_field(field))
        })
        .transpose()
}

/// GET /v1/environments/{env}/export?from=&to=: the environment's operations created in the
/// window, each with its messages, then the end line. An environment key exports its own.
pub async fn export(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let query: ExportQuery = parse_query(query.as_deref())?;
    let from = parse_time(query.from.as_deref(), "from")?;
    let to = parse_time(query.to.as_deref(), "to")?;
    // Open the snapshot before answering, so a store failure is still a proper error.
    let store = state.store.clone();
    let read = super::blocking(move || Ok(store.read()?)).await?;
    let response = stream_blocking(archive::CONTENT_TYPE, move |out| {
        archive::write_export(&read, &env, from, to, out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    Ok(response)
}

/// POST /v1/environments/{env}/import: export lines (NDJSON, at most `server.max_body_bytes`
/// per request) added with their ids; admin only. A message must follow its operation, in this
/// request or an earlier one. Answers what was added and what was already there.
pub async fn import(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    acting: super::audit::Acting,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    state.authorize(&acting.principal, &env, Scope::Admin)?;
    // The lines of an export as NDJSON (what `GET /export` gives and `opslog import` sends), or
    // the same lines as one JSON array (what an OpenAPI client or fuzzer generates).
    let json_array = match headers.get(header::CONTENT_TYPE) {
        None => false,
        Some(ct) => {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = ct.split(';').next().unwrap_or("").trim().to_owned();
            if essence == archive::CONTENT_TYPE {
                false
            } else if essence == "application/json" {
                true
            } else {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                        "send the lines of an export with `content-type: {}` (one per line) or \
                         `application/json` (an array of them), not `{essence}`",
                        archive::CONTENT_TYPE
                    ),
                ));
            }
        }
    };
    let bytes = read_limited_body(&headers, body, state.max_body_bytes).await?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_utf8",
            format!(
                "the request body is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body is empty; send the lines of an export (GET /export), one per line",
        ));
    }
    let lines: Vec<String> = if json_array {
        let items: Vec<Box<serde_json::value::RawValue>> =
            serde_json::from_str(text).map_err(|e| {
                ApiError::bad_request(
                    "invalid_json",
                    format!("an `application/json` import is an array of export lines: {e}"),
                )
            })?;
        if items.is_empty() {
            return Err(ApiError::bad_request(
                "empty_body",
                "the array is empty; send the lines of an export (GET /export)",
            ));
        }
        items
            .into_iter()
            .map(|item| item.get().to_owned())
            .collect()
    } else {
        text.lines().map(str::to_owned).collect()
    };
    let (mut operations, mut messages) = (Vec::new(), Vec::new());
    for (number, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match archive::parse_line(line) {
            Ok(Line::Operation(operation)) => {
                // The bounds the API holds new operations to: every stored one keeps them.
                crate::ingest::input::check_context(operation.end_user.as_ref(), &operation.tags)
                    .and_then(|()| {
                        crate::ingest::input::check_nango_fields(
                            operation.checkpoints.as_ref(),
                            operation.auth_mode.as_deref(),
                            operation.output.as_ref(),
                        )
                    })
                    .map_err(|e| {
                        ApiError::bad_request(
                            "invalid_import_line",
                            format!("line {}: `operation.{}` {}", number + 1, e.field, e.message),
                        )
                    })?;
                if let Some(Err(e)) = operation.trace_context.as_ref().map(|t| t.check()) {
                    return Err(ApiError::bad_request(
                        "invalid_import_line",
                        format!("line {}: `operation.trace_context`: {e}", number + 1),
                    ));
                }
                operations.push(*operation)
            }
            Ok(Line::Message(message)) => messages.push(*message),
            Ok(Line::End(_)) => {}
            Err(e) => {
                return Err(ApiError::bad_request(
                    "invalid_import_line",
                    format!("line {}: {e}", number + 1),
                ))
            }
        }
    }
    let draft = AuditDraft::new(AuditAction::Import, acting.actor, Some(env.clone()));
    let command = Import {
        environment: env,
        operations,
        messages,
    };
    let counts = state.writer.submit(Audited { command, draft }).await?;
    Ok(json(StatusCode::OK, &counts))
}

/// GET /v1/backup: a consistent copy of the whole database (every environment, settings,
/// deliveries, credentials) as a redb file, taken from one read snapshot while writes go on.
/// Admin only. Restore: stop opslog, put the file at `<data_dir>/opslog.redb`, remove
/// `<data_dir>/index` (it is rebuilt), start.
pub async fn backup(
    State(state): State<Arc<AppState>>,
    acting: super::audit::Acting,
) -> Result<Response, ApiError> {
    super::require_scope(&acting.principal, Scope::Admin)?;
    let store = state.store.clone();
    // The copy goes to an unnamed temporary file beside the database (same disk, no leftovers
    // after a crash) and is streamed from there.
    let dir = store
        .path()
        .parent()
        .map(std::path::Path::to_owned)
        .unwrap_or_default();
    let copy = super::blocking(move || {
        let file = tempfile::tempfile_in(&dir)
            .map_err(|e| ApiError::internal("cannot create the backup file", &e))?;
        let rows = store.read()?.copy_to(
            file.try_clone()
                .map_err(|e| ApiError::internal("cannot reopen the backup file", &e))?,
        )?;
        tracing::info!(rows, "backup snapshot written");
        Ok(file)
    })
    .await?;
    // The copy is taken: the audit log records that it is handed out, before any byte is.
    let draft = AuditDraft::new(AuditAction::BackupDownload, acting.actor, None);
    super::audit::record(&state, draft).await?;
    let mut response = stream_blocking("application/octet-stream", move |out| {
        use std::io::Seek;
        let mut copy = copy;
        copy.rewind().map_err(|e| e.to_string())?;
        std::io::copy(&mut copy, out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    response.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"opslog.redb\""),
    );
    Ok(response)
}

/// A response whose body `produce` writes on the blocking pool. A failure midway is logged and
/// ends the body early (the status is already sent); export files carry an end line for that.
pub(super) fn stream_blocking(
    content_type: &'static str,
    produce: impl FnOnce(&mut ChunkWriter) -> Result<(), String> + Send + 'static,
) -> Response {
    let (sender, body) = Channel::<Bytes, std::io::Error>::new(CHUNKS_IN_FLIGHT);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            sender,
            runtime,
            buffer: Vec::with_capacity(CHUNK),
        };
        let produced = produce(&mut out).and_then(|()| {
            use std::io::Write;
            out.flush().map_err(|e| e.to_string())
        });
        if let Err(e) = produced {
            tracing::warn!(error = %e, "streamed response ended early");
            out.sender.abort(std::io::Error::other(e));
        }
    });
    let mut response = (StatusCode::OK, Body::new(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Buffers what is written and sends it to the response body in chunks, waiting while the
/// client is slow. Fails once the client is gone.
pub(super) struct ChunkWriter {
    sender: Sender<Bytes, std::io::Error>,
    runtime: tokio::runtime::Handle,
    buffer: Vec<u8>,
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.runtime
            .block_on(self.sender.send_data(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}
