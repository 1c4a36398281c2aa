//! OTLP ingest: the official OpenTelemetry Python SDK's OTLP/HTTP exporters (PyPI
//! `opentelemetry-exporter-otlp-proto-http`, pinned by `scripts/test`) send spans and logs into
//! opslog, gzip and protobuf; JSON bodies too. A span is an operation in its trace, a log record a
//! message of its span's operation; a retried export adds nothing; what opslog exports it ingests
//! back equal; one bad span is refused alone (partial success), an undecodable body is a 400.

use std::io::Write;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use opslog::model::{Message, Operation, Timestamp};
use prost::Message as _;
use serde_json::{json, Value};

use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const TRACES: &str = "/v1/environments/prod/otlp/v1/traces";
const LOGS: &str = "/v1/environments/prod/otlp/v1/logs";
const WAIT: Duration = Duration::from_secs(30);

fn venv_python() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").to_owned()
}

/// Runs `script` with the repo's venv Python (which `scripts/test` gives the OTel SDK and its
/// OTLP/HTTP exporter) and returns what it prints last, as JSON.
fn run_python(script: &str, args: &[&str]) -> Value {
    let output = std::process::Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("the repo's .venv Python is needed ({e}); ./scripts/test creates it")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "python failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

/// A checkout span with a child that logs two lines and records an exception, exported by the
/// SDK's OTLP/HTTP exporters (protobuf, gzip); the spans are exported twice, as a retry would.
const SDK_SCRIPT: &str = r#"
import json, logging, sys
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

base, token = sys.argv[1], sys.argv[2]
headers = {"Authorization": "Bearer " + token}
resource = Resource.create({"service.name": "checkout"})
memory = InMemorySpanExporter()
provider = TracerProvider(resource=resource)
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("shop")
logs = LoggerProvider(resource=resource)
logs.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(
    endpoint=base + "/otlp/v1/logs", headers=headers, compression=Compression.Gzip)))
log = logging.getLogger("shop")
log.addHandler(LoggingHandler(logger_provider=logs))
log.setLevel(logging.INFO)

with tracer.start_as_current_span("checkout") as parent:
    with tracer.start_as_current_span("charge card", kind=trace.SpanKind.CLIENT,
            attributes={"opslog.integration": "stripe", "http.request.method": "POST",
                        "url.full": "https://api.stripe.com/v1/charges",
                        "http.response.status_code": 402}) as child:
        log.info("charging 12.50 EUR")
        log.warning("card declined, not retrying")
        child.record_exception(ValueError("card declined"))
        child.set_status(trace.Status(trace.StatusCode.ERROR, "card declined"))

spans = memory.get_finished_spans()
exporter = OTLPSpanExporter(endpoint=base + "/otlp/v1/traces", headers=headers,
                            compression=Compression.Gzip)
first = exporter.export(spans)
again = exporter.export(spans)
flushed = logs.force_flush()
ctx = lambda s: s.get_span_context()
print(json.dumps({
    "first": first.name, "again": again.name, "flushed": flushed,
    "trace_id": format(ctx(parent).trace_id, "032x"),
    "parent": format(ctx(parent).span_id, "016x"),
    "child": format(ctx(child).span_id, "016x"),
}))
"#;

