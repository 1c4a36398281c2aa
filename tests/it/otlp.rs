//! OTLP/HTTP export against a real HTTP collector on loopback (`collector.rs`): what arrives on the
//! wire, decoded with opentelemetry-proto and, as a peer implementation, with the PyPI
//! `opentelemetry-proto` package; and how the collector's answers are classified.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use opslog::config::OtelConfig;
use opslog::destination::DestinationPolicy;
use opslog::dispatch::otlp::{export_agent, export_spans, ExportOutcome};
use opslog::model::{
    ErrorInfo, HttpRequest, HttpResponse, Id, Level, Message, MessageType, OpState, OpType,
    Operation, RecordCount, Source, Timestamp,
};
use opslog::otel::operation_span;
use opslog::otel::OtelTarget;
use prost::Message as _;
use serde_json::Value as JsonValue;
use sha2::{Digest, Sha256};

use crate::collector::{Answer, Collector, Received};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn operation(n: u128, kind: OpType, action: &str, state: OpState) -> Operation {
    Operation {
        id: Id(0x019B_7000_0000_0000_0000_0000_0000_0000 + n),
        environment: "prod".into(),
        kind,
        action: action.into(),
        state,
        integration: Some("github".into()),
        connection_id: Some(format!("conn-{n}")),
        script: None,
        provider: None,
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
        created_at: Timestamp(T0),
        updated_at: Timestamp(T0 + 5_000),
        started_at: Some(Timestamp(T0 + 100)),
        ended_at: Some(Timestamp(T0 + 2_600)),
        expires_at: Timestamp(T0 + 900_000),
        duration_ms: Some(2_500),
        message_count: 0,
    }
}

fn log(op: &Operation, n: u128, text: &str) -> Message {
    Message {
        id: Id(op.id.0 + 1_000 + n),
        operation_id: op.id,
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
        created_at: Timestamp(T0 + 200 + n as i64),
    }
}

/// One operation of each exported type plus an `auth` one, with their messages.
fn sample() -> Vec<(Operation, Vec<Message>)> {
    let mut sync = operation(1, OpType::Sync, "run", OpState::Success);
    sync.script = Some("issues".into());
    sync.records = Some(vec![RecordCount {
        model: "Issue".into(),
        added: 5,
        updated: 1,
        deleted: 2,
    }]);
    let sync_messages = vec![
        log(&sync, 0, "fetched page 1"),
        log(&sync, 1, "fetched page 2"),
        log(&sync, 2, "saved 5 records"),
    ];
    sync.message_count = 3;

    let mut action = operation(2, OpType::Action, "run", OpState::Failed);
    action.script = Some("create-issue".into());
    action.provider = Some("github-app".into());
    action.error = Some(ErrorInfo {
        name: Some("ProviderError".into()),
        message: "rate limited by provider".into(),
        kind: Some("provider_error".into()),
        payload: None,
    });

    let mut webhook = operation(3, OpType::Webhook, "incoming", OpState::Success);
    webhook.request = Some(HttpRequest {
        method: "POST".into(),
        url: "https://opslog.example.com/v1/hooks/token/github".into(),
        headers: None,
        body: None,
    });

    let mut proxy = operation(4, OpType::Proxy, "call", OpState::Failed);
    proxy.request = Some(HttpRequest {
        method: "GET".into(),
        url: "https://api.github.com/user?access_token=abc".into(),
        headers: None,
        body: None,
    });
    proxy.response = Some(HttpResponse {
        status: 502,
        headers: None,
        body: None,
    });
    let mut call = log(&proxy, 0, "GET https://api.github.com/user 502");
    call.kind = MessageType::Http;
    call.level = Level::Error;
    call.source = Source::System;
    call.request = proxy.request.clone();
    call.response = proxy.response.clone();
    call.duration_ms = Some(120);
    proxy.message_count = 1;

    let auth = operation(5, OpType::Auth, "create_connection", OpState::Success);
    vec![
        (sync, sync_messages),
        (action, Vec::new()),
        (webhook, Vec::new()),
        (proxy, vec![call]),
        (auth, Vec::new()),
    ]
}

fn settings(endpoint: &str) -> OtelConfig {
    let mut settings = OtelConfig::with_endpoint(endpoint);
    settings
        .headers
        .insert("x-api-key".into(), "collector-key-0123456789".into());
    settings.service_name = "opslog-test".into();
    settings
        .resource_attributes
        .insert("deployment.environment.name".into(), "prod".into());
    settings.max_events_per_span = 2;
    settings.timeout.0 = Duration::from_secs(10);
    settings
}

