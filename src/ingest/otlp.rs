//! OTLP ingest (docs/otel.md "OTLP ingest"): OTLP/HTTP export requests, protobuf or JSON, made
//! into operations and messages. A span becomes an ended operation and its events its messages; a
//! log record becomes a message of the operation of its span. The inverse of `otel`: a span or log
//! record opslog exported comes back as the operation or message it was (same ids and fields, as
//! far as a span carries them).
//!
//! Ids are what make a retried export harmless: an operation keeps the id of a span opslog
//! exported (`opslog.operation.id`), else gets one derived from its trace and span ids and its
//! start; a message keeps `opslog.message.id`, else gets one derived from what it came as. The
//! writer skips what it already holds, and finds the operation of a log record by the span it
//! names (`span_key`).
//!
//! Must not: write, or refuse a whole request for one bad span or record (each is refused alone,
//! for the partial success OTLP/HTTP specifies).

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use sha2::{Digest, Sha256};

use super::input::{
    validate_message, validate_new_operation, FieldError, NewMessage, NewOperation, Redaction,
    MAX_BATCH,
};
use super::lifecycle;
use crate::model::settings::SpanNames;
use crate::model::trace::normalize_tracestate;
use crate::model::{
    EndUser, ErrorInfo, HttpRequest, HttpResponse, Id, Level, Message, MessageType, OpState,
    OpType, Operation, Source, SpanId, Tags, Timestamp, TraceContext, TraceId,
};
use crate::otel::{self, Keys};

/// How an export request's body is encoded (its `content-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json`: the OTLP/JSON mapping (hex ids, lowerCamelCase names).
    Json,
}

impl Encoding {
    /// The encoding of a `content-type`, or `None` for one OTLP/HTTP does not define.
    pub fn of_content_type(content_type: &str) -> Option<Encoding> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

pub fn decode_traces(encoding: Encoding, body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    decode(encoding, body)
}

pub fn decode_logs(encoding: Encoding, body: &[u8]) -> Result<ExportLogsServiceRequest, String> {
    decode(encoding, body)
}

fn decode<T: prost::Message + Default + serde::de::DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
) -> Result<T, String> {
    match encoding {
        Encoding::Protobuf => {
            T::decode(body).map_err(|e| format!("not an OTLP protobuf message: {e}"))
        }
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|e| format!("not an OTLP/JSON message: {e}"))
        }
    }
}

/// The key under which the operation a span became is found again (its idempotency key): the
/// trace and span ids. It starts with a control character, which no client's `Idempotency-Key`
/// can hold.
pub fn span_key(trace: TraceId, span: SpanId) -> String {
    format!("\u{1}otlp-span {trace}-{span}")
}

/// An operation made from one span.
#[derive(Debug)]
pub struct SpanOperation {
    /// `span_key` of the span.
    pub key: String,
    pub operation: Operation,
    /// Its events, oldest first.
    pub messages: Vec<Message>,
}

/// Which operation a log record belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogTarget {
    /// `opslog.operation.id`: a record opslog exported.
    Operation(Id),
    /// The span it was logged in (`span_key`).
    Span(String),
}

/// A message made from one log record; its `operation_id` is set once its target is found.
#[derive(Debug)]
pub struct LogMessage {
    pub target: LogTarget,
    pub message: Message,
}

/// Spans or records refused, with the reason of the first (what OTLP's partial success reports).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Refused {
    pub count: u64,
    pub first: Option<String>,
}

impl Refused {
    pub fn add(&mut self, reason: String) {
        self.count += 1;
        self.first.get_or_insert(reason);
    }

    pub fn add_many(&mut self, count: u64, reason: String) {
        if count > 0 {
            self.count += count;
            self.first.get_or_insert(reason);
        }
    }
}

/// The operations the spans of `request` become; spans that do not make one are refused.
pub fn span_operations(
    environment: &str,
    request: ExportTraceServiceRequest,
    redaction: &Redaction,
) -> (Vec<SpanOperation>, Refused) {
    let mut made = Vec::new();
    let mut refused = Refused::default();
    for resource_spans in request.resource_spans {
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                let name = span.name.clone();
                match span_operation(environment, span, redaction) {
                    Ok(op) => made.push(op),
                    Err(reason) => refused.add(format!("span `{name}`: {reason}")),
                }
            }
        }
    }
    (made, refused)
}

