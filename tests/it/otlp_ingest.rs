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
use opslog::model::settings::SpanNames;
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

    // Exactly what opslog's exporter sends for it, under either naming scheme (`otel.names`):
    // its span, and a log record per message.
    let op: Operation = serde_json::from_value(original.clone()).unwrap();
    let list: Vec<Message> = serde_json::from_value(messages.clone()).unwrap();
    for names in [SpanNames::Opslog, SpanNames::Nango] {
        let b = Daemon::start();
        ingest_back(&b, &op, &list, names, &original, &messages);
    }
}

fn ingest_back(
    b: &Daemon,
    op: &Operation,
    list: &[Message],
    names: SpanNames,
    original: &Value,
    messages: &Value,
) {
    let id = op.id;
    let span = opslog::otel::operation_span_named(op, list, 128, names)
        .expect("an ended sync is exported");
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    let reply = post_protobuf(b, TRACES, &traces.encode_to_vec());
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["content-type"], "application/x-protobuf");

    let back = b.get(&format!("{PROD}/operations/{id}"), PROD_KEY);
    assert_eq!(back.status, 200, "{names:?}: {}", back.text);
    assert_eq!(span_fields(&back.body), span_fields(original), "{names:?}");
    assert_eq!(back.body["meta"], Value::Null, "{names:?}");
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
    assert_eq!(fields(&back_messages), fields(messages), "{names:?}");

    // Its log records name the same messages: nothing is added twice.
    let records = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: list
                    .iter()
                    .map(|m| opslog::otel::message_log_record_named(op, m, Timestamp::now(), names))
                    .collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    };
    let reply = post_protobuf(b, LOGS, &records.encode_to_vec());
    assert_eq!(reply.status, 200, "{}", reply.text);
    let again = b.get(&format!("{PROD}/operations/{id}"), PROD_KEY).body;
    assert_eq!(again["message_count"], 2, "{names:?}");
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
        // A `google.rpc.Status` in the request's encoding (JSON for an unknown one).
        let message = if reply.headers["content-type"] == "application/x-protobuf" {
            RpcStatus::decode(&reply.bytes[..]).unwrap().message
        } else {
            reply.body["message"].as_str().unwrap().to_owned()
        };
        assert!(message.starts_with(&format!("{code}: ")), "{message}");
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

/// Spans exactly as Nango exports them (NangoHQ/nango `packages/logs/lib/otlp/otlpSpan.ts`,
/// `otlp.ts`, `otlpSpanProcessor.ts`): a root span named `nango.<type>.<action>` (lowercase) from
/// the tracer `nango-otlp` under the resource `service.name=nango-otlp`, with the attributes
/// `nango.operation.{id,type,action,message}`, `nango.account`, `nango.environment`,
/// `nango.provider`, `nango.integration`, `nango.connection`, `nango.sync`; `fail()` records the
/// exception and sets the status ERROR, `enrich()` adds `nango.error.{message,type}`, `end(state)`
/// sets `nango.operation.status` and the status (OK for success, waiting and running). Exported
/// through a `BatchSpanProcessor` and the OTLP/HTTP exporter, as Nango does.
const NANGO_SCRIPT: &str = r#"
import json, sys, time
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

base, token = sys.argv[1], sys.argv[2]
provider = TracerProvider(resource=Resource.create({"service.name": "nango-otlp"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
    endpoint=base + "/otlp/v1/traces", headers={"Authorization": "Bearer " + token})))
tracer = provider.get_tracer("nango-otlp")
minute_ago = time.time_ns() - 60 * 10**9

def operation(op_id, kind, action, message, state, connection, sync=None, error=None):
    attributes = {
        "nango.operation.id": op_id, "nango.operation.type": kind,
        "nango.operation.action": action, "nango.operation.message": message,
        "nango.account": "Acme Inc", "nango.environment": "prod",
        "nango.provider": "salesforce", "nango.integration": "salesforce-crm",
        "nango.connection": connection,
    }
    if sync:
        attributes["nango.sync"] = sync
    span = tracer.start_span(f"nango.{kind}.{action}".lower(), attributes=attributes,
                             start_time=minute_ago)
    if error:
        span.record_exception(RuntimeError(error["message"]))
        span.set_status(Status(StatusCode.ERROR))
        span.set_attributes({"nango.error.message": error["message"],
                             "nango.error.type": error["type"]})
    span.set_attribute("nango.operation.status", state)
    span.set_status(Status(StatusCode.OK if state in ("success", "waiting", "running")
                           else StatusCode.ERROR))
    span.end(end_time=minute_ago + 4 * 10**9)
    return span

