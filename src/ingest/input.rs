//! What clients send, and the pure rules that turn it into stored values: defaults, truncation of
//! oversized text, redaction of sensitive headers, field limits.
//!
//! Must not: read or write the store. Everything here is a plain function, unit-tested below.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::model::*;

/// The longest message text stored, in characters; longer text is cut and marked.
pub const MAX_MESSAGE_CHARS: usize = 10_000;
/// The largest `meta` stored, in bytes of JSON; larger is replaced by a marked preview.
pub const MAX_META_BYTES: usize = 100 * 1024;
/// The most messages one request may append.
pub const MAX_BATCH: usize = 1_000;
/// The longest short string field (integration, connection_id, ...), in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// The largest `checkpoints`, in bytes of JSON.
pub const MAX_CHECKPOINTS_BYTES: usize = 16 * 1024;
/// The largest action `output`, in bytes of JSON: refused beyond, since a cut result is wrong.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
pub use crate::model::{MAX_TAGS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, TAG_KEY_PATTERN};

pub const REDACTED: &str = "[REDACTED]";
const ALWAYS_REDACTED: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "proxy-authorization",
];

/// A client mistake in one field: the 4xx the API answers with names `field`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error for a field inside a list item, e.g. `[3].level`.
    pub fn in_item(mut self, index: usize) -> FieldError {
        self.field = format!("[{index}].{}", self.field);
        self
    }

    /// The same error for a field of a list's item inside `list`, e.g. `messages[3].level`.
    pub fn within(mut self, list: &str) -> FieldError {
        self.field = format!("{list}{}", self.field);
        self
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOperation {
    #[serde(rename = "type")]
    pub kind: OpType,
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub action: Option<String>,
    pub state: Option<OpState>,
    #[schema(min_length = 1, max_length = 256)]
    pub integration: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    pub connection_id: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    pub script: Option<String>,
    #[schema(min_length = 1, max_length = 256)]
    pub provider: Option<String>,
    pub message: Option<String>,
    #[serde(default, deserialize_with = "optional_object")]
    pub error: Option<ErrorInfo>,
    #[serde(default, deserialize_with = "optional_object")]
    pub request: Option<HttpRequest>,
    #[serde(default, deserialize_with = "optional_object")]
    pub response: Option<HttpResponse>,
    #[serde(default, deserialize_with = "optional_objects")]
    pub records: Option<Vec<RecordCount>>,
    pub meta: Option<Json>,
    /// Who the operation acts for (Nango's end user); fixed once started.
    #[serde(default, deserialize_with = "optional_object")]
    pub end_user: Option<EndUser>,
    /// Labels, at most 32: keys 1-64 characters of letters, digits, `_`, `-`, `.`, `/`; values
    /// 1-256 characters. Fixed once started; filter with `tag=key:value`.
    #[schema(schema_with = tags_schema)]
    pub tags: Option<Tags>,
    /// For an action: it runs asynchronously, and its end fires `action.completed` (other types
    /// keep the flag and fire nothing).
    #[serde(rename = "async")]
    pub is_async: Option<bool>,
    /// For a sync run: how it began (`full`, `incremental` or `webhook`); Nango receivers get it
    /// as `syncType`.
    pub sync_type: Option<SyncType>,
    /// For a sync run: `{"from": <checkpoint>|null, "to": <checkpoint>|null}`, each a flat object
    /// of strings, numbers and booleans (at most 64 keys); Nango receivers get it as
    /// `checkpoints`, and treat `from: null` as a full sync.
    #[schema(schema_with = crate::model::checkpoints_schema)]
    pub checkpoints: Option<Json>,
    /// For an auth operation: the connection's auth mode, one of Nango's (`OAUTH2`, `API_KEY`, ...).
    #[schema(schema_with = crate::model::auth_mode_schema)]
    pub auth_mode: Option<String>,
    /// For an action: what it returned (at most 1 MiB of JSON).
    pub output: Option<Json>,
    /// The caller's trace, for clients that cannot send the `traceparent` header: what an
    /// OpenTelemetry propagator injects into a carrier. Wins over the headers.
    #[serde(default, deserialize_with = "optional_object")]
    pub trace_context: Option<TraceCarrier>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    /// Its first messages (at most 1,000), stored with it in the same commit: each as for
    /// `POST /operations/{id}/messages`, without `operation_id`.
    #[serde(default)]
    #[schema(schema_with = first_messages_schema)]
    pub messages: Option<Vec<NewMessage>>,
}

/// `messages` of a new operation: messages without `operation_id` (they belong to it).
fn first_messages_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, Type};
    use utoipa::openapi::Ref;
    let absent = ObjectBuilder::new()
        .schema_type(Type::Null)
        .description(Some(
            "leave it out: the messages belong to the new operation",
        ));
    let item = AllOfBuilder::new()
        .item(Ref::from_schema_name("NewMessage"))
        .item(ObjectBuilder::new().property("operation_id", absent));
    ArrayBuilder::new()
        .items(item)
        .max_items(Some(MAX_BATCH))
        .build()
}

