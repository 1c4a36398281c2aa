//! HTTP ingest throughput with group commit: the real daemon in-process on a temp dir, N clients
//! posting batches of messages over loopback, each answer only after its fsync'd commit.
//!
//! `cargo bench --bench http_ingest [-- --clients 8 --batch 100 --seconds 10]`
//! Under `cargo test` (no `--bench` argument) it runs for a moment as a smoke test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opslog::config::{Config, EnvironmentConfig};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const KEY: &str = "bench-prod-key-0123456789";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let clients = arg("--clients", 8) as usize;
    let batch = arg("--batch", 100) as usize;
    let seconds = if full { arg("--seconds", 10) } else { 1 };

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_owned();
    config.server.admin_tokens = vec!["bench-admin-token-0123456789".into()];
    config.environments.insert(
        "prod".into(),
        EnvironmentConfig {
            api_keys: vec![KEY.into()],
            ..EnvironmentConfig::default()
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
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
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
    let commits = || -> u64 {
        let text = agent
            .get(&format!("{base}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("opslog_store_commits_total "))
            .unwrap()
            .parse()
            .unwrap()
    };

    let ops: Vec<String> = (0..clients)
        .map(|i| {
            let op = post(
                &format!("{base}/v1/environments/prod/operations"),
                &json!({"type": "sync", "integration": "github", "connection_id": format!("conn-{i}")}),
            );
            op["id"].as_str().unwrap().to_owned()
        })
        .collect();

    let commits_before = commits();
    let stop = AtomicBool::new(false);
    let latencies = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for (c, op) in ops.iter().enumerate() {
            let (stop, latencies, post, base) = (&stop, &latencies, &post, &base);
            s.spawn(move || {
                let url = format!("{base}/v1/environments/prod/operations/{op}/messages");
                let mut mine = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body: Vec<Value> = (0..batch)
                        .map(|m| {
                            n += 1;
                            json!({
                                "type": "http",
                                "request": {"method": "GET", "url": format!("https://api.github.com/repos/acme/r{c}/issues?page={n}")},
                                "response": {"status": if m % 17 == 0 { 429 } else { 200 }},
                                "duration_ms": 120 + m,
                                "message": format!("GET /repos/acme/r{c}/issues page {n} client {c}")
                            })
                        })
                        .collect();
                    let t = Instant::now();
                    post(&url, &Value::Array(body));
                    mine.push(t.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    let commits_made = commits() - commits_before;
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    let requests = latencies.len();
    let pct = |p: f64| latencies[((requests as f64 * p) as usize).min(requests - 1)];
    let messages = requests * batch;
    println!("http_ingest: {clients} clients x batches of {batch}, {elapsed:.1}s");
    println!(
        "  acknowledged: {messages} messages in {requests} requests = {:.0} messages/s ({:.0} requests/s)",
        messages as f64 / elapsed,
        requests as f64 / elapsed
    );
    println!(
        "  commits: {commits_made} = {:.0} commits/s, {:.1} requests per commit",
        commits_made as f64 / elapsed,
        requests as f64 / commits_made.max(1) as f64
    );
    println!(
        "  ack latency per batch: p50 {:.1} ms, p99 {:.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3
    );
    shutdown.cancel();
    server.join().unwrap();
}