/// The messages the log records of `request` become; records that do not make one are refused.
pub fn log_messages(
    request: ExportLogsServiceRequest,
    redaction: &Redaction,
    now: Timestamp,
) -> (Vec<LogMessage>, Refused) {
    let mut made = Vec::new();
    let mut refused = Refused::default();
    for resource_logs in request.resource_logs {
        for scope_logs in resource_logs.scope_logs {
            for record in scope_logs.log_records {
                match log_message(record, redaction, now) {
                    Ok(message) => made.push(message),
                    Err(reason) => refused.add(format!("log record: {reason}")),
                }
            }
        }
    }
    (made, refused)
}

/// Attributes by key, the values as text (strings as they are, numbers and booleans printed).
struct Attributes(HashMap<String, String>);

impl Attributes {
    fn of(list: &[KeyValue]) -> Attributes {
        Attributes(
            list.iter()
                .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn owned(&self, key: &str) -> Option<String> {
        self.get(key).map(str::to_owned)
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }

    /// `http.request.method` and `url.full` (or the older `http.method`, `http.url`).
    fn request(&self) -> Option<HttpRequest> {
        let method = self
            .get("http.request.method")
            .or(self.get("http.method"))?;
        let url = self.get("url.full").or(self.get("http.url")).unwrap_or("");
        Some(HttpRequest {
            method: method.to_owned(),
            url: url.to_owned(),
            headers: None,
            body: None,
        })
    }

    fn response(&self) -> Option<HttpResponse> {
        let status = self
            .number("http.response.status_code")
            .or(self.number("http.status_code"))?;
        Some(HttpResponse {
            status: u16::try_from(status).ok()?,
            headers: None,
            body: None,
        })
    }

    /// `exception.message` (with `exception.type` as its name, and `error.type` as its type when
    /// that says more); Nango's `nango.error.message`, `.type` and `.payload` when `k` has them.
    fn error(&self, k: &Keys) -> Option<ErrorInfo> {
        let own = |key: Option<&str>| key.and_then(|key| self.owned(key));
        let message = self
            .owned("exception.message")
            .or_else(|| own(k.error_message))?;
        let name = self.owned("exception.type");
        let kind = self
            .owned("error.type")
            .or_else(|| own(k.error_type))
            .filter(|kind| Some(kind) != name.as_ref());
        let payload = k
            .error_message
            .and_then(|_| self.get("nango.error.payload"))
            .map(json_or_text);
        Some(ErrorInfo {
            name,
            message,
            kind,
            payload,
        })
    }

    /// Whose names the attributes follow: Nango's when any key is `nango.*`, else opslog's.
    fn names(&self) -> SpanNames {
        if self.0.keys().any(|key| key.starts_with("nango.")) {
            SpanNames::Nango
        } else {
            SpanNames::Opslog
        }
    }
}

/// A value that is JSON text as that JSON, any other text as a JSON string.
fn json_or_text(text: &str) -> crate::model::Json {
    let value = serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(text));
    crate::model::Json::from_value(&value)
}

/// Strings as they are; numbers and booleans printed; other values (arrays, maps, bytes) none.
fn text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(n) => Some(n.to_string()),
        any_value::Value::DoubleValue(n) => Some(n.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A log record's body as text: a string as it is, anything else as JSON.
fn body_text(value: &AnyValue) -> String {
    match value.value.as_ref() {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(_) => serde_json::to_string(value).unwrap_or_default(),
        None => String::new(),
    }
}

fn millis(unix_nanos: u64) -> Timestamp {
    Timestamp((unix_nanos / 1_000_000) as i64)
}

/// An id whose time part is `at` (so it sorts, and is kept by retention, as created then) and
/// whose other 80 bits come from `parts`: the same span or record always gets the same id.
fn derived_id(label: &str, at: Timestamp, parts: &[&[u8]]) -> Id {
    let mut hash = Sha256::new().chain_update(label.as_bytes());
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut low = [0u8; 16];
    low[6..].copy_from_slice(&digest[..10]);
    let time = (at.millis().max(0) as u128) & ((1 << 48) - 1);
    Id((time << 80) | u128::from_be_bytes(low))
}

fn field(e: FieldError) -> String {
    format!("`{}` {}", e.field, e.message)
}

fn span_operation(
    environment: &str,
    span: Span,
    redaction: &Redaction,
) -> Result<SpanOperation, String> {
    let trace =
        TraceId::from_bytes(&span.trace_id).ok_or("`traceId` must be 16 bytes, not all zero")?;
    let span_id =
        SpanId::from_bytes(&span.span_id).ok_or("`spanId` must be 8 bytes, not all zero")?;
    let parent = match span.parent_span_id.as_slice() {
        [] => None,
        bytes => Some(
            SpanId::from_bytes(bytes)
                .ok_or("`parentSpanId` must be empty or 8 bytes, not all zero")?,
        ),
    };
    let start = millis(span.start_time_unix_nano);
    let end = millis(span.end_time_unix_nano.max(span.start_time_unix_nano));
    let a = Attributes::of(&span.attributes);
    // Nango's spans (and opslog's exported with Nango's names) say what they are with `nango.*`
    // keys and a name `nango.<type>.<action>`; opslog's with `opslog.*` and `<type>.<action>`.
    let names = if span.name.starts_with("nango.") {
        SpanNames::Nango
    } else {
        a.names()
    };
    let k = otel::keys(names);

    // What opslog or Nango exported says what it was; any other span is a function run (a
    // proxied call when it is a client span), titled with its name.
    let prefix = match names {
        SpanNames::Nango => "nango.",
        SpanNames::Opslog => "",
    };
    let named = span
        .name
        .strip_prefix(prefix)
        .and_then(|name| name.split_once('.'))
        .and_then(|(kind, action)| Some((OpType::parse(kind)?, action)));
    let kind = a
        .get(k.operation_type)
        .and_then(OpType::parse)
        .or(named.map(|(kind, _)| kind))
        .unwrap_or(if span.kind == SpanKind::Client as i32 {
            OpType::Proxy
        } else {
            OpType::Function
        });
    let action = a
        .owned(k.operation_action)
        .or(named
            .filter(|(named, _)| *named == kind)
            .map(|(_, a)| a.to_owned()))
        .unwrap_or_else(|| kind.default_action().to_owned());
    let exported_name = span.name == format!("{prefix}{kind}.{action}");
    let failed = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    let state = a
        .get(k.operation_state)
        .and_then(OpState::parse)
        .filter(|s| s.is_terminal())
        .unwrap_or(if failed {
            OpState::Failed
        } else {
            OpState::Success
        });
    let status_message = span
        .status
        .as_ref()
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty() && *m != format!("operation ended as {state}"));
    // A failed span's error: its attributes', else its status message, else (Nango records the
    // exception as an event and sets no status message) its `exception` event's.
    let exception = span
        .events
        .iter()
        .find(|event| event.name == "exception")
        .and_then(|event| Attributes::of(&event.attributes).error(k));
    let error = a.error(k).or_else(|| {
        (state != OpState::Success)
            .then(|| {
                status_message
                    .map(|message| ErrorInfo {
                        name: None,
                        message,
                        kind: None,
                        payload: None,
                    })
                    .or(exception)
            })
            .flatten()
    });
    let end_user = a.owned(k.end_user_id).map(|id| {
        let mut user = serde_json::json!({ "id": id });
        if let Some(email) = a.get(k.end_user_email) {
            user["email"] = email.into();
        }
        if let Some(org) = a.get(k.end_user_organization) {
            user["organization"] = serde_json::json!({ "id": org });
        }
        serde_json::from_value::<EndUser>(user).expect("an end user of strings")
    });
    let tags: Tags =
        a.0.iter()
            .filter_map(|(key, v)| Some((key.strip_prefix(k.tag_prefix)?.to_owned(), v.clone())))
            .collect();
    let title = k
        .operation_message
        .and_then(|key| a.owned(key))
        .or((!exported_name).then_some(span.name));

    let id = a.get(k.operation_id).and_then(Id::parse);
    // What a span of Nango's own has that no field holds: Nango's operation id, its account and
    // environment names.
    let meta = match (names, id) {
        (SpanNames::Nango, None) => {
            let nango: serde_json::Map<String, serde_json::Value> = [
                ("operation_id", k.operation_id),
                ("account", "nango.account"),
                ("environment", k.environment),
            ]
            .into_iter()
            .filter_map(|(field, key)| Some((field.to_owned(), a.get(key)?.into())))
            .collect();
            (!nango.is_empty())
                .then(|| crate::model::Json::from_value(&serde_json::json!({ "nango": nango })))
        }
        _ => None,
    };
    let trace_context = match id {
        // A span opslog exported: its span id is derived from the operation id, so the
        // operation is as it was (no span id of its own), in the trace it was in.
        Some(id) if span_id.0 == otel::span_id(id) => {
            (trace.0 != otel::trace_id(id) || parent.is_some()).then(|| TraceContext {
                trace_id: trace,
                parent_span_id: parent,
                span_id: None,
                trace_flags: (span.flags & 0xff) as u8,
                tracestate: normalize_tracestate(&span.trace_state),
            })
        }
        _ => Some(TraceContext {
            trace_id: trace,
            parent_span_id: parent,
            span_id: Some(span_id),
            trace_flags: (span.flags & 0xff) as u8,
            tracestate: normalize_tracestate(&span.trace_state),
        }),
    };
    let id = id.unwrap_or_else(|| derived_id("opslog/otlp/span", start, &[&trace.0, &span_id.0]));

    let events: Vec<Event> = span.events.into_iter().take(MAX_BATCH).collect();
    let mut message_ids = Vec::with_capacity(events.len());
    let mut messages = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let e = Attributes::of(&event.attributes);
        let created = millis(event.time_unix_nano);
        message_ids.push(e.get(k.message_id).and_then(Id::parse).unwrap_or_else(|| {
            derived_id(
                "opslog/otlp/event",
                created,
                &[&trace.0, &span_id.0, &(i as u64).to_le_bytes()],
            )
        }));
        let text = e.owned(k.message_text).unwrap_or_else(|| {
            if event.name == "exception" {
                e.owned("exception.message").unwrap_or(event.name.clone())
            } else {
                event.name.clone()
            }
        });
        let default_level = if event.name == "exception" {
            Level::Error
        } else {
            Level::Info
        };
        messages.push(new_message(&e, k, text, default_level, created));
    }