/// W3C Trace Context headers as JSON fields. A `traceparent` that is not valid is ignored (with
/// its `tracestate`), as the W3C specifies for the headers; other keys a propagator adds
/// (`baggage`) are ignored too.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct TraceCarrier {
    /// `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`.
    #[schema(example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    pub traceparent: Option<String>,
    /// Vendor entries, passed on with the operation's span.
    pub tracestate: Option<String>,
}

impl TraceCarrier {
    /// The context it carries, if its `traceparent` is valid.
    pub fn context(&self) -> Option<TraceContext> {
        TraceContext::from_w3c(self.traceparent.as_deref()?, self.tracestate.as_deref())
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationPatch {
    pub state: Option<OpState>,
    pub message: Option<String>,
    #[serde(default, deserialize_with = "optional_object")]
    pub error: Option<ErrorInfo>,
    #[serde(default, deserialize_with = "optional_objects")]
    pub records: Option<Vec<RecordCount>>,
    pub meta: Option<Json>,
    #[serde(default, deserialize_with = "optional_object")]
    pub request: Option<HttpRequest>,
    #[serde(default, deserialize_with = "optional_object")]
    pub response: Option<HttpResponse>,
    /// As in `POST /operations`; a value replaces the one set before.
    pub sync_type: Option<SyncType>,
    /// As in `POST /operations`, typically sent with the run's end.
    #[schema(schema_with = crate::model::checkpoints_schema)]
    pub checkpoints: Option<Json>,
    #[schema(schema_with = crate::model::auth_mode_schema)]
    pub auth_mode: Option<String>,
    /// For an action: what it returned, typically sent with its end.
    pub output: Option<Json>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub operation_id: Option<Id>,
    #[serde(rename = "type")]
    pub kind: Option<MessageType>,
    pub level: Option<Level>,
    pub source: Option<Source>,
    pub message: Option<String>,
    #[serde(default, deserialize_with = "optional_object")]
    pub request: Option<HttpRequest>,
    #[serde(default, deserialize_with = "optional_object")]
    pub response: Option<HttpResponse>,
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    #[serde(default, deserialize_with = "optional_whole")]
    pub duration_ms: Option<u64>,
    #[serde(default, deserialize_with = "optional_object")]
    pub retry: Option<Retry>,
    #[serde(default, deserialize_with = "optional_object")]
    pub error: Option<ErrorInfo>,
    pub meta: Option<Json>,
    pub created_at: Option<Timestamp>,
}

/// How sensitive headers are found: the built-in names plus the configured ones, lowercase.
#[derive(Debug, Clone)]
pub struct Redaction {
    names: BTreeSet<String>,
}

impl Redaction {
    pub fn new(extra: &[String]) -> Redaction {
        let names = ALWAYS_REDACTED
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().map(|s| s.to_ascii_lowercase()))
            .collect();
        Redaction { names }
    }

    fn headers(&self, headers: &mut Option<Headers>) {
        for (name, value) in headers.iter_mut().flatten() {
            if self.names.contains(&name.to_ascii_lowercase()) {
                *value = REDACTED.to_owned();
            }
        }
    }

    pub fn request(&self, request: &mut Option<HttpRequest>) {
        if let Some(r) = request {
            self.headers(&mut r.headers);
        }
    }

    pub fn response(&self, response: &mut Option<HttpResponse>) {
        if let Some(r) = response {
            self.headers(&mut r.headers);
        }
    }
}

/// Cuts `text` to at most `MAX_MESSAGE_CHARS` characters, the cut marked at the end.
pub fn truncate_message(text: String) -> String {
    let total = text.chars().count();
    if total <= MAX_MESSAGE_CHARS {
        return text;
    }
    let marker = |dropped: usize| format!(" … [truncated {dropped} characters]");
    let keep = MAX_MESSAGE_CHARS - marker(total).chars().count();
    let mut out: String = text.chars().take(keep).collect();
    out.push_str(&marker(total - keep));
    out
}

/// Replaces a `meta` over `MAX_META_BYTES` with a marked preview of its start.
pub fn limit_meta(meta: Option<Json>) -> Option<Json> {
    let meta = meta?;
    let text = meta.text();
    if text.len() <= MAX_META_BYTES {
        return Some(meta);
    }
    let preview: String = text.chars().take(1_000).collect();
    Some(Json::from_value(&serde_json::json!({
        "opslog_truncated": true,
        "original_bytes": text.len(),
        "preview": preview,
    })))
}

pub fn check_name(field: &str, value: &Option<String>) -> Result<(), FieldError> {
    match value {
        Some(v) if v.is_empty() => Err(FieldError::new(
            field,
            "must not be empty; leave it out instead",
        )),
        Some(v) if v.chars().count() > MAX_NAME_CHARS => Err(FieldError::new(
            field,
            format!("is longer than {MAX_NAME_CHARS} characters"),
        )),
        _ => Ok(()),
    }
}

/// The bounds of an operation's end user and tags (also checked on import).
pub fn check_context(user: Option<&EndUser>, tags: &Tags) -> Result<(), FieldError> {
    if let Some(user) = user {
        check_end_user(user)?;
    }
    check_tags(tags)
}

fn check_end_user(user: &EndUser) -> Result<(), FieldError> {
    check_name("end_user.id", &Some(user.id.clone()))?;
    check_name("end_user.email", &user.email)?;
    check_name("end_user.display_name", &user.display_name)?;
    if let Some(org) = &user.organization {
        check_name("end_user.organization.id", &Some(org.id.clone()))?;
        check_name("end_user.organization.display_name", &org.display_name)?;
    }
    Ok(())
}

/// The JSON Schema of `tags` in a request (`null` allowed), with the bounds `check_tags` holds
/// them to.
fn tags_schema() -> utoipa::openapi::schema::Object {
    crate::model::tags_schema(true)
}

/// Whether `key` can be a tag key: what `tag=key:value` can name without ambiguity.
pub fn is_tag_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= MAX_TAG_KEY_CHARS
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

pub fn check_tags(tags: &Tags) -> Result<(), FieldError> {
    if tags.len() > MAX_TAGS {
        return Err(FieldError::new(
            "tags",
            format!(
                "has {} tags; at most {MAX_TAGS} are kept per operation",
                tags.len()
            ),
        ));
    }
    for (key, value) in tags {
        if !is_tag_key(key) {
            return Err(FieldError::new(
                format!("tags.{key}"),
                format!("the key must be 1-{MAX_TAG_KEY_CHARS} characters a-z, A-Z, 0-9, '_', '-', '.' or '/'"),
            ));
        }
        if value.is_empty() || value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(FieldError::new(
                format!("tags.{key}"),
                format!("the value must be 1-{MAX_TAG_VALUE_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

/// The fields Nango's webhooks carry: `checkpoints` is Nango's `CheckpointRange` (an object
/// with `from` and `to`, each null or a flat object of strings, numbers and booleans),
/// `auth_mode` one of Nango's auth modes, `output` at most `MAX_OUTPUT_BYTES`.
pub fn check_nango_fields(
    checkpoints: Option<&Json>,
    auth_mode: Option<&str>,
    output: Option<&Json>,
) -> Result<(), FieldError> {
    if let Some(checkpoints) = checkpoints {
        check_checkpoints(checkpoints)?;
    }
    if let Some(mode) = auth_mode {
        if !AUTH_MODES.contains(&mode) {
            return Err(FieldError::new(
                "auth_mode",
                format!(
                    "`{mode}` is not an auth mode; use one of {}",
                    AUTH_MODES.join(", ")
                ),
            ));
        }
    }
    if let Some(output) = output {
        if output.text().len() > MAX_OUTPUT_BYTES {
            return Err(FieldError::new(
                "output",
                format!(
                    "is {} bytes of JSON; an action's output may be at most {MAX_OUTPUT_BYTES}",
                    output.text().len()
                ),
            ));
        }
    }
    Ok(())
}

fn check_checkpoints(checkpoints: &Json) -> Result<(), FieldError> {
    use serde_json::Value;
    if checkpoints.text().len() > MAX_CHECKPOINTS_BYTES {
        return Err(FieldError::new(
            "checkpoints",
            format!("is larger than {MAX_CHECKPOINTS_BYTES} bytes of JSON"),
        ));
    }
    let value: Value = serde_json::from_str(checkpoints.text())
        .map_err(|e| FieldError::new("checkpoints", e.to_string()))?;
    let Value::Object(range) = value else {
        return Err(FieldError::new(
            "checkpoints",
            "must be an object {\"from\": <checkpoint or null>, \"to\": <checkpoint or null>}",
        ));
    };
    if let Some(key) = range.keys().find(|k| !matches!(k.as_str(), "from" | "to")) {
        return Err(FieldError::new(
            format!("checkpoints.{key}"),
            "is not a field of checkpoints; only `from` and `to` are",
        ));
    }
    for (end, checkpoint) in &range {
        let field = format!("checkpoints.{end}");
        let values = match checkpoint {
            Value::Null => continue,
            Value::Object(values) => values,
            _ => {
                return Err(FieldError::new(
                    field,
                    "must be null or an object of strings, numbers and booleans",
                ))
            }
        };
        if values.len() > MAX_CHECKPOINT_KEYS {
            return Err(FieldError::new(
                field,
                format!("has {} keys; at most {MAX_CHECKPOINT_KEYS}", values.len()),
            ));
        }
        for (key, value) in values {
            if key.is_empty() || key.chars().count() > MAX_NAME_CHARS {
                return Err(FieldError::new(
                    format!("{field}.{key}"),
                    format!("a key must be 1-{MAX_NAME_CHARS} characters"),
                ));
            }
            if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                return Err(FieldError::new(
                    format!("{field}.{key}"),
                    "must be a string, a number or a boolean (a checkpoint is flat)",
                ));
            }
        }
    }
    Ok(())
}

fn check_action(action: &str) -> Result<(), FieldError> {
    let ok = !action.is_empty()
        && action.len() <= 64
        && action
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            "action",
            "must be 1-64 characters a-z, 0-9, '_' or '-' (for example `run` or `refresh_token`)",
        ))
    }
}

/// A validated new operation, before the writer gives it an id and times.
#[derive(Debug)]
pub struct OperationDraft {
    pub input: NewOperation,
    pub action: String,
    /// From `input.trace_context`, else from the request's headers (set by the handler).
    pub trace_context: Option<TraceContext>,
    /// Its first messages, stored with it.
    pub messages: Vec<MessageDraft>,
}

pub fn validate_new_operation(
    mut input: NewOperation,
    redaction: &Redaction,
) -> Result<OperationDraft, FieldError> {
    let action = input
        .action
        .take()
        .unwrap_or_else(|| input.kind.default_action().to_owned());
    check_action(&action)?;
    check_name("integration", &input.integration)?;
    check_name("connection_id", &input.connection_id)?;
    check_name("script", &input.script)?;
    check_name("provider", &input.provider)?;
    check_context(
        input.end_user.as_ref(),
        input.tags.as_ref().unwrap_or(&Tags::new()),
    )?;
    check_nango_fields(
        input.checkpoints.as_ref(),
        input.auth_mode.as_deref(),
        input.output.as_ref(),
    )?;
    if let (Some(start), Some(end)) = (input.started_at, input.ended_at) {
        if end < start {
            return Err(FieldError::new("ended_at", "is before started_at"));
        }
    }
    if input.ended_at.is_some() && !input.state.is_some_and(OpState::is_terminal) {
        return Err(FieldError::new(
            "ended_at",
            "only an operation created in a terminal state (success, failed, timeout, cancelled) has an end",
        ));
    }
    let messages = match input.messages.take() {
        None => Vec::new(),
        Some(list) if list.len() > MAX_BATCH => {
            return Err(FieldError::new(
                "messages",
                format!(
                    "has {} messages; at most {MAX_BATCH} come with the operation (append the rest to /operations/{{id}}/messages)",
                    list.len()
                ),
            ))
        }
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let located = |e: FieldError| e.in_item(i).within("messages");
                if m.operation_id.is_some() {
                    return Err(located(FieldError::new(
                        "operation_id",
                        "must be left out: these messages belong to the operation being created",
                    )));
                }
                validate_message(m, redaction).map_err(located)
            })
            .collect::<Result<_, _>>()?,
    };
    input.message = input.message.map(truncate_message);
    input.meta = limit_meta(input.meta);
    redaction.request(&mut input.request);
    redaction.response(&mut input.response);
    let trace_context = input.trace_context.take().and_then(|c| c.context());
    Ok(OperationDraft {
        input,
        action,
        trace_context,
        messages,
    })
}

