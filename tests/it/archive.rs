//! Export, import and backup: `opslog export` of a running daemon read back by `opslog import`
//! into a fresh one (field by field, ids kept, a second import adds nothing), refusals that say
//! what to fix, and a backup of a running daemon restored into a new data dir.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::receiver::Receiver;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_opslog");
const PROD: &str = "/v1/environments/prod";

/// Writes operations of every shape into prod (and one into dev), with webhooks delivered to
/// `receiver`; returns the prod operation ids.
pub fn seed(d: &Daemon, receiver: &Receiver) -> Vec<String> {
    let put = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"url": receiver.url(), "events": ["sync.completed", "auth.failed"], "retry_schedule": ["0s", "1s"]}}),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    let mut ids = Vec::new();
    let sync = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme",
                "script": "issues", "provider": "github-app", "meta": {"page": 3, "tags": ["a", "b"]},
                "trace_context": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                  "tracestate": "congo=t61rcWkgMzE"}}),
    );
    let messages = json!([
        {"message": "fetched 100 issues", "level": "info", "meta": {"cursor": "abc"}},
        {"type": "http", "message": "GET /repos/acme/issues", "duration_ms": 120,
         "request": {"method": "GET", "url": "https://api.github.com/repos/acme/issues", "headers": {"accept": "application/json"}},
         "response": {"status": 429, "headers": {"retry-after": "30"}, "body": {"message": "slow down"}},
         "retry": {"attempt": 1, "max": 3, "waited_ms": 30000}},
        {"message": "gave up", "level": "error", "source": "user",
         "error": {"name": "RateLimit", "message": "too many requests", "type": "http", "payload": {"status": 429}}},
        {"message": "kept for the record", "level": "debug", "created_at": "2026-01-02T03:04:05.678Z"}
    ]);
    let posted = d.post(
        &format!("{PROD}/operations/{sync}/messages"),
        PROD_KEY,
        &messages,
    );
    assert_eq!(posted.status, 201, "{}", posted.text);
    let ended = d.patch(
        &format!("{PROD}/operations/{sync}"),
        PROD_KEY,
        &json!({"state": "success", "records": [{"model": "Issue", "added": 3, "updated": 1, "deleted": 0}]}),
    );
    assert_eq!(ended.status, 200, "{}", ended.text);
    ids.push(sync);
    let auth = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "action": "refresh_token", "integration": "salesforce", "connection_id": "globex"}),
    );
    let failed = d.patch(
        &format!("{PROD}/operations/{auth}"),
        PROD_KEY,
        &json!({"state": "failed", "error": {"message": "invalid_grant"}}),
    );
    assert_eq!(failed.status, 200, "{}", failed.text);
    ids.push(auth);
    ids.push(d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "hubspot", "state": "running", "message": "create contact"}),
    ));
    d.start_operation(
        "dev",
        DEV_KEY,
        &json!({"type": "sync", "integration": "dev-only"}),
    );
    // Both events (sync.completed and auth.failed) are delivered before the seed is done.
    eventually(Duration::from_secs(30), || {
        let list = d.get(&format!("{PROD}/deliveries?status=delivered"), PROD_KEY);
        (list.body["total"] == 2).then_some(())
    });
    ids
}

/// prod's operations in `seed`: three, and the `webhook:deliver` log of each of two deliveries.
pub const SEEDED_OPERATIONS: usize = 5;
/// prod's messages in `seed`: four, and one `http` message per delivery attempt.
const SEEDED_MESSAGES: usize = 6;

/// Every operation of prod with its messages, as the API shows them, oldest first, once the
/// list (served by the search index, which may still be catching up) shows `count` of them.
pub fn snapshot(d: &Daemon, count: usize) -> Vec<(Value, Vec<Value>)> {
    let list = eventually(Duration::from_secs(30), || {
        let list = d.get(&format!("{PROD}/operations?limit=500"), PROD_KEY);
        (list.status == 200 && list.body["data"].as_array()?.len() == count).then_some(list)
    });
    let mut out: Vec<(Value, Vec<Value>)> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            let id = op["id"].as_str().unwrap();
            let messages = d.get(
                &format!("{PROD}/operations/{id}/messages?limit=500"),
                PROD_KEY,
            );
            assert_eq!(messages.status, 200, "{}", messages.text);
            (
                op.clone(),
                messages.body["data"].as_array().unwrap().clone(),
            )
        })
        .collect();
    out.reverse();
    out
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("OPSLOG_TOKEN")
        .env_remove("OPSLOG_URL")
        .env_remove("OPSLOG_ENV")
        .output()
        .expect("run opslog")
}

