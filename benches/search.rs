//! Search latency and ingest-with-indexing throughput: the real daemon in-process on a temp dir, a
//! seeded workload ingested over HTTP by 8 clients, then a fixed query set, each run many times.
//!
//! `cargo bench --bench search [-- --messages 1000000]`
//! Under `cargo test` (no `--bench` argument) it runs on a small workload as a smoke test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opslog::config::{Config, EnvironmentConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const KEY: &str = "bench-prod-key-0123456789";
const INTEGRATIONS: &[&str] = &[
    "github",
    "salesforce",
    "hubspot",
    "stripe",
    "slack",
    "notion",
    "jira",
    "zendesk",
    "shopify",
    "intercom",
    "asana",
    "linear",
    "gitlab",
    "quickbooks",
    "xero",
    "google-drive",
];

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One log line of a realistic mix: HTTP calls, user logs, validation warnings, API errors.
fn message(rng: &mut StdRng, integration: &str, n: u64) -> Value {
    match rng.random_range(0..100) {
        0..=54 => {
            let status = [200, 200, 200, 201, 204, 404, 429, 500, 502][rng.random_range(0..9)];
            let method = ["GET", "POST", "PATCH"][rng.random_range(0..3)];
            json!({"type": "http", "request": {"method": method,
                   "url": format!("https://api.{integration}.com/v2/records?page={}", n % 500)},
                   "response": {"status": status}, "duration_ms": rng.random_range(20..900)})
        }
        55..=79 => {
            json!({"message": format!("fetched {} records from {integration} page {} cursor {:x}", rng.random_range(1..500), n % 500, rng.random::<u32>())})
        }
        80..=89 => {
            let field = ["email", "title", "owner", "amount"][rng.random_range(0..4)];
            json!({"level": "warn", "message": format!("record {} failed validation: missing field `{field}`", rng.random::<u16>())})
        }
        90..=97 => {
            let text = [
                "rate limit exceeded, retrying in 30s",
                "invalid_grant: refresh token expired",
                "upstream timeout after 30000ms",
                "503 service unavailable from upstream",
            ][rng.random_range(0..4)];
            json!({"level": "error", "message": text})
        }
        _ => {
            json!({"level": "error", "message": format!("rare failure {} unique{}", integration, n)})
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let total_messages = if full {
        arg("--messages", 1_000_000)
    } else {
        20_000
    } as usize;
    let clients = 8;

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_owned();
    config.server.admin_tokens = vec!["bench-admin-token-0123456789".into()];
    config.environments.insert(
        "prod".into(),
        EnvironmentConfig {
            api_keys: vec![KEY.into()],
            ..Default::default()
        },
    );
    let shutdown = CancellationToken::new();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let token = shutdown.clone();
    let server = std::thread::spawn(move || {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let running = opslog::app::start(config, listener, token).await.unwrap();
                addr_tx.send(running.local_addr).unwrap();
                running.wait().await.unwrap();
            })
    });
    let base = format!("http://{}", addr_rx.recv().unwrap());
    let api = format!("{base}/v1/environments/prod");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let get = |path: &str| -> Value {
        agent
            .get(&format!("{api}{path}"))
            .header("authorization", &format!("Bearer {KEY}"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };
    let post = |url: &str, body: &Value| -> Value {
        agent
            .post(url)
            .header("authorization", &format!("Bearer {KEY}"))
            .send_json(body)
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    };

    // Ingest: each client starts operations of 1-40 messages and posts them in batches of 100.
    let sent = AtomicUsize::new(0);
    let started = Instant::now();
    let per_client = total_messages / clients;
    std::thread::scope(|s| {
        for c in 0..clients {
            let (sent, post, api) = (&sent, &post, &api);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(c as u64);
                let mut batch = Vec::with_capacity(100);
                let mut n = 0;
                while n < per_client {
                    let integration = INTEGRATIONS[(rng.random::<f64>().powi(2) * INTEGRATIONS.len() as f64) as usize];
                    let kind = ["sync", "sync", "action", "proxy", "webhook"][rng.random_range(0..5)];
                    let state = if rng.random_range(0..10) == 0 { "failed" } else { "success" };
                    let op = post(&format!("{api}/operations"), &json!({"type": kind, "state": state, "integration": integration,
                        "connection_id": format!("conn-{}", (rng.random::<f64>().powi(3) * 5000.0) as u32), "script": "records"}));
                    let op = op["id"].as_str().unwrap().to_owned();
                    for _ in 0..rng.random_range(1..=40).min(per_client - n) {
                        let mut m = message(&mut rng, integration, (c * per_client + n) as u64);
                        m["operation_id"] = json!(op);
                        batch.push(m);
                        n += 1;
                        if batch.len() == 100 {
                            post(&format!("{api}/messages"), &Value::Array(std::mem::take(&mut batch)));
                            sent.fetch_add(100, Ordering::Relaxed);
                        }
                    }
                }
                if !batch.is_empty() {
                    sent.fetch_add(batch.len(), Ordering::Relaxed);
                    post(&format!("{api}/messages"), &Value::Array(batch));
                }
            });
        }
    });
    let ingest_secs = started.elapsed().as_secs_f64();
    let ingested = sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(600);
    while get("/messages?limit=1")["total"].as_u64().unwrap() < ingested as u64 {
        assert!(Instant::now() < deadline, "index did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let caught_up = started.elapsed().as_secs_f64();
    println!("search bench: {ingested} messages");
    println!("  ingest over HTTP with indexing on: {:.0} messages/s ({ingested} in {ingest_secs:.1}s); all searchable after {caught_up:.1}s", ingested as f64 / ingest_secs);
    let disk: u64 = walk(dir.path());
    println!(
        "  data dir: {:.1} MB = {:.0} bytes per message",
        disk as f64 / 1e6,
        disk as f64 / ingested as f64
    );

    let queries: &[(&str, &str)] = &[
        ("rare term", "/messages?q=unique12345"),
        ("common term", "/messages?q=records"),
        ("phrase", "/messages?q=%22refresh%20token%20expired%22"),
        (
            "term + integration + state",
            "/operations?q=timeout&integration=github&state=failed",
        ),
        (
            "operations whose messages match",
            "/operations?q=invalid_grant",
        ),
        (
            "level + time range count",
            "/messages?level=error&from=2000-01-01T00:00:00Z&limit=1",
        ),
        (
            "one connection's operations",
            "/operations?connection_id=conn-1",
        ),
        ("facets", "/facets?field=connection_id"),
        ("insights", "/insights?interval=1h"),
    ];
    let runs = if full { 50 } else { 5 };
    for (name, path) in queries {
        let mut times = Vec::with_capacity(runs);
        let mut total = Value::Null;
        for _ in 0..runs {
            let t = Instant::now();
            let r = get(path);
            times.push(t.elapsed());
            total = r.get("total").cloned().unwrap_or(Value::Null);
        }
        times.sort();
        println!(
            "  {name:34} p50 {:7.2} ms  p99 {:7.2} ms  (total {total})",
            times[runs / 2].as_secs_f64() * 1e3,
            times[(runs * 99 / 100).min(runs - 1)].as_secs_f64() * 1e3
        );
    }
    shutdown.cancel();
    server.join().unwrap();
}

fn walk(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
