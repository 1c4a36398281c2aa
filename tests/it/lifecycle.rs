//! The operation lifecycle over HTTP: start, log, page, end, idempotency and the timeout sweeper.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const OPS: &str = "/v1/environments/prod/operations";

#[test]
fn operation_lifecycle_end_to_end() {
    let d = Daemon::start();
    let created = d.post(
        OPS,
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme-42",
                "script": "issues", "meta": {"frequency": "every 5m"}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let op = &created.body;
    let id = op["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 26);
    assert_eq!(op["type"], "sync");
    assert_eq!(op["action"], "run");
    assert_eq!(op["state"], "running");
    assert_eq!(op["environment"], "prod");
    assert_eq!(op["message"], "Sync execution");
    assert_eq!(op["meta"]["frequency"], "every 5m");
    assert!(op["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(op["ended_at"], Value::Null);

    // One message, then an array, like nango.log() and a flushed buffer.
    let one = d.post(
        &format!("{OPS}/{id}/messages"),
        PROD_KEY,
        &json!({"message": "fetching issues since 2026-11-01", "meta": {"page": 1}}),
    );
    assert_eq!(one.status, 201, "{}", one.text);
    assert_eq!(one.body["operation_id"], id.as_str());
    assert_eq!(one.body["level"], "info");
    assert_eq!(one.body["source"], "user");
    let many = d.post(
        &format!("{OPS}/{id}/messages"),
        PROD_KEY,
        &json!([
            {"type": "http", "request": {"method": "GET", "url": "https://api.github.com/issues",
              "headers": {"Authorization": "token ghp_secret"}},
             "response": {"status": 200}, "duration_ms": 120},
            {"type": "http", "request": {"method": "GET", "url": "https://api.github.com/issues?page=2"},
             "response": {"status": 429}, "retry": {"attempt": 1, "max": 3, "waited_ms": 1000}},
            {"level": "warn", "message": "record 17 failed validation: missing `title`"}
        ]),
    );
    assert_eq!(many.status, 201, "{}", many.text);
    let data = many.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[0]["level"], "info");
    assert_eq!(data[0]["request"]["headers"]["Authorization"], "[REDACTED]");
    assert_eq!(
        data[1]["level"], "error",
        "http 429 without a level is an error"
    );
    assert_eq!(data[1]["retry"]["waited_ms"], 1000);

    // A batch across operations.
    let other = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "script": "create-issue"}),
    );
    let batch = d.post(
        "/v1/environments/prod/messages",
        PROD_KEY,
        &json!([
            {"operation_id": id, "message": "saved 40 records"},
            {"operation_id": other, "level": "error", "message": "invalid_grant from github",
             "error": {"name": "AuthError", "message": "invalid_grant"}}
        ]),
    );
    assert_eq!(batch.status, 201, "{}", batch.text);

    // Read back, oldest first, in pages.
    let page1 = d.get(&format!("{OPS}/{id}/messages?limit=2"), PROD_KEY);
    assert_eq!(page1.status, 200, "{}", page1.text);
    assert_eq!(page1.body["total"], 5);
    let texts = |r: &Reply| -> Vec<String> {
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["message"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        texts(&page1),
        [
            "fetching issues since 2026-11-01",
            "GET https://api.github.com/issues -> 200"
        ]
    );
    let cursor = page1.body["next_cursor"].as_str().unwrap();
    let page2 = d.get(
        &format!("{OPS}/{id}/messages?limit=2&cursor={cursor}"),
        PROD_KEY,
    );
    assert_eq!(
        texts(&page2),
        [
            "GET https://api.github.com/issues?page=2 -> 429",
            "record 17 failed validation: missing `title`"
        ]
    );
    let cursor = page2.body["next_cursor"].as_str().unwrap();
    let page3 = d.get(
        &format!("{OPS}/{id}/messages?limit=2&cursor={cursor}"),
        PROD_KEY,
    );
    assert_eq!(texts(&page3), ["saved 40 records"]);
    assert_eq!(page3.body["next_cursor"], Value::Null);
    // Tailing: everything after the last seen id, and the newest before a given one.
    let last_seen = page1.body["data"][1]["id"].as_str().unwrap();
    let tail = d.get(&format!("{OPS}/{id}/messages?after={last_seen}"), PROD_KEY);
    assert_eq!(texts(&tail).len(), 3);
    let first_of_page3 = page3.body["data"][0]["id"].as_str().unwrap();
    let before = d.get(
        &format!("{OPS}/{id}/messages?before={first_of_page3}&limit=1"),
        PROD_KEY,
    );
    assert_eq!(
        texts(&before),
        ["record 17 failed validation: missing `title`"]
    );

    // End it with records; the end is final.
    let ended = d.patch(
        &format!("{OPS}/{id}"),
        PROD_KEY,
        &json!({"state": "success", "records": [{"model": "Issue", "added": 40, "updated": 2}]}),
    );
    assert_eq!(ended.status, 200, "{}", ended.text);
    assert_eq!(ended.body["state"], "success");
    assert_eq!(ended.body["records"][0]["added"], 40);
    assert_eq!(ended.body["records"][0]["deleted"], 0);
    assert!(ended.body["duration_ms"].as_u64().is_some());
    assert!(ended.body["ended_at"].is_string());

    let again = d.patch(
        &format!("{OPS}/{id}"),
        PROD_KEY,
        &json!({"state": "success"}),
    );
    assert_eq!(
        again.status, 200,
        "repeating the same end is idempotent: {}",
        again.text
    );
    assert_eq!(again.body["ended_at"], ended.body["ended_at"]);
    let changed = d.patch(
        &format!("{OPS}/{id}"),
        PROD_KEY,
        &json!({"state": "failed"}),
    );
    assert_eq!(changed.status, 409, "{}", changed.text);
    assert_eq!(changed.code(), "operation_ended");

    let fetched = d.get(&format!("{OPS}/{id}"), PROD_KEY);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["state"], "success");
    assert_eq!(fetched.body["message_count"], 5);
    assert_eq!(fetched.body["ended_at"], ended.body["ended_at"]);

    // Late logs after the end are still kept.
    let late = d.post(
        &format!("{OPS}/{id}/messages"),
        PROD_KEY,
        &json!({"message": "flushed late"}),
    );
    assert_eq!(late.status, 201);
}

