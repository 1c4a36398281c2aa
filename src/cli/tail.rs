//! `opslog tail`: follows new messages by polling. Across the environment it re-reads the newest
//! page of GET /messages and prints the ids it has not shown yet, oldest first (so a message the
//! index made searchable late is still shown); for one operation it follows the `after` cursor.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use opslog::query_params::Endpoint;
use serde_json::Value;

use super::args::TailArgs;
use super::client::{ApiClient, CliError};
use super::render::Printer;

/// How many shown ids are remembered; far more than one poll can return.
const REMEMBERED: usize = 20_000;
/// Newest-first pages read per poll before giving up on closing a gap.
const MAX_PAGES_PER_POLL: usize = 20;

struct Limits {
    max: Option<usize>,
    until: Option<Instant>,
    printed: usize,
}

impl Limits {
    fn done(&self) -> bool {
        self.max.is_some_and(|m| self.printed >= m)
            || self.until.is_some_and(|u| Instant::now() >= u)
    }

    /// Sleeps `interval`, or less when the deadline is sooner.
    fn pause(&self, interval: Duration) {
        let left = self
            .until
            .map_or(interval, |u| u.saturating_duration_since(Instant::now()));
        std::thread::sleep(interval.min(left));
    }

    /// Prints at most what `--max` still allows.
    fn print(&mut self, printer: &mut Printer, messages: &[Value]) -> Result<(), CliError> {
        let allowed = self
            .max
            .map_or(messages.len(), |m| m.saturating_sub(self.printed));
        let messages = &messages[..messages.len().min(allowed)];
        printer.stream(messages)?;
        self.printed += messages.len();
        Ok(())
    }
}

pub fn tail(args: TailArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.connect)?;
    let mut printer = Printer::new(args.connect.json);
    let mut limits = Limits {
        max: args.max,
        until: args.duration.map(|d| Instant::now() + d),
        printed: 0,
    };
    match &args.operation {
        Some(op) => follow_operation(&client, &mut printer, &mut limits, op, &args),
        None => follow_environment(&client, &mut printer, &mut limits, &args),
    }
}

fn follow_operation(
    client: &ApiClient,
    printer: &mut Printer,
    limits: &mut Limits,
    operation: &str,
    args: &TailArgs,
) -> Result<(), CliError> {
    let path = format!("/operations/{}/messages", urlencoding::encode(operation));
    let mut base = args
        .filters
        .pairs_for(Endpoint::OperationMessages)
        .map_err(|e| {
            CliError::Usage(format!(
                "{e} with --operation (only --level and --message-type do)"
            ))
        })?;
    if let Some(q) = args.query.clone().filter(|q| !q.trim().is_empty()) {
        base.push(("q", q));
    }
    let mut after: Option<String> = None;
    while !limits.done() {
        let mut query = base.clone();
        query.push(("limit", "500".into()));
        if let Some(a) = &after {
            query.push(("after", a.clone()));
        }
        let page = client.get(&path, &query)?;
        let messages = page["data"].as_array().cloned().unwrap_or_default();
        if let Some(last) = messages.last().and_then(|m| m["id"].as_str()) {
            after = Some(last.to_owned());
        }
        limits.print(printer, &messages)?;
        if page["next_cursor"].is_null() {
            limits.pause(args.interval);
        }
    }
    Ok(())
}

fn follow_environment(
    client: &ApiClient,
    printer: &mut Printer,
    limits: &mut Limits,
    args: &TailArgs,
) -> Result<(), CliError> {
    let mut query = args.filters.pairs();
    if let Some(q) = args.query.clone().filter(|q| !q.trim().is_empty()) {
        query.push(("q", q));
    }
    let mut seen = Seen::default();
    // The first page is history: remember all of it, show the last `--lines`.
    let first = newest_page(client, &query, None)?;
    let mut history: Vec<Value> = first.0.clone();
    history.truncate(args.lines);
    history.reverse();
    for m in &first.0 {
        seen.insert(id(m));
    }
    // Older than everything in the first page: history beyond the window, never shown.
    let floor = first.0.last().map(|m| id(m).to_owned()).unwrap_or_default();
    limits.print(printer, &history)?;
    while !limits.done() {
        limits.pause(args.interval);
        let mut fresh = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES_PER_POLL {
            let (page, next) = newest_page(client, &query, cursor.take())?;
            let mut reached_seen = false;
            for m in page {
                let i = id(&m);
                if seen.contains(i) || i <= floor.as_str() {
                    reached_seen = true;
                } else {
                    fresh.push(m);
                }
            }
            match next {
                Some(c) if !reached_seen => cursor = Some(c),
                _ => break,
            }
        }
        fresh.sort_by(|a, b| id(a).cmp(id(b)));
        for m in &fresh {
            seen.insert(id(m));
        }
        limits.print(printer, &fresh)?;
    }
    Ok(())
}

fn id(message: &Value) -> &str {
    message["id"].as_str().unwrap_or("")
}

fn newest_page(
    client: &ApiClient,
    query: &[(&str, String)],
    cursor: Option<String>,
) -> Result<(Vec<Value>, Option<String>), CliError> {
    let mut q = query.to_vec();
    q.push(("limit", "500".into()));
    if let Some(c) = cursor {
        q.push(("cursor", c));
    }
    let page = client.get("/messages", &q)?;
    let data = page["data"].as_array().cloned().unwrap_or_default();
    let next = page["next_cursor"].as_str().map(str::to_owned);
    Ok((data, next))
}

/// The ids already shown, forgetting the oldest beyond `REMEMBERED`.
#[derive(Default)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    fn insert(&mut self, id: &str) {
        if self.set.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            if self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
}
