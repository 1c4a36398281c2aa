//! The portable form of an environment's operations and messages, written by `opslog export`
//! (GET /export) and read by `opslog import` (POST /import): newline-delimited JSON, one
//! `{"operation":{...}}` line per operation followed by one `{"message":{...}}` line per message
//! of it (oldest first), and a closing `{"end":{"operations":N,"messages":M}}` line, so a reader
//! can tell a complete file from a truncated one. Records are the API's JSON with their ids:
//! importing the same file twice adds nothing the second time.
//!
//! Must not: write to the store (imports go through `write`), or hold a write lock.

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::model::{Message, Operation, Timestamp};
use crate::store::{id_range, ReadTx, StoreError};

/// The media type of an export.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// One line of an export.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[schema(as = ExportLine)]
pub enum Line {
    Operation(Box<Operation>),
    Message(Box<Message>),
    End(End),
}

/// The closing line: how many operation and message lines came before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ExportEnd)]
pub struct End {
    #[serde(deserialize_with = "crate::model::whole")]
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub operations: u64,
    #[serde(deserialize_with = "crate::model::whole")]
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub messages: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the export: {0}")]
    Output(#[from] std::io::Error),
}

/// Writes every operation of `environment` created in `[from, to]`, each followed by its
/// messages, then the end line, all from the one snapshot `read`. On error `out` holds a prefix
/// without the end line.
pub fn write_export(
    read: &ReadTx,
    environment: &str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    out: &mut impl Write,
) -> Result<End, ExportError> {
    let (low, high) = id_range(from, to);
    let mut end = End::default();
    // The store callbacks speak `StoreError`; an output failure is carried out beside them.
    let mut failed: Option<std::io::Error> = None;
    let mut emit = |line: &Line, out: &mut dyn Write| -> Result<(), StoreError> {
        let written = serde_json::to_writer(&mut *out, line)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        written.map_err(|e| {
            failed = Some(e);
            StoreError::Storage("the export's reader went away".into())
        })
    };
    let scanned = read.scan_operations(low, high, |operation| {
        if operation.environment != environment {
            return Ok(());
        }
        let id = operation.id;
        emit(&Line::Operation(Box::new(operation)), out)?;
        end.operations += 1;
        read.for_each_message_of(id, |message| {
            emit(&Line::Message(Box::new(message)), out)?;
            end.messages += 1;
            Ok(())
        })
    });
    if let Some(e) = failed {
        return Err(ExportError::Output(e));
    }
    scanned?;
    serde_json::to_writer(&mut *out, &Line::End(end)).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(end)
}

/// Parses one line of an export; the error says what is wrong with it.
pub fn parse_line(text: &str) -> Result<Line, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "not an export line ({e}); expected {{\"operation\":...}}, {{\"message\":...}} or {{\"end\":...}}"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests_support::sample_operation;

    #[test]
    fn lines_round_trip_and_bad_lines_say_what_is_expected() {
        let operation = sample_operation();
        let text = serde_json::to_string(&Line::Operation(Box::new(operation.clone()))).unwrap();
        assert!(text.starts_with(r#"{"operation":{"id":""#), "{text}");
        match parse_line(&text).unwrap() {
            Line::Operation(parsed) => assert_eq!(*parsed, operation),
            other => panic!("{other:?}"),
        }
        let end = parse_line(r#"{"end":{"operations":2,"messages":5}}"#).unwrap();
        assert!(matches!(
            end,
            Line::End(End {
                operations: 2,
                messages: 5
            })
        ));
        let err = parse_line(r#"{"operations":{}}"#).unwrap_err();
        assert!(err.contains("expected {\"operation\""), "{err}");
        assert!(parse_line("{\"message\":").is_err());
    }
}
