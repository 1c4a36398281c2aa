//! Entry points for fuzzing the parsers that read untrusted bytes: the record codec (bytes on
//! disk), the `q` search language and the page cursor (both from query strings). Each takes
//! arbitrary bytes, must return without panicking however they look, and checks a property of
//! what it accepts. `fuzz/` drives them with libFuzzer (`scripts/fuzz`); the tests below drive
//! them with seeded random and mutated inputs on every `cargo test`.
//!
//! Must not: be called by the daemon.

use crate::http::cursor::CursorKey;
use crate::index::query::{self, MAX_CLAUSES};
use crate::index::Bound;
use crate::store::{block, codec};

/// Every record decoder on `data`; whatever decodes must encode and decode back to itself.
pub fn record_codec(data: &[u8]) {
    macro_rules! round_trip {
        ($decode:path, $encode:path) => {
            if let Ok(value) = $decode(data) {
                let again = $decode(&$encode(&value)).expect("a re-encoded record decodes");
                assert_eq!(again, value, "a record changed on re-encoding");
            }
        };
    }
    round_trip!(codec::decode_operation, codec::encode_operation);
    // Message records take their ids from the key.
    let (operation, id) = (0x0197_0000_0000_0001, 0x0197_0000_0000_0002);
    if let Ok(message) = codec::decode_message(operation, id, data) {
        let again = codec::decode_message(operation, id, &codec::encode_message(&message))
            .expect("a re-encoded record decodes");
        assert_eq!(again, message, "a record changed on re-encoding");
    }
    if let Ok(records) = codec::decode_block_records(data) {
        let again = codec::decode_block_records(&codec::encode_block(&records))
            .expect("a re-encoded block decodes");
        assert_eq!(again, records, "a block changed on re-encoding");
    }
    // A block of messages: whatever decodes encodes back to the same rows.
    if let Ok(rows) = block::decode(1, data).and_then(|b| b.all()) {
        if !rows.is_empty() {
            let refs: Vec<(u64, &crate::model::Message)> =
                rows.iter().map(|(s, m)| (*s, m)).collect();
            let again = block::decode(1, &block::encode(1, &refs, block::FINAL))
                .and_then(|b| b.all())
                .expect("a re-encoded block decodes");
            assert_eq!(again, rows, "a block changed on re-encoding");
        }
    }
    round_trip!(codec::decode_feed, codec::encode_feed);
    round_trip!(codec::decode_idempotency, codec::encode_idempotency);
    round_trip!(codec::decode_job, codec::encode_job);
    round_trip!(codec::decode_attempt, codec::encode_attempt);
    round_trip!(
        codec::decode_webhook_settings,
        codec::encode_webhook_settings
    );
    round_trip!(
        codec::decode_ingress_settings,
        codec::encode_ingress_settings
    );
}

/// The search language on `data` (as lossy UTF-8): a parsed query stays within its bounds.
pub fn query_parser(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(parsed) = query::parse(&text) {
        assert!(parsed.clauses.len() <= MAX_CLAUSES, "{text:?}");
        assert!(
            parsed.clauses.iter().all(|c| !c.any_of.is_empty()),
            "{text:?}"
        );
    }
}

