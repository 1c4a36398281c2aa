//! The OpenTelemetry mapping (README "OpenTelemetry export"): a finished operation and its messages become
//! one OTLP span (opentelemetry-proto's prost types), messages become span events, and the
//! environment's settings become the resource. With the `logs` switch, each message of an exported
//! operation also becomes one OTLP log record carrying its operation's trace and span ids.
//!
//! Span ids are derived from the operation id alone, so exporting the same operation twice (a
//! retry after a crash, a replay) yields the same span and a backend can deduplicate it. The trace
//! id is too, unless the operation was started in a trace (`trace_context`, W3C): then its span
//! is a child of the caller's span in the caller's trace. An operation received over OTLP keeps
//! the ids of the span it came as.
//!
//! Must not: do I/O, read the store or know about the outbox. Everything here is a pure function of
//! its arguments; `dispatch::otlp` encodes and sends what it builds. `OtelTarget` is one
//! environment's checked export settings, ready to send to.

use std::borrow::Cow;
use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use sha2::{Digest, Sha256};

use crate::config::OtelConfig;
pub use crate::model::SpanNames;
use crate::model::{
    ErrorInfo, HttpRequest, HttpResponse, Id, Level, Message, OpState, OpType, Operation, SpanId,
    Timestamp, TraceContext, TraceId,
};
use crate::secrets::mask;

/// The operation types that become spans; the others (auth, deploy, ...) are never exported.
pub const EXPORTED_TYPES: [OpType; 4] =
    [OpType::Sync, OpType::Action, OpType::Webhook, OpType::Proxy];

/// With Nango's names, `events` and `function` operations are exported too, as Nango does.
pub const NANGO_EXPORTED_TYPES: [OpType; 6] = [
    OpType::Sync,
    OpType::Action,
    OpType::Webhook,
    OpType::Proxy,
    OpType::Events,
    OpType::Function,
];

/// The attribute keys of one naming scheme (`otel.names`); OTLP ingest reads with them too.
pub(crate) struct Keys {
    pub(crate) operation_id: &'static str,
    pub(crate) operation_type: &'static str,
    pub(crate) operation_action: &'static str,
    pub(crate) operation_state: &'static str,
    /// Nango's spans carry the operation's message; opslog's have it as the span's first event.
    pub(crate) operation_message: Option<&'static str>,
    pub(crate) environment: &'static str,
    pub(crate) integration: &'static str,
    pub(crate) connection: &'static str,
    pub(crate) script: &'static str,
    pub(crate) provider: &'static str,
    pub(crate) records_added: &'static str,
    pub(crate) records_updated: &'static str,
    pub(crate) records_deleted: &'static str,
    /// Nango's `nango.error.message` / `nango.error.type`, beside the semantic-convention ones.
    pub(crate) error_message: Option<&'static str>,
    pub(crate) error_type: Option<&'static str>,
    pub(crate) end_user_id: &'static str,
    pub(crate) end_user_email: &'static str,
    pub(crate) end_user_organization: &'static str,
    /// Followed by the tag's key.
    pub(crate) tag_prefix: &'static str,
    pub(crate) message_id: &'static str,
    pub(crate) message_level: &'static str,
    pub(crate) message_type: &'static str,
    pub(crate) message_source: &'static str,
    pub(crate) message_text: &'static str,
    pub(crate) message_duration_ms: &'static str,
}

const OPSLOG_KEYS: Keys = Keys {
    operation_id: "opslog.operation.id",
    operation_type: "opslog.operation.type",
    operation_action: "opslog.operation.action",
    operation_state: "opslog.operation.state",
    operation_message: None,
    environment: "opslog.environment",
    integration: "opslog.integration",
    connection: "opslog.connection_id",
    script: "opslog.script",
    provider: "opslog.provider",
    records_added: "opslog.records.added",
    records_updated: "opslog.records.updated",
    records_deleted: "opslog.records.deleted",
    error_message: None,
    error_type: None,
    end_user_id: "opslog.end_user.id",
    end_user_email: "opslog.end_user.email",
    end_user_organization: "opslog.end_user.organization.id",
    tag_prefix: "opslog.tag.",
    message_id: "opslog.message.id",
    message_level: "opslog.message.level",
    message_type: "opslog.message.type",
    message_source: "opslog.message.source",
    message_text: "opslog.message.text",
    message_duration_ms: "opslog.message.duration_ms",
};

/// The keys Nango's own spans use (`nango.operation.*`, `nango.connection`, `nango.sync`, ...);
/// what Nango has no key for follows its pattern.
const NANGO_KEYS: Keys = Keys {
    operation_id: "nango.operation.id",
    operation_type: "nango.operation.type",
    operation_action: "nango.operation.action",
    operation_state: "nango.operation.status",
    operation_message: Some("nango.operation.message"),
    environment: "nango.environment",
    integration: "nango.integration",
    connection: "nango.connection",
    script: "nango.sync",
    provider: "nango.provider",
    records_added: "nango.records.added",
    records_updated: "nango.records.updated",
    records_deleted: "nango.records.deleted",
    error_message: Some("nango.error.message"),
    error_type: Some("nango.error.type"),
    end_user_id: "nango.end_user.id",
    end_user_email: "nango.end_user.email",
    end_user_organization: "nango.end_user.organization.id",
    tag_prefix: "nango.tag.",
    message_id: "nango.message.id",
    message_level: "nango.message.level",
    message_type: "nango.message.type",
    message_source: "nango.message.source",
    message_text: "nango.message.text",
    message_duration_ms: "nango.message.duration_ms",
};