fn export_to(d: &Daemon, file: &Path) {
    let out = cli(&[
        "export",
        "--url",
        &d.base,
        "--token",
        PROD_KEY,
        "--env",
        "prod",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "exported {SEEDED_OPERATIONS} operations and {SEEDED_MESSAGES} messages"
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(file).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600, "an export holds log lines: its owner's alone");
}

fn import_from(d: &Daemon, file: &Path) -> (std::process::Output, Value) {
    let out = cli(&[
        "import",
        "--url",
        &d.base,
        "--token",
        ADMIN,
        "--env",
        "prod",
        "--json",
        "--batch-bytes",
        "1500",
        file.to_str().unwrap(),
    ]);
    let counts = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, counts)
}

#[test]
fn export_and_import_round_trip_field_by_field_and_twice_adds_nothing() {
    let receiver = Receiver::ok();
    let source = Daemon::start();
    seed(&source, &receiver);
    let original = snapshot(&source, SEEDED_OPERATIONS);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prod.ndjson");
    export_to(&source, &file);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("dev-only"), "only the environment asked for");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), SEEDED_OPERATIONS + SEEDED_MESSAGES + 1);
    assert_eq!(
        lines.last().unwrap(),
        &json!({"end": {"operations": SEEDED_OPERATIONS, "messages": SEEDED_MESSAGES}})
    );

    let target = Daemon::start();
    // Small batches: the sync's messages arrive in requests after the one with their operation.
    let (out, first) = import_from(&target, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        first,
        json!({"operations_added": SEEDED_OPERATIONS, "operations_skipped": 0,
               "messages_added": SEEDED_MESSAGES, "messages_skipped": 0})
    );
    let imported = snapshot(&target, SEEDED_OPERATIONS);
    for ((op_a, msgs_a), (op_b, msgs_b)) in original.iter().zip(&imported) {
        assert_eq!(op_a, op_b, "operations are equal field by field");
        assert_eq!(msgs_a, msgs_b, "messages are equal field by field");
    }
    // Imported history is searchable, and it caused no webhooks.
    eventually(Duration::from_secs(10), || {
        let hits = target.get(&format!("{PROD}/messages?q=gave"), PROD_KEY);
        (hits.body["total"] == 1).then_some(())
    });
    // The trace the sync was started in came along: the sync and the log of its delivery (a
    // child of its span) are in it.
    assert_eq!(
        original[0].0["trace_context"]["tracestate"], "congo=t61rcWkgMzE",
        "{}",
        original[0].0
    );
    eventually(Duration::from_secs(10), || {
        let traced = target.get(
            &format!("{PROD}/operations?trace_id=4BF92F3577B34DA6A3CE929D0E0E4736"),
            PROD_KEY,
        );
        (traced.body["total"] == 2).then_some(())
    });
    assert_eq!(
        target.get(&format!("{PROD}/deliveries"), PROD_KEY).body["total"],
        0
    );

    let (out, second) = import_from(&target, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        second,
        json!({"operations_added": 0, "operations_skipped": SEEDED_OPERATIONS,
               "messages_added": 0, "messages_skipped": SEEDED_MESSAGES})
    );
    assert_eq!(
        snapshot(&target, SEEDED_OPERATIONS),
        imported,
        "a second import changes nothing"
    );
}

