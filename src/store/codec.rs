//! Encoding of stored records: one format-version byte, then bincode 2 (standard config).
//!
//! A newer binary must read every version an older one wrote: when a record's shape changes, the
//! old struct is kept (frozen) under its version byte and converted on read. Decoding never panics;
//! a damaged record is a `StoreError::Corrupt`.

use bincode::{Decode, Encode};

use super::StoreError;
use crate::model::alert::{AlertState, StoredAlerts, StoredRule};
use crate::model::audit::AuditRecord;
use crate::model::erase::EraseJob;
use crate::model::job::{Attempt, Job, JobKind};
use crate::model::notifier::Notifiers;
use crate::model::settings::{StoredIngress, StoredOtel, StoredWebhooks};
use crate::model::view::StoredView;
use crate::model::{
    DeliveryStatus, EndUser, ErrorInfo, EventType, HttpRequest, HttpResponse, Id, Json, Message,
    OpState, OpType, Operation, RecordCount, SyncType, Tags, Timestamp,
};

// The version bytes, one set per record: a version number means something only for its own
// record (operation v2 and outbox attempt v2 have nothing in common). A decoder reads every
// version of its record and refuses a newer byte as written by a newer opslog; the test
// `every_record_writes_its_newest_version_and_refuses_a_newer_one` holds each encoder to its
// newest constant.

/// Operations. v2: `end_user`, `tags` and `is_async`. v3: `sync_type`, `checkpoints`,
/// `auth_mode` and `output` (what Nango's webhooks carry). v4: `trace_context` (the W3C trace
/// they were started in).
const OPERATION_V1: u8 = 1;
const OPERATION_V2: u8 = 2;
const OPERATION_V3: u8 = 3;
const OPERATION_V4: u8 = 4;
/// A message row (one message). v2: the two ids left out (the row's key holds them).
const MESSAGE_V1: u8 = 1;
const MESSAGE_V2: u8 = 2;
/// A block of an ended operation's messages, stored where message rows are: its byte must be
/// none of a message row's versions, which is how a row says it is a block.
const MESSAGE_BLOCK_V3: u8 = 3;
const _: () = assert!(MESSAGE_BLOCK_V3 != MESSAGE_V1 && MESSAGE_BLOCK_V3 != MESSAGE_V2);
/// Outbox jobs. v2: `round_started_at` (the export retry cap). v3: a job a v2 reader cannot decode
/// (an event outside [`JOB_V2_EVENTS`], a Nango-format delivery), written so that such a
/// binary refuses it by its version. v4: a notification (Slack, PagerDuty, email), which a v3
/// reader cannot decode.
const JOB_V1: u8 = 1;
const JOB_V2: u8 = 2;
const JOB_V3: u8 = 3;
const JOB_V4: u8 = 4;
/// Outbox attempts. v2: `batch_size` and `rejected` (batched OTLP exports).
const ATTEMPT_V1: u8 = 1;
const ATTEMPT_V2: u8 = 2;
/// Webhook settings. v2: `format` and `secondary_format` (Nango-format bodies). v3: `toggles`
/// and `routes` (Nango's toggles and per-connection URLs).
const WEBHOOK_SETTINGS_V1: u8 = 1;
const WEBHOOK_SETTINGS_V2: u8 = 2;
const WEBHOOK_SETTINGS_V3: u8 = 3;
/// OTel settings. v2: `names` (Nango span names). v3: `trace_url`.
const OTEL_SETTINGS_V1: u8 = 1;
const OTEL_SETTINGS_V2: u8 = 2;
const OTEL_SETTINGS_V3: u8 = 3;
/// Index feed entries. v2 (storage format 3): a group's messages named by the sequence number of
/// the last one. v1 entries are never read: converting a format 2 file to 3 replaces the feed.
const FEED_V2: u8 = 2;
/// Alert settings. v2: `view` (a rule on any view) and `notify` (Slack, PagerDuty, email); a
/// section the v1 reader can hold (signal rules notifying the webhooks) is still written as v1.
const ALERT_SETTINGS_V1: u8 = 1;
const ALERT_SETTINGS_V2: u8 = 2;
/// Records with one version so far.
const IDEMPOTENCY_V1: u8 = 1;
const VIEW_V1: u8 = 1;
const ERASE_JOB_V1: u8 = 1;
const AUDIT_RECORD_V1: u8 = 1;
const ALERT_STATE_V1: u8 = 1;
const INGRESS_SETTINGS_V1: u8 = 1;
const NOTIFIER_SETTINGS_V1: u8 = 1;

/// The events a v2 outbox job may name: those the first binary writing v2 jobs knew. A job
/// naming any other is written as v3. A new event that a v3 reader cannot decode needs a new job
/// version (and its list here); `every_event_has_a_job_version` fails until it has one.
const JOB_V2_EVENTS: &[EventType] = &[
    EventType::SyncCompleted,
    EventType::SyncRecords,
    EventType::AuthCreated,
    EventType::AuthFailed,
    EventType::WebhookReceived,
];
/// The events v3 added.
const JOB_V3_EVENTS: &[EventType] = &[
    EventType::ActionCompleted,
    EventType::AlertTriggered,
    EventType::AlertResolved,
];

fn encode_as<T: Encode>(version: u8, value: &T) -> Vec<u8> {
    let mut out = vec![version];
    bincode::encode_into_std_write(value, &mut out, bincode::config::standard())
        .expect("encoding into a Vec cannot fail");
    out
}

/// The most a decoded record may claim: bincode allocates a container as large as the length
/// its bytes announce before reading the elements, so a damaged length must not ask for more.
/// (Without a limit, a few flipped bits in a record abort the process on allocation.)
/// Far above any real record: bodies are capped by `server.max_body_bytes`.
const MAX_DECODE_BYTES: usize = 1 << 30;

/// A record with one version so far: `version`, or an error.
fn decode_only<T: Decode<()>>(what: &str, version: u8, bytes: &[u8]) -> Result<T, StoreError> {
    match split_version(what, bytes)? {
        (v, rest) if v == version => decode_body(what, rest),
        (v, _) => Err(unknown_version(what, v)),
    }
}

fn split_version<'a>(what: &str, bytes: &'a [u8]) -> Result<(u8, &'a [u8]), StoreError> {
    bytes
        .split_first()
        .map(|(version, rest)| (*version, rest))
        .ok_or_else(|| StoreError::Corrupt(format!("{what}: empty record")))
}

fn decode_body<T: Decode<()>>(what: &str, rest: &[u8]) -> Result<T, StoreError> {
    let config = bincode::config::standard().with_limit::<MAX_DECODE_BYTES>();
    let (value, used) = bincode::decode_from_slice(rest, config)
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))?;
    if used != rest.len() {
        return Err(StoreError::Corrupt(format!("{what}: trailing bytes")));
    }
    Ok(value)
}

fn unknown_version(what: &str, version: u8) -> StoreError {
    StoreError::Corrupt(format!(
        "{what}: unknown record version {version} (written by a newer opslog?)"
    ))
}

pub(crate) fn encode_operation(op: &Operation) -> Vec<u8> {
    encode_as(OPERATION_V4, op)
}

pub(crate) fn decode_operation(bytes: &[u8]) -> Result<Operation, StoreError> {
    const WHAT: &str = "operation";
    match split_version(WHAT, bytes)? {
        (OPERATION_V1, rest) => decode_body::<OperationV1>(WHAT, rest).map(Operation::from),
        (OPERATION_V2, rest) => decode_body::<OperationV2>(WHAT, rest).map(Operation::from),
        (OPERATION_V3, rest) => decode_body::<OperationV3>(WHAT, rest).map(Operation::from),
        (OPERATION_V4, rest) => decode_body(WHAT, rest),
        (version, _) => Err(unknown_version(WHAT, version)),
    }
}

