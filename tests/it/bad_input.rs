//! Bad input gets a 4xx naming what to fix, and a refused request writes nothing.

use serde_json::{json, Value};

use crate::support::*;

const OPS: &str = "/v1/environments/prod/operations";

fn post_raw(d: &Daemon, path: &str, body: &[u8]) -> Reply {
    d.raw("POST", path, Some(PROD_KEY), &[], Some(body))
}

#[test]
fn malformed_json_says_where() {
    let d = Daemon::start();
    let r = post_raw(&d, OPS, b"{\"type\": \"sync\",\n \"integration\": }");
    assert_eq!((r.status, r.code()), (400, "malformed_json"));
    assert!(r.message().contains("line 2 column"), "{}", r.text);
    let truncated = post_raw(&d, OPS, b"{\"type\": \"sy");
    assert_eq!(
        (truncated.status, truncated.code()),
        (400, "malformed_json")
    );
    let empty = post_raw(&d, OPS, b"");
    assert_eq!((empty.status, empty.code()), (400, "malformed_json"));
    let utf8 = post_raw(
        &d,
        OPS,
        b"{\"type\": \"sync\", \"integration\": \"gi\xfft\"}",
    );
    assert_eq!((utf8.status, utf8.code()), (400, "invalid_utf8"));
    assert!(utf8.message().contains("offset 35"), "{}", utf8.text);
    let deep = "[".repeat(100_000);
    let r = post_raw(
        &d,
        &format!("{OPS}/01ARZ3NDEKTSV4RRFFQ69G5FAV/messages"),
        deep.as_bytes(),
    );
    assert_eq!(
        r.status, 400,
        "deep nesting is refused, not a crash: {}",
        r.text
    );
}

