//! Least privilege: every endpoint needs a declared scope and enforces it for every kind of key;
//! destinations are refused by rule when set and, after DNS, before connecting; the data dir,
//! the config file and exports are their owner's alone.
//!
//! Network: only loopback. Refused destinations are refused before any connection (the tests
//! that name link-local or private addresses never reach the dispatcher).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use opslog::config::{ApiKey, Config};
use opslog::scope::KeyScope;
use serde_json::{json, Value};

use crate::receiver::Receiver;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const INGEST_KEY: &str = "test-prod-ingest-key-0123456789";
const READ_KEY: &str = "test-prod-read-key-0123456789ab";
const BIN: &str = env!("CARGO_BIN_EXE_opslog");

/// prod with a plain key (`ingest+read`), an ingest key and a read key.
fn with_scoped_keys(config: &mut Config) {
    let prod = config.environments.get_mut("prod").unwrap();
    prod.api_keys.push(ApiKey {
        key: INGEST_KEY.into(),
        scope: KeyScope::Ingest,
    });
    prod.api_keys.push(ApiKey {
        key: READ_KEY.into(),
        scope: KeyScope::Read,
    });
}

/// A concrete request for a documented path: placeholders filled with plausible values.
fn concrete(template: &str) -> String {
    template
        .replace("{env}", "prod")
        .replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .replace("{token}", "hook_unknown")
        .replace("{integration}", "github")
}

