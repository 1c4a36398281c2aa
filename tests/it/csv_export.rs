//! CSV of `GET /operations` and `GET /messages`: every match (more than a page), parsed by
//! Python's `csv` module and compared field by field with the JSON answer of the same query.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::support::*;

const PROD: &str = "/v1/environments/prod";

/// The rows of `csv` as Python's `csv` module reads them (a list of lists of strings).
fn python_rows(csv: &str) -> Vec<Vec<String>> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import csv, io, json, sys\n\
             data = sys.stdin.buffer.read().decode('utf-8')\n\
             print(json.dumps(list(csv.reader(io.StringIO(data, newline='')))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(csv.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every item of the JSON list `path`, following `next_cursor`.
fn every_item(d: &Daemon, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut url = format!("{path}&limit=100");
    for _ in 0..1_000 {
        let page = d.get(&url, PROD_KEY);
        assert_eq!(page.status, 200, "{}", page.text);
        items.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => url = format!("{path}&limit=100&cursor={}", urlencoding::encode(c)),
            None => return items,
        }
    }
    panic!("more pages than the test wrote");
}

/// What a JSON value looks like in a CSV cell.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compares the CSV rows with the JSON items, column by column (`columns` maps a header to a
/// JSON pointer).
fn assert_same(rows: &[Vec<String>], items: &[Value], columns: &[(&str, &str)]) {
    let header: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    assert_eq!(rows[0], header);
    assert_eq!(rows.len() - 1, items.len(), "one row per match");
    for (row, item) in rows[1..].iter().zip(items) {
        for ((name, pointer), field) in columns.iter().zip(row) {
            let expected = item.pointer(pointer).map(cell).unwrap_or_default();
            assert_eq!(field, &expected, "column {name} of {item}");
        }
    }
}

#[test]
fn csv_holds_every_match_and_python_reads_what_the_json_says() {
    let d = Daemon::start();
    // 250 operations (more than the JSON page of 100, and than a CSV page would need), with
    // text that needs quoting: commas, quotes, line breaks, non-ASCII.
    for batch in 0..5 {
        let ops: Vec<Value> = (0..50)
            .map(|i| {
                json!({"type": "sync", "integration": "github", "connection_id": format!("c{i}"),
                       "end_user": {"id": "u, \"1\""}, "tags": {"plan": "pro"},
                       "state": "success",
                       "messages": [
                           {"message": format!("pineapple {batch}.{i}, with \"quotes\"\nand a new line — ünïcode")},
                           {"level": "error", "message": "pineapple failed",
                            "request": {"method": "GET", "url": "https://api.example.com/a,b"},
                            "response": {"status": 503}}
                       ]})
            })
            .collect();
        let reply = d.post(&format!("{PROD}/operations"), PROD_KEY, &Value::Array(ops));
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    eventually(std::time::Duration::from_secs(10), || {
        let hits = d.get(&format!("{PROD}/messages?q=pineapple&limit=1"), PROD_KEY);
        (hits.body["total"] == 500).then_some(())
    });

    let operations = d.raw(
        "GET",
        &format!("{PROD}/operations?integration=github"),
        Some(PROD_KEY),
        &[("accept", "text/csv")],
        None,
    );
    assert_eq!(operations.status, 200, "{}", operations.text);
    assert_eq!(
        operations.headers["content-type"],
        "text/csv; charset=utf-8"
    );
    assert!(operations.headers["content-disposition"].contains("operations.csv"));
    assert!(operations.text.contains("\r\n"), "RFC 4180 line ends");
    let rows = python_rows(&operations.text);
    let items = every_item(&d, &format!("{PROD}/operations?integration=github"));
    assert_eq!(items.len(), 250);
    assert_same(
        &rows,
        &items,
        &[
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
        ],
    );
    assert_eq!(rows[1][6], "u, \"1\"");

    // `format=csv` does the same, with a full-text query and a filter.
    let messages = d.get(
        &format!("{PROD}/messages?q=pineapple&level=info&format=csv"),
        PROD_KEY,
    );
    assert_eq!(messages.status, 200, "{}", messages.text);
    let rows = python_rows(&messages.text);
    let items = every_item(&d, &format!("{PROD}/messages?q=pineapple&level=info"));
    assert_eq!(items.len(), 250);
    assert_same(
        &rows,
        &items,
        &[
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
        ],
    );
    assert!(rows[1][6].contains("\"quotes\"\nand a new line — ünïcode"));
    let errors = d.get(&format!("{PROD}/messages?level=error&format=csv"), PROD_KEY);
    let rows = python_rows(&errors.text);
    assert_eq!(rows.len(), 251);
    assert_eq!(
        rows[1][7..10],
        ["GET", "https://api.example.com/a,b", "503"]
    );

    // One operation's messages (the drawer's link), oldest first, the message columns alone.
    let op = items[0]["operation_id"].as_str().unwrap();
    let own = d.get(
        &format!("{PROD}/operations/{op}/messages?format=csv"),
        PROD_KEY,
    );
    assert_eq!(own.status, 200, "{}", own.text);
    let rows = python_rows(&own.text);
    let listed = d.get(&format!("{PROD}/operations/{op}/messages"), PROD_KEY);
    let listed = listed.body["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    assert_same(
        &rows,
        &listed,
        &[
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
        ],
    );
    let missing = d.get(
        &format!("{PROD}/operations/01J0000000000000000000000Z/messages?format=csv"),
        PROD_KEY,
    );
    assert_eq!(missing.status, 404);

    // A bad `format` is refused naming it; an empty match is the header alone.
    let bad = d.get(&format!("{PROD}/operations?format=xml"), PROD_KEY);
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("format"))
    );
    let none = d.get(
        &format!("{PROD}/operations?q=nothingmatches&format=csv"),
        PROD_KEY,
    );
    assert_eq!(python_rows(&none.text).len(), 1);
    let bad_filter = d.get(
        &format!("{PROD}/operations?state=nope&format=csv"),
        PROD_KEY,
    );
    assert_eq!(bad_filter.status, 400, "{}", bad_filter.text);

    // Text a spreadsheet would evaluate (logged from third parties) comes back with a leading
    // `'` (OWASP's CSV injection advice); the JSON answer keeps it as sent, numbers stay numbers.
    let formulas = json!({"type": "sync", "integration": "sheet", "connection_id": "+cmd|' /C calc'!A0",
        "end_user": {"id": "@SUM(1+1)"}, "state": "failed", "error": {"message": "\tHYPERLINK(x)"},
        "messages": [{"level": "error", "message": "=HYPERLINK(\"http://evil.example\",\"x\")",
                      "request": {"method": "GET", "url": "-2+3"}, "response": {"status": 500},
                      "error": {"message": "\r=1+1"}}]});
    let reply = d.post(&format!("{PROD}/operations"), PROD_KEY, &formulas);
    assert_eq!(reply.status, 201, "{}", reply.text);
    let rows = eventually(std::time::Duration::from_secs(10), || {
        let csv = d.get(
            &format!("{PROD}/operations?integration=sheet&format=csv"),
            PROD_KEY,
        );
        let rows = python_rows(&csv.text);
        (rows.len() == 2).then_some(rows)
    });
    assert_eq!(
        [&rows[1][4], &rows[1][5], &rows[1][6], &rows[1][10]],
        [
            "sheet",
            "'+cmd|' /C calc'!A0",
            "'@SUM(1+1)",
            "'\tHYPERLINK(x)"
        ]
    );
    let op = rows[1][0].clone();
    let csv = d.get(
        &format!("{PROD}/operations/{op}/messages?format=csv"),
        PROD_KEY,
    );
    let rows = python_rows(&csv.text);
    assert_eq!(
        [&rows[1][6], &rows[1][8], &rows[1][9], &rows[1][11]],
        [
            "'=HYPERLINK(\"http://evil.example\",\"x\")",
            "'-2+3",
            "500",
            "'\r=1+1"
        ]
    );
    let json = d.get(&format!("{PROD}/operations/{op}/messages"), PROD_KEY);
    assert_eq!(
        json.body["data"][0]["message"],
        "=HYPERLINK(\"http://evil.example\",\"x\")"
    );
}