pub fn validate_patch(
    mut patch: OperationPatch,
    redaction: &Redaction,
) -> Result<OperationPatch, FieldError> {
    if patch.ended_at.is_some() && !patch.state.is_some_and(OpState::is_terminal) {
        return Err(FieldError::new(
            "ended_at",
            "can only be set together with a terminal state (success, failed, timeout, cancelled)",
        ));
    }
    check_nango_fields(
        patch.checkpoints.as_ref(),
        patch.auth_mode.as_deref(),
        patch.output.as_ref(),
    )?;
    patch.message = patch.message.map(truncate_message);
    patch.meta = limit_meta(patch.meta);
    redaction.request(&mut patch.request);
    redaction.response(&mut patch.response);
    Ok(patch)
}

/// A validated message, before the writer gives it an id.
#[derive(Debug, Clone)]
pub struct MessageDraft {
    pub kind: MessageType,
    pub level: Level,
    pub source: Source,
    pub message: String,
    pub request: Option<HttpRequest>,
    pub response: Option<HttpResponse>,
    pub duration_ms: Option<u64>,
    pub retry: Option<Retry>,
    pub error: Option<ErrorInfo>,
    pub meta: Option<Json>,
    pub created_at: Option<Timestamp>,
}

impl MessageDraft {
    pub fn into_message(self, id: Id, operation_id: Id, now: Timestamp) -> Message {
        Message {
            id,
            operation_id,
            kind: self.kind,
            level: self.level,
            source: self.source,
            message: self.message,
            request: self.request,
            response: self.response,
            duration_ms: self.duration_ms,
            retry: self.retry,
            error: self.error,
            meta: self.meta,
            created_at: self.created_at.unwrap_or(now),
        }
    }
}