    let input = NewOperation {
        kind,
        action: Some(action),
        state: Some(state),
        integration: a.owned(k.integration),
        connection_id: a.owned(k.connection),
        script: a.owned(k.script),
        provider: a.owned(k.provider),
        message: title,
        error,
        request: a.request(),
        response: a.response(),
        records: None,
        meta,
        end_user,
        tags: (!tags.is_empty()).then_some(tags),
        is_async: None,
        sync_type: None,
        checkpoints: None,
        auth_mode: None,
        output: None,
        trace_context: None,
        started_at: Some(start),
        ended_at: Some(end),
        expires_at: None,
        messages: Some(messages),
    };
    let mut draft = validate_new_operation(input, redaction).map_err(field)?;
    draft.trace_context = trace_context;
    let drafts = std::mem::take(&mut draft.messages);
    let (mut operation, _) =
        lifecycle::new_operation(id, environment, draft, start, std::time::Duration::ZERO);
    operation.updated_at = end;
    operation.expires_at = end;
    let messages = drafts
        .into_iter()
        .zip(message_ids)
        .map(|(draft, message_id)| draft.into_message(message_id, id, start))
        .collect();
    Ok(SpanOperation {
        key: span_key(trace, span_id),
        operation,
        messages,
    })
}

/// A message's fields from the attributes opslog exports a message with (`opslog.message.*` or
/// `nango.message.*`, HTTP, `exception.*`), for a span event or a log record.
fn new_message(
    a: &Attributes,
    k: &Keys,
    text: String,
    level: Level,
    created: Timestamp,
) -> NewMessage {
    let request = a.request();
    let response = a.response();
    let kind = a
        .get(k.message_type)
        .and_then(MessageType::parse)
        .unwrap_or(if request.is_some() || response.is_some() {
            MessageType::Http
        } else {
            MessageType::Log
        });
    NewMessage {
        operation_id: None,
        kind: Some(kind),
        level: Some(
            a.get(k.message_level)
                .and_then(Level::parse)
                .unwrap_or(level),
        ),
        source: Some(
            a.get(k.message_source)
                .and_then(Source::parse)
                .unwrap_or(Source::User),
        ),
        message: Some(text),
        request,
        response,
        duration_ms: a.number(k.message_duration_ms),
        retry: None,
        error: a.error(k),
        meta: None,
        created_at: Some(created),
    }
}

