//! The crash matrix: the release binary under mixed load — writers creating operations, appending
//! message batches and ending operations (so webhooks and OTLP spans are queued), plus searches —
//! with a flaky webhook receiver and a flaky collector, SIGKILLed at seeded random moments many
//! times in a row and restarted on the same data dir each time.
//!
//! At the end, with both peers healthy and the outbox drained: every acknowledged operation and
//! message is stored exactly once with its content intact, operation states are the last
//! acknowledged ones, search agrees with the store, every event of an acknowledged end was
//! delivered at least once under one `webhook-id`, and every ended operation's span arrived with
//! its deterministic ids while no other operation's did.
//!
//! `OPSLOG_CRASH_SEED` replays a run's choices (what each writer does, when each kill falls);
//! `OPSLOG_CRASH_KILLS` sets the number of kills (default 20).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use opslog::model::{Id, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::collector::{self, Collector};
use crate::otel_export::expected_ids;
use crate::process::{agent, spawn, Process};
use crate::receiver::{verify_standard, Answer, Receiver};
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WRITERS: usize = 4;
/// Acknowledged writes a generation must see before its kill may fall.
const MIN_ACKS_BEFORE_KILL: usize = 3;
/// After that, the kill falls this long later at most (seeded).
const MAX_KILL_DELAY_MS: u64 = 900;
/// Webhook attempt timeout: the flaky receiver's slow answers come after it.
const WEBHOOK_TIMEOUT_MS: u64 = 800;
/// The words every stored message text carries, so one search counts them all.
const MESSAGE_MARK: &str = "crashpayload";
const KINDS: [(&str, &str); 4] = [
    ("sync", "run"),
    ("action", "run"),
    ("auth", "create_connection"),
    ("proxy", "call"),
];
const INTEGRATIONS: [&str; 3] = ["github", "salesforce", "hubspot"];
const LEVELS: [&str; 4] = ["debug", "info", "warn", "error"];
const EXPORTED: [&str; 4] = ["sync", "action", "webhook", "proxy"];

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}=`{value}` is not a number")),
    )
}

fn secret() -> String {
    let key = b"crash-matrix-webhook-secret-0123";
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

fn write_config(dir: &Path, webhook_url: &str, otel_endpoint: &str) -> PathBuf {
    let config = dir.join("opslog.toml");
    write_private(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
data_dir = "{data}"
admin_tokens = ["{ADMIN}"]

[outbox]
concurrency = 8
per_destination = 4
drain_timeout = "1s"

[environments.prod]
api_keys = ["{PROD_KEY}"]

[environments.prod.webhooks]
url = "{webhook_url}"
secret = "{secret}"
timeout = "{WEBHOOK_TIMEOUT_MS}ms"
retry_schedule = ["0s", "100ms", "200ms", "300ms", "500ms", "500ms", "1s", "1s", "1s", "1s", "1s", "1s"]

[environments.prod.otel]
endpoint = "{otel_endpoint}"
timeout = "2s"
"#,
            data = dir.join("data").display(),
            secret = secret(),
        ),
    )
    .unwrap();
    config
}

// ---------------------------------------------------------------------------------------------
// Which daemon is up: writers wait here for the next generation after a request failed.

#[derive(Default)]
struct Live {
    state: Mutex<LiveState>,
    changed: Condvar,
    /// Writes acknowledged by the current generation.
    acks: AtomicUsize,
}

#[derive(Default)]
struct LiveState {
    generation: u64,
    base: Option<String>,
    /// No generation follows the current one.
    last: bool,
}

impl Live {
    fn up(&self, base: String, last: bool) {
        let mut state = self.state.lock().unwrap();
        state.generation += 1;
        state.base = Some(base);
        state.last = last;
        self.acks.store(0, Ordering::SeqCst);
        self.changed.notify_all();
    }

    fn down(&self) {
        self.state.lock().unwrap().base = None;
    }

    fn finishing(&self) -> bool {
        self.state.lock().unwrap().last
    }

