//! OTLP export wired into the daemon: an ended operation of an exported type becomes one span in
//! the outbox, sent to the environment's collector (`collector.rs`), retried per the OTLP rules.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use opslog::config::{Config, OtelConfig};
use opslog::model::{Id, Timestamp};
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
        .filter(|r| r.path.ends_with("/v1/traces"))
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

/// Exports follow the retry policy webhooks do: a `Retry-After` given as an HTTP date is waited
/// out (the backoff alone would try again after a second or so).
#[test]
fn a_retry_after_date_is_waited_out_before_the_export_is_sent_again() {
    let asked = std::time::SystemTime::now() + Duration::from_secs(8);
    let date = httpdate::fmt_http_date(asked);
    let asked_ms = httpdate::parse_http_date(&date)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let collector = Collector::start(vec![Answer::with(
        429,
        &[("retry-after", &date)],
        Vec::new(),
    )]);
    let d = Daemon::start_with(otel_to(collector.url("")));
    failed_sync(&d);
    let list = eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/exports?status=delivered"), PROD_KEY);
        (list.body["total"] == 1).then_some(list)
    });
    let id = list.body["data"][0]["id"].as_str().unwrap();
    let detail = d.get(&format!("{PROD}/exports/{id}"), PROD_KEY);
    let first = &detail.body["attempt_log"][0];
    assert_eq!(first["status"], 429, "{}", detail.text);
    let retry_at = Timestamp::parse(first["retry_at"].as_str().unwrap())
        .unwrap()
        .millis();
    assert!(
        retry_at >= asked_ms - 5 && retry_at <= asked_ms + 2_000,
        "scheduled at the date asked for ({date}): {first}"
    );
    let second = Timestamp::parse(
        detail.body["attempt_log"][1]["started_at"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
    .millis();
    assert!(second >= retry_at, "sent again no sooner: {}", detail.text);
    assert_eq!(collector.received().len(), 2);
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
    write_private(
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

    let mut restarted = spawn(&config);
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
    // Not left running after the test (it would keep the test runner's output pipe open).
    restarted.child.kill().unwrap();
    restarted.child.wait().unwrap();
}

/// Spans queued while the collector is busy go out together: at most 512 per request, each span
/// in exactly one accepted request, with the ids derived from its operation.
#[test]
fn a_backlog_of_600_spans_is_sent_in_batches_of_at_most_512() {
    // The first request is held open, so everything queued meanwhile waits for the one slot.
    let collector = Collector::start(vec![Answer::Hold]);
    let endpoint = collector.url("");
    let d = Daemon::start_with(move |config| {
        otel_to(endpoint)(config);
        config.outbox.per_destination = 1;
    });
    let ended = |n: usize| {
        d.start_operation(
            "prod",
            PROD_KEY,
            &json!({"type": "sync", "state": "success", "connection_id": format!("c{n}")}),
        )
    };
    let mut ids = vec![ended(0)];
    eventually(WAIT, || (!collector.received().is_empty()).then_some(()));
    ids.extend((1..600).map(ended));
    collector.release_held();
    eventually(Duration::from_secs(60), || {
        (metric(&d, "opslog_exports_delivered_total") == 600).then_some(())
    });

    // The held request got no answer; every later one was accepted.
    let accepted: Vec<Vec<Span>> = collector.received()[1..]
        .iter()
        .map(|r| {
            r.decode()
                .resource_spans
                .into_iter()
                .flat_map(|rs| rs.scope_spans)
                .flat_map(|ss| ss.spans)
                .collect()
        })
        .collect();
    let sizes: Vec<usize> = accepted.iter().map(Vec::len).collect();
    assert!(sizes.len() >= 2, "{sizes:?}");
    assert!(sizes.iter().all(|n| *n <= 512), "{sizes:?}");
    assert_eq!(
        sizes[0], 512,
        "the backlog fills the first request: {sizes:?}"
    );
    assert!(
        sizes.len() <= 3,
        "599 queued spans plus the retried one: {sizes:?}"
    );
    let mut sent: Vec<String> = accepted
        .iter()
        .flatten()
        .map(|s| hex::encode(&s.trace_id))
        .collect();
    sent.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .map(|id| expected_ids(Id::parse(id).unwrap()).0)
        .collect();
    expected.sort();
    assert_eq!(sent, expected, "each span exactly once");
    assert_eq!(
        metric(&d, "opslog_exports_attempts_total"),
        1 + sizes.len() as u64,
        "one attempt per request"
    );
}

/// Retryable failures stop after `outbox.export_retry_for`: the export becomes `failed`.
#[test]
fn retryable_failures_give_up_after_the_retry_window() {
    let collector = Collector::start(vec![Answer::status(503); 100]);
    let endpoint = collector.url("");
    let d = Daemon::start_with(move |config| {
        otel_to(endpoint)(config);
        config.outbox.export_retry_for = opslog::config::HumanDuration(Duration::from_secs(2));
    });
    failed_sync(&d);
    let list = eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/exports?status=failed"), PROD_KEY);
        (list.body["total"] == 1).then_some(list)
    });
    let export = &list.body["data"][0];
    let error = export["last_error"].as_str().unwrap();
    assert!(
        error.contains("gave up") && error.contains("export_retry_for") && error.contains("503"),
        "{error}"
    );
    let attempts = export["attempts"].as_u64().unwrap();
    assert!(attempts >= 2, "it retried first: {attempts}");
    assert_eq!(collector.received().len() as u64, attempts);
    assert_eq!(
        metric(
            &d,
            "opslog_outbox_jobs{kind=\"otlp_span\",status=\"failed\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &d,
            "opslog_outbox_jobs{kind=\"otlp_span\",status=\"pending\"}"
        ),
        0
    );
}

