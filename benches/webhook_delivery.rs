//! Webhook delivery throughput: the real daemon in-process on a temp dir sends to a keep-alive
//! receiver on loopback. Two measures:
//! 1. live: 8 clients end N operations (each queues one `sync.completed` delivery in its commit);
//!    the clock runs until every delivery is received and recorded as delivered (one fsync'd
//!    attempt record each, group-committed);
//! 2. backlog: the receiver answers 410 until all N are `failed`, then answers 204 and one replay
//!    requeues them all at once; the clock runs from the replay until all are delivered again.
//!
//! `cargo bench --bench webhook_delivery [-- --deliveries 5000 --concurrency 16 --per-url 16]`
//! Under `cargo test` (no `--bench` argument) it runs a few deliveries as a smoke test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opslog::config::{Config, EnvironmentConfig, HumanDuration, WebhooksConfig};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const KEY: &str = "bench-prod-key-0123456789";
/// Replays need the admin token.
const ADMIN: &str = "bench-admin-token-0123456789";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Answers 204 (or 410 while `gone`) to every request, keeping connections open; counts
/// requests.
fn receiver(gone: Arc<AtomicBool>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let counter = counter.clone();
            let gone = gone.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let header = line.trim_end().to_ascii_lowercase();
                        if header.is_empty() {
                            break;
                        }
                        if let Some(v) = header.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    let answer: &[u8] = if gone.load(Ordering::Relaxed) {
                        b"HTTP/1.1 410 Gone\r\ncontent-length: 0\r\n\r\n"
                    } else {
                        b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"
                    };
                    if writer.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, count)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let deliveries = if full { arg("--deliveries", 5000) } else { 20 } as usize;
    let concurrency = arg("--concurrency", 16) as usize;
    let per_url = arg("--per-url", 16) as usize;
    let gone = Arc::new(AtomicBool::new(false));
    let (url, received) = receiver(gone.clone());

    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_owned();
    config.server.admin_tokens = vec![ADMIN.into()];
    config.outbox.concurrency = concurrency;
    config.outbox.per_destination = per_url;
    config.environments.insert(
        "prod".into(),
        EnvironmentConfig {
            api_keys: vec![KEY.into()],
            webhooks: WebhooksConfig {
                url: Some(url),
                events: Some(vec![opslog::model::EventType::SyncCompleted]),
                timeout: Some(HumanDuration(Duration::from_secs(5))),
                ..Default::default()
            },
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
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();

    let started = Instant::now();
    let clients = 8;
    std::thread::scope(|s| {
        for c in 0..clients {
            let (agent, base) = (agent.clone(), base.clone());
            s.spawn(move || {
                for i in (c..deliveries).step_by(clients) {
                    let response = agent
                        .post(&format!("{base}/v1/environments/prod/operations"))
                        .header("authorization", &format!("Bearer {KEY}"))
                        .send_json(json!({"type": "sync", "state": "success", "connection_id": format!("c{i}")}))
                        .unwrap();
                    assert_eq!(response.status(), 201);
                }
            });
        }
    });
    let queued = started.elapsed();
    let wait_for = |status: &str| {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let page: Value = agent
                .get(&format!(
                    "{base}/v1/environments/prod/deliveries?status={status}&limit=1"
                ))
                .header("authorization", &format!("Bearer {KEY}"))
                .call()
                .unwrap()
                .body_mut()
                .read_json()
                .unwrap();
            if page["total"].as_u64() == Some(deliveries as u64) {
                return;
            }
            assert!(Instant::now() < deadline, "deliveries did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for("delivered");
    let total = started.elapsed();
    assert_eq!(
        received.load(Ordering::Relaxed),
        deliveries,
        "each sent once"
    );
    println!(
        "live: {deliveries} deliveries (concurrency {concurrency}, per URL {per_url}): \
         operations queued in {:.2}s, all delivered and recorded in {:.2}s = {:.0} deliveries/s",
        queued.as_secs_f64(),
        total.as_secs_f64(),
        deliveries as f64 / total.as_secs_f64()
    );

    // Backlog: fail them all (410), then replay them at once to a receiver that accepts.
    gone.store(true, Ordering::Relaxed);
    let replay = |status: &str| {
        let response = agent
            .post(&format!(
                "{base}/v1/environments/prod/deliveries/replay?from=2000-01-01T00:00:00Z&status={status}"
            ))
            .header("authorization", &format!("Bearer {ADMIN}"))
            .send_empty()
            .unwrap();
        assert_eq!(response.status(), 202);
    };
    replay("delivered");
    wait_for("failed");
    gone.store(false, Ordering::Relaxed);
    let started = Instant::now();
    replay("failed");
    wait_for("delivered");
    let drained = started.elapsed();
    println!(
        "backlog: {deliveries} deliveries replayed at once, all delivered and recorded in {:.2}s = {:.0} deliveries/s",
        drained.as_secs_f64(),
        deliveries as f64 / drained.as_secs_f64()
    );
    shutdown.cancel();
    server.join().unwrap();
}
