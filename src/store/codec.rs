//! Encoding of stored records: one format-version byte, then bincode 2 (standard config).
//!
//! A newer binary must read every version an older one wrote: when a record's shape changes, the
//! old struct is kept (frozen) under its version byte and converted on read. Decoding never panics;
//! a damaged record is a `StoreError::Corrupt`.

use bincode::{Decode, Encode};

use super::StoreError;
use crate::model::{Id, Message, Operation};
use crate::outbox::{Attempt, Job};
use crate::settings::{StoredIngress, StoredWebhooks};

const V1: u8 = 1;

fn encode<T: Encode>(value: &T) -> Vec<u8> {
    let mut out = vec![V1];
    bincode::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    out
}

/// The most a decoded record may claim: bincode allocates a container as large as the length
/// its bytes announce before reading the elements, so a damaged length must not ask for more.
/// (Without a limit, a few flipped bits in a record abort the process on allocation.)
/// Far above any real record: bodies are capped by `server.max_body_bytes`.
const MAX_DECODE_BYTES: usize = 1 << 30;

fn decode<T: Decode<()>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&V1, rest)) => {
            let config = bincode::config::standard().with_limit::<MAX_DECODE_BYTES>();
            let (value, used) = bincode::decode_from_slice(rest, config)
                .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))?;
            if used != rest.len() {
                return Err(StoreError::Corrupt(format!("{what}: trailing bytes")));
            }
            Ok(value)
        }
        Some((version, _)) => Err(StoreError::Corrupt(format!(
            "{what}: unknown record version {version} (written by a newer opslog?)"
        ))),
        None => Err(StoreError::Corrupt(format!("{what}: empty record"))),
    }
}

pub(crate) fn encode_operation(op: &Operation) -> Vec<u8> {
    encode(op)
}

pub(crate) fn decode_operation(bytes: &[u8]) -> Result<Operation, StoreError> {
    decode("operation", bytes)
}

pub(crate) fn encode_message(message: &Message) -> Vec<u8> {
    encode(message)
}

pub(crate) fn decode_message(bytes: &[u8]) -> Result<Message, StoreError> {
    decode("message", bytes)
}

/// What one write group changed, for the search index to pick up.
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct FeedEntry {
    /// Operations created or changed in a way the index shows (not mere message counts).
    pub operations: Vec<Id>,
    /// (operation id, message id) of appended messages.
    pub messages: Vec<(Id, Id)>,
    /// Operations removed with all their messages (retention).
    pub removed_operations: Vec<Id>,
}

impl FeedEntry {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty() && self.messages.is_empty() && self.removed_operations.is_empty()
    }
}

pub(crate) fn encode_feed(entry: &FeedEntry) -> Vec<u8> {
    encode(entry)
}

pub(crate) fn decode_feed(bytes: &[u8]) -> Result<FeedEntry, StoreError> {
    decode("index feed entry", bytes)
}

/// What an `Idempotency-Key` was first used for.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct IdempotencyRecord {
    pub operation_id: Id,
    /// SHA-256 of the request body, so a reused key with another body is refused.
    pub body_sha256: [u8; 32],
}

pub(crate) fn encode_idempotency(record: &IdempotencyRecord) -> Vec<u8> {
    encode(record)
}

pub(crate) fn decode_idempotency(bytes: &[u8]) -> Result<IdempotencyRecord, StoreError> {
    decode("idempotency record", bytes)
}

pub(crate) fn encode_job(job: &Job) -> Vec<u8> {
    encode(job)
}

pub(crate) fn decode_job(bytes: &[u8]) -> Result<Job, StoreError> {
    decode("outbox job", bytes)
}

pub(crate) fn encode_attempt(attempt: &Attempt) -> Vec<u8> {
    encode(attempt)
}

pub(crate) fn decode_attempt(bytes: &[u8]) -> Result<Attempt, StoreError> {
    decode("outbox attempt", bytes)
}

pub(crate) fn encode_webhook_settings(settings: &StoredWebhooks) -> Vec<u8> {
    encode(settings)
}

pub(crate) fn decode_webhook_settings(bytes: &[u8]) -> Result<StoredWebhooks, StoreError> {
    decode("webhook settings", bytes)
}

pub(crate) fn encode_ingress_settings(settings: &StoredIngress) -> Vec<u8> {
    encode(settings)
}