#[test]
fn exports_are_listed_shown_retried_and_replayed() {
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "span too large".into(),
        }),
    };
    let collector = Collector::start(vec![
        Answer::with(400, &[("content-type", "text/plain")], b"bad span".to_vec()),
        Answer::status(200),
        Answer::with(
            200,
            &[("content-type", "application/x-protobuf")],
            prost::Message::encode_to_vec(&partial),
        ),
    ]);
    let d = Daemon::start_with(otel_to(collector.url("")));
    let op = failed_sync(&d);
    // Counters move just before the commit; the API shows what is committed.
    let list = eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/exports?status=failed"), PROD_KEY);
        (list.body["total"] == 1).then_some(list)
    });
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["next_cursor"], serde_json::Value::Null);
    let export = &list.body["data"][0];
    assert_eq!(export["signal"], "traces");
    assert_eq!(export["operation_id"], op.as_str());
    assert_eq!(export["status"], "failed");
    assert_eq!(export["items"], 1);
    assert_eq!(export["url"], collector.url("/v1/traces"));
    let id = export["id"].as_str().unwrap().to_owned();
    assert_eq!(
        d.get(&format!("{PROD}/exports?status=delivered"), PROD_KEY)
            .body["total"],
        0
    );
    assert_eq!(
        metric(
            &d,
            "opslog_outbox_jobs{kind=\"otlp_span\",status=\"failed\"}"
        ),
        1
    );

    let detail = d.get(&format!("{PROD}/exports/{id}"), PROD_KEY);
    assert_eq!(detail.status, 200, "{}", detail.text);
    let attempt = &detail.body["attempt_log"][0];
    assert_eq!(attempt["status"], 400);
    assert_eq!(attempt["outcome"], "failed");
    assert_eq!(attempt["batch_size"], 1);
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .contains("400 Bad Request: bad span"),
        "{}",
        detail.text
    );
    assert!(attempt["duration_ms"].is_u64() && attempt["started_at"].is_string());

    // Exports are not deliveries, and another environment's key finds nothing.
    assert_eq!(
        d.get(&format!("{PROD}/deliveries"), PROD_KEY).body["total"],
        0
    );
    let wrong = d.post(&format!("{PROD}/deliveries/{id}/retry"), ADMIN, &json!({}));
    assert_eq!(wrong.status, 404, "{}", wrong.text);
    assert_eq!(
        d.get(&format!("{PROD}/exports"), DEV_KEY).status,
        404,
        "a dev key cannot see prod"
    );
    let other = d.get(&format!("/v1/environments/dev/exports/{id}"), DEV_KEY);
    assert_eq!(
        (other.status, other.code()),
        (404, "export_not_found"),
        "{}",
        other.text
    );
    for (path, field) in [
        ("/exports?status=lost", "status"),
        ("/exports?limit=0", "limit"),
        ("/exports?cursor=nope", "cursor"),
        ("/exports/not-an-id", "id"),
    ] {
        let reply = d.get(&format!("{PROD}{path}"), PROD_KEY);
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], field, "{path}");
    }
    let reply = d.post(&format!("{PROD}/exports/replay"), ADMIN, &json!({}));
    assert_eq!(
        (reply.status, reply.body["error"]["field"].as_str()),
        (400, Some("from")),
        "{}",
        reply.text
    );

    // Retried by hand, it is sent again (the collector now answers 200).
    let retried = d.post(&format!("{PROD}/exports/{id}/retry"), ADMIN, &json!({}));
    assert_eq!(retried.status, 202, "{}", retried.text);
    assert_eq!(retried.body["status"], "pending");
    let detail = eventually(WAIT, || {
        let detail = d.get(&format!("{PROD}/exports/{id}"), ADMIN);
        (detail.body["status"] == "delivered").then_some(detail)
    });
    assert_eq!(detail.body["attempt_log"][1]["status"], 200);
    assert_eq!(detail.body["attempts"], 2);

    // Replayed by window: the delivered one goes out once more, the same span.
    let replayed = d.post(
        &format!("{PROD}/exports/replay?from=2000-01-01T00:00:00Z&status=delivered"),
        ADMIN,
        &json!({}),
    );
    assert_eq!(replayed.status, 202, "{}", replayed.text);
    assert_eq!(replayed.body["requeued"], 1);
    assert_eq!(replayed.body["ids"][0], id.as_str());
    // The collector's partial success is recorded on the attempt.
    let detail = eventually(WAIT, || {
        let detail = d.get(&format!("{PROD}/exports/{id}"), PROD_KEY);
        (detail.body["attempts"] == 3 && detail.body["status"] == "delivered").then_some(detail)
    });
    let third = &detail.body["attempt_log"][2];
    assert_eq!(third["rejected"], 1, "{}", detail.text);
    assert!(
        third["error"].as_str().unwrap().contains("span too large"),
        "{}",
        detail.text
    );
    assert_eq!(collector.received().len(), 3);
    eventually(WAIT, || {
        (metric(
            &d,
            "opslog_outbox_jobs{kind=\"otlp_span\",status=\"delivered\"}",
        ) == 1
            && metric(
                &d,
                "opslog_outbox_jobs{kind=\"otlp_span\",status=\"pending\"}",
            ) == 0)
            .then_some(())
    });
    let spans = spans(&collector);
    assert!(spans.iter().all(|s| s.trace_id == spans[0].trace_id));
}

