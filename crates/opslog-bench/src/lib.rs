//! `opslog bench`: how fast opslog ingests and searches a realistic workload on this machine, side
//! by side with SQLite + FTS5 on the same data, with the ratios.
//!
//! `workload` generates the data, `drive` runs the concurrent clients against a `Target`,
//! `opslog` and `sqlite` are the two targets. The run: SQLite first (so its peak memory is measured
//! in a fresh process), then opslog; each ingests the same streams at full speed, then a tenth more
//! paced at 80 % of that speed (the ack latency a provisioned system sees), then runs the query set.
//!
//! Must not: assert anything about timings; it measures and reports. Nor import the daemon: it
//! drives a daemon process (`opslog serve`) over HTTP, so the daemon's code knows nothing of it.

pub mod disk;
pub mod drive;
pub mod opslog;
pub mod otlp;
pub mod process;
pub mod soak;
pub mod sqlite;
pub mod workload;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use drive::{percentile_ms, Ingested, Plan, Target};

/// Milliseconds since the Unix epoch: when the run started, for the time-range query (written as
/// RFC 3339 in its URL, compared as a number in SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(since_epoch.as_millis() as i64)
    }

    pub fn plus_millis(self, millis: i64) -> Timestamp {
        Timestamp(self.0 + millis)
    }

    pub fn millis(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .map_err(|_| std::fmt::Error)?;
        let text = at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|_| std::fmt::Error)?;
        f.write_str(&text)
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub messages: u64,
    pub clients: usize,
    pub seed: u64,
    /// A running daemon's root URL and a key for `environment` on it.
    pub url: Option<String>,
    pub token: Option<String>,
    pub environment: String,
    pub skip_sqlite: bool,
    /// The binary whose `serve` runs the daemon; this one when `None`.
    pub daemon_bin: Option<std::path::PathBuf>,
    /// Messages per batch request.
    pub batch: usize,
    /// Whole operations with their messages a request (else creations, then appends).
    pub whole_operations: bool,
    /// Runs of each query (fewer when a query is slow: each gets at most ~10 s).
    pub query_runs: usize,
    /// Also ingest the same operations as OTLP/HTTP protobuf spans into a fresh daemon.
    pub otlp: bool,
}

/// One query of the fixed set, in both forms.
#[derive(Debug, Clone)]
pub enum QueryCase {
    Messages {
        fts: String,
    },
    OperationsMatching {
        fts: String,
        integration: Option<String>,
        state: Option<String>,
    },
    LevelSince {
        level: String,
    },
    Connection {
        connection_id: String,
    },
    Facets,
    Insights,
}

pub struct BenchQuery {
    pub name: &'static str,
    /// Path and query string under `/v1/environments/{env}`.
    pub http: String,
    pub sql: QueryCase,
}

