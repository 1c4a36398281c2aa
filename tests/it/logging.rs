//! `opslog serve --log-format json`: every line the daemon writes to stderr is one JSON object
//! with `level`, `message` and `target`, and no secret from the config or the requests appears.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::collector::Collector;
use crate::process::{agent, call};
use crate::receiver::{Answer, Receiver};
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_opslog");
const WEBHOOK_SECRET: &str = "whsec_bG9nLWZvcm1hdC10ZXN0LXNlY3JldC1ieXRlcw==";
const OTEL_HEADER: &str = "otel-header-secret-4f1c2e";
const WRONG_TOKEN: &str = "a-wrong-token-that-must-not-be-logged";

#[test]
fn json_logs_are_one_object_per_line_without_secrets() {
    // The first webhook attempt fails, so the daemon logs the retry.
    let receiver = Receiver::start(|_, i| {
        if i == 0 {
            Answer::Status(500, "busy")
        } else {
            Answer::Status(200, "ok")
        }
    });
    let collector = Collector::start(Vec::new());
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

[environments.prod.webhooks]
url = "{url}"
secret = "{WEBHOOK_SECRET}"
retry_schedule = ["0s", "100ms"]

[environments.prod.otel]
endpoint = "{otel}"
headers = {{ "x-api-key" = "{OTEL_HEADER}" }}
"#,
            data = dir.path().join("data").display(),
            url = receiver.url(),
            otel = collector.url(""),
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "opslog=debug,info")
        .env_remove("OPSLOG_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn opslog");
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).unwrap();
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let base = first
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .trim()
        .to_owned();

    let agent = agent();
    let ops = format!("{base}/v1/environments/prod/operations");
    let (status, op) = call(&agent, "POST", &ops, Some(&json!({"type": "sync"}))).unwrap();
    assert_eq!(status, 201);
    let id = op["id"].as_str().unwrap();
    let end = json!({"state": "success"});
    let (status, _) = call(&agent, "PATCH", &format!("{ops}/{id}"), Some(&end)).unwrap();
    assert_eq!(status, 200);
    receiver.wait_for(2, Duration::from_secs(30));
    let wrong = agent
        .get(&ops)
        .header("authorization", format!("Bearer {WRONG_TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(wrong.status(), 401);

    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let text = logs.join().unwrap();

    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        let level = line["level"].as_str().unwrap_or_default();
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line}"
        );
        assert!(
            !line["message"].as_str().unwrap_or_default().is_empty(),
            "{line}"
        );
        assert!(
            line["target"].as_str().is_some_and(|t| !t.is_empty()),
            "{line}"
        );
        assert!(line["timestamp"].is_string(), "{line}");
    }
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    for expected in [
        "opslog listening",
        "webhook attempt not delivered",
        "opslog stopped",
    ] {
        assert!(
            messages.contains(&expected),
            "no `{expected}` in {messages:?}"
        );
    }
    let listening = lines
        .iter()
        .find(|l| l["message"] == "opslog listening")
        .unwrap();
    assert_eq!(
        listening["addr"],
        base.trim_start_matches("http://"),
        "fields are top-level"
    );
    for secret in [ADMIN, PROD_KEY, WEBHOOK_SECRET, OTEL_HEADER, WRONG_TOKEN] {
        assert!(!text.contains(secret), "a secret is in the logs: {secret}");
    }
}

/// `opslog serve > file 2>&1`: text logs written to a file carry no terminal colour codes.
#[test]
fn text_logs_to_a_file_have_no_colour_codes() {
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
"#,
            data = dir.path().join("data").display(),
        ),
    )
    .unwrap();
    let log_path = dir.path().join("opslog.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "opslog=debug,info")
        .env_remove("NO_COLOR")
        .env_remove("OPSLOG_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("spawn opslog");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let base = first
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .trim()
        .to_owned();
    let agent = agent();
    let ops = format!("{base}/v1/environments/prod/operations");
    let (status, _) = call(&agent, "POST", &ops, Some(&json!({"type": "sync"}))).unwrap();
    assert_eq!(status, 201);

    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        text.contains("opslog listening") && text.contains("opslog stopped"),
        "{text}"
    );
    assert!(text.contains("INFO"), "levels are written as words: {text}");
    assert!(
        !text.contains("\x1b["),
        "colour codes in a log file: {text:?}"
    );
}