/// With no `[environments.<env>.otel]` table, the export is set through `PUT /settings`; header
/// values are never shown in full, and sending the masked value back keeps the secret.
#[test]
fn otel_settings_are_editable_through_the_api_when_the_file_has_none() {
    let collector = Collector::start(Vec::new());
    let d = Daemon::start();
    let get = d.get(&format!("{PROD}/settings"), ADMIN);
    assert_eq!(
        get.body["otel"],
        json!({
            "endpoint": null, "headers": {}, "service_name": "opslog", "resource_attributes": {},
            "max_events_per_span": 128, "timeout": "10s", "logs": false, "names": "opslog",
            "trace_url": null, "read_only": []
        }),
        "{}",
        get.text
    );
    let put = |body: serde_json::Value| d.send("PUT", &format!("{PROD}/settings"), ADMIN, &body);
    let bad = put(json!({"otel": {"endpoint": "ftp://collector"}}));
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.body["error"]["field"], "otel.endpoint");
    assert!(bad.message().contains("http://"), "{}", bad.text);
    let bad = put(json!({"otel": {"headers": {"content-type": "x"}}}));
    assert_eq!(
        bad.body["error"]["field"], "otel.headers.content-type",
        "{}",
        bad.text
    );

    const SECRET: &str = "collector-secret-0123456789";
    let set = put(json!({"otel": {
        "endpoint": collector.url(""),
        "headers": {"x-api-key": SECRET},
        "service_name": "opslog-api",
    }}));
    assert_eq!(set.status, 200, "{}", set.text);
    assert!(!set.text.contains(SECRET), "{}", set.text);
    let shown = set.body["otel"].clone();
    assert_eq!(shown["headers"]["x-api-key"], "coll…(masked)");
    assert_eq!(shown["endpoint"], collector.url("").as_str());
    assert!(!d
        .get(&format!("{PROD}/settings"), ADMIN)
        .text
        .contains(SECRET));

    failed_sync(&d);
    eventually(WAIT, || (spans(&collector).len() == 1).then_some(()));
    assert_eq!(collector.received()[0].headers["x-api-key"], SECRET);

    // The UI sends back what it read: the stored secret is kept.
    let round_trip = put(json!({ "otel": shown }));
    assert_eq!(round_trip.status, 200, "{}", round_trip.text);
    failed_sync(&d);
    eventually(WAIT, || (spans(&collector).len() == 2).then_some(()));
    assert_eq!(collector.received()[1].headers["x-api-key"], SECRET);

    // `endpoint: null` turns the export off for operations ending after the change.
    let off = put(json!({"otel": {"endpoint": null}}));
    assert_eq!(
        off.body["otel"]["endpoint"],
        serde_json::Value::Null,
        "{}",
        off.text
    );
    assert_eq!(
        off.body["otel"]["service_name"], "opslog-api",
        "other fields stay"
    );
    failed_sync(&d);
    assert_eq!(d.get(&format!("{PROD}/exports"), PROD_KEY).body["total"], 2);

    // The drawer's trace link works without an export: a template with `{trace_id}`.
    let bad = put(json!({"otel": {"trace_url": "http://jaeger:16686/search"}}));
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.body["error"]["field"], "otel.trace_url");
    assert!(bad.message().contains("{trace_id}"), "{}", bad.text);
    let bad = put(json!({"otel": {"trace_url": "javascript:alert({trace_id})"}}));
    assert_eq!(bad.body["error"]["field"], "otel.trace_url", "{}", bad.text);
    let link = "http://127.0.0.1:16686/trace/{trace_id}";
    let set = put(json!({"otel": {"trace_url": link}}));
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["otel"]["trace_url"], link);
    assert_eq!(set.body["otel"]["endpoint"], serde_json::Value::Null);
    let cleared = put(json!({"otel": {"trace_url": ""}}));
    assert_eq!(cleared.body["otel"]["trace_url"], serde_json::Value::Null);
}

