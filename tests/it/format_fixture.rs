//! Data dirs written by earlier formats, checked in under `tests/fixtures/format-v<N>/` (the redb
//! file only: the index is derived and rebuilt), opened by the current binary: format 1 (every
//! message a row), format 2 (an ended operation's messages packed into blocks per operation),
//! each converted to the current format on first start. A format change must convert these
//! files, or these tests fail.
//!
//! To write the fixture of the current format (when its number is bumped, into a new directory
//! beside the old ones): `OPSLOG_WRITE_FIXTURE=<N> cargo test --release --test it format_fixture`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::archive::{seed, snapshot, SEEDED_OPERATIONS};
use crate::receiver::Receiver;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";

fn fixture_dir(format: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/format-v{format}"))
}

/// What the API shows of the fixture: prod's operations with their messages, its settings, and
/// its deliveries with every attempt.
fn observe(d: &Daemon) -> Value {
    let operations: Vec<Value> = snapshot(d, SEEDED_OPERATIONS)
        .into_iter()
        .map(|(op, messages)| json!({"operation": op, "messages": messages}))
        .collect();
    let settings = d.get(&format!("{PROD}/settings"), ADMIN).body;
    let list = d.get(&format!("{PROD}/deliveries"), PROD_KEY).body;
    let deliveries: Vec<Value> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let id = v["id"].as_str().unwrap();
            d.get(&format!("{PROD}/deliveries/{id}"), PROD_KEY).body
        })
        .collect();
    json!({"operations": operations, "settings": settings, "deliveries": deliveries})
}

/// Seeds a daemon, ends what is still open (so nothing changes when the fixture is opened
/// later), stops it and keeps its compacted redb file and what the API showed.
fn write_fixture(format: u32) {
    let receiver = Receiver::ok();
    let d = Daemon::start();
    let ids = seed(&d, &receiver);
    for id in &ids {
        d.patch(
            &format!("{PROD}/operations/{id}"),
            PROD_KEY,
            &json!({"state": "cancelled"}),
        );
    }
    let seen = observe(&d);
    let dir = d.stop();
    let mut db = redb::Database::open(dir.path().join("opslog.redb")).unwrap();
    while db.compact().unwrap() {}
    drop(db);
    std::fs::create_dir_all(fixture_dir(format)).unwrap();
    std::fs::copy(
        dir.path().join("opslog.redb"),
        fixture_dir(format).join("opslog.redb"),
    )
    .unwrap();
    std::fs::write(
        fixture_dir(format).join("expected.json"),
        serde_json::to_string_pretty(&seen).unwrap() + "\n",
    )
    .unwrap();
}

#[test]
fn a_data_dir_of_format_v1_opens_with_everything_readable() {
    opens_with_everything_readable(1);
}

#[test]
fn a_data_dir_of_format_v2_opens_with_everything_readable() {
    opens_with_everything_readable(2);
}

/// The command line converts too, and says so: `opslog reindex` on a copy of the format 2
/// fixture logs the conversion, then indexes every record.
#[test]
fn converting_a_format_v2_data_dir_is_logged_with_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir(2).join("opslog.redb"),
        dir.path().join("opslog.redb"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opslog"))
        .args(["reindex", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("converting the data dir"), "{stderr}");
    let done = stderr
        .lines()
        .find(|l| l.contains("data dir converted to format"))
        .unwrap_or_else(|| panic!("no conversion line in {stderr}"));
    assert!(done.contains("seconds"), "{done}");
    // Opened again, it is converted already: no second conversion.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_opslog"))
        .args(["reindex", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(!stderr.contains("converting"), "{stderr}");
}

fn opens_with_everything_readable(format: u32) {
    if std::env::var("OPSLOG_WRITE_FIXTURE").is_ok_and(|f| f == format.to_string()) {
        write_fixture(format);
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir(format).join("expected.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir(format).join("opslog.redb"),
        dir.path().join("opslog.redb"),
    )
    .unwrap();
    let path = dir.path().to_owned();
    let d = Daemon::start_with(move |c| {
        c.server.data_dir = path;
        // The fixture ages; retention must not remove it.
        c.retention.days = 36_500.0;
    });
    let seen = observe(&d);
    // Fields added to the API since the fixture was written (say, `settings.otel`) may appear;
    // everything it recorded must read back unchanged.
    for part in ["operations", "settings", "deliveries"] {
        assert_includes(&seen[part], &expected[part], part);
    }
    assert_eq!(seen["settings"]["otel"]["endpoint"], Value::Null);
    // Search works on the rebuilt index, and the stored webhook secret still signs.
    eventually(Duration::from_secs(10), || {
        let hits = d.get(&format!("{PROD}/messages?q=gave"), PROD_KEY);
        (hits.body["total"] == 1).then_some(())
    });
    let secret = d.get(&format!("{PROD}/settings/webhook-secret"), ADMIN);
    assert!(secret.body["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));
    // New messages go on after the converted ones, and read back in order.
    let id = seen["operations"][0]["operation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let late = d.post(
        &format!("{PROD}/operations/{id}/messages"),
        PROD_KEY,
        &json!({"message": "written after the conversion"}),
    );
    assert_eq!(late.status, 201, "{}", late.text);
    let all = d.get(
        &format!("{PROD}/operations/{id}/messages?limit=500"),
        PROD_KEY,
    );
    let texts: Vec<&str> = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts.last(),
        Some(&"written after the conversion"),
        "{texts:?}"
    );
    let before = seen["operations"][0]["messages"].as_array().unwrap().len();
    assert_eq!(texts.len(), before + 1);
    drop(d);
    drop(dir);
}

/// `seen` holds everything `expected` does: the same scalars, arrays of the same length, and
/// objects with at least its keys.
fn assert_includes(seen: &Value, expected: &Value, at: &str) {
    match (seen, expected) {
        (Value::Object(seen), Value::Object(expected)) => {
            for (key, value) in expected {
                let inner = seen.get(key).unwrap_or(&Value::Null);
                assert_includes(inner, value, &format!("{at}.{key}"));
            }
        }
        (Value::Array(seen), Value::Array(expected)) => {
            assert_eq!(seen.len(), expected.len(), "{at}: length");
            for (i, (s, e)) in seen.iter().zip(expected).enumerate() {
                assert_includes(s, e, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(seen, expected, "{at}"),
    }
}