pub fn validate_message(
    input: NewMessage,
    redaction: &Redaction,
) -> Result<MessageDraft, FieldError> {
    let NewMessage {
        operation_id: _,
        kind,
        level,
        source,
        message,
        mut request,
        mut response,
        duration_ms,
        retry,
        error,
        meta,
        created_at,
    } = input;
    let kind = kind.unwrap_or(if request.is_some() || response.is_some() {
        MessageType::Http
    } else {
        MessageType::Log
    });
    let status = response.as_ref().map(|r| r.status);
    let level = level.unwrap_or(match (kind, status) {
        (MessageType::Http, Some(s)) if s >= 400 => Level::Error,
        (MessageType::Http, None) if error.is_some() => Level::Error,
        _ => Level::Info,
    });
    let source = source.unwrap_or(match kind {
        MessageType::Log => Source::User,
        MessageType::Http => Source::System,
    });
    let message = match (message, kind) {
        (Some(m), _) => m,
        (None, MessageType::Http) => http_summary(request.as_ref(), status),
        (None, MessageType::Log) => {
            return Err(FieldError::new(
                "message",
                "is required for a `log` message (the text to record)",
            ))
        }
    };
    redaction.request(&mut request);
    redaction.response(&mut response);
    Ok(MessageDraft {
        kind,
        level,
        source,
        message: truncate_message(message),
        request,
        response,
        duration_ms,
        retry,
        error,
        meta: limit_meta(meta),
        created_at,
    })
}