#[test]
fn waiting_running_failed_with_error() {
    let d = Daemon::start();
    let id = d.start_operation("dev", DEV_KEY, &json!({"type": "auth", "action": "refresh_token", "state": "waiting", "integration": "salesforce"}));
    let path = format!("/v1/environments/dev/operations/{id}");
    let op = d.get(&path, DEV_KEY).body;
    assert_eq!(
        (op["state"].as_str(), op["started_at"].is_null()),
        (Some("waiting"), true)
    );
    assert_eq!(op["message"], "Token refresh");
    let running = d.patch(&path, DEV_KEY, &json!({"state": "running"}));
    assert_eq!(running.body["state"], "running");
    assert!(running.body["started_at"].is_string());
    let back = d.patch(&path, DEV_KEY, &json!({"state": "waiting"}));
    assert_eq!((back.status, back.code()), (409, "invalid_transition"));
    let failed = d.patch(
        &path,
        DEV_KEY,
        &json!({"state": "failed", "error": {"name": "OAuthError", "message": "invalid_grant", "payload": {"status": 400}}}),
    );
    assert_eq!(failed.status, 200, "{}", failed.text);
    assert_eq!(failed.body["error"]["message"], "invalid_grant");
    assert_eq!(failed.body["error"]["payload"]["status"], 400);

    // Created already ended, as a recorder of finished work would.
    let done = d.post(
        "/v1/environments/dev/operations",
        DEV_KEY,
        &json!({"type": "webhook", "state": "success", "integration": "stripe",
                "started_at": "2026-11-25T10:00:00.000Z", "ended_at": "2026-11-25T10:00:00.250Z"}),
    );
    assert_eq!(done.status, 201, "{}", done.text);
    assert_eq!(done.body["duration_ms"], 250);
    assert_eq!(done.body["action"], "incoming");
}

#[test]
fn idempotency_key_returns_the_same_operation() {
    let d = Daemon::start();
    let body = br#"{"type":"sync","integration":"github","connection_id":"c1"}"#;
    let key = [("Idempotency-Key", "run-2026-11-25-0001")];
    let first = d.raw("POST", OPS, Some(PROD_KEY), &key, Some(body));
    let second = d.raw("POST", OPS, Some(PROD_KEY), &key, Some(body));
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(
        second
            .headers
            .get("idempotent-replayed")
            .map(String::as_str),
        Some("true")
    );
    assert!(!first.headers.contains_key("idempotent-replayed"));

    let other_body = br#"{"type":"sync","integration":"gitlab"}"#;
    let reused = d.raw("POST", OPS, Some(PROD_KEY), &key, Some(other_body));
    assert_eq!(
        (reused.status, reused.code()),
        (422, "idempotency_key_reused")
    );

    // Keys are per environment.
    let dev = d.raw(
        "POST",
        "/v1/environments/dev/operations",
        Some(DEV_KEY),
        &key,
        Some(body),
    );
    assert_eq!(dev.status, 201);
    assert_ne!(dev.body["id"], first.body["id"]);

    // Concurrent retries of one request still make one operation.
    let ids: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let key = [("Idempotency-Key", "concurrent-key-1")];
                    d.raw("POST", OPS, Some(PROD_KEY), &key, Some(body)).body["id"].clone()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids[0].is_string());
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
}

