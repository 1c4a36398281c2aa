//! `opslog bench` end to end, small: the JSON report has every figure, with totals that match the
//! generated workload. Content only: no timing is asserted (speed is reported, not tested).

use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_opslog");

#[test]
fn bench_reports_every_figure_for_both_stores() {
    let output = Command::new(BIN)
        .args([
            "bench",
            "--messages",
            "20k",
            "--clients",
            "4",
            "--query-runs",
            "3",
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("running opslog bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "opslog bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(report["messages"], 20_000);
    let queries = [
        "rare term",
        "common term",
        "phrase",
        "term + integration + state",
        "operations whose messages match",
        "level + time range count",
        "one connection's operations",
        "facets (connection_id)",
        "insights (24 h by hour)",
    ];
    let mut operations = None;
    for side in ["opslog", "sqlite"] {
        let s = &report[side];
        let figure = |name: &str| -> f64 {
            s[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{side}.{name} missing in {s}"))
        };
        assert_eq!(s["messages"], 20_000, "{side}: every message acknowledged");
        assert_eq!(
            s["messages_counted"], 20_000,
            "{side}: every message stored"
        );
        let ops = s["operations"].as_u64().unwrap();
        // 1-40 messages each.
        assert!((500..=20_000).contains(&ops), "{side}: {ops} operations");
        // Both stores got the very same workload.
        assert_eq!(
            *operations.get_or_insert(ops),
            ops,
            "{side}: same operations"
        );
        for name in [
            "ingest_messages_per_s",
            "ingest_mb_per_s",
            "paced_messages_per_s",
        ] {
            assert!(figure(name) > 0.0, "{side}.{name}");
        }
        for name in ["ack", "ack_at_80pct"] {
            let p50 = s[name]["p50_ms"].as_f64().unwrap();
            let p99 = s[name]["p99_ms"].as_f64().unwrap();
            assert!(p50 > 0.0 && p99 >= p50, "{side}.{name}: {p50} {p99}");
        }
        assert!(figure("bytes_per_message") > 10.0, "{side}");
        assert!(figure("peak_rss_bytes") > 1e6, "{side}");
        assert!(figure("cpu_us_per_message") > 0.0, "{side}");
        let got: Vec<&str> = s["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["name"].as_str().unwrap())
            .collect();
        assert_eq!(got, queries, "{side}");
        for q in s["queries"].as_array().unwrap() {
            assert!(q["p50_ms"].as_f64().unwrap() > 0.0, "{side}: {q}");
            assert!(q["p99_ms"].as_f64().unwrap() >= q["p50_ms"].as_f64().unwrap());
            assert!(q["runs"].as_u64().unwrap() >= 3);
        }
        let total = |i: usize| s["queries"][i]["total"].as_u64().unwrap();
        assert_eq!(
            total(0),
            1,
            "{side}: the rare term is in exactly one message"
        );
        assert!(total(1) > 1_000, "{side}: common term");
        assert!(total(2) > 10, "{side}: phrase");
        assert!(total(4) > 10, "{side}: operations matching");
        assert!(total(5) > 1_000 && total(5) < 20_000, "{side}: errors");
        assert!(total(6) > 10, "{side}: the hottest connection");
        assert!(total(7) > 100, "{side}: distinct connections");
        assert_eq!(total(8), ops, "{side}: insights count every operation");
    }
    // The same data answers the same text queries in both stores.
    for i in [0, 1, 2, 5, 6, 7] {
        assert_eq!(
            report["opslog"]["queries"][i]["total"], report["sqlite"]["queries"][i]["total"],
            "query {i}"
        );
    }
    // The daemon ran as its own process: its CPU is split by what its threads do, and the
    // split adds up to the whole.
    let opslog = &report["opslog"];
    let roles = opslog["cpu_us_per_message_by_role"]
        .as_object()
        .unwrap_or_else(|| panic!("no CPU split in {opslog}"));
    for role in ["http", "writer", "indexer"] {
        assert!(roles[role].as_f64().unwrap() > 0.0, "{role} in {roles:?}");
    }
    // Its own memory is a part of what it has resident (which also counts the mapped index).
    let anon = opslog["peak_anon_rss_bytes"].as_f64().unwrap();
    assert!(
        anon > 1e6 && anon <= opslog["peak_rss_bytes"].as_f64().unwrap(),
        "{opslog}"
    );
    let split: f64 = roles.values().map(|v| v.as_f64().unwrap()).sum();
    let whole = opslog["cpu_us_per_message"].as_f64().unwrap();
    assert!((split - whole).abs() <= whole * 0.01, "{split} vs {whole}");
    let stderr_lines = stderr.lines().collect::<Vec<_>>();
    assert!(
        stderr_lines.iter().any(|l| l.contains("daemon pid")),
        "{stderr}"
    );
    let visibility = &report["opslog"]["visibility"];
    assert!(visibility["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(report["opslog"]["visibility_probes"].as_u64().unwrap() > 0);
    let ratios = report["ratios"].as_array().unwrap();
    assert!(ratios.len() >= 5 + 2 * queries.len());
    assert!(ratios
        .iter()
        .all(|r| r["opslog_advantage"].as_f64().unwrap() > 0.0));
}

#[test]
fn bench_otlp_ingests_exactly_what_it_sent_beside_the_json_api() {
    let output = Command::new(BIN)
        .args([
            "bench",
            "--messages",
            "5k",
            "--clients",
            "2",
            "--query-runs",
            "3",
            "--skip-sqlite",
            "--otlp",
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("running opslog bench --otlp");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "opslog bench failed: {stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let (json, otlp) = (&report["opslog"], &report["otlp"]);
    assert_eq!(otlp["protocol"], "OTLP/HTTP protobuf");
    // The same operations, every message acknowledged and then counted by the daemon's search.
    assert_eq!(otlp["messages"], 5_000, "{otlp}");
    assert_eq!(otlp["messages_counted"], 5_000, "{otlp}");
    assert_eq!(otlp["operations"], json["operations"], "{otlp}");
    for name in ["messages_per_s", "mb_per_s", "cpu_us_per_message"] {
        assert!(otlp[name].as_f64().unwrap() > 0.0, "{name}: {otlp}");
    }
}
