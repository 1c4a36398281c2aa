//! W3C Trace Context on operations: a `traceparent` (header or `trace_context` field) puts the
//! operation in the caller's trace, proven at a real OTLP decoder (PyPI `opentelemetry-proto`):
//! its exported span and log records carry that trace id and that parent. A malformed
//! `traceparent` is ignored, never refused. Webhooks about the operation carry the `traceparent`
//! of its span; the trace id is a filter.

use std::time::Duration;

use opslog::config::{Config, HumanDuration, OtelConfig, WebhooksConfig};
use opslog::model::Id;
use serde_json::{json, Value};

use crate::collector::Collector;
use crate::otel_export::expected_ids;
use crate::receiver::Receiver;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WAIT: Duration = Duration::from_secs(30);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE}-{PARENT}-01")
}

fn start_with_headers(d: &Daemon, body: &Value, headers: &[(&str, &str)]) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let reply = d.raw(
        "POST",
        &format!("{PROD}/operations"),
        Some(PROD_KEY),
        headers,
        Some(&bytes),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

fn end(d: &Daemon, id: &str, state: &str) {
    let reply = d.patch(
        &format!("{PROD}/operations/{id}"),
        PROD_KEY,
        &json!({"state": state}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Per span and per log record, what a peer OTLP implementation (PyPI `opentelemetry-proto`)
/// reads from the bodies `collector` received: ids as hex, the trace state, the name.
fn decoded_with_python(collector: &Collector) -> (Vec<Value>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = Vec::new();
    for (i, request) in collector.received().iter().enumerate() {
        let kind = if request.path.ends_with("/v1/traces") {
            "traces"
        } else {
            "logs"
        };
        let path = dir.path().join(format!("{i}.{kind}"));
        std::fs::write(&path, request.protobuf()).unwrap();
        args.push(path);
    }
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import json, sys
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
spans, records = [], []
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if path.endswith(".traces"):
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(data)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append({"name": s.name, "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                                  "parent_span_id": s.parent_span_id.hex(), "trace_state": s.trace_state,
                                  "flags": s.flags,
                                  "operation_id": {kv.key: kv.value.string_value for kv in s.attributes}.get("opslog.operation.id")})
    else:
        request = logs_service_pb2.ExportLogsServiceRequest()
        request.ParseFromString(data)
        for rl in request.resource_logs:
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    records.append({"body": r.body.string_value, "trace_id": r.trace_id.hex(), "span_id": r.span_id.hex()})
print(json.dumps({"spans": spans, "records": records}))
"#,
        )
        .args(&args)
        .output()
        .expect("python3 is needed; ./scripts/test installs opentelemetry-proto");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: Value = serde_json::from_slice(&output.stdout).unwrap();
    (
        decoded["spans"].as_array().unwrap().clone(),
        decoded["records"].as_array().unwrap().clone(),
    )
}

fn otel_with_logs(endpoint: String) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        let mut otel = OtelConfig::with_endpoint(&endpoint);
        otel.logs = true;
        config.environments.get_mut("prod").unwrap().otel = Some(otel);
    }
}

#[test]
fn an_operation_started_with_a_traceparent_is_a_child_span_in_that_trace() {
    let collector = Collector::start(Vec::new());
    let d = Daemon::start_with(otel_with_logs(collector.url("")));
    let op = start_with_headers(
        &d,
        &json!({"type": "sync", "integration": "github"}),
        &[
            ("traceparent", &traceparent()),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("tracestate", "rojo=00f067aa0ba902b7"),
        ],
    );
    assert_eq!(
        op["trace_context"],
        json!({"trace_id": TRACE, "parent_span_id": PARENT, "span_id": null, "trace_flags": 1,
               "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"})
    );
    let id = op["id"].as_str().unwrap();
    let logged = d.post(
        &format!("{PROD}/operations/{id}/messages"),
        PROD_KEY,
        &json!({"message": "fetched page 1"}),
    );
    assert_eq!(logged.status, 201, "{}", logged.text);
    end(&d, id, "success");

    let (_, own_span) = expected_ids(Id::parse(id).unwrap());
    let (spans, records) = eventually(WAIT, || {
        let (spans, records) = decoded_with_python(&collector);
        (!spans.is_empty() && !records.is_empty()).then_some((spans, records))
    });
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span["name"], "sync.run");
    assert_eq!(span["trace_id"], TRACE, "the caller's trace");
    assert_eq!(
        span["parent_span_id"], PARENT,
        "a child of the caller's span"
    );
    assert_eq!(span["span_id"], own_span.as_str());
    assert_eq!(
        span["trace_state"],
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    );
    assert_eq!(span["flags"], 0x301, "sampled, with a remote parent");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["body"], "fetched page 1");
    assert_eq!(records[0]["trace_id"], TRACE);
    assert_eq!(records[0]["span_id"], own_span.as_str());

    // The trace id finds the operation and its messages (any case, as viewers print it).
    let found = eventually(WAIT, || {
        let list = d.get(
            &format!("{PROD}/operations?trace_id={}", TRACE.to_uppercase()),
            PROD_KEY,
        );
        (list.body["total"] == 1).then_some(list)
    });
    assert_eq!(found.body["data"][0]["id"], id);
    let messages = d.get(&format!("{PROD}/messages?trace_id={TRACE}"), PROD_KEY);
    assert_eq!(messages.body["total"], 1, "{}", messages.text);
    let other = d.get(
        &format!("{PROD}/operations?trace_id=0af7651916cd43dd8448eb211c80319c"),
        PROD_KEY,
    );
    assert_eq!(other.body["total"], 0);
    let bad = d.get(&format!("{PROD}/operations?trace_id=abc"), PROD_KEY);
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.body["error"]["field"], "trace_id");
}

