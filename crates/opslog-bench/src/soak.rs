//! `opslog bench --soak`: does opslog keep working over a long run? It starts the daemon as a child
//! process (this same binary) with a webhook receiver that fails 30% of its requests, measures the
//! maximum ingest briefly, then ingests at half of it for N minutes with concurrent searches,
//! sampling the daemon's memory and outbox depth every few seconds. It prints one row per minute and
//! a verdict: memory flat, no errors, the outbox drained once the load stopped.
//!
//! Must not: reach into the daemon (everything goes through HTTP and /proc), or assert timings:
//! the verdict is about memory, errors and draining, never speed.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::drive::{self, percentile_ms, Plan};
use super::opslog::{Daemon, ENVIRONMENT};
use super::process::{memory_of, DaemonProcess};
use super::query_set;
use crate::Timestamp;

const KEY: &str = "soak-api-key-0123456789abcdef";
const ADMIN: &str = "soak-admin-token-0123456789abcdef";
/// The share of webhook requests the receiver answers 500.
const RECEIVER_FAILURES: f64 = 0.3;
/// The soak runs at this share of the measured maximum ingest.
const LOAD_SHARE: f64 = 0.5;
/// Pause of each search client between two queries (a few dashboards open, not a flood).
const SEARCH_PAUSE: Duration = Duration::from_millis(100);
const SEARCH_CLIENTS: usize = 2;
/// How long the outbox may take to drain after the load stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub minutes: u64,
    pub clients: usize,
    pub batch: usize,
    /// Whole operations with their messages a request (else creations, then appends).
    pub whole_operations: bool,
    pub seed: u64,
    /// Messages ingested at full speed to find the maximum rate.
    pub probe_messages: u64,
    pub sample_every: Duration,
}

/// One sample of the daemon's state.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    rss_bytes: u64,
    anon_bytes: u64,
    outbox_pending: Option<u64>,
}

#[derive(Debug, Clone)]
struct MinuteRow {
    minute: u64,
    messages_per_s: f64,
    ack_p99_ms: f64,
    search_p99_ms: f64,
    searches: usize,
    sample: Option<Sample>,
    errors: u64,
}

/// Runs the soak and prints its table and verdict to stdout; an error when the verdict fails.
pub fn run(opts: &SoakOptions) -> anyhow::Result<()> {
    anyhow::ensure!(opts.minutes > 0, "--minutes must be at least 1");
    anyhow::ensure!(opts.clients > 0, "--clients must be at least 1");
    let dir = tempfile::Builder::new().prefix("opslog-soak").tempdir()?;
    let receiver = FlakyReceiver::start(opts.seed)?;
    let mut daemon = start_daemon(dir.path(), &receiver.url())?;
    let result = soak(opts, &daemon, &receiver);
    daemon.kill();
    result
}