pub(crate) fn keys(names: SpanNames) -> &'static Keys {
    match names {
        SpanNames::Opslog => &OPSLOG_KEYS,
        SpanNames::Nango => &NANGO_KEYS,
    }
}

/// Longest span event name, in characters; the full text then travels in an attribute.
pub const MAX_EVENT_NAME_CHARS: usize = 256;
/// Longest message text carried in an event attribute, in characters.
pub const MAX_EVENT_TEXT_CHARS: usize = 4096;

/// W3C trace flag "sampled": every exported span is.
const SAMPLED: u32 = 0x01;
/// OTLP span flags: whether the parent is remote is known (bit 8), and it is (bit 9).
const PARENT_REMOTE_KNOWN: u32 = 0x100;
const PARENT_REMOTE: u32 = 0x200;

/// Query parameters whose values never leave opslog in `url.full` (semantic conventions list the
/// first four; the rest are the usual places APIs take credentials).
const SENSITIVE_QUERY_PARAMS: &[&str] = &[
    "awsaccesskeyid",
    "signature",
    "sig",
    "x-goog-signature",
    "access_token",
    "api_key",
    "apikey",
    "client_secret",
    "key",
    "password",
    "secret",
    "token",
];

pub fn is_exported(kind: OpType) -> bool {
    is_exported_as(kind, SpanNames::Opslog)
}

/// Whether operations of `kind` become spans under the naming scheme `names`.
pub fn is_exported_as(kind: OpType, names: SpanNames) -> bool {
    match names {
        SpanNames::Opslog => EXPORTED_TYPES.contains(&kind),
        SpanNames::Nango => NANGO_EXPORTED_TYPES.contains(&kind),
    }
}

/// The 16-byte trace id of an operation's span: never all-zero, which OTLP treats as invalid.
pub fn trace_id(id: Id) -> [u8; 16] {
    derive_id(b"opslog/otel/trace-id/v1\0", id)
}

/// The 8-byte span id of an operation's span: never all-zero.
pub fn span_id(id: Id) -> [u8; 8] {
    derive_id(b"opslog/otel/span-id/v1\0", id)
}

/// The trace of `op`'s span: the one it was started in (`trace_context`), else its own,
/// derived from its id.
pub fn operation_trace_id(op: &Operation) -> TraceId {
    match &op.trace_context {
        Some(ctx) => ctx.trace_id,
        None => TraceId(trace_id(op.id)),
    }
}

/// The id of `op`'s span: the one it came as over OTLP, else derived from its id.
pub fn operation_span_id(op: &Operation) -> SpanId {
    match op.trace_context.as_ref().and_then(|ctx| ctx.span_id) {
        Some(span) => span,
        None => SpanId(span_id(op.id)),
    }
}

/// The `traceparent` of `op`'s span (W3C, sampled), so what handles a webhook about it joins
/// its trace.
pub fn operation_traceparent(op: &Operation) -> String {
    crate::model::trace::traceparent(operation_trace_id(op), operation_span_id(op), SAMPLED as u8)
}

/// The context a span started because of `op` (a webhook delivery's log) has: `op`'s trace, and
/// `op`'s span as its parent.
pub fn child_context(op: &Operation) -> TraceContext {
    TraceContext {
        trace_id: operation_trace_id(op),
        parent_span_id: Some(operation_span_id(op)),
        span_id: None,
        trace_flags: SAMPLED as u8,
        tracestate: op.trace_context.as_ref().and_then(|c| c.tracestate.clone()),
    }
}

/// OTLP flags of `op`'s span: sampled, and whether its parent is remote when that is known (a
/// `traceparent` came from another process; a span received over OTLP does not say).
fn span_flags(op: &Operation) -> u32 {
    match &op.trace_context {
        None => SAMPLED | PARENT_REMOTE_KNOWN,
        Some(ctx) if ctx.span_id.is_none() => SAMPLED | PARENT_REMOTE_KNOWN | PARENT_REMOTE,
        Some(_) => SAMPLED,
    }
}

/// SHA-256 over a domain label and the id bytes, so trace and span ids are unrelated to each other
/// and to the ULID's guessable timestamp prefix. Changing a label changes every exported id.
fn derive_id<const N: usize>(label: &[u8], id: Id) -> [u8; N] {
    let digest = Sha256::new()
        .chain_update(label)
        .chain_update(id.0.to_be_bytes())
        .finalize();
    let mut out = [0u8; N];
    out.copy_from_slice(&digest[..N]);
    if out == [0u8; N] {
        out[N - 1] = 1;
    }
    out
}

/// The span of a finished operation, or `None` when its type is not exported or it has not ended.
///
/// `messages` are the operation's messages oldest first. It may hold only the first and last
/// `max_events` of them: events beyond the cap are dropped from the middle (the head shows how it
/// started, the tail how it ended), and `dropped_events_count` counts every message not kept, using
/// `op.message_count` when that is larger than the slice.
pub fn operation_span(op: &Operation, messages: &[Message], max_events: usize) -> Option<Span> {
    operation_span_named(op, messages, max_events, SpanNames::Opslog)
}