#[test]
fn imports_refuse_truncated_files_bad_lines_and_environment_keys() {
    let receiver = Receiver::ok();
    let source = Daemon::start();
    seed(&source, &receiver);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prod.ndjson");
    export_to(&source, &file);
    let text = std::fs::read_to_string(&file).unwrap();
    let truncated = dir.path().join("truncated.ndjson");
    let cut: Vec<&str> = text.lines().take(4).collect();
    std::fs::write(&truncated, cut.join("\n")).unwrap();
    let target = Daemon::start();
    let (out, _) = import_from(&target, &truncated);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("truncated"), "{stderr}");
    assert_eq!(
        target.get(&format!("{PROD}/operations"), PROD_KEY).body["total"],
        0,
        "nothing was sent"
    );

    let ndjson = [("content-type", "application/x-ndjson")];
    let bad = target.raw(
        "POST",
        &format!("{PROD}/import"),
        Some(ADMIN),
        &ndjson,
        Some(b"{\"end\":{\"operations\":0,\"messages\":0}}\n{\"operation\": 5}\n"),
    );
    assert_eq!((bad.status, bad.code()), (400, "invalid_import_line"));
    assert!(bad.message().starts_with("line 2:"), "{}", bad.message());
    let line = text.lines().next().unwrap();
    let key = target.raw(
        "POST",
        &format!("{PROD}/import"),
        Some(PROD_KEY),
        &ndjson,
        Some(line.as_bytes()),
    );
    assert_eq!((key.status, key.code()), (403, "insufficient_scope"));
    let wrong_type = target.raw(
        "POST",
        &format!("{PROD}/import"),
        Some(ADMIN),
        &[("content-type", "text/csv")],
        Some(line.as_bytes()),
    );
    assert_eq!(wrong_type.status, 415);
    // A message whose operation is neither stored nor in the request writes nothing.
    let orphan = text.lines().nth(1).unwrap();
    let refused = target.raw(
        "POST",
        &format!("{PROD}/import"),
        Some(ADMIN),
        &ndjson,
        Some(format!("{}\n{orphan}\n", text.lines().nth(5).unwrap()).as_bytes()),
    );
    assert_eq!(
        (refused.status, refused.code()),
        (404, "operation_not_found")
    );
    assert_eq!(
        target.get(&format!("{PROD}/operations"), PROD_KEY).body["total"],
        0
    );

    // The same lines as one JSON array (what an OpenAPI client generates) import alike.
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let as_json = target.raw(
        "POST",
        &format!("{PROD}/import"),
        Some(ADMIN),
        &[("content-type", "application/json")],
        Some(serde_json::to_string(&lines).unwrap().as_bytes()),
    );
    assert_eq!(as_json.status, 200, "{}", as_json.text);
    assert_eq!(as_json.body["operations_added"], SEEDED_OPERATIONS);
    assert_eq!(as_json.body["messages_added"], SEEDED_MESSAGES);
    let not_array = target.raw(
        "POST",
        &format!("{PROD}/import"),
        Some(ADMIN),
        &[("content-type", "application/json")],
        Some(lines[0].to_string().as_bytes()),
    );
    assert_eq!((not_array.status, not_array.code()), (400, "invalid_json"));
    let window = source.get(&format!("{PROD}/export?from=yesterday"), PROD_KEY);
    assert_eq!((window.status, window.code()), (400, "invalid_query"));
}

#[test]
fn a_backup_of_a_running_daemon_restores_everything() {
    let receiver = Receiver::ok();
    let source = Daemon::start();
    seed(&source, &receiver);
    let refused = source.get("/v1/backup", PROD_KEY);
    assert_eq!(
        (refused.status, refused.code()),
        (403, "insufficient_scope")
    );
    let response = source
        .agent
        .get(source.url("/v1/backup"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    // Writes go on while (and after) the backup is taken; they are not in it.
    source.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "later"}),
    );

    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::write(restored_dir.path().join("opslog.redb"), &bytes).unwrap();
    let path = restored_dir.path().to_owned();
    let restored = Daemon::start_with(move |c| c.server.data_dir = path);
    let before = snapshot(&source, SEEDED_OPERATIONS + 1);
    let after = snapshot(&restored, SEEDED_OPERATIONS);
    assert_eq!(&before[..SEEDED_OPERATIONS], &after[..]);
    let settings = restored.get(&format!("{PROD}/settings"), ADMIN);
    assert_eq!(settings.body["webhooks"]["url"], receiver.url());
    let deliveries = |d: &Daemon| d.get(&format!("{PROD}/deliveries"), ADMIN).body["data"].clone();
    assert_eq!(deliveries(&restored), deliveries(&source));
    assert_eq!(deliveries(&restored).as_array().unwrap().len(), 2);
    eventually(Duration::from_secs(10), || {
        let hits = restored.get(&format!("{PROD}/messages?q=gave"), PROD_KEY);
        (hits.body["total"] == 1).then_some(())
    });
    drop(restored);
    drop(restored_dir);
}
