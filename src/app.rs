//! Start-up and shutdown wiring: open the store, load credentials and settings, start the writer,
//! the outbox dispatcher, the sweeper, retention and the HTTP server, and stop them in order when the
//! shutdown token fires: HTTP drained, sweeper stopped, dispatcher drained (no new claims,
//! in-flight attempts finish within `outbox.drain_timeout`), then the writer.
//!
//! Tests call `start`/`run` on a `127.0.0.1:0` listener with a temp dir: the real server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Credentials, GeneratedSecret};
use crate::config::{ApiKey, Config};
use crate::dispatch::{Dispatcher, DispatcherDeps, Wake};
use crate::http::cursor::CursorKey;
use crate::http::{self, AppState, ServeOptions};
use crate::ingest::input::Redaction;
use crate::metrics::Metrics;
use crate::model::Timestamp;
use crate::settings::Settings;
use crate::store::Store;
use crate::write::{TimeOutOverdue, Writer, WriterDeps};

/// A started daemon: where it listens, what it generated, and the handle to wait for its end.
pub struct Running {
    pub local_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// Credentials created on this start (first start only), to show once.
    pub generated: Vec<GeneratedSecret>,
    pub admin_token: String,
    /// Each environment's keys (from the config, or generated).
    pub api_keys: BTreeMap<String, Vec<ApiKey>>,
    /// Where people open the dashboard (`server.public_url`, or the listening address).
    pub dashboard_url: String,
    stopped: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Waits until shutdown has completed: HTTP drained, writer stopped, store closed.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.stopped.await.context("the server task panicked")?
    }
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    start(config, listener, shutdown).await?.wait().await
}

