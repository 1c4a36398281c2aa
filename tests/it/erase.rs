//! Erasure by connection, end user or integration: under concurrent ingest nothing acknowledged
//! of anyone else is lost and nothing of the erased one is left (store, index, outbox, export,
//! backup), checked by reading everything back; a SIGKILL in the middle resumes on restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opslog::config::{HumanDuration, WebhooksConfig};
use serde_json::{json, Value};

use crate::process::{agent, spawn};
use crate::receiver::{Answer, Receiver};
use crate::support::*;

const PROD: &str = "/v1/environments/prod";

/// Every item of a paged list (`GET path`), following `next_cursor` to the end.
fn every_item(d: &Daemon, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=200&cursor={c}"),
            None => format!("{path}{sep}limit=200"),
        };
        let page = d.get(&url, ADMIN);
        assert_eq!(page.status, 200, "{url}: {}", page.text);
        items.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(urlencoding::encode(c).into_owned()),
            None => return items,
        }
    }
    panic!("{path}: more pages than any test writes");
}

fn every_id(d: &Daemon, path: &str) -> Vec<String> {
    every_item(d, path)
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Creates `n` finished operations of `connection` in prod, each with two messages naming it
/// and an end user; returns their ids.
fn operations_of(d: &Daemon, connection: &str, n: usize) -> Vec<String> {
    let batch: Vec<Value> = (0..n)
        .map(|i| {
            json!({"type": "sync", "integration": "github", "connection_id": connection,
                   "end_user": {"id": format!("user-of-{connection}")},
                   "state": "success",
                   "messages": [{"message": format!("fetched {connection} page {i}")},
                                {"level": "warn", "message": format!("{connection} rate limited")}]})
        })
        .collect();
    let reply = d.post(
        &format!("{PROD}/operations"),
        PROD_KEY,
        &Value::Array(batch),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls the erasure `id` until it is done; its JSON.
fn wait_done(d: &Daemon, id: &str) -> Value {
    eventually(Duration::from_secs(60), || {
        let reply = d.get(&format!("{PROD}/erasures/{id}"), ADMIN);
        assert_eq!(reply.status, 200, "{}", reply.text);
        (reply.body["state"] == "done").then_some(reply.body)
    })
}

#[test]
fn erasing_a_connection_under_ingest_leaves_nothing_of_it_and_loses_nothing_else() {
    // Deliveries fail and wait an hour for their next attempt: pending jobs with attempts.
    let receiver = Receiver::start(|_, _| Answer::Status(500, "down"));
    let d = Arc::new(Daemon::start_with(|c| {
        c.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(receiver.url()),
            retry_schedule: Some(vec![
                HumanDuration(Duration::ZERO),
                HumanDuration(Duration::from_secs(3600)),
            ]),
            timeout: Some(HumanDuration(Duration::from_secs(2))),
            ..Default::default()
        };
    }));
    let erased: BTreeSet<String> = operations_of(&d, "acme", 60).into_iter().collect();
    let kept: BTreeSet<String> = operations_of(&d, "globex", 20).into_iter().collect();
    // Every finished operation's delivery was attempted once, and the attempt recorded.
    eventually(Duration::from_secs(30), || {
        let deliveries = every_item(&d, &format!("{PROD}/deliveries"));
        (deliveries.len() == erased.len() + kept.len()
            && deliveries.iter().all(|d| d["attempts"] == 1))
        .then_some(())
    });

    // Ingest of another connection goes on during the erasure; every acknowledged operation and
    // message must stay.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let ingest = {
        let (d, stop, acknowledged) = (d.clone(), stop.clone(), acknowledged.clone());
        std::thread::spawn(move || {
            for i in 0..2_000 {
                if stop.load(Ordering::Relaxed) && i >= 5 {
                    return;
                }
                let reply = d.post(
                    &format!("{PROD}/operations"),
                    PROD_KEY,
                    &json!({"type": "sync", "integration": "github", "connection_id": "initech",
                            "messages": [{"message": format!("initech write {i}")}]}),
                );
                if reply.status == 201 {
                    let id = reply.body["id"].as_str().unwrap().to_owned();
                    acknowledged.lock().unwrap().insert(id, 1);
                }
            }
        })
    };

    let asked = d.post(
        &format!("{PROD}/erase"),
        ADMIN,
        &json!({"connection_id": "acme"}),
    );
    assert!(asked.status == 200 || asked.status == 202, "{}", asked.text);
    let id = asked.body["id"].as_str().unwrap().to_owned();
    let done = wait_done(&d, &id);
    stop.store(true, Ordering::Relaxed);
    ingest.join().unwrap();
    assert_eq!(done["selector"], json!({"connection_id": "acme"}));
    let removed = &done["removed"];
    // The 60 operations and their delivery logs (the logs name the connection too).
    assert_eq!(removed["operations"], 120, "{done}");
    assert!(removed["messages"].as_u64().unwrap() >= 120, "{done}");
    assert_eq!(removed["outbox_jobs"], 60, "{done}");
    assert_eq!(removed["attempts"], 60, "{done}");

    let check = |d: &Daemon| {
        // The index takes the removal in with its next commit.
        eventually(Duration::from_secs(30), || {
            let ops = d.get(
                &format!("{PROD}/operations?connection_id=acme&limit=1"),
                ADMIN,
            );
            let text = d.get(&format!("{PROD}/messages?q=acme&limit=1"), ADMIN);
            (ops.body["total"] == 0 && text.body["total"] == 0).then_some(())
        });
        // Every read path, read in full: nothing names acme.
        let operations: BTreeSet<String> = every_id(d, &format!("{PROD}/operations"))
            .into_iter()
            .collect();
        assert!(operations.is_disjoint(&erased));
        for path in [
            "operations?connection_id=acme",
            "messages?q=acme",
            "operations?q=acme",
            "operations?end_user_id=user-of-acme",
        ] {
            let reply = d.get(&format!("{PROD}/{path}"), ADMIN);
            assert_eq!(reply.body["total"], 0, "{path}: {}", reply.text);
        }
        // Every message the index holds, read back from the store.
        for message in every_item(d, &format!("{PROD}/messages")) {
            assert!(!message.to_string().contains("acme"), "{message}");
        }
        for op in every_item(d, &format!("{PROD}/operations")) {
            assert!(!op.to_string().contains("acme"), "{op}");
        }
        let facets = d.get(&format!("{PROD}/facets"), ADMIN);
        assert!(!facets.text.contains("acme"), "{}", facets.text);
        let deliveries = every_id(d, &format!("{PROD}/deliveries"));
        assert_eq!(
            deliveries.len(),
            kept.len(),
            "only globex's deliveries stay"
        );
        for delivery in &deliveries {
            let detail = d.get(&format!("{PROD}/deliveries/{delivery}"), ADMIN);
            assert!(!detail.text.contains("acme"), "{}", detail.text);
        }
        let export = d.get(&format!("{PROD}/export"), ADMIN);
        assert_eq!(export.status, 200);
        assert!(!export.text.contains("acme"), "the export holds none of it");
        assert!(export.text.contains("globex"));
        // Everyone else's acknowledged writes are all there.
        for id in kept.iter().chain(acknowledged.lock().unwrap().keys()) {
            let op = d.get(&format!("{PROD}/operations/{id}"), ADMIN);
            assert_eq!(op.status, 200, "{id}: {}", op.text);
            assert!(op.body["message_count"].as_u64().unwrap() >= 1);
        }
        let written = acknowledged.lock().unwrap().len() as u64;
        eventually(Duration::from_secs(30), || {
            let initech = d.get(&format!("{PROD}/messages?q=initech&limit=1"), ADMIN);
            (initech.body["total"].as_u64() == Some(written)).then_some(())
        });
    };
    check(&d);
    let metrics = crate::metrics::scrape(&d);
    assert_eq!(metrics["opslog_erasures_total"], 1.0);

    // A restart brings nothing back; a backup restored holds none of it either.
    let d = Arc::into_inner(d).expect("the ingest thread is done");
    let backup = d
        .agent
        .get(d.url("/v1/backup"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .call()
        .unwrap()
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    let dir = d.stop();
    let d = Daemon::start_in(dir, |_| {});
    check(&d);
    let listed = d.get(&format!("{PROD}/erasures"), ADMIN);
    assert_eq!(listed.body["total"], 1);
    assert_eq!(listed.body["data"][0]["state"], "done");
    drop(d);
    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::write(restored_dir.path().join("opslog.redb"), &backup).unwrap();
    let restored = Daemon::start_in(restored_dir, |_| {});
    check(&restored);
    drop(receiver);
}

#[test]
fn erasing_by_end_user_or_integration_takes_only_those_within_the_window() {
    let d = Daemon::start();
    let first = operations_of(&d, "acme", 3);
    let second = operations_of(&d, "globex", 3);
    let by_user = d.post(
        &format!("{PROD}/erase"),
        ADMIN,
        &json!({"end_user_id": "user-of-acme"}),
    );
    let by_user = match by_user.status {
        200 => by_user.body,
        202 => wait_done(&d, by_user.body["id"].as_str().unwrap()),
        _ => panic!("{}", by_user.text),
    };
    assert_eq!(by_user["removed"]["operations"], 3);
    assert_eq!(by_user["removed"]["messages"], 6);
    for id in &first {
        let gone = d.get(&format!("{PROD}/operations/{id}"), ADMIN);
        assert_eq!(gone.status, 404);
    }
    // An integration, but only what was created before `to`: nothing of globex's is older.
    let to = d
        .get(&format!("{PROD}/operations/{}", second[0]), ADMIN)
        .body["created_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let windowed = d.post(
        &format!("{PROD}/erase"),
        ADMIN,
        &json!({"integration": "github", "to": to}),
    );
    let windowed = match windowed.status {
        200 => windowed.body,
        202 => wait_done(&d, windowed.body["id"].as_str().unwrap()),
        _ => panic!("{}", windowed.text),
    };
    assert_eq!(windowed["removed"]["operations"], 0, "{windowed}");
    for id in &second {
        assert_eq!(d.get(&format!("{PROD}/operations/{id}"), ADMIN).status, 200);
    }
    // Another environment's operations of the same integration stay.
    let dev = d.start_operation(
        "dev",
        DEV_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    let all = d.post(
        &format!("{PROD}/erase"),
        ADMIN,
        &json!({"integration": "github"}),
    );
    let all = match all.status {
        200 => all.body,
        202 => wait_done(&d, all.body["id"].as_str().unwrap()),
        _ => panic!("{}", all.text),
    };
    assert_eq!(all["removed"]["operations"], 3, "{all}");
    let kept = d.get(&format!("/v1/environments/dev/operations/{dev}"), ADMIN);
    assert_eq!(kept.status, 200);
    let listed = d.get(&format!("{PROD}/erasures"), ADMIN);
    assert_eq!(listed.body["total"], 3, "{}", listed.text);
}

#[test]
fn a_bad_erase_request_is_refused_naming_the_field_and_erases_nothing() {
    let d = Daemon::start();
    let ids = operations_of(&d, "acme", 2);
    let erase = |token: &str, body: Value| d.post(&format!("{PROD}/erase"), token, &body);
    let cases = [
        (json!({}), 400, "connection_id"),
        (
            json!({"connection_id": "acme", "integration": "github"}),
            400,
            "connection_id",
        ),
        (json!({"connection_id": ""}), 400, "connection_id"),
        (
            json!({"connection_id": "acme", "from": "yesterday"}),
            400,
            "from",
        ),
        (json!({"connection": "acme"}), 400, "connection"),
    ];
    for (body, status, field) in cases {
        let reply = erase(ADMIN, body.clone());
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert!(reply.text.contains(field), "{body}: {}", reply.text);
    }
    // An environment key (ingest+read) may not erase.
    let refused = erase(PROD_KEY, json!({"connection_id": "acme"}));
    assert_eq!(
        (refused.status, refused.code()),
        (403, "insufficient_scope")
    );
    for id in &ids {
        assert_eq!(d.get(&format!("{PROD}/operations/{id}"), ADMIN).status, 200);
    }
    let listed = d.get(&format!("{PROD}/erasures"), ADMIN);
    assert_eq!(
        listed.body["total"], 0,
        "nothing was recorded: {}",
        listed.text
    );
    let other_env = d.post(
        "/v1/environments/nowhere/erase",
        ADMIN,
        &json!({"connection_id": "acme"}),
    );
    assert_eq!(other_env.status, 404);
    let missing = d.get(
        &format!("{PROD}/erasures/01J0000000000000000000000Z"),
        ADMIN,
    );
    assert_eq!(missing.status, 404);
}

/// Writes a config for a child process: prod with a key, and the admin token.
fn child_config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_tokens = [\"{ADMIN}\"]\n\n\
         [environments.prod]\napi_keys = [\"{PROD_KEY}\"]\n",
        dir.join("data").display()
    );
    let path = dir.join("opslog.toml");
    write_private(&path, text).unwrap();
    path
}

fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> (u16, Value) {
    let builder = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json");
    let response = match body {
        Some(b) => agent.run(builder.body(serde_json::to_vec(b).unwrap()).unwrap()),
        None => agent.run(builder.body(()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn an_erasure_killed_midway_finishes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = child_config(dir.path());
    let mut process = spawn(&config);
    let agent = agent();
    let api = format!("{}{PROD}", process.base);
    // 4,000 operations to erase (and 200 to keep), several steps of work.
    for (connection, batches) in [("acme", 20), ("globex", 1)] {
        for b in 0..batches {
            let batch: Vec<Value> = (0..200)
                .map(|i| {
                    json!({"type": "sync", "connection_id": connection, "integration": "github",
                           "messages": [{"message": format!("{connection} {b}.{i}")}]})
                })
                .collect();
            let (status, reply) = call(
                &agent,
                "POST",
                &format!("{api}/operations"),
                Some(&Value::Array(batch)),
            );
            assert_eq!(status, 201, "{reply}");
        }
    }
    // Ask in the background; kill as soon as the erasure is listed, running or not.
    let asking = {
        let (agent, url) = (agent.clone(), format!("{api}/erase"));
        std::thread::spawn(move || {
            let builder = ureq::http::Request::builder()
                .method("POST")
                .uri(&url)
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", "application/json");
            // The connection breaks when the daemon is killed: no answer is fine.
            let _ = agent.run(
                builder
                    .body(br#"{"connection_id":"acme"}"#.to_vec())
                    .unwrap(),
            );
        })
    };
    let id = eventually(Duration::from_secs(30), || {
        let (_, listed) = call(&agent, "GET", &format!("{api}/erasures"), None);
        listed["data"][0]["id"].as_str().map(str::to_owned)
    });
    process.child.kill().unwrap();
    process.child.wait().unwrap();
    asking.join().unwrap();

    let restarted = spawn(&config);
    let api = format!("{}{PROD}", restarted.base);
    let done = eventually(Duration::from_secs(60), || {
        let (status, erasure) = call(&agent, "GET", &format!("{api}/erasures/{id}"), None);
        assert_eq!(status, 200, "{erasure}");
        (erasure["state"] == "done").then_some(erasure)
    });
    assert_eq!(done["selector"]["connection_id"], "acme");
    eventually(Duration::from_secs(30), || {
        let (_, acme) = call(
            &agent,
            "GET",
            &format!("{api}/operations?connection_id=acme&limit=1"),
            None,
        );
        let (_, text) = call(
            &agent,
            "GET",
            &format!("{api}/messages?q=acme&limit=1"),
            None,
        );
        (acme["total"] == 0 && text["total"] == 0).then_some(())
    });
    let (_, globex) = call(
        &agent,
        "GET",
        &format!("{api}/operations?connection_id=globex&limit=1"),
        None,
    );
    assert_eq!(globex["total"], 200, "{globex}");
    // What the erasure reports covers the whole of it, across the restart (at most all 4,000:
    // what the first run removed is counted in the stored progress).
    assert_eq!(done["removed"]["operations"], 4000, "{done}");
    drop(restarted);
}

#[test]
fn opslog_erase_says_how_many_first_and_erases_with_yes() {
    let d = Daemon::start();
    operations_of(&d, "acme", 3);
    operations_of(&d, "globex", 1);
    let run = |extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_opslog"))
            .args(["erase", "--url", &d.base, "--token", ADMIN, "--env", "prod"])
            .args(["--connection-id", "acme"])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stderr).unwrap()
    };
    let asked = eventually(Duration::from_secs(10), || {
        let said = run(&[]);
        said.contains("this erases 3 operations").then_some(said)
    });
    assert!(asked.contains("--yes"), "{asked}");
    let listed = d.get(&format!("{PROD}/erasures"), ADMIN);
    assert_eq!(listed.body["total"], 0, "nothing was erased without --yes");
    let done = run(&["--yes"]);
    assert!(
        done.contains("done erasure") && done.contains("3 operations, 6 messages"),
        "{done}"
    );
    // Only globex's is left (the index counts it once its next commit takes the removal in).
    eventually(Duration::from_secs(30), || {
        let left = d.get(&format!("{PROD}/operations"), ADMIN);
        (left.body["total"] == 1 && left.body["data"][0]["connection_id"] == "globex").then_some(())
    });
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_opslog"))
        .args([
            "erase", "--url", &d.base, "--token", PROD_KEY, "--env", "prod",
        ])
        .args(["--connection-id", "globex", "--yes"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
}