/// Table-driven over the served OpenAPI document: an operation without `x-opslog-scope` fails
/// here, and every declared scope is enforced for each kind of key (a key without it gets a 403
/// naming it, a key with it never does).
#[test]
fn every_operation_declares_its_scope_and_each_key_gets_exactly_that() {
    let d = Daemon::start_with(with_scoped_keys);
    let doc = d.raw("GET", "/openapi.json", None, &[], None).body;
    let keys = [
        ("ingest", INGEST_KEY, ["ingest"].as_slice()),
        ("read", READ_KEY, ["read"].as_slice()),
        ("ingest+read", PROD_KEY, ["ingest", "read"].as_slice()),
        ("admin", ADMIN, ["ingest", "read", "admin"].as_slice()),
    ];
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let scope = operation["x-opslog-scope"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {template} declares no x-opslog-scope"));
            if scope == "none" {
                assert!(
                    operation.get("security").is_none(),
                    "{method} {template}: no bearer token, so no security requirement"
                );
                continue;
            }
            assert!(
                ["ingest", "read", "admin"].contains(&scope),
                "{method} {template}: unknown scope `{scope}`"
            );
            assert_eq!(
                operation["security"][0]["bearer"],
                json!([scope]),
                "{method} {template}: the security requirement names the scope"
            );
            assert!(
                operation["description"]
                    .as_str()
                    .is_some_and(|d| d.contains(&format!("`{scope}`"))),
                "{method} {template}: the description names the scope"
            );
            assert!(
                operation["responses"]["403"].is_object(),
                "{method} {template}"
            );
            let path = concrete(template);
            for (name, token, holds) in keys {
                let (headers, body): (&[(&str, &str)], _) = match method.as_str() {
                    "GET" | "DELETE" => (&[], None),
                    _ if path.ends_with("/import") => (
                        &[("content-type", "application/x-ndjson")],
                        Some(b"".as_slice()),
                    ),
                    _ => (&[], Some(b"{}".as_slice())),
                };
                let reply = d.raw(&method, &path, Some(token), headers, body);
                if holds.contains(&scope) {
                    assert!(
                        ![401, 403].contains(&reply.status),
                        "{method} {path} with the {name} key: {} {}",
                        reply.status,
                        reply.text
                    );
                } else {
                    // OTLP routes answer a `google.rpc.Status` whose message starts with the code.
                    let (code, message) = match reply.body["message"].as_str() {
                        Some(status) if path.contains("/otlp/") => {
                            status.split_once(": ").unwrap_or(("", status))
                        }
                        _ => (reply.code(), reply.message()),
                    };
                    assert_eq!(
                        (reply.status, code),
                        (403, "insufficient_scope"),
                        "{method} {path} with the {name} key: {}",
                        reply.text
                    );
                    assert!(
                        message.contains(&format!("the `{scope}` scope")),
                        "{method} {path}: the 403 names the scope: {}",
                        reply.text
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 100,
        "only {checked} (operation, key) pairs checked"
    );
    // The ingest key writes what integration code writes, and cannot read it back.
    let op = d.start_operation("prod", INGEST_KEY, &json!({"type": "sync"}));
    let logged = d.post(
        &format!("{PROD}/operations/{op}/messages"),
        INGEST_KEY,
        &json!({"message": "hello"}),
    );
    assert_eq!(logged.status, 201, "{}", logged.text);
    let read = d.get(&format!("{PROD}/operations/{op}"), READ_KEY);
    assert_eq!(read.body["message_count"], 1, "{}", read.text);
    let written = d.patch(
        &format!("{PROD}/operations/{op}"),
        READ_KEY,
        &json!({"state": "success"}),
    );
    assert_eq!(written.status, 403, "{}", written.text);
}

/// The query commands work with a read key; an ingest key is refused with the scope to use.
#[test]
fn the_cli_reads_with_a_read_key() {
    let d = Daemon::start_with(with_scoped_keys);
    d.start_operation(
        "prod",
        INGEST_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    let run = |token: &str| {
        std::process::Command::new(BIN)
            .args([
                "ops", "--url", &d.base, "--env", "prod", "--token", token, "--json",
            ])
            .env_remove("OPSLOG_TOKEN")
            .output()
            .unwrap()
    };
    let found = eventually(Duration::from_secs(10), || {
        let out = run(READ_KEY);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && stdout.contains("github")).then_some(stdout)
    });
    assert_eq!(found.lines().count(), 1, "{found}");
    let refused = run(INGEST_KEY);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("`read` scope"), "{stderr}");
}

#[test]
fn an_environment_key_cannot_redirect_the_data_stream() {
    let d = Daemon::start();
    for body in [
        json!({"webhooks": {"url": "https://elsewhere.example.com/steal"}}),
        json!({"otel": {"endpoint": "https://collector.example.com"}}),
        json!({"otel": {"headers": {"x-api-key": "mine"}}}),
    ] {
        let reply = d.send("PUT", &format!("{PROD}/settings"), PROD_KEY, &body);
        assert_eq!(
            (reply.status, reply.code()),
            (403, "insufficient_scope"),
            "{}",
            reply.text
        );
        assert!(reply.message().contains("admin token"), "{}", reply.text);
    }
    let settings = d.get(&format!("{PROD}/settings"), ADMIN).body;
    assert_eq!(settings["webhooks"]["url"], Value::Null);
    assert_eq!(settings["otel"]["endpoint"], Value::Null);
}

/// Set through the API: link-local and metadata always refused; private ranges unless allowed;
/// loopback allowed by default. Nothing refused is stored.
#[test]
fn destinations_are_refused_by_rule_when_set() {
    let d = Daemon::start();
    let put = |body: Value| d.send("PUT", &format!("{PROD}/settings"), ADMIN, &body);
    for (body, field, words) in [
        (
            json!({"webhooks": {"url": "https://169.254.169.254/latest/meta-data/"}}),
            "webhooks.url",
            "always refused",
        ),
        (
            json!({"webhooks": {"secondary_url": "https://metadata.google.internal/computeMetadata/v1/"}}),
            "webhooks.secondary_url",
            "metadata",
        ),
        (
            json!({"webhooks": {"url": "https://[fe80::1]/hook"}}),
            "webhooks.url",
            "link-local",
        ),
        (
            json!({"webhooks": {"url": "https://10.1.2.3/hook"}}),
            "webhooks.url",
            "allow_private_destinations",
        ),
        (
            json!({"webhooks": {"url": "https://[::ffff:192.168.1.10]/hook"}}),
            "webhooks.url",
            "private",
        ),
        (
            json!({"otel": {"endpoint": "http://169.254.169.254:4318"}}),
            "otel.endpoint",
            "always refused",
        ),
        (
            json!({"otel": {"endpoint": "http://172.16.0.9:4318"}}),
            "otel.endpoint",
            "allow_private_destinations",
        ),
    ] {
        let reply = put(body.clone());
        assert_eq!(
            (reply.status, reply.code()),
            (400, "destination_refused"),
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.text);
        assert!(reply.message().contains(words), "{body}: {}", reply.text);
    }
    let settings = d.get(&format!("{PROD}/settings"), ADMIN).body;
    assert_eq!(
        settings["webhooks"]["url"],
        Value::Null,
        "nothing refused was stored"
    );
    assert_eq!(settings["otel"]["endpoint"], Value::Null);
    // Loopback is allowed by default: a backend on the same host.
    let local = put(json!({"webhooks": {"url": "http://127.0.0.1:9/hook"}}));
    assert_eq!(local.status, 200, "{}", local.text);
}

#[test]
fn without_loopback_allowed_loopback_names_and_addresses_are_refused_and_allowed_ranges_pass() {
    let d = Daemon::start_with(|c| c.outbox.allow_private_destinations = Vec::new());
    for url in [
        "http://localhost:9/hook",
        "https://api.localhost:9/hook",
        "http://127.0.0.1:9/hook",
        "https://2130706433:9/hook",
        "http://[::1]:9/hook",
    ] {
        let reply = d.send(
            "PUT",
            &format!("{PROD}/settings"),
            ADMIN,
            &json!({"webhooks": {"url": url}}),
        );
        assert_eq!(reply.status, 400, "{url}: {}", reply.text);
        assert!(
            reply.message().contains("loopback")
                && reply.message().contains("allow_private_destinations"),
            "{url}: {}",
            reply.text
        );
    }
    drop(d);
    let lan = Daemon::start_with(|c| {
        c.outbox.allow_private_destinations = vec!["10.20.0.0/16".parse().unwrap()];
    });
    let put = |url: &str| {
        lan.send(
            "PUT",
            &format!("{PROD}/settings"),
            ADMIN,
            &json!({"webhooks": {"url": url}}),
        )
    };
    // Only set, never sent: no event happens in this daemon.
    assert_eq!(put("https://10.20.3.4/hook").status, 200);
    assert_eq!(put("https://10.21.3.4/hook").status, 400);
}

#[test]
fn the_config_file_is_checked_like_the_api() {
    for (toml, key, words) in [
        (
            "[environments.prod.webhooks]\nurl = \"https://169.254.169.254/\"\n",
            "environments.prod.webhooks.url",
            "always refused",
        ),
        (
            "[environments.prod.otel]\nendpoint = \"http://10.0.0.1:4318\"\n",
            "environments.prod.otel.endpoint",
            "allow_private_destinations",
        ),
        (
            "[outbox]\nallow_private_destinations = [\"169.254.0.0/16\"]\n",
            "outbox.allow_private_destinations[0]",
            "always refused",
        ),
        (
            "[outbox]\nallow_private_destinations = [\"ten\"]\n",
            "outbox.allow_private_destinations",
            "10.0.0.0/8",
        ),
    ] {
        let err = Config::from_toml(toml, "t.toml").unwrap_err().to_string();
        assert!(err.contains(key) && err.contains(words), "{toml}: {err}");
    }
    let ok = Config::from_toml(
        "[outbox]\nallow_private_destinations = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n\n\
         [environments.prod.webhooks]\nurl = \"https://10.1.2.3/hook\"\n",
        "t.toml",
    );
    assert!(ok.is_ok(), "{ok:?}");
}

/// A destination stored while allowed, whose DNS answer is refused now: each attempt fails
/// with the rule before connecting (the receiver on loopback never hears from opslog).
#[test]
fn a_name_that_resolves_into_a_refused_range_fails_before_connecting() {
    let receiver = Receiver::ok();
    let url = receiver.url().replace("127.0.0.1", "localhost");
    let endpoint = url.trim_end_matches("/hook").to_owned();
    let first = Daemon::start();
    let set = first.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"url": url}, "otel": {"endpoint": endpoint}}),
    );
    assert_eq!(set.status, 200, "{}", set.text);
    let dir = first.stop();
    let path = dir.path().to_owned();
    let d = Daemon::start_with(move |c| {
        c.server.data_dir = path;
        c.outbox.allow_private_destinations = Vec::new();
    });
    let op = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let ended = d.patch(
        &format!("{PROD}/operations/{op}"),
        PROD_KEY,
        &json!({"state": "success"}),
    );
    assert_eq!(ended.status, 200, "{}", ended.text);
    for list in ["deliveries", "exports"] {
        let failure = eventually(Duration::from_secs(20), || {
            let page = d.get(&format!("{PROD}/{list}"), PROD_KEY);
            let error = page.body["data"][0]["last_error"].as_str()?.to_owned();
            Some(error)
        });
        assert!(
            failure.contains("destination refused before connecting")
                && failure.contains("127.0.0.1")
                && failure.contains("loopback"),
            "{list}: {failure}"
        );
    }
    assert!(
        receiver.requests().is_empty(),
        "nothing reached the receiver"
    );
    drop(d);
    drop(dir);
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o777
}

