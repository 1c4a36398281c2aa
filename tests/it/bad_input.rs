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
    assert_eq!((r.status, r.code()), (413, "batch_too_large"));
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