/// `operation_span` with the span name and attribute keys of `names`: opslog's (`sync.run`,
/// `opslog.*`) or Nango's (`nango.sync.run`, `nango.*`).
pub fn operation_span_named(
    op: &Operation,
    messages: &[Message],
    max_events: usize,
    names: SpanNames,
) -> Option<Span> {
    if !is_exported_as(op.kind, names) || !op.state.is_terminal() {
        return None;
    }
    let k = keys(names);
    let start = op.started_at.unwrap_or(op.created_at);
    let end = op.ended_at.unwrap_or(op.updated_at).max(start);

    let mut attributes = vec![
        string_kv(k.operation_id, op.id.to_string()),
        string_kv(k.operation_type, op.kind.as_str()),
        string_kv(k.operation_action, op.action.as_str()),
        string_kv(k.operation_state, op.state.as_str()),
        string_kv(k.environment, op.environment.as_str()),
    ];
    if let Some(key) = k.operation_message {
        attributes.push(string_kv(key, op.message.as_str()));
    }
    for (key, value) in [
        (k.integration, &op.integration),
        (k.connection, &op.connection_id),
        (k.script, &op.script),
        (k.provider, &op.provider),
    ] {
        if let Some(value) = value {
            attributes.push(string_kv(key, value.as_str()));
        }
    }
    push_context(&mut attributes, op, k);
    if let (Some(error), Some(message_key), Some(type_key)) =
        (&op.error, k.error_message, k.error_type)
    {
        attributes.push(string_kv(message_key, error.message.as_str()));
        if let Some(kind) = error.kind.as_deref().or(error.name.as_deref()) {
            attributes.push(string_kv(type_key, kind));
        }
    }
    if op.state != OpState::Success {
        let error_type = op
            .error
            .as_ref()
            .and_then(|e| e.kind.as_deref().or(e.name.as_deref()))
            .unwrap_or(op.state.as_str());
        attributes.push(string_kv("error.type", error_type));
    }
    if let Some(error) = &op.error {
        push_error(&mut attributes, error);
    }
    push_http(&mut attributes, op.request.as_ref(), op.response.as_ref());
    if let Some(records) = &op.records {
        let sum = |f: fn(&crate::model::RecordCount) -> u64| {
            records.iter().map(f).fold(0u64, u64::saturating_add)
        };
        attributes.push(int_kv(k.records_added, sum(|r| r.added)));
        attributes.push(int_kv(k.records_updated, sum(|r| r.updated)));
        attributes.push(int_kv(k.records_deleted, sum(|r| r.deleted)));
    }

    let status = if op.state == OpState::Success {
        Status {
            code: StatusCode::Ok as i32,
            message: String::new(),
        }
    } else {
        let message = match &op.error {
            Some(error) => error.message.clone(),
            None => format!("operation ended as {}", op.state),
        };
        Status {
            code: StatusCode::Error as i32,
            message,
        }
    };

    let kept = kept_messages(messages, max_events);
    let total = op.message_count.max(messages.len() as u64);
    let dropped = total.saturating_sub(kept.len() as u64);
    Some(Span {
        trace_id: operation_trace_id(op).0.to_vec(),
        span_id: operation_span_id(op).0.to_vec(),
        parent_span_id: op
            .trace_context
            .as_ref()
            .and_then(|ctx| ctx.parent_span_id)
            .map_or_else(Vec::new, |parent| parent.0.to_vec()),
        trace_state: op
            .trace_context
            .as_ref()
            .and_then(|ctx| ctx.tracestate.clone())
            .unwrap_or_default(),
        flags: span_flags(op),
        name: match names {
            SpanNames::Opslog => format!("{}.{}", op.kind, op.action),
            SpanNames::Nango => format!("nango.{}.{}", op.kind, op.action).to_lowercase(),
        },
        kind: span_kind(op.kind, &op.action) as i32,
        start_time_unix_nano: unix_nanos(start),
        end_time_unix_nano: unix_nanos(end),
        attributes,
        events: kept.into_iter().map(|m| message_event(m, k)).collect(),
        dropped_events_count: u32::try_from(dropped).unwrap_or(u32::MAX),
        status: Some(status),
        ..Span::default()
    })
}

/// One message of `op` as an OTLP log record: severity from its level, the text as the body, its
/// time, the trace/span ids of `op`'s span (so a backend links the two), and the `opslog.*` and
/// HTTP attributes. `observed` is when opslog recorded it.
pub fn message_log_record(op: &Operation, message: &Message, observed: Timestamp) -> LogRecord {
    message_log_record_named(op, message, observed, SpanNames::Opslog)
}

/// `message_log_record` with the attribute keys of `names`.
pub fn message_log_record_named(
    op: &Operation,
    message: &Message,
    observed: Timestamp,
    names: SpanNames,
) -> LogRecord {
    let k = keys(names);
    let severity = match message.level {
        Level::Debug => SeverityNumber::Debug,
        Level::Info => SeverityNumber::Info,
        Level::Warn => SeverityNumber::Warn,
        Level::Error => SeverityNumber::Error,
    };
    let mut attributes = vec![
        string_kv(k.message_id, message.id.to_string()),
        string_kv(k.message_type, message.kind.as_str()),
        string_kv(k.message_source, message.source.as_str()),
        string_kv(k.operation_id, op.id.to_string()),
        string_kv(k.operation_type, op.kind.as_str()),
        string_kv(k.operation_action, op.action.as_str()),
        string_kv(k.environment, op.environment.as_str()),
    ];
    for (key, value) in [
        (k.integration, &op.integration),
        (k.connection, &op.connection_id),
        (k.script, &op.script),
    ] {
        if let Some(value) = value {
            attributes.push(string_kv(key, value.as_str()));
        }
    }
    push_context(&mut attributes, op, k);
    push_message_details(&mut attributes, message, k);
    LogRecord {
        time_unix_nano: unix_nanos(message.created_at),
        observed_time_unix_nano: unix_nanos(observed),
        severity_number: severity as i32,
        severity_text: message.level.as_str().to_ascii_uppercase(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(message.message.clone())),
        }),
        attributes,
        flags: SAMPLED,
        trace_id: operation_trace_id(op).0.to_vec(),
        span_id: operation_span_id(op).0.to_vec(),
        ..LogRecord::default()
    }
}

