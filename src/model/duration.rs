//! A duration as the HTTP API takes and shows it (`ApiDuration`): typed bounds, one exact
//! pattern shared by the OpenAPI document and the parser.
//!
//! Must not: depend on anything above `model`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration as the HTTP API takes and shows it: one whole number (no leading zero) and one unit
/// (`ms`, `s`, `m`, `h` or `d`), within `MIN_MS..=MAX_MS` milliseconds. The OpenAPI document gives
/// the exact strings as a pattern, so a client's validator and the server agree on every value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiDuration<const MIN_MS: u64, const MAX_MS: u64>(pub Duration);

/// The units of an `ApiDuration`, largest first, in milliseconds.
const API_UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl<const MIN_MS: u64, const MAX_MS: u64> ApiDuration<MIN_MS, MAX_MS> {
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits = text.bytes().take_while(u8::is_ascii_digit).count();
        let (number, unit) = text.split_at(digits);
        let unit_ms = API_UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, ms)| *ms);
        let well_formed = digits > 0 && (number == "0" || !number.starts_with('0'));
        let (true, Some(unit_ms)) = (well_formed, unit_ms) else {
            return Err(format!(
                "`{text}` is not a duration; write one whole number and one unit (ms, s, m, h or d), like \"15s\" or \"5m\""
            ));
        };
        match number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(unit_ms))
        {
            Some(ms) if (MIN_MS..=MAX_MS).contains(&ms) => {
                Ok(ApiDuration(Duration::from_millis(ms)))
            }
            _ => Err(format!(
                "`{text}` is out of range; it must be from {} to {}",
                Self::show(MIN_MS),
                Self::show(MAX_MS)
            )),
        }
    }

    /// `ms` in the largest unit that divides it.
    fn show(ms: u64) -> String {
        if ms == 0 {
            return "0s".to_owned();
        }
        API_UNITS
            .iter()
            .find(|(_, unit_ms)| ms >= *unit_ms && ms.is_multiple_of(*unit_ms))
            .map_or_else(
                || format!("{ms}ms"),
                |(unit, unit_ms)| format!("{}{unit}", ms / unit_ms),
            )
    }

    /// The regular expression of every text `parse` takes.
    pub fn pattern() -> String {
        let units: Vec<String> = API_UNITS
            .iter()
            .filter_map(|(unit, unit_ms)| {
                let (lo, hi) = (MIN_MS.div_ceil(*unit_ms), MAX_MS / unit_ms);
                (lo <= hi).then(|| format!("(?:{}){unit}", decimal_range(lo, hi)))
            })
            .collect();
        format!("^(?:{})$", units.join("|"))
    }
}

/// A regular expression for the decimal numbers `lo..=hi`, written without leading zeros.
fn decimal_range(lo: u64, hi: u64) -> String {
    let mut parts = Vec::new();
    let mut start = lo;
    if start == 0 {
        parts.push("0".to_owned());
        start = 1;
    }
    // Blocks `p[0-9]{k}`: `start` a multiple of 10^k, the block within `hi`; then blocks that
    // differ only in their last prefix digit are merged into one class.
    let mut blocks: Vec<(u64, u32, u64)> = Vec::new(); // (first prefix, k, last prefix)
    while start <= hi {
        let mut k = 0;
        while k + 1 < 20
            && start.is_multiple_of(10u64.pow(k + 1))
            && start
                .checked_add(10u64.pow(k + 1) - 1)
                .is_some_and(|end| end <= hi)
        {
            k += 1;
        }
        let prefix = start / 10u64.pow(k);
        match blocks.last_mut() {
            Some((p, bk, end)) if *bk == k && *end + 1 == prefix && !prefix.is_multiple_of(10) => {
                *end = prefix
            }
            _ => blocks.push((prefix, k, prefix)),
        }
        match start.checked_add(10u64.pow(k)) {
            Some(next) => start = next,
            None => break,
        }
    }
    for (first, k, last) in blocks {
        let head = first / 10;
        let head = if head == 0 {
            String::new()
        } else {
            head.to_string()
        };
        let digit = if first == last {
            (first % 10).to_string()
        } else {
            format!("[{}-{}]", first % 10, last % 10)
        };
        let tail = match k {
            0 => String::new(),
            1 => "[0-9]".to_owned(),
            k => format!("[0-9]{{{k}}}"),
        };
        parts.push(format!("{head}{digit}{tail}"));
    }
    parts.join("|")
}

impl<const MIN_MS: u64, const MAX_MS: u64> fmt::Display for ApiDuration<MIN_MS, MAX_MS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Self::show(self.0.as_millis() as u64))
    }
}

impl<'de, const MIN_MS: u64, const MAX_MS: u64> Deserialize<'de> for ApiDuration<MIN_MS, MAX_MS> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ApiDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> Serialize for ApiDuration<MIN_MS, MAX_MS> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> utoipa::PartialSchema for ApiDuration<MIN_MS, MAX_MS> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(Self::pattern()))
            .description(Some(format!(
                "a duration from {} to {}: one whole number and one unit (ms, s, m, h or d)",
                Self::show(MIN_MS),
                Self::show(MAX_MS)
            )))
            .examples([serde_json::Value::from(Self::show(
                MAX_MS.min(15_000).max(MIN_MS),
            ))])
            .into()
    }
}

impl<const MIN_MS: u64, const MAX_MS: u64> utoipa::ToSchema for ApiDuration<MIN_MS, MAX_MS> {
    fn name() -> std::borrow::Cow<'static, str> {
        format!("Duration{}To{}", Self::show(MIN_MS), Self::show(MAX_MS)).into()
    }
}