#[test]
fn otel_settings_from_the_file_are_read_only() {
    let collector = Collector::start(Vec::new());
    let d = Daemon::start_with(otel_to(collector.url("")));
    let get = d.get(&format!("{PROD}/settings"), ADMIN);
    assert_eq!(
        get.body["otel"]["read_only"],
        json!([
            "endpoint",
            "headers",
            "service_name",
            "resource_attributes",
            "max_events_per_span",
            "timeout",
            "logs",
            "names",
            "trace_url"
        ])
    );
    let refused = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"otel": {"logs": true}}),
    );
    assert_eq!(
        (
            refused.status,
            refused.code(),
            refused.body["error"]["field"].as_str()
        ),
        (409, "setting_read_only", Some("otel.logs")),
        "{}",
        refused.text
    );
}

fn log_records(collector: &Collector) -> Vec<opentelemetry_proto::tonic::logs::v1::LogRecord> {
    collector
        .received()
        .iter()
        .filter(|r| r.path.ends_with("/v1/logs"))
        .flat_map(|r| r.decode_logs().resource_logs)
        .flat_map(|rl| rl.scope_logs)
        .flat_map(|sl| sl.log_records)
        .collect()
}

#[test]
fn messages_are_not_exported_as_logs_by_default() {
    let collector = Collector::start(Vec::new());
    let d = Daemon::start_with(otel_to(collector.url("")));
    failed_sync(&d);
    eventually(WAIT, || {
        (metric(&d, "opslog_exports_delivered_total") == 1).then_some(())
    });
    // Log jobs would be queued in the message's own commit, before the span's.
    let exports = d.get(&format!("{PROD}/exports"), PROD_KEY);
    assert_eq!(exports.body["total"], 1, "{}", exports.text);
    assert_eq!(exports.body["data"][0]["signal"], "traces");
    assert!(collector.received().iter().all(|r| r.path == "/v1/traces"));
}

