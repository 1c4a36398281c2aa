//! CSV answers of `GET /operations` and `GET /messages` (`Accept: text/csv` or `format=csv`):
//! every match of the query, not one page, newest first, as RFC 4180 (CRLF line ends, fields
//! quoted when they hold a comma, a quote or a line break) with a header row. Each column is a
//! field of the JSON answer: text as is, numbers and booleans as JSON writes them, objects and
//! arrays as compact JSON, nothing for null. Text that a spreadsheet would take for a formula
//! (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, as OWASP
//! advises against CSV injection: the logged text comes from third parties.

use axum::http::{header, HeaderMap};
use serde_json::Value;

use super::error::ApiError;

pub const CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// A column: its header and where its value is in an item's JSON (a JSON pointer).
pub type Column = (&'static str, &'static str);

pub const OPERATION_COLUMNS: &[Column] = &[
    ("id", "/id"),
    ("type", "/type"),
    ("action", "/action"),
    ("state", "/state"),
    ("integration", "/integration"),
    ("connection_id", "/connection_id"),
    ("end_user_id", "/end_user/id"),
    ("script", "/script"),
    ("provider", "/provider"),
    ("message", "/message"),
    ("error", "/error/message"),
    ("created_at", "/created_at"),
    ("started_at", "/started_at"),
    ("ended_at", "/ended_at"),
    ("duration_ms", "/duration_ms"),
    ("message_count", "/message_count"),
    ("tags", "/tags"),
];

pub const MESSAGE_COLUMNS: &[Column] = &[
    ("id", "/id"),
    ("operation_id", "/operation_id"),
    ("created_at", "/created_at"),
    ("level", "/level"),
    ("type", "/type"),
    ("source", "/source"),
    ("message", "/message"),
    ("method", "/request/method"),
    ("url", "/request/url"),
    ("status", "/response/status"),
    ("duration_ms", "/duration_ms"),
    ("error", "/error/message"),
    ("operation_type", "/operation/type"),
    ("integration", "/operation/integration"),
    ("connection_id", "/operation/connection_id"),
];

/// One operation's messages (`GET /operations/{id}/messages`): the message columns alone.
pub const OPERATION_MESSAGE_COLUMNS: &[Column] = MESSAGE_COLUMNS.split_at(12).0;

/// Whether the request asks for CSV, and its query without `format` (which the JSON list does
/// not take). `format` is `csv` or `json`; anything else is refused naming it.
pub fn negotiate(
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<(bool, Option<String>), ApiError> {
    let mut format = None;
    let mut rest = form_urlencoded::Serializer::new(String::new());
    let mut kept = 0;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "format" {
            format = Some(value.into_owned());
        } else {
            rest.append_pair(&key, &value);
            kept += 1;
        }
    }
    let accepts_csv = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| media.split(';').next().unwrap_or("").trim() == "text/csv");
    let csv = match format.as_deref() {
        None => accepts_csv,
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`format` is `{other}`; use `csv` or `json`"),
            )
            .with_field("format"))
        }
    };
    let query = if format.is_none() {
        query.map(str::to_owned)
    } else {
        (kept > 0).then(|| rest.finish())
    };
    Ok((csv, query))
}

/// The header row.
pub fn header_row(columns: &[Column], out: &mut String) {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    row(names.iter().copied(), out);
}

/// `item`'s row.
pub fn item_row(columns: &[Column], item: &Value, out: &mut String) {
    let cells: Vec<String> = columns
        .iter()
        .map(|(_, pointer)| cell(item.pointer(pointer)))
        .collect();
    row(cells.iter().map(String::as_str), out);
}

fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => neutralised(s),
        Some(other) => other.to_string(),
    }
}

/// `text` as a spreadsheet shows it and never evaluates it: prefixed with `'` when it starts
/// with a character that begins a formula.
fn neutralised(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn row<'a>(fields: impl Iterator<Item = &'a str>, out: &mut String) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let mut out = String::new();
        let columns: &[Column] = &[("a", "/a"), ("b", "/b/c"), ("d", "/d"), ("e", "/e")];
        header_row(columns, &mut out);
        item_row(
            columns,
            &json!({"a": "say \"hi\", then\r\nleave", "b": {"c": 3}, "d": {"k": [1]}, "e": null}),
            &mut out,
        );
        assert_eq!(
            out,
            "a,b,d,e\r\n\"say \"\"hi\"\", then\r\nleave\",3,\"{\"\"k\"\":[1]}\",\r\n"
        );
    }

    #[test]
    fn text_that_starts_a_formula_is_prefixed_with_a_quote() {
        let columns: &[Column] = &[("a", "/a"), ("b", "/b"), ("c", "/c"), ("d", "/d")];
        let mut out = String::new();
        item_row(
            columns,
            &json!({"a": "=HYPERLINK(\"http://x\")", "b": "@SUM(A1)", "c": -3, "d": "a=b"}),
            &mut out,
        );
        assert_eq!(
            out,
            "\"'=HYPERLINK(\"\"http://x\"\")\",'@SUM(A1),-3,a=b\r\n"
        );
        for text in ["+1", "-1", "\tx", "\rx"] {
            let mut out = String::new();
            item_row(&columns[..1], &json!({ "a": text }), &mut out);
            assert!(out.starts_with("'") || out.starts_with("\"'"), "{out:?}");
        }
    }

    #[test]
    fn csv_is_asked_for_by_accept_or_format_and_format_leaves_the_query() {
        let mut headers = HeaderMap::new();
        let (csv, query) = negotiate(&headers, Some("q=x&format=csv&limit=5")).unwrap();
        assert!(csv);
        assert_eq!(query.as_deref(), Some("q=x&limit=5"));
        assert_eq!(
            negotiate(&headers, Some("format=csv")).unwrap(),
            (true, None)
        );
        assert_eq!(
            negotiate(&headers, Some("q=x")).unwrap(),
            (false, Some("q=x".into()))
        );
        headers.insert(header::ACCEPT, "text/csv;q=0.9, */*".parse().unwrap());
        assert!(negotiate(&headers, None).unwrap().0);
        assert!(!negotiate(&headers, Some("format=json")).unwrap().0);
        let refused = negotiate(&headers, Some("format=xml")).unwrap_err();
        assert!(format!("{refused:?}").contains("format"));
    }
}
