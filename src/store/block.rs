//! The message block (format 3): a run of messages, of any operations, stored as compressed
//! columns under a sequence number (`tables::MESSAGE_BLOCKS`).
//!
//! Every stored message has a sequence number the writer assigns in commit order; a block holds
//! messages of ascending sequence numbers from its key on (with gaps once some were removed: a
//! rewritten block keeps its key). Layout:
//!
//! ```text
//! [4] [count: u32 LE] [raw length: u32 LE] [last seq: u64 LE] zstd(payload)
//! payload: varint n_ops, n_ops × operation id (u128 LE)          the block's operations
//!          count × varint operation index                        column: whose message
//!          count × varint seq − previous seq (first: − key)       column: sequence numbers
//!          count × varint id − previous id (wrapping; first: − 0) column: message ids
//!          count × zigzag varint created_at − previous (ms)       column: times
//!          count × one byte: type | level << 1 | source << 3      column: small codes
//!          count × (varint length, UTF-8)                         column: message text
//!          count × (varint length, bincode of `Details`)          column: everything else
//! ```
//!
//! Ids, times and sequence numbers of messages written together are close, so their columns are
//! a byte or less each before zstd; text and details of one kind sit together, which is what
//! zstd compresses best. A block is read whole: one decompression, then only the rows asked for
//! are decoded.
//!
//! Must not: panic on damaged bytes (`StoreError::Corrupt`), or change without a new version byte.

use bincode::{Decode, Encode};

use super::StoreError;
use crate::model::{
    ErrorInfo, HttpRequest, HttpResponse, Id, Json, Level, Message, MessageType, Retry, Source,
    Timestamp,
};

const V4_COLUMNS: u8 = 4;
const HEADER: usize = 1 + 4 + 4 + 8;
/// The most a block's payload may claim uncompressed; blocks are written far smaller.
const MAX_RAW: usize = 64 << 20;
/// zstd level of a block meant to stay: level 3 keeps about 15 % fewer bytes than level 1 on these
/// columns at twice the (small) CPU, paid once per message.
pub const FINAL: i32 = 3;
/// zstd level of a small block, which will be merged into a larger one.
pub const INTERIM: i32 = 1;

/// What a block's header says, read without decompressing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub count: u32,
    pub raw_len: u32,
    pub last_seq: u64,
}

/// A message's fields beyond the columns, as one bincode record.
#[derive(Encode, Decode)]
struct Details {
    request: Option<HttpRequest>,
    response: Option<HttpResponse>,
    duration_ms: Option<u64>,
    retry: Option<Retry>,
    error: Option<ErrorInfo>,
    meta: Option<Json>,
}

/// The bytes a block's compressed payload takes (the value's length less its header).
pub fn compressed_len(bytes: &[u8]) -> usize {
    bytes.len().saturating_sub(HEADER)
}

pub fn header(bytes: &[u8]) -> Result<Header, StoreError> {
    let head = bytes
        .get(..HEADER)
        .filter(|h| h[0] == V4_COLUMNS)
        .ok_or_else(|| corrupt("not a block of version 4"))?;
    Ok(Header {
        count: u32::from_le_bytes(head[1..5].try_into().expect("4 bytes")),
        raw_len: u32::from_le_bytes(head[5..9].try_into().expect("4 bytes")),
        last_seq: u64::from_le_bytes(head[9..17].try_into().expect("8 bytes")),
    })
}

fn corrupt(why: &str) -> StoreError {
    StoreError::Corrupt(format!("message block: {why}"))
}

