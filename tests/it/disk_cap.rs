//! Retention per environment and the disk cap, on a real data dir: an environment with a shorter
//! retention loses its operations first; above `retention.max_disk` the oldest operations of any
//! environment go, with a WARN line and a metric, and the data dir stays near the cap.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opslog::config::HumanDuration;
use serde_json::{json, Value};

use crate::metrics::scrape;
use crate::process::agent;
use crate::support::*;

#[test]
fn each_environment_keeps_its_operations_for_its_own_retention() {
    // dev falls back to `[retention] days` (2 s); prod keeps its operations an hour.
    let d = Daemon::start_with(|c| {
        c.retention.days = 2.0 / 86_400.0;
        c.retention.every = HumanDuration(Duration::from_millis(100));
        c.environments.get_mut("prod").unwrap().retention =
            Some(HumanDuration(Duration::from_secs(3600)));
    });
    let start = |env: &str, key: &str, connection: &str| {
        let id = d.start_operation(
            env,
            key,
            &json!({"type": "sync", "integration": "github", "connection_id": connection}),
        );
        let path = format!("/v1/environments/{env}/operations/{id}/messages");
        let reply = d.post(
            &path,
            key,
            &json!([{"message": "kiwi fetched"}, {"message": "kiwi saved"}]),
        );
        assert_eq!(reply.status, 201, "{}", reply.text);
        id
    };
    let dev_old = start("dev", DEV_KEY, "acme");
    let prod_old = start("prod", PROD_KEY, "acme");
    eventually(Duration::from_secs(30), || {
        let gone = d.get(
            &format!("/v1/environments/dev/operations/{dev_old}"),
            DEV_KEY,
        );
        (gone.status == 404).then_some(())
    });
    let dev_new = start("dev", DEV_KEY, "acme");
    eventually(Duration::from_secs(10), || {
        let dev = d.get("/v1/environments/dev/messages?q=kiwi", DEV_KEY);
        let ops = d.get("/v1/environments/dev/operations", DEV_KEY);
        (dev.body["total"] == 2
            && ops.body["total"] == 1
            && ops.body["data"][0]["id"] == dev_new.as_str())
        .then_some(())
    });
    // prod's is older than dev's retention and stays, messages and search entries too.
    let kept = d.get(
        &format!("/v1/environments/prod/operations/{prod_old}"),
        PROD_KEY,
    );
    assert_eq!(kept.status, 200);
    assert_eq!(kept.body["message_count"], 2);
    let prod = d.get("/v1/environments/prod/messages?q=kiwi", PROD_KEY);
    assert_eq!(prod.body["total"], 2, "{}", prod.text);
    let metrics = scrape(&d);
    assert!(metrics[r#"opslog_retention_removed_total{record="operation"}"#] >= 1.0);
    assert!(metrics[r#"opslog_retention_removed_total{record="message"}"#] >= 2.0);
}

/// What the files under `dir` hold on disk (allocated blocks: the store file has holes).
fn size_on_disk(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => size_on_disk(&e.path()),
                    Ok(m) => m.blocks() * 512,
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Text that does not compress: what fills a disk fastest.
fn noise(seed: &mut u64, bytes: usize) -> String {
    let mut out = String::with_capacity(bytes);
    while out.len() < bytes {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push_str(&format!("{:016x}", *seed));
    }
    out.truncate(bytes);
    out
}

#[test]
fn above_max_disk_the_oldest_operations_go_first_and_the_data_dir_stays_near_the_cap() {
    const CAP: u64 = 8_000_000;
    const OPERATIONS: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("opslog.toml");
    write_private(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_tokens = [\"{ADMIN}\"]\n\n\
             [retention]\nevery = \"100ms\"\nmax_disk = \"{CAP}\"\n\n\
             [environments.prod]\napi_keys = [\"{PROD_KEY}\"]\n\n[environments.dev]\napi_keys = [\"{DEV_KEY}\"]\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_opslog"))
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("OPSLOG_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(Vec::<Value>::new()));
    {
        let (stderr, logs) = (child.stderr.take().unwrap(), logs.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(line) = serde_json::from_str(&line) {
                    logs.lock().unwrap().push(line);
                }
            }
        });
    }
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    // Keep reading: the daemon must not write into a closed pipe.
    std::thread::spawn(move || stdout.for_each(drop));
    let base = first
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let agent = agent();
    let mut seed = 7;
    let mut ids = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..OPERATIONS {
        // Alternating environments: the cap counts them all.
        let (env, key) = if i % 2 == 0 {
            ("prod", PROD_KEY)
        } else {
            ("dev", DEV_KEY)
        };
        let api = format!("{base}/v1/environments/{env}");
        let reply = agent
            .post(format!("{api}/operations"))
            .header("authorization", format!("Bearer {key}"))
            .send_json(
                json!({"type": "sync", "integration": "github", "connection_id": format!("c{i}")}),
            )
            .unwrap()
            .body_mut()
            .read_json::<Value>()
            .unwrap();
        let id = reply["id"].as_str().unwrap().to_owned();
        // 400 messages of 1 KB each: about 0.4 MB per operation, 40 MB in all, five times the cap.
        for _ in 0..2 {
            let batch: Vec<Value> = (0..200)
                .map(|_| json!({"message": noise(&mut seed, 1000)}))
                .collect();
            let status = agent
                .post(format!("{api}/operations/{id}/messages"))
                .header("authorization", format!("Bearer {key}"))
                .header("prefer", "return=minimal")
                .send_json(Value::Array(batch))
                .unwrap()
                .status();
            assert_eq!(status, 204);
        }
        let status = agent
            .patch(format!("{api}/operations/{id}"))
            .header("authorization", format!("Bearer {key}"))
            .send_json(json!({"state": "success"}))
            .unwrap()
            .status();
        assert_eq!(status, 200);
        ids.push((env, key, id));
        std::thread::sleep(Duration::from_millis(20));
        sizes.push(size_on_disk(&data));
    }
    let get = |(env, key, id): &(&str, &str, String)| {
        let url = format!("{base}/v1/environments/{env}/operations/{id}");
        let response = agent
            .get(url)
            .header("authorization", format!("Bearer {key}"))
            .call();
        response
            .map(|r| r.status().as_u16())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // The cap is enforced on the retention timer: wait for the sweep after the last write.
    let settled = eventually(Duration::from_secs(30), || {
        let trims = logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                l["level"] == "WARN"
                    && l["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("above retention.max_disk")
            })
            .count();
        (trims >= 1 && get(&ids[0]) == 404).then_some(size_on_disk(&data))
    });
    sizes.push(settled);
    eprintln!("data dir size after each operation (cap {CAP}): {sizes:?}");
    // The oldest went first: a prefix of the operations is gone, the newest are all there.
    let statuses: Vec<u16> = ids.iter().map(get).collect();
    let gone = statuses.iter().take_while(|s| **s == 404).count();
    assert!((1..OPERATIONS).contains(&gone), "{statuses:?}");
    assert!(
        statuses[gone..].iter().all(|s| *s == 200),
        "oldest first: {statuses:?}"
    );
    assert!(
        (OPERATIONS - gone) as u64 * 400_000 >= CAP / 4,
        "far more was removed than the cap needs: {statuses:?}"
    );
    // 24 MB written; the data dir stayed near the cap (the store file grows in doubling steps).
    let largest = *sizes.iter().max().unwrap();
    assert!(
        largest <= CAP * 2,
        "the data dir grew to {largest} bytes under a cap of {CAP}: {sizes:?}"
    );
    let text = agent
        .get(format!("{base}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let metrics = crate::metrics::parse(&text);
    assert!(metrics["opslog_disk_cap_trims_total"] >= 1.0, "{text}");
    // At least those found gone (a sweep may have removed more since).
    assert!(metrics[r#"opslog_disk_cap_removed_total{record="operation"}"#] >= gone as f64);
    assert!(metrics[r#"opslog_disk_cap_removed_total{record="message"}"#] >= 400.0 * gone as f64);
    assert!(metrics["opslog_data_dir_bytes"] > 0.0);
    let warned = logs.lock().unwrap().iter().any(|l| {
        l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap_or("")
                .contains("removed the oldest operations")
            && l["operations"].as_u64().unwrap_or(0) >= 1
    });
    assert!(warned, "a WARN line says what was removed");
    child.kill().unwrap();
    child.wait().unwrap();
}