spans = [
    operation("nango-op-1", "sync", "run", "Sync", "failed", "acme", sync="contacts",
              error={"message": "INVALID_SESSION_ID: Session expired", "type": "script_http_error"}),
    operation("nango-op-2", "action", "run", "Action", "success", "acme", sync="create-contact"),
    operation("nango-op-3", "proxy", "call", "Proxy call", "success", "acme"),
    operation("nango-op-4", "webhook", "incoming", "Received a webhook", "success", "acme"),
    operation("nango-op-5", "sync", "run", "Sync", "timeout", "globex", sync="accounts"),
]
flushed = provider.force_flush()
print(json.dumps({
    "flushed": flushed,
    "trace_ids": [format(s.get_span_context().trace_id, "032x") for s in spans],
}))
"#;

#[test]
fn spans_exported_by_nango_become_the_operations_nango_shows() {
    let d = Daemon::start();
    let out = run_python(NANGO_SCRIPT, &[&d.url(PROD), PROD_KEY]);
    assert_eq!(out["flushed"], true, "{out}");
    let list = eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/operations?limit=50"), PROD_KEY).body;
        (list["total"] == 5).then_some(list)
    });
    let ops = list["data"].as_array().unwrap();
    let by_nango_id = |id: &str| {
        ops.iter()
            .find(|op| op["meta"]["nango"]["operation_id"] == id)
            .unwrap_or_else(|| panic!("no Nango operation {id} in {ops:?}"))
    };
    let shown = |op: &Value| {
        json!([
            op["type"],
            op["action"],
            op["state"],
            op["message"],
            op["integration"],
            op["provider"],
            op["connection_id"],
            op["script"],
            op["duration_ms"],
        ])
    };

    let sync = by_nango_id("nango-op-1");
    assert_eq!(
        shown(sync),
        json!([
            "sync",
            "run",
            "failed",
            "Sync",
            "salesforce-crm",
            "salesforce",
            "acme",
            "contacts",
            4000
        ])
    );
    assert_eq!(
        sync["error"],
        json!({"message": "INVALID_SESSION_ID: Session expired", "type": "script_http_error"})
    );
    assert_eq!(
        sync["meta"]["nango"],
        json!({"operation_id": "nango-op-1", "account": "Acme Inc", "environment": "prod"})
    );
    assert_eq!(sync["trace_context"]["trace_id"], out["trace_ids"][0]);
    assert_eq!(
        shown(by_nango_id("nango-op-2")),
        json!([
            "action",
            "run",
            "success",
            "Action",
            "salesforce-crm",
            "salesforce",
            "acme",
            "create-contact",
            4000
        ])
    );
    assert_eq!(
        shown(by_nango_id("nango-op-3")),
        json!([
            "proxy",
            "call",
            "success",
            "Proxy call",
            "salesforce-crm",
            "salesforce",
            "acme",
            null,
            4000
        ])
    );
    assert_eq!(
        shown(by_nango_id("nango-op-4")),
        json!([
            "webhook",
            "incoming",
            "success",
            "Received a webhook",
            "salesforce-crm",
            "salesforce",
            "acme",
            null,
            4000
        ])
    );
    let timed_out = by_nango_id("nango-op-5");
    assert_eq!(
        shown(timed_out),
        json!([
            "sync",
            "run",
            "timeout",
            "Sync",
            "salesforce-crm",
            "salesforce",
            "globex",
            "accounts",
            4000
        ])
    );
    assert_eq!(timed_out["error"], Value::Null, "{timed_out}");

    // The filters a Nango user reaches for work on them.
    let failed = d
        .get(
            &format!("{PROD}/operations?type=sync&state=failed&connection_id=acme"),
            PROD_KEY,
        )
        .body;
    assert_eq!(failed["total"], 1, "{failed}");
    assert_eq!(
        failed["data"][0]["meta"]["nango"]["operation_id"],
        "nango-op-1"
    );
    // The recorded exception is the failed run's error message.
    let id = sync["id"].as_str().unwrap();
    let messages = d
        .get(&format!("{PROD}/operations/{id}/messages"), PROD_KEY)
        .body;
    assert_eq!(messages["data"][0]["level"], "error", "{messages}");
    assert_eq!(
        messages["data"][0]["message"],
        "INVALID_SESSION_ID: Session expired"
    );
}

