//! Bearer auth and isolation between environments.

use serde_json::json;

use crate::support::*;

#[test]
fn missing_or_unknown_tokens_are_401() {
    let d = Daemon::start();
    let path = "/v1/environments/prod/operations";
    let none = d.raw("POST", path, None, &[], Some(b"{\"type\":\"sync\"}"));
    assert_eq!((none.status, none.code()), (401, "unauthorized"));
    assert_eq!(
        none.headers.get("www-authenticate").map(String::as_str),
        Some("Bearer")
    );
    let wrong = d.raw(
        "POST",
        path,
        None,
        &[("authorization", "Bearer not-a-real-key-000000")],
        Some(b"{}"),
    );
    assert_eq!(wrong.status, 401);
    let basic = d.raw(
        "POST",
        path,
        None,
        &[("authorization", "Basic dXNlcjpwYXNz")],
        Some(b"{}"),
    );
    assert_eq!(basic.status, 401);
    assert!(basic.message().contains("Bearer"), "{}", basic.text);
}

#[test]
fn an_environment_key_never_reaches_another_environment() {
    let d = Daemon::start();
    let prod_op = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    let paths = [
        ("POST", "/v1/environments/prod/operations".to_owned()),
        ("GET", format!("/v1/environments/prod/operations/{prod_op}")),
        (
            "PATCH",
            format!("/v1/environments/prod/operations/{prod_op}"),
        ),
        (
            "POST",
            format!("/v1/environments/prod/operations/{prod_op}/messages"),
        ),
        (
            "GET",
            format!("/v1/environments/prod/operations/{prod_op}/messages"),
        ),
        ("POST", "/v1/environments/prod/messages".to_owned()),
    ];
    for (method, path) in &paths {
        let reply = d.raw(
            method,
            path,
            Some(DEV_KEY),
            &[],
            (*method != "GET").then_some(b"{}".as_slice()),
        );
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
        assert_eq!(reply.code(), "environment_not_found");
        assert!(
            !reply.text.contains("github"),
            "no data leaks: {}",
            reply.text
        );
    }
    // The prod operation through the dev environment's own path: not found either.
    let via_dev = d.get(
        &format!("/v1/environments/dev/operations/{prod_op}"),
        DEV_KEY,
    );
    assert_eq!(
        (via_dev.status, via_dev.code()),
        (404, "operation_not_found")
    );
    let log_into = d.post(
        &format!("/v1/environments/dev/operations/{prod_op}/messages"),
        DEV_KEY,
        &json!({"message": "sneaky"}),
    );
    assert_eq!(log_into.status, 404);
    let batch = d.post(
        "/v1/environments/dev/messages",
        DEV_KEY,
        &json!([{"operation_id": prod_op, "message": "sneaky"}]),
    );
    assert_eq!(batch.status, 404);
    let end = d.patch(
        &format!("/v1/environments/dev/operations/{prod_op}"),
        DEV_KEY,
        &json!({"state": "failed"}),
    );
    assert_eq!(end.status, 404);
    let still = d.get(
        &format!("/v1/environments/prod/operations/{prod_op}"),
        PROD_KEY,
    );
    assert_eq!(still.body["state"], "running");
    assert_eq!(still.body["message_count"], 0);

    // The admin token works everywhere; an unknown environment is a 404 for it too.
    assert_eq!(
        d.get(
            &format!("/v1/environments/prod/operations/{prod_op}"),
            ADMIN
        )
        .status,
        200
    );
    let unknown = d.get(
        "/v1/environments/staging/operations/01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ADMIN,
    );
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "environment_not_found")
    );
}

#[test]
fn health_endpoints_need_no_token() {
    let d = Daemon::start();
    assert_eq!(d.raw("GET", "/healthz", None, &[], None).status, 200);
    let ready = d.raw("GET", "/readyz", None, &[], None);
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );
    let metrics = d.raw("GET", "/metrics", None, &[], None);
    assert!(
        metrics.text.contains("opslog_store_commits_total"),
        "{}",
        metrics.text
    );
    assert!(!metrics.text.contains(PROD_KEY) && !metrics.text.contains(ADMIN));
}