fn spans(target: &OtelTarget) -> Vec<Span> {
    sample()
        .iter()
        .filter_map(|(op, messages)| operation_span(op, messages, target.max_events_per_span()))
        .collect()
}

/// The ids the wire must carry, derived here independently of the crate's code.
fn expected_ids(id: Id) -> (String, String) {
    let digest = |label: &[u8]| Sha256::digest([label, &id.0.to_be_bytes()[..]].concat());
    (
        hex::encode(&digest(b"opslog/otel/trace-id/v1\0")[..16]),
        hex::encode(&digest(b"opslog/otel/span-id/v1\0")[..8]),
    )
}

/// Exports the sample to a fresh collector (endpoint with a path and a trailing slash) and returns
/// the request it received.
fn export_sample() -> Received {
    let collector = Collector::start(Vec::new());
    let target = OtelTarget::new("prod", &settings(&collector.url("/otlp/"))).unwrap();
    let outcome = export_spans(
        &export_agent(DestinationPolicy::default()),
        &target,
        &spans(&target),
    );
    assert_eq!(
        outcome,
        ExportOutcome::Delivered {
            status: 200,
            rejected: 0,
            message: None
        }
    );
    let mut received = collector.received();
    assert_eq!(received.len(), 1, "one batch, one request");
    received.pop().unwrap()
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, JsonValue> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => JsonValue::from(s.as_str()),
                Some(Value::IntValue(i)) => JsonValue::from(*i),
                other => panic!("unexpected attribute value {other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// What the wire must say about each sample span, keyed by span name.
fn expectations() -> BTreeMap<&'static str, (Operation, JsonValue)> {
    let ops: BTreeMap<&str, Operation> = sample()
        .into_iter()
        .map(|(op, _)| (op.kind.as_str(), op))
        .collect();
    let base = |op: &Operation, state: &str| {
        serde_json::json!({
            "opslog.operation.id": op.id.to_string(),
            "opslog.operation.type": op.kind.as_str(),
            "opslog.operation.action": op.action,
            "opslog.operation.state": state,
            "opslog.environment": "prod",
            "opslog.integration": "github",
            "opslog.connection_id": op.connection_id.clone().unwrap(),
        })
    };
    let merge = |mut a: JsonValue, b: JsonValue| {
        a.as_object_mut()
            .unwrap()
            .extend(b.as_object().unwrap().clone());
        a
    };
    let sync = &ops["sync"];
    let action = &ops["action"];
    let webhook = &ops["webhook"];
    let proxy = &ops["proxy"];
    BTreeMap::from([
        (
            "sync.run",
            (
                sync.clone(),
                merge(
                    base(sync, "success"),
                    serde_json::json!({
                        "opslog.script": "issues",
                        "opslog.records.added": 5,
                        "opslog.records.updated": 1,
                        "opslog.records.deleted": 2,
                    }),
                ),
            ),
        ),
        (
            "action.run",
            (
                action.clone(),
                merge(
                    base(action, "failed"),
                    serde_json::json!({
                        "opslog.script": "create-issue",
                        "opslog.provider": "github-app",
                        "error.type": "provider_error",
                        "exception.message": "rate limited by provider",
                        "exception.type": "ProviderError",
                    }),
                ),
            ),
        ),
        (
            "webhook.incoming",
            (
                webhook.clone(),
                merge(
                    base(webhook, "success"),
                    serde_json::json!({
                        "http.request.method": "POST",
                        "url.full": "https://opslog.example.com/v1/hooks/token/github",
                    }),
                ),
            ),
        ),
        (
            "proxy.call",
            (
                proxy.clone(),
                merge(
                    base(proxy, "failed"),
                    serde_json::json!({
                        "error.type": "failed",
                        "http.request.method": "GET",
                        "url.full": "https://api.github.com/user?access_token=REDACTED",
                        "http.response.status_code": 502,
                    }),
                ),
            ),
        ),
    ])
}

#[test]
fn each_exported_type_arrives_as_a_decodable_span() {
    let request = export_sample();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/otlp/v1/traces");
    assert_eq!(request.headers["content-type"], "application/x-protobuf");
    assert_eq!(request.headers["content-encoding"], "gzip");
    assert_eq!(request.headers["x-api-key"], "collector-key-0123456789");
    assert!(
        request.headers["user-agent"].starts_with("opslog/"),
        "{:?}",
        request.headers
    );
    assert_eq!(&request.body[..2], &[0x1f, 0x8b], "the body is gzipped");

    let decoded = request.decode();
    assert_eq!(decoded.resource_spans.len(), 1);
    let resource_spans = &decoded.resource_spans[0];
    assert_eq!(
        attributes(&resource_spans.resource.as_ref().unwrap().attributes),
        BTreeMap::from([
            ("service.name".to_owned(), JsonValue::from("opslog-test")),
            (
                "deployment.environment.name".to_owned(),
                JsonValue::from("prod")
            ),
        ])
    );
    let scope_spans = &resource_spans.scope_spans[0];
    assert_eq!(scope_spans.scope.as_ref().unwrap().name, "opslog");
    let spans = &scope_spans.spans;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["sync.run", "action.run", "webhook.incoming", "proxy.call"],
        "auth is never exported"
    );

    let expected = expectations();
    for span in spans {
        let (op, attrs) = &expected[span.name.as_str()];
        let (trace_id, span_id) = expected_ids(op.id);
        assert_eq!(hex::encode(&span.trace_id), trace_id, "{}", span.name);
        assert_eq!(hex::encode(&span.span_id), span_id, "{}", span.name);
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.start_time_unix_nano, (T0 as u64 + 100) * 1_000_000);
        assert_eq!(span.end_time_unix_nano, (T0 as u64 + 2_600) * 1_000_000);
        let status = span.status.as_ref().unwrap();
        let want_ok = op.state == OpState::Success;
        assert_eq!(status.code, if want_ok { 1 } else { 2 }, "{}", span.name);
        let got: JsonValue = serde_json::to_value(attributes(&span.attributes)).unwrap();
        assert_eq!(&got, attrs, "{}", span.name);
    }

    let sync = &spans[0];
    let events: Vec<&str> = sync.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        events,
        ["fetched page 1", "saved 5 records"],
        "head and tail kept"
    );
    assert_eq!(sync.dropped_events_count, 1);
    assert_eq!(sync.events[1].time_unix_nano, (T0 as u64 + 202) * 1_000_000);
    assert_eq!(
        attributes(&sync.events[1].attributes)["opslog.message.source"],
        "user"
    );

    let action = &spans[1];
    assert_eq!(
        action.status.as_ref().unwrap().message,
        "rate limited by provider"
    );

    let proxy = &spans[3];
    assert_eq!(proxy.events.len(), 1);
    let event = attributes(&proxy.events[0].attributes);
    assert_eq!(proxy.events[0].name, "GET https://api.github.com/user 502");
    assert_eq!(event["opslog.message.level"], "error");
    assert_eq!(event["opslog.message.type"], "http");
    assert_eq!(event["http.response.status_code"], 502);
    assert_eq!(event["opslog.message.duration_ms"], 120);
}