/// OTLP severity numbers: 1-8 trace and debug, 9-12 info, 13-16 warn, 17-24 error and fatal.
fn level_of(severity: i32, text: &str) -> Level {
    match severity {
        1..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=24 => Level::Error,
        _ => match text.to_ascii_lowercase().as_str() {
            "trace" | "debug" => Level::Debug,
            "warn" | "warning" => Level::Warn,
            "error" | "fatal" | "critical" => Level::Error,
            _ => Level::Info,
        },
    }
}

fn log_message(
    record: LogRecord,
    redaction: &Redaction,
    now: Timestamp,
) -> Result<LogMessage, String> {
    let a = Attributes::of(&record.attributes);
    let k = otel::keys(a.names());
    let trace = TraceId::from_bytes(&record.trace_id);
    let span = SpanId::from_bytes(&record.span_id);
    let target = match (a.get(k.operation_id).and_then(Id::parse), trace, span) {
        (Some(id), _, _) => LogTarget::Operation(id),
        (None, Some(trace), Some(span)) => LogTarget::Span(span_key(trace, span)),
        _ => {
            return Err(
                "names no operation: it needs the `traceId` and `spanId` of a span sent to opslog (or `opslog.operation.id`)"
                    .into(),
            )
        }
    };
    let time = match (record.time_unix_nano, record.observed_time_unix_nano) {
        (0, 0) => now,
        (0, observed) => millis(observed),
        (time, _) => millis(time),
    };
    let text = record.body.as_ref().map(body_text).unwrap_or_default();
    let level = level_of(record.severity_number, &record.severity_text);
    let id = a.get(k.message_id).and_then(Id::parse).unwrap_or_else(|| {
        derived_id(
            "opslog/otlp/log",
            time,
            &[
                &record.trace_id,
                &record.span_id,
                &record.time_unix_nano.to_le_bytes(),
                &record.observed_time_unix_nano.to_le_bytes(),
                &record.severity_number.to_le_bytes(),
                &record.encode_to_vec(),
            ],
        )
    });
    let draft =
        validate_message(new_message(&a, k, text, level, time), redaction).map_err(field)?;
    Ok(LogMessage {
        target,
        // The operation is found by the writer.
        message: draft.into_message(id, Id(0), now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    fn span(name: &str) -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![9; 8],
            parent_span_id: vec![3; 8],
            name: name.into(),
            start_time_unix_nano: 1_767_225_600_000_000_000,
            end_time_unix_nano: 1_767_225_601_500_000_000,
            ..Span::default()
        }
    }

    #[test]
    fn a_foreign_span_is_a_function_run_in_its_trace_with_a_stable_id() {
        let mut s = span("charge card");
        s.status = Some(Status {
            code: StatusCode::Error as i32,
            message: "card declined".into(),
        });
        s.attributes = vec![kv("opslog.integration", "stripe")];
        let (made, refused) =
            span_operations("prod", request(vec![s.clone()]), &Redaction::new(&[]));
        assert_eq!(refused, Refused::default());
        let op = &made[0].operation;
        assert_eq!((op.kind, op.action.as_str()), (OpType::Function, "run"));
        assert_eq!(op.state, OpState::Failed);
        assert_eq!(op.message, "charge card");
        assert_eq!(op.error.as_ref().unwrap().message, "card declined");
        assert_eq!(op.integration.as_deref(), Some("stripe"));
        assert_eq!(op.duration_ms, Some(1500));
        assert_eq!(op.created_at, Timestamp(1_767_225_600_000));
        let ctx = op.trace_context.as_ref().unwrap();
        assert_eq!(ctx.span_id, Some(SpanId([9; 8])));
        assert_eq!(ctx.parent_span_id, Some(SpanId([3; 8])));
        // The id's time part is the span's start; the same span is the same operation.
        assert_eq!(op.id.0 >> 80, 1_767_225_600_000);
        let (again, _) = span_operations("prod", request(vec![s]), &Redaction::new(&[]));
        assert_eq!(again[0].operation.id, op.id);
        assert_eq!(made[0].key, span_key(TraceId([7; 16]), SpanId([9; 8])));
    }

    /// The attributes and name NangoHQ/nango `packages/logs/lib/otlp/otlpSpan.ts` gives a failed
    /// sync run: no status message, the exception as an event.
    #[test]
    fn a_nango_span_is_the_operation_nango_shows() {
        let mut s = span("nango.sync.run");
        s.attributes = [
            ("nango.operation.id", "2yPnlx0C"),
            ("nango.operation.type", "sync"),
            ("nango.operation.action", "run"),
            ("nango.operation.message", "Sync"),
            ("nango.account", "Acme Inc"),
            ("nango.environment", "prod"),
            ("nango.provider", "hubspot"),
            ("nango.integration", "hubspot-crm"),
            ("nango.connection", "acme"),
            ("nango.sync", "contacts"),
            ("nango.operation.status", "failed"),
        ]
        .into_iter()
        .map(|(key, value)| kv(key, value))
        .collect();
        s.events = vec![Event {
            name: "exception".into(),
            time_unix_nano: 1_767_225_601_000_000_000,
            attributes: vec![
                kv("exception.type", "Error"),
                kv("exception.message", "401 Unauthorized"),
            ],
            ..Event::default()
        }];
        s.status = Some(Status {
            code: StatusCode::Error as i32,
            message: String::new(),
        });
        let (made, refused) = span_operations("prod", request(vec![s]), &Redaction::new(&[]));
        assert_eq!(refused, Refused::default());
        let op = &made[0].operation;
        assert_eq!((op.kind, op.action.as_str()), (OpType::Sync, "run"));
        assert_eq!(op.state, OpState::Failed);
        assert_eq!(op.message, "Sync");
        assert_eq!(op.integration.as_deref(), Some("hubspot-crm"));
        assert_eq!(op.provider.as_deref(), Some("hubspot"));
        assert_eq!(op.connection_id.as_deref(), Some("acme"));
        assert_eq!(op.script.as_deref(), Some("contacts"));
        let error = op.error.as_ref().unwrap();
        assert_eq!(
            (error.name.as_deref(), error.message.as_str()),
            (Some("Error"), "401 Unauthorized")
        );
        let meta: serde_json::Value =
            serde_json::from_str(op.meta.as_ref().unwrap().text()).unwrap();
        assert_eq!(
            meta,
            serde_json::json!({"nango": {"operation_id": "2yPnlx0C", "account": "Acme Inc", "environment": "prod"}})
        );
        assert_eq!(made[0].messages[0].level, Level::Error);
        assert_eq!(made[0].messages[0].message, "401 Unauthorized");
    }

    #[test]
    fn a_span_without_ids_or_with_a_bad_field_is_refused_alone() {
        let mut no_ids = span("a");
        no_ids.trace_id = vec![0; 16];
        let mut bad_action = span("b");
        bad_action.attributes = vec![kv("opslog.operation.action", "Not An Action")];
        let good = span("c");
        let (made, refused) = span_operations(
            "prod",
            request(vec![no_ids, bad_action, good]),
            &Redaction::new(&[]),
        );
        assert_eq!(made.len(), 1);
        assert_eq!(refused.count, 2);
        assert!(refused.first.unwrap().contains("traceId"));
    }

    #[test]
    fn json_takes_hex_ids_and_string_numbers() {
        let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": "eee19b7ec3c1b174",
            "name": "sync.run",
            "kind": 1,
            "startTimeUnixNano": "1767225600000000000",
            "endTimeUnixNano": 1767225602000000000u64,
            "attributes": [{"key": "opslog.records.added", "value": {"intValue": "3"}}]
        }]}]}]});
        let decoded = decode_traces(Encoding::Json, &serde_json::to_vec(&body).unwrap()).unwrap();
        let (made, refused) = span_operations("prod", decoded, &Redaction::new(&[]));
        assert_eq!(refused.count, 0);
        let op = &made[0].operation;
        assert_eq!((op.kind, op.action.as_str()), (OpType::Sync, "run"));
        assert_eq!(op.duration_ms, Some(2000));
        assert!(decode_traces(Encoding::Json, b"{\"resourceSpans\": 3}").is_err());
        assert!(decode_traces(Encoding::Protobuf, b"\xff\xff\xff").is_err());
    }

    #[test]
    fn a_log_record_names_the_operation_of_its_span_or_is_refused() {
        let record = LogRecord {
            trace_id: vec![7; 16],
            span_id: vec![9; 8],
            time_unix_nano: 1_767_225_600_100_000_000,
            severity_number: 13,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue("retrying".into())),
            }),
            ..LogRecord::default()
        };
        let now = Timestamp(1_767_225_700_000);
        let m = log_message(record.clone(), &Redaction::new(&[]), now).unwrap();
        assert_eq!(
            m.target,
            LogTarget::Span(span_key(TraceId([7; 16]), SpanId([9; 8])))
        );
        assert_eq!(m.message.level, Level::Warn);
        assert_eq!(m.message.message, "retrying");
        assert_eq!(m.message.created_at, Timestamp(1_767_225_600_100));
        let again = log_message(record.clone(), &Redaction::new(&[]), now).unwrap();
        assert_eq!(again.message.id, m.message.id);
        let orphan = LogRecord {
            span_id: vec![],
            ..record
        };
        assert!(log_message(orphan, &Redaction::new(&[]), now)
            .unwrap_err()
            .contains("names no operation"));
    }
}