    /// The daemon to send to: one newer than generation `failed` (where a request just got no
    /// answer). `None` when no newer one will come.
    fn daemon(&self, failed: u64) -> Option<(u64, String)> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut state = self.state.lock().unwrap();
        loop {
            if state.generation > failed {
                if let Some(base) = &state.base {
                    return Some((state.generation, base.clone()));
                }
            } else if state.last {
                return None;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("a daemon came up within 120 s");
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
    }
}

/// The daemon's answer, or `None` when the connection failed (the daemon was killed).
fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("authorization", format!("Bearer {PROD_KEY}"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = match body {
        Some(b) => agent.run(builder.body(serde_json::to_vec(b).unwrap()).unwrap()),
        None => agent.run(builder.body(()).unwrap()),
    }
    .ok()?;
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .ok()?;
    Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

// ---------------------------------------------------------------------------------------------
// What the writers were told is durable.

#[derive(Clone, Debug)]
struct End {
    state: &'static str,
    records: Value,
}

#[derive(Debug)]
struct OpRecord {
    id: String,
    /// The token in its title, as last acknowledged.
    token: String,
    /// Tokens of titles it had before a rename: search must no longer find it by them.
    old_tokens: Vec<String>,
    renames: usize,
    kind: &'static str,
    action: &'static str,
    integration: &'static str,
    connection_id: String,
    /// The acknowledged end (a PATCH, or created ended).
    end: Option<End>,
    /// Created with a deadline a few seconds out and never ended: the sweeper times it out.
    times_out: bool,
    /// What was done to it, with the daemon generation that answered: shown when a check fails.
    history: Vec<String>,
}

impl OpRecord {
    /// The state the store must show once the sweeper has run.
    fn final_state(&self) -> &'static str {
        match (&self.end, self.times_out) {
            (Some(end), _) => end.state,
            (None, true) => "timeout",
            (None, false) => "running",
        }
    }
}

#[derive(Clone, Debug)]
struct MessageDraft {
    op: String,
    token: String,
    text: String,
    level: &'static str,
    n: usize,
}

impl MessageDraft {
    fn json(&self, with_op: bool) -> Value {
        let mut body = json!({
            "message": self.text,
            "level": self.level,
            "meta": {"token": self.token, "n": self.n},
        });
        if with_op {
            body["operation_id"] = json!(self.op);
        }
        body
    }
}

#[derive(Default)]
struct Ledger {
    ops: Vec<OpRecord>,
    /// Acknowledged messages with their ids.
    messages: Vec<(String, MessageDraft)>,
    /// Batches sent without an answer: each is stored whole or not at all, at most once.
    uncertain: Vec<Vec<MessageDraft>>,
    /// Answers that should never happen.
    errors: Vec<String>,
}

struct Writer<'a> {
    number: usize,
    rng: StdRng,
    live: &'a Live,
    agent: ureq::Agent,
    tokens: &'a Mutex<Vec<String>>,
    ledger: Ledger,
    /// Indexes into `ledger.ops` of operations still running (messages go there).
    open: Vec<usize>,
    /// The generation a request last got no answer from.
    failed: u64,
    batches: usize,
    /// The generation that answered the last `send`, and how many tries it took.
    answered: (u64, usize),
}

impl Writer<'_> {
    fn run(mut self) -> Ledger {
        let mut created = 0;
        for _ in 0..1_000_000 {
            if self.live.finishing() {
                break;
            }
            let roll: f64 = self.rng.random();
            if self.open.len() < 2 || roll < 0.15 {
                self.create(created);
                created += 1;
            } else if roll < 0.78 {
                self.append();
            } else if roll < 0.84 {
                self.rename();
            } else {
                self.end();
            }
        }
        self.ledger
    }