/// The resource every span of an environment is reported under.
pub fn resource(service_name: &str, attributes: &BTreeMap<String, String>) -> Resource {
    let mut all = vec![string_kv("service.name", service_name)];
    all.extend(
        attributes
            .iter()
            .filter(|(key, _)| key.as_str() != "service.name")
            .map(|(key, value)| string_kv(key, value.as_str())),
    );
    // Generated message types gain fields with new OTLP versions; `..default()` keeps this building.
    Resource {
        attributes: all,
        ..Resource::default()
    }
}

/// The instrumentation scope: opslog itself, with its version.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "opslog".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..InstrumentationScope::default()
    }
}

fn span_kind(kind: OpType, action: &str) -> SpanKind {
    match (kind, action) {
        // A third party called us.
        (OpType::Webhook, "incoming") => SpanKind::Server,
        // We called someone: a proxied request, a forwarded or delivered webhook.
        (OpType::Proxy, _) | (OpType::Webhook, _) => SpanKind::Client,
        _ => SpanKind::Internal,
    }
}

fn kept_messages(messages: &[Message], max_events: usize) -> Vec<&Message> {
    if messages.len() <= max_events {
        return messages.iter().collect();
    }
    let head = max_events.div_ceil(2);
    let tail = max_events / 2;
    messages[..head]
        .iter()
        .chain(&messages[messages.len() - tail..])
        .collect()
}

/// The end user and tags of `op`.
fn push_context(attributes: &mut Vec<KeyValue>, op: &Operation, k: &Keys) {
    if let Some(user) = &op.end_user {
        attributes.push(string_kv(k.end_user_id, user.id.as_str()));
        if let Some(email) = &user.email {
            attributes.push(string_kv(k.end_user_email, email.as_str()));
        }
        if let Some(org) = &user.organization {
            attributes.push(string_kv(k.end_user_organization, org.id.as_str()));
        }
    }
    for (key, value) in &op.tags {
        attributes.push(string_kv(&format!("{}{key}", k.tag_prefix), value.as_str()));
    }
}

fn message_event(message: &Message, k: &Keys) -> Event {
    let first_line = message.message.lines().next().unwrap_or("");
    let name = truncate_chars(first_line, MAX_EVENT_NAME_CHARS);
    let mut attributes = vec![
        string_kv(k.message_id, message.id.to_string()),
        string_kv(k.message_level, message.level.as_str()),
        string_kv(k.message_type, message.kind.as_str()),
        string_kv(k.message_source, message.source.as_str()),
    ];
    if name.as_ref() != message.message {
        attributes.push(string_kv(
            k.message_text,
            truncate_chars(&message.message, MAX_EVENT_TEXT_CHARS).into_owned(),
        ));
    }
    push_message_details(&mut attributes, message, k);
    Event {
        time_unix_nano: unix_nanos(message.created_at),
        name: name.into_owned(),
        attributes,
        ..Event::default()
    }
}

/// What a message adds to its span event or log record: HTTP fields, duration and error.
fn push_message_details(attributes: &mut Vec<KeyValue>, message: &Message, k: &Keys) {
    push_http(
        attributes,
        message.request.as_ref(),
        message.response.as_ref(),
    );
    if let Some(duration_ms) = message.duration_ms {
        attributes.push(int_kv(k.message_duration_ms, duration_ms));
    }
    if let Some(error) = &message.error {
        if let Some(kind) = error.kind.as_deref().or(error.name.as_deref()) {
            attributes.push(string_kv("error.type", kind));
        }
        push_error(attributes, error);
    }
}

fn push_error(attributes: &mut Vec<KeyValue>, error: &ErrorInfo) {
    attributes.push(string_kv("exception.message", error.message.as_str()));
    if let Some(name) = &error.name {
        attributes.push(string_kv("exception.type", name.as_str()));
    }
}

/// HTTP semantic-convention attributes (stable names of semconv 1.2x).
fn push_http(
    attributes: &mut Vec<KeyValue>,
    request: Option<&HttpRequest>,
    response: Option<&HttpResponse>,
) {
    if let Some(request) = request {
        attributes.push(string_kv(
            "http.request.method",
            request.method.to_ascii_uppercase(),
        ));
        attributes.push(string_kv("url.full", redact_url(&request.url).into_owned()));
    }
    if let Some(response) = response {
        attributes.push(int_kv(
            "http.response.status_code",
            u64::from(response.status),
        ));
    }
}

