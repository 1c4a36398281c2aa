//! The command-line arguments of the query commands, shared by `search`, `ops` and `tail`.

use std::time::Duration;

use clap::Args;

/// Where the daemon is and who is asking.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Base URL of the running daemon.
    #[arg(long, env = "OPSLOG_URL", default_value = "http://127.0.0.1:7400")]
    pub url: String,
    /// A read key of the environment (search, ops, tail, export), or an admin token (import).
    #[arg(long, env = "OPSLOG_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Environment to query.
    #[arg(long, env = "OPSLOG_ENV", default_value = "prod")]
    pub env: String,
    /// One JSON object per line (the API's objects, unchanged) instead of columns.
    #[arg(long)]
    pub json: bool,
}

/// Filters on the operation a record belongs to (repeatable: OR within a flag).
#[derive(Args, Debug, Clone, Default)]
pub struct OperationFilters {
    /// Integration, e.g. `github`.
    #[arg(long)]
    pub integration: Vec<String>,
    /// The end customer's connection id.
    #[arg(long = "connection-id")]
    pub connection_id: Vec<String>,
    /// Sync or action name.
    #[arg(long)]
    pub script: Vec<String>,
    /// Operation type (`sync`, or `sync:run` with the action).
    #[arg(long = "type")]
    pub kind: Vec<String>,
    /// Operation state (`running`, `success`, `failed`, `timeout`, ...).
    #[arg(long)]
    pub state: Vec<String>,
}

impl OperationFilters {
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (name, values) in [
            ("integration", &self.integration),
            ("connection_id", &self.connection_id),
            ("script", &self.script),
            ("type", &self.kind),
            ("state", &self.state),
        ] {
            out.extend(values.iter().map(|v| (name, v.clone())));
        }
        out
    }
}

#[derive(Args, Debug, Clone)]
pub struct SearchArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Full-text query (`"rate limit"`, `refresh*`, `timeout OR 503`, `github -timeout`).
    pub query: Option<String>,
    #[command(flatten)]
    pub filters: OperationFilters,
    /// Message level (`debug`, `info`, `warn`, `error`; repeatable).
    #[arg(long)]
    pub level: Vec<String>,
    /// Only messages newer than this: a duration (`15m`, `1h`, `2d`) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// How many messages to show, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Args, Debug, Clone)]
pub struct OpsArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Full-text query over the operations' own text and their messages.
    #[arg(short = 'q', long = "query")]
    pub query: Option<String>,
    #[command(flatten)]
    pub filters: OperationFilters,
    /// Only operations created after this: a duration (`1h`) or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// How many operations to show, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Args, Debug, Clone)]
pub struct TailArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Follow one operation's messages (all of them from its start) instead of the environment.
    #[arg(long)]
    pub operation: Option<String>,
    /// Full-text query the followed messages must match.
    #[arg(short = 'q', long = "query")]
    pub query: Option<String>,
    #[command(flatten)]
    pub filters: OperationFilters,
    /// Message level (repeatable).
    #[arg(long)]
    pub level: Vec<String>,
    /// How many recent messages to show before following (environment mode).
    #[arg(short = 'n', long, default_value_t = 10)]
    pub lines: usize,
    /// How often to ask the daemon for new messages.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Stop after printing this many new messages.
    #[arg(long)]
    pub max: Option<usize>,
    /// Stop after following for this long (e.g. `30s`).
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
}
