//! W3C Trace Context (https://www.w3.org/TR/trace-context/): the trace an operation belongs to,
//! read from a `traceparent` (and `tracestate`) the caller sent, and written back as the
//! `traceparent` of the operation's own span.
//!
//! Must not: know where the header came from (HTTP, a JSON field, an OTLP span) or what is done
//! with it (`otel` builds spans from it, `dispatch` sends it with webhooks).

use std::fmt;

use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

/// The longest `tracestate` kept, in characters: the W3C asks to propagate at least 512, and
/// allows cutting whole entries from the end beyond that.
pub const MAX_TRACESTATE_CHARS: usize = 512;
/// The most entries a `tracestate` may have (W3C).
const MAX_TRACESTATE_ENTRIES: usize = 32;

/// A 16-byte trace id, never all zero; its text is 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id, never all zero; its text is 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub struct SpanId(pub [u8; 8]);

/// The trace an operation belongs to: the caller's trace and span (the parent of the operation's
/// span), or, for an operation received over OTLP, the span it was itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The span the operation's span is a child of; `null` for a root span (only from OTLP).
    #[serde(default)]
    pub parent_span_id: Option<SpanId>,
    /// The operation's own span id when it came over OTLP as a span; otherwise `null`, and its
    /// exported span's id is derived from the operation id.
    #[serde(default)]
    pub span_id: Option<SpanId>,
    /// W3C trace flags (bit 0: sampled).
    #[serde(default, deserialize_with = "crate::model::whole")]
    #[schema(maximum = 255)]
    pub trace_flags: u8,
    /// The caller's `tracestate`, passed on unchanged.
    #[serde(default)]
    #[schema(max_length = 512, pattern = "^[ -~]*$")]
    pub tracestate: Option<String>,
}

/// Lowercase hex digits into `N` bytes; `None` for anything else (uppercase included: W3C).
fn lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N
        || !bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

impl TraceId {
    /// 32 lowercase hex digits, not all zero.
    pub fn parse(text: &str) -> Option<TraceId> {
        lower_hex(text).filter(|b| *b != [0; 16]).map(TraceId)
    }

    /// From the bytes of an OTLP span or log record: 16 bytes, not all zero.
    pub fn from_bytes(bytes: &[u8]) -> Option<TraceId> {
        <[u8; 16]>::try_from(bytes)
            .ok()
            .filter(|b| *b != [0; 16])
            .map(TraceId)
    }
}

impl SpanId {
    /// 16 lowercase hex digits, not all zero.
    pub fn parse(text: &str) -> Option<SpanId> {
        lower_hex(text).filter(|b| *b != [0; 8]).map(SpanId)
    }

    /// From the bytes of an OTLP span or log record: 8 bytes, not all zero.
    pub fn from_bytes(bytes: &[u8]) -> Option<SpanId> {
        <[u8; 8]>::try_from(bytes)
            .ok()
            .filter(|b| *b != [0; 8])
            .map(SpanId)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

macro_rules! hex_text {
    ($name:ident, $digits:literal, $what:literal, $example:literal) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        concat!(
                            "`{}` is not a ",
                            $what,
                            " (",
                            $digits,
                            " lowercase hex digits, not all zero)"
                        ),
                        text
                    ))
                })
            }
        }

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                // At least one digit not zero (an all-zero id is invalid), without a lookahead.
                let digits: usize = $digits.parse().expect("a number");
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9a-f]*[1-9a-f][0-9a-f]*$"))
                    .min_length(Some(digits))
                    .max_length(Some(digits))
                    .description(Some(concat!(
                        "W3C ",
                        $what,
                        ": ",
                        $digits,
                        " lowercase hex digits"
                    )))
                    .examples([serde_json::Value::from($example)])
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

hex_text!(
    TraceId,
    "32",
    "trace id",
    "4bf92f3577b34da6a3ce929d0e0e4736"
);
hex_text!(SpanId, "16", "span id", "00f067aa0ba902b7");

impl TraceContext {
    /// The context a `traceparent` (and optional `tracestate`) carry, or `None` when the
    /// `traceparent` is not valid: the W3C says to ignore it then (and its `tracestate` with it),
    /// never to refuse the request. A `tracestate` that does not parse is dropped alone.
    pub fn from_w3c(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let (trace_id, parent, trace_flags) = parse_traceparent(traceparent)?;
        Some(TraceContext {
            trace_id,
            parent_span_id: Some(parent),
            span_id: None,
            trace_flags,
            tracestate: tracestate.and_then(normalize_tracestate),
        })
    }

    /// The bounds of a stored context (for imported records): a `tracestate` of at most
    /// `MAX_TRACESTATE_CHARS` printable ASCII characters.
    pub fn check(&self) -> Result<(), String> {
        match &self.tracestate {
            Some(state)
                if state.len() > MAX_TRACESTATE_CHARS
                    || !state.bytes().all(|b| (0x20..=0x7e).contains(&b)) =>
            {
                Err(format!(
                    "`tracestate` must be at most {MAX_TRACESTATE_CHARS} printable ASCII characters"
                ))
            }
            _ => Ok(()),
        }
    }
}

