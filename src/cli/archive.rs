//! `opslog export` and `opslog import`: an environment's operations and messages as NDJSON
//! (the format of `opslog::archive`), through a running daemon's API, so both work while the
//! daemon runs (redb allows one process per database file) and from another machine.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use clap::Args;
use opslog::archive::{self, End, Line};
use opslog::model::Timestamp;
use opslog::write::Imported;

use super::args::ConnectArgs;
use super::client::{since_to_rfc3339, ApiClient, CliError};

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only operations created at or after this: a duration back from now (`7d`) or an RFC 3339 time.
    #[arg(long)]
    pub from: Option<String>,
    /// Only operations created at or before this: a duration back from now or an RFC 3339 time.
    #[arg(long)]
    pub to: Option<String>,
    /// Write to this file instead of stdout (removed again if the export fails midway).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// Needs the admin token.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// A file written by `opslog export`.
    pub file: PathBuf,
    /// Bytes sent per request; at most the daemon's `server.max_body_bytes`.
    #[arg(long, default_value_t = 4 << 20)]
    pub batch_bytes: usize,
}

pub fn export(args: ExportArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.connect)?;
    let now = Timestamp::now().millis();
    let mut query = Vec::new();
    for (name, value) in [("from", &args.from), ("to", &args.to)] {
        if let Some(value) = value {
            let time = since_to_rfc3339(value, now).map_err(|_| {
                CliError::Usage(format!(
                    "--{name} `{value}`: neither a duration like `7d` nor an RFC 3339 time"
                ))
            })?;
            query.push((name, time));
        }
    }
    let body = client.stream("GET", "/export", &query, None)?;
    let written = match &args.output {
        Some(path) => {
            // An export holds log lines (often personal data): only its owner reads it.
            let file = opslog::permissions::create_private_file(path)
                .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", path.display())))?;
            let written = copy_export(body, BufWriter::new(file));
            if written.is_err() {
                let _ = std::fs::remove_file(path);
            }
            written
        }
        None => copy_export(body, BufWriter::new(std::io::stdout().lock())),
    }?;
    eprintln!(
        "exported {} operations and {} messages",
        written.operations, written.messages
    );
    Ok(())
}

/// Copies the export to `out` and checks that it ended with its end line.
fn copy_export(body: ureq::Body, mut out: impl Write) -> Result<End, CliError> {
    let reader = BufReader::new(body.into_reader());
    let mut last = String::new();
    for line in reader.lines() {
        let line = line.map_err(|e| CliError::BadAnswer {
            url: "/export".into(),
            reason: format!("the export stopped midway ({e}); the daemon's log says why"),
        })?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        last = line;
    }
    out.flush()?;
    match archive::parse_line(&last) {
        Ok(Line::End(end)) => Ok(end),
        _ => Err(CliError::BadAnswer {
            url: "/export".into(),
            reason: "the export stopped before its end line; the daemon's log says why".into(),
        }),
    }
}

pub fn import(args: ImportArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.connect)?;
    let open = || {
        File::open(&args.file)
            .map(BufReader::new)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", args.file.display())))
    };
    // Check the whole file before sending anything: a truncated export is refused.
    check_complete(open()?, &args.file)?;
    let mut total = Imported::default();
    let mut batch = Vec::with_capacity(args.batch_bytes.min(64 << 20));
    let mut send = |batch: &mut Vec<u8>| -> Result<(), CliError> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = std::mem::take(batch);
        let answer = client.stream("POST", "/import", &[], Some((archive::CONTENT_TYPE, body)))?;
        let text = answer
            .into_with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| CliError::BadAnswer {
                url: "/import".into(),
                reason: e.to_string(),
            })?;
        let counts: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| CliError::BadAnswer {
                url: "/import".into(),
                reason: format!("not JSON ({e})"),
            })?;
        let count = |name: &str| counts[name].as_u64().unwrap_or(0);
        total.operations_added += count("operations_added");
        total.operations_skipped += count("operations_skipped");
        total.messages_added += count("messages_added");
        total.messages_skipped += count("messages_skipped");
        Ok(())
    };
    for (number, line) in open()?.lines().enumerate() {
        let line = line?;
        if line.len() + 1 > args.batch_bytes {
            return Err(CliError::Usage(format!(
                "line {} of {} is {} bytes, more than --batch-bytes {}",
                number + 1,
                args.file.display(),
                line.len(),
                args.batch_bytes
            )));
        }
        if batch.len() + line.len() + 1 > args.batch_bytes {
            send(&mut batch)?;
        }
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'\n');
    }
    send(&mut batch)?;
    if args.connect.json {
        println!(
            "{}",
            serde_json::to_string(&total).expect("counts serialize")
        );
    } else {
        println!(
            "imported {} operations ({} already there) and {} messages ({} already there)",
            total.operations_added,
            total.operations_skipped,
            total.messages_added,
            total.messages_skipped
        );
    }
    Ok(())
}

/// Counts the operation and message lines and checks them against the end line.
fn check_complete(file: impl BufRead, path: &std::path::Path) -> Result<(), CliError> {
    let (mut operations, mut messages) = (0u64, 0u64);
    let mut last = String::new();
    for line in file.lines() {
        let line = line?;
        if line.starts_with(r#"{"operation":"#) {
            operations += 1;
        } else if line.starts_with(r#"{"message":"#) {
            messages += 1;
        }
        if !line.trim().is_empty() {
            last = line;
        }
    }
    match archive::parse_line(&last) {
        Ok(Line::End(end)) if end == End { operations, messages } => Ok(()),
        Ok(Line::End(end)) => Err(CliError::Usage(format!(
            "{} has {operations} operations and {messages} messages, but its end line says {} and {}: it was changed or damaged",
            path.display(),
            end.operations,
            end.messages
        ))),
        _ => Err(CliError::Usage(format!(
            "{} does not end with an export's end line: it is truncated or not from `opslog export`",
            path.display()
        ))),
    }
}
