//! `opslog search` (GET /messages) and `opslog ops` (GET /operations): one query, one table.

use opslog::model::Timestamp;

use super::args::{OpsArgs, SearchArgs};
use super::client::{since_to_rfc3339, ApiClient, CliError};
use super::render::Printer;

pub fn search(args: SearchArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.connect)?;
    let mut query = args.filters.pairs();
    if let Some(q) = args.query.filter(|q| !q.trim().is_empty()) {
        query.push(("q", q));
    }
    if let Some(since) = &args.since {
        query.push(("from", since_to_rfc3339(since, Timestamp::now().millis())?));
    }
    let (messages, total) = client.list("/messages", &query, args.limit)?;
    let mut printer = Printer::new(args.connect.json);
    printer.messages(&messages)?;
    footer(&printer, messages.len(), total, "message");
    Ok(())
}

pub fn ops(args: OpsArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.connect)?;
    let mut query = args.filters.pairs();
    if let Some(q) = args.query.filter(|q| !q.trim().is_empty()) {
        query.push(("q", q));
    }
    if let Some(since) = &args.since {
        query.push(("from", since_to_rfc3339(since, Timestamp::now().millis())?));
    }
    let (operations, total) = client.list("/operations", &query, args.limit)?;
    let mut printer = Printer::new(args.connect.json);
    printer.operations(&operations)?;
    footer(&printer, operations.len(), total, "operation");
    Ok(())
}

/// How much of the match was shown, on stderr so piped output stays only rows.
fn footer(printer: &Printer, shown: usize, total: u64, noun: &str) {
    if printer.is_json() {
        return;
    }
    let plural = if total == 1 { "" } else { "s" };
    if shown as u64 >= total {
        eprintln!("{total} {noun}{plural}");
    } else {
        eprintln!("{shown} of {total} {noun}{plural} (newest first; --limit to see more)");
    }
}