#[test]
fn sweeper_times_out_overdue_operations() {
    let d = Daemon::start_with(|c| {
        c.deadlines.sweep_every = opslog::config::HumanDuration(Duration::from_millis(20));
        c.deadlines.action = opslog::config::HumanDuration(Duration::from_millis(300));
    });
    let overdue = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "script": "slow"}),
    );
    let waiting = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "state": "waiting"}),
    );
    let ended = d.start_operation("prod", PROD_KEY, &json!({"type": "action"}));
    assert_eq!(
        d.patch(
            &format!("{OPS}/{ended}"),
            PROD_KEY,
            &json!({"state": "cancelled"})
        )
        .status,
        200
    );

    let op = eventually(Duration::from_secs(20), || {
        let op = d.get(&format!("{OPS}/{overdue}"), PROD_KEY).body;
        (op["state"] == "timeout").then_some(op)
    });
    assert!(op["ended_at"].is_string());
    assert!(op["error"]["message"]
        .as_str()
        .unwrap()
        .contains("deadline"));
    let late_end = d.patch(
        &format!("{OPS}/{overdue}"),
        PROD_KEY,
        &json!({"state": "success"}),
    );
    assert_eq!(late_end.status, 409, "a timeout is an end like any other");
    assert_eq!(
        d.get(&format!("{OPS}/{waiting}"), PROD_KEY).body["state"],
        "waiting",
        "sync deadline is 24h"
    );
    assert_eq!(
        d.get(&format!("{OPS}/{ended}"), PROD_KEY).body["state"],
        "cancelled"
    );
    let metrics = d.raw("GET", "/metrics", None, &[], None).text;
    assert!(
        metrics.contains("opslog_operations_ended_total{state=\"timeout\"} 1"),
        "{metrics}"
    );
}

#[test]
fn data_survives_a_graceful_restart() {
    let d = Daemon::start();
    let id = d.start_operation(
        "dev",
        DEV_KEY,
        &json!({"type": "proxy", "integration": "hubspot"}),
    );
    let posted = d.post(
        &format!("/v1/environments/dev/operations/{id}/messages"),
        DEV_KEY,
        &json!({"message": "kept"}),
    );
    assert_eq!(posted.status, 201);
    let dir = d.stop();
    let d = Daemon::start_with(|c| c.server.data_dir = dir.path().to_owned());
    let messages = d.get(
        &format!("/v1/environments/dev/operations/{id}/messages"),
        DEV_KEY,
    );
    assert_eq!(messages.body["data"][0]["message"], "kept");
    assert_eq!(messages.body["data"][0]["id"], posted.body["id"]);
    drop(dir);
}

#[test]
fn appends_with_prefer_return_minimal_answer_204_and_keep_everything() {
    let d = Daemon::start();
    // An operation that has ended: its messages are packed into blocks as they arrive.
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "state": "success"}),
    );
    let path = format!("{OPS}/{id}/messages");
    let batch = |from: usize, n: usize| -> Vec<u8> {
        let messages: Vec<Value> = (from..from + n)
            .map(|i| json!({"message": format!("line {i}"), "level": "info"}))
            .collect();
        serde_json::to_vec(&messages).unwrap()
    };
    let minimal = [("Prefer", "return=minimal")];
    let reply = d.raw("POST", &path, Some(PROD_KEY), &minimal, Some(&batch(0, 30)));
    assert_eq!((reply.status, reply.text.as_str()), (204, ""));
    assert_eq!(
        reply.headers.get("preference-applied").map(String::as_str),
        Some("return=minimal")
    );
    // One object, the preference among others, in any case and quoted.
    let reply = d.raw(
        "POST",
        &path,
        Some(PROD_KEY),
        &[("Prefer", "respond-async, RETURN=\"minimal\"")],
        Some(br#"{"message": "line 30"}"#),
    );
    assert_eq!(reply.status, 204, "{}", reply.text);
    // Across operations.
    let across: Vec<Value> = (31..40)
        .map(|i| json!({"operation_id": id, "message": format!("line {i}")}))
        .collect();
    let reply = d.raw(
        "POST",
        "/v1/environments/prod/messages",
        Some(PROD_KEY),
        &minimal,
        Some(&serde_json::to_vec(&across).unwrap()),
    );
    assert_eq!((reply.status, reply.text.as_str()), (204, ""));
    // Without it, or with another return preference, the stored messages come back.
    let reply = d.raw(
        "POST",
        &path,
        Some(PROD_KEY),
        &[("Prefer", "return=representation")],
        Some(&batch(40, 2)),
    );
    assert_eq!(reply.status, 201);
    assert_eq!(reply.body["data"][1]["message"], "line 41");
    assert!(!reply.headers.contains_key("preference-applied"));
    // Refused input is still refused, and stores nothing.
    let reply = d.raw(
        "POST",
        &path,
        Some(PROD_KEY),
        &minimal,
        Some(br#"[{"message": "fine"}, {"level": "loud"}]"#),
    );
    assert_eq!((reply.status, reply.code()), (400, "invalid_field"));

    let page = d.get(&format!("{path}?limit=100"), PROD_KEY);
    let texts: Vec<&str> = page.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..42).map(|i| format!("line {i}")).collect();
    assert_eq!(texts, expected);
    let op = d.get(&format!("{OPS}/{id}"), PROD_KEY);
    assert_eq!(op.body["message_count"], 42);
}