/// The fixed query set. `since` bounds the time-range query (the run's start).
pub fn query_set(since: Timestamp) -> Vec<BenchQuery> {
    let rare = workload::rare_token(0, 0);
    let since_text = urlencoding::encode(&since.to_string()).into_owned();
    vec![
        BenchQuery {
            name: "rare term",
            http: format!("/messages?q={rare}"),
            sql: QueryCase::Messages { fts: rare },
        },
        BenchQuery {
            name: "common term",
            http: "/messages?q=records".into(),
            sql: QueryCase::Messages {
                fts: "records".into(),
            },
        },
        BenchQuery {
            name: "phrase",
            http: "/messages?q=%22refresh%20token%20expired%22".into(),
            sql: QueryCase::Messages {
                fts: "\"refresh token expired\"".into(),
            },
        },
        BenchQuery {
            name: "term + integration + state",
            http: "/operations?q=timeout&integration=github&state=failed".into(),
            sql: QueryCase::OperationsMatching {
                fts: "timeout".into(),
                integration: Some("github".into()),
                state: Some("failed".into()),
            },
        },
        BenchQuery {
            name: "operations whose messages match",
            http: "/operations?q=invalid_grant".into(),
            sql: QueryCase::OperationsMatching {
                fts: "\"invalid_grant\"".into(),
                integration: None,
                state: None,
            },
        },
        BenchQuery {
            name: "level + time range count",
            http: format!("/messages?level=error&from={since_text}&limit=1"),
            sql: QueryCase::LevelSince {
                level: "error".into(),
            },
        },
        BenchQuery {
            name: "one connection's operations",
            http: "/operations?connection_id=conn-0".into(),
            sql: QueryCase::Connection {
                connection_id: "conn-0".into(),
            },
        },
        BenchQuery {
            name: "facets (connection_id)",
            http: "/facets?field=connection_id".into(),
            sql: QueryCase::Facets,
        },
        BenchQuery {
            name: "insights (24 h by hour)",
            http: "/insights?interval=1h".into(),
            sql: QueryCase::Insights,
        },
    ]
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Latency {
    fn of(samples: &mut [Duration]) -> Latency {
        Latency {
            p50_ms: percentile_ms(samples, 0.50),
            p99_ms: percentile_ms(samples, 0.99),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryFigure {
    pub name: String,
    pub runs: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The number of matches the query reported.
    pub total: u64,
}

/// Every figure of one store under test.
#[derive(Debug, Clone, Serialize)]
pub struct SideReport {
    pub store: String,
    /// Messages acknowledged (both phases).
    pub messages: u64,
    pub operations: u64,
    /// Messages the store counts afterwards (a search with no text), to check nothing was lost.
    pub messages_counted: u64,
    pub ingest_seconds: f64,
    pub ingest_messages_per_s: f64,
    /// JSON payload of the messages (the HTTP bodies opslog receives) per second.
    pub ingest_mb_per_s: f64,
    /// Every write at full speed (operation creations and message batches).
    pub ack: Latency,
    /// The paced phase, at 80 % of the full-speed rate.
    pub ack_at_80pct: Latency,
    pub paced_messages_per_s: f64,
    /// Acknowledged → found by search. SQLite: 0, a commit is visible at once.
    pub visibility: Latency,
    pub visibility_probes: usize,
    pub queries: Vec<QueryFigure>,
    /// opslog: the blocks the data dir's files take (holes left out); SQLite: its files' length.
    pub bytes_on_disk: Option<u64>,
    pub bytes_per_message: Option<f64>,
    /// opslog: where the bytes are (store by table, index by part).
    pub data_dir: Option<disk::Split>,
    pub peak_rss_bytes: Option<u64>,
    /// opslog: the daemon's highest anonymous resident memory (`RssAnon`, sampled), which leaves
    /// out the index files it maps; `peak_rss_bytes` (`VmHWM`) counts those pages too.
    pub peak_anon_rss_bytes: Option<u64>,
    /// CPU per acknowledged message over the ingest: opslog's is the daemon process's own
    /// (from the first request until the index caught up and commits and merges went quiet);
    /// SQLite's is this process's, clients included, since it runs in it.
    pub cpu_us_per_message: Option<f64>,
    /// opslog's `cpu_us_per_message` split by thread role (http, writer, indexer, tantivy
    /// indexing, merges, other, unattributed).
    pub cpu_us_per_message_by_role: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub figure: String,
    pub opslog: f64,
    pub sqlite: f64,
    /// How many times better opslog is (>1 is better, whatever the figure's direction).
    pub opslog_advantage: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub messages: u64,
    pub clients: usize,
    pub seed: u64,
    pub batch: usize,
    /// Whole operations with their messages a request (else creations, then appends).
    pub whole_operations: bool,
    pub machine_cpus: usize,
    pub opslog: SideReport,
    pub sqlite: Option<SideReport>,
    pub ratios: Vec<Ratio>,
    /// `--otlp`: the same operations ingested as OTLP spans, beside the JSON API's figures.
    pub otlp: Option<IngestFigures>,
}

/// One way of ingesting the workload at full speed, measured alone on a fresh daemon.
#[derive(Debug, Clone, Serialize)]
pub struct IngestFigures {
    pub protocol: String,
    pub messages: u64,
    pub operations: u64,
    /// Messages the daemon's search counts once the ingest is done.
    pub messages_counted: u64,
    pub seconds: f64,
    pub messages_per_s: f64,
    pub mb_per_s: f64,
    pub ack: Latency,
    /// The daemon's CPU (its process, to the end of the indexing the ingest caused) per message.
    pub cpu_us_per_message: Option<f64>,
}

/// How the run splits the messages: full speed, then a paced tail.
fn phases(opts: &Options) -> (u64, u64) {
    let paced = if opts.messages >= 10_000 {
        opts.messages / 10
    } else {
        0
    };
    (opts.messages - paced, paced)
}

fn ingest_both_phases<T: Target>(
    target: &T,
    opts: &Options,
    probe: Option<&std::sync::mpsc::SyncSender<(String, Instant)>>,
    progress: &Progress,
) -> anyhow::Result<(Ingested, Ingested)> {
    let (full, paced) = phases(opts);
    let mut plan = Plan {
        seed: opts.seed,
        first_client: 0,
        clients: opts.clients,
        messages: full,
        batch: opts.batch,
        rate: None,
        progress: Some(progress.acked.clone()),
        whole_operations: opts.whole_operations,
    };
    let fast = drive::ingest(target, &plan, probe)?;
    let rate = fast.messages as f64 / fast.seconds.max(1e-9);
    plan.first_client = opts.clients;
    plan.messages = paced;
    plan.rate = Some(rate * 0.8);
    let slow = if paced > 0 {
        drive::ingest(target, &plan, probe)?
    } else {
        Ingested::default()
    };
    Ok((fast, slow))
}

/// Ingest progress on stderr every few seconds while a phase runs.
struct Progress {
    acked: Arc<AtomicU64>,
    done: AtomicBool,
}

const PROGRESS_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    fn new() -> Progress {
        Progress {
            acked: Arc::new(AtomicU64::new(0)),
            done: AtomicBool::new(false),
        }
    }

    /// Prints `store: n / total messages acknowledged` (and what `cpu` says) until `finish`.
    fn report(&self, store: &str, total: u64, cpu: impl Fn(u64) -> String) {
        let started = Instant::now();
        let mut next = started + PROGRESS_EVERY;
        while !self.done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if Instant::now() < next {
                continue;
            }
            next += PROGRESS_EVERY;
            let acked = self.acked.load(Ordering::Relaxed);
            eprintln!(
                "{store}: {acked} / {total} messages acknowledged, {:.0} msgs/s{}",
                acked as f64 / started.elapsed().as_secs_f64(),
                cpu(acked)
            );
        }
    }

    fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

fn side_report(
    store: &str,
    mut fast: Ingested,
    mut slow: Ingested,
    messages_counted: u64,
    mut visibility: Vec<Duration>,
    queries: Vec<QueryFigure>,
) -> SideReport {
    let mbps = fast.payload_bytes as f64 / 1e6 / fast.seconds.max(1e-9);
    SideReport {
        store: store.into(),
        messages: fast.messages + slow.messages,
        operations: fast.operations + slow.operations,
        messages_counted,
        ingest_seconds: fast.seconds,
        ingest_messages_per_s: fast.messages as f64 / fast.seconds.max(1e-9),
        ingest_mb_per_s: mbps,
        ack: Latency::of(&mut fast.ack),
        ack_at_80pct: Latency::of(&mut slow.ack),
        paced_messages_per_s: slow.messages as f64 / slow.seconds.max(1e-9),
        visibility_probes: visibility.len(),
        visibility: Latency::of(&mut visibility),
        queries,
        bytes_on_disk: None,
        bytes_per_message: None,
        data_dir: None,
        peak_rss_bytes: None,
        peak_anon_rss_bytes: None,
        cpu_us_per_message: None,
        cpu_us_per_message_by_role: None,
    }
}

/// Runs `query` up to `runs` times (at least 3, at most ~10 s in all) and returns its figure.
fn time_query(
    name: &str,
    runs: usize,
    mut query: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<QueryFigure> {
    let started = Instant::now();
    let mut times = Vec::with_capacity(runs);
    let mut total = 0;
    // One warm-up run, as a dashboard's first page view would have happened already.
    query().with_context(|| format!("query `{name}`"))?;
    for i in 0..runs {
        let t = Instant::now();
        total = query().with_context(|| format!("query `{name}`"))?;
        times.push(t.elapsed());
        if i >= 2 && started.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    Ok(QueryFigure {
        name: name.into(),
        runs: times.len(),
        p50_ms: percentile_ms(&mut times, 0.50),
        p99_ms: percentile_ms(&mut times, 0.99),
        total,
    })
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so the next phase's peak is its own.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn disk_usage(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => disk_usage(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Runs the whole benchmark and returns its report. Progress goes to stderr.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(opts.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(
        opts.messages >= opts.clients as u64,
        "--messages must be at least --clients"
    );
    let since = Timestamp::now().plus_millis(-1000);
    let queries = query_set(since);
    let sqlite = if opts.skip_sqlite {
        None
    } else {
        Some(run_sqlite(opts, &queries, since)?)
    };
    let opslog = run_opslog(opts, &queries)?;
    let otlp = if opts.otlp {
        Some(run_otlp(opts)?)
    } else {
        None
    };
    let ratios = sqlite
        .as_ref()
        .map(|s| ratios(&opslog, s))
        .unwrap_or_default();
    Ok(Report {
        messages: opts.messages,
        clients: opts.clients,
        seed: opts.seed,
        batch: opts.batch,
        whole_operations: opts.whole_operations,
        machine_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        sqlite: sqlite.map(|mut s| {
            // Same data, so the same payload: SQLite's MB/s in opslog's JSON bytes.
            s.ingest_mb_per_s = opslog.ingest_mb_per_s / opslog.ingest_messages_per_s.max(1e-9)
                * s.ingest_messages_per_s;
            s
        }),
        opslog,
        ratios,
        otlp,
    })
}

/// `--otlp`: a fresh daemon ingests the same operations (same seed, clients and requests of
/// about `--batch` messages) as OTLP/HTTP protobuf span batches, at full speed; then its search
/// must count every message, and its CPU is measured as for the JSON run.
fn run_otlp(opts: &Options) -> anyhow::Result<IngestFigures> {
    let dir = tempfile::Builder::new()
        .prefix("opslog-bench-otlp")
        .tempdir()?;
    let daemon = match (&opts.url, &opts.token) {
        (Some(url), Some(token)) => opslog::Daemon::remote(url, &opts.environment, token),
        _ => {
            let exe = match &opts.daemon_bin {
                Some(exe) => exe.clone(),
                None => std::env::current_exe().context("cannot find the opslog binary")?,
            };
            opslog::Daemon::spawn(&exe, dir.path())?
        }
    };
    eprintln!(
        "opslog OTLP: ingesting {} messages with {} clients as OTLP/HTTP protobuf spans",
        opts.messages, opts.clients
    );
    let before = daemon.get("/messages?limit=1")?["total"]
        .as_u64()
        .unwrap_or(0);
    let meter = daemon.pid().map(process::CpuMeter::start);
    let progress = Progress::new();
    let plan = Plan {
        seed: opts.seed,
        first_client: 0,
        clients: opts.clients,
        messages: opts.messages,
        batch: opts.batch,
        rate: None,
        progress: Some(progress.acked.clone()),
        whole_operations: true,
    };
    let mut done = std::thread::scope(|s| {
        s.spawn(|| progress.report("opslog OTLP", opts.messages, |_| String::new()));
        let done = drive::ingest(&otlp::Otlp(&daemon), &plan, None);
        progress.finish();
        done
    })?;
    let expected = before + done.messages;
    let deadline = Instant::now() + Duration::from_secs(600);
    let counted = loop {
        let n = daemon.get("/messages?limit=1")?["total"]
            .as_u64()
            .unwrap_or(0);
        if n >= expected || Instant::now() > deadline {
            break n - before.min(n);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let cpu = meter.map(|meter| {
        if let Some(pid) = daemon.pid() {
            process::wait_until_quiet(pid, Duration::from_secs(60));
        }
        meter.finish().per_message(done.messages).0
    });
    Ok(IngestFigures {
        protocol: "OTLP/HTTP protobuf".into(),
        messages: done.messages,
        operations: done.operations,
        messages_counted: counted,
        seconds: done.seconds,
        messages_per_s: done.messages as f64 / done.seconds.max(1e-9),
        mb_per_s: done.payload_bytes as f64 / 1e6 / done.seconds.max(1e-9),
        ack: Latency::of(&mut done.ack),
        cpu_us_per_message: cpu,
    })
}

fn run_sqlite(
    opts: &Options,
    queries: &[BenchQuery],
    since: Timestamp,
) -> anyhow::Result<SideReport> {
    eprintln!(
        "sqlite: ingesting {} messages with {} clients",
        opts.messages, opts.clients
    );
    let dir = tempfile::Builder::new()
        .prefix("opslog-bench-sqlite")
        .tempdir()?;
    let rss_reset = reset_peak_rss();
    let mut db = sqlite::Sqlite::create(dir.path())?;
    // SQLite runs in this process: its CPU is this process's, clients and workload included.
    let cpu_before = process::own_cpu_seconds();
    let progress = Progress::new();
    let (fast, slow) = std::thread::scope(|s| {
        s.spawn(|| progress.report("sqlite", opts.messages, |_| String::new()));
        let ingested = ingest_both_phases(&db, opts, None, &progress);
        progress.finish();
        ingested
    })?;
    db.finish()?;
    let cpu = process::own_cpu_seconds() - cpu_before;
    let conn = db.reader()?;
    let counted: u64 = conn.query_row("SELECT count(*) FROM messages", [], |r| {
        r.get::<_, i64>(0).map(|n| n as u64)
    })?;
    eprintln!("sqlite: running the query set");
    let figures = queries
        .iter()
        .map(|q| {
            time_query(q.name, opts.query_runs, || {
                sqlite::run_query(&conn, &q.sql, since.millis())
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(conn);
    let mut report = side_report("sqlite-fts5", fast, slow, counted, Vec::new(), figures);
    report.cpu_us_per_message = Some(cpu * 1e6 / report.messages.max(1) as f64);
    let bytes = disk_usage(dir.path());
    report.bytes_on_disk = Some(bytes);
    report.bytes_per_message = Some(bytes as f64 / report.messages.max(1) as f64);
    report.peak_rss_bytes = if rss_reset { peak_rss() } else { None };
    Ok(report)
}

fn run_opslog(opts: &Options, queries: &[BenchQuery]) -> anyhow::Result<SideReport> {
    let dir = tempfile::Builder::new().prefix("opslog-bench").tempdir()?;
    let mut daemon = match (&opts.url, &opts.token) {
        (Some(url), Some(token)) => opslog::Daemon::remote(url, &opts.environment, token),
        (Some(_), None) => anyhow::bail!("--url needs --token (an API key or admin token)"),
        _ => {
            let exe = match &opts.daemon_bin {
                Some(exe) => exe.clone(),
                None => std::env::current_exe().context("cannot find the opslog binary")?,
            };
            opslog::Daemon::spawn(&exe, dir.path())?
        }
    };
    eprintln!(
        "opslog: ingesting {} messages with {} clients over HTTP{}",
        opts.messages,
        opts.clients,
        daemon
            .pid()
            .map_or(String::new(), |pid| format!(" (daemon pid {pid})"))
    );
    let before = daemon
        .get("/messages?limit=1")?
        .get("total")
        .and_then(|t| t.as_u64())
        .unwrap_or(0);
    let meter = daemon.pid().map(process::CpuMeter::start);
    let anon_peak = daemon.pid().map(process::AnonPeak::start);
    let progress = Progress::new();
    let (probe_tx, probe_rx) = std::sync::mpsc::sync_channel(1);
    let (fast, slow, lags) = std::thread::scope(|s| -> anyhow::Result<_> {
        let daemon = &daemon;
        let prober = s.spawn(move || opslog::probe_visibility(daemon, probe_rx));
        s.spawn(|| {
            progress.report("opslog", opts.messages, |acked| match &meter {
                Some(meter) => format!(
                    ", daemon CPU {:.1} µs/msg",
                    meter.so_far() * 1e6 / acked.max(1) as f64
                ),
                None => String::new(),
            })
        });
        let ingested = ingest_both_phases(daemon, opts, Some(&probe_tx), &progress);
        progress.finish();
        drop(probe_tx);
        let lags = prober.join().expect("the probe thread panicked")?;
        let (fast, slow) = ingested?;
        Ok((fast, slow, lags))
    })?;
    // Everything acknowledged must become searchable.
    let expected = before + fast.messages + slow.messages;
    let deadline = Instant::now() + Duration::from_secs(600);
    let counted = loop {
        let n = daemon.get("/messages?limit=1")?["total"]
            .as_u64()
            .unwrap_or(0);
        if n >= expected || Instant::now() > deadline {
            break n - before.min(n);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The ingest's cost includes the index commits and merges it left behind.
    let cpu = meter.map(|meter| {
        if let Some(pid) = daemon.pid() {
            process::wait_until_quiet(pid, Duration::from_secs(60));
        }
        meter.finish()
    });
    eprintln!("opslog: running the query set");
    let figures = queries
        .iter()
        .map(|q| {
            time_query(q.name, opts.query_runs, || {
                let answer = daemon.get(&q.http)?;
                let total = answer.get("total").or_else(|| answer.get("total_values"));
                Ok(total.and_then(|t| t.as_u64()).unwrap_or(0))
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut report = side_report("opslog", fast, slow, counted, lags, figures);
    if let Some(cpu) = cpu {
        let (total, by_role) = cpu.per_message(report.messages);
        report.cpu_us_per_message = Some(total);
        report.cpu_us_per_message_by_role = Some(by_role);
    }
    if let Some(pid) = daemon.pid() {
        report.peak_rss_bytes = process::peak_rss_of(pid);
    }
    report.peak_anon_rss_bytes = anon_peak.and_then(process::AnonPeak::finish);
    if let Some(data_dir) = daemon.data_dir.clone() {
        daemon.stop()?;
        let split = disk::split(&data_dir);
        report.bytes_on_disk = Some(split.total.allocated);
        report.bytes_per_message =
            Some(split.total.allocated as f64 / report.messages.max(1) as f64);
        report.data_dir = Some(split);
    }
    Ok(report)
}

fn ratios(o: &SideReport, s: &SideReport) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut push = |figure: &str, opslog: f64, sqlite: f64, higher_is_better: bool| {
        let advantage = if higher_is_better {
            opslog / sqlite.max(1e-9)
        } else {
            sqlite / opslog.max(1e-9)
        };
        out.push(Ratio {
            figure: figure.into(),
            opslog,
            sqlite,
            opslog_advantage: advantage,
        });
    };
    push(
        "ingest messages/s",
        o.ingest_messages_per_s,
        s.ingest_messages_per_s,
        true,
    );
    push("ingest MB/s", o.ingest_mb_per_s, s.ingest_mb_per_s, true);
    push("ack p50 ms", o.ack.p50_ms, s.ack.p50_ms, false);
    push("ack p99 ms", o.ack.p99_ms, s.ack.p99_ms, false);
    push(
        "ack p99 ms at 80%",
        o.ack_at_80pct.p99_ms,
        s.ack_at_80pct.p99_ms,
        false,
    );
    for (a, b) in o.queries.iter().zip(&s.queries) {
        push(&format!("{} p50 ms", a.name), a.p50_ms, b.p50_ms, false);
        push(&format!("{} p99 ms", a.name), a.p99_ms, b.p99_ms, false);
    }
    if let (Some(a), Some(b)) = (o.cpu_us_per_message, s.cpu_us_per_message) {
        push("CPU µs per message", a, b, false);
    }
    if let (Some(a), Some(b)) = (o.bytes_per_message, s.bytes_per_message) {
        push("bytes on disk per message", a, b, false);
    }
    if let (Some(a), Some(b)) = (o.peak_rss_bytes, s.peak_rss_bytes) {
        push(
            "peak RSS MiB",
            a as f64 / 1048576.0,
            b as f64 / 1048576.0,
            false,
        );
    }
    out
}

/// The report as a table for people.
pub fn render(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let o = &report.opslog;
    let s = report.sqlite.as_ref();
    let _ = writeln!(
        out,
        "opslog bench: {} messages in {} operations, {} clients, {} of about {} messages, seed {}, {} CPUs",
        report.messages,
        o.operations,
        report.clients,
        if report.whole_operations {
            "whole operations in requests"
        } else {
            "operations created alone, messages in batches"
        },
        report.batch,
        report.seed,
        report.machine_cpus
    );
    let _ = writeln!(
        out,
        "(ingest: the first 90% at full speed, the last 10% paced at 80% of it; opslog over HTTP,\n \
         its daemon in its own process: its CPU is its own, split below by thread role)\n"
    );
    let _ = writeln!(
        out,
        "{:<42} {:>12} {:>12} {:>9}",
        "figure", "opslog", "sqlite-fts5", "opslog x"
    );
    let row = |out: &mut String, name: &str, a: f64, b: Option<f64>, higher: bool, prec: usize| {
        let (bs, ratio) = match b {
            Some(b) => {
                let r = if higher {
                    a / b.max(1e-9)
                } else {
                    b / a.max(1e-9)
                };
                (format!("{b:.prec$}"), format!("{r:.1}"))
            }
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{name:<42} {:>12} {bs:>12} {ratio:>9}",
            format!("{a:.prec$}")
        );
    };
    row(
        &mut out,
        "ingest messages/s",
        o.ingest_messages_per_s,
        s.map(|s| s.ingest_messages_per_s),
        true,
        0,
    );
    if let Some(a) = o.cpu_us_per_message {
        row(
            &mut out,
            "CPU µs per message (ingest)",
            a,
            s.and_then(|s| s.cpu_us_per_message),
            false,
            1,
        );
        for (role, us) in o.cpu_us_per_message_by_role.iter().flatten() {
            let _ = writeln!(
                out,
                "{:<42} {us:>12.1} {:>12} {:>9}",
                format!("  {role}"),
                "",
                ""
            );
        }
    }
    row(
        &mut out,
        "ingest MB/s (JSON payload)",
        o.ingest_mb_per_s,
        s.map(|s| s.ingest_mb_per_s),
        true,
        2,
    );
    row(
        &mut out,
        "ack latency p50 ms (full speed)",
        o.ack.p50_ms,
        s.map(|s| s.ack.p50_ms),
        false,
        2,
    );
    row(
        &mut out,
        "ack latency p99 ms (full speed)",
        o.ack.p99_ms,
        s.map(|s| s.ack.p99_ms),
        false,
        2,
    );
    row(
        &mut out,
        "ack latency p50 ms (80% load)",
        o.ack_at_80pct.p50_ms,
        s.map(|s| s.ack_at_80pct.p50_ms),
        false,
        2,
    );
    row(
        &mut out,
        "ack latency p99 ms (80% load)",
        o.ack_at_80pct.p99_ms,
        s.map(|s| s.ack_at_80pct.p99_ms),
        false,
        2,
    );
    let _ = writeln!(
        out,
        "{:<42} {:>12} {:>12} {:>9}",
        "visibility lag p50 / p99 ms",
        format!("{:.0} / {:.0}", o.visibility.p50_ms, o.visibility.p99_ms),
        if s.is_some() { "0 (commit)" } else { "-" },
        "-"
    );
    for (i, q) in o.queries.iter().enumerate() {
        let b = s.and_then(|s| s.queries.get(i));
        row(
            &mut out,
            &format!("{} p50 ms", q.name),
            q.p50_ms,
            b.map(|b| b.p50_ms),
            false,
            2,
        );
        row(
            &mut out,
            &format!("{} p99 ms", q.name),
            q.p99_ms,
            b.map(|b| b.p99_ms),
            false,
            2,
        );
    }
    if let Some(a) = o.bytes_per_message {
        row(
            &mut out,
            "bytes on disk per message",
            a,
            s.and_then(|s| s.bytes_per_message),
            false,
            0,
        );
    }
    if let Some(split) = &o.data_dir {
        let per = |bytes: u64| bytes as f64 / o.messages.max(1) as f64;
        let list = |parts: Vec<(&str, u64)>| {
            let mut parts: Vec<_> = parts.into_iter().filter(|(_, b)| *b > 0).collect();
            parts.sort_by_key(|p| std::cmp::Reverse(p.1));
            parts
                .iter()
                .map(|(name, bytes)| format!("{name} {:.1}", per(*bytes)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "  data dir per message, allocated / file length: {:.1} / {:.1}",
            per(split.total.allocated),
            per(split.total.bytes)
        );
        let tables = split.tables.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let _ = writeln!(
            out,
            "    store {:.1} / {:.1}; its tables: {}",
            per(split.store.allocated),
            per(split.store.bytes),
            list(tables)
        );
        let parts = split
            .index_parts
            .iter()
            .map(|(n, p)| (n.as_str(), p.allocated))
            .collect();
        let _ = writeln!(
            out,
            "    index {:.1} / {:.1}; by part: {}",
            per(split.index.allocated),
            per(split.index.bytes),
            list(parts)
        );
    }
    if let Some(a) = o.peak_rss_bytes {
        row(
            &mut out,
            "peak RSS MiB",
            a as f64 / 1048576.0,
            s.and_then(|s| s.peak_rss_bytes)
                .map(|b| b as f64 / 1048576.0),
            false,
            0,
        );
    }
    if let Some(a) = o.peak_anon_rss_bytes {
        row(
            &mut out,
            "  of it anonymous (not mapped files)",
            a as f64 / 1048576.0,
            None,
            false,
            0,
        );
    }
    let _ = writeln!(out, "\nquery totals (matches) opslog / sqlite:");
    for (i, q) in o.queries.iter().enumerate() {
        let b = s
            .and_then(|s| s.queries.get(i))
            .map_or("-".into(), |b| b.total.to_string());
        let _ = writeln!(out, "  {:<40} {:>10} / {b}", q.name, q.total);
    }
    let _ = writeln!(
        out,
        "messages acknowledged {} / counted by search {}{}",
        o.messages,
        o.messages_counted,
        s.map_or(String::new(), |s| format!(
            "; sqlite counted {}",
            s.messages_counted
        ))
    );
    if let Some(otlp) = &report.otlp {
        render_otlp(&mut out, o, otlp);
    }
    out
}

/// The OTLP run beside the JSON API's full-speed figures of the same run.
fn render_otlp(out: &mut String, json: &SideReport, otlp: &IngestFigures) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "\ningest protocol (same operations at full speed, a fresh daemon each):"
    );
    let _ = writeln!(out, "  {:<40} {:>20} {:>20}", "", "JSON API", otlp.protocol);
    let cpu = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    for (name, a, b) in [
        (
            "messages/s",
            format!("{:.0}", json.ingest_messages_per_s),
            format!("{:.0}", otlp.messages_per_s),
        ),
        (
            "daemon CPU µs per message",
            cpu(json.cpu_us_per_message),
            cpu(otlp.cpu_us_per_message),
        ),
        (
            "MB/s of request bodies",
            format!("{:.1}", json.ingest_mb_per_s),
            format!("{:.1}", otlp.mb_per_s),
        ),
        (
            "ack p50 / p99 ms",
            format!("{:.1} / {:.1}", json.ack.p50_ms, json.ack.p99_ms),
            format!("{:.1} / {:.1}", otlp.ack.p50_ms, otlp.ack.p99_ms),
        ),
        (
            "messages acknowledged / counted",
            format!("{} / {}", json.messages, json.messages_counted),
            format!("{} / {}", otlp.messages, otlp.messages_counted),
        ),
    ] {
        let _ = writeln!(out, "  {name:<40} {a:>20} {b:>20}");
    }
}