/// An operation as format version 3 wrote it (frozen: never change this struct).
#[derive(Decode)]
struct OperationV3 {
    id: Id,
    environment: String,
    kind: OpType,
    action: String,
    state: OpState,
    integration: Option<String>,
    connection_id: Option<String>,
    script: Option<String>,
    provider: Option<String>,
    message: String,
    error: Option<ErrorInfo>,
    request: Option<HttpRequest>,
    response: Option<HttpResponse>,
    records: Option<Vec<RecordCount>>,
    meta: Option<Json>,
    end_user: Option<EndUser>,
    tags: Tags,
    is_async: bool,
    sync_type: Option<SyncType>,
    checkpoints: Option<Json>,
    auth_mode: Option<String>,
    output: Option<Json>,
    created_at: Timestamp,
    updated_at: Timestamp,
    started_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    expires_at: Timestamp,
    duration_ms: Option<u64>,
    message_count: u64,
}

impl From<OperationV3> for Operation {
    fn from(v3: OperationV3) -> Operation {
        Operation {
            id: v3.id,
            environment: v3.environment,
            kind: v3.kind,
            action: v3.action,
            state: v3.state,
            integration: v3.integration,
            connection_id: v3.connection_id,
            script: v3.script,
            provider: v3.provider,
            message: v3.message,
            error: v3.error,
            request: v3.request,
            response: v3.response,
            records: v3.records,
            meta: v3.meta,
            end_user: v3.end_user,
            tags: v3.tags,
            is_async: v3.is_async,
            sync_type: v3.sync_type,
            checkpoints: v3.checkpoints,
            auth_mode: v3.auth_mode,
            output: v3.output,
            trace_context: None,
            created_at: v3.created_at,
            updated_at: v3.updated_at,
            started_at: v3.started_at,
            ended_at: v3.ended_at,
            expires_at: v3.expires_at,
            duration_ms: v3.duration_ms,
            message_count: v3.message_count,
        }
    }
}

/// An operation as format version 2 wrote it (frozen: never change this struct).
#[derive(Decode)]
struct OperationV2 {
    id: Id,
    environment: String,
    kind: OpType,
    action: String,
    state: OpState,
    integration: Option<String>,
    connection_id: Option<String>,
    script: Option<String>,
    provider: Option<String>,
    message: String,
    error: Option<ErrorInfo>,
    request: Option<HttpRequest>,
    response: Option<HttpResponse>,
    records: Option<Vec<RecordCount>>,
    meta: Option<Json>,
    end_user: Option<EndUser>,
    tags: Tags,
    is_async: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
    started_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    expires_at: Timestamp,
    duration_ms: Option<u64>,
    message_count: u64,
}

impl From<OperationV2> for Operation {
    fn from(v2: OperationV2) -> Operation {
        Operation {
            id: v2.id,
            environment: v2.environment,
            kind: v2.kind,
            action: v2.action,
            state: v2.state,
            integration: v2.integration,
            connection_id: v2.connection_id,
            script: v2.script,
            provider: v2.provider,
            message: v2.message,
            error: v2.error,
            request: v2.request,
            response: v2.response,
            records: v2.records,
            meta: v2.meta,
            end_user: v2.end_user,
            tags: v2.tags,
            is_async: v2.is_async,
            sync_type: None,
            checkpoints: None,
            auth_mode: None,
            output: None,
            trace_context: None,
            created_at: v2.created_at,
            updated_at: v2.updated_at,
            started_at: v2.started_at,
            ended_at: v2.ended_at,
            expires_at: v2.expires_at,
            duration_ms: v2.duration_ms,
            message_count: v2.message_count,
        }
    }
}

/// An operation as format version 1 wrote it (frozen: never change this struct; the value types
/// it holds only ever gain enum variants at their end, so they are shared).
#[derive(Decode)]
struct OperationV1 {
    id: Id,
    environment: String,
    kind: OpType,
    action: String,
    state: OpState,
    integration: Option<String>,
    connection_id: Option<String>,
    script: Option<String>,
    provider: Option<String>,
    message: String,
    error: Option<ErrorInfo>,
    request: Option<HttpRequest>,
    response: Option<HttpResponse>,
    records: Option<Vec<RecordCount>>,
    meta: Option<Json>,
    created_at: Timestamp,
    updated_at: Timestamp,
    started_at: Option<Timestamp>,
    ended_at: Option<Timestamp>,
    expires_at: Timestamp,
    duration_ms: Option<u64>,
    message_count: u64,
}

impl From<OperationV1> for Operation {
    fn from(v1: OperationV1) -> Operation {
        Operation {
            id: v1.id,
            environment: v1.environment,
            kind: v1.kind,
            action: v1.action,
            state: v1.state,
            integration: v1.integration,
            connection_id: v1.connection_id,
            script: v1.script,
            provider: v1.provider,
            message: v1.message,
            error: v1.error,
            request: v1.request,
            response: v1.response,
            records: v1.records,
            meta: v1.meta,
            end_user: None,
            tags: Default::default(),
            is_async: false,
            sync_type: None,
            checkpoints: None,
            auth_mode: None,
            output: None,
            trace_context: None,
            created_at: v1.created_at,
            updated_at: v1.updated_at,
            started_at: v1.started_at,
            ended_at: v1.ended_at,
            expires_at: v1.expires_at,
            duration_ms: v1.duration_ms,
            message_count: v1.message_count,
        }
    }
}

/// A message record, stored under the key `(operation_id, id)`: the version-2 byte, then the
/// bincode of the message with both ids written as zero (one byte each instead of seventeen).
/// Ids are a message's first two fields, so their encodings are the prefix that is replaced.
pub(crate) fn encode_message(message: &Message) -> Vec<u8> {
    let config = bincode::config::standard();
    let mut out = Vec::with_capacity(256);
    out.push(MESSAGE_V2);
    bincode::encode_into_std_write(message, &mut out, config)
        .expect("encoding into a Vec cannot fail");
    let mut scratch = [0u8; 32];
    let id_bytes = bincode::encode_into_slice(message.id, &mut scratch, config)
        .expect("an id encodes in 17 bytes")
        + bincode::encode_into_slice(message.operation_id, &mut scratch, config)
            .expect("an id encodes in 17 bytes");
    out.splice(1..1 + id_bytes, [0, 0]);
    out
}

/// Reads a message record stored under `(operation, id)`, of either version.
pub(crate) fn decode_message(
    operation: u128,
    id: u128,
    bytes: &[u8],
) -> Result<Message, StoreError> {
    let mut message: Message = match bytes.split_first() {
        // Format 1 carried the ids too (the same as the key's; the key is what counts).
        Some((&MESSAGE_V1, rest)) => decode_body("message", rest)?,
        Some((&MESSAGE_V2, rest)) => {
            let message: Message = decode_body("message", rest)?;
            if message.id != Id(0) || message.operation_id != Id(0) {
                return Err(StoreError::Corrupt(
                    "message: ids inside a v2 record".into(),
                ));
            }
            message
        }
        Some((version, _)) => return Err(unknown_version("message", *version)),
        None => return Err(StoreError::Corrupt("message: empty record".into())),
    };
    message.id = Id(id);
    message.operation_id = Id(operation);
    Ok(message)
}

/// A block of one operation's messages, stored under the key `(operation, first message id)`:
/// the version-3 byte, the number of messages (u32 LE), the size of the payload uncompressed
/// (u32 LE), the last message id (u128 LE), then the payload as one zstd frame. The payload is each
/// message in id order as its id (u128 LE), its record's length (u32 LE) and its record: the bytes
/// it had as a row of its own (version 1 or 2), so packing never re-encodes a message.
const BLOCK_HEADER: usize = 1 + 4 + 4 + 16;
/// The most a block's payload may claim uncompressed (blocks are packed to about 16 KiB; a
/// single message is far smaller than this).
const MAX_BLOCK_BYTES: usize = 64 << 20;
/// zstd level 1: on message text about 3.4x, within 2% of level 3 and at its fastest strategy.
const BLOCK_LEVEL: i32 = 1;

/// What a block's header says, read without decompressing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockHeader {
    pub count: u32,
    pub last: u128,
}