fn http_summary(request: Option<&HttpRequest>, status: Option<u16>) -> String {
    let mut text = match request {
        Some(r) => format!("{} {}", r.method, r.url),
        None => "HTTP call".to_owned(),
    };
    if let Some(s) = status {
        text.push_str(&format!(" -> {s}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: &str) -> Result<MessageDraft, FieldError> {
        validate_message(
            serde_json::from_str(json).unwrap(),
            &Redaction::new(&["X-Secret".into()]),
        )
    }

    #[test]
    fn long_text_is_cut_with_a_marker() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 500);
        let cut = truncate_message(long);
        let kept = cut.chars().count();
        assert!(
            (MAX_MESSAGE_CHARS - 40..=MAX_MESSAGE_CHARS).contains(&kept),
            "{kept}"
        );
        assert!(cut.ends_with("characters]"), "{}", &cut[cut.len() - 40..]);
        assert!(
            cut.starts_with("éé") && cut.contains(" … [truncated 5"),
            "the marker says how much was cut"
        );
        assert_eq!(truncate_message("short".into()), "short");
    }

    #[test]
    fn oversized_meta_becomes_a_marked_preview() {
        let big = serde_json::json!({ "blob": "x".repeat(MAX_META_BYTES) });
        let limited = limit_meta(Some(Json::from_value(&big))).unwrap();
        let value: serde_json::Value = serde_json::from_str(limited.text()).unwrap();
        assert_eq!(value["opslog_truncated"], true);
        assert!(value["original_bytes"].as_u64().unwrap() > MAX_META_BYTES as u64);
        let small = Json::from_value(&serde_json::json!({"a": 1}));
        assert_eq!(limit_meta(Some(small.clone())), Some(small));
    }

    #[test]
    fn http_messages_get_levels_and_redaction() {
        let m = message(
            r#"{"type":"http","request":{"method":"GET","url":"https://api.github.com/x",
                "headers":{"Authorization":"Bearer abc","X-Secret":"s","Accept":"json"}},
                "response":{"status":503,"headers":{"Set-Cookie":"id=1"}}}"#,
        )
        .unwrap();
        assert_eq!(m.level, Level::Error);
        assert_eq!(m.source, Source::System);
        assert_eq!(m.message, "GET https://api.github.com/x -> 503");
        let headers = m.request.unwrap().headers.unwrap();
        assert_eq!(headers["Authorization"], REDACTED);
        assert_eq!(headers["X-Secret"], REDACTED);
        assert_eq!(headers["Accept"], "json");
        assert_eq!(m.response.unwrap().headers.unwrap()["Set-Cookie"], REDACTED);

        let ok = message(r#"{"response":{"status":200}}"#).unwrap();
        assert_eq!((ok.kind, ok.level), (MessageType::Http, Level::Info));
    }

    #[test]
    fn log_messages_need_text() {
        let err = message(r#"{"level":"warn"}"#).unwrap_err();
        assert_eq!(err.field, "message");
        let m = message(r#"{"message":"hello"}"#).unwrap();
        assert_eq!(
            (m.kind, m.level, m.source),
            (MessageType::Log, Level::Info, Source::User)
        );
    }

    #[test]
    fn operations_check_names_and_ends() {
        let r = Redaction::new(&[]);
        let parse = |json: &str| serde_json::from_str::<NewOperation>(json).unwrap();
        let draft = validate_new_operation(parse(r#"{"type":"sync"}"#), &r).unwrap();
        assert_eq!(draft.action, "run");
        let err =
            validate_new_operation(parse(r#"{"type":"sync","action":"Run Now"}"#), &r).unwrap_err();
        assert_eq!(err.field, "action");
        let err =
            validate_new_operation(parse(r#"{"type":"sync","integration":""}"#), &r).unwrap_err();
        assert_eq!(err.field, "integration");
        let err = validate_new_operation(
            parse(r#"{"type":"sync","ended_at":"2026-01-01T00:00:00Z"}"#),
            &r,
        )
        .unwrap_err();
        assert_eq!(err.field, "ended_at");
    }

    #[test]
    fn nango_fields_are_checked() {
        let r = Redaction::new(&[]);
        let parse = |json: &str| serde_json::from_str::<NewOperation>(json).unwrap();
        let field = |json: &str| validate_new_operation(parse(json), &r).unwrap_err().field;
        let ok = validate_new_operation(
            parse(
                r#"{"type":"sync","sync_type":"incremental","checkpoints":{"from":{"page":4,"cursor":"c","done":false},"to":null}}"#,
            ),
            &r,
        )
        .unwrap();
        assert_eq!(ok.input.sync_type, Some(SyncType::Incremental));
        assert!(validate_new_operation(parse(r#"{"type":"sync","checkpoints":{}}"#), &r).is_ok());
        assert_eq!(field(r#"{"type":"sync","checkpoints":[1]}"#), "checkpoints");
        assert_eq!(
            field(r#"{"type":"sync","checkpoints":{"from":null,"since":1}}"#),
            "checkpoints.since"
        );
        assert_eq!(
            field(r#"{"type":"sync","checkpoints":{"from":{"a":{"b":1}}}}"#),
            "checkpoints.from.a"
        );
        assert_eq!(
            field(r#"{"type":"sync","checkpoints":{"to":"page 4"}}"#),
            "checkpoints.to"
        );
        assert_eq!(
            field(r#"{"type":"auth","auth_mode":"oauth2"}"#),
            "auth_mode"
        );
        assert!(
            validate_new_operation(parse(r#"{"type":"auth","auth_mode":"OAUTH2_CC"}"#), &r).is_ok()
        );
        let big = format!(
            r#"{{"type":"action","output":"{}"}}"#,
            "x".repeat(MAX_OUTPUT_BYTES)
        );
        assert_eq!(field(&big), "output");
        assert!(
            serde_json::from_str::<NewOperation>(r#"{"type":"sync","sync_type":"initial"}"#)
                .is_err()
        );
    }
}
