//! `opslog erase`: erases one connection's, end user's or integration's operations through a
//! running daemon (`POST /erase`), after saying how many operations it covers; without `--yes` it
//! only says so.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::args::ConnectArgs;
use super::client::{since_to_rfc3339, ApiClient, CliError};

#[derive(Args, Debug, Clone)]
pub struct EraseArgs {
    /// Needs the admin token.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Erase this connection's operations.
    #[arg(long, group = "selector")]
    pub connection_id: Option<String>,
    /// Erase this end user's operations.
    #[arg(long, group = "selector")]
    pub end_user_id: Option<String>,
    /// Erase this integration's operations.
    #[arg(long, group = "selector")]
    pub integration: Option<String>,
    /// Only operations created at or after this: a duration back from now (`7d`) or an RFC 3339 time.
    #[arg(long)]
    pub from: Option<String>,
    /// Only operations created before this: a duration back from now or an RFC 3339 time.
    #[arg(long)]
    pub to: Option<String>,
    /// Erase; without it, only say how many operations would go.
    #[arg(long)]
    pub yes: bool,
}

/// How long `opslog erase` follows a running erasure before it leaves it to the daemon.
const FOLLOW_FOR: Duration = Duration::from_secs(3600);

pub fn erase(args: EraseArgs) -> Result<(), CliError> {
    let client = ApiClient::new(&args.connect)?;
    let (field, value) = match (&args.connection_id, &args.end_user_id, &args.integration) {
        (Some(v), None, None) => ("connection_id", v),
        (None, Some(v), None) => ("end_user_id", v),
        (None, None, Some(v)) => ("integration", v),
        _ => {
            return Err(CliError::Usage(
                "name exactly one of --connection-id, --end-user-id or --integration".into(),
            ))
        }
    };
    let now = opslog::model::Timestamp::now().millis();
    let mut body = json!({ field: value });
    let mut query = vec![(field, value.clone())];
    for (name, given) in [("from", &args.from), ("to", &args.to)] {
        if let Some(given) = given {
            let time = since_to_rfc3339(given, now).map_err(|_| {
                CliError::Usage(format!(
                    "--{name} `{given}`: neither a duration like `7d` nor an RFC 3339 time"
                ))
            })?;
            body[name] = Value::String(time.clone());
            query.push((name, time));
        }
    }
    query.push(("limit", "1".into()));
    let env = &args.connect.env;
    let covered = client.get("/operations", &query)?["total"]
        .as_u64()
        .unwrap_or(0);
    if !args.yes {
        eprintln!(
            "this erases {covered} operations of {field} `{value}` in `{env}`, with their messages \
             and deliveries; run again with --yes to erase them"
        );
        return Ok(());
    }
    let answer = client.stream(
        "POST",
        "/erase",
        &[],
        Some(("application/json", body.to_string().into_bytes())),
    )?;
    let mut erasure = read_json(answer, "/erase")?;
    let started = Instant::now();
    while erasure["state"] != "done" && started.elapsed() < FOLLOW_FOR {
        let id = erasure["id"].as_str().unwrap_or_default().to_owned();
        eprintln!(
            "erasing: {} operations removed so far",
            erasure["removed"]["operations"]
        );
        std::thread::sleep(Duration::from_secs(1));
        erasure = client.get(&format!("/erasures/{id}"), &[])?;
    }
    let removed = &erasure["removed"];
    if args.connect.json {
        println!("{erasure}");
    }
    eprintln!(
        "{} erasure {}: {} operations, {} messages, {} deliveries and exports, {} attempts removed",
        erasure["state"].as_str().unwrap_or("?"),
        erasure["id"].as_str().unwrap_or("?"),
        removed["operations"],
        removed["messages"],
        removed["outbox_jobs"],
        removed["attempts"]
    );
    Ok(())
}

fn read_json(body: ureq::Body, url: &str) -> Result<Value, CliError> {
    let text = body
        .into_with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| CliError::BadAnswer {
            url: url.into(),
            reason: e.to_string(),
        })?;
    serde_json::from_str(&text).map_err(|e| CliError::BadAnswer {
        url: url.into(),
        reason: format!("not JSON ({e})"),
    })
}