/// `google.rpc.Status` as the OTLP/HTTP spec has error bodies carry it (its `details`, tag 3,
/// left out): declared here, apart from opslog's, so the test decodes what the spec says.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// A batch of `count` spans with ids of their own (`batch`, `i`), ended a minute ago.
fn span_batch(batch: u32, count: u32) -> Vec<u8> {
    use opentelemetry_proto::tonic::trace::v1::Span;
    let minute_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 60_000_000_000;
    let spans = (0..count)
        .map(|i| {
            let mut trace_id = [1u8; 16];
            trace_id[..4].copy_from_slice(&batch.to_be_bytes());
            trace_id[4..8].copy_from_slice(&i.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: [7u8; 8].to_vec(),
                name: format!("burst {batch}/{i}"),
                start_time_unix_nano: minute_ago,
                end_time_unix_nano: minute_ago + 1_000_000,
                ..Span::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

fn operations_total(d: &Daemon) -> u64 {
    d.get(&format!("{PROD}/operations?limit=1"), PROD_KEY).body["total"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_full_writer_queue_answers_503_with_retry_after_and_loses_nothing_acknowledged() {
    // A queue of one request: a burst of exports fills it while the writer commits.
    let d = Daemon::start_with(|c| c.ingest.writer_queue = 1);
    const SPANS: u32 = 50;
    const SENDERS: u32 = 16;
    // Acknowledged before the burst (retried while the daemon's own start-up writes fill the queue).
    eventually(WAIT, || {
        (post_protobuf(&d, TRACES, &span_batch(u32::MAX, SPANS)).status == 200).then_some(())
    });

    let mut acknowledged = u64::from(SPANS);
    let mut refused = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    let mut round = 0;
    // Bursts until one was refused (bounded by the deadline).
    while refused.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{round} bursts of {SENDERS} concurrent exports never filled a queue of one"
        );
        let replies: Vec<(u32, Reply)> = std::thread::scope(|s| {
            let senders: Vec<_> = (0..SENDERS)
                .map(|i| {
                    let batch = round * SENDERS + i;
                    let d = &d;
                    s.spawn(move || (batch, post_protobuf(d, TRACES, &span_batch(batch, SPANS))))
                })
                .collect();
            senders.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for (batch, reply) in replies {
            match reply.status {
                200 => acknowledged += u64::from(SPANS),
                503 => {
                    assert_eq!(reply.headers["retry-after"], "1", "{:?}", reply.headers);
                    assert_eq!(reply.headers["content-type"], "application/x-protobuf");
                    let status = RpcStatus::decode(&reply.bytes[..]).expect("a google.rpc.Status");
                    assert_eq!(status.code, 14, "UNAVAILABLE: {status:?}");
                    assert!(status.message.starts_with("busy: "), "{status:?}");
                    refused.push(batch);
                }
                other => panic!("batch {batch}: {other} {}", reply.text),
            }
        }
        round += 1;
    }
    // Exactly what was acknowledged is stored: the refused batches wrote nothing.
    eventually(WAIT, || {
        (operations_total(&d) == acknowledged).then_some(())
    });
    // The exporter's retry of each refused batch is accepted once the queue has room.
    for batch in refused {
        let reply = eventually(WAIT, || {
            let reply = post_protobuf(&d, TRACES, &span_batch(batch, SPANS));
            (reply.status == 200).then_some(reply)
        });
        assert_eq!(reply.text, "", "no partial success");
        acknowledged += u64::from(SPANS);
    }
    eventually(WAIT, || {
        (operations_total(&d) == acknowledged).then_some(())
    });
}

/// OTLP/HTTP error bodies, decoded by the `google.rpc.Status` of PyPI `googleapis-common-protos`
/// (what the Python exporter reads them with): protobuf for a protobuf request, JSON for JSON.
const STATUS_SCRIPT: &str = r#"
import json, sys, urllib.request, urllib.error
from google.rpc import status_pb2
from google.protobuf import json_format

url, token = sys.argv[1], sys.argv[2]
out = {}
for name, content_type, body, auth in [
    ("protobuf", "application/x-protobuf", b"\xff\xff\xff\xff", token),
    ("json", "application/json", b'{"resourceSpans": 7}', token),
    ("unauthorized", "application/x-protobuf", b"", "wrong"),
]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "content-type": content_type, "authorization": "Bearer " + auth})
    try:
        urllib.request.urlopen(request)
        out[name] = "accepted"
    except urllib.error.HTTPError as e:
        raw = e.read()
        status = status_pb2.Status()
        if e.headers["content-type"] == "application/json":
            json_format.Parse(raw.decode(), status)
        else:
            status.ParseFromString(raw)
        out[name] = {"http": e.code, "type": e.headers["content-type"],
                     "code": status.code, "message": status.message}
print(json.dumps(out))
"#;

#[test]
fn otlp_errors_are_google_rpc_status_bodies_in_the_request_encoding() {
    let d = Daemon::start();
    let out = run_python(STATUS_SCRIPT, &[&d.url(TRACES), PROD_KEY]);
    assert_eq!(out["protobuf"]["http"], 400, "{out}");
    assert_eq!(out["protobuf"]["type"], "application/x-protobuf");
    assert_eq!(out["protobuf"]["code"], 3, "INVALID_ARGUMENT");
    let message = out["protobuf"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("undecodable_body: not an OTLP protobuf message")
            && message.ends_with("(field `body`)"),
        "{message}"
    );
    assert_eq!(out["json"]["http"], 400, "{out}");
    assert_eq!(out["json"]["type"], "application/json");
    assert_eq!(out["json"]["code"], 3);
    assert!(out["json"]["message"]
        .as_str()
        .unwrap()
        .starts_with("undecodable_body: not an OTLP/JSON message"));
    assert_eq!(out["unauthorized"]["http"], 401, "{out}");
    assert_eq!(out["unauthorized"]["code"], 16, "UNAUTHENTICATED");
    assert_eq!(operations_total(&d), 0);
}
