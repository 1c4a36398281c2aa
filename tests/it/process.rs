//! The release binary as a child process: crash safety under SIGKILL, graceful SIGTERM, the
//! first-start banner and `check-config`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_opslog");

pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) base: String,
    banner: Vec<String>,
}

/// A test that ends (or panics) with the daemon still running must not leave it behind: it
/// would hold the test's stdout open and keep writing into a deleted temp dir.
impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write_config(dir: &Path, with_keys: bool) -> std::path::PathBuf {
    let keys = if with_keys {
        format!(
            "admin_tokens = [\"{ADMIN}\"]\n\n[environments.prod]\napi_keys = [\"{PROD_KEY}\"]\n"
        )
    } else {
        String::new()
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{keys}",
        dir.join("data").display()
    );
    let path = dir.join("opslog.toml");
    write_private(&path, text).unwrap();
    path
}

/// Starts `opslog serve` and reads stdout up to the "listening on" line (and the banner after it).
pub(crate) fn spawn(config: &Path) -> Process {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .env_remove("OPSLOG_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn opslog");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("opslog printed its address");
    let base = first
        .split("listening on ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .trim()
        .to_owned();
    let mut banner = vec![first];
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        banner.push(line);
    }
    Process {
        child,
        base,
        banner,
    }
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub(crate) fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), ureq::Error> {
    let builder = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {PROD_KEY}"))
        .header("content-type", "application/json");
    let response = match body {
        Some(b) => agent.run(builder.body(serde_json::to_vec(b).unwrap()).unwrap())?,
        None => agent.run(builder.body(()).unwrap())?,
    };
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let text = body.with_config().limit(64 << 20).read_to_string()?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Every message of one operation, oldest first.
fn all_messages(agent: &ureq::Agent, base: &str, op: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let url = match &cursor {
            Some(c) => {
                format!("{base}/v1/environments/prod/operations/{op}/messages?limit=500&cursor={c}")
            }
            None => format!("{base}/v1/environments/prod/operations/{op}/messages?limit=500"),
        };
        let (status, page) = call(agent, "GET", &url, None).unwrap();
        assert_eq!(status, 200, "{page}");
        out.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("too many pages");
}

#[test]
fn sigkill_mid_load_loses_no_acknowledged_message() {
    const CLIENTS: usize = 8;
    const BATCH: usize = 25;
    const ROUNDS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    let agent = agent();

    let mut process = spawn(&config);
    let ops: Vec<String> = (0..CLIENTS)
        .map(|i| {
            let (status, op) = call(
                &agent,
                "POST",
                &format!("{}/v1/environments/prod/operations", process.base),
                Some(&json!({"type": "sync", "integration": "github", "connection_id": format!("c{i}")})),
            )
            .unwrap();
            assert_eq!(status, 201);
            op["id"].as_str().unwrap().to_owned()
        })
        .collect();

    // text -> (operation, message id) of every acknowledged message
    let acked: Mutex<HashMap<String, (String, String)>> = Mutex::new(HashMap::new());
    for round in 0..ROUNDS {
        let stop = AtomicBool::new(false);
        let acked_batches = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for (client, op) in ops.iter().enumerate() {
                let (agent, base, stop, acked, acked_batches) = (
                    agent.clone(),
                    process.base.clone(),
                    &stop,
                    &acked,
                    &acked_batches,
                );
                s.spawn(move || {
                    for batch_no in 0..100_000 {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        let batch: Vec<Value> = (0..BATCH)
                            .map(|m| {
                                let text = format!("r{round} c{client} b{batch_no} m{m} payload");
                                json!({"message": text, "level": "info", "meta": {"round": round, "m": m}})
                            })
                            .collect();
                        let url = format!("{base}/v1/environments/prod/operations/{op}/messages");
                        match call(&agent, "POST", &url, Some(&Value::Array(batch))) {
                            Ok((201, reply)) => {
                                let mut acked = acked.lock().unwrap();
                                for m in reply["data"].as_array().unwrap() {
                                    let text = m["message"].as_str().unwrap().to_owned();
                                    acked.insert(text, (op.clone(), m["id"].as_str().unwrap().to_owned()));
                                }
                                acked_batches.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok((status, reply)) => panic!("unexpected {status}: {reply}"),
                            Err(_) => return, // the daemon died under us
                        }
                    }
                });
            }
            // Let load build up, then kill without warning.
            let deadline = Instant::now() + Duration::from_secs(60);
            let target = 40 + round * 20;
            while acked_batches.load(Ordering::Relaxed) < target && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                acked_batches.load(Ordering::Relaxed) >= target,
                "load did not build up"
            );
            process.child.kill().unwrap();
            process.child.wait().unwrap();
            stop.store(true, Ordering::Relaxed);
        });
        process = spawn(&config);
        let acked = acked.lock().unwrap();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for op in &ops {
            for m in all_messages(&agent, &process.base, op) {
                let text = m["message"].as_str().unwrap().to_owned();
                let parts: Vec<&str> = text.split(' ').collect();
                assert_eq!(
                    m["meta"]["m"].to_string(),
                    parts[3][1..],
                    "meta intact for {text}"
                );
                assert_eq!(m["operation_id"], op.as_str());
                *seen.entry(text).or_default() += 1;
            }
        }
        for (text, (op, id)) in acked.iter() {
            assert_eq!(
                seen.get(text),
                Some(&1),
                "acknowledged `{text}` ({op}/{id}) must be there exactly once"
            );
        }
        assert!(seen.values().all(|n| *n == 1), "no message is stored twice");
        eprintln!(
            "round {round}: {} acknowledged, {} stored",
            acked.len(),
            seen.len()
        );
    }
    // The operations' counters agree with what is stored.
    for op in &ops {
        let (_, body) = call(
            &agent,
            "GET",
            &format!("{}/v1/environments/prod/operations/{op}", process.base),
            None,
        )
        .unwrap();
        let stored = all_messages(&agent, &process.base, op).len();
        assert_eq!(body["message_count"], stored as u64);
    }
    process.child.kill().unwrap();
    process.child.wait().unwrap();
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    let mut process = spawn(&config);
    let agent = agent();
    let (status, op) = call(
        &agent,
        "POST",
        &format!("{}/v1/environments/prod/operations", process.base),
        Some(&json!({"type": "action"})),
    )
    .unwrap();
    assert_eq!(status, 201);
    let pid = process.child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let process = spawn(&config);
    let (status, again) = call(
        &agent,
        "GET",
        &format!(
            "{}/v1/environments/prod/operations/{}",
            process.base,
            op["id"].as_str().unwrap()
        ),
        None,
    )
    .unwrap();
    assert_eq!((status, &again["id"]), (200, &op["id"]));
}

