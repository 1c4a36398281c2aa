//! opslog under test: the real daemon as a child process on a temp dir (so the daemon's CPU and
//! memory are its own), or one already running at `--url`; driven through its HTTP API like any
//! client would.
//!
//! Must not: reach into the daemon's internals; everything goes through HTTP.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::Value;

use super::drive::{Target, TargetClient};
use super::process::DaemonProcess;
use super::workload::{MessageSpec, OperationSpec};

pub const ENVIRONMENT: &str = "bench";
const KEY: &str = "bench-api-key-0123456789abcdef";

/// A daemon to benchmark: started here (with its data dir) or reached at a URL.
pub struct Daemon {
    pub base: String,
    pub token: String,
    pub data_dir: Option<PathBuf>,
    running: Running,
    agent: ureq::Agent,
}

enum Running {
    Child(DaemonProcess),
    /// Started elsewhere, or stopped.
    Elsewhere,
}

const ADMIN: &str = "bench-admin-token-0123456789abcdef";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(120)))
        .http_status_as_error(false)
        .build()
        .into()
}

impl Daemon {
    /// Starts `exe serve` as a child process with its config and data in `dir`.
    pub fn spawn(exe: &Path, dir: &Path) -> anyhow::Result<Daemon> {
        let config = format!(
            "[server]\nadmin_tokens = [\"{ADMIN}\"]\n\n[environments.{ENVIRONMENT}]\napi_keys = [\"{KEY}\"]\n"
        );
        let process = DaemonProcess::start(exe, dir, &config)?;
        Ok(Daemon {
            base: format!("{}/v1/environments/{ENVIRONMENT}", process.base),
            token: KEY.into(),
            data_dir: Some(process.data_dir.clone()),
            running: Running::Child(process),
            agent: agent(),
        })
    }

    /// The daemon's process id, when it runs as a child of this one.
    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Child(process) => Some(process.pid()),
            _ => None,
        }
    }

    /// A daemon already running at `url` (its root), with an API key or admin token for `env`.
    pub fn remote(url: &str, env: &str, token: &str) -> Daemon {
        Daemon {
            base: format!("{}/v1/environments/{env}", url.trim_end_matches('/')),
            token: token.into(),
            data_dir: None,
            running: Running::Elsewhere,
            agent: agent(),
        }
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        get(&self.agent, &self.base, &self.token, path)
    }

    /// Stops a daemon started here and waits for its final index commit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.running, Running::Elsewhere) {
            Running::Child(mut process) => process.stop()?,
            Running::Elsewhere => {}
        }
        Ok(())
    }
}

fn get(agent: &ureq::Agent, base: &str, token: &str, path: &str) -> anyhow::Result<Value> {
    let mut response = agent
        .get(&format!("{base}{path}"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .with_context(|| format!("GET {path}"))?;
    let status = response.status();
    let body = response.body_mut().read_to_string()?;
    if !status.is_success() {
        bail!("GET {path} answered {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

pub struct HttpClient {
    agent: ureq::Agent,
    base: String,
    auth: String,
    body: Vec<u8>,
}

impl HttpClient {
    fn post(&mut self, path: &str, prefer: Option<&str>) -> anyhow::Result<String> {
        let mut request = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("authorization", &self.auth)
            .header("content-type", "application/json");
        if let Some(prefer) = prefer {
            request = request.header("prefer", prefer);
        }
        let mut response = request
            .send(&self.body[..])
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let text = response.body_mut().read_to_string()?;
        if !status.is_success() {
            bail!("POST {path} answered {status}: {text}");
        }
        Ok(text)
    }
}

impl Target for Daemon {
    type Client = HttpClient;
    fn client(&self) -> anyhow::Result<HttpClient> {
        Ok(HttpClient {
            agent: agent(),
            base: self.base.clone(),
            auth: format!("Bearer {}", self.token),
            body: Vec::with_capacity(64 * 1024),
        })
    }
}

#[derive(Serialize)]
struct MessageBody<'a> {
    operation_id: &'a str,
    #[serde(flatten)]
    message: &'a MessageSpec,
}

impl TargetClient for HttpClient {
    type OpId = String;

    fn create_operation(&mut self, op: &OperationSpec) -> anyhow::Result<String> {
        self.body.clear();
        serde_json::to_writer(&mut self.body, op)?;
        let text = self.post("/operations", None)?;
        #[derive(serde::Deserialize)]
        struct Created {
            id: String,
        }
        Ok(serde_json::from_str::<Created>(&text)?.id)
    }

    fn append(&mut self, batch: &[(String, MessageSpec)]) -> anyhow::Result<u64> {
        self.body.clear();
        let bodies: Vec<MessageBody> = batch
            .iter()
            .map(|(op, m)| MessageBody {
                operation_id: op,
                message: m,
            })
            .collect();
        serde_json::to_writer(&mut self.body, &bodies)?;
        // As a logging client would: it needs the acknowledgement, not the messages back.
        self.post("/messages", Some("return=minimal"))?;
        Ok(self.body.len() as u64)
    }

    fn create_with_messages(&mut self, ops: &[OperationSpec]) -> Option<anyhow::Result<u64>> {
        #[derive(Serialize)]
        struct WithMessages<'a> {
            #[serde(flatten)]
            op: &'a OperationSpec,
            messages: &'a [MessageSpec],
        }
        let send = |client: &mut Self| -> anyhow::Result<u64> {
            client.body.clear();
            let bodies: Vec<WithMessages> = ops
                .iter()
                .map(|op| WithMessages {
                    op,
                    messages: &op.messages,
                })
                .collect();
            serde_json::to_writer(&mut client.body, &bodies)?;
            client.post("/operations", Some("return=minimal"))?;
            Ok(client.body.len() as u64)
        };
        Some(send(self))
    }
}

/// Measures ack → searchable for each token it is handed: polls a search for it until found.
pub fn probe_visibility(
    daemon: &Daemon,
    tokens: Receiver<(String, Instant)>,
) -> anyhow::Result<Vec<Duration>> {
    let agent = agent();
    let mut lags = Vec::new();
    for (token, acked) in tokens {
        let deadline = acked + Duration::from_secs(60);
        loop {
            let found = get(
                &agent,
                &daemon.base,
                &daemon.token,
                &format!("/messages?q={token}&limit=1"),
            )?;
            if found["total"].as_u64().unwrap_or(0) > 0 {
                lags.push(acked.elapsed());
                break;
            }
            if Instant::now() > deadline {
                bail!("`{token}` was not searchable 60 s after its acknowledgement");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(lags)
}
