//! Terminal output: aligned columns for people (colored only when stdout is a terminal and
//! `NO_COLOR` is unset) or one JSON object per line for programs. Never decides what to fetch.

use std::io::{IsTerminal, Write};

use serde_json::Value;

/// One cell of a row: its plain text and an optional ANSI color for it.
struct Cell {
    text: String,
    color: Option<&'static str>,
}

fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        color: None,
    }
}

const RED: &str = "31";
const YELLOW: &str = "33";
const GREEN: &str = "32";
const DIM: &str = "2";
const CYAN: &str = "36";

pub struct Printer {
    json: bool,
    color: bool,
    out: std::io::StdoutLock<'static>,
}

impl Printer {
    pub fn new(json: bool) -> Printer {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Printer {
            json,
            color,
            out: std::io::stdout().lock(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints messages (search hits or one operation's messages) as a table sized to them.
    pub fn messages(&mut self, messages: &[Value]) -> std::io::Result<()> {
        if self.json {
            return self.json_lines(messages);
        }
        let rows: Vec<Vec<Cell>> = messages.iter().map(message_cells).collect();
        self.table(&rows)
    }

    /// Prints operations as a table sized to them.
    pub fn operations(&mut self, operations: &[Value]) -> std::io::Result<()> {
        if self.json {
            return self.json_lines(operations);
        }
        let rows: Vec<Vec<Cell>> = operations.iter().map(operation_cells).collect();
        self.table(&rows)
    }

    /// Prints messages as they stream in, with fixed column widths so lines stay aligned.
    pub fn stream(&mut self, messages: &[Value]) -> std::io::Result<()> {
        if self.json {
            return self.json_lines(messages);
        }
        const WIDTHS: [usize; 5] = [23, 5, 16, 12, 16];
        for message in messages {
            let row = message_cells(message);
            self.row(&row, &WIDTHS)?;
        }
        self.out.flush()
    }

    fn json_lines(&mut self, items: &[Value]) -> std::io::Result<()> {
        for item in items {
            serde_json::to_writer(&mut self.out, item)?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }

    fn table(&mut self, rows: &[Vec<Cell>]) -> std::io::Result<()> {
        let columns = rows.first().map_or(0, Vec::len);
        let widths: Vec<usize> = (0..columns.saturating_sub(1))
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].text.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in rows {
            self.row(row, &widths)?;
        }
        self.out.flush()
    }

    /// Writes `row`, padding every cell but the last to its width (the last one runs free).
    fn row(&mut self, row: &[Cell], widths: &[usize]) -> std::io::Result<()> {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            let pad = if last {
                0
            } else {
                widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(c.text.chars().count())
            };
            match (self.color, c.color) {
                (true, Some(code)) => line.push_str(&format!("\x1b[{code}m{}\x1b[0m", c.text)),
                _ => line.push_str(&c.text),
            }
            if !last {
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        writeln!(self.out, "{}", line.trim_end())
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("-").to_owned()
}

/// `2026-11-01T12:00:01.123Z` as `2026-11-01 12:00:01.123` (UTC; the width stays fixed).
fn time(value: &Value) -> String {
    value
        .as_str()
        .map(|t| t.trim_end_matches('Z').replacen('T', " ", 1))
        .unwrap_or_else(|| "-".into())
}

/// The text on one line: newlines and tabs would break the columns.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn level_color(level: &str) -> Option<&'static str> {
    match level {
        "error" => Some(RED),
        "warn" => Some(YELLOW),
        "debug" => Some(DIM),
        _ => None,
    }
}

fn state_color(state: &str) -> Option<&'static str> {
    match state {
        "success" => Some(GREEN),
        "failed" | "timeout" => Some(RED),
        "cancelled" => Some(YELLOW),
        _ => Some(CYAN),
    }
}

fn kind(value: &Value) -> String {
    match (value["type"].as_str(), value["action"].as_str()) {
        (Some(t), Some(a)) => format!("{t}:{a}"),
        (Some(t), None) => t.to_owned(),
        _ => "-".into(),
    }
}

/// time, level, operation kind, integration, connection, message. A search hit carries its
/// operation; one operation's messages do not (those columns show `-`).
fn message_cells(message: &Value) -> Vec<Cell> {
    let level = text(&message["level"]);
    let op = &message["operation"];
    vec![
        Cell {
            text: time(&message["created_at"]),
            color: Some(DIM),
        },
        Cell {
            color: level_color(&level),
            text: level,
        },
        cell(if op.is_object() { kind(op) } else { "-".into() }),
        cell(text(&op["integration"])),
        cell(text(&op["connection_id"])),
        cell(one_line(message["message"].as_str().unwrap_or(""))),
    ]
}

/// created, state, kind, integration, connection, script, duration, id, title.
fn operation_cells(op: &Value) -> Vec<Cell> {
    let state = text(&op["state"]);
    let duration = op["duration_ms"]
        .as_u64()
        .map(format_duration)
        .unwrap_or_else(|| "-".into());
    vec![
        Cell {
            text: time(&op["created_at"]),
            color: Some(DIM),
        },
        Cell {
            color: state_color(&state),
            text: state,
        },
        cell(kind(op)),
        cell(text(&op["integration"])),
        cell(text(&op["connection_id"])),
        cell(text(&op["script"])),
        cell(duration),
        cell(text(&op["id"])),
        cell(one_line(op["message"].as_str().unwrap_or(""))),
    ]
}

fn format_duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1_000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        _ => format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn message_row_names_its_operation() {
        let row = message_cells(&json!({
            "created_at": "2026-11-01T12:00:01.123Z", "level": "warn", "message": "a\nb",
            "operation": {"type": "sync", "action": "run", "integration": "github"}
        }));
        let texts: Vec<&str> = row.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "2026-11-01 12:00:01.123",
                "warn",
                "sync:run",
                "github",
                "-",
                "a b"
            ]
        );
        assert_eq!(row[1].color, Some(YELLOW));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(250), "250ms");
        assert_eq!(format_duration(1_500), "1.5s");
        assert_eq!(format_duration(125_000), "2m05s");
    }
}
