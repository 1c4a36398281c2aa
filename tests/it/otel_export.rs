//! OTLP export wired into the daemon: an ended operation of an exported type becomes one span in
//! the outbox, sent to the environment's collector (`collector.rs`), retried per the OTLP rules.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use opslog::config::{Config, OtelConfig};
use opslog::model::Id;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::collector::{Answer, Collector};
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WAIT: Duration = Duration::from_secs(30);

fn otel_to(endpoint: String) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        config.environments.get_mut("prod").unwrap().otel =
            Some(OtelConfig::with_endpoint(&endpoint));
    }
}

/// The ids the wire must carry, derived independently of the crate's code.
pub(crate) fn expected_ids(id: Id) -> (String, String) {
    let digest = |label: &[u8]| Sha256::digest([label, &id.0.to_be_bytes()[..]].concat());
    (
        hex::encode(&digest(b"opslog/otel/trace-id/v1\0")[..16]),
        hex::encode(&digest(b"opslog/otel/span-id/v1\0")[..8]),
    )
}

fn spans(collector: &Collector) -> Vec<Span> {
    collector
        .received()
        .iter()
        .flat_map(|r| r.decode().resource_spans)
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect()
}

fn metric(d: &Daemon, name: &str) -> u64 {
    let reply = d.raw("GET", "/metrics", None, &[], None);
    reply
        .text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from {}", reply.text))
        .trim()
        .parse()
        .unwrap()
}

fn failed_sync(d: &Daemon) -> String {
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues"}),
    );
    let reply = d.post(
        &format!("{PROD}/operations/{id}/messages"),
        PROD_KEY,
        &json!({"message": "page 1"}),
    );
    assert!(reply.status < 300, "{}", reply.text);
    let reply = d.patch(
        &format!("{PROD}/operations/{id}"),
        PROD_KEY,
        &json!({"state": "failed"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    id
}

#[test]
fn an_ended_sync_is_exported_and_an_auth_operation_is_not() {
    let collector = Collector::start(Vec::new());
    let d = Daemon::start_with(otel_to(collector.url("/otlp")));
    let auth = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "state": "success", "connection_id": "acme"}),
    );
    let id = failed_sync(&d);
    let span = eventually(WAIT, || spans(&collector).into_iter().next());
    let (trace, span_id) = expected_ids(Id::parse(&id).unwrap());
    assert_eq!(span.name, "sync.run");
    assert_eq!(hex::encode(&span.trace_id), trace);
    assert_eq!(hex::encode(&span.span_id), span_id);
    assert_eq!(
        span.status.as_ref().unwrap().code,
        StatusCode::Error as i32,
        "{span:?}"
    );
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    assert!(format!("{:?}", span.events).contains("page 1"), "{span:?}");
    assert_eq!(collector.received()[0].path, "/otlp/v1/traces");
    eventually(WAIT, || {
        (metric(&d, "opslog_exports_delivered_total") == 1).then_some(())
    });
    // The auth operation ended first; only the sync ever arrives.
    std::thread::sleep(Duration::from_millis(500));
    let all = spans(&collector);
    assert_eq!(all.len(), 1, "{all:?}");
    let (auth_trace, _) = expected_ids(Id::parse(&auth).unwrap());
    assert!(all.iter().all(|s| hex::encode(&s.trace_id) != auth_trace));
    assert_eq!(metric(&d, "opslog_exports_queued_total"), 1);
}

#[test]
fn unavailable_collector_gets_the_span_once_it_recovers() {
    let collector = Collector::start(vec![Answer::with(503, &[("retry-after", "1")], Vec::new())]);
    let d = Daemon::start_with(otel_to(collector.url("")));
    let id = failed_sync(&d);
    eventually(WAIT, || {
        (metric(&d, "opslog_exports_delivered_total") == 1).then_some(())
    });
    let received = collector.received();
    assert_eq!(received.len(), 2, "one 503 then one 200");
    let (trace, _) = expected_ids(Id::parse(&id).unwrap());
    for request in &received {
        let span = &request.decode().resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(hex::encode(&span.trace_id), trace);
    }
    assert_eq!(metric(&d, "opslog_exports_attempts_total"), 2);
    assert_eq!(metric(&d, "opslog_exports_failed_total"), 0);
}

#[test]
fn bad_request_is_not_retried_and_marks_the_export_failed() {
    let collector = Collector::start(vec![Answer::status(400)]);
    let d = Daemon::start_with(otel_to(collector.url("")));
    failed_sync(&d);
    eventually(WAIT, || {
        (metric(&d, "opslog_exports_failed_total") == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(collector.received().len(), 1, "a 400 is never retried");
    assert_eq!(metric(&d, "opslog_exports_delivered_total"), 0);
    assert_eq!(metric(&d, "opslog_exports_attempts_total"), 1);
}

#[test]
fn sigkill_with_an_export_in_flight_exports_it_after_the_restart() {
    use crate::process::{agent, call, spawn};
    // The first request hangs: the export is in flight when the process is killed.
    let collector = Collector::start(vec![Answer::Hang]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opslog.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
admin_tokens = ["{ADMIN}"]

[environments.prod]
api_keys = ["{PROD_KEY}"]

[environments.prod.otel]
endpoint = "{endpoint}"
timeout = "60s"
"#,
            data = dir.path().join("data").display(),
            endpoint = collector.url(""),
        ),
    )
    .unwrap();
    let agent = agent();
    let mut process = spawn(&config);
    let (status, op) = call(
        &agent,
        "POST",
        &format!("{}/v1/environments/prod/operations", process.base),
        Some(&json!({"type": "sync", "state": "success", "connection_id": "acme"})),
    )
    .unwrap();
    assert_eq!(status, 201, "{op}");
    let (trace, _) = expected_ids(Id::parse(op["id"].as_str().unwrap()).unwrap());
    eventually(WAIT, || (!collector.received().is_empty()).then_some(()));
    process.child.kill().unwrap();
    process.child.wait().unwrap();

    let mut process = spawn(&config);
    let sent = eventually(Duration::from_secs(60), || {
        let all = spans(&collector);
        (all.len() >= 2).then_some(all)
    });
    assert!(
        sent.iter().all(|s| hex::encode(&s.trace_id) == trace),
        "{sent:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(spans(&collector).len(), 2, "answered once: not sent again");
    process.child.kill().unwrap();
    process.child.wait().unwrap();
}