#[test]
fn first_start_prints_generated_credentials_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let mut first = spawn(&config);
    let banner = first.banner.join("\n");
    assert!(banner.contains("admin token:"), "{banner}");
    let key_of = |label: &str| {
        let line = first
            .banner
            .iter()
            .find(|l| l.contains(label))
            .unwrap_or_else(|| panic!("no `{label}` in {banner}"));
        line.split_whitespace().last().unwrap().to_owned()
    };
    let key = key_of("read key for `prod`:");
    let ingest = key_of("ingest key for `prod`:");
    assert!(ingest.starts_with("opslog_prod_ingest_"), "{ingest}");
    assert!(banner.contains("read key for `dev`:"), "{banner}");
    let dev_ingest = key_of("ingest key for `dev`:");
    assert!(
        banner.contains(&format!("Bearer {dev_ingest}")),
        "the example writes with the ingest key: {banner}"
    );
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let mut second = spawn(&config);
    let banner = second.banner.join("\n");
    assert!(
        !banner.contains(&key),
        "secrets are printed only on first start: {banner}"
    );
    let (status, _) = ureq_get_with(
        &agent(),
        &format!(
            "{}/v1/environments/prod/operations/01ARZ3NDEKTSV4RRFFQ69G5FAV",
            second.base
        ),
        &key,
    );
    assert_eq!(
        status, 404,
        "the generated read key still works (the operation just does not exist)"
    );
    let (status, text) = ureq_get_with(
        &agent(),
        &format!("{}/v1/environments/prod/operations", second.base),
        &ingest,
    );
    assert_eq!(status, 403, "an ingest key cannot read: {text}");
    assert!(text.contains("`read` scope"), "{text}");
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