/// With `logs = true`, the messages of exported operations arrive as OTLP log records linked to
/// the operation's span, one job per operation per commit; other types' messages never do.
#[test]
fn messages_are_exported_as_log_records_when_logs_is_on() {
    let collector = Collector::start(Vec::new());
    let endpoint = collector.url("/otlp");
    let d = Daemon::start_with(move |config| {
        let mut otel = OtelConfig::with_endpoint(&endpoint);
        otel.logs = true;
        config.environments.get_mut("prod").unwrap().otel = Some(otel);
    });
    let auth = d.start_operation("prod", PROD_KEY, &json!({"type": "auth"}));
    let reply = d.post(
        &format!("{PROD}/operations/{auth}/messages"),
        PROD_KEY,
        &json!({"message": "token refreshed"}),
    );
    assert!(reply.status < 300, "{}", reply.text);
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues"}),
    );
    let reply = d.post(
        &format!("{PROD}/operations/{id}/messages"),
        PROD_KEY,
        &json!([
            {"message": "fetched page 1", "level": "debug"},
            {"type": "http", "message": "GET https://api.github.com/issues",
             "request": {"method": "GET", "url": "https://api.github.com/issues?token=abc"},
             "response": {"status": 502}, "duration_ms": 80},
            {"message": "giving up", "level": "error"},
        ]),
    );
    assert!(reply.status < 300, "{}", reply.text);
    let reply = d.post(
        &format!("{PROD}/operations/{id}/messages"),
        PROD_KEY,
        &json!({"message": "second commit", "level": "warn"}),
    );
    assert!(reply.status < 300, "{}", reply.text);

    let records = eventually(WAIT, || {
        let records = log_records(&collector);
        (records.len() >= 4).then_some(records)
    });
    assert_eq!(records.len(), 4, "the auth message is never exported");
    let (trace, span) = expected_ids(Id::parse(&id).unwrap());
    let body = |r: &opentelemetry_proto::tonic::logs::v1::LogRecord| match r
        .body
        .as_ref()
        .and_then(|b| b.value.as_ref())
    {
        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("{other:?}"),
    };
    let mut seen: Vec<(String, i32, String)> = records
        .iter()
        .map(|r| (body(r), r.severity_number, r.severity_text.clone()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "GET https://api.github.com/issues".to_owned(),
                17,
                "ERROR".to_owned()
            ),
            ("fetched page 1".to_owned(), 5, "DEBUG".to_owned()),
            ("giving up".to_owned(), 17, "ERROR".to_owned()),
            ("second commit".to_owned(), 13, "WARN".to_owned()),
        ]
    );
    for record in &records {
        assert_eq!(hex::encode(&record.trace_id), trace);
        assert_eq!(hex::encode(&record.span_id), span);
        assert!(record.time_unix_nano > 0);
        let attrs: std::collections::BTreeMap<&str, String> = record
            .attributes
            .iter()
            .map(|kv| (kv.key.as_str(), format!("{:?}", kv.value)))
            .collect();
        assert!(attrs["opslog.operation.id"].contains(&id), "{attrs:?}");
        assert!(attrs["opslog.integration"].contains("github"));
        if body(record).starts_with("GET") {
            assert!(
                attrs["http.response.status_code"].contains("502"),
                "{attrs:?}"
            );
            assert!(attrs["url.full"].contains("token=REDACTED"), "{attrs:?}");
        }
    }
    let received = collector.received();
    assert!(received.iter().any(|r| r.path == "/otlp/v1/logs"));
    let exports = d.get(&format!("{PROD}/exports"), PROD_KEY);
    let mut items: Vec<(String, u64)> = exports.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["signal"].as_str().unwrap().to_owned(),
                e["items"].as_u64().unwrap(),
            )
        })
        .collect();
    items.sort();
    assert_eq!(
        items,
        [("logs".to_owned(), 1), ("logs".to_owned(), 3)],
        "one job per operation per commit"
    );

    // A peer implementation reads the same logs request.
    let request = received.iter().find(|r| r.path == "/otlp/v1/logs").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logs.pb");
    std::fs::write(&path, request.protobuf()).unwrap();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import json, sys
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
request = logs_service_pb2.ExportLogsServiceRequest()
request.ParseFromString(open(sys.argv[1], "rb").read())
out = []
for rl in request.resource_logs:
    service = {kv.key: kv.value.string_value for kv in rl.resource.attributes}["service.name"]
    for sl in rl.scope_logs:
        for r in sl.log_records:
            out.append({"service": service, "scope": sl.scope.name, "body": r.body.string_value,
                        "severity": r.severity_number, "trace_id": r.trace_id.hex(),
                        "span_id": r.span_id.hex()})
