//! The ingest driver shared by every store under test: N client threads, each walking its own
//! workload stream, creating each operation and posting messages in batches (a batch may span
//! operations, as an SDK's buffer does), waiting for each acknowledgement before the next request,
//! optionally paced to a target rate.
//!
//! Must not: know which store it drives; a `Target` hides that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::workload::{ClientStream, MessageSpec, OperationSpec};

/// A store under test, as its clients see it. Each client thread gets its own client.
pub trait Target: Sync {
    type Client: TargetClient + Send;
    fn client(&self) -> anyhow::Result<Self::Client>;
}

pub trait TargetClient {
    type OpId: Clone;
    /// Creates `op` (without its messages) and returns once it is durable.
    fn create_operation(&mut self, op: &OperationSpec) -> anyhow::Result<Self::OpId>;
    /// Appends a batch and returns once it is durable; returns the request's payload size in
    /// bytes (0 where there is no wire format).
    fn append(&mut self, batch: &[(Self::OpId, MessageSpec)]) -> anyhow::Result<u64>;
    /// Creates whole operations, each with its messages, in one request, and returns once all
    /// are durable (with the request's payload size); a target without such a request answers
    /// `None`, and its operations are created and appended to instead.
    fn create_with_messages(&mut self, _ops: &[OperationSpec]) -> Option<anyhow::Result<u64>> {
        None
    }
}

pub struct Plan {
    pub seed: u64,
    /// Stream indices `first_client..first_client + clients`.
    pub first_client: usize,
    pub clients: usize,
    pub messages: u64,
    pub batch: usize,
    /// Total messages per second to aim at; `None` is as fast as possible.
    pub rate: Option<f64>,
    /// Counts acknowledged messages as they come, for progress reports.
    pub progress: Option<Arc<AtomicU64>>,
    /// Send whole operations with their messages (about `batch` messages a request) instead of
    /// creating each operation, then appending messages in batches across operations.
    pub whole_operations: bool,
}

#[derive(Default)]
pub struct Ingested {
    pub messages: u64,
    pub operations: u64,
    pub payload_bytes: u64,
    pub seconds: f64,
    /// Acknowledgement latency of every write (operation creations and message batches).
    pub ack: Vec<Duration>,
}

struct ClientRun<'a, C: TargetClient> {
    client: C,
    batch: Vec<(C::OpId, MessageSpec)>,
    done: Ingested,
    interval: Option<Duration>,
    next_send: Instant,
    probe: Option<&'a SyncSender<(String, Instant)>>,
    progress: Option<&'a AtomicU64>,
}

impl<C: TargetClient> ClientRun<'_, C> {
    /// Creates `ops` with their messages in one request (or, where the target has none, each
    /// created then appended to), and empties `ops`.
    fn flush_whole(&mut self, ops: &mut Vec<OperationSpec>) -> anyhow::Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        self.pace();
        let t = Instant::now();
        match self.client.create_with_messages(ops) {
            Some(sent) => self.done.payload_bytes += sent?,
            None => anyhow::bail!("this target cannot create operations with their messages"),
        }
        let acked = Instant::now();
        self.done.ack.push(acked - t);
        let messages: usize = ops.iter().map(|op| op.messages.len()).sum();
        self.done.messages += messages as u64;
        self.done.operations += ops.len() as u64;
        if let Some(progress) = self.progress {
            progress.fetch_add(messages as u64, Ordering::Relaxed);
        }
        if let Some(probe) = self.probe {
            let rare = ops
                .iter()
                .flat_map(|op| &op.messages)
                .find_map(|m| m.rare.clone());
            if let Some(token) = rare {
                let _ = probe.try_send((token, acked));
            }
        }
        ops.clear();
        Ok(())
    }

    /// Waits for the next send time when the run is paced.
    fn pace(&mut self) {
        if let Some(interval) = self.interval {
            let now = Instant::now();
            if self.next_send > now {
                std::thread::sleep(self.next_send - now);
            }
            self.next_send = self.next_send.max(now) + interval;
        }
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.pace();
        let t = Instant::now();
        self.done.payload_bytes += self.client.append(&self.batch)?;
        let acked = Instant::now();
        self.done.ack.push(acked - t);
        self.done.messages += self.batch.len() as u64;
        if let Some(progress) = self.progress {
            progress.fetch_add(self.batch.len() as u64, Ordering::Relaxed);
        }
        if let Some(probe) = self.probe {
            if let Some(token) = self.batch.iter().find_map(|(_, m)| m.rare.clone()) {
                let _ = probe.try_send((token, acked));
            }
        }
        self.batch.clear();
        Ok(())
    }
}

/// Runs `plan` against `target`. Each acknowledged batch holding a rare token is offered to
/// `probe`, which measures when it becomes searchable (never blocking: a busy probe skips it).
pub fn ingest<T: Target>(
    target: &T,
    plan: &Plan,
    probe: Option<&SyncSender<(String, Instant)>>,
) -> anyhow::Result<Ingested> {
    let total = Mutex::new(Ingested::default());
    let per_client = plan.messages / plan.clients as u64;
    let extra = plan.messages % plan.clients as u64;
    let interval = plan
        .rate
        .map(|r| Duration::from_secs_f64(plan.batch as f64 * plan.clients as f64 / r));
    let clients = (0..plan.clients)
        .map(|_| target.client())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut handles = Vec::new();
        for (c, client) in clients.into_iter().enumerate() {
            let quota = per_client + u64::from((c as u64) < extra);
            let total = &total;
            handles.push(s.spawn(move || -> anyhow::Result<()> {
                let mut run = ClientRun {
                    client,
                    batch: Vec::with_capacity(plan.batch),
                    done: Ingested::default(),
                    interval,
                    // Spread the clients' first sends over one interval.
                    next_send: Instant::now()
                        + interval.unwrap_or_default() * c as u32 / plan.clients as u32,
                    probe,
                    progress: plan.progress.as_deref(),
                };
                let mut whole: Vec<OperationSpec> = Vec::new();
                let mut whole_messages = 0;
                for mut op in ClientStream::new(plan.seed, plan.first_client + c, quota) {
                    if plan.whole_operations {
                        // Operations with their messages, about `batch` messages a request.
                        if whole_messages + op.messages.len() > plan.batch && !whole.is_empty() {
                            run.flush_whole(&mut whole)?;
                            whole_messages = 0;
                        }
                        whole_messages += op.messages.len();
                        whole.push(op);
                        continue;
                    }
                    let t = Instant::now();
                    let id = run.client.create_operation(&op)?;
                    run.done.ack.push(t.elapsed());
                    run.done.operations += 1;
                    for m in std::mem::take(&mut op.messages) {
                        run.batch.push((id.clone(), m));
                        if run.batch.len() == plan.batch {
                            run.flush()?;
                        }
                    }
                }
                run.flush_whole(&mut whole)?;
                run.flush()?;
                let mut t = total.lock().expect("not poisoned");
                t.messages += run.done.messages;
                t.operations += run.done.operations;
                t.payload_bytes += run.done.payload_bytes;
                t.ack.append(&mut run.done.ack);
                Ok(())
            }));
        }
        for h in handles {
            h.join().expect("a client thread panicked")?;
        }
        Ok(())
    })?;
    let mut total = total.into_inner().expect("not poisoned");
    total.seconds = started.elapsed().as_secs_f64();
    Ok(total)
}

/// The `p`th percentile (0-1) of `samples` in milliseconds; 0 when empty.
pub fn percentile_ms(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let i = ((samples.len() as f64 * p) as usize).min(samples.len() - 1);
    samples[i].as_secs_f64() * 1e3
}