/// The cursor decoder on `data` (as lossy UTF-8): a cursor it accepts is exactly the one the
/// encoder writes for that position (no second spelling of a sealed cursor).
pub fn cursor_decoder(data: &[u8]) {
    let key = CursorKey::from_bytes([7; 32]);
    let text = String::from_utf8_lossy(data);
    for scope in ["operations|prod|", ""] {
        if let Ok(bound) = key.decode(scope, &text) {
            assert_eq!(
                key.encode(scope, bound),
                text,
                "a second spelling of a cursor"
            );
        }
    }
    // Valid cursors with bytes of `data` mixed in, so the decoder sees near-misses too.
    let id = data
        .iter()
        .take(16)
        .fold(0u128, |acc, b| acc << 8 | u128::from(*b));
    let valid = key.encode("s", Bound::Before(id));
    let mut bytes = valid.into_bytes();
    if let (Some(&first), false) = (data.first(), bytes.is_empty()) {
        let at = usize::from(first) % bytes.len();
        bytes[at] = data.get(1).copied().unwrap_or(b'A');
    }
    let _ = key.decode("s", &String::from_utf8_lossy(&bytes));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const ITERATIONS: usize = 20_000;

    /// Random bytes, and `seeds` with random damage: flipped, inserted, removed and
    /// overwritten bytes (0xFF and 0xFD are bincode's largest varint markers), cut short.
    fn inputs(seed: u64, seeds: &[Vec<u8>], alphabet: &[u8]) -> impl Iterator<Item = Vec<u8>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let seeds = seeds.to_vec();
        let alphabet = alphabet.to_vec();
        (0..ITERATIONS).map(move |i| {
            if i % 3 == 0 || seeds.is_empty() {
                let len = rng.random_range(0..256);
                return (0..len)
                    .map(|_| {
                        if alphabet.is_empty() {
                            rng.random()
                        } else {
                            alphabet[rng.random_range(0..alphabet.len())]
                        }
                    })
                    .collect();
            }
            let mut bytes = seeds[rng.random_range(0..seeds.len())].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=bytes.len());
                match rng.random_range(0..5) {
                    0 if at < bytes.len() => bytes[at] ^= 1 << rng.random_range(0..8),
                    1 => bytes.insert(at, rng.random()),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    3 if at < bytes.len() => bytes[at] = [0xFF, 0xFD, 0xFC, 0x00][at % 4],
                    _ => bytes.truncate(at),
                }
            }
            bytes
        })
    }

    #[test]
    fn record_codec_survives_random_and_damaged_records() {
        use crate::model::*;
        let op = Operation {
            id: Id(1),
            environment: "prod".into(),
            kind: OpType::Sync,
            action: "run".into(),
            state: OpState::Running,
            integration: Some("github".into()),
            connection_id: None,
            script: Some("issues".into()),
            provider: None,
            message: "sync".into(),
            error: None,
            request: None,
            response: None,
            records: Some(vec![RecordCount {
                model: "Issue".into(),
                added: 1,
                updated: 2,
                deleted: 3,
            }]),
            meta: Some(Json::from_value(&serde_json::json!({"a": [1, 2]}))),
            end_user: None,
            tags: Default::default(),
            is_async: false,
            sync_type: None,
            checkpoints: None,
            auth_mode: None,
            output: None,
            trace_context: None,
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            started_at: Some(Timestamp(1)),
            ended_at: None,
            expires_at: Timestamp(3),
            duration_ms: None,
            message_count: 4,
        };
        let feed = codec::FeedEntry {
            operations: vec![Id(1)],
            messages_through: u64::MAX,
            removed_operations: vec![],
        };
        let legacy = codec::encode_block(&[(1, vec![2, 0, 0]), (u128::MAX, vec![1, 2, 3, 4])]);
        let message = crate::model::Message {
            id: Id(5),
            operation_id: Id(1),
            kind: crate::model::MessageType::Http,
            level: crate::model::Level::Error,
            source: crate::model::Source::System,
            message: "GET /x -> 500".into(),
            request: None,
            response: None,
            duration_ms: Some(3),
            retry: None,
            error: None,
            meta: None,
            created_at: Timestamp(9),
        };
        let seeds = vec![
            codec::encode_operation(&op),
            codec::encode_feed(&feed),
            legacy,
            block::encode(1, &[(1, &message), (3, &message)], block::FINAL),
        ];
        for input in inputs(1, &seeds, &[]) {
            record_codec(&input);
        }
        // A length prefix announcing ~2^64 bytes: an error, not an abort.
        let mut huge = codec::encode_operation(&op);
        huge.truncate(18);
        huge.extend([0xFD, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
        assert!(codec::decode_operation(&huge).is_err());
        record_codec(&huge);
    }

    #[test]
    fn query_parser_survives_random_queries() {
        let seeds: Vec<Vec<u8>> = [
            "\"invalid grant\" OR timeout -debug",
            "sync* rate limited",
            "a OR b OR c",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let alphabet = b"ab \"*-OR():\\\t\xc3\xa9\xff";
        for input in inputs(2, &seeds, alphabet) {
            query_parser(&input);
        }
        query_parser("a OR ".repeat(10_000).as_bytes());
        query_parser("\"".repeat(10_000).as_bytes());
    }

    #[test]
    fn cursor_decoder_survives_random_cursors() {
        let key = CursorKey::from_bytes([7; 32]);
        let seeds = vec![
            key.encode("operations|prod|", Bound::After(42))
                .into_bytes(),
            key.encode("", Bound::Before(u128::MAX)).into_bytes(),
        ];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.";
        for input in inputs(3, &seeds, alphabet) {
            cursor_decoder(&input);
        }
        // The seeds themselves decode (the property above is not vacuous).
        for seed in &seeds {
            cursor_decoder(seed);
        }
    }
}