/// Every directory and file under `dir`, `dir` included.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = vec![dir.to_owned()];
    let mut i = 0;
    while i < all.len() {
        if all[i].is_dir() {
            for entry in std::fs::read_dir(&all[i]).unwrap() {
                all.push(entry.unwrap().path());
            }
        }
        i += 1;
    }
    all
}

#[test]
fn the_data_dir_and_everything_in_it_are_the_owners_alone() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let path = data.clone();
    let d = Daemon::start_with(move |c| c.server.data_dir = path);
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    eventually(Duration::from_secs(10), || {
        let hits = d.get(&format!("{PROD}/operations?q=github"), PROD_KEY);
        (hits.body["total"] == 1).then_some(())
    });
    let backup = d.get("/v1/backup", ADMIN);
    assert_eq!(backup.status, 200);
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("opslog.redb")), 0o600);
    let entries = walk(&data);
    assert!(entries.len() > 3, "{entries:?}");
    for entry in entries {
        assert_eq!(
            mode(&entry) & 0o077,
            0,
            "{} is open to others",
            entry.display()
        );
    }
    drop(d);
}

#[test]
fn an_open_data_dir_is_tightened_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1/opslog.redb"),
        data.join("opslog.redb"),
    )
    .unwrap();
    std::fs::create_dir(data.join("stray")).unwrap();
    std::fs::write(data.join("stray/notes.txt"), "x").unwrap();
    for (path, m) in [
        (data.clone(), 0o755),
        (data.join("opslog.redb"), 0o644),
        (data.join("stray"), 0o777),
        (data.join("stray/notes.txt"), 0o666),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let path = data.clone();
    let d = Daemon::start_with(move |c| {
        c.server.data_dir = path;
        c.retention.days = 36_500.0;
    });
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("opslog.redb")), 0o600);
    assert_eq!(mode(&data.join("stray")), 0o700);
    assert_eq!(mode(&data.join("stray/notes.txt")), 0o600);
    // The index is rebuilt from the store first (503 meanwhile).
    eventually(Duration::from_secs(20), || {
        let listed = d.get(&format!("{PROD}/operations"), PROD_KEY);
        (listed.status == 200 && listed.body["total"].as_u64() > Some(0)).then_some(())
    });
}