fn soak(
    opts: &SoakOptions,
    daemon: &DaemonProcess,
    receiver: &FlakyReceiver,
) -> anyhow::Result<()> {
    let target = Daemon::remote(&daemon.base, ENVIRONMENT, KEY);
    eprintln!(
        "soak: daemon pid {} at {}; measuring the maximum ingest with {} messages",
        daemon.pid(),
        daemon.base,
        opts.probe_messages
    );
    let mut plan = Plan {
        seed: opts.seed,
        first_client: 0,
        clients: opts.clients,
        messages: opts.probe_messages.max(opts.clients as u64),
        batch: opts.batch,
        rate: None,
        progress: None,
        whole_operations: opts.whole_operations,
    };
    let probe = drive::ingest(&target, &plan, None).context("the maximum-ingest probe failed")?;
    let max_rate = probe.messages as f64 / probe.seconds.max(1e-9);
    let rate = max_rate * LOAD_SHARE;
    eprintln!(
        "soak: maximum {max_rate:.0} msgs/s; running {} minutes at {rate:.0} msgs/s with \
         {SEARCH_CLIENTS} search clients and a receiver failing {:.0}% of requests",
        opts.minutes,
        RECEIVER_FAILURES * 100.0
    );

    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let search_times: Mutex<Vec<Duration>> = Mutex::new(Vec::new());
    let search_errors = AtomicU64::new(0);
    let samples: Mutex<Vec<Sample>> = Mutex::new(Vec::new());
    let queries = query_set(Timestamp::now().plus_millis(-60_000));
    let mut rows = Vec::new();
    let mut ingest_error = None;
    std::thread::scope(|s| {
        for client in 0..SEARCH_CLIENTS {
            let (target, queries, stop) = (&target, &queries, &stop);
            let (search_times, search_errors) = (&search_times, &search_errors);
            s.spawn(move || {
                for (i, query) in queries.iter().cycle().skip(client * 3).enumerate() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let t = Instant::now();
                    match target.get(&query.http) {
                        Ok(_) => search_times.lock().expect("not poisoned").push(t.elapsed()),
                        Err(e) => {
                            if search_errors.fetch_add(1, Ordering::Relaxed) < 5 {
                                eprintln!("soak: search {i} failed: {e:#}");
                            }
                        }
                    }
                    std::thread::sleep(SEARCH_PAUSE);
                }
            });
        }
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(sample) = sample(daemon, &target, started.elapsed()) {
                    samples.lock().expect("not poisoned").push(sample);
                }
                sleep_unless(&stop, opts.sample_every);
            }
        });
        let mut errors_before = 0;
        for minute in 1..=opts.minutes {
            plan.first_client = opts.clients * minute as usize;
            plan.messages = ((rate * 60.0) as u64).max(opts.clients as u64);
            plan.rate = Some(rate);
            let mut done = match drive::ingest(&target, &plan, None) {
                Ok(done) => done,
                Err(e) => {
                    ingest_error = Some(e);
                    break;
                }
            };
            let mut searches = std::mem::take(&mut *search_times.lock().expect("not poisoned"));
            let errors = search_errors.load(Ordering::Relaxed);
            let row = MinuteRow {
                minute,
                messages_per_s: done.messages as f64 / done.seconds.max(1e-9),
                ack_p99_ms: percentile_ms(&mut done.ack, 0.99),
                search_p99_ms: percentile_ms(&mut searches, 0.99),
                searches: searches.len(),
                sample: sample(daemon, &target, started.elapsed()),
                errors: errors - errors_before,
            };
            errors_before = errors;
            eprintln!("{}", render_row(&row));
            rows.push(row);
        }
        stop.store(true, Ordering::Relaxed);
    });
    let load_stopped = Instant::now();
    let drained = match &ingest_error {
        Some(_) => None,
        None => wait_for_drain(&target, DRAIN_LIMIT).map(|_| load_stopped.elapsed()),
    };
    let server_errors = metric(&daemon.base, "opslog_http_server_errors_total").unwrap_or(0);
    let count = |status: &str| {
        target
            .get(&format!("/deliveries?status={status}&limit=1"))
            .ok()
            .and_then(|page| page.get("total")?.as_u64())
            .unwrap_or(0)
    };
    let deliveries = (count("delivered"), count("failed"));
    let samples = samples.into_inner().expect("not poisoned");
    let report = Report {
        max_rate,
        rate,
        rows,
        samples,
        search_errors: search_errors.load(Ordering::Relaxed),
        server_errors,
        ingest_error: ingest_error.map(|e| format!("{e:#}")),
        drained,
        deliveries,
        receiver_requests: receiver.requests.load(Ordering::Relaxed),
        receiver_failures: receiver.failures.load(Ordering::Relaxed),
    };
    print!("{}", report.render(opts));
    if report.passed() {
        Ok(())
    } else {
        bail!("the soak verdict failed (see above)")
    }
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100).min(total));
    }
}