/// A peer implementation: Python's generated OTLP classes read the same bytes.
#[test]
fn the_python_otlp_package_decodes_the_same_request() {
    const SCRIPT: &str = r#"
import json, sys
try:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
except ImportError as e:
    sys.exit("MISSING opentelemetry-proto: %s" % e)
request = trace_service_pb2.ExportTraceServiceRequest()
request.ParseFromString(open(sys.argv[1], "rb").read())
def value(v):
    return v.int_value if v.WhichOneof("value") == "int_value" else v.string_value
out = {"resource": {}, "spans": []}
for rs in request.resource_spans:
    out["resource"] = {kv.key: value(kv.value) for kv in rs.resource.attributes}
    for ss in rs.scope_spans:
        out["scope"] = ss.scope.name
        for s in ss.spans:
            out["spans"].append({
                "name": s.name,
                "trace_id": s.trace_id.hex(),
                "span_id": s.span_id.hex(),
                "start": s.start_time_unix_nano,
                "end": s.end_time_unix_nano,
                "status": s.status.code,
                "status_message": s.status.message,
                "events": [e.name for e in s.events],
                "dropped_events": s.dropped_events_count,
                "attributes": {kv.key: value(kv.value) for kv in s.attributes},
            })
print(json.dumps(out))
"#;
    let request = export_sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("request.pb");
    std::fs::write(&path, request.protobuf()).unwrap();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for this test ({e}); ./scripts/test installs what it needs")
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "python3 could not decode the request{}: {stderr}",
        if stderr.contains("MISSING") {
            " (run `python3 -m pip install opentelemetry-proto`, as ./scripts/test does)"
        } else {
            ""
        }
    );
    let decoded: JsonValue = serde_json::from_slice(&output.stdout).unwrap();

    assert_eq!(decoded["scope"], "opslog");
    assert_eq!(decoded["resource"]["service.name"], "opslog-test");
    let expected = expectations();
    let spans = decoded["spans"].as_array().unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["sync.run", "action.run", "webhook.incoming", "proxy.call"]
    );
    for span in spans {
        let (op, attrs) = &expected[span["name"].as_str().unwrap()];
        let (trace_id, span_id) = expected_ids(op.id);
        assert_eq!(span["trace_id"], trace_id.as_str());
        assert_eq!(span["span_id"], span_id.as_str());
        assert_eq!(span["start"], (T0 as u64 + 100) * 1_000_000);
        assert_eq!(span["end"], (T0 as u64 + 2_600) * 1_000_000);
        // STATUS_CODE_OK = 1, STATUS_CODE_ERROR = 2 in the proto enum.
        let want = if op.state == OpState::Success { 1 } else { 2 };
        assert_eq!(span["status"], want);
        assert_eq!(&span["attributes"], attrs);
    }
    assert_eq!(
        spans[0]["events"],
        serde_json::json!(["fetched page 1", "saved 5 records"])
    );
    assert_eq!(spans[0]["dropped_events"], 1);
    assert_eq!(spans[1]["status_message"], "rate limited by provider");
}

