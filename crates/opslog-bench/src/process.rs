//! The daemon under test as its own process, and what `/proc` says about it: memory, and CPU
//! time by thread role, so the benchmark reports what the daemon spends apart from its clients.
//!
//! Must not: reach into the daemon; everything here is the child's stdout, signals and `/proc`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

/// How often thread CPU times are read: threads that end between two reads (tantivy starts its
/// indexing threads anew after every commit) lose at most this much of their time to
/// `unattributed`.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// How long a stopping daemon may take for its final commits before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(120);

/// The daemon under test: a `serve` child on a loopback port with its config and data in `dir`.
pub struct DaemonProcess {
    child: Child,
    /// Root URL, e.g. `http://127.0.0.1:40123`.
    pub base: String,
    pub data_dir: PathBuf,
}

impl DaemonProcess {
    /// Starts `exe serve` with `config` (TOML without `[server]`'s `listen` and `data_dir`, which
    /// are set here) and returns once it listens.
    pub fn start(exe: &Path, dir: &Path, config: &str) -> anyhow::Result<DaemonProcess> {
        let data_dir = dir.join("data");
        let path = dir.join("opslog.toml");
        let server = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            data_dir.display()
        );
        // `config` may carry its own `[server]` keys: they follow ours in the same table.
        let body = match config.strip_prefix("[server]\n") {
            Some(rest) => format!("{server}{rest}"),
            None => format!("{server}\n{config}"),
        };
        // It holds the bench's keys: only its owner may read it (opslog refuses it otherwise).
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(body.as_bytes())?;
        drop(file);
        let mut child = Command::new(exe)
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the daemon {}", exe.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .transpose()?
            .context("the daemon exited before listening")?;
        let Some(base) = first.split("listening on ").nth(1) else {
            let _ = child.kill();
            bail!("unexpected first line from the daemon: {first}");
        };
        let base = base.trim().to_owned();
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(DaemonProcess {
            child,
            base,
            data_dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the daemon as an operator would (SIGTERM), so its final index commit is on disk;
    /// kills it if it has not ended within `STOP_LIMIT`.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) on our own child's pid, which `wait` has not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "the daemon ended with {status}");
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                bail!("the daemon did not stop within {STOP_LIMIT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// A field of `/proc/{pid}/status` that counts kB, in bytes.
fn status_bytes(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `VmRSS` and `RssAnon` of process `pid`, in bytes.
pub fn memory_of(pid: u32) -> Option<(u64, u64)> {
    Some((status_bytes(pid, "VmRSS:")?, status_bytes(pid, "RssAnon:")?))
}

/// The peak resident memory of process `pid` (`VmHWM`), in bytes.
pub fn peak_rss_of(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// The highest `RssAnon` of a process, read every `SAMPLE_EVERY` until `finish`: the daemon's
/// own memory (heap, indexing arenas, caches), without the pages of the files it maps. `VmHWM`
/// counts those too, and tantivy maps the whole index, so at 10M it mostly measures how much of
/// the index the queries touched (page cache the kernel can drop), not what the daemon holds.
pub struct AnonPeak {
    pid: u32,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

impl AnonPeak {
    pub fn start(pid: u32) -> AnonPeak {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bench-anon-peak".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(anon) = status_bytes(pid, "RssAnon:") {
                            peak.fetch_max(anon, Ordering::Relaxed);
                        }
                        std::thread::sleep(SAMPLE_EVERY);
                    }
                })
                .expect("spawning the memory sampler")
        };
        AnonPeak {
            pid,
            peak,
            stop,
            sampler: Some(sampler),
        }
    }

    /// The peak seen, in bytes (`None` when the process could not be read at all).
    pub fn finish(mut self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        if let Some(anon) = status_bytes(self.pid, "RssAnon:") {
            self.peak.fetch_max(anon, Ordering::Relaxed);
        }
        Some(self.peak.load(Ordering::Relaxed)).filter(|&peak| peak > 0)
    }
}

impl Drop for AnonPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a thread does in the daemon, by the name it was given (`comm` keeps 15 bytes of it).
pub fn role(comm: &str) -> &'static str {
    if comm.starts_with("tokio-") {
        // The runtime's workers and its blocking pool: HTTP, JSON, validation, searches.
        "http"
    } else if comm == "opslog-writer" {
        "writer"
    } else if comm == "opslog-indexer" {
        "indexer"
    } else if comm.starts_with("thrd-tantivy") {
        "tantivy indexing"
    } else if comm.starts_with("opslog-outbox") {
        "outbox"
    } else if comm.starts_with("merge_thread") || comm == "segment_updater" {
        "merges"
    } else {
        "other"
    }
}

/// The clock ticks of `/proc/*/stat`.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// `(comm, utime + stime)` from a `/proc/.../stat` line; comm may hold spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = &stat[open + 1..close];
    // After the comm: state is field 3, utime and stime are fields 14 and 15.
    let mut rest = stat[close + 1..].split_whitespace().skip(11);
    let utime: u64 = rest.next()?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((comm, utime + stime))
}

/// The CPU ticks process `pid` has used, ended threads included.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(parse_stat(&stat)?.1)
}

/// The CPU ticks this process has used.
pub fn own_cpu_seconds() -> f64 {
    process_ticks(std::process::id()).unwrap_or(0) as f64 / ticks_per_second()
}

/// CPU seconds a process spent over a span, in all and by thread role.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuUse {
    pub seconds: f64,
    /// By role; `unattributed` is time of threads that ended between two reads.
    pub by_role: BTreeMap<String, f64>,
}

