//! Webhook deliveries survive SIGKILL of the release binary: pending ones and ones in flight at
//! the crash are all delivered after the restart, none lost, and a delivery sent twice carries
//! the same webhook-id both times.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::process::{agent, call, spawn, Process};
use crate::receiver::{Answer, Receiver};
use crate::support::*;

fn write_config(dir: &Path, url: &str, per_url: usize, drain: &str) -> PathBuf {
    let config = dir.join("opslog.toml");
    write_private(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
admin_tokens = ["{ADMIN}"]

[outbox]
concurrency = 8
per_destination = {per_url}
drain_timeout = "{drain}"

[environments.prod]
api_keys = ["{PROD_KEY}"]

[environments.prod.webhooks]
url = "{url}"
timeout = "60s"
retry_schedule = ["0s", "200ms", "200ms", "200ms", "200ms"]
"#,
            data = dir.join("data").display(),
        ),
    )
    .unwrap();
    config
}

fn sigterm_and_wait(process: &mut Process) {
    let pid = process.child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = eventually(Duration::from_secs(30), || {
        process.child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0), "a graceful stop exits 0");
}

fn get(agent: &ureq::Agent, base: &str, path: &str) -> Value {
    let (status, body) = call(
        agent,
        "GET",
        &format!("{base}/v1/environments/prod{path}"),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

fn end_sync(agent: &ureq::Agent, base: &str, connection: &str) -> String {
    let (status, op) = call(
        agent,
        "POST",
        &format!("{base}/v1/environments/prod/operations"),
        Some(&json!({"type": "sync", "state": "success", "connection_id": connection})),
    )
    .unwrap();
    assert_eq!(status, 201, "{op}");
    op["id"].as_str().unwrap().to_owned()
}

#[test]
fn sigterm_lets_an_attempt_in_flight_finish() {
    let receiver = Receiver::start(|_, _| Answer::Slow(Duration::from_millis(1500), 200));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &receiver.url(), 4, "20s");
    let agent = agent();
    let mut process = spawn(&config);
    end_sync(&agent, &process.base, "c1");
    receiver.wait_for(1, Duration::from_secs(30));
    sigterm_and_wait(&mut process);
    let process = spawn(&config);
    let list = get(&agent, &process.base, "/deliveries");
    assert_eq!(list["total"], 1);
    assert_eq!(
        (&list["data"][0]["status"], &list["data"][0]["attempts"]),
        (&json!("delivered"), &json!(1)),
        "the attempt in flight finished and was recorded before exit: {list}"
    );
    assert_eq!(receiver.requests().len(), 1, "and is not sent again");
}

#[test]
fn sigterm_abandons_a_hanging_attempt_after_the_drain_and_resends_it() {
    let receiver = Receiver::start(|_, _| Answer::Hang);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &receiver.url(), 4, "300ms");
    let agent = agent();
    let mut process = spawn(&config);
    end_sync(&agent, &process.base, "c1");
    let first = receiver.wait_for(1, Duration::from_secs(30));
    sigterm_and_wait(&mut process);
    receiver.set_behaviour(|_, _| Answer::Status(200, "ok"));
    let process = spawn(&config);
    let requests = receiver.wait_for(2, Duration::from_secs(30));
    assert_eq!(
        requests[1].header("webhook-id"),
        first[0].header("webhook-id")
    );
    assert_eq!(requests[1].body, first[0].body);
    eventually(Duration::from_secs(30), || {
        (get(&agent, &process.base, "/deliveries?status=delivered")["total"] == 1).then_some(())
    });
}

#[test]
fn sigkill_with_deliveries_pending_and_in_flight_loses_none() {
    const OPERATIONS: usize = 20;
    const PER_URL: usize = 4;
    let receiver = Receiver::start(|_, _| Answer::Hang);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &receiver.url(), PER_URL, "10s");
    let agent = agent();
    let mut process = spawn(&config);
    let mut operations = BTreeSet::new();
    for i in 0..OPERATIONS {
        let (status, op) = call(
            &agent,
            "POST",
            &format!("{}/v1/environments/prod/operations", process.base),
            Some(&json!({"type": "sync", "state": "success", "connection_id": format!("c{i}")})),
        )
        .unwrap();
        assert_eq!(status, 201, "{op}");
        operations.insert(op["id"].as_str().unwrap().to_owned());
    }
    // PER_URL attempts hang in flight; the rest wait their turn.
    let in_flight = receiver.wait_for(PER_URL, Duration::from_secs(30));
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    assert_eq!(in_flight.len(), PER_URL, "the per-destination limit held");

    receiver.set_behaviour(|_, _| Answer::Status(200, "ok"));
    let process = spawn(&config);
    let delivered = eventually(Duration::from_secs(60), || {
        let (status, page) = call(
            &agent,
            "GET",
            &format!(
                "{}/v1/environments/prod/deliveries?status=delivered&limit=500",
                process.base
            ),
            None,
        )
        .ok()?;
        assert_eq!(status, 200);
        (page["total"] == OPERATIONS).then_some(page)
    });
    let (_, all) = call(
        &agent,
        "GET",
        &format!("{}/v1/environments/prod/deliveries?limit=500", process.base),
        None,
    )
    .unwrap();
    assert_eq!(
        all["total"], OPERATIONS,
        "one delivery per operation, no more"
    );
    let delivered_for: BTreeSet<String> = delivered["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["operation_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered_for, operations, "none lost");

    // Every event reached the receiver; a resend carries the same webhook-id.
    let requests = receiver.requests();
    let mut webhook_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut received_for = BTreeSet::new();
    for r in &requests {
        let body = r.json();
        webhook_ids
            .entry(body["id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(r.header("webhook-id").to_owned());
        received_for.insert(body["operation_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(received_for, operations);
    assert_eq!(webhook_ids.len(), OPERATIONS, "one event per operation");
    for (event, ids) in &webhook_ids {
        assert_eq!(
            ids.len(),
            1,
            "event {event} was sent under several webhook-ids: {ids:?}"
        );
    }
    for r in &in_flight {
        let again = requests
            .iter()
            .skip(PER_URL)
            .filter(|later| later.body == r.body)
            .count();
        assert_eq!(
            again, 1,
            "the delivery in flight at the crash was sent again, byte for byte"
        );
    }
    assert_eq!(requests.len(), OPERATIONS + PER_URL);
}
