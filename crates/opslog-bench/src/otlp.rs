//! `opslog bench --otlp`: the same generated operations sent to the daemon as an OpenTelemetry
//! SDK would, OTLP/HTTP protobuf export requests to `/otlp/v1/traces`: each operation one span
//! (its type, integration, connection and script in `opslog.*` attributes, a failed one with the
//! status `ERROR`), each of its messages an event of that span.
//!
//! Must not: reach into the daemon's internals; everything goes through HTTP.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::drive::{Target, TargetClient};
use super::opslog::Daemon;
use super::workload::{MessageSpec, OperationSpec};

/// The daemon, reached over OTLP/HTTP.
pub struct Otlp<'a>(pub &'a Daemon);

pub struct OtlpClient {
    agent: ureq::Agent,
    url: String,
    auth: String,
    rng: StdRng,
}

impl Target for Otlp<'_> {
    type Client = OtlpClient;
    fn client(&self) -> anyhow::Result<OtlpClient> {
        Ok(OtlpClient {
            agent: ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(120)))
                .http_status_as_error(false)
                .build()
                .into(),
            url: format!("{}/otlp/v1/traces", self.0.base),
            auth: format!("Bearer {}", self.0.token),
            rng: StdRng::from_os_rng(),
        })
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
}

fn event(m: &MessageSpec, at: u64) -> Event {
    let mut attributes = vec![
        text("opslog.message.level", m.level),
        text("opslog.message.type", m.kind),
    ];
    if let Some(r) = &m.request {
        attributes.push(text("http.request.method", r.method));
        attributes.push(text("url.full", &r.url));
    }
    if let Some(r) = &m.response {
        attributes.push(int("http.response.status_code", i64::from(r.status)));
    }
    if let Some(ms) = m.duration_ms {
        attributes.push(int("opslog.message.duration_ms", i64::from(ms)));
    }
    Event {
        time_unix_nano: at,
        name: m.message.clone().unwrap_or_default(),
        attributes,
        ..Event::default()
    }
}

impl OtlpClient {
    fn span(&mut self, op: &OperationSpec, now: u64) -> Span {
        let failed = op.state == "failed";
        Span {
            trace_id: self.rng.random::<[u8; 16]>().to_vec(),
            span_id: self.rng.random::<[u8; 8]>().to_vec(),
            name: format!("{}.run", op.kind),
            start_time_unix_nano: now - 1_000_000 * op.messages.len() as u64,
            end_time_unix_nano: now,
            attributes: vec![
                text("opslog.operation.type", op.kind),
                text("opslog.operation.state", op.state),
                text("opslog.integration", op.integration),
                text("opslog.connection_id", &op.connection_id),
                text("opslog.script", op.script),
            ],
            events: op
                .messages
                .iter()
                .enumerate()
                .map(|(i, m)| event(m, now - 1_000_000 * (op.messages.len() - i) as u64))
                .collect(),
            status: Some(Status {
                code: if failed {
                    StatusCode::Error
                } else {
                    StatusCode::Ok
                } as i32,
                message: String::new(),
            }),
            ..Span::default()
        }
    }
}

impl TargetClient for OtlpClient {
    type OpId = ();

    fn create_operation(&mut self, _op: &OperationSpec) -> anyhow::Result<()> {
        bail!("OTLP sends whole operations (spans with their events)")
    }

    fn append(&mut self, _batch: &[((), MessageSpec)]) -> anyhow::Result<u64> {
        bail!("OTLP sends whole operations (spans with their events)")
    }

    fn create_with_messages(&mut self, ops: &[OperationSpec]) -> Option<anyhow::Result<u64>> {
        let now = unix_nanos();
        let spans = ops.iter().map(|op| self.span(op, now)).collect();
        let body = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
        .encode_to_vec();
        let send = || -> anyhow::Result<u64> {
            // An exporter retries a busy daemon's 503 after its `Retry-After`.
            let mut tries = 0;
            let (status, answer) = loop {
                let mut response = self
                    .agent
                    .post(&self.url)
                    .header("authorization", &self.auth)
                    .header("content-type", "application/x-protobuf")
                    .send(&body[..])
                    .context("POST /otlp/v1/traces")?;
                let status = response.status();
                let answer = response.body_mut().read_to_vec()?;
                tries += 1;
                if status.as_u16() != 503 || tries == 60 {
                    break (status, answer);
                }
                std::thread::sleep(Duration::from_secs(1));
            };
            if !status.is_success() {
                bail!("POST /otlp/v1/traces answered {status}");
            }
            // A partial success (anything in the answer) means spans were refused.
            if !answer.is_empty() {
                bail!(
                    "POST /otlp/v1/traces refused spans ({} bytes of partial success)",
                    answer.len()
                );
            }
            Ok(body.len() as u64)
        };
        Some(send())
    }
}
