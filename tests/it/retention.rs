//! Retention: expired operations leave the store and the index with everything hanging on them,
//! and under constant ingest the data dir stops growing.

use std::path::Path;
use std::time::Duration;

use opslog::config::HumanDuration;
use serde_json::{json, Value};

use crate::support::*;

fn keep_for(seconds: f64) -> impl FnOnce(&mut opslog::config::Config) {
    move |c| {
        c.retention.days = seconds / 86_400.0;
        c.retention.every = HumanDuration(Duration::from_millis(100));
    }
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

#[test]
fn expired_operations_leave_the_store_and_the_index() {
    let d = Daemon::start_with(keep_for(1.5));
    let key = [("Idempotency-Key", "retention-key-1")];
    let body = br#"{"type":"sync","integration":"github","state":"running"}"#;
    let old = d.raw(
        "POST",
        "/v1/environments/prod/operations",
        Some(PROD_KEY),
        &key,
        Some(body),
    );
    assert_eq!(old.status, 201);
    let old_id = old.body["id"].as_str().unwrap().to_owned();
    let batch: Vec<Value> = (0..50)
        .map(|i| json!({"message": format!("expiring{i} mango")}))
        .collect();
    let path = format!("/v1/environments/prod/operations/{old_id}/messages");
    assert_eq!(d.post(&path, PROD_KEY, &Value::Array(batch)).status, 201);
    eventually(Duration::from_secs(10), || {
        (d.get("/v1/environments/prod/messages?q=mango", PROD_KEY)
            .body["total"]
            == 50)
            .then_some(())
    });

    eventually(Duration::from_secs(30), || {
        (d.get(
            &format!("/v1/environments/prod/operations/{old_id}"),
            PROD_KEY,
        )
        .status
            == 404)
            .then_some(())
    });
    let fresh = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "github"}),
    );
    assert_eq!(
        d.get(&path, PROD_KEY).status,
        404,
        "its messages went with it"
    );
    eventually(Duration::from_secs(10), || {
        let messages = d.get("/v1/environments/prod/messages?q=mango", PROD_KEY);
        let ops = d.get(
            "/v1/environments/prod/operations?integration=github",
            PROD_KEY,
        );
        (messages.body["total"] == 0
            && ops.body["total"] == 1
            && ops.body["data"][0]["id"] == fresh.as_str())
        .then_some(())
    });
    // The idempotency key went too: the same request now starts a new operation.
    let again = d.raw(
        "POST",
        "/v1/environments/prod/operations",
        Some(PROD_KEY),
        &key,
        Some(body),
    );
    assert_eq!(again.status, 201);
    assert_ne!(again.body["id"], old.body["id"]);
    assert!(!again.headers.contains_key("idempotent-replayed"));
    let metrics = d.raw("GET", "/metrics", None, &[], None).text;
    assert!(
        metrics.contains("opslog_operations_removed_total 1"),
        "{metrics}"
    );
}

#[test]
fn under_constant_ingest_the_data_dir_stops_growing() {
    let d = Daemon::start_with(keep_for(0.5));
    let mut sizes = Vec::new();
    let mut previous: Option<String> = None;
    for round in 0..14 {
        let id = d.start_operation(
            "prod",
            PROD_KEY,
            &json!({"type": "sync", "integration": "github"}),
        );
        for chunk in 0..4 {
            let batch: Vec<Value> = (0..250)
                .map(|i| json!({"message": format!("round {round} chunk {chunk} line {i} fetched records from github page {i}"), "meta": {"i": i}}))
                .collect();
            let r = d.post(
                &format!("/v1/environments/prod/operations/{id}/messages"),
                PROD_KEY,
                &Value::Array(batch),
            );
            assert_eq!(r.status, 201);
        }
        if let Some(prev) = previous.replace(id) {
            eventually(Duration::from_secs(30), || {
                (d.get(
                    &format!("/v1/environments/prod/operations/{prev}"),
                    PROD_KEY,
                )
                .status
                    == 404)
                    .then_some(())
            });
        }
        sizes.push(dir_size(d.dir.path()));
    }
    eprintln!("data dir size per round: {sizes:?}");
    let early = *sizes[3..7].iter().max().unwrap();
    let late = *sizes[10..].iter().max().unwrap();
    assert!(
        late <= early + early / 2,
        "the data dir keeps growing under constant ingest with retention: {sizes:?}"
    );
}