pub(crate) fn decode_ingress_settings(bytes: &[u8]) -> Result<StoredIngress, StoreError> {
    decode("ingress settings", bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::*;

    pub(crate) fn sample_operation() -> Operation {
        Operation {
            id: Id(42),
            environment: "prod".into(),
            kind: OpType::Sync,
            action: "run".into(),
            state: OpState::Failed,
            integration: Some("github".into()),
            connection_id: Some("conn-1".into()),
            script: Some("issues".into()),
            provider: None,
            message: "sync run".into(),
            error: Some(ErrorInfo {
                name: Some("RateLimit".into()),
                message: "429 from api".into(),
                kind: None,
                payload: Some(Json::from_value(&serde_json::json!({"retry_after": 30}))),
            }),
            request: None,
            response: Some(HttpResponse {
                status: 429,
                headers: Some([("retry-after".to_string(), "30".to_string())].into()),
                body: None,
            }),
            records: Some(vec![RecordCount {
                model: "Issue".into(),
                added: 1,
                updated: 2,
                deleted: 0,
            }]),
            meta: Some(Json::from_value(
                &serde_json::json!({"a": [1, 2, {"b": null}]}),
            )),
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_500),
            started_at: Some(Timestamp(1_700_000_000_000)),
            ended_at: Some(Timestamp(1_700_000_001_000)),
            expires_at: Timestamp(1_700_086_400_000),
            duration_ms: Some(1000),
            message_count: 3,
        }
    }

    #[test]
    fn operations_round_trip() {
        let op = sample_operation();
        let bytes = encode_operation(&op);
        assert_eq!(bytes[0], V1);
        assert_eq!(decode_operation(&bytes).unwrap(), op);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let bytes = encode_operation(&sample_operation());
        for cut in 0..bytes.len() {
            assert!(decode_operation(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut newer = bytes.clone();
        newer[0] = 9;
        let err = decode_operation(&newer).unwrap_err().to_string();
        assert!(err.contains("unknown record version 9"), "{err}");
    }

    /// Bytes of a version-1 operation record as written by the first release. If this test fails,
    /// the format changed: keep a reader for these bytes and add a new version.
    /// Regenerate only for a new format version: `OPSLOG_BLESS=1 cargo test --release codec`.
    #[test]
    fn reads_format_v1_written_by_an_earlier_binary() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/store/testdata/operation_v1.bin"
        );
        if std::env::var_os("OPSLOG_BLESS").is_some() {
            std::fs::write(path, encode_operation(&sample_operation())).unwrap();
        }
        let golden = std::fs::read(path).unwrap();
        assert_eq!(decode_operation(&golden).unwrap(), sample_operation());
    }

    fn sample_job() -> Job {
        use crate::outbox::{JobKind, WebhookJob};
        Job {
            id: Id(7),
            environment: "prod".into(),
            kind: JobKind::Webhook(WebhookJob {
                event_id: "evt_1".into(),
                event: EventType::SyncRecords,
                url: "https://backend.example.com/h".into(),
                body: r#"{"id":"evt_1"}"#.into(),
                operation_id: Id(42),
                log_operation_id: Id(43),
            }),
            status: DeliveryStatus::Pending,
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_100),
            attempts: 2,
            round_attempts: 1,
            next_attempt_at: Some(Timestamp(1_700_000_005_000)),
            last_error: Some("HTTP 503".into()),
        }
    }

    fn sample_attempt() -> Attempt {
        Attempt {
            number: 2,
            started_at: Timestamp(1_700_000_000_050),
            url: "https://backend.example.com/h".into(),
            status: Some(503),
            error: None,
            response_excerpt: Some("busy".into()),
            duration_ms: 12,
            webhook_timestamp: 1_700_000_000,
            outcome: DeliveryStatus::Pending,
            retry_at: Some(Timestamp(1_700_000_005_000)),
        }
    }

    fn sample_webhook_settings() -> StoredWebhooks {
        StoredWebhooks {
            url: Some("https://backend.example.com/h".into()),
            secondary_url: None,
            events: Some(vec![EventType::SyncCompleted, EventType::AuthFailed]),
            timeout_ms: Some(5_000),
            retry_schedule_ms: Some(vec![0, 1_000]),
            allow_insecure_http: Some(false),
            secret: Some("whsec_new".into()),
            previous_secret: Some(("whsec_old".into(), Timestamp(1_700_086_400_000))),
        }
    }

    /// Outbox and settings records as first written. If this fails, the format changed: keep
    /// a reader for these bytes and add a new version (bless as above for a new version only).
    #[test]
    fn reads_outbox_and_settings_records_written_by_an_earlier_binary() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/testdata");
        let files = [
            ("outbox_job_v1.bin", encode_job(&sample_job())),
            ("outbox_attempt_v1.bin", encode_attempt(&sample_attempt())),
            (
                "webhook_settings_v1.bin",
                encode_webhook_settings(&sample_webhook_settings()),
            ),
        ];
        for (name, bytes) in &files {
            let path = format!("{dir}/{name}");
            if std::env::var_os("OPSLOG_BLESS").is_some() {
                std::fs::write(&path, bytes).unwrap();
            }
            assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name}");
        }
        let read = |name: &str| std::fs::read(format!("{dir}/{name}")).unwrap();
        assert_eq!(
            decode_job(&read("outbox_job_v1.bin")).unwrap(),
            sample_job()
        );
        assert_eq!(
            decode_attempt(&read("outbox_attempt_v1.bin")).unwrap(),
            sample_attempt()
        );
        assert_eq!(
            decode_webhook_settings(&read("webhook_settings_v1.bin")).unwrap(),
            sample_webhook_settings()
        );
    }
}