    /// Sends until a daemon answers; a request without an answer is repeated (same body) to the
    /// next generation when `repeat`, else given up. `None`: no answer, and not repeated.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
        repeat: bool,
    ) -> Option<(u16, Value)> {
        for tries in 0..10_000 {
            let Some((generation, base)) = self.live.daemon(self.failed) else {
                self.ledger
                    .errors
                    .push(format!("{method} {path}: no daemon answered"));
                return None;
            };
            match request(
                &self.agent,
                method,
                &format!("{base}{PROD}{path}"),
                headers,
                Some(body),
            ) {
                Some(answer) => {
                    self.answered = (generation, tries + 1);
                    if (200..300).contains(&answer.0) {
                        self.live.acks.fetch_add(1, Ordering::SeqCst);
                    }
                    return Some(answer);
                }
                None => {
                    self.failed = generation;
                    if !repeat {
                        return None;
                    }
                }
            }
        }
        panic!("{method} {path}: never answered");
    }

    fn create(&mut self, n: usize) {
        let (kind, action) = KINDS[self.rng.random_range(0..KINDS.len())];
        let integration = INTEGRATIONS[self.rng.random_range(0..INTEGRATIONS.len())];
        let token = format!("opw{}n{n}", self.number);
        let key = format!("crash-w{}-op{n}", self.number);
        let connection_id = format!("conn-w{}-{n}", self.number);
        let mut body = json!({
            "type": kind,
            "action": action,
            "integration": integration,
            "connection_id": connection_id,
            "message": format!("{token} crash operation"),
            "meta": {"idempotency_key": key},
        });
        let roll: f64 = self.rng.random();
        let ended_at_creation = if roll < 0.1 {
            // Created ended: its events and span are queued by the creation itself.
            let end = self.end_body(kind);
            for (field, value) in end.as_object().unwrap() {
                body[field] = value.clone();
            }
            Some(End {
                state: if end["state"] == "success" {
                    "success"
                } else {
                    "failed"
                },
                records: end.get("records").cloned().unwrap_or(Value::Null),
            })
        } else {
            None
        };
        let times_out = ended_at_creation.is_none() && roll > 0.9;
        if times_out {
            let deadline = Timestamp::now().plus_millis(self.rng.random_range(300..3000));
            body["expires_at"] = json!(deadline.to_string());
        }
        // Sent again with the same key until answered: created exactly once.
        let Some((status, reply)) = self.send(
            "POST",
            "/operations",
            &[("idempotency-key", &key)],
            &body,
            true,
        ) else {
            return;
        };
        if status != 201 {
            self.ledger
                .errors
                .push(format!("create {key}: {status} {reply}"));
            return;
        }
        self.ledger.ops.push(OpRecord {
            id: reply["id"].as_str().unwrap().to_owned(),
            token,
            old_tokens: Vec::new(),
            renames: 0,
            kind,
            action,
            integration,
            connection_id,
            end: ended_at_creation.clone(),
            times_out,
            history: vec![format!(
                "created: g{} try {}",
                self.answered.0, self.answered.1
            )],
        });
        if ended_at_creation.is_none() {
            self.open.push(self.ledger.ops.len() - 1);
        }
    }

    fn append(&mut self) {
        let targets = self.rng.random_range(1..=3usize.min(self.open.len()));
        let mut chosen: Vec<usize> = Vec::new();
        while chosen.len() < targets {
            let op = self.open[self.rng.random_range(0..self.open.len())];
            if !chosen.contains(&op) {
                chosen.push(op);
            }
        }
        let batch_no = self.batches;
        self.batches += 1;
        let mut drafts = Vec::new();
        for op in &chosen {
            for _ in 0..self.rng.random_range(1..=12) {
                let n = drafts.len();
                let token = format!("tw{}b{batch_no}m{n}", self.number);
                let level = LEVELS[self.rng.random_range(0..LEVELS.len())];
                let filler = "x".repeat(self.rng.random_range(0..200));
                drafts.push(MessageDraft {
                    op: self.ledger.ops[*op].id.clone(),
                    text: format!("{token} {MESSAGE_MARK} {level} {filler}"),
                    token,
                    level,
                    n,
                });
            }
        }
        let (path, body) = if chosen.len() == 1 && self.rng.random_bool(0.6) {
            let body: Vec<Value> = drafts.iter().map(|d| d.json(false)).collect();
            (format!("/operations/{}/messages", drafts[0].op), body)
        } else {
            let body: Vec<Value> = drafts.iter().map(|d| d.json(true)).collect();
            ("/messages".to_owned(), body)
        };
        match self.send("POST", &path, &[], &Value::Array(body), false) {
            None => self.ledger.uncertain.push(drafts),
            Some((201, reply)) => {
                let stored = reply["data"].as_array().cloned().unwrap_or_default();
                if stored.len() != drafts.len() {
                    self.ledger
                        .errors
                        .push(format!("batch {batch_no}: {} acknowledged", stored.len()));
                    return;
                }
                let mut tokens = self.tokens.lock().unwrap();
                for (message, draft) in stored.iter().zip(drafts) {
                    tokens.push(draft.token.clone());
                    let id = message["id"].as_str().unwrap().to_owned();
                    self.ledger.messages.push((id, draft));
                }
            }
            Some((status, reply)) => self
                .ledger
                .errors
                .push(format!("append {path}: {status} {reply}")),
        }
    }

    fn end(&mut self) {
        let slot = self.rng.random_range(0..self.open.len());
        let index = self.open[slot];
        // About one in six operations is never ended: it must never be exported. One that is
        // to time out is left to the sweeper.
        if self.ledger.ops[index].times_out || self.rng.random_bool(0.15) {
            self.open.swap_remove(slot);
            return;
        }
        let body = self.end_body(self.ledger.ops[index].kind);
        let state = if body["state"] == "success" {
            "success"
        } else {
            "failed"
        };
        let records = body.get("records").cloned().unwrap_or(Value::Null);
        let path = format!("/operations/{}", self.ledger.ops[index].id);
        // Repeating the same terminal state is idempotent: sent until answered.
        let Some((status, reply)) = self.send("PATCH", &path, &[], &body, true) else {
            return;
        };
        self.open.swap_remove(slot);
        if status != 200 || reply["state"] != state {
            self.ledger
                .errors
                .push(format!("end {path} as {state}: {status} {reply}"));
            return;
        }
        self.ledger.ops[index].end = Some(End { state, records });
    }

    /// Retitles a running operation: the index must drop the old title's document.
    fn rename(&mut self) {
        let index = self.open[self.rng.random_range(0..self.open.len())];
        let op = &self.ledger.ops[index];
        if op.times_out {
            return; // may have timed out already: a title change would be refused
        }
        let token = format!("{}r{}", op.token.split('r').next().unwrap(), op.renames + 1);
        let path = format!("/operations/{}", op.id);
        let body = json!({"message": format!("{token} crash operation renamed")});
        // Setting the same title again is harmless: sent until answered.
        let Some((status, reply)) = self.send("PATCH", &path, &[], &body, true) else {
            return;
        };
        if status != 200 || reply["message"] != body["message"] {
            self.ledger
                .errors
                .push(format!("rename {path}: {status} {reply}"));
            return;
        }
        let op = &mut self.ledger.ops[index];
        op.history.push(format!(
            "renamed to {token}: g{} try {}",
            self.answered.0, self.answered.1
        ));
        op.renames += 1;
        let old = std::mem::replace(&mut op.token, token);
        op.old_tokens.push(old);
    }

    /// A terminal state, with records (a successful sync) or an error (a failure).
    fn end_body(&mut self, kind: &str) -> Value {
        if self.rng.random_bool(0.6) {
            let mut body = json!({"state": "success"});
            if kind == "sync" {
                body["records"] = json!([
                    {"model": "Issue", "added": self.rng.random_range(0..3), "updated": 1, "deleted": 0},
                    {"model": "Comment", "added": self.rng.random_range(0..2), "updated": 0, "deleted": 0},
                ]);
            }
            body
        } else {
            json!({
                "state": "failed",
                "error": {"message": "crash matrix failure", "type": "crash_test"},
            })
        }
    }
}