#[test]
fn unavailable_collector_is_retried_after_its_delay_then_gets_the_same_spans() {
    let collector = Collector::start(vec![Answer::with(
        503,
        &[("retry-after", "7"), ("content-type", "text/plain")],
        b"collector restarting".to_vec(),
    )]);
    let target = OtelTarget::new("prod", &settings(&collector.url(""))).unwrap();
    let agent = export_agent(DestinationPolicy::default());
    let spans = spans(&target);
    assert_eq!(
        export_spans(&agent, &target, &spans),
        ExportOutcome::Retry {
            status: Some(503),
            after: Some(Duration::from_secs(7)),
            reason: "collector answered 503 Service Unavailable: collector restarting".into()
        }
    );
    assert!(matches!(
        export_spans(&agent, &target, &spans),
        ExportOutcome::Delivered { rejected: 0, .. }
    ));
    let received = collector.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].path, "/v1/traces");
    assert_eq!(
        received[0].decode(),
        received[1].decode(),
        "a re-sent export is the same spans, so a backend can deduplicate"
    );
}

#[test]
fn bad_request_is_a_permanent_failure_with_the_collectors_message() {
    // google.rpc.Status { code: 3, message: "..." }, as OTLP/HTTP servers send it.
    let mut status = vec![0x08, 0x03, 0x12];
    let message = b"span has invalid trace id";
    status.push(message.len() as u8);
    status.extend_from_slice(message);
    let collector = Collector::start(vec![Answer::with(
        400,
        &[("content-type", "application/x-protobuf")],
        status,
    )]);
    let target = OtelTarget::new("prod", &settings(&collector.url(""))).unwrap();
    assert_eq!(
        export_spans(
            &export_agent(DestinationPolicy::default()),
            &target,
            &spans(&target)
        ),
        ExportOutcome::Failed {
            status: Some(400),
            reason: "collector answered 400 Bad Request: span has invalid trace id".into()
        }
    );
}

#[test]
fn partial_success_reports_the_rejected_spans() {
    let body = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 2,
            error_message: "2 spans exceeded the attribute limit".into(),
        }),
    }
    .encode_to_vec();
    let collector = Collector::start(vec![Answer::with(
        200,
        &[("content-type", "application/x-protobuf")],
        body,
    )]);
    let target = OtelTarget::new("prod", &settings(&collector.url(""))).unwrap();
    assert_eq!(
        export_spans(
            &export_agent(DestinationPolicy::default()),
            &target,
            &spans(&target)
        ),
        ExportOutcome::Delivered {
            status: 200,
            rejected: 2,
            message: Some("2 spans exceeded the attribute limit".into())
        }
    );
}

#[test]
fn unreachable_or_silent_collectors_are_retried() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let target = OtelTarget::new("prod", &settings(&format!("http://127.0.0.1:{port}"))).unwrap();
    let outcome = export_spans(
        &export_agent(DestinationPolicy::default()),
        &target,
        &spans(&target),
    );
    assert!(
        matches!(&outcome, ExportOutcome::Retry { status: None, after: None, reason } if reason.contains("collector")),
        "{outcome:?}"
    );

    let collector = Collector::start(vec![Answer::Hang]);
    let mut silent = settings(&collector.url(""));
    silent.timeout.0 = Duration::from_millis(300);
    let target = OtelTarget::new("prod", &silent).unwrap();
    let outcome = export_spans(
        &export_agent(DestinationPolicy::default()),
        &target,
        &spans(&target),
    );
    assert!(
        matches!(&outcome, ExportOutcome::Retry { status: None, after: None, reason } if reason.contains("in time")),
        "{outcome:?}"
    );
}