print(json.dumps(out))
"#,
        )
        .arg(&path)
        .output()
        .expect("python3 is needed; ./scripts/test installs opentelemetry-proto");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let decoded = decoded.as_array().unwrap();
    assert!(!decoded.is_empty());
    for record in decoded {
        assert_eq!(record["service"], "opslog");
        assert_eq!(record["scope"], "opslog");
        assert_eq!(record["trace_id"], trace.as_str());
        assert_eq!(record["span_id"], span.as_str());
        assert!(record["body"].as_str().unwrap().len() > 3);
    }
}

/// Decodes an OTLP traces request with the PyPI `opentelemetry-proto` package: per span, its
/// name, the service name of its resource and its string attributes.
fn decode_spans_with_python(protobuf: &[u8]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.pb");
    std::fs::write(&path, protobuf).unwrap();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import json, sys
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
request = trace_service_pb2.ExportTraceServiceRequest()
request.ParseFromString(open(sys.argv[1], "rb").read())
out = []
for rs in request.resource_spans:
    service = {kv.key: kv.value.string_value for kv in rs.resource.attributes}["service.name"]
    for ss in rs.scope_spans:
        for s in ss.spans:
            attrs = {kv.key: kv.value.string_value for kv in s.attributes if kv.value.HasField("string_value")}
            out.append({"service": service, "name": s.name, "status": s.status.code, "attributes": attrs,
                        "events": [{kv.key: kv.value.string_value for kv in e.attributes} for e in s.events]})
print(json.dumps(out))
"#,
        )
        .arg(&path)
        .output()
        .expect("python3 is needed; ./scripts/test installs opentelemetry-proto");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let decoded: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    decoded.as_array().unwrap().clone()
}

#[test]
fn nango_names_export_spans_as_nango_does() {
    let collector = Collector::start(Vec::new());
    let endpoint = collector.url("/otlp");
    let d = Daemon::start_with(move |config| {
        let mut otel = OtelConfig::with_endpoint(&endpoint);
        otel.names = opslog::config::SpanNames::Nango;
        otel.service_name = "my-nango".into();
        config.environments.get_mut("prod").unwrap().otel = Some(otel);
    });
    let sync = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues",
                "provider": "github-app", "message": "Syncing issues",
                "end_user": {"id": "u-7"}, "tags": {"plan": "pro"}}),
    );
    d.post(
        &format!("{PROD}/operations/{sync}/messages"),
        PROD_KEY,
        &json!({"message": "page 1"}),
    );
    d.patch(
        &format!("{PROD}/operations/{sync}"),
        PROD_KEY,
        &json!({"state": "failed", "error": {"message": "429 from api", "type": "rate_limit"}}),
    );
    // Nango exports events and function operations too; auth still is not.
    for kind in ["events", "function", "auth"] {
        d.start_operation(
            "prod",
            PROD_KEY,
            &json!({"type": kind, "state": "success", "integration": "github"}),
        );
    }
    let decoded = eventually(WAIT, || {
        let spans: Vec<serde_json::Value> = collector
            .received()
            .iter()
            .filter(|r| r.path == "/otlp/v1/traces")
            .flat_map(|r| decode_spans_with_python(&r.protobuf()))
            .collect();
        (spans.len() >= 3).then_some(spans)
    });
    let mut names: Vec<&str> = decoded
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["nango.events.event", "nango.function.run", "nango.sync.run"]
    );
    let span = decoded
        .iter()
        .find(|s| s["name"] == "nango.sync.run")
        .unwrap();
    assert_eq!(span["service"], "my-nango");
    let attrs = &span["attributes"];
    for (key, value) in [
        ("nango.operation.id", sync.as_str()),
        ("nango.operation.type", "sync"),
        ("nango.operation.action", "run"),
        ("nango.operation.status", "failed"),
        ("nango.operation.message", "Syncing issues"),
        ("nango.environment", "prod"),
        ("nango.provider", "github-app"),
        ("nango.integration", "github"),
        ("nango.connection", "acme"),
        ("nango.sync", "issues"),
        ("nango.error.message", "429 from api"),
        ("nango.error.type", "rate_limit"),
        ("nango.end_user.id", "u-7"),
        ("nango.tag.plan", "pro"),
    ] {
        assert_eq!(attrs[key], value, "{key} in {attrs}");
    }
    assert!(
        attrs
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.starts_with("opslog.")),
        "{attrs}"
    );
    assert_eq!(
        span["events"][0]["nango.message.id"]
            .as_str()
            .unwrap()
            .len(),
        26
    );
}