/// Starts the daemon in-process on `config` and answers the start-up error.
fn start_error(config: Config) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        match opslog::app::start(config, listener, shutdown.clone()).await {
            Ok(running) => {
                shutdown.cancel();
                let _ = running.wait().await;
                panic!("started on a data dir it cannot make private");
            }
            Err(e) => format!("{e:#}"),
        }
    })
}

#[test]
fn a_data_dir_open_to_others_and_owned_by_another_user_stops_start_up() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let foreign = data.join("opslog.redb");
    std::fs::write(&foreign, b"").unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let error = start_error(test_config(&data));
    assert!(
        error.contains("uid 65534")
            && error.contains("readable by other users")
            && error.contains(&format!("chmod -R go-rwx {}", data.display())),
        "{error}"
    );
    assert_eq!(
        mode(&foreign),
        0o644,
        "nothing of another user's was changed"
    );
}

#[test]
fn a_config_file_with_secrets_that_others_can_read_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opslog.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_tokens = [\"{ADMIN}\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("opslog started with a config file others can read");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("server.admin_tokens")
            && stderr.contains("0644")
            && stderr.contains(&format!("chmod 600 {}", config.display())),
        "{stderr}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before the data dir was made"
    );
}

/// A data dir of the first release kept one generated `ingest+read` key per environment; it
/// still opens, that key keeps working for what it did (writing and reading), and the new
/// scoped keys are generated beside it.
#[test]
fn a_first_release_data_dir_keeps_its_generated_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1/opslog.redb"),
        dir.path().join("opslog.redb"),
    )
    .unwrap();
    let legacy = "opslog_prod_0123456789abcdef0123456789abcdef0123456789abcdef";
    {
        // What the first release wrote on its first start (auth.rs of that release).
        let store = opslog::store::Store::open(dir.path()).unwrap();
        let mut tx = store.write().unwrap();
        tx.put_meta("generated_api_key:prod", legacy.as_bytes())
            .unwrap();
        tx.commit().unwrap();
    }
    let path = dir.path().to_owned();
    let d = Daemon::start_with(move |c| {
        c.server.data_dir = path;
        c.retention.days = 36_500.0;
        for env in c.environments.values_mut() {
            env.api_keys.clear();
        }
    });
    // The index is rebuilt from the store first (503 meanwhile).
    eventually(Duration::from_secs(20), || {
        let listed = d.get(&format!("{PROD}/operations"), legacy);
        (listed.status == 200 && listed.body["total"].as_u64() > Some(0)).then_some(())
    });
    d.start_operation("prod", legacy, &json!({"type": "sync"}));
    let settings = d.get(&format!("{PROD}/settings"), legacy);
    assert_eq!(
        settings.status, 403,
        "settings are the admin token's now: {}",
        settings.text
    );
    let session = d.get("/v1/session", legacy);
    assert_eq!(session.body["scope"], "ingest+read", "{}", session.text);
}
