//! The command-line arguments of the query commands, shared by `search`, `ops` and `tail`. Their
//! filter flags are the filters of the endpoint each command reads (`opslog::query_params`).

use std::time::Duration;

use std::marker::PhantomData;

use clap::{Arg, ArgAction, ArgMatches, Args};
use opslog::query_params::{Endpoint, Kind, QueryParameter};

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

/// Which endpoint's filters a command's flags are: the CLI offers every filter the endpoint
/// takes (`opslog::query_params`), as `--<name>` with `_` written `-`, repeatable where the
/// parameter repeats.
pub trait FilterEndpoint: Clone + std::fmt::Debug + Send + Sync + 'static {
    const ENDPOINT: Endpoint;
}

/// `opslog ops`: the filters of `GET /operations`.
#[derive(Clone, Debug)]
pub struct OperationsEndpoint;
impl FilterEndpoint for OperationsEndpoint {
    const ENDPOINT: Endpoint = Endpoint::Operations;
}

/// `opslog search` and `opslog tail`: the filters of `GET /messages`.
#[derive(Clone, Debug)]
pub struct MessagesEndpoint;
impl FilterEndpoint for MessagesEndpoint {
    const ENDPOINT: Endpoint = Endpoint::Messages;
}

/// The filter flags of one endpoint, as given (OR within a flag, AND between flags).
#[derive(Clone, Debug)]
pub struct FilterArgs<E: FilterEndpoint> {
    given: Vec<(&'static QueryParameter, String)>,
    endpoint: PhantomData<E>,
}

impl<E: FilterEndpoint> FilterArgs<E> {
    /// The flags as query parameters of the endpoint.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        self.given
            .iter()
            .map(|(p, value)| (p.name, value.clone()))
            .collect()
    }

    /// The flags as query parameters of `endpoint`, where a parameter that sets the same thing
    /// may have another name (`message_type` is `type` on one operation's messages); a flag
    /// `endpoint` has no parameter for is an error naming it.
    pub fn pairs_for(&self, endpoint: Endpoint) -> Result<Vec<(&'static str, String)>, String> {
        self.given
            .iter()
            .map(|(p, value)| {
                endpoint
                    .filters()
                    .find(|q| q.sets == p.sets)
                    .map(|q| (q.name, value.clone()))
                    .ok_or_else(|| format!("--{} does not apply here", flag(p.name)))
            })
            .collect()
    }
}

/// The flag of parameter `name`: `end_user_id` is `--end-user-id`.
fn flag(name: &str) -> String {
    name.replace('_', "-")
}

/// What a flag's help says: the parameter's description and the values it takes.
fn help(p: &QueryParameter) -> String {
    let values = match p.kind.values() {
        Some(values) => format!(" ({})", values.join(", ")),
        None => match p.kind {
            Kind::OperationType => " (`sync`, or `sync:run` with the action)".to_owned(),
            Kind::Tag => " (`key:value`)".to_owned(),
            _ => String::new(),
        },
    };
    let repeat = if p.repeatable { "; repeatable" } else { "" };
    format!("{}{values}{repeat}", capitalised(p.description))
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

impl<E: FilterEndpoint> clap::FromArgMatches for FilterArgs<E> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = FilterArgs {
            given: Vec::new(),
            endpoint: PhantomData,
        };
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for p in E::ENDPOINT.filters() {
            if let Some(values) = matches.get_many::<String>(p.name) {
                self.given.retain(|(q, _)| q.name != p.name);
                self.given.extend(values.map(|v| (p, v.clone())));
            }
        }
        Ok(())
    }
}

impl<E: FilterEndpoint> clap::Args for FilterArgs<E> {
    fn augment_args(command: clap::Command) -> clap::Command {
        E::ENDPOINT.filters().fold(command, |command, p| {
            let action = if p.repeatable {
                ArgAction::Append
            } else {
                ArgAction::Set
            };
            command.arg(
                Arg::new(p.name)
                    .long(flag(p.name))
                    .value_name(p.label.to_uppercase().replace(' ', "_"))
                    .action(action)
                    .help(help(p)),
            )
        })
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

#[derive(Args, Debug, Clone)]
pub struct SearchArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Full-text query (`"rate limit"`, `refresh*`, `timeout OR 503`, `github -timeout`).
    pub query: Option<String>,
    #[command(flatten)]
    pub filters: FilterArgs<MessagesEndpoint>,
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
    pub filters: FilterArgs<OperationsEndpoint>,
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
    /// With `--operation`, only `--level` and `--message-type` apply.
    #[command(flatten)]
    pub filters: FilterArgs<MessagesEndpoint>,
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
