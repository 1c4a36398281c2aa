//! A data dir written by the format of this release, checked in under
//! `tests/fixtures/format-v1/` (the redb file only: the index is derived and rebuilt), opened by
//! the current binary. A future format change must migrate this file, or this test fails.
//!
//! To write the fixture again (only when the format number is bumped and the old fixture is kept
//! beside it): `OPSLOG_WRITE_FIXTURE=1 cargo test --release --test it format_fixture`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::archive::{seed, snapshot, SEEDED_OPERATIONS};
use crate::receiver::Receiver;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1")
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
fn write_fixture() {
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
    std::fs::create_dir_all(fixture_dir()).unwrap();
    std::fs::copy(
        dir.path().join("opslog.redb"),
        fixture_dir().join("opslog.redb"),
    )
    .unwrap();
    std::fs::write(
        fixture_dir().join("expected.json"),
        serde_json::to_string_pretty(&seen).unwrap() + "\n",
    )
    .unwrap();
}

#[test]
fn a_data_dir_of_format_v1_opens_with_everything_readable() {
    if std::env::var_os("OPSLOG_WRITE_FIXTURE").is_some() {
        write_fixture();
    }
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join("opslog.redb"),
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
