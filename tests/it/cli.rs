//! The query commands (`search`, `ops`, `tail`) of the release binary against an in-process
//! daemon: what they print (columns and `--json` lines), how they fail, and that `tail` shows a
//! message posted while it runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_opslog");

fn opslog(d: &Daemon, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--url", &d.base, "--env", "prod"])
        .env("OPSLOG_TOKEN", token)
        .env_remove("OPSLOG_URL")
        .env_remove("OPSLOG_ENV")
        .output()
        .expect("run opslog")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A failed github sync with three messages and a successful slack action, all searchable.
fn seed(d: &Daemon) -> (String, String) {
    let sync = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues"}),
    );
    let reply = d.post(
        &format!("/v1/environments/prod/operations/{sync}/messages"),
        PROD_KEY,
        &json!([
            {"message": "fetching issues since monday"},
            {"level": "warn", "message": "rate limit close, slowing down"},
            {"level": "error", "message": "rate limit exceeded\ngiving up"}
        ]),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let patch = d.patch(
        &format!("/v1/environments/prod/operations/{sync}"),
        PROD_KEY,
        &json!({"state": "failed", "error": {"message": "rate limited"}}),
    );
    assert_eq!(patch.status, 200, "{}", patch.text);
    let action = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "slack", "connection_id": "beta", "script": "post"}),
    );
    eventually(Duration::from_secs(10), || {
        let r = d.get("/v1/environments/prod/messages?q=rate", PROD_KEY);
        (r.body["total"] == 2).then_some(())
    });
    eventually(Duration::from_secs(10), || {
        let r = d.get("/v1/environments/prod/operations", PROD_KEY);
        (r.body["total"] == 2).then_some(())
    });
    (sync, action)
}