/// The header of a stored message row if it is a block; `None` for a row holding one message.
pub(crate) fn block_header(bytes: &[u8]) -> Result<Option<BlockHeader>, StoreError> {
    if bytes.first() != Some(&MESSAGE_BLOCK_V3) {
        return Ok(None);
    }
    let header = bytes
        .get(..BLOCK_HEADER)
        .ok_or_else(|| StoreError::Corrupt("message block: short header".into()))?;
    let count = u32::from_le_bytes(header[1..5].try_into().expect("4 bytes"));
    let last = u128::from_le_bytes(header[9..25].try_into().expect("16 bytes"));
    Ok(Some(BlockHeader { count, last }))
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `bytes` as one zstd frame at `level`, with this thread's context (made once per thread).
pub(crate) fn zstd_compress(bytes: &[u8], level: i32) -> Vec<u8> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let (at, compressor) = c.get_or_insert_with(|| {
            let context = zstd::bulk::Compressor::new(level).expect("a zstd context");
            (level, context)
        });
        if *at != level {
            compressor
                .set_compression_level(level)
                .expect("a valid zstd level");
            *at = level;
        }
        compressor
            .compress(bytes)
            .expect("compressing into a Vec cannot fail")
    })
}

/// Decompresses one zstd frame of `size` bytes uncompressed; the error says what is wrong.
pub(crate) fn zstd_decompress(bytes: &[u8], size: usize) -> Result<Vec<u8>, String> {
    let payload = DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        let decompressor = match d.as_mut() {
            Some(decompressor) => decompressor,
            None => d.insert(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?),
        };
        decompressor
            .decompress(bytes, size)
            .map_err(|e| e.to_string())
    })?;
    if payload.len() != size {
        return Err("payload size differs from its header".into());
    }
    Ok(payload)
}

/// Encodes `records` (id, stored record), which must be non-empty and in id order, as a block.
pub(crate) fn encode_block(records: &[(u128, Vec<u8>)]) -> Vec<u8> {
    let (first, last) = match (records.first(), records.last()) {
        (Some(first), Some(last)) => (first.0, last.0),
        _ => panic!("a block holds at least one message"),
    };
    debug_assert!(records.windows(2).all(|w| w[0].0 < w[1].0) && first <= last);
    let mut payload = Vec::with_capacity(records.iter().map(|r| 20 + r.1.len()).sum());
    for (id, record) in records {
        payload.extend_from_slice(&id.to_le_bytes());
        payload.extend_from_slice(&(record.len() as u32).to_le_bytes());
        payload.extend_from_slice(record);
    }
    let compressed = zstd_compress(&payload, BLOCK_LEVEL);
    let mut out = Vec::with_capacity(BLOCK_HEADER + compressed.len());
    out.push(MESSAGE_BLOCK_V3);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
    out.extend_from_slice(&compressed);
    out
}

/// The (id, stored record) pairs of a block, in id order.
pub(crate) fn decode_block_records(bytes: &[u8]) -> Result<Vec<(u128, Vec<u8>)>, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt(format!("message block: {why}"));
    let header = block_header(bytes)?.ok_or_else(|| corrupt("not a block"))?;
    let size = u32::from_le_bytes(bytes[5..9].try_into().expect("4 bytes")) as usize;
    if size > MAX_BLOCK_BYTES {
        return Err(corrupt("claims an impossible size"));
    }
    let payload = zstd_decompress(&bytes[BLOCK_HEADER..], size).map_err(|e| corrupt(&e))?;
    let mut records = Vec::with_capacity((header.count as usize).min(4096));
    let mut rest = payload.as_slice();
    while !rest.is_empty() {
        let (head, tail) = rest
            .split_at_checked(20)
            .ok_or_else(|| corrupt("cut record"))?;
        let id = u128::from_le_bytes(head[..16].try_into().expect("16 bytes"));
        let len = u32::from_le_bytes(head[16..].try_into().expect("4 bytes")) as usize;
        let (record, tail) = tail
            .split_at_checked(len)
            .ok_or_else(|| corrupt("cut record"))?;
        if records.last().is_some_and(|(previous, _)| *previous >= id) {
            return Err(corrupt("ids out of order"));
        }
        records.push((id, record.to_vec()));
        rest = tail;
    }
    if records.len() != header.count as usize || records.last().map(|r| r.0) != Some(header.last) {
        return Err(corrupt("header does not match its messages"));
    }
    Ok(records)
}

/// The messages of a stored row of `operation` whose key holds `id`: one, or a block's, in id order.
pub(crate) fn decode_message_row_of(
    operation: u128,
    id: u128,
    bytes: &[u8],
) -> Result<Vec<Message>, StoreError> {
    if block_header(bytes)?.is_none() {
        return Ok(vec![decode_message(operation, id, bytes)?]);
    }
    let records = decode_block_records(bytes)?;
    if records.first().map(|r| r.0) != Some(id) {
        return Err(StoreError::Corrupt(
            "message block: its first message is not its key".into(),
        ));
    }
    records
        .iter()
        .map(|(id, record)| decode_message(operation, *id, record))
        .collect()
}

/// What one write group changed, for the search index to pick up. Version 2 (format 3): the
/// group's messages are named by the sequence number of the last one, as blocks hold them.
/// Version 1 entries listed (operation id, message id) pairs; converting a format 2 file to 3
/// replaces the feed, so they are never read.
#[derive(Debug, Clone, Default, PartialEq, Encode, Decode)]
pub struct FeedEntry {
    /// Operations created or changed in a way the index shows (not mere message counts).
    pub operations: Vec<Id>,
    /// The sequence number of the last message stored so far, when this group stored some (0
    /// when it stored none): the index adds every message after its position up to this one.
    pub messages_through: u64,
    /// Operations removed with all their messages (retention).
    pub removed_operations: Vec<Id>,
}

impl FeedEntry {
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
            && self.messages_through == 0
            && self.removed_operations.is_empty()
    }
}

pub(crate) fn encode_feed(entry: &FeedEntry) -> Vec<u8> {
    encode_as(FEED_V2, entry)
}

pub(crate) fn decode_feed(bytes: &[u8]) -> Result<FeedEntry, StoreError> {
    decode_only("index feed entry", FEED_V2, bytes)
}

/// What an `Idempotency-Key` was first used for.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct IdempotencyRecord {
    pub operation_id: Id,
    /// SHA-256 of the request body, so a reused key with another body is refused.
    pub body_sha256: [u8; 32],
}

pub(crate) fn encode_idempotency(record: &IdempotencyRecord) -> Vec<u8> {
    encode_as(IDEMPOTENCY_V1, record)
}

pub(crate) fn decode_idempotency(bytes: &[u8]) -> Result<IdempotencyRecord, StoreError> {
    decode_only("idempotency record", IDEMPOTENCY_V1, bytes)
}

/// A job a v2 reader cannot decode (a Nango-format delivery, or an event outside
/// [`JOB_V2_EVENTS`]) is written as v3, so that binary refuses it by its version.
pub(crate) fn encode_job(job: &Job) -> Vec<u8> {
    let v2_reads_it = match &job.kind {
        JobKind::Webhook(w) => {
            // Every event is in one list (`every_event_has_a_job_version`).
            debug_assert!(JOB_V2_EVENTS.contains(&w.event) || JOB_V3_EVENTS.contains(&w.event));
            JOB_V2_EVENTS.contains(&w.event)
        }
        JobKind::NangoWebhook(_) => false,
        JobKind::OtlpSpan(_) | JobKind::OtlpLogs(_) => true,
        JobKind::Slack(_) | JobKind::PagerDuty(_) | JobKind::Email(_) => {
            return encode_as(JOB_V4, job)
        }
    };
    encode_as(if v2_reads_it { JOB_V2 } else { JOB_V3 }, job)
}

pub(crate) fn decode_job(bytes: &[u8]) -> Result<Job, StoreError> {
    const WHAT: &str = "outbox job";
    match split_version(WHAT, bytes)? {
        (JOB_V1, rest) => decode_body::<JobV1>(WHAT, rest).map(Job::from),
        (JOB_V2 | JOB_V3 | JOB_V4, rest) => decode_body(WHAT, rest),
        (version, _) => Err(unknown_version(WHAT, version)),
    }
}