/// Concurrent searches during the load: each answer must be right for what it claims, whatever
/// the index has caught up with. Returns how many were answered.
fn search_under_load(
    live: &Live,
    tokens: &Mutex<Vec<String>>,
    seed: u64,
    errors: &Mutex<Vec<String>>,
) -> usize {
    let agent = agent();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EA2C4);
    let mut failed = 0;
    let mut answered = 0;
    for _ in 0..1_000_000 {
        if live.finishing() {
            break;
        }
        let Some((generation, base)) = live.daemon(failed) else {
            break;
        };
        let token = {
            let tokens = tokens.lock().unwrap();
            if tokens.is_empty() {
                None
            } else {
                Some(tokens[rng.random_range(0..tokens.len())].clone())
            }
        };
        let path = match (rng.random_range(0..4), &token) {
            (0, Some(token)) => format!("/messages?q={token}&limit=5"),
            (1, _) => "/operations?type=sync&state=success&limit=5".to_owned(),
            (2, _) => "/facets?field=integration".to_owned(),
            _ => format!("/messages?q={MESSAGE_MARK}&level=error&limit=5"),
        };
        let Some((status, page)) =
            request(&agent, "GET", &format!("{base}{PROD}{path}"), &[], None)
        else {
            failed = generation;
            continue;
        };
        answered += 1;
        let wrong = match status {
            200 => {
                let data = page["data"].as_array().cloned().unwrap_or_default();
                if let Some(token) = token.as_deref().filter(|_| path.contains("q=tw")) {
                    // A unique token: found once or not yet, never twice or in another message.
                    page["total"].as_u64() > Some(1)
                        || data
                            .iter()
                            .any(|m| !m["message"].as_str().unwrap_or("").contains(token))
                } else if path.starts_with("/operations") {
                    data.iter()
                        .any(|op| op["state"] != "success" || op["type"] != "sync")
                } else if path.contains("level=error") {
                    data.iter().any(|m| m["level"] != "error")
                } else {
                    page["data"].as_array().is_none()
                }
            }
            // The index may be rebuilding right after a restart.
            503 => false,
            _ => true,
        };
        if wrong {
            errors
                .lock()
                .unwrap()
                .push(format!("GET {path}: {status} {page}"));
        }
    }
    answered
}

// ---------------------------------------------------------------------------------------------
// Flaky peers.

/// Per webhook-id, how many requests the receiver answered 200 in time.
type Accepted = Arc<Mutex<HashMap<String, usize>>>;

/// Fails a seeded ~30% of requests: 500s and answers slower than the attempt timeout.
fn flaky_receiver(seed: u64, accepted: Accepted) -> Receiver {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00C0_FFEE);
    Receiver::start(move |request, _| {
        let roll: f64 = rng.random();
        if roll < 0.2 {
            Answer::Status(500, "flaky")
        } else if roll < 0.3 {
            Answer::Slow(Duration::from_millis(WEBHOOK_TIMEOUT_MS + 700), 200)
        } else {
            record_accepted(&accepted, request.header("webhook-id"));
            Answer::Status(200, "ok")
        }
    })
}

fn record_accepted(accepted: &Accepted, webhook_id: &str) {
    *accepted
        .lock()
        .unwrap()
        .entry(webhook_id.to_owned())
        .or_default() += 1;
}

/// A collector that answers a seeded ~30% of its first requests 503 with a Retry-After.
fn flaky_collector(seed: u64) -> Collector {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x07E1);
    let script = (0..20_000)
        .map(|_| {
            if rng.random_bool(0.3) {
                collector::Answer::with(503, &[("retry-after", "1")], Vec::new())
            } else {
                collector::Answer::status(200)
            }
        })
        .collect();
    Collector::start(script)
}

// ---------------------------------------------------------------------------------------------

/// Kills the final daemon when the test ends, passing or not.
struct Running(Process);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.child.kill();
        let _ = self.0.child.wait();
    }
}