/// `url` without credentials: userinfo becomes `REDACTED:REDACTED` and the values of well-known
/// secret query parameters become `REDACTED`, as the `url.full` semantic convention asks.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let (before_fragment, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (base, query) = match before_fragment.find('?') {
        Some(i) => (&before_fragment[..i], Some(&before_fragment[i + 1..])),
        None => (before_fragment, None),
    };
    let mut changed = false;
    let mut out = String::with_capacity(url.len());
    match base.find("://") {
        Some(scheme_end) => {
            let authority_start = scheme_end + 3;
            let rest = &base[authority_start..];
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let authority = &rest[..authority_end];
            match authority.rfind('@') {
                Some(at) => {
                    changed = true;
                    out.push_str(&base[..authority_start]);
                    out.push_str("REDACTED:REDACTED");
                    out.push_str(&authority[at..]);
                    out.push_str(&rest[authority_end..]);
                }
                None => out.push_str(base),
            }
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _))
                    if SENSITIVE_QUERY_PARAMS
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(name)) =>
                {
                    changed = true;
                    out.push_str(name);
                    out.push_str("=REDACTED");
                }
                _ => out.push_str(pair),
            }
        }
    }
    if !changed {
        return Cow::Borrowed(url);
    }
    out.push_str(fragment);
    Cow::Owned(out)
}

/// At most `max` characters of `text`, ending in `…` when something was cut.
fn truncate_chars(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let cut = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &text[..cut]))
        }
    }
}

fn unix_nanos(t: Timestamp) -> u64 {
    u64::try_from(t.millis())
        .unwrap_or(0)
        .saturating_mul(1_000_000)
}

fn string_kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

fn int_kv(key: &str, value: u64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(
                i64::try_from(value).unwrap_or(i64::MAX),
            )),
        }),
        ..KeyValue::default()
    }
}

/// An environment's OTLP settings that cannot be sent to.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTel settings for environment `{environment}`: `{field}`: {message}")]
pub struct InvalidOtelSettings {
    pub environment: String,
    pub field: String,
    pub message: String,
}

/// One environment's export destination: its validated settings, ready to send to.
#[derive(Clone, PartialEq)]
pub struct OtelTarget {
    environment: String,
    traces_url: String,
    logs_url: String,
    /// Whether messages are exported as log records too.
    logs: bool,
    headers: Vec<(String, String)>,
    resource: Resource,
    timeout: std::time::Duration,
    max_events_per_span: usize,
    names: SpanNames,
}

impl OtelTarget {
    /// Checks `settings` (the same checks as the config file) and resolves the request URL.
    pub fn new(
        environment: &str,
        settings: &OtelConfig,
    ) -> Result<OtelTarget, InvalidOtelSettings> {
        settings.check().map_err(|problem| InvalidOtelSettings {
            environment: environment.to_owned(),
            field: problem.field,
            message: problem.message,
        })?;
        Ok(OtelTarget {
            environment: environment.to_owned(),
            traces_url: traces_url(&settings.endpoint),
            logs_url: signal_url(&settings.endpoint, "logs"),
            logs: settings.logs,
            headers: settings
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            resource: resource(&settings.service_name, &settings.resource_attributes),
            timeout: settings.timeout.0,
            max_events_per_span: settings.max_events_per_span,
            names: settings.names,
        })
    }

    pub fn environment(&self) -> &str {
        &self.environment
    }

    /// Where requests go: `<endpoint>/v1/traces`.
    pub fn traces_url(&self) -> &str {
        &self.traces_url
    }

    /// Where log records go: `<endpoint>/v1/logs`.
    pub fn logs_url(&self) -> &str {
        &self.logs_url
    }

    /// Whether the messages of exported operations are sent as log records.
    pub fn exports_logs(&self) -> bool {
        self.logs
    }

    /// The cap to pass to `otel::operation_span` for this environment.
    pub fn max_events_per_span(&self) -> usize {
        self.max_events_per_span
    }

    /// The headers every request carries (secrets: never logged).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// How long one request may take.
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// The span names and attribute keys of this environment's exports.
    pub fn names(&self) -> SpanNames {
        self.names
    }
}

/// Header values are secrets: never printed, not even in debug logs.
impl std::fmt::Debug for OtelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), mask(value)))
            .collect();
        f.debug_struct("OtelTarget")
            .field("environment", &self.environment)
            .field("traces_url", &self.traces_url)
            .field("logs", &self.logs)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .field("max_events_per_span", &self.max_events_per_span)
            .finish_non_exhaustive()
    }
}

/// `<endpoint>/v1/traces`, whether or not the endpoint ends in a slash.
pub fn traces_url(endpoint: &str) -> String {
    signal_url(endpoint, "traces")
}