fn ureq_get_with(agent: &ureq::Agent, url: &str, token: &str) -> (u16, String) {
    let response = agent
        .get(url)
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.into_body().read_to_string().unwrap())
}

#[test]
fn check_config_names_the_key_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"127.0.0.1:7400\"\n\n[deadlines]\nsync = \"soon\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 5") && err.contains("soon"), "{err}");

    let good = write_config(dir.path(), true);
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(ADMIN) && !text.contains(PROD_KEY), "{text}");
    assert!(
        text.contains("masked") && text.contains("max_body_bytes = 10485760"),
        "{text}"
    );

    let serve = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!serve.status.success(), "a bad config stops start-up");
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains("deadlines"),
        "names the table"
    );

    let version = Command::new(BIN).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("opslog 0."));
}

#[test]
fn after_sigkill_the_index_catches_up_with_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    let agent = agent();
    let mut process = spawn(&config);
    let base = process.base.clone();
    let (status, op) = call(
        &agent,
        "POST",
        &format!("{base}/v1/environments/prod/operations"),
        Some(&json!({"type": "sync", "integration": "github"})),
    )
    .unwrap();
    assert_eq!(status, 201);
    let op = op["id"].as_str().unwrap().to_owned();
    let mut acked = 0u64;
    for batch in 0..40 {
        let body: Vec<Value> = (0..50)
            .map(|m| json!({"message": format!("crashmarker batch{batch} m{m}")}))
            .collect();
        let url = format!("{base}/v1/environments/prod/operations/{op}/messages");
        let (status, _) = call(&agent, "POST", &url, Some(&Value::Array(body))).unwrap();
        assert_eq!(status, 201);
        acked += 50;
    }
    // Killed right after the last acknowledgement: the index has not committed all of it.
    process.child.kill().unwrap();
    process.child.wait().unwrap();

    let mut process = spawn(&config);
    let url = format!(
        "{}/v1/environments/prod/messages?q=crashmarker&limit=1",
        process.base
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let total = loop {
        let (status, page) = call(&agent, "GET", &url, None).unwrap();
        if status == 200 && page["total"] == acked {
            break acked;
        }
        assert!(Instant::now() < deadline, "index did not catch up: {page}");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Exactly once: nothing indexed twice on the way back.
    let (_, page) = call(
        &agent,
        "GET",
        &format!(
            "{}/v1/environments/prod/messages?q=batch39&limit=500",
            process.base
        ),
        None,
    )
    .unwrap();
    assert_eq!(page["total"], 50, "{total}");
    let stored = all_messages(&agent, &process.base, &op).len() as u64;
    assert_eq!(stored, acked);
    process.child.kill().unwrap();
    process.child.wait().unwrap();
}

#[test]
fn reindex_rebuilds_offline() {
    let d = Daemon::start();
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    let batch: Vec<Value> = (0..120)
        .map(|i| json!({"message": format!("offline{i} papaya")}))
        .collect();
    let path = format!("/v1/environments/prod/operations/{id}/messages");
    assert_eq!(d.post(&path, PROD_KEY, &Value::Array(batch)).status, 201);
    let dir = d.stop();
    let out = Command::new(BIN)
        .args(["reindex", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reindexed 121 records"), "{text}");
    let d = Daemon::start_with(|c| c.server.data_dir = dir.path().to_owned());
    let r = d.get("/v1/environments/prod/messages?q=papaya&limit=1", PROD_KEY);
    assert_eq!(
        (r.status, &r.body["total"]),
        (200, &json!(120)),
        "searchable at once: {}",
        r.text
    );
    drop(dir);
}