/// A job as format version 1 wrote it (frozen: never change this struct; `JobKind` only ever
/// gains variants at its end, so it is shared).
#[derive(Decode)]
struct JobV1 {
    id: Id,
    environment: String,
    kind: JobKind,
    status: DeliveryStatus,
    created_at: Timestamp,
    updated_at: Timestamp,
    attempts: u32,
    round_attempts: u32,
    next_attempt_at: Option<Timestamp>,
    last_error: Option<String>,
}

impl From<JobV1> for Job {
    fn from(v1: JobV1) -> Job {
        Job {
            id: v1.id,
            environment: v1.environment,
            kind: v1.kind,
            status: v1.status,
            // The best guess: rounds restarted by hand before the upgrade count from creation.
            round_started_at: v1.created_at,
            created_at: v1.created_at,
            updated_at: v1.updated_at,
            attempts: v1.attempts,
            round_attempts: v1.round_attempts,
            next_attempt_at: v1.next_attempt_at,
            last_error: v1.last_error,
        }
    }
}

pub(crate) fn encode_attempt(attempt: &Attempt) -> Vec<u8> {
    encode_as(ATTEMPT_V2, attempt)
}

pub(crate) fn decode_attempt(bytes: &[u8]) -> Result<Attempt, StoreError> {
    const WHAT: &str = "outbox attempt";
    match split_version(WHAT, bytes)? {
        (ATTEMPT_V1, rest) => decode_body::<AttemptV1>(WHAT, rest).map(Attempt::from),
        (ATTEMPT_V2, rest) => decode_body(WHAT, rest),
        (version, _) => Err(unknown_version(WHAT, version)),
    }
}

/// An attempt as format version 1 wrote it (frozen: never change this struct).
#[derive(Decode)]
struct AttemptV1 {
    number: u32,
    started_at: Timestamp,
    url: String,
    status: Option<u16>,
    error: Option<String>,
    response_excerpt: Option<String>,
    duration_ms: u64,
    webhook_timestamp: i64,
    outcome: DeliveryStatus,
    retry_at: Option<Timestamp>,
}

impl From<AttemptV1> for Attempt {
    fn from(v1: AttemptV1) -> Attempt {
        Attempt {
            number: v1.number,
            started_at: v1.started_at,
            url: v1.url,
            status: v1.status,
            error: v1.error,
            response_excerpt: v1.response_excerpt,
            duration_ms: v1.duration_ms,
            webhook_timestamp: v1.webhook_timestamp,
            outcome: v1.outcome,
            retry_at: v1.retry_at,
            batch_size: None,
            rejected: None,
        }
    }
}

pub(crate) fn encode_webhook_settings(settings: &StoredWebhooks) -> Vec<u8> {
    encode_as(WEBHOOK_SETTINGS_V3, settings)
}

pub(crate) fn decode_webhook_settings(bytes: &[u8]) -> Result<StoredWebhooks, StoreError> {
    const WHAT: &str = "webhook settings";
    match split_version(WHAT, bytes)? {
        (WEBHOOK_SETTINGS_V1, rest) => {
            decode_body::<StoredWebhooksV1>(WHAT, rest).map(StoredWebhooks::from)
        }
        (WEBHOOK_SETTINGS_V2, rest) => {
            decode_body::<StoredWebhooksV2>(WHAT, rest).map(StoredWebhooks::from)
        }
        (WEBHOOK_SETTINGS_V3, rest) => decode_body(WHAT, rest),
        (version, _) => Err(unknown_version(WHAT, version)),
    }
}

/// Alert rules gained `view` (a rule on any view) and `notify` (Slack, PagerDuty, email) in
/// version 2. A section whose rules the previous release could hold (signal rules notifying the
/// webhooks) is still written as version 1, so that release keeps reading it.
pub(crate) fn encode_alert_settings(settings: &StoredAlerts) -> Vec<u8> {
    if settings.is_signal_webhooks_only() {
        encode_as(ALERT_SETTINGS_V1, &StoredAlertsV1::from(settings))
    } else {
        encode_as(ALERT_SETTINGS_V2, settings)
    }
}

pub(crate) fn decode_alert_settings(bytes: &[u8]) -> Result<StoredAlerts, StoreError> {
    const WHAT: &str = "alert settings";
    match split_version(WHAT, bytes)? {
        (ALERT_SETTINGS_V1, rest) => {
            decode_body::<StoredAlertsV1>(WHAT, rest).map(StoredAlerts::from)
        }
        (ALERT_SETTINGS_V2, rest) => decode_body(WHAT, rest),
        (version, _) => Err(unknown_version(WHAT, version)),
    }
}

/// Alert settings as version 1 wrote them (frozen: never change these structs): signal rules,
/// every one notifying the webhooks.
#[derive(Encode, Decode)]
struct StoredAlertsV1 {
    rules: Vec<StoredRuleV1>,
}

#[derive(Encode, Decode)]
struct StoredRuleV1 {
    signal: String,
    integration: Option<String>,
    above: u64,
    window_ms: u64,
}

impl From<StoredAlertsV1> for StoredAlerts {
    fn from(v1: StoredAlertsV1) -> StoredAlerts {
        StoredAlerts {
            rules: v1
                .rules
                .into_iter()
                .map(|r| StoredRule {
                    signal: Some(r.signal),
                    view: None,
                    integration: r.integration,
                    above: r.above,
                    window_ms: r.window_ms,
                    notify: vec!["webhook".to_owned()],
                })
                .collect(),
        }
    }
}

/// Only for a section `is_signal_webhooks_only`.
impl From<&StoredAlerts> for StoredAlertsV1 {
    fn from(settings: &StoredAlerts) -> StoredAlertsV1 {
        StoredAlertsV1 {
            rules: settings
                .rules
                .iter()
                .map(|r| StoredRuleV1 {
                    signal: r.signal.clone().unwrap_or_default(),
                    integration: r.integration.clone(),
                    above: r.above,
                    window_ms: r.window_ms,
                })
                .collect(),
        }
    }
}

/// The notifiers section (Slack, PagerDuty, email), new with notifiers: version 1.
pub(crate) fn encode_notifiers(notifiers: &Notifiers) -> Vec<u8> {
    encode_as(NOTIFIER_SETTINGS_V1, notifiers)
}

pub(crate) fn decode_notifiers(bytes: &[u8]) -> Result<Notifiers, StoreError> {
    decode_only("notifier settings", NOTIFIER_SETTINGS_V1, bytes)
}

pub(crate) fn encode_view(view: &StoredView) -> Vec<u8> {
    encode_as(VIEW_V1, view)
}

pub(crate) fn decode_view(bytes: &[u8]) -> Result<StoredView, StoreError> {
    decode_only("view", VIEW_V1, bytes)
}

pub(crate) fn encode_erase_job(job: &EraseJob) -> Vec<u8> {
    encode_as(ERASE_JOB_V1, job)
}

pub(crate) fn decode_erase_job(bytes: &[u8]) -> Result<EraseJob, StoreError> {
    decode_only("erase job", ERASE_JOB_V1, bytes)
}

pub(crate) fn encode_audit_record(record: &AuditRecord) -> Vec<u8> {
    encode_as(AUDIT_RECORD_V1, record)
}

pub(crate) fn decode_audit_record(bytes: &[u8]) -> Result<AuditRecord, StoreError> {
    decode_only("audit record", AUDIT_RECORD_V1, bytes)
}

pub(crate) fn encode_alert_state(state: &AlertState) -> Vec<u8> {
    encode_as(ALERT_STATE_V1, state)
}

pub(crate) fn decode_alert_state(bytes: &[u8]) -> Result<AlertState, StoreError> {
    decode_only("alert state", ALERT_STATE_V1, bytes)
}

/// Webhook settings as format version 1 wrote them (frozen: never change this struct).
#[derive(Decode)]
struct StoredWebhooksV1 {
    url: Option<String>,
    secondary_url: Option<String>,
    events: Option<Vec<crate::model::EventType>>,
    timeout_ms: Option<u64>,
    retry_schedule_ms: Option<Vec<u64>>,
    allow_insecure_http: Option<bool>,
    secret: Option<String>,
    previous_secret: Option<(String, Timestamp)>,
}