#[test]
fn sigkill_at_random_moments_under_mixed_load_loses_nothing_acknowledged() {
    let seed = env_number("OPSLOG_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let kills = env_number("OPSLOG_CRASH_KILLS").unwrap_or(20) as usize;
    eprintln!("crash matrix: seed {seed} (OPSLOG_CRASH_SEED={seed} replays it), {kills} kills");

    let accepted: Accepted = Arc::default();
    let receiver = flaky_receiver(seed, accepted.clone());
    let collector = flaky_collector(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &receiver.url(), &collector.url(""));

    let live = Live::default();
    let tokens = Mutex::new(Vec::new());
    let search_errors = Mutex::new(Vec::new());
    let (daemon, ledgers, searches, early_kills) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|number| {
                let writer = Writer {
                    number,
                    rng: StdRng::seed_from_u64(seed.wrapping_add(1 + number as u64)),
                    live: &live,
                    agent: agent(),
                    tokens: &tokens,
                    ledger: Ledger::default(),
                    open: Vec::new(),
                    failed: 0,
                    batches: 0,
                    answered: (0, 0),
                };
                s.spawn(move || writer.run())
            })
            .collect();
        let searcher = s.spawn(|| search_under_load(&live, &tokens, seed, &search_errors));
        let mut rng = StdRng::seed_from_u64(seed);
        let mut early_kills = 0;
        for kill in 0..kills {
            let mut process = spawn(&config);
            live.up(process.base.clone(), false);
            // The kill's moment, seeded: mostly anywhere in the load, sometimes while the daemon
            // is still catching up (index, outbox) from the last kill.
            let delay = if rng.random_bool(0.2) {
                early_kills += 1;
                rng.random_range(0..100)
            } else {
                let deadline = Instant::now() + Duration::from_secs(60);
                while live.acks.load(Ordering::SeqCst) < MIN_ACKS_BEFORE_KILL {
                    assert!(
                        Instant::now() < deadline,
                        "generation {kill}: no load within 60 s"
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
                rng.random_range(0..MAX_KILL_DELAY_MS)
            };
            std::thread::sleep(Duration::from_millis(delay));
            live.down();
            process.child.kill().unwrap();
            process.child.wait().unwrap();
        }
        // The last start: writers finish what they were repeating and stop.
        let process = Running(spawn(&config));
        live.up(process.0.base.clone(), true);
        let ledgers: Vec<Ledger> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        let searches = searcher.join().unwrap();
        (process, ledgers, searches, early_kills)
    });

    receiver.set_behaviour({
        let accepted = accepted.clone();
        move |request, _| {
            record_accepted(&accepted, request.header("webhook-id"));
            Answer::Status(200, "ok")
        }
    });
    collector.heal();

    let mut ledger = Ledger::default();
    for l in ledgers {
        ledger.ops.extend(l.ops);
        ledger.messages.extend(l.messages);
        ledger.uncertain.extend(l.uncertain);
        ledger.errors.extend(l.errors);
    }
    ledger.errors.extend(search_errors.into_inner().unwrap());
    assert!(
        ledger.errors.is_empty(),
        "{} unexpected answers under load, e.g. {:#?}",
        ledger.errors.len(),
        &ledger.errors[..ledger.errors.len().min(10)]
    );

    let check = Check {
        agent: agent(),
        base: daemon.0.base.clone(),
    };
    let stored = check.store_has_exactly_what_was_acknowledged(&ledger);
    check.search_agrees_with_the_store(&ledger, &stored);
    let webhooks = check.every_event_was_delivered(&ledger, &receiver, &accepted);
    let spans = check.every_ended_operation_was_exported(&ledger, &collector);

    eprintln!(
        "crash matrix: seed {seed}: {kills} kills ({early_kills} right after a start), {} \
         operations ({} ended, {} renames), {} acknowledged messages, {} unanswered batches ({} stored whole, the rest \
         not at all), {searches} searches; {} deliveries over {} requests ({} accepted twice or \
         more), {} spans over {} export requests ({} spans accepted more than once)",
        ledger.ops.len(),
        ledger
            .ops
            .iter()
            .filter(|o| o.final_state() != "running")
            .count(),
        ledger.ops.iter().map(|o| o.renames).sum::<usize>(),
        ledger.messages.len(),
        ledger.uncertain.len(),
        stored.landed_batches,
        webhooks.deliveries,
        webhooks.requests,
        webhooks.duplicates,
        spans.expected,
        spans.requests,
        spans.duplicates,
    );
    drop(daemon);
}

// ---------------------------------------------------------------------------------------------
// The checks, against the last daemon.

struct Check {
    agent: ureq::Agent,
    base: String,
}

/// What the store holds for the ledger's operations.
struct Stored {
    /// Every stored message of the ledger's operations: token -> (message id, operation, level).
    messages: BTreeMap<String, (String, String, String)>,
    landed_batches: usize,
}

struct WebhookSummary {
    deliveries: usize,
    requests: usize,
    duplicates: usize,
}

struct SpanSummary {
    expected: usize,
    requests: usize,
    duplicates: usize,
}

