//! criterion benches of opslog's core paths, on the workload of `opslog bench`:
//! - `store_append`: one durable redb commit of a batch of 100 validated messages (one block);
//! - `indexing`: rebuilding the search index from a populated store (documents per second);
//! - `queries`: each query of the fixed set through the HTTP API of the real daemon.
//!
//! `cargo bench --bench core` (`OPSLOG_BENCH_MESSAGES=1M` for a bigger store; criterion's own
//! arguments, e.g. a name filter, after `--`). Under `cargo test` (no `--bench`) every
//! bench runs once on a small workload, so they cannot rot.
//! Whole-system figures side by side with SQLite are `opslog bench`'s job, not this file's.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use opslog::ingest::input::{validate_message, NewMessage, Redaction};
use opslog::model::{Id, Message, Timestamp};
use opslog::store::Store;
use opslog_bench::drive::{self, Plan};
use opslog_bench::opslog::Daemon;
use opslog_bench::workload::ClientStream;

fn messages_wanted() -> Option<u64> {
    let text = std::env::var("OPSLOG_BENCH_MESSAGES").ok()?;
    opslog_bench::workload::parse_count(&text).ok()
}

/// `count` stored messages of the workload, as the write path validates them.
fn messages(count: usize) -> Vec<Message> {
    let redaction = Redaction::new(&[]);
    let mut id = 1u128 << 80;
    ClientStream::new(1, 0, count as u64)
        .enumerate()
        .flat_map(|(op, spec)| {
            spec.messages
                .into_iter()
                .map(move |m| (Id(op as u128 + 1), m))
        })
        .map(|(op, spec)| {
            let input: NewMessage =
                serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
            id += 1;
            validate_message(input, &redaction)
                .unwrap()
                .into_message(Id(id), op, Timestamp::now())
        })
        .collect()
}

fn store_append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let batches: Vec<Vec<Message>> = messages(100 * 64).chunks(100).map(<[_]>::to_vec).collect();
    let mut group = c.benchmark_group("store_append");
    group.throughput(Throughput::Elements(100));
    let mut next = 0usize;
    let mut seq = 0u64;
    group.bench_function("100 messages, one durable commit", |b| {
        b.iter(|| {
            let mut batch = batches[next % batches.len()].clone();
            // Fresh ids each time, after every stored one, as the writer gives them.
            for m in &mut batch {
                m.id = Id(m.id.0 + (next as u128) * 1_000_000);
            }
            next += 1;
            let rows: Vec<(u64, &Message)> = batch
                .iter()
                .map(|m| {
                    seq += 1;
                    (seq, m)
                })
                .collect();
            let mut tx = store.write().unwrap();
            tx.append_messages(&rows).unwrap();
            tx.commit().unwrap();
        })
    });
    group.finish();
}

/// The daemon under bench: the release binary cargo built for this bench, as its own process
/// with its config and data in `dir` (its data dir is `dir/data`).
fn daemon(dir: &std::path::Path) -> Daemon {
    Daemon::spawn(std::path::Path::new(env!("CARGO_BIN_EXE_opslog")), dir).unwrap()
}

fn populate(dir: &std::path::Path, count: u64) -> std::path::PathBuf {
    let mut daemon = daemon(dir);
    let plan = Plan {
        seed: 1,
        first_client: 0,
        clients: 4,
        messages: count,
        batch: 100,
        rate: None,
        progress: None,
        whole_operations: true,
    };
    drive::ingest(&daemon, &plan, None).unwrap();
    daemon.stop().unwrap();
    daemon
        .data_dir
        .clone()
        .expect("a daemon started here has its data dir")
}

fn indexing_and_queries(c: &mut Criterion, count: u64) {
    let dir = tempfile::tempdir().unwrap();
    let data = populate(dir.path(), count);
    let mut group = c.benchmark_group("indexing");
    group.sample_size(10);
    group.throughput(Throughput::Elements(count));
    group.bench_function(format!("rebuild from {count} stored messages"), |b| {
        b.iter_batched(
            || std::fs::remove_dir_all(opslog::index::index_dir(&data)).unwrap(),
            |()| {
                let store = std::sync::Arc::new(Store::open(&data).unwrap());
                let (_, indexer) = opslog::index::open(&data, store).unwrap();
                indexer.build_offline().unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    // The same data, served again (the config file stays; only the process is new).
    let again = tempfile::tempdir().unwrap();
    std::fs::rename(&data, again.path().join("data")).unwrap();
    let mut daemon = daemon(again.path());
    let mut group = c.benchmark_group("queries");
    group.measurement_time(Duration::from_secs(3));
    for q in opslog_bench::query_set(opslog_bench::Timestamp(0)) {
        group.bench_function(q.name, |b| b.iter(|| daemon.get(&q.http).unwrap()));
    }
    group.finish();
    daemon.stop().unwrap();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let count = if full {
        messages_wanted().unwrap_or(200_000)
    } else {
        5_000
    };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(if full { 1000 } else { 10 }))
        .configure_from_args();
    store_append(&mut c);
    indexing_and_queries(&mut c, count);
    c.final_summary();
}