fn signal_url(endpoint: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", endpoint.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Json, Level, MessageType, RecordCount, Source};

    fn operation(kind: OpType, action: &str, state: OpState) -> Operation {
        Operation {
            id: Id(0x0196_0000_0000_0000_0000_0000_0000_0042),
            environment: "prod".into(),
            kind,
            action: action.into(),
            state,
            integration: Some("github".into()),
            connection_id: Some("conn-1".into()),
            script: Some("issues".into()),
            provider: Some("github-app".into()),
            message: "title".into(),
            error: None,
            request: None,
            response: None,
            records: None,
            meta: None,
            end_user: None,
            tags: Default::default(),
            is_async: false,
            sync_type: None,
            checkpoints: None,
            auth_mode: None,
            output: None,
            trace_context: None,
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_009_000),
            started_at: Some(Timestamp(1_700_000_001_000)),
            ended_at: Some(Timestamp(1_700_000_002_500)),
            expires_at: Timestamp(1_700_000_900_000),
            duration_ms: Some(1_500),
            message_count: 0,
        }
    }

    fn message(n: u128, text: &str) -> Message {
        Message {
            id: Id(1000 + n),
            operation_id: Id(0x42),
            kind: MessageType::Log,
            level: Level::Info,
            source: Source::User,
            message: text.into(),
            request: None,
            response: None,
            duration_ms: None,
            retry: None,
            error: None,
            meta: None,
            created_at: Timestamp(1_700_000_001_000 + n as i64),
        }
    }

    fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn text<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
        match attr(attributes, key)? {
            any_value::Value::StringValue(s) => Some(s),
            other => panic!("{key} is not a string: {other:?}"),
        }
    }

    fn int(attributes: &[KeyValue], key: &str) -> Option<i64> {
        match attr(attributes, key)? {
            any_value::Value::IntValue(i) => Some(*i),
            other => panic!("{key} is not an int: {other:?}"),
        }
    }

    #[test]
    fn ids_are_deterministic_distinct_and_never_zero() {
        let a = Id(1);
        let b = Id(2);
        assert_eq!(trace_id(a), trace_id(a));
        assert_eq!(span_id(a), span_id(a));
        assert_ne!(trace_id(a), trace_id(b));
        assert_ne!(span_id(a), span_id(b));
        assert_ne!(
            &trace_id(a)[..8],
            &span_id(a)[..],
            "trace and span ids are unrelated"
        );
        let many: std::collections::HashSet<[u8; 8]> = (0..10_000u128)
            .map(|n| span_id(Id((1 << 80) + n)))
            .collect();
        assert_eq!(
            many.len(),
            10_000,
            "consecutive ULIDs get unrelated span ids"
        );
        assert_ne!(trace_id(Id(0)), [0u8; 16]);
        assert_ne!(span_id(Id(0)), [0u8; 8]);
        // Pinned (computed with Python's hashlib): a change here changes every exported id, so a
        // span re-sent by a newer binary would no longer deduplicate against the old one.
        let pinned = Id(0x0196_0000_0000_0000_0000_0000_0000_0042);
        assert_eq!(
            hex::encode(trace_id(pinned)),
            "ff79b025878ab43a6ae824ffe1913760"
        );
        assert_eq!(hex::encode(span_id(pinned)), "0b00ffffc4e12b0d");
    }

    #[test]
    fn an_operation_started_in_a_trace_is_a_child_span_in_that_trace() {
        let mut op = operation(OpType::Sync, "run", OpState::Success);
        op.trace_context = TraceContext::from_w3c(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            Some("congo=t61rcWkgMzE"),
        );
        let span = operation_span(&op, &[message(1, "page 1")], 128).unwrap();
        assert_eq!(
            hex::encode(&span.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(hex::encode(&span.parent_span_id), "00f067aa0ba902b7");
        assert_eq!(
            span.span_id,
            span_id(op.id),
            "its own span id stays derived"
        );
        assert_eq!(span.trace_state, "congo=t61rcWkgMzE");
        assert_eq!(span.flags, 0x301, "sampled, with a remote parent");
        let record = message_log_record(&op, &message(1, "page 1"), Timestamp(0));
        assert_eq!(record.trace_id, span.trace_id);
        assert_eq!(record.span_id, span.span_id);
        assert_eq!(
            operation_traceparent(&op),
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                hex::encode(span_id(op.id))
            )
        );
        let child = child_context(&op);
        assert_eq!(child.trace_id, op.trace_context.as_ref().unwrap().trace_id);
        assert_eq!(child.parent_span_id, Some(SpanId(span_id(op.id))));
        assert_eq!(child.tracestate.as_deref(), Some("congo=t61rcWkgMzE"));

        // Received over OTLP: the span it was, with its own ids.
        let ctx = op.trace_context.as_mut().unwrap();
        ctx.span_id = Some(SpanId(*b"its-span"));
        ctx.parent_span_id = None;
        let span = operation_span(&op, &[], 128).unwrap();
        assert_eq!(span.span_id, b"its-span");
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.flags, 0x01);

        // Without a context: a root span of a trace of its own, as before.
        op.trace_context = None;
        let span = operation_span(&op, &[], 128).unwrap();
        assert_eq!(span.trace_id, trace_id(op.id));
        assert!(span.parent_span_id.is_empty() && span.trace_state.is_empty());
        assert_eq!(span.flags, 0x101);
        assert_eq!(
            operation_traceparent(&op),
            format!(
                "00-{}-{}-01",
                hex::encode(trace_id(op.id)),
                hex::encode(span_id(op.id))
            )
        );
    }

    #[test]
    fn only_finished_operations_of_exported_types_become_spans() {
        for kind in OpType::ALL {
            let op = operation(*kind, kind.default_action(), OpState::Success);
            assert_eq!(
                operation_span(&op, &[], 128).is_some(),
                matches!(
                    kind,
                    OpType::Sync | OpType::Action | OpType::Webhook | OpType::Proxy
                ),
                "{kind}"
            );
        }
        for state in [OpState::Waiting, OpState::Running] {
            assert!(operation_span(&operation(OpType::Sync, "run", state), &[], 128).is_none());
        }
        for state in [OpState::Failed, OpState::Timeout, OpState::Cancelled] {
            assert!(operation_span(&operation(OpType::Sync, "run", state), &[], 128).is_some());
        }
    }

    #[test]
    fn successful_sync_span_carries_times_status_and_attributes() {
        let mut op = operation(OpType::Sync, "run", OpState::Success);
        op.records = Some(vec![
            RecordCount {
                model: "Issue".into(),
                added: 3,
                updated: 2,
                deleted: 1,
            },
            RecordCount {
                model: "User".into(),
                added: 10,
                updated: 0,
                deleted: 4,
            },
        ]);
        let span = operation_span(&op, &[], 128).unwrap();
        assert_eq!(span.name, "sync.run");
        assert_eq!(span.trace_id, trace_id(op.id));
        assert_eq!(span.span_id, span_id(op.id));
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.kind, SpanKind::Internal as i32);
        assert_eq!(span.start_time_unix_nano, 1_700_000_001_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_700_000_002_500_000_000);
        let status = span.status.unwrap();
        assert_eq!(status.code, StatusCode::Ok as i32);
        assert_eq!(status.message, "");
        let a = &span.attributes;
        assert_eq!(
            text(a, "opslog.operation.id"),
            Some(op.id.to_string().as_str())
        );
        assert_eq!(text(a, "opslog.operation.type"), Some("sync"));
        assert_eq!(text(a, "opslog.operation.action"), Some("run"));
        assert_eq!(text(a, "opslog.operation.state"), Some("success"));
        assert_eq!(text(a, "opslog.environment"), Some("prod"));
        assert_eq!(text(a, "opslog.integration"), Some("github"));
        assert_eq!(text(a, "opslog.connection_id"), Some("conn-1"));
        assert_eq!(text(a, "opslog.script"), Some("issues"));
        assert_eq!(text(a, "opslog.provider"), Some("github-app"));
        assert_eq!(int(a, "opslog.records.added"), Some(13));
        assert_eq!(int(a, "opslog.records.updated"), Some(2));
        assert_eq!(int(a, "opslog.records.deleted"), Some(5));
        assert_eq!(text(a, "error.type"), None);
        assert_eq!(text(a, "exception.message"), None);
        assert_eq!(text(a, "url.full"), None);
    }

    #[test]
    fn failed_action_span_is_an_error_with_its_message() {
        let mut op = operation(OpType::Action, "run", OpState::Failed);
        op.integration = None;
        op.error = Some(ErrorInfo {
            name: Some("TypeError".into()),
            message: "cannot read property id".into(),
            kind: Some("script_error".into()),
            payload: Some(Json::from_value(&serde_json::json!({"line": 3}))),
        });
        let span = operation_span(&op, &[], 128).unwrap();
        assert_eq!(span.name, "action.run");
        let status = span.status.unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "cannot read property id");
        let a = &span.attributes;
        assert_eq!(text(a, "error.type"), Some("script_error"));
        assert_eq!(
            text(a, "exception.message"),
            Some("cannot read property id")
        );
        assert_eq!(text(a, "exception.type"), Some("TypeError"));
        assert_eq!(
            text(a, "opslog.integration"),
            None,
            "absent fields are left out"
        );
    }

    #[test]
    fn timed_out_operation_without_error_names_its_state() {
        let op = operation(OpType::Sync, "run", OpState::Timeout);
        let span = operation_span(&op, &[], 128).unwrap();
        let status = span.status.unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "operation ended as timeout");
        assert_eq!(text(&span.attributes, "error.type"), Some("timeout"));
    }

    #[test]
    fn webhook_and_proxy_spans_carry_http_attributes_and_kinds() {
        let mut hook = operation(OpType::Webhook, "incoming", OpState::Success);
        hook.request = Some(HttpRequest {
            method: "post".into(),
            url: "https://opslog.example.com/v1/hooks/tok/github".into(),
            headers: None,
            body: None,
        });
        let span = operation_span(&hook, &[], 128).unwrap();
        assert_eq!(span.name, "webhook.incoming");
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(text(&span.attributes, "http.request.method"), Some("POST"));
        assert_eq!(
            text(&span.attributes, "url.full"),
            Some("https://opslog.example.com/v1/hooks/tok/github")
        );

        let mut proxy = operation(OpType::Proxy, "call", OpState::Failed);
        proxy.request = Some(HttpRequest {
            method: "GET".into(),
            url: "https://user:pw@api.github.com/repos?per_page=5&access_token=abc".into(),
            headers: None,
            body: None,
        });
        proxy.response = Some(HttpResponse {
            status: 502,
            headers: None,
            body: None,
        });
        let span = operation_span(&proxy, &[], 128).unwrap();
        assert_eq!(span.name, "proxy.call");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(
            int(&span.attributes, "http.response.status_code"),
            Some(502)
        );
        assert_eq!(
            text(&span.attributes, "url.full"),
            Some("https://REDACTED:REDACTED@api.github.com/repos?per_page=5&access_token=REDACTED")
        );
        assert_eq!(text(&span.attributes, "error.type"), Some("failed"));
    }

    #[test]
    fn messages_become_events_with_their_fields() {
        let mut op = operation(OpType::Proxy, "call", OpState::Success);
        let mut http = message(1, "GET https://api.github.com/user 200");
        http.kind = MessageType::Http;
        http.source = Source::System;
        http.request = Some(HttpRequest {
            method: "GET".into(),
            url: "https://api.github.com/user".into(),
            headers: None,
            body: None,
        });
        http.response = Some(HttpResponse {
            status: 200,
            headers: None,
            body: None,
        });
        http.duration_ms = Some(87);
        let mut failed = message(2, &format!("{}\nsecond line", "x".repeat(300)));
        failed.level = Level::Error;
        failed.error = Some(ErrorInfo {
            name: None,
            message: "boom".into(),
            kind: Some("network".into()),
            payload: None,
        });
        op.message_count = 2;
        let span = operation_span(&op, &[http, failed], 128).unwrap();
        assert_eq!(span.events.len(), 2);
        assert_eq!(span.dropped_events_count, 0);

        let first = &span.events[0];
        assert_eq!(first.name, "GET https://api.github.com/user 200");
        assert_eq!(first.time_unix_nano, 1_700_000_001_001_000_000);
        assert_eq!(
            text(&first.attributes, "opslog.message.id"),
            Some(Id(1001).to_string().as_str())
        );
        assert_eq!(
            text(&first.attributes, "opslog.message.level"),
            Some("info")
        );
        assert_eq!(text(&first.attributes, "opslog.message.type"), Some("http"));
        assert_eq!(
            text(&first.attributes, "opslog.message.source"),
            Some("system")
        );
        assert_eq!(text(&first.attributes, "http.request.method"), Some("GET"));
        assert_eq!(
            text(&first.attributes, "url.full"),
            Some("https://api.github.com/user")
        );
        assert_eq!(
            int(&first.attributes, "http.response.status_code"),
            Some(200)
        );
        assert_eq!(
            int(&first.attributes, "opslog.message.duration_ms"),
            Some(87)
        );
        assert_eq!(
            text(&first.attributes, "opslog.message.text"),
            None,
            "name is the whole text"
        );

        let second = &span.events[1];
        assert_eq!(second.name.chars().count(), MAX_EVENT_NAME_CHARS);
        assert!(second.name.ends_with('…'), "{}", second.name);
        assert!(
            text(&second.attributes, "opslog.message.text")
                .unwrap()
                .ends_with("second line"),
            "the full text travels in an attribute"
        );
        assert_eq!(
            text(&second.attributes, "opslog.message.level"),
            Some("error")
        );
        assert_eq!(text(&second.attributes, "exception.message"), Some("boom"));
        assert_eq!(text(&second.attributes, "error.type"), Some("network"));
    }

    #[test]
    fn events_are_capped_keeping_head_and_tail() {
        let mut op = operation(OpType::Sync, "run", OpState::Success);
        let messages: Vec<Message> = (0..10).map(|n| message(n, &format!("line {n}"))).collect();
        op.message_count = 10;
        let span = operation_span(&op, &messages, 5).unwrap();
        let names: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["line 0", "line 1", "line 2", "line 8", "line 9"]);
        assert_eq!(span.dropped_events_count, 5);

        // The caller loaded only the ends of a long operation: the count comes from the operation.
        op.message_count = 1_000;
        let span = operation_span(&op, &messages, 4).unwrap();
        assert_eq!(span.events.len(), 4);
        assert_eq!(span.dropped_events_count, 996);

        let span = operation_span(&op, &messages, 0).unwrap();
        assert!(span.events.is_empty());
        assert_eq!(span.dropped_events_count, 1_000);
    }

    #[test]
    fn resource_and_scope() {
        let mut attributes = BTreeMap::new();
        attributes.insert("deployment.environment.name".to_owned(), "prod".to_owned());
        let resource = resource("opslog-eu", &attributes);
        assert_eq!(
            text(&resource.attributes, "service.name"),
            Some("opslog-eu")
        );
        assert_eq!(
            text(&resource.attributes, "deployment.environment.name"),
            Some("prod")
        );
        let scope = scope();
        assert_eq!(scope.name, "opslog");
        assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn urls_lose_credentials_only() {
        assert!(matches!(
            redact_url("https://a.example/x?page=2"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            redact_url("/relative?token=t#f"),
            "/relative?token=REDACTED#f"
        );
        assert_eq!(
            redact_url("http://u@h:1/p?Signature=s&x=1&sig"),
            "http://REDACTED:REDACTED@h:1/p?Signature=REDACTED&x=1&sig"
        );
        assert_eq!(
            redact_url("http://h/p@q"),
            "http://h/p@q",
            "an @ in the path is not userinfo"
        );
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_chars("héllo", 5), "héllo");
        assert_eq!(truncate_chars("héllo!", 5), "héll…");
        assert_eq!(truncate_chars("", 0), "");
    }

    #[test]
    fn messages_become_log_records_linked_to_the_operation_span() {
        let op = operation(OpType::Proxy, "call", OpState::Failed);
        let mut m = message(1, "GET https://api.github.com/user?token=abc");
        m.level = Level::Warn;
        m.request = Some(HttpRequest {
            method: "get".into(),
            url: "https://api.github.com/user?token=abc".into(),
            headers: None,
            body: None,
        });
        m.response = Some(HttpResponse {
            status: 429,
            headers: None,
            body: None,
        });
        let record = message_log_record(&op, &m, Timestamp(1_700_000_003_000));
        assert_eq!(record.trace_id, trace_id(op.id));
        assert_eq!(record.span_id, span_id(op.id));
        assert_eq!(record.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(record.severity_text, "WARN");
        assert_eq!(record.time_unix_nano, unix_nanos(m.created_at));
        assert_eq!(record.observed_time_unix_nano, 1_700_000_003_000_000_000);
        assert_eq!(
            record.body.unwrap().value,
            Some(any_value::Value::StringValue(m.message.clone())),
            "the body is the text as stored"
        );
        let keys: Vec<&str> = record.attributes.iter().map(|kv| kv.key.as_str()).collect();
        for key in [
            "opslog.message.id",
            "opslog.operation.id",
            "opslog.operation.type",
            "opslog.environment",
            "opslog.integration",
            "http.request.method",
            "url.full",
            "http.response.status_code",
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
        let url = record
            .attributes
            .iter()
            .find(|kv| kv.key == "url.full")
            .unwrap();
        assert_eq!(
            url.value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue(
                "https://api.github.com/user?token=REDACTED".into()
            ))
        );
    }
}