#[test]
fn a_malformed_traceparent_is_ignored_and_the_span_keeps_its_own_trace() {
    let collector = Collector::start(Vec::new());
    let endpoint = collector.url("");
    let d = Daemon::start_with(move |config| {
        config.environments.get_mut("prod").unwrap().otel =
            Some(OtelConfig::with_endpoint(&endpoint));
    });
    let malformed = [
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("00-{}-{PARENT}-01", "0".repeat(32)),
        format!("00-{TRACE}-0000000000000000-01"),
        format!("ff-{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}-{PARENT}"),
        format!("00-{TRACE}-{PARENT}-01-extra"),
        "garbage".to_owned(),
    ];
    let mut ids = Vec::new();
    for value in &malformed {
        let op = start_with_headers(
            &d,
            &json!({"type": "action"}),
            &[("traceparent", value), ("tracestate", "congo=t61rcWkgMzE")],
        );
        assert_eq!(op["trace_context"], Value::Null, "{value}");
        let id = op["id"].as_str().unwrap().to_owned();
        end(&d, &id, "failed");
        ids.push(id);
    }
    // Two traceparent headers are as invalid as a malformed one.
    let twice = start_with_headers(
        &d,
        &json!({"type": "action"}),
        &[
            ("traceparent", &traceparent()),
            ("traceparent", &traceparent()),
        ],
    );
    assert_eq!(twice["trace_context"], Value::Null);
    // The body's field is read by the same rules.
    let field = start_with_headers(
        &d,
        &json!({"type": "action", "trace_context": {"traceparent": "nope"}}),
        &[],
    );
    assert_eq!(field["trace_context"], Value::Null);

    let spans = eventually(WAIT, || {
        let (spans, _) = decoded_with_python(&collector);
        (spans.len() == malformed.len()).then_some(spans)
    });
    for span in &spans {
        let id = Id::parse(span["operation_id"].as_str().unwrap()).unwrap();
        assert!(ids.contains(&id.to_string()));
        let (trace, own) = expected_ids(id);
        assert_eq!(span["trace_id"], trace.as_str(), "a trace of its own");
        assert_eq!(span["span_id"], own.as_str());
        assert_eq!(span["parent_span_id"], "", "a root span");
        assert_eq!(span["trace_state"], "");
    }
}

