//! GET /metrics: the Prometheus text format parses line by line (HELP and TYPE for every family,
//! valid samples), and the values follow what the daemon does.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::time::Duration;

use opslog::config::{HumanDuration, WebhooksConfig};
use serde_json::json;

use crate::receiver::{free_port, Answer, Receiver};
use crate::support::*;

/// Scrapes /metrics, checks every line against the text format, and returns each sample's value
/// by `name{labels}` as written.
pub fn scrape(d: &Daemon) -> BTreeMap<String, f64> {
    let reply = d.raw("GET", "/metrics", None, &[], None);
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{:?}",
        reply.headers
    );
    parse(&reply.text)
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut help = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').expect(line);
            assert!(is_name(name) && !doc.is_empty(), "bad HELP line: {line}");
            assert!(
                help.insert(name.to_owned(), ()).is_none(),
                "HELP twice: {line}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "bad TYPE line: {line}"
            );
            assert!(help.contains_key(name), "TYPE before HELP: {line}");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect(line);
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, Some(labels.strip_suffix('}').expect(line))),
            None => (series, None),
        };
        assert!(is_name(name), "bad metric name: {line}");
        for pair in labels.into_iter().flat_map(|l| l.split(',')) {
            let (key, quoted) = pair.split_once('=').expect(line);
            assert!(is_name(key), "bad label name: {line}");
            assert!(
                quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                "bad label value: {line}"
            );
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        let kind = types
            .get(family)
            .unwrap_or_else(|| panic!("sample without TYPE: {line}"));
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter not named _total: {line}");
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "sample twice: {line}"
        );
    }
    samples
}