/// An operation and its first messages in one request, and several such at once: stored in one
/// commit, counted, read back in order, searchable; a bad message refuses the whole request.
#[test]
fn operations_are_created_with_their_first_messages_alone_or_several_at_once() {
    let d = Daemon::start();
    let one = d.post(
        OPS,
        PROD_KEY,
        &json!({"type": "proxy", "integration": "github", "state": "success", "messages": [
            {"message": "calling the API"},
            {"request": {"method": "GET", "url": "https://api.github.com/user"},
             "response": {"status": 401}},
            {"level": "warn", "message": "credentials rejected: cabbage"}
        ]}),
    );
    assert_eq!(one.status, 201, "{}", one.text);
    assert_eq!(one.body["message_count"], 3);
    let id = one.body["id"].as_str().unwrap();
    let messages = d.get(&format!("{OPS}/{id}/messages"), PROD_KEY);
    let levels: Vec<&str> = messages.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["info", "error", "warn"], "{}", messages.text);

    let many: Vec<Value> = (0..3)
        .map(|i| {
            json!({"type": "webhook", "integration": format!("hook{i}"), "state": "success",
                   "messages": (0..=i).map(|m| json!({"message": format!("turnip {i}.{m}")}))
                       .collect::<Vec<_>>()})
        })
        .collect();
    let reply = d.post(OPS, PROD_KEY, &Value::Array(many.clone()));
    assert_eq!(reply.status, 201, "{}", reply.text);
    let counts: Vec<u64> = reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["message_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(reply.body["total"], 3);
    let minimal = d.raw(
        "POST",
        OPS,
        Some(PROD_KEY),
        &[("Prefer", "return=minimal")],
        Some(&serde_json::to_vec(&many).unwrap()),
    );
    assert_eq!((minimal.status, minimal.text.as_str()), (204, ""));
    eventually(Duration::from_secs(10), || {
        let found = d.get("/v1/environments/prod/messages?q=turnip", PROD_KEY);
        (found.body["total"] == 12).then_some(())
    });
    let found = d.get("/v1/environments/prod/messages?q=cabbage", PROD_KEY);
    assert_eq!(
        found.body["data"][0]["operation"]["id"], id,
        "{}",
        found.text
    );

    // Refused as a whole, naming the item and the message.
    let before = d.get(&format!("{OPS}?limit=1"), PROD_KEY).body["total"].clone();
    let mut bad = many.clone();
    bad[1]["messages"][1]["level"] = json!("loud");
    let refused = d.post(OPS, PROD_KEY, &Value::Array(bad));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        refused.body["error"]["field"], "[1].messages[1].level",
        "{}",
        refused.text
    );
    let named = d.post(
        OPS,
        PROD_KEY,
        &json!({"type": "sync", "messages": [{"operation_id": id, "message": "x"}]}),
    );
    assert_eq!(named.status, 400, "{}", named.text);
    assert_eq!(named.body["error"]["field"], "messages[0].operation_id");
    let keyed = d.raw(
        "POST",
        OPS,
        Some(PROD_KEY),
        &[("Idempotency-Key", "bulk-1")],
        Some(&serde_json::to_vec(&many).unwrap()),
    );
    assert_eq!(keyed.status, 400, "{}", keyed.text);
    let lines: Vec<Value> = (0..1001)
        .map(|i| json!({"message": format!("l{i}")}))
        .collect();
    let too_many = d.post(
        OPS,
        PROD_KEY,
        &json!([{"type": "sync", "messages": lines[..600]}, {"type": "sync", "messages": lines[600..]}]),
    );
    assert_eq!(too_many.status, 400, "{}", too_many.text);
    assert_eq!(too_many.code(), "batch_too_large");
    let after = d.get(&format!("{OPS}?limit=1"), PROD_KEY).body["total"].clone();
    assert_eq!(after, before, "nothing of a refused request was stored");
}
