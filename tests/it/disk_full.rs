//! A full disk: writes answer 507 with a clear error, reads keep working, nothing stored is lost,
//! and writes succeed again once space returns. Runs on a small tmpfs the test mounts (root only);
//! where mounting is impossible it says why and checks nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(megabytes: u32) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: dir.path().to_owned(),
            _dir: dir,
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn fill(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0xa5u8; bytes]).unwrap();
}

#[test]
fn a_full_disk_refuses_writes_and_recovers() {
    let fs = match Tmpfs::mount(48) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED disk-full test: {why}");
            return;
        }
    };
    let data = fs.path.join("data");
    let ballast = fs.path.join("ballast");
    fill(&ballast, 8 << 20);
    let d = Daemon::start_with(|c| c.server.data_dir = data.clone());
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    let path = format!("/v1/environments/prod/operations/{id}/messages");
    let mut acked = Vec::new();
    let mut refused = None;
    // Text that does not compress (blocks are compressed): random hex, from a xorshift.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut noise = || {
        (0..19)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                format!("{rng:016x}")
            })
            .collect::<String>()
    };
    for batch in 0..2_000 {
        let body: Vec<Value> = (0..200)
            .map(|m| json!({"message": format!("b{batch} m{m} {}", noise())}))
            .collect();
        let r = d.post(&path, PROD_KEY, &Value::Array(body));
        match r.status {
            201 => acked.extend(
                r.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["id"].as_str().unwrap().to_owned()),
            ),
            _ => {
                refused = Some(r);
                break;
            }
        }
    }
    let refused = refused.expect("the disk filled up");
    assert_eq!(
        (refused.status, refused.code()),
        (507, "disk_full"),
        "{}",
        refused.text
    );
    assert!(
        refused.message().contains("disk is full"),
        "{}",
        refused.text
    );

    let metrics = crate::metrics::scrape(&d);
    assert!(
        metrics["opslog_disk_full_rejections_total"] >= 1.0,
        "{metrics:?}"
    );

    // Reads keep working and show everything acknowledged.
    let op = d.get(&format!("/v1/environments/prod/operations/{id}"), PROD_KEY);
    assert_eq!(op.status, 200, "{}", op.text);
    assert_eq!(op.body["message_count"], acked.len() as u64);
    assert_eq!(d.raw("GET", "/healthz", None, &[], None).status, 200);

    // Space returns: writes succeed again.
    std::fs::remove_file(&ballast).unwrap();
    let r = eventually(Duration::from_secs(30), || {
        let r = d.post(&path, PROD_KEY, &json!({"message": "after space returned"}));
        (r.status == 201).then_some(r)
    });
    acked.push(r.body["id"].as_str().unwrap().to_owned());
    let mut stored = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1_000 {
        let page = d.get(&format!("{path}?limit=500{cursor}"), PROD_KEY);
        stored.extend(
            page.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(stored, acked, "every acknowledged message, once, in order");
    // The index caught up too.
    eventually(Duration::from_secs(30), || {
        let r = d.get("/v1/environments/prod/messages?q=returned", PROD_KEY);
        (r.body["total"] == 1).then_some(())
    });
    drop(d);
}