/// Opens everything and starts serving; returns once the daemon accepts requests.
pub async fn start(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let local_addr = listener.local_addr()?;
    let dashboard_url = config.server.dashboard_url(local_addr);
    let data_dir = config.server.data_dir.clone();
    let (store, credentials, generated, settings) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            open_data_dir(&config.server.data_dir)?;
            let store =
                Store::open_with_cache(&config.server.data_dir, config.server.store_cache_bytes)
                    .with_context(|| {
                        format!(
                            "cannot open the store in {}",
                            config.server.data_dir.display()
                        )
                    })?;
            let (credentials, generated) = Credentials::load_or_generate(&config, &store)
                .context("cannot load or generate credentials")?;
            let settings = Settings::load_or_init(&config, &store)
                .context("cannot load or initialise environment settings")?;
            Ok((Arc::new(store), credentials, generated, Arc::new(settings)))
        })
        .await??
    };
    let (index, indexer, cursor_key) = {
        let (store, data_dir) = (store.clone(), data_dir.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let (index, indexer) = crate::index::open(&data_dir, store.clone())
                .context("cannot open the search index")?;
            let cursor_key = CursorKey::load_or_generate(&store)?;
            Ok((index, indexer, cursor_key))
        })
        .await??
    };
    let metrics = Arc::new(Metrics::default());
    let wake = Arc::new(Wake::default());
    let (writer, writer_thread) = crate::write::start(
        store.clone(),
        WriterDeps {
            deadlines: config.deadlines.clone(),
            metrics: metrics.clone(),
            index: index.shared.clone(),
            settings: settings.clone(),
            outbox_queued: {
                let wake = wake.clone();
                Box::new(move || wake.notify())
            },
            max_retry_after: config.outbox.max_retry_after.0,
            queue: config.ingest.writer_queue,
        },
    )?;
    let indexer_thread = indexer.spawn();
    let dispatcher = Dispatcher::start(
        DispatcherDeps {
            store: store.clone(),
            writer: writer.clone(),
            settings: settings.clone(),
            metrics: metrics.clone(),
            config: config.outbox.clone(),
        },
        wake,
    );
    let drain_timeout = config.outbox.drain_timeout.0;

    let admin_token = credentials.admin_token.clone();
    let api_keys = credentials.api_keys.clone();
    let (erasures, erase_queue) = crate::retention::erase::channel();
    let state = Arc::new(AppState {
        store,
        writer: writer.clone(),
        credentials,
        environments: config.environments.keys().cloned().collect(),
        redaction: Redaction::new(&config.ingest.redact_headers),
        max_body_bytes: config.server.max_body_bytes,
        incoming_webhook_max_bytes: config.ingest.incoming_webhook_max_bytes,
        metrics,
        settings,
        index: index.clone(),
        cursor_key,
        sessions: crate::session::Sessions::new(config.server.session_ttl.0),
        cookie_secure: config.server.cookie_secure,
        login_limit: Default::default(),
        erasures,
    });
    let options = ServeOptions {
        header_read_timeout: config.server.header_read_timeout.0,
        shutdown_timeout: config.server.shutdown_timeout.0,
    };
    let sweeper_stop = CancellationToken::new();
    let sweeper = tokio::spawn(sweep_overdue(
        writer.clone(),
        config.deadlines.sweep_every.0,
        sweeper_stop.clone(),
    ));
    let retention = tokio::spawn(crate::retention::run(
        crate::retention::Retention {
            writer: writer.clone(),
            store: state.store.clone(),
            index: index.clone(),
            metrics: state.metrics.clone(),
            config: config.retention.clone(),
            environments: config.retention_by_environment(),
            audit: config.audit.retention.0,
            data_dir: data_dir.clone(),
        },
        sweeper_stop.clone(),
    ));
    let eraser = tokio::spawn(crate::retention::erase::run(
        crate::retention::erase::Eraser {
            writer: writer.clone(),
            store: state.store.clone(),
            index: index.clone(),
            metrics: state.metrics.clone(),
        },
        erase_queue,
        sweeper_stop.clone(),
    ));
    let alerting = tokio::spawn(crate::alerts::evaluate(
        index.clone(),
        state.settings.clone(),
        writer.clone(),
        dashboard_url.clone(),
        config.alerts.every.0,
        sweeper_stop.clone(),
    ));
    let router = http::router(state);
    tracing::info!(
        addr = %local_addr,
        dashboard = %dashboard_url,
        data_dir = %data_dir.display(),
        "opslog listening"
    );
    let stopped = tokio::spawn(async move {
        http::serve(listener, router, shutdown, options).await;
        sweeper_stop.cancel();
        let _ = sweeper.await;
        let _ = retention.await;
        let _ = eraser.await;
        let _ = alerting.await;
        // The dispatcher records results through the writer: stop it first.
        dispatcher.stop(drain_timeout).await;
        writer.stop().await;
        drop(writer);
        join_writer(writer_thread).await?;
        // The writer is done: the indexer drains the feed, commits and stops.
        index
            .shared
            .stopping
            .store(true, std::sync::atomic::Ordering::Release);
        index.shared.wake();
        tokio::task::spawn_blocking(move || indexer_thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the indexer thread panicked"))??;
        tracing::info!("opslog stopped");
        Ok(())
    });
    Ok(Running {
        local_addr,
        data_dir,
        generated,
        admin_token,
        api_keys,
        dashboard_url,
        stopped,
    })
}

/// Makes the data dir private before anything in it is opened: files created from now on are
/// the owner's alone, and what others could read is tightened (or start-up stops, saying how to
/// fix it). Also for `opslog reindex`.
pub fn open_data_dir(data_dir: &std::path::Path) -> anyhow::Result<()> {
    crate::permissions::private_umask();
    let tightened = crate::permissions::prepare_data_dir(data_dir)?;
    if !tightened.is_empty() {
        tracing::info!(
            data_dir = %data_dir.display(),
            entries = tightened.len(),
            "made the data dir private: removed group and world access (directories 0700, files 0600)"
        );
    }
    Ok(())
}

async fn join_writer(thread: JoinHandle<()>) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || thread.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))
}

/// Moves overdue operations to `timeout` every `every`, through the writer like any change.
async fn sweep_overdue(writer: Writer, every: std::time::Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        match writer
            .submit(TimeOutOverdue {
                now: Timestamp::now(),
            })
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(operations = n, "timed out overdue operations"),
            Err(e) => tracing::warn!(error = %e, "sweep failed"),
        }
    }
}
