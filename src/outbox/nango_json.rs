//! JSON printed byte for byte as Nango prints its webhook bodies: `stringifyStable` of
//! fast-safe-stringify, which copies each object with its keys sorted (JavaScript's default sort:
//! by UTF-16 code units) and prints the copy with `JSON.stringify`. `JSON.stringify` itself puts
//! array-index keys (`"0"`, `"17"`) first, in numeric order, and prints every number as
//! ECMAScript's `Number::toString` does (`1.0` is `1`, `1e21` is `1e+21`, integers past 2^53
//! rounded to the nearest double).
//!
//! Both of Nango's signature checks depend on it: `verifyIncomingWebhookRequest` hashes the bytes
//! received, the legacy `verifyWebhookSignature` hashes `JSON.stringify(JSON.parse(body))`, so a
//! body verifies with both only when it already is what `JSON.stringify` prints.
//!
//! Must not: do I/O.

use std::cmp::Ordering;

use serde_json::Value;

/// `value` as Nango's `stringifyStable` prints it: compact, keys in Nango's order, numbers as
/// JavaScript prints them.
pub fn stringify(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            let mut keys: Vec<&String> = fields.keys().collect();
            keys.sort_by(|a, b| js_key_order(a, b));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write(&fields[key], out);
            }
            out.push('}');
        }
    }
}

/// The order `JSON.stringify` prints the keys of an object built in sorted order: array indices
/// first by value, then the others by UTF-16 code units (JavaScript's string comparison).
fn js_key_order(a: &str, b: &str) -> Ordering {
    match (array_index(a), array_index(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// `key` as an ECMAScript array index: the canonical decimal text of an integer below 2^32 - 1.
fn array_index(key: &str) -> Option<u32> {
    let canonical = key == "0" || (!key.starts_with('0') && !key.is_empty());
    if !canonical || key.len() > 10 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u64>()
        .ok()
        .filter(|n| *n < u64::from(u32::MAX))
        .map(|n| n as u32)
}

/// A JSON number as JavaScript holds it (the nearest double) and prints it.
fn write_number(n: &serde_json::Number, out: &mut String) {
    // `as f64` rounds an integer to the nearest double, as JSON.parse does with its digits.
    let double = match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u as f64,
        (None, Some(i)) => i as f64,
        _ => n.as_f64().unwrap_or(f64::NAN),
    };
    if double.is_finite() {
        out.push_str(ryu_js::Buffer::new().format_finite(double));
    } else {
        out.push_str("null");
    }
}

/// serde_json escapes strings as `JSON.stringify` does: `"`, `\`, and the control characters
/// (`\b \t \n \f \r`, the others as lowercase `\u00xx`); nothing else.
fn write_string(text: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(text).expect("a string always serializes"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printed(json: &str) -> String {
        stringify(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        for (json, js) in [
            ("1.0", "1"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("2.50", "2.5"),
            ("1e21", "1e+21"),
            ("1E5", "100000"),
            ("123456789012345678901", "123456789012345680000"),
            ("12345678901234567890", "12345678901234567000"),
            ("9007199254740993", "9007199254740992"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("1.5e-10", "1.5e-10"),
            ("0.30000000000000004", "0.30000000000000004"),
            ("-1.7976931348623157e308", "-1.7976931348623157e+308"),
            ("5e-324", "5e-324"),
            ("100", "100"),
            ("-42", "-42"),
        ] {
            assert_eq!(printed(json), js, "{json}");
        }
    }

    #[test]
    fn keys_are_sorted_with_array_indices_first() {
        assert_eq!(
            printed(r#"{"b":1,"a":{"z":true,"y":null},"10":2,"9":3,"09":4,"4294967295":5,"A":6}"#),
            r#"{"9":3,"10":2,"09":4,"4294967295":5,"A":6,"a":{"y":null,"z":true},"b":1}"#
        );
        // UTF-16 order: U+FF61 (one unit, 0xFF61) after U+1F600 (surrogates from 0xD83D).
        assert_eq!(printed(r#"{"｡":1,"😀":2}"#), r#"{"😀":2,"｡":1}"#);
    }

    #[test]
    fn strings_escape_as_json_stringify_does() {
        assert_eq!(
            printed(r#"["a\"b\\c\n\t\u0001\u001f\u007f/é\u2028"]"#),
            "[\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\u{7f}/é\u{2028}\"]"
        );
    }
}