/// `traceparent` in any version this parser understands: `00` exactly, a later version by its
/// first four fields (W3C "versioning of traceparent"); `ff` is invalid.
fn parse_traceparent(text: &str) -> Option<(TraceId, SpanId, u8)> {
    let text = text.trim_matches([' ', '\t']);
    let bytes = text.as_bytes();
    if bytes.len() < 55 {
        return None;
    }
    let version = lower_hex::<1>(text.get(..2)?)?[0];
    if version == 0xff
        || (version == 0 && bytes.len() != 55)
        || (bytes.len() > 55 && bytes[55] != b'-')
    {
        return None;
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace_id = TraceId::parse(text.get(3..35)?)?;
    let parent = SpanId::parse(text.get(36..52)?)?;
    let flags = lower_hex::<1>(text.get(53..55)?)?[0];
    Some((trace_id, parent, flags))
}

/// A `tracestate` with its entries trimmed and at most `MAX_TRACESTATE_CHARS` long (whole
/// entries cut from the end), or `None` when it is empty or not a valid list.
pub fn normalize_tracestate(text: &str) -> Option<String> {
    let members: Vec<&str> = text
        .split(',')
        .map(|m| m.trim_matches([' ', '\t']))
        .filter(|m| !m.is_empty())
        .collect();
    if members.is_empty()
        || members.len() > MAX_TRACESTATE_ENTRIES
        || !members.iter().all(|m| is_tracestate_member(m))
    {
        return None;
    }
    let mut out = String::new();
    for member in members {
        let extra = member.len() + usize::from(!out.is_empty());
        if out.len() + extra > MAX_TRACESTATE_CHARS {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(member);
    }
    (!out.is_empty()).then_some(out)
}

/// `key=value` as the W3C defines them: a key of lowercase letters, digits and `_-*/` (with an
/// optional `@system`), starting with a letter or digit; a value of printable ASCII without `,`
/// or `=`, not ending in a space.
fn is_tracestate_member(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    let key_ok = !key.is_empty()
        && key.len() <= 256
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && key.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'_' | b'-' | b'*' | b'/' | b'@')
        })
        && key.bytes().filter(|b| *b == b'@').count() <= 1;
    let value_ok = !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !value.ends_with(' ');
    key_ok && value_ok
}

/// The `traceparent` header of span `span` in trace `trace` (version 00).
pub fn traceparent(trace: TraceId, span: SpanId, flags: u8) -> String {
    format!("00-{trace}-{span}-{flags:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_gives_its_trace_parent_and_flags() {
        let ctx = TraceContext::from_w3c(VALID, Some("congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"))
            .unwrap();
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_span_id.unwrap().to_string(), "00f067aa0ba902b7");
        assert_eq!(ctx.trace_flags, 1);
        assert_eq!(ctx.span_id, None);
        assert_eq!(
            ctx.tracestate.as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        assert_eq!(
            traceparent(ctx.trace_id, ctx.parent_span_id.unwrap(), ctx.trace_flags),
            VALID
        );
        // Surrounding whitespace is allowed (OWS), and flags beyond "sampled" are kept.
        let ctx = TraceContext::from_w3c(&format!(" {}", VALID.replace("-01", "-03")), None);
        assert_eq!(ctx.unwrap().trace_flags, 3);
    }

    /// The W3C's rules for invalid headers (test suite `test_traceparent_*`): each is ignored.
    #[test]
    fn an_invalid_traceparent_is_ignored() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\u{e9}",
        ] {
            assert_eq!(TraceContext::from_w3c(bad, Some("a=b")), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds";
        let ctx = TraceContext::from_w3c(later, None).unwrap();
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let exact = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(TraceContext::from_w3c(exact, None).is_some());
    }

    #[test]
    fn a_bad_tracestate_is_dropped_alone_and_a_long_one_cut_by_entries() {
        for bad in [
            "", "   ", "noequals", "Upper=1", "a=b=c", "a= ", "@a=1", "a@b@c=1",
        ] {
            let ctx = TraceContext::from_w3c(VALID, Some(bad)).unwrap();
            assert_eq!(ctx.tracestate, None, "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            TraceContext::from_w3c(VALID, Some(&many.join(",")))
                .unwrap()
                .tracestate,
            None,
            "more than 32 entries"
        );
        let long: Vec<String> = (0..20)
            .map(|i| format!("k{i:02}={}", "v".repeat(40)))
            .collect();
        let kept = TraceContext::from_w3c(VALID, Some(&long.join(",")))
            .unwrap()
            .tracestate
            .unwrap();
        assert!(kept.len() <= MAX_TRACESTATE_CHARS, "{}", kept.len());
        assert!(kept.starts_with("k00=") && kept.ends_with(&"v".repeat(40)));
        assert_eq!(kept.split(',').count(), 11);
        assert!(
            TraceContext::from_w3c(VALID, Some("tenant@vendor=x,a-b*c/d=1"))
                .unwrap()
                .tracestate
                .is_some()
        );
    }

    #[test]
    fn json_is_hex_and_refuses_other_text() {
        let ctx = TraceContext::from_w3c(VALID, None).unwrap();
        let json = serde_json::to_value(&ctx).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "parent_span_id": "00f067aa0ba902b7", "span_id": null, "trace_flags": 1,
                "tracestate": null})
        );
        assert_eq!(serde_json::from_value::<TraceContext>(json).unwrap(), ctx);
        let err = serde_json::from_value::<TraceContext>(serde_json::json!({
            "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"}))
        .unwrap_err();
        assert!(err.to_string().contains("is not a trace id"), "{err}");
    }

    /// JSON Schema counts `1.0` as an integer, so the API takes it (schemathesis sends such).
    #[test]
    fn trace_flags_take_a_whole_number_written_as_a_float() {
        let json = |flags: serde_json::Value| {
            serde_json::from_value::<TraceContext>(serde_json::json!({
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "trace_flags": flags}))
        };
        assert_eq!(json(serde_json::json!(1.0)).unwrap().trace_flags, 1);
        assert_eq!(json(serde_json::json!(206)).unwrap().trace_flags, 206);
        assert!(json(serde_json::json!(1.5)).is_err());
        assert!(json(serde_json::json!(256)).is_err());
        let absent: TraceContext = serde_json::from_value(serde_json::json!({
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}))
        .unwrap();
        assert_eq!(absent.trace_flags, 0);
    }
}
