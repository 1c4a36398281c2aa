//! Refusals a client can read, through a client that streams its body the way Python's urllib
//! does (all of it first, then the answer): an oversized body on any endpoint is answered with
//! the 413 JSON error, never a reset mid-upload; JSON nested deeper than 64 levels is a 400
//! naming the field, or for a third party's webhook kept as text; a refused request writes
//! nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const LIMIT: usize = 64 * 1024;

/// An answer read off the socket.
struct Answer {
    status: u16,
    body: Value,
    text: String,
}

/// Sends one request on a new connection: the headers, then the whole body in 16 KB writes
/// (`chunked` sends it with chunked transfer encoding instead of a length), and only then
/// reads the answer. A server that closes while the body is still coming makes a write fail.
fn stream(
    d: &Daemon,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> Answer {
    let addr = d.base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if chunked {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    }
    let what = format!("{method} {path} ({} bytes)", body.len());
    socket
        .write_all(head.as_bytes())
        .unwrap_or_else(|e| panic!("{what}: headers: {e}"));
    for piece in body.chunks(16 * 1024) {
        let sent = if chunked {
            socket
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .and_then(|()| socket.write_all(piece))
                .and_then(|()| socket.write_all(b"\r\n"))
        } else {
            socket.write_all(piece)
        };
        sent.unwrap_or_else(|e| panic!("{what}: the server stopped reading the body: {e}"));
    }
    if chunked {
        socket
            .write_all(b"0\r\n\r\n")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{what}: not an HTTP answer: {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: answer without content-length: {headers:?}"));
    let mut bytes = vec![0; length];
    reader
        .read_exact(&mut bytes)
        .unwrap_or_else(|e| panic!("{what}: answer body: {e}"));
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Everything `prod` stores, as its export (operations and messages, with the end line's counts).
fn stored(d: &Daemon) -> String {
    let export = d.get(&format!("{PROD}/export"), ADMIN);
    assert_eq!(export.status, 200, "{}", export.text);
    export.text
}

fn assert_error(answer: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(
        (answer.status, answer.body["error"]["code"].as_str()),
        (status, Some(code)),
        "{what}: {}",
        answer.text
    );
    let message = answer.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.len() > 20,
        "{what}: a message a person can act on: {}",
        answer.text
    );
}

#[test]
fn limits_oversized_bodies_are_answered_with_413_not_a_reset() {
    let d = Daemon::start_with(|c| {
        c.server.max_body_bytes = LIMIT;
        c.ingest.incoming_webhook_max_bytes = LIMIT;
    });
    let op = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let ingress = d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = stored(&d);
    let auth = bearer(ADMIN);
    let json_type = ("content-type", "application/json");
    let with_auth = [("authorization", auth.as_str()), json_type];
    // 2 MiB: far past the limit, and past the socket buffers, so a server that stops reading
    // early makes the writes below fail (as Python's urllib reports, "broken pipe").
    let big = format!(
        "{{\"type\":\"sync\",\"message\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let ndjson_type = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-ndjson"),
    ];
    let reading = [
        ("POST", format!("{PROD}/operations"), &with_auth[..]),
        ("PATCH", format!("{PROD}/operations/{op}"), &with_auth[..]),
        (
            "POST",
            format!("{PROD}/operations/{op}/messages"),
            &with_auth[..],
        ),
        ("POST", format!("{PROD}/messages"), &with_auth[..]),
        ("PUT", format!("{PROD}/settings"), &with_auth[..]),
        ("POST", format!("{PROD}/import"), &ndjson_type[..]),
        ("POST", "/v1/session".to_owned(), &[json_type][..]),
        (
            "POST",
            format!("/v1/hooks/{ingress}/github"),
            &[json_type][..],
        ),
    ];
    for (method, path, headers) in &reading {
        for chunked in [false, true] {
            let what = format!("{method} {path} (chunked: {chunked})");
            let answer = stream(&d, method, path, headers, big.as_bytes(), chunked);
            assert_error(&answer, 413, "body_too_large", &what);
            assert!(
                answer.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&LIMIT.to_string()),
                "{what}: names the limit: {}",
                answer.text
            );
        }
    }

    // Endpoints that refuse before reading (no token, an unknown ingress token, a route that
    // takes no body, no route at all) still read the body before they answer.
    let not_reading = [
        ("POST", format!("{PROD}/operations"), 401, "unauthorized"),
        (
            "POST",
            "/v1/hooks/not-a-token/github".to_owned(),
            404,
            "hook_not_found",
        ),
        ("POST", "/v1/nowhere".to_owned(), 404, "route_not_found"),
        (
            "DELETE",
            format!("{PROD}/operations"),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, status, code) in &not_reading {
        let answer = stream(&d, method, path, &[json_type], big.as_bytes(), false);
        assert_error(&answer, *status, code, &format!("{method} {path}"));
    }
    let answer = stream(
        &d,
        "POST",
        &format!("{PROD}/deliveries/replay?from=2026-01-01T00:00:00Z"),
        &with_auth,
        big.as_bytes(),
        false,
    );
    assert_eq!(
        answer.status, 202,
        "a body the endpoint ignores: {}",
        answer.text
    );

    assert_eq!(stored(&d), before, "a refused request writes nothing");
}

#[test]
fn limits_python_urllib_reads_the_413() {
    let d = Daemon::start_with(|c| c.server.max_body_bytes = LIMIT);
    let script = r#"
import json, sys, urllib.error, urllib.request
url, token = sys.argv[1], sys.argv[2]
body = json.dumps({"type": "sync", "message": "x" * (8 * 65536)}).encode()
request = urllib.request.Request(url, data=body, method="POST", headers={
    "authorization": "Bearer " + token, "content-type": "application/json"})
try:
    urllib.request.urlopen(request, timeout=30)
    print("accepted")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script, &d.url(&format!("{PROD}/operations")), ADMIN])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "urllib failed (a reset shows as a broken pipe): {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (status, body) = stdout.trim().split_once(' ').expect("a status and a body");
    assert_eq!(status, "413", "{stdout}");
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["error"]["code"], "body_too_large", "{stdout}");
}