#[test]
fn wrong_fields_are_named() {
    let d = Daemon::start();
    let r = d.post(
        OPS,
        PROD_KEY,
        &json!({"type": "sync", "integraton": "github"}),
    );
    assert_eq!((r.status, r.code()), (400, "invalid_field"));
    assert!(
        r.message().contains("unknown field `integraton`"),
        "{}",
        r.text
    );
    assert!(
        r.message().contains("integration"),
        "suggests the known fields: {}",
        r.text
    );

    let r = d.post(OPS, PROD_KEY, &json!({"type": "cron"}));
    assert_eq!(r.body["error"]["field"], "type");
    for allowed in ["sync", "action", "webhook", "auth", "proxy"] {
        assert!(
            r.message().contains(allowed),
            "lists allowed values: {}",
            r.text
        );
    }

    let r = d.post(
        OPS,
        PROD_KEY,
        &json!({"type": "sync", "records": [{"model": "Issue", "added": "many"}]}),
    );
    assert_eq!(r.body["error"]["field"], "records[0].added", "{}", r.text);

    let r = d.post(OPS, PROD_KEY, &json!({"integration": "github"}));
    assert!(r.message().contains("missing field `type`"), "{}", r.text);

    let r = d.post(
        OPS,
        PROD_KEY,
        &json!({"type": "sync", "started_at": "last tuesday"}),
    );
    assert_eq!(r.body["error"]["field"], "started_at");
    assert!(r.message().contains("RFC 3339"), "{}", r.text);

    let r = post_raw(
        &d,
        OPS,
        br#"{"type": "sync", "records": [{"model": "x", "added": 1e400}]}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text);

    let id = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let r = d.post(
        &format!("{OPS}/{id}/messages"),
        PROD_KEY,
        &json!([{"message": "ok"}, {"message": "bad", "level": "fatal"}]),
    );
    assert_eq!(r.body["error"]["field"], "[1].level", "{}", r.text);
    assert!(r.message().contains("warn"), "{}", r.text);
    let r = d.post(
        &format!("{OPS}/{id}/messages"),
        PROD_KEY,
        &json!([{"message": "ok"}, {"level": "warn"}]),
    );
    assert_eq!(r.body["error"]["field"], "[1].message", "{}", r.text);
    assert_eq!(
        d.get(&format!("{OPS}/{id}"), PROD_KEY).body["message_count"],
        0,
        "refused batches write nothing"
    );

    let r = d.patch(
        &format!("{OPS}/{id}"),
        PROD_KEY,
        &json!({"state": "finished"}),
    );
    assert_eq!(r.body["error"]["field"], "state");
    let r = d.patch(
        &format!("{OPS}/{id}"),
        PROD_KEY,
        &json!({"ended_at": "2026-11-25T10:00:00Z"}),
    );
    assert_eq!(r.body["error"]["field"], "ended_at");
}

#[test]
fn unknown_ids_and_routes() {
    let d = Daemon::start();
    let missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let r = d.get(&format!("{OPS}/{missing}"), PROD_KEY);
    assert_eq!((r.status, r.code()), (404, "operation_not_found"));
    let r = d.post(
        &format!("{OPS}/{missing}/messages"),
        PROD_KEY,
        &json!({"message": "x"}),
    );
    assert_eq!((r.status, r.code()), (404, "operation_not_found"));
    let r = d.patch(
        &format!("{OPS}/{missing}"),
        PROD_KEY,
        &json!({"state": "success"}),
    );
    assert_eq!(r.status, 404);
    for bad in [
        "not-an-id",
        "..%2F..%2Fetc%2Fpasswd",
        "01ARZ3NDEKTSV4RRFFQ69G5FA%00",
    ] {
        let r = d.get(&format!("{OPS}/{bad}"), PROD_KEY);
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_id"),
            "{bad}: {}",
            r.text
        );
    }
    let r = d.get("/v1/environments/prod/nothing-here", PROD_KEY);
    assert_eq!((r.status, r.code()), (404, "route_not_found"));
    let r = d.raw(
        "DELETE",
        &format!("{OPS}/{missing}"),
        Some(PROD_KEY),
        &[],
        None,
    );
    assert_eq!((r.status, r.code()), (405, "method_not_allowed"));

    // A batch naming one unknown operation writes none of its messages.
    let id = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let r = d.post(
        "/v1/environments/prod/messages",
        PROD_KEY,
        &json!([{"operation_id": id, "message": "a"}, {"operation_id": missing, "message": "b"}]),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = d.post(
        "/v1/environments/prod/messages",
        PROD_KEY,
        &json!([{"message": "no operation"}]),
    );
    assert_eq!(r.body["error"]["field"], "[0].operation_id", "{}", r.text);
    let r = d.post(
        "/v1/environments/prod/messages",
        PROD_KEY,
        &json!({"operation_id": id, "message": "not an array"}),
    );
    assert_eq!(r.status, 400);
    assert!(r.message().contains("JSON array"), "{}", r.text);
    assert_eq!(
        d.get(&format!("{OPS}/{id}"), PROD_KEY).body["message_count"],
        0
    );
}

#[test]
fn oversized_bodies_and_batches() {
    let d = Daemon::start_with(|c| c.server.max_body_bytes = 64 * 1024);
    let id = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let big = json!({"message": "x".repeat(100 * 1024)});
    let r = d.post(&format!("{OPS}/{id}/messages"), PROD_KEY, &big);
    assert_eq!((r.status, r.code()), (413, "body_too_large"));
    assert!(r.message().contains("65536"), "{}", r.text);

    let d = Daemon::start();
    let id = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let batch: Vec<Value> = (0..1001)
        .map(|i| json!({"message": format!("m{i}")}))
        .collect();
    let r = d.post(
        &format!("{OPS}/{id}/messages"),
        PROD_KEY,
        &Value::Array(batch),
    );
    assert_eq!((r.status, r.code()), (400, "batch_too_large"));
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"message": format!("m{i}")}))
        .collect();
    let r = d.post(
        &format!("{OPS}/{id}/messages"),
        PROD_KEY,
        &Value::Array(batch),
    );
    assert_eq!(r.status, 201, "exactly 1,000 is allowed");

    let r = d.raw(
        "POST",
        OPS,
        Some(PROD_KEY),
        &[("content-type", "text/plain")],
        Some(b"{\"type\":\"sync\"}"),
    );
    assert_eq!((r.status, r.code()), (415, "unsupported_media_type"));
}

