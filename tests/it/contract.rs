//! The API contract, fuzzed: schemathesis (pinned and installed into the repo's `.venv` by
//! `scripts/test`) drives every operation of the served `/openapi.json` through its coverage,
//! fuzzing and stateful phases with every check, against a real daemon. Any failure (a 5xx, an
//! answer the document does not describe, a valid request refused, an invalid one accepted) fails
//! this test. The run is seeded (tests/schemathesis/schemathesis.toml), so it repeats in CI;
//! OPSLOG_FUZZ_SEED, OPSLOG_FUZZ_EXAMPLES and OPSLOG_FUZZ_SECONDS run it differently or longer.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opslog::config::OtelConfig;

use crate::support::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Far more than the seeded run takes (about 3 minutes on 2 cores); a hung run fails instead of
/// holding CI.
const DEADLINE: Duration = Duration::from_secs(30 * 60);

#[test]
fn contract_schemathesis_finds_no_failure() {
    let exe = std::env::var_os("OPSLOG_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(REPO).join(".venv/bin/schemathesis"));
    assert!(
        exe.exists(),
        "{} is missing: ./scripts/test installs schemathesis into .venv",
        exe.display()
    );
    // Webhooks and OTLP exports go to a closed loopback port, fixed by the file so no fuzzed
    // setting can send them anywhere else (the API answers 409 for fields the file sets).
    let d = Daemon::start_with(|c| {
        let prod = c.environments.get_mut("prod").unwrap();
        prod.webhooks.url = Some("http://127.0.0.1:9/hook".into());
        prod.webhooks.secondary_url = Some("http://127.0.0.1:9/secondary".into());
        prod.webhooks.allow_insecure_http = Some(true);
        prod.otel =
            Some(toml::from_str::<OtelConfig>(r#"endpoint = "http://127.0.0.1:9""#).unwrap());
    });
    let ingress = d.get("/v1/environments/dev/settings", ADMIN).body["ingress"]["token"]
        .as_str()
        .expect("dev's ingress token")
        .to_owned();
    let mut command = Command::new(&exe);
    command
        .current_dir(PathBuf::from(REPO).join("tests/schemathesis"))
        .args(["--config-file", "schemathesis.toml", "--no-color", "run"])
        .arg(d.url("/openapi.json"))
        .env("OPSLOG_URL", &d.base)
        .env("OPSLOG_TOKEN", ADMIN)
        .env("OPSLOG_INGRESS_TOKEN", &ingress)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (variable, option) in [
        ("OPSLOG_FUZZ_SEED", "--seed"),
        ("OPSLOG_FUZZ_EXAMPLES", "--max-examples"),
        ("OPSLOG_FUZZ_SECONDS", "--max-time"),
    ] {
        if let Ok(value) = std::env::var(variable) {
            command.arg(option).arg(value);
        }
    }
    let child = command.spawn().expect("schemathesis starts");
    let started = Instant::now();
    let output = wait_with_deadline(child, DEADLINE);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The summary (phases, case counts, seed) shows with `--nocapture`; all of it on failure.
    let summary: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("API Operations:"))
        .collect();
    println!(
        "schemathesis ran {:.0?}:\n{}",
        started.elapsed(),
        summary.join("\n")
    );
    assert!(
        output.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains(" passed") && !stdout.contains(" failed"),
        "schemathesis reported no passing cases, or some failed:\n{stdout}"
    );
}

/// Waits for `child`, killing it (and failing) once `limit` has passed.
fn wait_with_deadline(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis did not finish within {limit:?}:\n{}",
                String::from_utf8_lossy(&out.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
