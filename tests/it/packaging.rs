//! Packaging: the systemd unit in `packaging/` is valid and hardened, and the release binary
//! survives SIGHUP (it says a restart is needed and keeps serving).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_opslog");
const UNIT: &str = include_str!("../../packaging/opslog.service");

/// `key=value` lines of the unit, in order (comments and section headers left out).
fn unit_keys() -> Vec<(String, String)> {
    UNIT.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn systemd_unit_has_the_hardening_and_paths_the_readme_promises() {
    let keys = unit_keys();
    let value = |key: &str| {
        keys.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the unit has no {key}="))
    };
    assert_eq!(
        value("ExecStart"),
        "/usr/local/bin/opslog serve --config /etc/opslog/opslog.toml"
    );
    assert_eq!(value("User"), "opslog");
    assert_eq!(value("ProtectSystem"), "strict");
    assert_eq!(value("ReadWritePaths"), "/var/lib/opslog");
    assert_eq!(value("NoNewPrivileges"), "true");
    assert_eq!(value("PrivateTmp"), "true");
    assert_eq!(value("ProtectHome"), "true");
    assert_eq!(value("Restart"), "on-failure");
    assert_eq!(value("WantedBy"), "multi-user.target");
    assert!(
        !keys.iter().any(|(k, _)| k == "ExecReload"),
        "opslog does not reload on SIGHUP, so the unit must not offer reload"
    );
    // The example config's data dir must be the writable path, or the hardened daemon cannot write.
    let readme = include_str!("../../README.md");
    assert!(readme.contains("data_dir = \"/var/lib/opslog\""));
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze not installed: only the unit's keys were checked");
        return;
    }
    // verify insists that ExecStart exists: point it at the binary under test, nothing else changes.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("opslog.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/opslog", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    // Unknown or misspelt keys are only warnings (exit 0): refuse those too.
    assert!(!stderr.contains("opslog.service:"), "{stderr}");
}

#[test]
fn sighup_is_logged_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opslog.toml");
    write_private(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_tokens = [\"{ADMIN}\"]\n\n[environments.prod]\napi_keys = [\"{PROD_KEY}\"]\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    // Keep draining stdout: the rest of the banner must not hit a closed pipe.
    std::thread::spawn(move || stdout.map_while(Result::ok).for_each(drop));
    let base = first
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let pid = child.id() as libc::pid_t;
    for _ in 0..2 {
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
        let line = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("opslog logged the SIGHUP");
            if line.contains("SIGHUP") {
                break line;
            }
        };
        assert!(line.contains("restart"), "{line}");
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let reply = agent
        .get(format!("{base}/v1/environments/prod/operations"))
        .header("authorization", format!("Bearer {PROD_KEY}"))
        .call()
        .expect("still serving after SIGHUP");
    assert_eq!(reply.status(), 200);
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "SIGTERM still stops it cleanly: {status:?}"
    );
}