impl From<StoredWebhooksV1> for StoredWebhooks {
    fn from(v1: StoredWebhooksV1) -> StoredWebhooks {
        StoredWebhooks {
            url: v1.url,
            secondary_url: v1.secondary_url,
            events: v1.events,
            timeout_ms: v1.timeout_ms,
            retry_schedule_ms: v1.retry_schedule_ms,
            allow_insecure_http: v1.allow_insecure_http,
            secret: v1.secret,
            previous_secret: v1.previous_secret,
            format: None,
            secondary_format: None,
            toggles: None,
            routes: None,
        }
    }
}

/// Webhook settings as format version 2 wrote them (frozen: never change this struct).
#[derive(Decode)]
struct StoredWebhooksV2 {
    url: Option<String>,
    secondary_url: Option<String>,
    events: Option<Vec<crate::model::EventType>>,
    timeout_ms: Option<u64>,
    retry_schedule_ms: Option<Vec<u64>>,
    allow_insecure_http: Option<bool>,
    secret: Option<String>,
    previous_secret: Option<(String, Timestamp)>,
    format: Option<crate::model::WebhookFormat>,
    secondary_format: Option<crate::model::WebhookFormat>,
}

impl From<StoredWebhooksV2> for StoredWebhooks {
    fn from(v2: StoredWebhooksV2) -> StoredWebhooks {
        StoredWebhooks {
            url: v2.url,
            secondary_url: v2.secondary_url,
            events: v2.events,
            timeout_ms: v2.timeout_ms,
            retry_schedule_ms: v2.retry_schedule_ms,
            allow_insecure_http: v2.allow_insecure_http,
            secret: v2.secret,
            previous_secret: v2.previous_secret,
            format: v2.format,
            secondary_format: v2.secondary_format,
            toggles: None,
            routes: None,
        }
    }
}

pub(crate) fn encode_otel_settings(settings: &StoredOtel) -> Vec<u8> {
    encode_as(OTEL_SETTINGS_V3, settings)
}

pub(crate) fn decode_otel_settings(bytes: &[u8]) -> Result<StoredOtel, StoreError> {
    const WHAT: &str = "otel settings";
    match split_version(WHAT, bytes)? {
        (OTEL_SETTINGS_V1, rest) => decode_body::<StoredOtelV1>(WHAT, rest).map(StoredOtel::from),
        (OTEL_SETTINGS_V2, rest) => decode_body::<StoredOtelV2>(WHAT, rest).map(StoredOtel::from),
        (OTEL_SETTINGS_V3, rest) => decode_body(WHAT, rest),
        (version, _) => Err(unknown_version(WHAT, version)),
    }
}

/// Otel settings as format version 2 wrote them (frozen: never change this struct).
#[derive(Decode)]
struct StoredOtelV2 {
    endpoint: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    service_name: Option<String>,
    resource_attributes: std::collections::BTreeMap<String, String>,
    max_events_per_span: Option<u32>,
    timeout_ms: Option<u64>,
    logs: bool,
    names: crate::model::SpanNames,
}

impl From<StoredOtelV2> for StoredOtel {
    fn from(v2: StoredOtelV2) -> StoredOtel {
        StoredOtel {
            endpoint: v2.endpoint,
            headers: v2.headers,
            service_name: v2.service_name,
            resource_attributes: v2.resource_attributes,
            max_events_per_span: v2.max_events_per_span,
            timeout_ms: v2.timeout_ms,
            logs: v2.logs,
            names: v2.names,
            trace_url: None,
        }
    }
}

/// Otel settings as format version 1 wrote them (frozen: never change this struct).
#[derive(Decode)]
struct StoredOtelV1 {
    endpoint: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    service_name: Option<String>,
    resource_attributes: std::collections::BTreeMap<String, String>,
    max_events_per_span: Option<u32>,
    timeout_ms: Option<u64>,
    logs: bool,
}

impl From<StoredOtelV1> for StoredOtel {
    fn from(v1: StoredOtelV1) -> StoredOtel {
        StoredOtel {
            endpoint: v1.endpoint,
            headers: v1.headers,
            service_name: v1.service_name,
            resource_attributes: v1.resource_attributes,
            max_events_per_span: v1.max_events_per_span,
            timeout_ms: v1.timeout_ms,
            logs: v1.logs,
            names: crate::model::SpanNames::Opslog,
            trace_url: None,
        }
    }
}

pub(crate) fn encode_ingress_settings(settings: &StoredIngress) -> Vec<u8> {
    encode_as(INGRESS_SETTINGS_V1, settings)
}