#[test]
fn the_trace_context_field_is_for_clients_without_headers_and_wins_over_them() {
    let d = Daemon::start();
    let field = format!("00-{TRACE}-{PARENT}-00");
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let op = start_with_headers(
        &d,
        &json!({"type": "proxy", "trace_context": {"traceparent": field, "tracestate": "a=1",
                 "baggage": "userId=alice"}}),
        &[("traceparent", other)],
    );
    assert_eq!(op["trace_context"]["trace_id"], TRACE);
    assert_eq!(op["trace_context"]["parent_span_id"], PARENT);
    assert_eq!(op["trace_context"]["trace_flags"], 0, "not sampled, kept");
    assert_eq!(op["trace_context"]["tracestate"], "a=1");
    // The field must be an object, like every other object field.
    let bytes = serde_json::to_vec(&json!({"type": "proxy", "trace_context": field})).unwrap();
    let reply = d.raw(
        "POST",
        &format!("{PROD}/operations"),
        Some(PROD_KEY),
        &[],
        Some(&bytes),
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["error"]["field"], "trace_context");
}

/// An array is one request from one caller: its `traceparent` holds for every operation of it
/// that brings no `trace_context` of its own.
#[test]
fn the_headers_of_an_array_hold_for_each_operation_without_its_own_trace_context() {
    let d = Daemon::start();
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let page = start_with_headers(
        &d,
        &json!([
            {"type": "sync", "messages": [{"message": "page 1"}]},
            {"type": "action", "trace_context": {"traceparent": other}},
        ]),
        &[("traceparent", &traceparent())],
    );
    let ops = page["data"].as_array().unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0]["trace_context"]["trace_id"], TRACE);
    assert_eq!(ops[0]["trace_context"]["parent_span_id"], PARENT);
    assert_eq!(
        ops[1]["trace_context"]["trace_id"],
        "0af7651916cd43dd8448eb211c80319c"
    );
    // The index is written after the commit: poll until it has the messages.
    let messages = eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/messages?trace_id={TRACE}"), PROD_KEY);
        (list.body["total"] != 0).then_some(list)
    });
    let texts: Vec<&str> = messages.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["page 1"]);
}

#[test]
fn webhooks_about_an_operation_carry_the_traceparent_of_its_span() {
    let receiver = Receiver::ok();
    let url = receiver.url();
    let d = Daemon::start_with(move |config| {
        config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(url),
            retry_schedule: Some(vec![HumanDuration(Duration::ZERO)]),
            ..Default::default()
        };
    });
    let traced = start_with_headers(
        &d,
        &json!({"type": "sync", "integration": "github"}),
        &[
            ("traceparent", &traceparent()),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
    );
    let traced_id = traced["id"].as_str().unwrap().to_owned();
    end(&d, &traced_id, "success");
    let plain = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    end(&d, &plain, "failed");

    let requests = receiver.wait_for(2, WAIT);
    let about = |id: &str| {
        requests
            .iter()
            .find(|r| r.json()["operation_id"] == id)
            .unwrap_or_else(|| panic!("no delivery about {id}"))
    };
    let (_, traced_span) = expected_ids(Id::parse(&traced_id).unwrap());
    let delivery = about(&traced_id);
    assert_eq!(
        delivery.header("traceparent"),
        format!("00-{TRACE}-{traced_span}-01"),
        "the receiver's handling is a child of the operation's span"
    );
    assert_eq!(delivery.header("tracestate"), "congo=t61rcWkgMzE");
    let (plain_trace, plain_span) = expected_ids(Id::parse(&plain).unwrap());
    let delivery = about(&plain);
    assert_eq!(
        delivery.header("traceparent"),
        format!("00-{plain_trace}-{plain_span}-01"),
        "without a context: the trace of the operation's own span"
    );
    assert_eq!(delivery.header("tracestate"), "");

    // The delivery's log is a child of the operation's span, in its trace.
    let logs = eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/operations?type=webhook:deliver"), PROD_KEY);
        (list.body["total"] == 2).then_some(list)
    });
    let log = logs.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|op| op["meta"]["caused_by"] == traced_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(log["trace_context"]["trace_id"], TRACE);
    assert_eq!(log["trace_context"]["parent_span_id"], traced_span.as_str());
}

#[test]
fn an_incoming_webhook_joins_the_senders_trace() {
    let d = Daemon::start();
    let token = d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/github"),
        None,
        &[("traceparent", &traceparent())],
        Some(br#"{"action":"opened"}"#),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let id = reply.body["operation_id"].as_str().unwrap();
    let op = d.get(&format!("{PROD}/operations/{id}"), PROD_KEY);
    assert_eq!(op.body["trace_context"]["trace_id"], TRACE);
    assert_eq!(op.body["trace_context"]["parent_span_id"], PARENT);
}