fn pending_webhooks(d: &Daemon) -> f64 {
    scrape(d)[r#"opslog_outbox_jobs{kind="webhook",status="pending"}"#]
}

#[test]
fn metrics_parse_and_follow_ingest_commits_the_index_and_the_outbox() {
    // The receiver is down at first: deliveries wait in the outbox, retried every 200 ms.
    let addr = free_port();
    let webhooks = WebhooksConfig {
        url: Some(format!("http://{addr}/hook")),
        retry_schedule: Some(vec![HumanDuration(Duration::from_millis(200)); 30]),
        timeout: Some(HumanDuration(Duration::from_secs(2))),
        ..Default::default()
    };
    let d = Daemon::start_with(move |c| {
        c.environments.get_mut("prod").unwrap().webhooks = webhooks;
    });
    let before = scrape(&d);
    for name in [
        "opslog_store_commit_seconds_count",
        "opslog_store_messages_per_commit_count",
        "opslog_index_lag",
        "opslog_index_segments",
        "opslog_retention_sweeps_total",
        "opslog_disk_full_rejections_total",
        r#"opslog_outbox_jobs{kind="otlp_span",status="failed"}"#,
        r#"opslog_retention_removed_total{record="outbox_attempt"}"#,
        "opslog_webhook_deliveries_delivered_total",
        "opslog_exports_delivered_total",
    ] {
        assert!(before.contains_key(name), "{name} missing from {before:?}");
    }
    assert_eq!(before["opslog_disk_full_rejections_total"], 0.0);
    assert_eq!(pending_webhooks(&d), 0.0);

    let mut ops = Vec::new();
    for i in 0..3 {
        let id = d.start_operation(
            "prod",
            PROD_KEY,
            &json!({"type": "sync", "integration": "github", "connection_id": format!("c{i}")}),
        );
        let batch: Vec<_> = (0..40)
            .map(|n| json!({"message": format!("line {n}")}))
            .collect();
        let path = format!("/v1/environments/prod/operations/{id}/messages");
        assert_eq!(d.post(&path, PROD_KEY, &json!(batch)).status, 201);
        let end = d.patch(
            &format!("/v1/environments/prod/operations/{id}"),
            PROD_KEY,
            &json!({"state": "success"}),
        );
        assert_eq!(end.status, 200);
        ops.push(id);
    }
    let busy = scrape(&d);
    assert_eq!(busy["opslog_messages_appended_total"], 120.0);
    assert_eq!(busy["opslog_operations_created_total"], 3.0);
    assert_eq!(pending_webhooks(&d), 3.0, "the receiver is down");
    let commits = busy["opslog_store_commit_seconds_count"];
    assert!(commits >= 9.0, "{busy:?}");
    assert_eq!(
        busy[r#"opslog_store_commit_seconds_bucket{le="+Inf"}"#],
        commits
    );
    assert_eq!(busy["opslog_store_messages_per_commit_count"], commits);
    assert!(busy["opslog_store_messages_per_commit_sum"] >= 120.0);
    // Buckets are cumulative.
    let buckets: Vec<f64> = busy
        .iter()
        .filter(|(k, _)| k.starts_with("opslog_store_commit_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert!(buckets.iter().all(|b| *b <= commits), "{buckets:?}");

    // The receiver comes back: the deliveries go out and the pending depth drops to 0.
    let receiver = Receiver::start_on(TcpListener::bind(addr).unwrap(), |_, _| {
        Answer::Status(200, "ok")
    });
    receiver.wait_for(3, Duration::from_secs(30));
    let after = eventually(Duration::from_secs(30), || {
        let m = scrape(&d);
        (m[r#"opslog_outbox_jobs{kind="webhook",status="pending"}"#] == 0.0).then_some(m)
    });
    assert_eq!(
        after[r#"opslog_outbox_jobs{kind="webhook",status="delivered"}"#],
        3.0
    );
    assert_eq!(after["opslog_webhook_deliveries_delivered_total"], 3.0);
    assert!(after["opslog_webhook_attempts_total"] >= 3.0, "{after:?}");
    assert!(after["opslog_store_commit_seconds_count"] > commits);
    assert!(after["opslog_http_requests_total"] > busy["opslog_http_requests_total"]);
    // Nothing is written any more: once the index caught up, the lag is 0 and it has segments.
    eventually(Duration::from_secs(30), || {
        let m = scrape(&d);
        (m["opslog_index_lag"] == 0.0 && m["opslog_index_segments"] >= 1.0).then_some(())
    });
}

#[test]
fn outbox_depth_is_counted_from_the_store_after_a_restart() {
    let addr = free_port();
    let webhooks = WebhooksConfig {
        url: Some(format!("http://{addr}/hook")),
        retry_schedule: Some(vec![HumanDuration(Duration::from_secs(3600))]),
        ..Default::default()
    };
    let adjust = move |c: &mut opslog::config::Config| {
        c.environments.get_mut("prod").unwrap().webhooks = webhooks;
    };
    let d = Daemon::start_with(adjust.clone());
    for i in 0..2 {
        let id = d.start_operation(
            "prod",
            PROD_KEY,
            &json!({"type": "sync", "connection_id": format!("c{i}")}),
        );
        d.patch(
            &format!("/v1/environments/prod/operations/{id}"),
            PROD_KEY,
            &json!({"state": "failed"}),
        );
    }
    assert_eq!(pending_webhooks(&d), 2.0);
    let dir = d.stop();
    let path = dir.path().to_owned();
    let again = Daemon::start_with(move |c| {
        adjust(c);
        c.server.data_dir = path;
    });
    assert_eq!(pending_webhooks(&again), 2.0);
    drop(again);
    drop(dir);
}

/// The reference parser, the PyPI `prometheus_client` package's (`./scripts/test` installs it),
/// reads the daemon's /metrics whole, and its values follow known activity: every family's
/// type and help, every sample.
#[test]
fn prometheus_client_parses_the_exposition_and_reads_the_values() {
    let d = Daemon::start();
    for state in ["success", "failed", "failed"] {
        let id = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
        let path = format!("/v1/environments/prod/operations/{id}/messages");
        let batch = json!([{"message": "one"}, {"message": "two"}]);
        assert_eq!(d.post(&path, PROD_KEY, &batch).status, 201);
        let end = d.patch(
            &format!("/v1/environments/prod/operations/{id}"),
            PROD_KEY,
            &json!({"state": state}),
        );
        assert_eq!(end.status, 200, "{}", end.text);
    }
    let missing = d.get("/v1/environments/prod/operations/nope", PROD_KEY);
    assert_eq!(missing.status / 100, 4);
    let reply = d.raw("GET", "/metrics", None, &[], None);
    assert_eq!(reply.headers["content-type"], "text/plain; version=0.0.4");

    let families = parse_with_prometheus_client(&reply.text);
    let family = |name: &str| {
        families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name} in {families:#?}"))
    };
    let sample = |family_name: &str, sample: &str, labels: serde_json::Value| -> f64 {
        family(family_name)["samples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s[0] == sample && s[1] == labels)
            .unwrap_or_else(|| panic!("no {sample} {labels} in {}", family(family_name)))[2]
            .as_f64()
            .unwrap()
    };
    // The parser names a counter's family without `_total`; its sample keeps it.
    assert_eq!(family("opslog_operations_created")["type"], "counter");
    assert_eq!(
        family("opslog_operations_created")["help"],
        "Operations created."
    );
    assert_eq!(
        sample(
            "opslog_operations_created",
            "opslog_operations_created_total",
            json!({})
        ),
        3.0
    );
    assert_eq!(
        sample(
            "opslog_messages_appended",
            "opslog_messages_appended_total",
            json!({})
        ),
        6.0
    );
    let ended = |state: &str| {
        sample(
            "opslog_operations_ended",
            "opslog_operations_ended_total",
            json!({ "state": state }),
        )
    };
    assert_eq!(
        (ended("success"), ended("failed"), ended("timeout")),
        (1.0, 2.0, 0.0)
    );
    assert!(
        sample(
            "opslog_http_client_errors",
            "opslog_http_client_errors_total",
            json!({})
        ) >= 1.0
    );
    assert_eq!(family("opslog_index_segments")["type"], "gauge");
    assert_eq!(family("opslog_outbox_jobs")["type"], "gauge");
    assert_eq!(
        sample(
            "opslog_outbox_jobs",
            "opslog_outbox_jobs",
            json!({"kind": "webhook", "status": "pending"})
        ),
        0.0
    );
    let histogram = family("opslog_store_commit_seconds");
    assert_eq!(histogram["type"], "histogram");
    let commits = sample(
        "opslog_store_commit_seconds",
        "opslog_store_commit_seconds_count",
        json!({}),
    );
    assert!(commits >= 9.0, "{histogram}");
    assert_eq!(
        sample(
            "opslog_store_commit_seconds",
            "opslog_store_commit_seconds_bucket",
            json!({"le": "+Inf"})
        ),
        commits
    );
    assert_eq!(
        sample(
            "opslog_store_commits",
            "opslog_store_commits_total",
            json!({})
        ),
        commits
    );
    let messages = sample(
        "opslog_store_messages_per_commit",
        "opslog_store_messages_per_commit_sum",
        json!({}),
    );
    assert_eq!(messages, 6.0);
    // Every family the README lists is there, and nothing the parser could not type.
    assert!(
        families.values().all(|f| f["type"] != "unknown"),
        "{families:#?}"
    );
    assert_eq!(families.len(), 31, "{:?}", families.keys());
}

/// `{family: {"type", "help", "samples": [[name, labels, value]]}}` as `prometheus_client`'s text
/// parser reads `text`.
fn parse_with_prometheus_client(text: &str) -> BTreeMap<String, serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.txt");
    std::fs::write(&path, text).unwrap();
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    assert family.name not in out, "family twice: " + family.name
    out[family.name] = {"type": family.type, "help": family.documentation,
                        "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(out))
"#,
        )
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 is needed for this test ({e}); ./scripts/test installs what it needs")
        });
    assert!(
        output.status.success(),
        "prometheus_client could not parse /metrics (run `python3 -m pip install prometheus-client`, as ./scripts/test does): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
