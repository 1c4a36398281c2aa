//! The `opslog` command: parse the CLI, load the config, run the daemon or a query command (see
//! `cli`), map errors to exit codes.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use opslog::app::{self, Running};

/// mimalloc instead of glibc's malloc: allocation was ~15 % of the daemon's CPU per message (many
/// short-lived strings per message on their way to the store and the index), and mimalloc's
/// per-thread free lists cut that; the 10-minute soak shows memory flat with it (README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use opslog::config::Config;

#[derive(Parser)]
#[command(
    name = "opslog",
    version,
    about = "Activity logs: operations, messages, search, webhooks, OTel export"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the daemon (embedded defaults unless --config is given).
    Serve {
        /// TOML configuration file (see config.example.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// How log lines on stderr are written: `text` for people, `json` (one object per line)
        /// for log collectors.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate a config file and print the effective configuration, secrets masked.
    CheckConfig { file: PathBuf },
    /// Rebuild the search index from the store, offline (the daemon must not be running).
    Reindex {
        /// The data dir of the daemon (server.data_dir).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Search messages across an environment of a running daemon (GET /messages), newest first.
    Search(cli::SearchArgs),
    /// List operations of a running daemon (GET /operations), newest first.
    Ops(cli::OpsArgs),
    /// Follow new messages live, across the environment or of one operation.
    Tail(cli::TailArgs),
    /// Write an environment's operations and messages as NDJSON, from a running daemon (one
    /// consistent snapshot).
    Export(cli::ExportArgs),
    /// Add the operations and messages of an export to a running daemon, keeping their ids
    /// (importing the same file twice adds nothing). Needs the admin token.
    Import(cli::ImportArgs),
    /// Erase everything about one connection, end user or integration from a running daemon
    /// (says how many operations first; erases with --yes). Needs the admin token.
    Erase(cli::EraseArgs),
    /// Benchmark ingest and search on this machine, side by side with SQLite + FTS5.
    Bench(BenchArgs),
    /// Print the version.
    Version,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Messages to generate: 1M, 10M, 250k or a plain number.
    #[arg(long, default_value = "1M", value_parser = opslog_bench::workload::parse_count)]
    messages: u64,
    /// Concurrent HTTP clients posting batches.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seed of the generated workload (the same seed gives the same data).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Messages per batch request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Create each operation alone, then append messages in batches across operations, instead
    /// of sending whole operations with their messages (about --batch messages a request).
    #[arg(long)]
    appends: bool,
    /// Runs of each query.
    #[arg(long, default_value_t = 50)]
    query_runs: usize,
    /// Benchmark a running daemon at this root URL instead of starting one (needs --token).
    #[arg(long)]
    url: Option<String>,
    /// For --url: a key with both scopes (`ingest+read`: it writes, then searches) or an admin
    /// token.
    #[arg(long)]
    token: Option<String>,
    /// Environment to write into with --url.
    #[arg(long, default_value = "bench")]
    environment: String,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Measure opslog only.
    #[arg(long)]
    skip_sqlite: bool,
    /// Also send the same operations as OTLP/HTTP protobuf spans (their messages as events) to a
    /// fresh daemon, and print its msgs/s and CPU per message beside the JSON API's.
    #[arg(long, conflicts_with = "soak")]
    otlp: bool,
    /// The opslog binary whose `serve` is benchmarked (default: this one), to compare builds.
    #[arg(long, conflicts_with = "url")]
    daemon_bin: Option<PathBuf>,
    /// Soak instead: measure the maximum ingest briefly, then run --minutes at half of it with
    /// searches and a webhook receiver failing 30% of requests; print a table and a verdict.
    #[arg(long)]
    soak: bool,
    /// Length of the soak.
    #[arg(long, default_value_t = 10, requires = "soak")]
    minutes: u64,
    /// Messages ingested at full speed to measure the maximum before the soak.
    #[arg(long, default_value = "20k", value_parser = opslog_bench::workload::parse_count, requires = "soak")]
    probe_messages: u64,
    /// Seconds between two samples of the daemon's memory and outbox depth during the soak.
    #[arg(long, default_value_t = 5, requires = "soak")]
    sample_secs: u64,
}

fn main() -> ExitCode {
    // No transparent huge pages for this process: mimalloc asks for them, so each fresh region
    // (tantivy allocates a new arena for every segment it writes, several a second under ingest)
    // was zeroed 2 MiB at a time; that zeroing was 5-8 % of the CPU of an index rebuild, which
    // without it took ~15 % less CPU and ~10 % less peak memory (perf, 1M messages).
    // SAFETY: prctl with these arguments only sets a flag of the calling process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let parsed = Cli::parse();
    // The query commands talk to a daemon over HTTP: no runtime, no daemon logging.
    let query = match parsed.command {
        Commands::Search(args) => cli::search(args),
        Commands::Ops(args) => cli::ops(args),
        Commands::Tail(args) => cli::tail(args),
        Commands::Export(args) => cli::export(args),
        Commands::Import(args) => cli::import(args),
        Commands::Erase(args) => cli::erase(args),
        command => return run_daemon_command(command),
    };
    match query {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`) and then by
/// `secrets::loggable`: the crates that carry requests and mail log only warnings and errors,
/// since below that they print what they send (a Slack webhook's secret path, a routing key).
/// Colored only when stderr is a terminal and `NO_COLOR` is unset, so a file or a pipe gets
/// plain text.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let colors = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let asked = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let wire = tracing_subscriber::filter::filter_fn(|meta| {
        opslog::secrets::loggable(meta.target(), meta.level())
    });
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(colors)
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        // `message` and the event's fields at the top level: what log collectors index.
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
    };
    // Both filters are global: a line is written only if each lets it through (a `log` record,
    // such as ureq's, is checked by its own target).
    tracing_subscriber::registry()
        .with(asked)
        .with(wire)
        .with(logs)
        .init();
}

fn run_daemon_command(command: Commands) -> ExitCode {
    let log_format = match &command {
        Commands::Serve { log_format, .. } => *log_format,
        _ => LogFormat::Text,
    };
    init_logging(log_format);
    let result = match command {
        Commands::Serve { config, .. } => serve(config),
        Commands::CheckConfig { file } => Config::load(&file)
            .map(|config| print!("{config}"))
            .map_err(anyhow::Error::from),
        Commands::Reindex { data_dir } => reindex(&data_dir),
        Commands::Bench(args) => bench(args),
        Commands::Version => {
            println!("opslog {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Commands::Search(_)
        | Commands::Ops(_)
        | Commands::Tail(_)
        | Commands::Export(_)
        | Commands::Import(_)
        | Commands::Erase(_) => {
            unreachable!("query commands return before the daemon's logging is set up")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if log_format == LogFormat::Json => {
            tracing::error!(error = format!("{e:#}"), "opslog stopped on an error");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = match &config_path {
        Some(path) => Config::load(path)?,
        None => Config::embedded()?,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let running = app::start(config, listener, shutdown).await?;
        print_banner(&running);
        running.wait().await
    })
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.soak {
        return opslog_bench::soak::run(&opslog_bench::soak::SoakOptions {
            minutes: args.minutes,
            clients: args.clients,
            batch: args.batch,
            whole_operations: !args.appends,
            seed: args.seed,
            probe_messages: args.probe_messages,
            sample_every: std::time::Duration::from_secs(args.sample_secs.max(1)),
        });
    }
    let report = opslog_bench::run(&opslog_bench::Options {
        messages: args.messages,
        clients: args.clients,
        seed: args.seed,
        url: args.url,
        token: args.token,
        environment: args.environment,
        skip_sqlite: args.skip_sqlite,
        daemon_bin: args.daemon_bin,
        batch: args.batch,
        whole_operations: !args.appends,
        query_runs: args.query_runs,
        otlp: args.otlp,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", opslog_bench::render(&report));
    }
    Ok(())
}

fn reindex(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    app::open_data_dir(data_dir)?;
    let store = std::sync::Arc::new(
        opslog::store::Store::open(data_dir)
            .with_context(|| format!("cannot open the store in {}", data_dir.display()))?,
    );
    let index_dir = opslog::index::index_dir(data_dir);
    if index_dir.exists() {
        std::fs::remove_dir_all(&index_dir)
            .with_context(|| format!("cannot remove {}", index_dir.display()))?;
    }
    let (index, indexer) = opslog::index::open(data_dir, store)?;
    let seq = indexer.build_offline()?;
    let records = index
        .shared
        .rebuild_progress
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "reindexed {records} records in {:.1}s (feed position {seq})",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
        // Without a handler SIGHUP would kill the daemon. Nothing in the config is reloaded at
        // runtime (keys, listeners and retention are wired at start), so say so and keep serving.
        let mut hangup = signal(SignalKind::hangup()).expect("installing a SIGHUP handler");
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hangup.recv() => tracing::warn!(
                    "SIGHUP received: opslog does not reload its config at runtime; \
                     restart it to apply config changes (systemctl restart opslog); still serving"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutdown requested");
    shutdown.cancel();
}

fn print_banner(running: &Running) {
    let base = format!("http://{}", running.local_addr);
    println!("opslog {} listening on {base}", env!("CARGO_PKG_VERSION"));
    println!("dashboard: {}", running.dashboard_url);
    println!("data dir: {}", running.data_dir.display());
    if running.generated.is_empty() {
        return;
    }
    println!();
    println!("First start: these credentials were generated and saved in the data dir.");
    println!("They are shown only now; set your own in the config file to replace them.");
    println!("Ingest keys write (integration code), read keys search (CLI), the admin token does");
    println!("everything else (settings, destinations, replays, import, backup, dashboard).");
    println!(
        "Open {} and sign in with the admin token.",
        running.dashboard_url
    );
    for secret in &running.generated {
        let label = match &secret.environment {
            None => "admin token:".to_owned(),
            Some((env, scope)) => format!("{scope} key for `{env}`:"),
        };
        println!("  {label:<26}{}", secret.token);
    }
    let ingest_key = running.api_keys.iter().find_map(|(env, keys)| {
        keys.iter()
            .find(|k| k.scope.allows(opslog::scope::Scope::Ingest))
            .map(|k| (env, &k.key))
    });
    if let Some((env, key)) = ingest_key {
        println!();
        println!("Try it:");
        println!(
            "  curl -s -X POST {base}/v1/environments/{env}/operations \\\n    -H 'Authorization: Bearer {key}' -H 'content-type: application/json' \\\n    -d '{{\"type\":\"sync\",\"integration\":\"github\",\"connection_id\":\"acme\",\"script\":\"issues\"}}'"
        );
    }
}