/// Polls the pending deliveries until none is left or `limit` passes.
fn wait_for_drain(target: &Daemon, limit: Duration) -> Option<()> {
    let deadline = Instant::now() + limit;
    loop {
        if pending_deliveries(target) == Some(0) {
            return Some(());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn pending_deliveries(target: &Daemon) -> Option<u64> {
    target
        .get("/deliveries?status=pending&limit=1")
        .ok()?
        .get("total")?
        .as_u64()
}

struct Report {
    max_rate: f64,
    rate: f64,
    rows: Vec<MinuteRow>,
    samples: Vec<Sample>,
    search_errors: u64,
    server_errors: u64,
    ingest_error: Option<String>,
    /// How long after the load stopped the outbox was empty; `None`: it was not.
    drained: Option<Duration>,
    /// Deliveries delivered, and dead-lettered (every attempt of the schedule failed).
    deliveries: (u64, u64),
    receiver_requests: u64,
    receiver_failures: u64,
}

/// Memory is flat when it grows by at most this many MiB per minute...
const FLAT_MIB_PER_MINUTE: f64 = 1.0;
/// ...or by at most this share of its mean per minute, whichever is larger.
const FLAT_SHARE_PER_MINUTE: f64 = 0.01;

impl Report {
    /// Least-squares slope of anonymous RSS in MiB per minute over the second half of the run
    /// (at least the first minute is warm-up), and the mean. Warm-up: redb's page cache fills up
    /// to `server.store_cache_bytes`, the index writer's arena and the allocator's arenas to
    /// their working size; that took about 4 minutes at 4,800 msgs/s here. A leak keeps growing.
    fn memory_slope(&self) -> Option<(f64, f64)> {
        let end = self.samples.last().map(|s| s.at).unwrap_or_default();
        let warm_up = (end / 2).max(Duration::from_secs(60));
        let warm: Vec<&Sample> = self.samples.iter().filter(|s| s.at >= warm_up).collect();
        let points: Vec<(f64, f64)> = if warm.len() >= 3 {
            warm
        } else {
            self.samples.iter().collect()
        }
        .iter()
        .map(|s| (s.at.as_secs_f64() / 60.0, s.anon_bytes as f64 / MIB))
        .collect();
        slope(&points)
    }

    fn memory_flat(&self) -> bool {
        self.memory_slope().is_some_and(|(slope, mean)| {
            slope <= FLAT_MIB_PER_MINUTE.max(mean * FLAT_SHARE_PER_MINUTE)
        })
    }

    fn errors(&self) -> u64 {
        self.search_errors + self.server_errors + u64::from(self.ingest_error.is_some())
    }

    fn passed(&self) -> bool {
        self.memory_flat() && self.errors() == 0 && self.drained.is_some()
    }

    fn render(&self, opts: &SoakOptions) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "opslog soak: {} minutes at {:.0} msgs/s ({:.0}% of the measured maximum {:.0} msgs/s), \
             {} clients, batches of {}, seed {}, {SEARCH_CLIENTS} search clients, receiver failing {:.0}%\n",
            opts.minutes,
            self.rate,
            LOAD_SHARE * 100.0,
            self.max_rate,
            opts.clients,
            opts.batch,
            opts.seed,
            RECEIVER_FAILURES * 100.0
        );
        let _ = writeln!(out, "{}", ROW_HEADER);
        for row in &self.rows {
            let _ = writeln!(out, "{}", render_row(row));
        }
        let pass = |ok: bool| if ok { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "\nverdict:");
        match self.memory_slope() {
            Some((slope, mean)) => {
                let _ = writeln!(
                    out,
                    "  memory  {}  anonymous RSS slope {slope:+.2} MiB/min (mean {mean:.0} MiB; flat means \
                     at most {:.1} MiB/min)",
                    pass(self.memory_flat()),
                    FLAT_MIB_PER_MINUTE.max(mean * FLAT_SHARE_PER_MINUTE)
                );
            }
            None => {
                let _ = writeln!(out, "  memory  FAIL  too few samples to tell");
            }
        }
        let _ = writeln!(
            out,
            "  errors  {}  {} failed searches, {} server errors (5xx){}",
            pass(self.errors() == 0),
            self.search_errors,
            self.server_errors,
            self.ingest_error
                .as_ref()
                .map_or(String::new(), |e| format!(", ingest stopped: {e}"))
        );
        let _ = writeln!(
            out,
            "  outbox  {}  {}",
            pass(self.drained.is_some()),
            match self.drained {
                Some(after) => format!(
                    "drained {:.1} s after the load stopped: {} deliveries delivered, {} \
                     dead-lettered (every attempt of the schedule failed)",
                    after.as_secs_f64(),
                    self.deliveries.0,
                    self.deliveries.1
                ),
                None => format!(
                    "still pending {} s after the load stopped",
                    DRAIN_LIMIT.as_secs()
                ),
            }
        );
        let _ = writeln!(
            out,
            "webhook receiver: {} requests, {} answered 500 on purpose ({:.1}%)",
            self.receiver_requests,
            self.receiver_failures,
            self.receiver_failures as f64 * 100.0 / self.receiver_requests.max(1) as f64
        );
        out
    }
}

const MIB: f64 = 1024.0 * 1024.0;
const ROW_HEADER: &str =
    "minute   msgs/s  ack p99 ms  search p99 ms  searches  RSS MiB  anon MiB  outbox  errors";

fn render_row(row: &MinuteRow) -> String {
    let (rss, anon, outbox) = match row.sample {
        Some(s) => (
            format!("{:.1}", s.rss_bytes as f64 / MIB),
            format!("{:.1}", s.anon_bytes as f64 / MIB),
            s.outbox_pending
                .map_or_else(|| "?".to_owned(), |d| d.to_string()),
        ),
        None => ("?".into(), "?".into(), "?".into()),
    };
    format!(
        "{:>6} {:>8.0} {:>11.1} {:>14.1} {:>9} {:>8} {:>9} {:>7} {:>7}",
        row.minute,
        row.messages_per_s,
        row.ack_p99_ms,
        row.search_p99_ms,
        row.searches,
        rss,
        anon,
        outbox,
        row.errors
    )
}

/// Least-squares slope of `points` (x, y) and the mean of y; `None` with fewer than two points or
/// no spread in x.
fn slope(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    Some((sxy / sxx, mean_y))
}

// ---------------------------------------------------------------------------------------------

/// The daemon under test, with a webhook receiver that fails some of its requests.
fn start_daemon(dir: &Path, webhook_url: &str) -> anyhow::Result<DaemonProcess> {
    let exe = std::env::current_exe().context("cannot find the opslog binary")?;
    let config = format!(
        r#"[server]
admin_tokens = ["{ADMIN}"]

[environments.{ENVIRONMENT}]
api_keys = ["{KEY}"]

[environments.{ENVIRONMENT}.webhooks]
url = "{webhook_url}"
timeout = "5s"
retry_schedule = ["0s", "1s", "2s", "4s", "8s", "15s", "15s", "15s", "15s", "15s", "15s", "15s"]
"#
    );
    DaemonProcess::start(&exe, dir, &config)
}

fn sample(daemon: &DaemonProcess, target: &Daemon, at: Duration) -> Option<Sample> {
    let (rss_bytes, anon_bytes) = memory_of(daemon.pid())?;
    Some(Sample {
        at,
        rss_bytes,
        anon_bytes,
        outbox_pending: pending_deliveries(target),
    })
}

/// A counter from the daemon's `/metrics` (no auth) at `root`, by its name.
fn metric(root: &str, name: &str) -> Option<u64> {
    let text = ureq::get(&format!("{root}/metrics"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))?
        .trim()
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------

/// A webhook receiver on loopback that answers a seeded `RECEIVER_FAILURES` share of requests 500.
struct FlakyReceiver {
    port: u16,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

impl FlakyReceiver {
    fn start(seed: u64) -> anyhow::Result<FlakyReceiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed ^ 0x50A4)));
        let (counted, failed) = (requests.clone(), failures.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (rng, counted, failed) = (rng.clone(), counted.clone(), failed.clone());
                std::thread::spawn(move || {
                    let fail = || {
                        rng.lock()
                            .expect("not poisoned")
                            .random_bool(RECEIVER_FAILURES)
                    };
                    let _ = answer_webhooks(stream, fail, |failed_on_purpose| {
                        counted.fetch_add(1, Ordering::Relaxed);
                        if failed_on_purpose {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                });
            }
        });
        Ok(FlakyReceiver {
            port,
            requests,
            failures,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }
}

/// Answers the requests of one kept-alive connection (headers, then a Content-Length body) with
/// 500 or 200 as `fail` draws, calling `answered` after each, until the sender closes it. A
/// receiver that closed every connection made each delivery pay a connect and a thread, which
/// no real backend does.
fn answer_webhooks(
    stream: TcpStream,
    mut fail: impl FnMut() -> bool,
    mut answered: impl FnMut(bool),
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    loop {
        let mut length = 0usize;
        let mut first = true;
        for _ in 0..200 {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                // Closed between two requests: done; in the middle of one: an error.
                return if first {
                    Ok(())
                } else {
                    Err(std::io::ErrorKind::UnexpectedEof.into())
                };
            }
            first = false;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let failed = fail();
        let status = if failed {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        stream.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())?;
        answered(failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_answers_several_requests_on_one_connection() {
        let receiver = FlakyReceiver::start(7).unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", receiver.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        for body in ["{}", "{\"a\":1}", ""] {
            write!(
                stream,
                "POST /hook HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            assert!(
                status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 500"),
                "{status:?}"
            );
            let mut line = String::new();
            while {
                line.clear();
                reader.read_line(&mut line).unwrap();
                line != "\r\n"
            } {
                assert!(!line.to_ascii_lowercase().starts_with("connection: close"));
            }
        }
        drop((stream, reader));
        let deadline = Instant::now() + Duration::from_secs(10);
        while receiver.requests.load(Ordering::Relaxed) < 3 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(receiver.requests.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..10)
            .map(|x| (x as f64, 100.0 + 2.0 * x as f64))
            .collect();
        let (s, mean) = slope(&line).unwrap();
        assert!((s - 2.0).abs() < 1e-9 && (mean - 109.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = (0..10)
            .map(|x| (x as f64, if x % 2 == 0 { 50.0 } else { 51.0 }))
            .collect();
        assert!(slope(&flat).unwrap().0.abs() < 0.2);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    fn report(anon_mib: &[f64], drained: bool) -> Report {
        Report {
            max_rate: 1000.0,
            rate: 500.0,
            rows: Vec::new(),
            samples: anon_mib
                .iter()
                .enumerate()
                .map(|(i, mib)| Sample {
                    at: Duration::from_secs(60 + 30 * i as u64),
                    rss_bytes: (*mib * MIB) as u64,
                    anon_bytes: (*mib * MIB) as u64,
                    outbox_pending: Some(0),
                })
                .collect(),
            search_errors: 0,
            server_errors: 0,
            ingest_error: None,
            drained: drained.then_some(Duration::from_secs(3)),
            deliveries: (7, 0),
            receiver_requests: 10,
            receiver_failures: 3,
        }
    }

    #[test]
    fn verdict_needs_flat_memory_no_errors_and_a_drained_outbox() {
        assert!(report(&[80.0, 81.0, 80.5, 80.8, 80.2], true).passed());
        assert!(
            !report(&[80.0, 90.0, 100.0, 110.0], true).passed(),
            "growing 20 MiB/min"
        );
        assert!(
            report(
                &[80.0, 120.0, 160.0, 200.0, 200.5, 200.2, 200.9, 200.4, 200.6, 200.3],
                true
            )
            .passed(),
            "caches filling in the first half is warm-up, not growth"
        );
        assert!(
            !report(&[80.0, 80.0, 80.0, 80.0, 80.0, 90.0, 100.0, 110.0], true).passed(),
            "growth in the second half"
        );
        assert!(!report(&[80.0, 80.0, 80.0], false).passed(), "not drained");
        let mut errors = report(&[80.0, 80.0, 80.0], true);
        errors.server_errors = 1;
        assert!(!errors.passed());
        let text = errors.render(&SoakOptions {
            minutes: 3,
            clients: 4,
            batch: 100,
            whole_operations: true,
            seed: 1,
            probe_messages: 1000,
            sample_every: Duration::from_secs(5),
        });
        assert!(
            text.contains("errors  FAIL") && text.contains("memory  PASS"),
            "{text}"
        );
    }
}