/// `{"a":{"a":...{"a":1}...}}`: `levels` objects deep.
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(1), |inner, _| json!({ "a": inner }))
}

/// The same, as text (serde_json's own writer recurses; this does not).
fn nested_text(levels: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
}

#[test]
fn limits_json_deeper_than_64_levels_is_refused_with_its_field() {
    let d = Daemon::start();
    let op = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let before = stored(&d);
    let auth = bearer(PROD_KEY);
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let deep = nested_text(5_000);
    let just_over = nested_text(65);
    let cases = [
        (
            "POST",
            format!("{PROD}/operations"),
            format!(r#"{{"type":"sync","meta":{deep}}}"#),
            "meta",
        ),
        (
            "POST",
            format!("{PROD}/operations"),
            format!(r#"{{"type":"sync","meta":{just_over}}}"#),
            "meta",
        ),
        (
            "POST",
            format!("{PROD}/operations"),
            format!(r#"{{"type":"sync","error":{{"message":"m","payload":{deep}}}}}"#),
            "error.payload",
        ),
        (
            "PATCH",
            format!("{PROD}/operations/{op}"),
            format!(r#"{{"request":{{"method":"GET","url":"/","body":{deep}}}}}"#),
            "request.body",
        ),
        (
            "POST",
            format!("{PROD}/operations/{op}/messages"),
            format!(r#"{{"message":"m","meta":{deep}}}"#),
            "meta",
        ),
        (
            "POST",
            format!("{PROD}/operations/{op}/messages"),
            format!(
                r#"[{{"message":"ok"}},{{"message":"m","response":{{"status":200,"body":{just_over}}}}}]"#
            ),
            "[1].response.body",
        ),
        (
            "POST",
            format!("{PROD}/messages"),
            format!(
                r#"[{{"operation_id":"{op}","message":"ok"}},{{"operation_id":"{op}","message":"m","meta":{deep}}}]"#
            ),
            "[1].meta",
        ),
    ];
    for (method, path, body, field) in &cases {
        let what = format!("{method} {path} with {field} too deep");
        let answer = stream(&d, method, path, &headers, body.as_bytes(), false);
        assert_error(&answer, 400, "invalid_field", &what);
        assert_eq!(
            answer.body["error"]["field"], *field,
            "{what}: {}",
            answer.text
        );
        assert!(
            answer.text.contains("64 levels"),
            "{what}: says the bound: {}",
            answer.text
        );
    }
    // Deep JSON where no free-form value is expected is refused too (settings need the admin
    // token).
    let admin = bearer(ADMIN);
    let admin_headers = [
        ("authorization", admin.as_str()),
        ("content-type", "application/json"),
    ];
    let answer = stream(
        &d,
        "PUT",
        &format!("{PROD}/settings"),
        &admin_headers,
        format!(r#"{{"webhooks":{deep}}}"#).as_bytes(),
        false,
    );
    assert_eq!(answer.status, 400, "{}", answer.text);
    // An import line with a deep `meta` is refused as a whole.
    let line = json!({"operation": d.get(&format!("{PROD}/operations/{op}"), ADMIN).body});
    let line = line.to_string().replace(
        r#""message_count":0"#,
        &format!(r#""message_count":0,"meta":{just_over}"#),
    );
    let admin = bearer(ADMIN);
    let answer = stream(
        &d,
        "POST",
        &format!("{PROD}/import"),
        &[
            ("authorization", admin.as_str()),
            ("content-type", "application/x-ndjson"),
        ],
        line.as_bytes(),
        false,
    );
    assert_error(
        &answer,
        400,
        "invalid_import_line",
        "an import line with a deep meta",
    );
    assert!(answer.text.contains("64 levels"), "{}", answer.text);
    assert_eq!(stored(&d), before, "a refused request writes nothing");

    // 64 levels is stored and read back as sent.
    let meta = nested(64);
    let r = d.post(
        &format!("{PROD}/operations"),
        PROD_KEY,
        &json!({"type": "sync", "meta": meta}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap();
    let back = d.get(&format!("{PROD}/operations/{id}"), PROD_KEY);
    assert_eq!(back.body["meta"], meta);
}

#[test]
fn limits_ingress_keeps_a_too_deep_webhook_body_as_text() {
    let d = Daemon::start();
    let token = d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (levels, as_json) in [(64, true), (65, false), (5_000, false)] {
        let body = nested_text(levels);
        let answer = stream(
            &d,
            "POST",
            &format!("/v1/hooks/{token}/github"),
            &[("content-type", "application/json")],
            body.as_bytes(),
            false,
        );
        assert_eq!(answer.status, 200, "{levels} levels: {}", answer.text);
        let id = answer.body["operation_id"].as_str().unwrap();
        let op = d.get(&format!("{PROD}/operations/{id}"), ADMIN);
        assert_eq!(op.status, 200, "{}", op.text);
        let stored = &op.body["request"]["body"];
        if as_json {
            assert_eq!(*stored, nested(levels), "{levels} levels are kept as JSON");
        } else {
            assert_eq!(
                stored.as_str(),
                Some(body.as_str()),
                "{levels} levels: as text"
            );
        }
    }
}