impl CpuUse {
    /// Microseconds per message, in all and by role.
    pub fn per_message(&self, messages: u64) -> (f64, BTreeMap<String, f64>) {
        let per = |s: f64| s * 1e6 / messages.max(1) as f64;
        let by_role = self
            .by_role
            .iter()
            .map(|(r, s)| (r.clone(), per(*s)))
            .collect();
        (per(self.seconds), by_role)
    }
}

#[derive(Default)]
struct Seen {
    /// The newest reading of each thread: its role and ticks.
    threads: HashMap<u32, (&'static str, u64)>,
}

/// Reads the CPU time of every thread of a process every `SAMPLE_EVERY` until `finish`.
pub struct CpuMeter {
    pid: u32,
    start_ticks: u64,
    start_threads: HashMap<u32, u64>,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<()>>,
}

fn read_threads(pid: u32, seen: &mut Seen) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // ended since the listing
        };
        if let Some((comm, ticks)) = parse_stat(&stat) {
            seen.threads.insert(tid, (role(comm), ticks));
        }
    }
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        let mut seen = Seen::default();
        read_threads(pid, &mut seen);
        let start_threads = seen.threads.iter().map(|(t, (_, k))| (*t, *k)).collect();
        let seen = Arc::new(Mutex::new(seen));
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bench-cpu-meter".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        read_threads(pid, &mut seen.lock().expect("not poisoned"));
                        std::thread::sleep(SAMPLE_EVERY);
                    }
                })
                .expect("spawning the CPU meter")
        };
        CpuMeter {
            pid,
            start_ticks: process_ticks(pid).unwrap_or(0),
            start_threads,
            seen,
            stop,
            sampler: Some(sampler),
        }
    }

    /// The CPU used since `start`, so far.
    pub fn so_far(&self) -> f64 {
        let ticks = process_ticks(self.pid).unwrap_or(self.start_ticks);
        ticks.saturating_sub(self.start_ticks) as f64 / ticks_per_second()
    }

    pub fn finish(mut self) -> CpuUse {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        let mut seen = self.seen.lock().expect("not poisoned");
        read_threads(self.pid, &mut seen);
        let total = process_ticks(self.pid)
            .unwrap_or(self.start_ticks)
            .saturating_sub(self.start_ticks);
        let tick = ticks_per_second();
        let mut by_role: BTreeMap<String, f64> = BTreeMap::new();
        let mut attributed = 0;
        for (tid, (role, ticks)) in &seen.threads {
            let used = ticks.saturating_sub(self.start_threads.get(tid).copied().unwrap_or(0));
            attributed += used;
            *by_role.entry((*role).into()).or_default() += used as f64 / tick;
        }
        let rest = total.saturating_sub(attributed);
        if rest > 0 {
            by_role.insert("unattributed".into(), rest as f64 / tick);
        }
        CpuUse {
            seconds: total as f64 / tick,
            by_role,
        }
    }
}

impl Drop for CpuMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits until process `pid` has been nearly idle (under 5 % of a core) for a second, so work
/// a phase left behind (index commits, merges) is counted in it; at most `limit`.
pub fn wait_until_quiet(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    let window = Duration::from_millis(500);
    let mut quiet_windows = 0;
    while Instant::now() < deadline && quiet_windows < 2 {
        let before = process_ticks(pid).unwrap_or(0);
        std::thread::sleep(window);
        let used = process_ticks(pid).unwrap_or(0).saturating_sub(before) as f64;
        if used / ticks_per_second() < 0.05 * window.as_secs_f64() {
            quiet_windows += 1;
        } else {
            quiet_windows = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "4242 (tokio-runtime-w) S 1 2 3 4 5 6 7 8 9 10 123 45 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("tokio-runtime-w", 168)));
        let odd = "7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 5 6 0 0";
        assert_eq!(parse_stat(odd), Some(("a (b) c", 11)));
        assert_eq!(parse_stat("7 (x) R 1"), None);
    }

    #[test]
    fn threads_are_grouped_by_what_they_do() {
        assert_eq!(role("opslog-writer"), "writer");
        assert_eq!(role("thrd-tantivy-in"), "tantivy indexing");
        assert_eq!(role("merge_thread_1"), "merges");
        assert_eq!(role("tokio-rt-worker"), "http");
        assert_eq!(role("tokio-runtime-w"), "http");
        assert_eq!(role("opslog-outbox-3"), "outbox");
        assert_eq!(role("opslog"), "other");
    }

    #[test]
    fn a_threads_cpu_is_counted_under_its_role() {
        let meter = CpuMeter::start(std::process::id());
        let (burned_tx, burned) = std::sync::mpsc::channel();
        let (end_tx, end) = std::sync::mpsc::channel::<()>();
        let busy = std::thread::Builder::new()
            .name("opslog-writer".into())
            .spawn(move || {
                // Burn 50 ms of this thread's own CPU (bounded in wall time), then stay alive
                // until the meter has read it.
                let deadline = Instant::now() + Duration::from_secs(20);
                let own = || {
                    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
                    parse_stat(&stat).unwrap().1 as f64 / ticks_per_second()
                };
                let mut x = 0u64;
                while own() < 0.05 && Instant::now() < deadline {
                    for _ in 0..100_000 {
                        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                    }
                }
                burned_tx.send(own()).unwrap();
                let _ = end.recv();
            })
            .unwrap();
        let burned = burned.recv().unwrap();
        let used = meter.finish();
        end_tx.send(()).unwrap();
        busy.join().unwrap();
        assert!(burned >= 0.05, "the thread burned {burned} s");
        let writer = used.by_role.get("writer").copied().unwrap_or(0.0);
        assert!(writer >= 0.05, "{used:?}");
        // The process's total and each thread's time are read from different /proc files, each
        // rounded to a clock tick: the total may read one tick short of a thread's.
        let tick = 1.0 / ticks_per_second();
        assert!(used.seconds + tick >= writer, "{used:?}");
    }
}