#[test]
fn search_prints_matching_messages_in_columns_and_as_json() {
    let d = Daemon::start();
    seed(&d);
    let out = stdout(&opslog(&d, PROD_KEY, &["search", "rate limit"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    // Newest first; the operation's kind and integration shown; newlines flattened.
    assert!(lines[0].contains("error") && lines[0].ends_with("rate limit exceeded giving up"));
    assert!(lines[1].contains("warn") && lines[1].contains("rate limit close"));
    for line in &lines {
        assert!(line.contains("sync:run") && line.contains("github") && line.contains("acme"));
    }
    // Columns are aligned: the message starts at the same place on every line.
    let start = |l: &str| l.find("rate limit").unwrap();
    assert_eq!(start(lines[0]), start(lines[1]), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no colors when stdout is not a terminal"
    );

    let out = stdout(&opslog(
        &d,
        PROD_KEY,
        &[
            "search", "rate", "--level", "error", "--since", "1h", "--json",
        ],
    ));
    let hits = json_lines(&out);
    assert_eq!(hits.len(), 1, "{out}");
    assert_eq!(hits[0]["message"], "rate limit exceeded\ngiving up");
    assert_eq!(hits[0]["operation"]["integration"], "github");

    let out = stdout(&opslog(&d, PROD_KEY, &["search", "--integration", "slack"]));
    assert_eq!(out, "", "the slack action has no messages");
    let out = stdout(&opslog(&d, PROD_KEY, &["search", "--limit", "1", "--json"]));
    assert_eq!(json_lines(&out).len(), 1);
}

#[test]
fn ops_lists_operations_with_filters() {
    let d = Daemon::start();
    let (sync, action) = seed(&d);
    let out = stdout(&opslog(&d, PROD_KEY, &["ops"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains(&action) && lines[0].contains("running"));
    assert!(lines[1].contains(&sync) && lines[1].contains("failed"));
    assert!(lines[1].contains("sync:run") && lines[1].contains("issues"));

    let out = stdout(&opslog(
        &d,
        PROD_KEY,
        &["ops", "--state", "failed", "--json"],
    ));
    let ops = json_lines(&out);
    assert_eq!(ops.len(), 1, "{out}");
    assert_eq!(ops[0]["id"], sync.as_str());
    assert_eq!(ops[0]["error"]["message"], "rate limited");

    // Full text over an operation's messages finds the operation.
    let out = stdout(&opslog(&d, PROD_KEY, &["ops", "-q", "monday", "--json"]));
    assert_eq!(json_lines(&out)[0]["id"], sync.as_str());
    let out = stdout(&opslog(
        &d,
        PROD_KEY,
        &[
            "ops",
            "--integration",
            "slack",
            "--type",
            "action",
            "--since",
            "10m",
        ],
    ));
    assert!(out.contains(&action) && !out.contains(&sync), "{out}");
}

/// The query commands offer every filter of the endpoint they read (`opslog::query_params`):
/// `ops` those of `GET /operations`, `search` those of `GET /messages`, each as `--<name>`.
#[test]
fn every_filter_of_the_endpoint_is_a_flag() {
    use opslog::query_params::Endpoint;
    let d = Daemon::start();
    let tagged = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "hubspot", "connection_id": "c-1",
                "script": "create-contact", "end_user": {"id": "user-7"},
                "tags": {"plan": "pro", "region": "eu"}}),
    );
    let reply = d.post(
        &format!("/v1/environments/prod/operations/{tagged}/messages"),
        PROD_KEY,
        &json!([{"level": "error", "message": "contact refused"}]),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let other = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "hubspot", "connection_id": "c-1",
                "script": "create-contact", "end_user": {"id": "user-8"},
                "tags": {"plan": "free"}}),
    );
    let reply = d.post(
        &format!("/v1/environments/prod/operations/{other}/messages"),
        PROD_KEY,
        &json!([{"level": "error", "message": "contact refused"}]),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    eventually(Duration::from_secs(10), || {
        let r = d.get("/v1/environments/prod/messages?q=refused", PROD_KEY);
        (r.body["total"] == 2).then_some(())
    });

    for (command, endpoint) in [
        ("ops", Endpoint::Operations),
        ("search", Endpoint::Messages),
    ] {
        let help = stdout(&opslog(&d, PROD_KEY, &[command, "--help"]));
        for filter in endpoint.filters() {
            let flag = format!("--{}", filter.name.replace('_', "-"));
            assert!(
                help.contains(&flag),
                "`opslog {command}` has no {flag}:\n{help}"
            );
        }
        let ids = |args: &[&str]| -> Vec<String> {
            let mut all = vec![command, "--json"];
            all.extend_from_slice(args);
            json_lines(&stdout(&opslog(&d, PROD_KEY, &all)))
                .iter()
                .map(|v| match command {
                    "ops" => v["id"].as_str().unwrap().to_owned(),
                    _ => v["operation"]["id"].as_str().unwrap().to_owned(),
                })
                .collect()
        };
        let matching = vec![tagged.clone()];
        assert_eq!(ids(&["--end-user-id", "user-7"]), matching, "{command}");
        assert_eq!(ids(&["--tag", "plan:pro"]), matching, "{command}");
        assert_eq!(
            ids(&[
                "--tag",
                "plan:pro",
                "--tag",
                "plan:free",
                "--tag",
                "region:eu"
            ]),
            matching,
            "{command}: tags of one key OR-ed, of different keys AND-ed"
        );
        assert_eq!(
            ids(&[
                "--integration",
                "hubspot",
                "--connection-id",
                "c-1",
                "--script",
                "create-contact",
                "--type",
                "action",
                "--state",
                "running",
                "--end-user-id",
                "user-7",
            ]),
            matching,
            "{command}"
        );
    }
    let levels = |level: &str| {
        json_lines(&stdout(&opslog(
            &d,
            PROD_KEY,
            &[
                "search",
                "--json",
                "--level",
                level,
                "--message-type",
                "log",
            ],
        )))
        .len()
    };
    assert_eq!((levels("error"), levels("warn")), (2, 0));
    let out = opslog(&d, PROD_KEY, &["ops", "--level", "error"]);
    assert_eq!(out.status.code(), Some(2), "operations have no level");
}

#[test]
fn api_errors_are_printed_with_their_message_and_fail() {
    let d = Daemon::start();
    let out = opslog(&d, "not-a-key", &["search", "x"]);
    assert_eq!(out.status.code(), Some(3), "a refused token exits 3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown API key or admin token"), "{err}");
    assert!(out.stdout.is_empty());

    let out = opslog(&d, PROD_KEY, &["search", "github OR"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OR needs a search term on each side"), "{err}");

    let out = opslog(&d, PROD_KEY, &["ops", "--state", "done"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`done` is not one of"));

    let out = Command::new(BIN)
        .args(["ops", "--url", &d.base])
        .env_remove("OPSLOG_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token or set OPSLOG_TOKEN"));

    // Nothing listens on port 9 of loopback.
    let out = Command::new(BIN)
        .args(["ops", "--url", "http://127.0.0.1:9", "--token", PROD_KEY])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach opslog"));
}

/// Starts `opslog tail ARGS --json` and returns a reader of its stdout lines.
fn spawn_tail(
    d: &Daemon,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("tail")
        .args(args)
        .args([
            "--url",
            &d.base,
            "--json",
            "--interval",
            "100ms",
            "--for",
            "60s",
        ])
        .env("OPSLOG_TOKEN", PROD_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn next_line(rx: &std::sync::mpsc::Receiver<String>) -> Value {
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tail printed a line");
    serde_json::from_str(&line).unwrap()
}

#[test]
fn tail_prints_messages_posted_after_it_started() {
    let d = Daemon::start();
    let (sync, _) = seed(&d);
    // History: the newest message (`--lines 1`); then it follows until it printed 3 in all.
    let (mut child, rx) = spawn_tail(
        &d,
        &["--lines", "1", "--max", "3", "--integration", "github"],
    );
    assert_eq!(next_line(&rx)["message"], "rate limit exceeded\ngiving up");
    // Printed history means the first poll is done: everything from here on is new.
    let other = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "jira"}),
    );
    for (op, text) in [
        (&other, "filtered out"),
        (&sync, "late one"),
        (&sync, "later one"),
    ] {
        let r = d.post(
            &format!("/v1/environments/prod/operations/{op}/messages"),
            PROD_KEY,
            &json!({"message": text}),
        );
        assert_eq!(r.status, 201);
    }
    assert_eq!(next_line(&rx)["message"], "late one");
    assert_eq!(next_line(&rx)["message"], "later one");
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "tail stops after --max messages: {status:?}"
    );
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_err(),
        "nothing more"
    );
}

#[test]
fn tail_follows_one_operation_from_its_start() {
    let d = Daemon::start();
    let (sync, _) = seed(&d);
    let (mut child, rx) = spawn_tail(&d, &["--operation", &sync, "--max", "4"]);
    let texts: Vec<Value> = (0..3).map(|_| next_line(&rx)["message"].clone()).collect();
    assert_eq!(
        texts,
        [
            "fetching issues since monday",
            "rate limit close, slowing down",
            "rate limit exceeded\ngiving up"
        ]
    );
    let r = d.post(
        &format!("/v1/environments/prod/operations/{sync}/messages"),
        PROD_KEY,
        &json!({"message": "after the end"}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(next_line(&rx)["message"], "after the end");
    assert!(child.wait().unwrap().success());
}

#[test]
fn tail_stops_after_its_duration() {
    let d = Daemon::start();
    let out = Command::new(BIN)
        .args([
            "tail",
            "--url",
            &d.base,
            "--for",
            "300ms",
            "--interval",
            "50ms",
        ])
        .env("OPSLOG_TOKEN", PROD_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}
