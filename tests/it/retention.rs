//! Retention: expired operations leave the store and the index with everything hanging on them,
//! finished deliveries and exports leave the outbox with their attempts (pending ones stay), and
//! under constant ingest with webhooks on the data dir stops growing.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opslog::config::{HumanDuration, WebhooksConfig};
use serde_json::{json, Value};

use crate::metrics::scrape;
use crate::receiver::{Answer, Receiver};
use crate::support::*;

const PROD: &str = "/v1/environments/prod";

/// prod sends webhooks to `url` on `schedule`.
fn webhooks_to(url: String, schedule: &[u64]) -> WebhooksConfig {
    WebhooksConfig {
        url: Some(url),
        retry_schedule: Some(
            schedule
                .iter()
                .map(|ms| HumanDuration(Duration::from_millis(*ms)))
                .collect(),
        ),
        timeout: Some(HumanDuration(Duration::from_secs(2))),
        ..Default::default()
    }
}

/// Starts a sync on `connection` and ends it with success; returns its id.
fn ended_sync(d: &Daemon, connection: &str) -> String {
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": connection}),
    );
    let reply = d.patch(
        &format!("{PROD}/operations/{id}"),
        PROD_KEY,
        &json!({"state": "success"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    id
}

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
    let metrics = scrape(&d);
    assert_eq!(
        metrics[r#"opslog_retention_removed_total{record="operation"}"#],
        1.0
    );
    assert_eq!(
        metrics[r#"opslog_retention_removed_total{record="message"}"#],
        50.0
    );
    assert!(metrics["opslog_retention_sweeps_total"] >= 1.0);
}

#[test]
fn finished_deliveries_leave_with_their_attempts_and_pending_ones_stay() {
    // `flaky` is delivered at the second attempt; `stuck` always fails and waits an hour for
    // its third attempt, so it is still pending when its operation expires.
    let first_flaky_attempt = AtomicBool::new(false);
    let receiver = Receiver::start(move |request, _| {
        let body = request.json();
        let flaky_first =
            body["connection_id"] == "flaky" && !first_flaky_attempt.swap(true, Ordering::SeqCst);
        if body["connection_id"] == "stuck" || flaky_first {
            Answer::Status(500, "no")
        } else {
            Answer::Status(200, "ok")
        }
    });
    let webhooks = webhooks_to(receiver.url(), &[0, 200, 3_600_000]);
    let d = Daemon::start_with(move |c| {
        keep_for(2.0)(c);
        c.environments.get_mut("prod").unwrap().webhooks = webhooks;
    });
    let flaky_op = ended_sync(&d, "flaky");
    let stuck_op = ended_sync(&d, "stuck");
    let delivery_of = |op: &str| {
        let list = d.get(&format!("{PROD}/deliveries"), PROD_KEY);
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["operation_id"] == op)
            .map(|v| v["id"].as_str().unwrap().to_owned())
    };
    let (flaky, stuck) = eventually(Duration::from_secs(10), || {
        Some((delivery_of(&flaky_op)?, delivery_of(&stuck_op)?))
    });
    eventually(Duration::from_secs(10), || {
        let f = d.get(&format!("{PROD}/deliveries/{flaky}"), PROD_KEY).body;
        let s = d.get(&format!("{PROD}/deliveries/{stuck}"), PROD_KEY).body;
        (f["status"] == "delivered"
            && f["attempt_log"].as_array()?.len() == 2
            && s["attempt_log"].as_array()?.len() == 2)
            .then_some(())
    });
    let depth = scrape(&d);
    assert_eq!(
        depth[r#"opslog_outbox_jobs{kind="webhook",status="delivered"}"#],
        1.0
    );
    assert_eq!(
        depth[r#"opslog_outbox_jobs{kind="webhook",status="pending"}"#],
        1.0
    );

    eventually(Duration::from_secs(30), || {
        (d.get(&format!("{PROD}/deliveries/{flaky}"), PROD_KEY)
            .status
            == 404)
            .then_some(())
    });
    assert_eq!(
        d.get(&format!("{PROD}/operations/{flaky_op}"), PROD_KEY)
            .status,
        404
    );
    let list = d.get(&format!("{PROD}/deliveries"), PROD_KEY);
    assert_eq!(list.body["total"], 1, "{}", list.text);
    assert_eq!(list.body["data"][0]["id"], stuck.as_str());
    // The pending delivery is still owed to its receiver: it stays, attempts and all, although
    // the operation that caused it has expired.
    let kept = d.get(&format!("{PROD}/deliveries/{stuck}"), PROD_KEY);
    assert_eq!(kept.status, 200);
    assert_eq!(kept.body["status"], "pending");
    assert_eq!(kept.body["attempt_log"].as_array().unwrap().len(), 2);
    let metrics = scrape(&d);
    assert_eq!(
        metrics[r#"opslog_retention_removed_total{record="outbox_job"}"#],
        1.0
    );
    assert_eq!(
        metrics[r#"opslog_retention_removed_total{record="outbox_attempt"}"#],
        2.0
    );
    assert_eq!(
        metrics[r#"opslog_outbox_jobs{kind="webhook",status="delivered"}"#],
        0.0
    );
    assert_eq!(
        metrics[r#"opslog_outbox_jobs{kind="webhook",status="pending"}"#],
        1.0
    );
}

#[test]
fn under_constant_ingest_with_webhooks_the_data_dir_stops_growing() {
    const SYNCS_PER_ROUND: usize = 60;
    const ROUNDS: usize = 14;
    let receiver = Receiver::ok();
    let webhooks = webhooks_to(receiver.url(), &[0]);
    let d = Daemon::start_with(move |c| {
        keep_for(0.5)(c);
        c.environments.get_mut("prod").unwrap().webhooks = webhooks;
    });
    let mut sizes = Vec::new();
    let mut redb_sizes = Vec::new();
    let mut redb_allocated = Vec::new();
    let mut delivered = Vec::new();
    let mut previous: Option<String> = None;
    for round in 0..ROUNDS {
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
        // Ended syncs: each queues a delivery, a `webhook:deliver` log and an attempt.
        std::thread::scope(|scope| {
            for worker in 0..3 {
                let d = &d;
                scope.spawn(move || {
                    for i in (worker..SYNCS_PER_ROUND).step_by(3) {
                        ended_sync(d, &format!("round{round}-{i}"));
                    }
                });
            }
        });
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
        let redb = std::fs::metadata(d.dir.path().join("opslog.redb")).unwrap();
        redb_sizes.push(redb.len());
        // The blocks the file system holds for it: the file's length doubles ahead of use (a
        // hole until written), its written pages only grow when freed ones are not reused.
        redb_allocated.push(std::os::unix::fs::MetadataExt::blocks(&redb) * 512);
        delivered.push(scrape(&d)[r#"opslog_outbox_jobs{kind="webhook",status="delivered"}"#]);
    }
    eprintln!("data dir size per round: {sizes:?}");
    eprintln!("redb file size per round: {redb_sizes:?}");
    eprintln!("redb allocated bytes per round: {redb_allocated:?}");
    eprintln!("delivered deliveries kept per round: {delivered:?}");
    let total = receiver.requests().len();
    assert!(
        total >= ROUNDS * SYNCS_PER_ROUND / 2,
        "the receiver got {total} webhooks"
    );
    // Only the deliveries of the last retention period or so stay; without retention of the
    // outbox this would be every delivery ever made.
    let kept = delivered[ROUNDS / 2..].iter().cloned().fold(0.0, f64::max);
    assert!(
        kept <= (4 * SYNCS_PER_ROUND) as f64,
        "finished deliveries pile up: {delivered:?}"
    );
    // The redb file reuses freed pages; the index's size moves with segment merges, so the
    // whole data dir gets a looser bound.
    let plateau = |sizes: &[u64], slack: f64| {
        let early = *sizes[3..7].iter().max().unwrap() as f64;
        let late = *sizes[10..].iter().max().unwrap() as f64;
        late <= early * slack
    };
    // redb grows its file by doubling: one more step, taken while a reader pins freed pages for
    // a moment, is not growth; growth that goes on takes two.
    assert!(
        plateau(&redb_sizes, 2.0),
        "the store keeps growing under constant ingest with retention: {redb_sizes:?}"
    );
    assert!(
        plateau(&redb_allocated, 1.5),
        "the store writes ever more pages under constant ingest with retention: {redb_allocated:?}"
    );
    assert!(
        plateau(&sizes, 2.0),
        "the data dir keeps growing under constant ingest with retention: {sizes:?}"
    );
}