#[test]
fn the_python_sdk_exports_spans_and_logs_into_operations_and_messages() {
    let d = Daemon::start();
    let out = run_python(SDK_SCRIPT, &[&d.url(PROD), PROD_KEY]);
    assert_eq!(out["first"], "SUCCESS", "{out}");
    assert_eq!(
        out["again"], "SUCCESS",
        "a retried export is accepted: {out}"
    );
    assert_eq!(out["flushed"], true, "{out}");
    let trace_id = out["trace_id"].as_str().unwrap();

    let ops = eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/operations?trace_id={trace_id}"), PROD_KEY);
        (list.body["total"] == 2).then_some(list.body)
    });
    let ops = ops["data"].as_array().unwrap();
    let by_title = |title: &str| {
        ops.iter()
            .find(|op| op["message"] == title)
            .unwrap_or_else(|| panic!("no `{title}` in {ops:?}"))
            .clone()
    };
    let parent = by_title("checkout");
    assert_eq!(parent["type"], "function");
    assert_eq!(parent["state"], "success");
    assert_eq!(parent["trace_context"]["span_id"], out["parent"]);
    assert_eq!(parent["trace_context"]["parent_span_id"], Value::Null);

    let child = by_title("charge card");
    assert_eq!(child["type"], "proxy", "a client span is a call: {child}");
    assert_eq!(child["state"], "failed");
    assert_eq!(child["integration"], "stripe");
    assert_eq!(child["error"]["message"], "card declined");
    assert_eq!(child["request"]["method"], "POST");
    assert_eq!(child["response"]["status"], 402);
    assert_eq!(child["trace_context"]["trace_id"], trace_id);
    assert_eq!(child["trace_context"]["span_id"], out["child"]);
    assert_eq!(child["trace_context"]["parent_span_id"], out["parent"]);

    // The exception event and the two log lines, once each although the spans came twice.
    let id = child["id"].as_str().unwrap();
    let messages = d.get(&format!("{PROD}/operations/{id}/messages"), PROD_KEY);
    assert_eq!(messages.status, 200, "{}", messages.text);
    let mut seen: Vec<(String, String)> = messages.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["level"].as_str().unwrap().to_owned(),
                m["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("error".to_owned(), "card declined".to_owned()),
            ("info".to_owned(), "charging 12.50 EUR".to_owned()),
            ("warn".to_owned(), "card declined, not retrying".to_owned()),
        ]
    );
    let child_again = d.get(&format!("{PROD}/operations/{id}"), PROD_KEY).body;
    assert_eq!(child_again["message_count"], 3);
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn post_protobuf(d: &Daemon, path: &str, body: &[u8]) -> Reply {
    d.raw(
        "POST",
        path,
        Some(PROD_KEY),
        &[
            ("content-type", "application/x-protobuf"),
            ("content-encoding", "gzip"),
        ],
        Some(&gzip(body)),
    )
}

/// What the API shows of an operation that a span carries (not its environment, message count,
/// `meta`, `records` or bodies, which a span does not).
fn span_fields(op: &Value) -> Value {
    let mut kept = json!({});
    for key in [
        "id",
        "type",
        "action",
        "state",
        "message",
        "integration",
        "connection_id",
        "script",
        "provider",
        "error",
        "end_user",
        "tags",
        "trace_context",
        "created_at",
        "started_at",
        "ended_at",
        "duration_ms",
    ] {
        kept[key] = op[key].clone();
    }
    kept
}

fn message_fields(m: &Value) -> Value {
    let mut kept = json!({});
    for key in [
        "id",
        "operation_id",
        "type",
        "level",
        "source",
        "message",
        "duration_ms",
        "error",
        "created_at",
    ] {
        kept[key] = m[key].clone();
    }
    kept
}

#[test]
fn what_opslog_exports_it_ingests_back_equal() {
    let a = Daemon::start();
    let b = Daemon::start();
    let id = a.start_operation(
        "prod",
        PROD_KEY,
        &json!({
            "type": "sync", "integration": "github", "connection_id": "conn-1",
            "script": "issues", "provider": "github",
            "end_user": {"id": "u-1", "email": "ada@example.com"},
            "tags": {"team": "core"},
            "messages": [
                {"message": "page 1 fetched", "level": "info"},
                {"message": "rate limited\nwaiting 2s", "level": "warn", "duration_ms": 2000},
            ],
        }),
    );
    let ended = a.patch(
        &format!("{PROD}/operations/{id}"),
        PROD_KEY,
        &json!({"state": "failed", "error": {"message": "token revoked", "name": "AuthError"}}),
    );
    assert_eq!(ended.status, 200, "{}", ended.text);
    let original = a.get(&format!("{PROD}/operations/{id}"), PROD_KEY).body;
    let messages = a
        .get(&format!("{PROD}/operations/{id}/messages"), PROD_KEY)
        .body["data"]
        .clone();

    // Exactly what opslog's exporter sends for it: its span, and a log record per message.
    let op: Operation = serde_json::from_value(original.clone()).unwrap();
    let list: Vec<Message> = serde_json::from_value(messages.clone()).unwrap();
    let span = opslog::otel::operation_span(&op, &list, 128).expect("an ended sync is exported");
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let reply = post_protobuf(&b, TRACES, &traces.encode_to_vec());
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/x-protobuf");

    let back = b.get(&format!("{PROD}/operations/{id}"), PROD_KEY);
    assert_eq!(back.status, 200, "{}", back.text);
    assert_eq!(span_fields(&back.body), span_fields(&original));
    let back_messages = b
        .get(&format!("{PROD}/operations/{id}/messages"), PROD_KEY)
        .body["data"]
        .clone();
    let fields = |list: &Value| -> Vec<Value> {
        list.as_array()
            .unwrap()
            .iter()
            .map(message_fields)
            .collect()
    };
    assert_eq!(fields(&back_messages), fields(&messages));

    // Its log records name the same messages: nothing is added twice.
    let records = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: list
                    .iter()
                    .map(|m| opslog::otel::message_log_record(&op, m, Timestamp::now()))
                    .collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    };
    let reply = post_protobuf(&b, LOGS, &records.encode_to_vec());
    assert_eq!(reply.status, 200, "{}", reply.text);
    let again = b.get(&format!("{PROD}/operations/{id}"), PROD_KEY).body;
    assert_eq!(again["message_count"], 2);
}