/// Encodes `messages` (ascending sequence numbers, none before `key`) as the block `key`,
/// compressed at zstd `level`.
pub fn encode(key: u64, messages: &[(u64, &Message)], level: i32) -> Vec<u8> {
    let (first, last) = match (messages.first(), messages.last()) {
        (Some(first), Some(last)) => (first.0, last.0),
        _ => panic!("a block holds at least one message"),
    };
    debug_assert!(key <= first && messages.windows(2).all(|w| w[0].0 < w[1].0));
    let mut ops: Vec<Id> = Vec::new();
    let mut payload = Vec::with_capacity(messages.len() * 96);
    let op_index: Vec<usize> = messages
        .iter()
        .map(
            |(_, m)| match ops.iter().rposition(|op| *op == m.operation_id) {
                Some(i) => i,
                None => {
                    ops.push(m.operation_id);
                    ops.len() - 1
                }
            },
        )
        .collect();
    put_varint(&mut payload, ops.len() as u128);
    for op in &ops {
        payload.extend_from_slice(&op.0.to_le_bytes());
    }
    for i in op_index {
        put_varint(&mut payload, i as u128);
    }
    let mut previous = key;
    for (seq, _) in messages {
        put_varint(&mut payload, u128::from(seq - previous));
        previous = *seq;
    }
    let mut previous = 0u128;
    for (_, m) in messages {
        put_varint(&mut payload, m.id.0.wrapping_sub(previous));
        previous = m.id.0;
    }
    let mut previous = 0i64;
    for (_, m) in messages {
        put_varint(&mut payload, zigzag(m.created_at.0.wrapping_sub(previous)));
        previous = m.created_at.0;
    }
    for (_, m) in messages {
        payload.push(small_codes(m));
    }
    for (_, m) in messages {
        put_varint(&mut payload, m.message.len() as u128);
        payload.extend_from_slice(m.message.as_bytes());
    }
    let mut details = Vec::with_capacity(64);
    for (_, m) in messages {
        details.clear();
        let d = Details {
            request: m.request.clone(),
            response: m.response.clone(),
            duration_ms: m.duration_ms,
            retry: m.retry.clone(),
            error: m.error.clone(),
            meta: m.meta.clone(),
        };
        bincode::encode_into_std_write(&d, &mut details, bincode::config::standard())
            .expect("encoding into a Vec cannot fail");
        put_varint(&mut payload, details.len() as u128);
        payload.extend_from_slice(&details);
    }
    let compressed = super::codec::zstd_compress(&payload, level);
    let mut out = Vec::with_capacity(HEADER + compressed.len());
    out.push(V4_COLUMNS);
    out.extend_from_slice(&(messages.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
    out.extend_from_slice(&compressed);
    out
}

/// A decompressed block: its columns, from which rows are decoded on demand.
pub struct Decoded {
    payload: Vec<u8>,
    ops: Vec<Id>,
    op_index: Vec<u32>,
    seqs: Vec<u64>,
    ids: Vec<u128>,
    times: Vec<i64>,
    codes: Vec<u8>,
    /// Where each row's text starts and ends in `payload`.
    text: Vec<(u32, u32)>,
    details: Vec<(u32, u32)>,
}

impl Decoded {
    pub fn len(&self) -> usize {
        self.seqs.len()
    }

    pub fn seq(&self, row: usize) -> u64 {
        self.seqs[row]
    }

    pub fn id(&self, row: usize) -> Id {
        Id(self.ids[row])
    }

    pub fn operation(&self, row: usize) -> Id {
        self.ops[self.op_index[row] as usize]
    }

    /// The row holding sequence number `seq`, if any.
    pub fn row_of(&self, seq: u64) -> Option<usize> {
        self.seqs.binary_search(&seq).ok()
    }

    /// The message of `row`, decoded from its columns.
    pub fn message(&self, row: usize) -> Result<Message, StoreError> {
        let code = self.codes[row];
        let kind = *MessageType::ALL
            .get(usize::from(code & 1))
            .ok_or_else(|| corrupt("type code"))?;
        let level = *Level::ALL
            .get(usize::from((code >> 1) & 3))
            .ok_or_else(|| corrupt("level code"))?;
        let source = *Source::ALL
            .get(usize::from((code >> 3) & 1))
            .ok_or_else(|| corrupt("source code"))?;
        let (start, end) = self.text[row];
        let text = std::str::from_utf8(&self.payload[start as usize..end as usize])
            .map_err(|_| corrupt("text is not UTF-8"))?;
        let (start, end) = self.details[row];
        let config = bincode::config::standard().with_limit::<MAX_RAW>();
        let (d, used): (Details, usize) =
            bincode::decode_from_slice(&self.payload[start as usize..end as usize], config)
                .map_err(|e| corrupt(&e.to_string()))?;
        if used != (end - start) as usize {
            return Err(corrupt("trailing bytes in a row"));
        }
        Ok(Message {
            id: self.id(row),
            operation_id: self.operation(row),
            kind,
            level,
            source,
            message: text.to_owned(),
            request: d.request,
            response: d.response,
            duration_ms: d.duration_ms,
            retry: d.retry,
            error: d.error,
            meta: d.meta,
            created_at: Timestamp(self.times[row]),
        })
    }

    /// Every row as (seq, message), in sequence order.
    pub fn all(&self) -> Result<Vec<(u64, Message)>, StoreError> {
        (0..self.len())
            .map(|row| Ok((self.seqs[row], self.message(row)?)))
            .collect()
    }
}

/// Decompresses the block stored under `key` and reads its columns.
pub fn decode(key: u64, bytes: &[u8]) -> Result<Decoded, StoreError> {
    let head = header(bytes)?;
    let (count, raw_len) = (head.count as usize, head.raw_len as usize);
    if raw_len > MAX_RAW || count > raw_len {
        return Err(corrupt("claims an impossible size"));
    }
    let payload =
        super::codec::zstd_decompress(&bytes[HEADER..], raw_len).map_err(|e| corrupt(&e))?;
    let mut r = Reader {
        bytes: &payload,
        at: 0,
    };
    let n_ops = r.varint()? as usize;
    if n_ops > count {
        return Err(corrupt("more operations than messages"));
    }
    let mut ops = Vec::with_capacity(n_ops);
    for _ in 0..n_ops {
        ops.push(Id(u128::from_le_bytes(r.take(16)?.try_into().expect("16"))));
    }
    let mut op_index = Vec::with_capacity(count);
    for _ in 0..count {
        let i = r.varint()?;
        if i >= n_ops as u128 {
            return Err(corrupt("operation index out of range"));
        }
        op_index.push(i as u32);
    }
    let mut seqs = Vec::with_capacity(count);
    let mut seq = key;
    for row in 0..count {
        let delta = u64::try_from(r.varint()?).map_err(|_| corrupt("seq delta"))?;
        if row > 0 && delta == 0 {
            return Err(corrupt("sequence numbers out of order"));
        }
        seq = seq
            .checked_add(delta)
            .ok_or_else(|| corrupt("seq overflow"))?;
        seqs.push(seq);
    }
    if seqs.last() != Some(&head.last_seq) {
        return Err(corrupt("header does not match its sequence numbers"));
    }
    let mut ids = Vec::with_capacity(count);
    let mut id = 0u128;
    for _ in 0..count {
        id = id.wrapping_add(r.varint()?);
        ids.push(id);
    }
    let mut times = Vec::with_capacity(count);
    let mut time = 0i64;
    for _ in 0..count {
        let delta = unzigzag(r.varint()?).ok_or_else(|| corrupt("time delta"))?;
        time = time.wrapping_add(delta);
        times.push(time);
    }
    let codes = r.take(count)?.to_vec();
    let mut text = Vec::with_capacity(count);
    let mut details = Vec::with_capacity(count);
    for column in [&mut text, &mut details] {
        for _ in 0..count {
            let len = usize::try_from(r.varint()?).map_err(|_| corrupt("length"))?;
            let start = r.at;
            r.take(len)?;
            column.push((start as u32, r.at as u32));
        }
    }
    if r.at != payload.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(Decoded {
        payload,
        ops,
        op_index,
        seqs,
        ids,
        times,
        codes,
        text,
        details,
    })
}

fn small_codes(m: &Message) -> u8 {
    let index = |found: Option<usize>| found.unwrap_or(0) as u8;
    let kind = index(MessageType::ALL.iter().position(|k| *k == m.kind));
    let level = index(Level::ALL.iter().position(|l| *l == m.level));
    let source = index(Source::ALL.iter().position(|s| *s == m.source));
    kind | level << 1 | source << 3
}

// The codes pack each enum into its bits: a variant more would not fit.
const _: () =
    assert!(MessageType::ALL.len() <= 2 && Level::ALL.len() <= 4 && Source::ALL.len() <= 2);

fn put_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u128 {
    u128::from(((value << 1) ^ (value >> 63)) as u64)
}

fn unzigzag(value: u128) -> Option<i64> {
    let v = u64::try_from(value).ok()?;
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], StoreError> {
        let end = self.at.checked_add(n).ok_or_else(|| corrupt("length"))?;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| corrupt("cut short"))?;
        self.at = end;
        Ok(slice)
    }

    fn varint(&mut self) -> Result<u128, StoreError> {
        let mut value = 0u128;
        for shift in (0..128).step_by(7) {
            let byte = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| corrupt("cut short"))?;
            self.at += 1;
            value |= u128::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(corrupt("varint too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(op: u128, id: u128, text: &str) -> Message {
        Message {
            id: Id(id),
            operation_id: Id(op),
            kind: MessageType::Http,
            level: Level::Warn,
            source: Source::User,
            message: text.into(),
            request: Some(HttpRequest {
                method: "GET".into(),
                url: format!("https://api.example.com/v2/items?page={id}"),
                headers: None,
                body: None,
            }),
            response: Some(HttpResponse {
                status: 429,
                headers: None,
                body: None,
            }),
            duration_ms: Some(120),
            retry: Some(Retry {
                attempt: 1,
                max: 3,
                waited_ms: 10,
            }),
            error: None,
            meta: Some(Json::from_value(&serde_json::json!({"a": [1, 2]}))),
            created_at: Timestamp(1_764_000_000_000 + id as i64 % 7 - 3),
        }
    }

    #[test]
    fn a_block_keeps_every_field_of_every_message() {
        let messages: Vec<Message> = (0..300u128)
            .map(|i| message(1 + i % 4, (9 << 90) + i * 3, &"é".repeat(i as usize % 5)))
            .collect();
        // Sequence numbers with gaps, as after a removal.
        let rows: Vec<(u64, &Message)> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (100 + i as u64 * 2, m))
            .collect();
        let bytes = encode(100, &rows, FINAL);
        let head = header(&bytes).unwrap();
        assert_eq!((head.count, head.last_seq), (300, 100 + 299 * 2));
        let block = decode(100, &bytes).unwrap();
        let all = block.all().unwrap();
        let expected: Vec<(u64, Message)> = rows.iter().map(|(s, m)| (*s, (*m).clone())).collect();
        assert_eq!(all, expected);
        assert_eq!(block.row_of(102), Some(1));
        assert_eq!(block.row_of(103), None);
        // Ids going backwards (an import) survive too.
        let back = [message(5, 900, "b"), message(5, 10, "a")];
        let rows: Vec<(u64, &Message)> = back.iter().zip([7, 8]).map(|(m, s)| (s, m)).collect();
        let block = decode(7, &encode(7, &rows, INTERIM)).unwrap();
        assert_eq!(block.id(1), Id(10));
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let messages: Vec<Message> = (0..40u128).map(|i| message(1, i, "text")).collect();
        let rows: Vec<(u64, &Message)> = messages.iter().zip(1u64..).map(|(m, s)| (s, m)).collect();
        let bytes = encode(1, &rows, FINAL);
        assert!(decode(2, &bytes).is_err(), "a block read under a later key");
        for cut in [0, 5, HEADER, bytes.len() - 1] {
            assert!(decode(1, &bytes[..cut]).is_err());
        }
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2_000 {
            let mut damaged = bytes.clone();
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let at = (rng as usize) % damaged.len();
            damaged[at] ^= 1 << ((rng >> 60) % 8);
            if let Ok(block) = decode(1, &damaged) {
                for row in 0..block.len() {
                    let _ = block.message(row);
                }
            }
        }
    }

    #[test]
    fn varints_round_trip() {
        for value in [0u128, 1, 127, 128, 300, u64::MAX as u128, u128::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            let mut r = Reader { bytes: &out, at: 0 };
            assert_eq!(r.varint().unwrap(), value);
            assert_eq!(r.at, out.len());
        }
        for value in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(value)), Some(value));
        }
    }
}
