//! A real daemon per test: `app::start` on 127.0.0.1:0 with a temp data dir, and a small blocking
//! HTTP client that never treats a status as an error.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opslog::config::{Config, EnvironmentConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "test-admin-token-0123456789";
pub const DEV_KEY: &str = "test-dev-key-0123456789abc";
pub const PROD_KEY: &str = "test-prod-key-0123456789ab";

pub struct Daemon {
    pub base: String,
    pub agent: ureq::Agent,
    shutdown: CancellationToken,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub text: String,
    /// The body as it came (`text` is lossy for a binary one).
    pub bytes: Vec<u8>,
}

impl Reply {
    /// The `error.code` of an error reply.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

pub fn test_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.data_dir = dir.to_owned();
    config.server.admin_tokens = vec![ADMIN.into()];
    for (name, key) in [("dev", DEV_KEY), ("prod", PROD_KEY)] {
        config.environments.insert(
            name.into(),
            EnvironmentConfig {
                api_keys: vec![key.into()],
                ..EnvironmentConfig::default()
            },
        );
    }
    config
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(|_| {})
    }

    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> Daemon {
        Daemon::start_in(tempfile::tempdir().unwrap(), adjust)
    }

    /// Starts on the data dir `dir` (one `stop` returned, to restart on what was written).
    pub fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> Daemon {
        let mut config = test_config(dir.path());
        adjust(&mut config);
        config.validate().expect("test config is valid");
        let shutdown = CancellationToken::new();
        let (ready_tx, ready_rx) = mpsc::channel();
        let token = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let running = opslog::app::start(config, listener, token)
                    .await
                    .inspect_err(|e| eprintln!("the daemon did not start: {e:#}"))?;
                ready_tx.send(running.local_addr).unwrap();
                running.wait().await
            })
        });
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("daemon started");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Daemon {
            base: format!("http://{addr}"),
            agent,
            shutdown,
            thread: Some(thread),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `body` (raw bytes) with `method` to `path` as `token`.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        let uri = self.url(path);
        let mut builder = ureq::http::Request::builder().method(method).uri(&uri);
        if let Some(t) = token {
            builder = builder.header("authorization", format!("Bearer {t}"));
        }
        let has_type = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !has_type {
            builder = builder.header("content-type", "application/json");
        }
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let response = match body {
            Some(b) => self.agent.run(builder.body(b.to_vec()).unwrap()),
            None => self.agent.run(builder.body(()).unwrap()),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let mut body = response.into_body();
        // Lossy: a binary answer (a backup) still has its length and bytes, mostly.
        let bytes = body
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
            bytes,
        }
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.raw("GET", path, Some(token), &[], None)
    }

    pub fn send(&self, method: &str, path: &str, token: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).unwrap();
        self.raw(method, path, Some(token), &[], Some(&bytes))
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send("POST", path, token, body)
    }

    pub fn patch(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.send("PATCH", path, token, body)
    }

    /// Starts an operation in `env` and returns its id.
    pub fn start_operation(&self, env: &str, token: &str, body: &Value) -> String {
        let reply = self.post(&format!("/v1/environments/{env}/operations"), token, body);
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Stops the daemon gracefully and returns its data dir.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.shutdown_and_join();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    fn shutdown_and_join(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .expect("daemon thread")
                .expect("daemon stopped cleanly");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes a file only its owner can read: opslog refuses a config file holding secrets that
/// other users can read.
pub fn write_private(path: &std::path::Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Polls `check` until it returns `Some`, for at most `limit`.
pub fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}