#[test]
fn json_bodies_with_a_bad_span_or_an_orphan_log_are_partly_accepted() {
    let d = Daemon::start();
    // A minute ago: a span older than the retention period would be removed by the first sweep.
    let minute_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    let ns = |second: u64| ((minute_ago + second) as u128 * 1_000_000_000).to_string();
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "nightly import", "kind": 1,
            "startTimeUnixNano": ns(0), "endTimeUnixNano": ns(3),
            "attributes": [{"key": "opslog.tag.team", "value": {"stringValue": "data"}}],
            "events": [{"timeUnixNano": ns(1), "name": "batch 1 written"}]
        },
        {
            "traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b175",
            "name": "no trace", "startTimeUnixNano": ns(0),
            "endTimeUnixNano": ns(0)
        }
    ]}]}]});
    let reply = d.raw(
        "POST",
        TRACES,
        Some(PROD_KEY),
        &[],
        Some(&serde_json::to_vec(&body).unwrap()),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["partialSuccess"]["rejectedSpans"], "1",
        "{}",
        reply.text
    );
    assert!(
        reply.body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("traceId"),
        "{}",
        reply.text
    );
    // The index is written after the commit: poll until it has the operation.
    let list = eventually(WAIT, || {
        let list = d
            .get(&format!("{PROD}/operations?tag=team:data"), PROD_KEY)
            .body;
        (list["total"] == 1).then_some(list)
    });
    let op = &list["data"][0];
    assert_eq!(op["message"], "nightly import");
    assert_eq!(op["duration_ms"], 3000);
    assert_eq!(op["message_count"], 1);

    let logs = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
         "timeUnixNano": ns(2), "severityNumber": 17,
         "body": {"stringValue": "row 17 rejected"}},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "0000000000000001",
         "timeUnixNano": ns(2), "body": {"stringValue": "from a span never sent"}}
    ]}]}]});
    let reply = d.raw(
        "POST",
        LOGS,
        Some(PROD_KEY),
        &[("content-type", "application/json; charset=utf-8")],
        Some(&serde_json::to_vec(&logs).unwrap()),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        reply.body["partialSuccess"]["rejectedLogRecords"], "1",
        "{}",
        reply.text
    );
    let id = op["id"].as_str().unwrap();
    let messages = d
        .get(&format!("{PROD}/operations/{id}/messages"), PROD_KEY)
        .body;
    let texts: Vec<&str> = messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["batch 1 written", "row 17 rejected"]);
    assert_eq!(messages["data"][1]["level"], "error");
    // Everything accepted: no partial success.
    let reply = d.raw(
        "POST",
        TRACES,
        Some(PROD_KEY),
        &[],
        Some(br#"{"resourceSpans": []}"#),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, json!({}));
}

#[test]
fn undecodable_or_unsupported_bodies_are_4xx_and_write_nothing() {
    let d = Daemon::start();
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [u8], u16, &'a str);
    let cases: [Case; 5] = [
        (
            &[("content-type", "application/x-protobuf")],
            b"\xff\xff\xff\xff",
            400,
            "undecodable_body",
        ),
        (
            &[("content-type", "application/json")],
            b"{\"resourceSpans\": 7}",
            400,
            "undecodable_body",
        ),
        (
            &[
                ("content-type", "application/x-protobuf"),
                ("content-encoding", "gzip"),
            ],
            b"not gzip",
            400,
            "undecodable_body",
        ),
        (
            &[("content-type", "text/plain")],
            b"hello",
            415,
            "unsupported_media_type",
        ),
        (
            &[
                ("content-type", "application/json"),
                ("content-encoding", "br"),
            ],
            b"{}",
            415,
            "unsupported_encoding",
        ),
    ];
    for (headers, body, status, code) in cases {
        let reply = d.raw("POST", TRACES, Some(PROD_KEY), headers, Some(body));
        assert_eq!(reply.status, status, "{headers:?}: {}", reply.text);
        assert_eq!(reply.code(), code, "{}", reply.text);
    }
    let reply = d.raw(
        "POST",
        TRACES,
        Some("wrong"),
        &[("content-type", "application/json")],
        Some(b"{}"),
    );
    assert_eq!(reply.status, 401);
    let list = d.get(&format!("{PROD}/operations"), PROD_KEY).body;
    assert_eq!(list["total"], 0, "{list}");
}