#[test]
fn long_text_and_meta_are_truncated_not_refused() {
    let d = Daemon::start();
    let id = d.start_operation("prod", PROD_KEY, &json!({"type": "action"}));
    let r = d.post(
        &format!("{OPS}/{id}/messages"),
        PROD_KEY,
        &json!({"message": "y".repeat(25_000), "meta": {"blob": "z".repeat(200_000)}}),
    );
    assert_eq!(r.status, 201, "{}", &r.text[..200.min(r.text.len())]);
    let text = r.body["message"].as_str().unwrap();
    assert!(text.chars().count() <= 10_000);
    assert!(text.contains("[truncated"), "visible marker");
    assert_eq!(r.body["meta"]["opslog_truncated"], true);
    let stored = d.get(&format!("{OPS}/{id}/messages"), PROD_KEY);
    assert_eq!(stored.body["data"][0]["message"], r.body["message"]);
}

#[test]
fn bad_query_parameters() {
    let d = Daemon::start();
    let id = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let path = format!("{OPS}/{id}/messages");
    let r = d.get(&format!("{path}?limit=0"), PROD_KEY);
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("limit"))
    );
    let r = d.get(&format!("{path}?limit=501"), PROD_KEY);
    assert_eq!(r.status, 400);
    let r = d.get(&format!("{path}?limit=ten"), PROD_KEY);
    assert_eq!(r.status, 400);
    let r = d.get(&format!("{path}?lmit=5"), PROD_KEY);
    assert_eq!(
        (r.status, r.body["error"]["field"].as_str()),
        (400, Some("lmit"))
    );
    let r = d.get(&format!("{path}?cursor=garbage"), PROD_KEY);
    assert_eq!((r.status, r.code()), (400, "invalid_cursor"));
    let r = d.get(&format!("{path}?after=garbage"), PROD_KEY);
    assert_eq!((r.status, r.code()), (400, "invalid_cursor"));
    let bad_key = [("Idempotency-Key", "")];
    let r = d.raw(
        "POST",
        OPS,
        Some(PROD_KEY),
        &bad_key,
        Some(b"{\"type\":\"sync\"}"),
    );
    assert_eq!((r.status, r.code()), (400, "invalid_idempotency_key"));
}

/// Sends raw bytes on a fresh connection and reads until the server closes it: the status and
/// body of the answer, or `None` when the connection closed without one.
fn raw_exchange(d: &Daemon, request: &[u8]) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(d.base.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    Some((status, body.unwrap_or_default()))
}

/// What every answer to hostile input must be: never a 5xx, and a 4xx says what is wrong in
/// the JSON error shape.
fn assert_sane(what: &str, r: &Reply) {
    assert!(r.status < 500, "{what}: {} {}", r.status, clip(&r.text));
    if r.status >= 400 {
        assert_eq!(
            r.headers.get("content-type").map(String::as_str),
            Some("application/json"),
            "{what}: {}",
            clip(&r.text)
        );
        let message = r.message();
        assert!(
            !message.is_empty(),
            "{what}: no error message: {}",
            clip(&r.text)
        );
    }
}

fn clip(text: &str) -> &str {
    let end = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|i| *i >= 300)
        .unwrap_or(text.len());
    &text[..end]
}

/// A daemon with one operation, its messages and a webhook delivery, and the stored state to
/// compare with after the hostile input.
struct Seeded {
    d: Daemon,
    op: String,
    delivery: String,
    token: String,
    before: Vec<String>,
}