impl Check {
    fn get(&self, path: &str) -> Value {
        let (status, body) = request(
            &self.agent,
            "GET",
            &format!("{}{PROD}{path}", self.base),
            &[],
            None,
        )
        .unwrap_or_else(|| panic!("GET {path}: no answer"));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    fn total(&self, path: &str) -> u64 {
        self.get(path)["total"].as_u64().unwrap()
    }

    /// Every item of a paged list (`path` has a query already).
    fn all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let page = match &cursor {
                Some(c) => self.get(&format!("{path}&limit=500&cursor={c}")),
                None => self.get(&format!("{path}&limit=500")),
            };
            out.extend(page["data"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
        panic!("{path}: too many pages");
    }

    /// Operations and messages, read from the store (GET by id and an operation's messages).
    fn store_has_exactly_what_was_acknowledged(&self, ledger: &Ledger) -> Stored {
        let acked: HashMap<&str, (&str, &MessageDraft)> = ledger
            .messages
            .iter()
            .map(|(id, d)| (d.token.as_str(), (id.as_str(), d)))
            .collect();
        let uncertain: HashMap<&str, (usize, &MessageDraft)> = ledger
            .uncertain
            .iter()
            .enumerate()
            .flat_map(|(b, batch)| batch.iter().map(move |d| (d.token.as_str(), (b, d))))
            .collect();
        let mut landed = vec![0usize; ledger.uncertain.len()];
        let mut stored = BTreeMap::new();
        for op in ledger.ops.iter().filter(|o| o.final_state() == "timeout") {
            eventually(Duration::from_secs(30), || {
                let got = self.get(&format!("/operations/{}", op.id));
                (got["state"] != "running").then_some(())
            });
        }
        for op in &ledger.ops {
            let got = self.get(&format!("/operations/{}", op.id));
            let expected_state = op.final_state();
            assert_eq!(
                (
                    &got["type"],
                    &got["action"],
                    &got["integration"],
                    &got["connection_id"],
                    &got["state"]
                ),
                (
                    &json!(op.kind),
                    &json!(op.action),
                    &json!(op.integration),
                    &json!(op.connection_id),
                    &json!(expected_state)
                ),
                "operation {} is as last acknowledged: {got}",
                op.id
            );
            if let Some(end) = &op.end {
                if !end.records.is_null() {
                    assert_eq!(got["records"], end.records, "{got}");
                }
            }
            let messages = self.all(&format!("/operations/{}/messages?", op.id));
            assert_eq!(
                got["message_count"],
                messages.len() as u64,
                "message_count of {}",
                op.id
            );
            for m in messages {
                let token = m["meta"]["token"].as_str().unwrap_or("").to_owned();
                let id = m["id"].as_str().unwrap().to_owned();
                let draft = if let Some((acked_id, draft)) = acked.get(token.as_str()) {
                    assert_eq!(id, *acked_id, "`{token}` keeps its acknowledged id");
                    *draft
                } else if let Some((batch, draft)) = uncertain.get(token.as_str()) {
                    landed[*batch] += 1;
                    *draft
                } else {
                    panic!("operation {} holds a message nobody sent: {m}", op.id);
                };
                assert_eq!(
                    (
                        &m["operation_id"],
                        &m["message"],
                        &m["level"],
                        &m["meta"]["n"]
                    ),
                    (
                        &json!(draft.op),
                        &json!(draft.text),
                        &json!(draft.level),
                        &json!(draft.n)
                    ),
                    "content intact"
                );
                let level = draft.level.to_owned();
                let previous = stored.insert(token.clone(), (id, op.id.clone(), level));
                assert!(previous.is_none(), "`{token}` is stored more than once");
            }
        }
        for (token, (id, draft)) in &acked {
            assert!(
                stored.contains_key(*token),
                "acknowledged message {id} (`{token}`, operation {}) is lost",
                draft.op
            );
        }
        for (batch, count) in landed.iter().enumerate() {
            assert!(
                *count == 0 || *count == ledger.uncertain[batch].len(),
                "an unanswered batch is stored whole or not at all: {count} of {}",
                ledger.uncertain[batch].len()
            );
        }
        Stored {
            messages: stored,
            landed_batches: landed.iter().filter(|n| **n > 0).count(),
        }
    }

    /// Each stored message is found by its unique token and nothing else is; operations likewise;
    /// filter totals equal what the store holds.
    fn search_agrees_with_the_store(&self, ledger: &Ledger, stored: &Stored) {
        let everything = stored.messages.len() as u64;
        eventually(Duration::from_secs(60), || {
            (self.total(&format!("/messages?q={MESSAGE_MARK}&limit=1")) == everything).then_some(())
        });
        let tokens: Vec<(&String, &(String, String, String))> = stored.messages.iter().collect();
        for chunk in tokens.chunks(32) {
            let q = chunk
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>()
                .join(" OR ");
            let page = self.get(&format!(
                "/messages?q={}&limit=500",
                urlencoding::encode(&q)
            ));
            let found: BTreeMap<String, String> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["meta"]["token"].as_str().unwrap().to_owned(),
                        m["id"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            let wanted: BTreeMap<String, String> = chunk
                .iter()
                .map(|(t, (id, _, _))| ((*t).clone(), id.clone()))
                .collect();
            assert_eq!(page["total"], chunk.len() as u64, "{q}");
            assert_eq!(found, wanted, "each token finds exactly its message");
        }
        for chunk in ledger.ops.chunks(32) {
            let q = chunk
                .iter()
                .map(|o| o.token.as_str())
                .collect::<Vec<_>>()
                .join(" OR ");
            let page = self.get(&format!(
                "/operations?q={}&limit=500",
                urlencoding::encode(&q)
            ));
            let listed: Vec<(&str, &str)> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| (o["id"].as_str().unwrap(), o["message"].as_str().unwrap()))
                .collect();
            let found: BTreeSet<&str> = listed.iter().map(|(id, _)| *id).collect();
            let wanted: BTreeSet<&str> = chunk.iter().map(|o| o.id.as_str()).collect();
            if page["total"] != chunk.len() as u64 {
                let twice: Vec<String> = chunk
                    .iter()
                    .filter(|o| listed.iter().filter(|(id, _)| *id == o.id).count() > 1)
                    .map(|o| {
                        let old: Vec<String> = o
                            .old_tokens
                            .iter()
                            .map(|t| {
                                let total = self.total(&format!("/operations?q={t}&limit=1"));
                                format!("{t}: {total}")
                            })
                            .collect();
                        format!("{o:#?}; old tokens found: {old:?}")
                    })
                    .collect();
                panic!(
                    "{q}: total {} for {} operations; listed twice: {twice:#?}; missing {:?}",
                    page["total"],
                    chunk.len(),
                    wanted.difference(&found).collect::<Vec<_>>()
                );
            }
            assert_eq!(found, wanted, "each operation is indexed once");
        }
        let old: Vec<&str> = ledger
            .ops
            .iter()
            .flat_map(|o| o.old_tokens.iter().map(String::as_str))
            .collect();
        for chunk in old.chunks(32) {
            let q = urlencoding::encode(&chunk.join(" OR ")).into_owned();
            let page = self.get(&format!("/operations?q={q}&limit=5"));
            assert_eq!(
                page["total"], 0,
                "old titles are gone from the index: {page}"
            );
        }
        // Filter totals against the store's counts.
        let op_of: HashMap<&str, &OpRecord> =
            ledger.ops.iter().map(|o| (o.id.as_str(), o)).collect();
        for (kind, _) in KINDS {
            let of_kind = |o: &&OpRecord| o.kind == kind;
            assert_eq!(
                self.total(&format!("/operations?type={kind}&limit=1")),
                ledger.ops.iter().filter(of_kind).count() as u64,
                "operations of type {kind}: created exactly once each"
            );
            for state in ["success", "failed", "timeout", "running"] {
                let count = ledger
                    .ops
                    .iter()
                    .filter(of_kind)
                    .filter(|o| o.final_state() == state)
                    .count();
                assert_eq!(
                    self.total(&format!("/operations?type={kind}&state={state}&limit=1")),
                    count as u64,
                    "{kind} operations {state}"
                );
                let messages = stored
                    .messages
                    .values()
                    .filter(|(_, op, _)| {
                        let op = op_of[op.as_str()];
                        op.kind == kind && op.final_state() == state
                    })
                    .count();
                assert_eq!(
                    self.total(&format!(
                        "/messages?type={kind}&state={state}&q={MESSAGE_MARK}&limit=1"
                    )),
                    messages as u64,
                    "messages of {kind} operations {state}"
                );
            }
        }
        for integration in INTEGRATIONS {
            for level in LEVELS {
                let count = stored
                    .messages
                    .values()
                    .filter(|(_, op, l)| {
                        l.as_str() == level && op_of[op.as_str()].integration == integration
                    })
                    .count();
                assert_eq!(
                    self.total(&format!(
                        "/messages?integration={integration}&level={level}&q={MESSAGE_MARK}&limit=1"
                    )),
                    count as u64,
                    "{level} messages of {integration}"
                );
            }
        }
    }

    /// The outbox drains; each acknowledged end's events have one delivery each, delivered at
    /// least once, every request of one delivery under one `webhook-id`, signed.
    fn every_event_was_delivered(
        &self,
        ledger: &Ledger,
        receiver: &Receiver,
        accepted: &Accepted,
    ) -> WebhookSummary {
        let mut expected: BTreeMap<(String, String), usize> = BTreeMap::new();
        for op in &ledger.ops {
            let mut events = Vec::new();
            match (op.kind, op.final_state()) {
                (_, "running") => {}
                ("sync", state) => {
                    events.push("sync.completed");
                    if state == "success" {
                        let records = op.end.as_ref().map(|e| &e.records);
                        for r in records.and_then(Value::as_array).into_iter().flatten() {
                            let sum = ["added", "updated", "deleted"]
                                .iter()
                                .map(|k| r[k].as_u64().unwrap())
                                .sum::<u64>();
                            if sum > 0 {
                                events.push("sync.records");
                            }
                        }
                    }
                }
                ("auth", "success") => events.push("auth.created"),
                ("auth", _) => events.push("auth.failed"),
                _ => {}
            }
            for event in events {
                *expected
                    .entry((op.id.clone(), event.to_owned()))
                    .or_default() += 1;
            }
        }
        // Failed deliveries (a whole retry schedule of flaky answers) are replayed once healthy.
        let mut replayed = 0;
        let deliveries = eventually(Duration::from_secs(120), || {
            let all = self.all("/deliveries?");
            let pending = all.iter().filter(|d| d["status"] == "pending").count();
            for failed in all.iter().filter(|d| d["status"] == "failed") {
                let url = format!(
                    "{}{PROD}/deliveries/{}/retry",
                    self.base,
                    failed["id"].as_str().unwrap()
                );
                let (status, body) = request(&self.agent, "POST", &url, &[], None).unwrap();
                assert!(status < 300, "retry: {status} {body}");
                replayed += 1;
            }
            (pending == 0 && all.iter().all(|d| d["status"] == "delivered")).then_some(all)
        });
        let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
        for d in &deliveries {
            *got.entry((
                d["operation_id"].as_str().unwrap().to_owned(),
                d["event"].as_str().unwrap().to_owned(),
            ))
            .or_default() += 1;
        }
        assert_eq!(
            got, expected,
            "one delivery per event of each acknowledged end"
        );

        let requests = receiver.requests();
        let mut ids_per_event: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in &requests {
            assert!(verify_standard(&secret(), r), "signed: {}", r.text());
            ids_per_event
                .entry(r.json()["id"].as_str().unwrap().to_owned())
                .or_default()
                .insert(r.header("webhook-id").to_owned());
        }
        for (event, ids) in &ids_per_event {
            assert_eq!(
                ids.len(),
                1,
                "event {event} sent under several ids: {ids:?}"
            );
        }
        let accepted = accepted.lock().unwrap();
        let mut duplicates = 0;
        for d in &deliveries {
            let webhook_id = d["webhook_id"].as_str().unwrap();
            let times = accepted.get(webhook_id).copied().unwrap_or(0);
            assert!(
                times >= 1,
                "delivery {webhook_id} is `delivered` but the receiver never accepted it"
            );
            duplicates += times - 1;
        }
        eprintln!("crash matrix: {replayed} failed deliveries replayed once the receiver healed");
        WebhookSummary {
            deliveries: deliveries.len(),
            requests: requests.len(),
            duplicates,
        }
    }

    /// Every ended operation of an exported type (the ledger's and the `webhook:deliver` logs)
    /// arrived as a span with its derived ids; no other operation's span ever did.
    fn every_ended_operation_was_exported(
        &self,
        ledger: &Ledger,
        collector: &Collector,
    ) -> SpanSummary {
        // id -> (name, ok)
        let mut expected: BTreeMap<String, (String, bool)> = BTreeMap::new();
        for op in &ledger.ops {
            let state = op.final_state();
            if state != "running" && EXPORTED.contains(&op.kind) {
                expected.insert(
                    op.id.clone(),
                    (format!("{}.{}", op.kind, op.action), state == "success"),
                );
            }
        }
        for log in self.all("/operations?type=webhook:deliver") {
            let state = log["state"].as_str().unwrap();
            assert!(
                state == "success" || state == "failed",
                "every delivery log ended with its delivery: {log}"
            );
            expected.insert(
                log["id"].as_str().unwrap().to_owned(),
                ("webhook.deliver".into(), state == "success"),
            );
        }
        let accepted_spans = |received: &[collector::Received]| {
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for r in received.iter().filter(|r| r.answered == Some(200)) {
                for span in spans_of(r) {
                    *seen.entry(operation_of(&span)).or_default() += 1;
                }
            }
            seen
        };
        let received = eventually(Duration::from_secs(120), || {
            let received = collector.received();
            let seen = accepted_spans(&received);
            expected
                .keys()
                .all(|id| seen.contains_key(id))
                .then_some(received)
        });
        for span in received.iter().flat_map(spans_of) {
            let op = operation_of(&span);
            let Some((name, ok)) = expected.get(&op) else {
                panic!("a span for operation {op}, which has not ended: {span:?}");
            };
            assert_eq!(&span.name, name);
            let code = span.status.as_ref().map(|s| s.code).unwrap_or(0);
            assert_eq!(
                code == StatusCode::Error as i32,
                !ok,
                "status of {op}: {span:?}"
            );
            let (trace, span_id) = expected_ids(Id::parse(&op).unwrap());
            assert_eq!(
                hex::encode(&span.span_id),
                span_id,
                "span id derived from {op}"
            );
            // A delivery's log is a child span in the trace of the operation it is about.
            let trace = match span.parent_span_id.is_empty() {
                true => trace,
                false => {
                    ledger
                        .ops
                        .iter()
                        .map(|cause| expected_ids(Id::parse(&cause.id).unwrap()))
                        .find(|(_, cause_span)| *cause_span == hex::encode(&span.parent_span_id))
                        .unwrap_or_else(|| panic!("the parent of {op}'s span is no operation's"))
                        .0
                }
            };
            assert_eq!(hex::encode(&span.trace_id), trace, "trace id of {op}");
        }
        let duplicates = accepted_spans(&received)
            .values()
            .map(|n| n - 1)
            .sum::<usize>();
        SpanSummary {
            expected: expected.len(),
            requests: received.len(),
            duplicates,
        }
    }
}

fn spans_of(received: &collector::Received) -> Vec<Span> {
    received
        .decode()
        .resource_spans
        .into_iter()
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .collect()
}

fn operation_of(span: &Span) -> String {
    span.attributes
        .iter()
        .find(|kv| kv.key == "opslog.operation.id")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("a span without opslog.operation.id: {span:?}"))
}