pub(crate) fn decode_ingress_settings(bytes: &[u8]) -> Result<StoredIngress, StoreError> {
    decode_only("ingress settings", INGRESS_SETTINGS_V1, bytes)
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
            end_user: None,
            tags: Default::default(),
            is_async: false,
            sync_type: None,
            checkpoints: None,
            auth_mode: None,
            output: None,
            trace_context: None,
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_000_500),
            started_at: Some(Timestamp(1_700_000_000_000)),
            ended_at: Some(Timestamp(1_700_000_001_000)),
            expires_at: Timestamp(1_700_086_400_000),
            duration_ms: Some(1000),
            message_count: 3,
        }
    }

    /// An operation with every field of format version 2 set.
    pub(crate) fn sample_operation_v2() -> Operation {
        Operation {
            end_user: Some(EndUser {
                id: "u-7".into(),
                email: Some("ada@example.com".into()),
                display_name: Some("Ada".into()),
                organization: Some(Organization {
                    id: "org-1".into(),
                    display_name: None,
                }),
            }),
            tags: [("plan".to_owned(), "pro".to_owned())].into(),
            is_async: true,
            ..sample_operation()
        }
    }

    /// An operation with every field of format version 3 set.
    pub(crate) fn sample_operation_v3() -> Operation {
        Operation {
            sync_type: Some(SyncType::Incremental),
            checkpoints: Some(Json::from_value(
                &serde_json::json!({"from": {"page": 4, "cursor": "c4"}, "to": null}),
            )),
            auth_mode: Some("OAUTH2".into()),
            output: Some(Json::from_value(&serde_json::json!({"issue": 7}))),
            ..sample_operation_v2()
        }
    }

    /// An operation with every field of format version 4 set.
    pub(crate) fn sample_operation_v4() -> Operation {
        Operation {
            trace_context: Some(TraceContext {
                trace_id: TraceId(*b"0123456789abcdef"),
                parent_span_id: Some(SpanId(*b"parent-1")),
                span_id: Some(SpanId(*b"its-span")),
                trace_flags: 1,
                tracestate: Some("congo=t61rcWkgMzE".into()),
            }),
            ..sample_operation_v3()
        }
    }

    #[test]
    fn operations_round_trip() {
        let op = sample_operation_v4();
        let bytes = encode_operation(&op);
        assert_eq!(bytes[0], OPERATION_V4);
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

    /// Bytes of operation records as written by earlier releases: versions 1 to 3 (frozen) and
    /// 4. If this test fails, the format changed: keep a reader for these bytes and add a new
    /// version. Regenerate only for a new format version: `OPSLOG_BLESS=1 cargo test --release codec`.
    #[test]
    fn reads_format_v1_written_by_an_earlier_binary() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/testdata");
        let v4 = format!("{dir}/operation_v4.bin");
        if std::env::var_os("OPSLOG_BLESS").is_some() {
            std::fs::write(&v4, encode_operation(&sample_operation_v4())).unwrap();
        }
        let golden = std::fs::read(format!("{dir}/operation_v1.bin")).unwrap();
        assert_eq!(golden[0], OPERATION_V1);
        assert_eq!(decode_operation(&golden).unwrap(), sample_operation());
        let golden = std::fs::read(format!("{dir}/operation_v2.bin")).unwrap();
        assert_eq!(golden[0], OPERATION_V2);
        assert_eq!(decode_operation(&golden).unwrap(), sample_operation_v2());
        let golden = std::fs::read(format!("{dir}/operation_v3.bin")).unwrap();
        assert_eq!(golden[0], OPERATION_V3);
        assert_eq!(decode_operation(&golden).unwrap(), sample_operation_v3());
        let golden = std::fs::read(&v4).unwrap();
        assert_eq!(golden[0], OPERATION_V4);
        assert_eq!(decode_operation(&golden).unwrap(), sample_operation_v4());
    }

    /// An erasure job as this release writes it (record version 1). If this test fails, the
    /// format changed: keep a reader for these bytes and add a version.
    #[test]
    fn reads_erase_jobs_written_by_an_earlier_binary() {
        use crate::model::erase::{EraseCounts, ErasePhase, EraseSelector};
        let job = EraseJob {
            id: Id(0x0197_0000_0000_0000_0000_0000_0000_0009),
            environment: "prod".into(),
            selector: EraseSelector::EndUserId("user-42".into()),
            from: Some(Timestamp(1_700_000_000_000)),
            to: Timestamp(1_700_000_100_000),
            phase: ErasePhase::Operations,
            outbox_from: 0x0197_0000_0000_0000_0000_0000_0000_0003,
            counts: EraseCounts {
                operations: 12,
                messages: 340,
                outbox_jobs: 5,
                attempts: 7,
            },
            created_at: Timestamp(1_700_000_100_000),
            finished_at: None,
        };
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/store/testdata/erase_job_v1.bin"
        );
        if std::env::var_os("OPSLOG_BLESS").is_some() {
            std::fs::write(path, encode_erase_job(&job)).unwrap();
        }
        let golden = std::fs::read(path).unwrap();
        assert_eq!(golden[0], ERASE_JOB_V1);
        assert_eq!(decode_erase_job(&golden).unwrap(), job);
    }

    #[test]
    fn reads_audit_records_written_by_an_earlier_binary() {
        use crate::model::audit::{ActorRole, ActorVia, AuditAction, AuditActor};
        let record = AuditRecord {
            id: Id(0x0197_0000_0000_0000_0000_0000_0000_000a),
            at: Timestamp(1_700_000_200_000),
            action: AuditAction::SettingsChange,
            actor: AuditActor {
                role: ActorRole::Admin,
                environment: None,
                scope: None,
                via: ActorVia::Dashboard,
                address: Some("192.0.2.7".into()),
            },
            environment: Some("prod".into()),
            target: Some("settings".into()),
            detail:
                r#"{"changes":[{"key":"webhooks.secret","new":"whsec_…wxyz","old":"whsec_…abcd"}]}"#
                    .into(),
        };
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/store/testdata/audit_record_v1.bin"
        );
        if std::env::var_os("OPSLOG_BLESS").is_some() && !std::path::Path::new(path).exists() {
            std::fs::write(path, encode_audit_record(&record)).unwrap();
        }
        let golden = std::fs::read(path).unwrap();
        assert_eq!(golden, encode_audit_record(&record));
        assert_eq!(golden[0], AUDIT_RECORD_V1);
        assert_eq!(decode_audit_record(&golden).unwrap(), record);
        assert!(decode_audit_record(&[2, 0])
            .unwrap_err()
            .to_string()
            .contains("newer opslog"));
    }

    fn sample_message() -> Message {
        Message {
            id: Id(0x0197_0000_0000_0000_0000_0000_0000_0002),
            operation_id: Id(0x0197_0000_0000_0000_0000_0000_0000_0001),
            kind: MessageType::Http,
            level: Level::Warn,
            source: Source::User,
            message: "GET /issues -> 429".into(),
            request: Some(HttpRequest {
                method: "GET".into(),
                url: "https://api.github.com/issues?page=2".into(),
                headers: None,
                body: None,
            }),
            response: Some(HttpResponse {
                status: 429,
                headers: None,
                body: None,
            }),
            duration_ms: Some(87),
            retry: None,
            error: None,
            meta: Some(Json::from_value(&serde_json::json!({"page": 2}))),
            created_at: Timestamp(1_700_000_000_250),
        }
    }

    #[test]
    fn messages_round_trip_without_their_ids() {
        let m = sample_message();
        let (op, id) = (m.operation_id.0, m.id.0);
        let v2 = encode_message(&m);
        assert_eq!(v2[0], MESSAGE_V2);
        assert_eq!(decode_message(op, id, &v2).unwrap(), m);
        // Two 17-byte ids became two zero bytes.
        assert_eq!(encode_as(MESSAGE_V1, &m).len() - v2.len(), 32);
        for cut in 0..v2.len() {
            assert!(decode_message(op, id, &v2[..cut]).is_err(), "cut at {cut}");
        }
        let with_ids = encode_as(MESSAGE_V2, &m);
        assert!(decode_message(op, id, &with_ids).is_err());
    }

    #[test]
    fn blocks_keep_their_records_and_refuse_damage() {
        let m = sample_message();
        let records: Vec<(u128, Vec<u8>)> = (0..20u128)
            .map(|i| {
                let mut m = m.clone();
                m.message = format!("fetched page {i} of contacts");
                (m.id.0 + i, encode_message(&m))
            })
            .collect();
        let block = encode_block(&records);
        let raw: usize = records.iter().map(|r| r.1.len()).sum();
        assert!(block.len() < raw / 2, "{} bytes for {raw}", block.len());
        assert_eq!(decode_block_records(&block).unwrap(), records);
        let header = block_header(&block).unwrap().unwrap();
        assert_eq!((header.count, header.last), (20, m.id.0 + 19));
        let messages = decode_message_row_of(m.operation_id.0, m.id.0, &block).unwrap();
        assert_eq!(messages.len(), 20);
        assert_eq!(messages[3].id.0, m.id.0 + 3);
        assert_eq!(messages[3].message, "fetched page 3 of contacts");
        // Keyed by another id than its first message's: damaged.
        assert!(decode_message_row_of(m.operation_id.0, m.id.0 + 1, &block).is_err());
        for cut in 0..block.len() {
            assert!(decode_block_records(&block[..cut]).is_err(), "cut at {cut}");
        }
        for at in 1..block.len() {
            let mut damaged = block.clone();
            damaged[at] ^= 0x55;
            // Never a panic; a decoded block still has what its header promises.
            if let Ok(decoded) = decode_block_records(&damaged) {
                assert_eq!(
                    decoded.len(),
                    block_header(&damaged).unwrap().unwrap().count as usize
                );
            }
        }
    }

    /// A message record as format 1 wrote it (ids inside): still read, ids from the record.
    #[test]
    fn reads_message_records_of_format_v1() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/store/testdata/message_v1.bin"
        );
        if std::env::var_os("OPSLOG_BLESS").is_some() {
            std::fs::write(path, encode_as(MESSAGE_V1, &sample_message())).unwrap();
        }
        let golden = std::fs::read(path).unwrap();
        assert_eq!(golden[0], MESSAGE_V1);
        let m = sample_message();
        assert_eq!(
            decode_message(m.operation_id.0, m.id.0, &golden).unwrap(),
            m
        );
    }

    pub(crate) fn sample_job() -> Job {
        use crate::model::job::{JobKind, WebhookJob};
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
            round_started_at: Timestamp(1_700_000_000_000),
        }
    }

    pub(crate) fn sample_attempt() -> Attempt {
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
            batch_size: None,
            rejected: None,
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
            format: None,
            secondary_format: None,
            toggles: None,
            routes: None,
        }
    }

    fn sample_webhook_settings_v2() -> StoredWebhooks {
        StoredWebhooks {
            secondary_url: Some("https://nango-receiver.example.com/h".into()),
            secondary_format: Some(crate::model::WebhookFormat::Nango),
            format: Some(crate::model::WebhookFormat::Opslog),
            ..sample_webhook_settings()
        }
    }

    fn sample_webhook_settings_v3() -> StoredWebhooks {
        StoredWebhooks {
            toggles: Some(crate::model::settings::NangoToggles {
                on_sync_error: false,
                ..Default::default()
            }),
            routes: Some(vec![crate::model::settings::WebhookRoute {
                url: "https://dev-tunnel.example.com/h".into(),
                format: Some(crate::model::WebhookFormat::Nango),
                connection_ids: vec!["acme".into()],
                end_user_ids: Vec::new(),
                tags: [("plan".to_owned(), "pro".to_owned())].into(),
            }]),
            ..sample_webhook_settings_v2()
        }
    }

    /// Outbox and settings records as first written. If this fails, the format changed: keep
    /// a reader for these bytes and add a new version (bless as above for a new version only).
    /// `outbox_job_v1.bin`, `outbox_attempt_v1.bin` and the `*_settings_v1.bin` files are frozen:
    /// all are written as version 2 now.
    #[test]
    fn records_naming_an_alert_event_carry_a_newer_version() {
        let mut job = sample_job();
        let plain = encode_job(&job);
        assert_eq!(
            plain[0], JOB_V2,
            "other jobs keep the version older binaries read"
        );
        if let JobKind::Webhook(w) = &mut job.kind {
            w.event = EventType::AlertTriggered;
        }
        let alert = encode_job(&job);
        assert_eq!(
            alert[0], JOB_V3,
            "a binary from before alerts refuses it by its version"
        );
        assert_eq!(decode_job(&alert).unwrap(), job);
        let mut settings = sample_webhook_settings();
        settings.events = Some(vec![EventType::SyncCompleted, EventType::AlertResolved]);
        let bytes = encode_webhook_settings(&settings);
        assert_eq!(
            bytes[0], WEBHOOK_SETTINGS_V3,
            "webhook settings are version 3 (routes)"
        );
        assert_eq!(decode_webhook_settings(&bytes).unwrap(), settings);
        let state = AlertState {
            firing: true,
            since: Timestamp(1),
            count: 9,
        };
        assert_eq!(
            decode_alert_state(&encode_alert_state(&state)).unwrap(),
            state
        );
        let alerts = StoredAlerts::from_rules(&[serde_json::from_str(
            r#"{"signal":"auth_failures","above":1,"window":"5m"}"#,
        )
        .unwrap()]);
        assert_eq!(
            decode_alert_settings(&encode_alert_settings(&alerts)).unwrap(),
            alerts
        );
    }

    #[test]
    fn reads_outbox_and_settings_records_written_by_an_earlier_binary() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/testdata");
        let files = [
            ("outbox_job_v2.bin", encode_job(&sample_export_job())),
            (
                "outbox_attempt_v2.bin",
                encode_attempt(&sample_export_attempt()),
            ),
            (
                "webhook_settings_v3.bin",
                encode_webhook_settings(&sample_webhook_settings_v3()),
            ),
            (
                "otel_settings_v3.bin",
                encode_otel_settings(&sample_otel_settings_v3()),
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
        let v1 = read("outbox_job_v1.bin");
        assert_eq!(v1[0], JOB_V1);
        assert_eq!(decode_job(&v1).unwrap(), sample_job());
        assert_eq!(
            decode_job(&read("outbox_job_v2.bin")).unwrap(),
            sample_export_job()
        );
        let v1 = read("outbox_attempt_v1.bin");
        assert_eq!(v1[0], ATTEMPT_V1);
        assert_eq!(decode_attempt(&v1).unwrap(), sample_attempt());
        assert_eq!(
            decode_attempt(&read("outbox_attempt_v2.bin")).unwrap(),
            sample_export_attempt()
        );
        assert_eq!(read("webhook_settings_v1.bin")[0], WEBHOOK_SETTINGS_V1);
        assert_eq!(read("otel_settings_v1.bin")[0], OTEL_SETTINGS_V1);
        assert_eq!(
            decode_webhook_settings(&read("webhook_settings_v1.bin")).unwrap(),
            sample_webhook_settings()
        );
        assert_eq!(
            decode_otel_settings(&read("otel_settings_v1.bin")).unwrap(),
            sample_otel_settings()
        );
        assert_eq!(
            decode_webhook_settings(&read("webhook_settings_v2.bin")).unwrap(),
            sample_webhook_settings_v2()
        );
        assert_eq!(read("otel_settings_v2.bin")[0], OTEL_SETTINGS_V2, "frozen");
        assert_eq!(
            decode_webhook_settings(&read("webhook_settings_v3.bin")).unwrap(),
            sample_webhook_settings_v3()
        );
        assert_eq!(
            decode_otel_settings(&read("otel_settings_v2.bin")).unwrap(),
            sample_otel_settings_v2()
        );
        assert_eq!(
            decode_otel_settings(&read("otel_settings_v3.bin")).unwrap(),
            sample_otel_settings_v3()
        );
    }

    fn sample_otel_settings_v3() -> StoredOtel {
        StoredOtel {
            trace_url: Some("http://localhost:16686/trace/{trace_id}".into()),
            ..sample_otel_settings_v2()
        }
    }

    fn sample_alert_rules(json: serde_json::Value) -> StoredAlerts {
        StoredAlerts::from_rules(
            &serde_json::from_value::<Vec<crate::model::alert::AlertRule>>(json).unwrap(),
        )
    }

    fn sample_notifiers() -> Notifiers {
        use crate::model::notifier::*;
        Notifiers {
            slack: Some(SlackNotifier {
                url: "https://hooks.slack.com/services/T000/B000/XXXX".into(),
            }),
            pagerduty: Some(PagerDutyNotifier {
                routing_key: "R0123456789abcdef0123456789abcde".into(),
                url: Some("http://127.0.0.1:9/v2/enqueue".into()),
                severity: PagerDutySeverity::Critical,
            }),
            email: Some(EmailNotifier {
                url: "smtps://alerts:hunter2@mail.example.com".into(),
                from: "opslog <alerts@example.com>".into(),
                to: vec!["oncall@example.com".into(), "ops@example.com".into()],
                ca_file: Some("/etc/opslog/ca.pem".into()),
            }),
        }
    }

    /// A notification as queued: the PagerDuty event without its routing key (added when sent),
    /// the destination as shown (no secret in it).
    fn sample_notification_job() -> Job {
        Job {
            kind: JobKind::PagerDuty(crate::model::job::WebhookJob {
                event_id: "evt_9".into(),
                event: EventType::AlertTriggered,
                url: "https://events.pagerduty.com/v2/enqueue".into(),
                body: r#"{"event_action":"trigger","dedup_key":"opslog/prod/auth_failures"}"#
                    .into(),
                operation_id: Id(44),
                log_operation_id: Id(44),
            }),
            ..sample_job()
        }
    }

    fn sample_view() -> StoredView {
        StoredView {
            id: "salesforce_auth".into(),
            name: "Salesforce auth failures".into(),
            query: serde_json::from_value(serde_json::json!({
                "q": "\"invalid_grant\"", "type": ["auth"], "state": ["failed", "timeout"],
                "integration": ["salesforce"], "tag": ["team:core"], "level": ["error"],
                "message_type": ["http"], "range": "7d"
            }))
            .unwrap(),
            created_at: Timestamp(1_700_000_000_000),
            updated_at: Timestamp(1_700_000_060_000),
        }
    }

    /// Alert sections the first release could hold keep its version (1); rules on views or with
    /// notifiers are version 2. Views and notifier settings are version 1; a notification's
    /// outbox job is version 4. The `.bin` files are frozen: a new shape needs a new version and a
    /// reader for these bytes (bless with `OPSLOG_BLESS=1` only when adding a file).
    #[test]
    fn alert_rules_on_views_with_notifiers_and_views_read_back_from_their_golden_bytes() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store/testdata");
        let signals = sample_alert_rules(serde_json::json!([
            {"signal": "auth_failures", "integration": "github", "above": 1, "window": "5m"}
        ]));
        let views = sample_alert_rules(serde_json::json!([
            {"signal": "sync_failures", "above": 0, "window": "1h"},
            {"view": "salesforce_auth", "above": 3, "window": "15m", "notify": ["webhook", "slack", "pagerduty", "email"]}
        ]));
        let files = [
            (
                "alert_settings_v1.bin",
                encode_alert_settings(&signals),
                ALERT_SETTINGS_V1,
            ),
            (
                "alert_settings_v2.bin",
                encode_alert_settings(&views),
                ALERT_SETTINGS_V2,
            ),
            ("view_v1.bin", encode_view(&sample_view()), VIEW_V1),
            (
                "notifier_settings_v1.bin",
                encode_notifiers(&sample_notifiers()),
                NOTIFIER_SETTINGS_V1,
            ),
            (
                "outbox_job_v4.bin",
                encode_job(&sample_notification_job()),
                JOB_V4,
            ),
        ];
        for (name, bytes, version) in &files {
            let path = format!("{dir}/{name}");
            if std::env::var_os("OPSLOG_BLESS").is_some() && !std::path::Path::new(&path).exists() {
                std::fs::write(&path, bytes).unwrap();
            }
            assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name}");
            assert_eq!(bytes[0], *version, "{name}");
        }
        let read = |name: &str| std::fs::read(format!("{dir}/{name}")).unwrap();
        assert_eq!(
            decode_alert_settings(&read("alert_settings_v1.bin")).unwrap(),
            signals
        );
        assert_eq!(
            decode_alert_settings(&read("alert_settings_v2.bin")).unwrap(),
            views
        );
        assert_eq!(decode_view(&read("view_v1.bin")).unwrap(), sample_view());
        assert_eq!(
            decode_notifiers(&read("notifier_settings_v1.bin")).unwrap(),
            sample_notifiers()
        );
        assert_eq!(
            decode_job(&read("outbox_job_v4.bin")).unwrap(),
            sample_notification_job()
        );
        // What the release before views wrote for one signal rule, byte for byte: version 1,
        // one rule, "auth_failures", Some("github"), 1, 300000 (bincode varints).
        let mut before = vec![1u8, 1, 13];
        before.extend_from_slice(b"auth_failures");
        before.extend_from_slice(&[1, 6]);
        before.extend_from_slice(b"github");
        before.extend_from_slice(&[1, 252, 0xe0, 0x93, 0x04, 0x00]);
        assert_eq!(decode_alert_settings(&before).unwrap(), signals);
        assert!(decode_alert_settings(&[3, 0])
            .unwrap_err()
            .to_string()
            .contains("newer opslog"));
    }

    fn sample_otel_settings_v2() -> StoredOtel {
        StoredOtel {
            names: crate::model::SpanNames::Nango,
            ..sample_otel_settings()
        }
    }

    fn sample_otel_settings() -> StoredOtel {
        StoredOtel {
            endpoint: Some("https://otlp.example.com".into()),
            headers: [("x-api-key".to_owned(), "k".to_owned())].into(),
            service_name: Some("opslog-prod".into()),
            resource_attributes: [("deployment.environment.name".to_owned(), "prod".to_owned())]
                .into(),
            max_events_per_span: Some(64),
            timeout_ms: Some(5_000),
            logs: true,
            names: crate::model::SpanNames::Opslog,
            trace_url: None,
        }
    }

    fn sample_export_job() -> Job {
        use crate::model::job::{OtlpSpanJob, OTLP_SPAN_FORMAT_V1};
        Job {
            kind: JobKind::OtlpSpan(OtlpSpanJob {
                format: OTLP_SPAN_FORMAT_V1,
                operation_id: Id(42),
                url: "http://127.0.0.1:4318/v1/traces".into(),
                span: vec![1, 2, 3],
            }),
            round_started_at: Timestamp(1_700_000_001_000),
            ..sample_job()
        }
    }

    fn sample_export_attempt() -> Attempt {
        Attempt {
            url: "http://127.0.0.1:4318/v1/traces".into(),
            response_excerpt: None,
            webhook_timestamp: 0,
            status: Some(200),
            outcome: DeliveryStatus::Delivered,
            retry_at: None,
            error: Some("partial success: 2 of the request's spans rejected: too big".into()),
            batch_size: Some(512),
            rejected: Some(2),
            ..sample_attempt()
        }
    }

    /// Every event is named in the list of the job version that first holds it, so a job naming
    /// it is written with a version that older binaries refuse rather than misread.
    #[test]
    fn every_event_has_a_job_version() {
        for event in EventType::ALL {
            let lists = [JOB_V2_EVENTS, JOB_V3_EVENTS]
                .iter()
                .filter(|list| list.contains(event))
                .count();
            assert_eq!(
                lists, 1,
                "{event}: a new event needs a job version older binaries refuse (a JOB_V4 with its \
                 list, read by decode_job), or its place in the list of the version that added it"
            );
        }
        let mut job = sample_job();
        for event in EventType::ALL {
            if let JobKind::Webhook(w) = &mut job.kind {
                w.event = *event;
            }
            let expected = if JOB_V2_EVENTS.contains(event) {
                JOB_V2
            } else {
                JOB_V3
            };
            assert_eq!(encode_job(&job)[0], expected, "{event}");
        }
    }

    /// Each record is written with its own newest version and a byte past it is refused as
    /// written by a newer opslog: the version constants of one record cannot drift apart from
    /// its encoder and decoder.
    #[test]
    fn every_record_writes_its_newest_version_and_refuses_a_newer_one() {
        fn check<T>(
            what: &str,
            bytes: Vec<u8>,
            newest: u8,
            decode: impl Fn(&[u8]) -> Result<T, StoreError>,
        ) {
            assert_eq!(
                bytes[0], newest,
                "{what} is written with its newest version"
            );
            assert!(decode(&bytes).is_ok(), "{what}");
            let mut newer = bytes;
            newer[0] = newest + 1;
            let err = decode(&newer)
                .err()
                .unwrap_or_else(|| panic!("{what}: newer read"));
            assert!(err.to_string().contains("newer opslog"), "{what}: {err}");
        }
        let job = sample_job();
        let nango = Job {
            kind: JobKind::NangoWebhook(crate::model::job::NangoWebhookJob {
                delivery: match job.kind.clone() {
                    JobKind::Webhook(w) => w,
                    _ => unreachable!(),
                },
                forwarded_headers: Vec::new(),
            }),
            ..job
        };
        check(
            "operation",
            encode_operation(&sample_operation_v4()),
            OPERATION_V4,
            decode_operation,
        );
        let m = sample_message();
        check("message", encode_message(&m), MESSAGE_V2, |b| {
            decode_message(m.operation_id.0, m.id.0, b)
        });
        assert_eq!(encode_job(&nango)[0], JOB_V3, "a Nango-format delivery");
        check(
            "outbox job",
            encode_job(&sample_notification_job()),
            JOB_V4,
            decode_job,
        );
        check(
            "notifier settings",
            encode_notifiers(&sample_notifiers()),
            NOTIFIER_SETTINGS_V1,
            decode_notifiers,
        );
        check(
            "outbox attempt",
            encode_attempt(&sample_attempt()),
            ATTEMPT_V2,
            decode_attempt,
        );
        check(
            "webhook settings",
            encode_webhook_settings(&sample_webhook_settings_v3()),
            WEBHOOK_SETTINGS_V3,
            decode_webhook_settings,
        );
        check(
            "otel settings",
            encode_otel_settings(&sample_otel_settings_v3()),
            OTEL_SETTINGS_V3,
            decode_otel_settings,
        );
        let feed = FeedEntry {
            operations: vec![Id(1)],
            messages_through: 2,
            removed_operations: Vec::new(),
        };
        check("feed", encode_feed(&feed), FEED_V2, decode_feed);
        let key = IdempotencyRecord {
            operation_id: Id(1),
            body_sha256: [7; 32],
        };
        check(
            "idempotency",
            encode_idempotency(&key),
            IDEMPOTENCY_V1,
            decode_idempotency,
        );
        let on_a_view = sample_alert_rules(serde_json::json!([
            {"view": "salesforce_auth", "above": 3, "window": "15m", "notify": ["slack"]}
        ]));
        check(
            "alert settings",
            encode_alert_settings(&on_a_view),
            ALERT_SETTINGS_V2,
            decode_alert_settings,
        );
        check("view", encode_view(&sample_view()), VIEW_V1, decode_view);
        let state = AlertState {
            firing: true,
            since: Timestamp(1),
            count: 2,
        };
        check(
            "alert state",
            encode_alert_state(&state),
            ALERT_STATE_V1,
            decode_alert_state,
        );
        let ingress = StoredIngress {
            token: "t".repeat(32),
        };
        check(
            "ingress settings",
            encode_ingress_settings(&ingress),
            INGRESS_SETTINGS_V1,
            decode_ingress_settings,
        );
    }
}