fn seeded() -> Seeded {
    let receiver = crate::receiver::Receiver::ok();
    let url = receiver.url();
    let d = Daemon::start_with(move |c| {
        c.server.max_body_bytes = 512 * 1024;
        c.environments.get_mut("prod").unwrap().webhooks = opslog::config::WebhooksConfig {
            url: Some(url),
            ..Default::default()
        };
    });
    let mut d = d;
    // A fresh connection per request: a hostile request may end its connection (as HTTP allows
    // after a protocol error), and a pooled one must not carry that into the next request.
    d.agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into();
    let op = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "script": "issues"}),
    );
    let r = d.post(
        &format!("{OPS}/{op}/messages"),
        PROD_KEY,
        &json!([{"message": "kept through the storm"}, {"message": "second", "level": "warn"}]),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = d.patch(
        &format!("{OPS}/{op}"),
        PROD_KEY,
        &json!({"state": "success"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let delivery = eventually(std::time::Duration::from_secs(30), || {
        let r = d.get(
            "/v1/environments/prod/deliveries?status=delivered",
            PROD_KEY,
        );
        r.body["data"][0]["id"].as_str().map(str::to_owned)
    });
    eventually(std::time::Duration::from_secs(30), || {
        let r = d.get("/v1/environments/prod/messages?q=storm", PROD_KEY);
        (r.body["total"] == 1).then_some(())
    });
    let token = d.get("/v1/environments/prod/settings", ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    drop(receiver);
    let mut s = Seeded {
        d,
        op,
        delivery,
        token,
        before: Vec::new(),
    };
    s.before = s.stored();
    s
}

impl Seeded {
    /// What must survive: the operation, its messages, the delivery, a search for it.
    fn stored(&self) -> Vec<String> {
        let d = &self.d;
        let delivery = d.get(
            &format!("/v1/environments/prod/deliveries/{}", self.delivery),
            PROD_KEY,
        );
        vec![
            d.get(&format!("{OPS}/{}", self.op), PROD_KEY).text,
            d.get(&format!("{OPS}/{}/messages", self.op), PROD_KEY).text,
            format!("{}", delivery.body["status"]),
            format!(
                "{}",
                d.get("/v1/environments/prod/messages?q=storm", PROD_KEY)
                    .body["total"]
            ),
        ]
    }
}

#[test]
fn hostile_input_corpus_over_every_endpoint() {
    let s = seeded();
    let d = &s.d;
    let (op, token) = (&s.op, &s.token);
    let prod = "/v1/environments/prod";
    let mut tried = 0usize;

    // Bodies, on every endpoint that reads one.
    let deep_arrays = "[".repeat(100_000);
    let deep_objects = "{\"a\":".repeat(50_000);
    let balanced = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let long_number = format!(
        "{{\"type\":\"sync\",\"meta\":{{\"n\":{}}}}}",
        "9".repeat(100_000)
    );
    let long_key = format!("{{\"{}\":1}}", "k".repeat(100_000));
    let many_keys = format!(
        "{{{}}}",
        (0..20_000)
            .map(|i| format!("\"k{i}\":0"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let bodies: Vec<&[u8]> = vec![
        b"",
        b" ",
        b"{",
        b"}",
        b"[",
        b"null",
        b"true",
        b"\"text\"",
        b"[]",
        b"{}",
        b"{\"type\": \"sy",
        b"{\"type\":\"sync\",}",
        b"{\"type\":\"sync\",\"type\":\"action\"}",
        b"{\"type\":\"sync\",\"message\":\"\xff\xfe\"}",
        b"{\"type\":\"sync\",\"message\":\"\xc0\xaf\"}",
        b"\xef\xbb\xbf{\"type\":\"sync\"}",
        b"{\"type\":\"sync\",\0}",
        b"{\"type\":\"sync\",\"message\":\"\\ud800\"}",
        b"{\"type\":\"sync\",\"meta\":{\"n\":1e999999}}",
        b"{\"type\":\"sync\",\"meta\":{\"n\":-1e-999999}}",
        b"{\"type\":\"sync\",\"records\":[{\"model\":\"x\",\"added\":123456789012345678901234567890}]}",
        b"{\"type\":\"sync\",\"records\":[{\"model\":\"x\",\"added\":-1}]}",
        b"{\"type\":\"sync\",\"response\":{\"status\":70000}}",
        b"{\"message\":\"x\",\"duration_ms\":1.5}",
        b"{\"message\":\"x\",\"created_at\":\"+275760-09-13T00:00:00Z\"}",
        b"[{\"operation_id\":\"../../etc/passwd\",\"message\":\"x\"}]",
        b"{\"webhooks\":{\"url\":\"javascript:alert(1)\"}}",
        b"{\"webhooks\":{\"retry_schedule\":[\"99999999999999999999h\"]}}",
        b"{\"webhooks\":{\"timeout\":\"-1s\"}}",
        b"{\"token\":\"\\u0000\"}",
        deep_arrays.as_bytes(),
        deep_objects.as_bytes(),
        balanced.as_bytes(),
        long_number.as_bytes(),
        long_key.as_bytes(),
        many_keys.as_bytes(),
    ];
    let with_body = [
        ("POST", format!("{prod}/operations")),
        ("PATCH", format!("{prod}/operations/{op}")),
        ("POST", format!("{prod}/operations/{op}/messages")),
        ("POST", format!("{prod}/messages")),
        ("PUT", format!("{prod}/settings")),
        ("POST", format!("/v1/hooks/{token}/github")),
        ("POST", "/v1/session".to_owned()),
    ];
    // The admin token: every body reaches its parser (a key without the scope stops at 403).
    for (method, path) in &with_body {
        for body in &bodies {
            let r = d.raw(method, path, Some(ADMIN), &[], Some(body));
            assert_sane(
                &format!(
                    "{method} {path} <- {}",
                    clip(&String::from_utf8_lossy(body))
                ),
                &r,
            );
            tried += 1;
        }
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin1",
        ] {
            let r = d.raw(
                method,
                path,
                Some(ADMIN),
                &[("content-type", content_type)],
                Some(b"{}"),
            );
            if !path.starts_with("/v1/hooks") {
                assert_sane(&format!("{method} {path} as {content_type}"), &r);
            }
            tried += 1;
        }
    }
    let huge = vec![b'x'; 600 * 1024];
    for (method, path) in &with_body {
        let r = d.raw(method, path, Some(ADMIN), &[], Some(&huge));
        // Third-party webhooks have their own, larger limit (1 MB).
        let ingress = path.starts_with("/v1/hooks");
        assert!(
            r.status == 413 || (ingress && r.status == 200),
            "{method} {path}: {}",
            clip(&r.text)
        );
        assert_sane(&format!("{method} {path} <- 600 KB"), &r);
        tried += 1;
    }

    // Garbage in every id (and environment, and ingress token) of the path.
    let ids = [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "%00",
        "01ARZ3NDEKTSV4RRFFQ69G5FA%00",
        "%FF%FE",
        "%C0%AF",
        "%",
        "%zz",
        "%20",
        "%5C",
        "%F0%9F%99%82",
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",
        "00000000000000000000000000",
    ];
    let long_id = "A".repeat(10_000);
    for id in ids.iter().copied().chain([long_id.as_str()]) {
        let paths = [
            ("GET", format!("{prod}/operations/{id}")),
            ("PATCH", format!("{prod}/operations/{id}")),
            ("GET", format!("{prod}/operations/{id}/messages")),
            ("POST", format!("{prod}/operations/{id}/messages")),
            ("GET", format!("{prod}/deliveries/{id}")),
            ("POST", format!("{prod}/deliveries/{id}/retry")),
            ("GET", format!("/v1/environments/{id}/operations")),
            ("GET", format!("/v1/environments/{id}/settings")),
            (
                "POST",
                format!("/v1/environments/{id}/settings/ingress-token/rotate"),
            ),
            ("POST", format!("/v1/hooks/{id}/github")),
            ("POST", format!("/v1/hooks/{token}/{id}")),
            ("GET", format!("/assets/{id}/{id}")),
        ];
        for (method, path) in &paths {
            let body = (*method != "GET").then_some(b"{\"message\":\"x\"}".as_slice());
            let r = d.raw(method, path, Some(ADMIN), &[], body);
            assert_sane(&format!("{method} {}", clip(path)), &r);
            tried += 1;
        }
    }

    // Query strings: the search language, numbers, times, cursors, repetition (the client refuses
    // URIs over 64 KB; longer ones go raw, below).
    let long_q = format!("q={}", "a%20".repeat(12_000));
    let many_ors = format!("q={}", vec!["a"; 5_000].join("%20OR%20"));
    let long_prefix = format!("prefix={}", "p".repeat(50_000));
    let long_cursor = format!("cursor={}", "A".repeat(10_000));
    let repeated = vec!["type=sync"; 5_000].join("&");
    let queries: Vec<&str> = vec![
        &long_q,
        &many_ors,
        "q=%22unbalanced",
        "q=unbalanced%22",
        "q=*",
        "q=a*",
        "q=-",
        "q=--a",
        "q=OR",
        "q=a%20OR",
        "q=%22%22",
        "q=(((",
        "q=%FF%FE",
        "q=%00",
        "q=field:value",
        "limit=-1",
        "limit=0",
        "limit=99999999999999999999999",
        "limit=1e3",
        "limit=",
        "cursor=garbage",
        "cursor=AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "cursor=before.garbage",
        "cursor=%FF",
        &long_cursor,
        "after=garbage",
        "before=%00",
        "from=garbage",
        "from=99999-01-01T00:00:00Z",
        "from=2100-01-01T00:00:00Z",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=0000-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
        "type=sync:",
        "type=:run",
        "type=%00",
        "state=%FF",
        "level=fatal",
        "integration=",
        "interval=0s",
        "interval=18446744073709551615s",
        "interval=1ns",
        "interval=-1h",
        "field=../",
        "field=integration&prefix=%FF",
        "field=integration&limit=1000000",
        &long_prefix,
        "status=%00",
        "event=sync.*",
        "grace=1e9h",
        "grace=%FF",
        "%FF=%FF",
        "a&&&b==c",
        &repeated,
    ];
    let with_query = [
        ("GET", format!("{prod}/operations")),
        ("GET", format!("{prod}/operations/{op}/messages")),
        ("GET", format!("{prod}/messages")),
        ("GET", format!("{prod}/facets")),
        ("GET", format!("{prod}/insights")),
        ("GET", format!("{prod}/deliveries")),
        ("POST", format!("{prod}/deliveries/replay")),
        ("POST", format!("{prod}/settings/webhook-secret/rotate")),
    ];
    for (method, path) in &with_query {
        for query in &queries {
            let r = d.raw(method, &format!("{path}?{query}"), Some(ADMIN), &[], None);
            assert_sane(&format!("{method} {path}?{}", clip(query)), &r);
            tried += 1;
        }
    }
    // Protocol-level abuse: oversized and garbage headers, bytes that are not a URI.
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let big_auth = format!(
        "GET {prod}/operations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        "k".repeat(60_000)
    );
    let long_uri = format!(
        "GET {prod}/messages?q={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "a".repeat(200_000)
    );
    let raw_requests: Vec<Vec<u8>> = vec![
        long_uri.into_bytes(),
        big_header.into_bytes(),
        many_headers.into_bytes(),
        big_auth.into_bytes(),
        b"GET /v1/environments/prod/operations/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GET /healthz?q=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"POST /v1/session HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\nConnection: close\r\n\r\n{}".to_vec(),
        b"POST /v1/session HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec(),
        b"POST /v1/session HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\nConnection: close\r\n\r\n".to_vec(),
    ];
    for request in &raw_requests {
        let what = clip(&String::from_utf8_lossy(request)).to_owned();
        if let Some((status, body)) = raw_exchange(d, request) {
            // 505 is the protocol's own answer to an HTTP version that does not exist.
            let version_refused = status == 505 && what.contains("HTTP/9.9");
            assert!(
                status < 500 || version_refused,
                "{what}: {status} {}",
                clip(&body)
            );
            if status >= 400 && !body.is_empty() {
                let value: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|_| panic!("{what}: {status} with a non-JSON body: {body}"));
                assert!(value["error"]["message"].is_string(), "{what}: {body}");
            }
        }
        tried += 1;
    }

    // Still up, and nothing stored changed.
    assert_eq!(d.raw("GET", "/healthz", None, &[], None).status, 200);
    assert_eq!(
        s.stored(),
        s.before,
        "stored data survived {tried} hostile requests"
    );
    eprintln!("hostile input: {tried} requests, no 5xx, every 4xx explained");
}

#[test]
fn slow_clients_are_cut_off_while_others_are_served() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let d = Daemon::start_with(|c| {
        c.server.header_read_timeout = opslog::config::HumanDuration(Duration::from_secs(1));
    });
    let addr = d.base.trim_start_matches("http://").to_owned();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    // Slowloris: headers one byte at a time, never finished; and clients that send nothing.
    let slow: Vec<_> = (0..20)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(&addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut sent = 0usize;
                let mut buf = [0u8; 256];
                while Instant::now() < deadline {
                    if i % 4 != 0 {
                        let byte = request.get(sent).copied().unwrap_or(b'a');
                        if stream.write_all(&[byte]).is_err() {
                            return Some(sent);
                        }
                        sent += 1;
                    }
                    match stream.read(&mut buf) {
                        // Closed, or an answer (408) just before closing.
                        Ok(_) => return Some(sent),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return Some(sent),
                    }
                }
                None
            })
        })
        .collect();
    // Meanwhile a normal client is served, again and again.
    for _ in 0..20 {
        let r = d.raw("GET", "/healthz", None, &[], None);
        assert_eq!(r.status, 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    for (i, handle) in slow.into_iter().enumerate() {
        let outcome = handle.join().unwrap();
        assert!(
            outcome.is_some(),
            "slow client {i} was still connected after 30 s"
        );
    }
    assert_eq!(d.raw("GET", "/healthz", None, &[], None).status, 200);
}
