//! Drop-in for Nango users, end to end: a URL with `format = "nango"` gets the bodies Nango sends
//! (sync per model, auth with end user and tags, forward with the provider's headers, async action
//! completion), signed as Nango signs them with an existing Nango signing key. Every captured
//! request is checked by Nango's own Node SDK (`@nangohq/node`) and its bodies type-checked with
//! `tsc` against `@nangohq/types` (both pinned by tests/nango/package-lock.json; scripts/test
//! installs them). The other URL of the same environment keeps opslog's envelope.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use opslog::config::{WebhookFormat, WebhooksConfig};
use serde_json::{json, Value};

use crate::receiver::*;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WAIT: Duration = Duration::from_secs(30);
/// An existing Nango signing key (Nango's keys are UUIDs), reused as opslog's secret.
const NANGO_KEY: &str = "3f1c9a52-7d1e-4b7a-9f0e-2c4d6b8a1e37";

/// Runs `tests/nango/check.mjs` on `requests` (all signed with `secret`): Nango's SDK verifies
/// each, tsc checks each body against Nango's types. Fails with what the peer printed.
pub fn check_with_nango_sdk(secret: &str, requests: &[Captured]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nango");
    assert!(
        dir.join("node_modules/@nangohq/node").is_dir(),
        "Nango's SDK is not installed: run `npm ci` in tests/nango (scripts/test does)"
    );
    let cases: Vec<Value> = requests
        .iter()
        .map(|r| json!({"secret": secret, "body": r.text(), "headers": r.headers}))
        .collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&cases).unwrap()).unwrap();
    let out = Command::new("node")
        .arg(dir.join("check.mjs"))
        .arg(file.path())
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("node is required to check Nango-format webhooks with Nango's SDK ({e}); scripts/test installs it")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Nango's SDK refused what opslog sent:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), format!("verified {}", requests.len()));
}

fn by_type<'a>(requests: &'a [Captured], kind: &str) -> Vec<&'a Captured> {
    requests
        .iter()
        .filter(|r| r.json()["type"] == kind)
        .collect()
}

#[test]
fn nango_format_deliveries_pass_nangos_sdk_and_types() {
    let nango = Receiver::ok();
    let plain = Receiver::ok();
    let (nango_url, plain_url) = (nango.url(), plain.url());
    let d = Daemon::start_with(move |config| {
        config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(nango_url),
            format: Some(WebhookFormat::Nango),
            secondary_url: Some(plain_url),
            secret: Some(NANGO_KEY.into()),
            ..Default::default()
        };
    });
    let token = d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A sync reporting two models, one of them unchanged: one `sync` body per model.
    let ok = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues",
                "meta": {"sync_type": "initial"}}),
    );
    let reply = d.patch(
        &format!("{PROD}/operations/{ok}"),
        PROD_KEY,
        &json!({"state": "success", "records": [
            {"model": "Issue", "added": 3, "updated": 1, "deleted": 2},
            {"model": "Comment"}]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    // A failed sync with no counts.
    let failed = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues"}),
    );
    d.patch(
        &format!("{PROD}/operations/{failed}"),
        PROD_KEY,
        &json!({"state": "failed", "error": {"message": "rate limited", "type": "rate_limit"}}),
    );
    // A new connection, made by an end user of an organization, with tags.
    let auth = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "integration": "github", "connection_id": "acme", "provider": "github",
                "meta": {"auth_mode": "OAUTH2"},
                "end_user": {"id": "u-7", "email": "ada@example.com", "display_name": "Ada",
                             "organization": {"id": "org-1", "display_name": "Acme"}},
                "tags": {"plan": "pro", "region": "eu"}}),
    );
    d.patch(
        &format!("{PROD}/operations/{auth}"),
        PROD_KEY,
        &json!({"state": "success"}),
    );
    // A failed token refresh.
    let refresh = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "action": "refresh_token", "integration": "github",
                "connection_id": "acme", "provider": "github"}),
    );
    d.patch(
        &format!("{PROD}/operations/{refresh}"),
        PROD_KEY,
        &json!({"state": "failed", "error": {"message": "invalid_grant", "name": "refresh_failed"}}),
    );
    // An async action that completes.
    let action = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "github", "connection_id": "acme",
                "script": "create-issue", "async": true}),
    );
    d.patch(
        &format!("{PROD}/operations/{action}"),
        PROD_KEY,
        &json!({"state": "success"}),
    );
    // A third party's webhook, forwarded with its headers.
    let forwarded = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/github?connection_id=acme"),
        None,
        &[
            ("x-github-event", "issues"),
            ("authorization", "Bearer third-party-secret"),
            ("content-type", "application/json"),
        ],
        Some(br#"{"action":"opened","issue":{"number":7,"title":"b"},"a":[1,2.5,"x"]}"#),
    );
    assert_eq!(forwarded.status, 200, "{}", forwarded.text);

    // 2 sync bodies (Issue, Comment) + 1 failed sync + 2 auth + 1 async action + 1 forward.
    let requests = nango.wait_for(7, WAIT);
    assert_eq!(requests.len(), 7, "{requests:?}");
    check_with_nango_sdk(NANGO_KEY, &requests);

    // Standard Webhooks headers still come, keyed with the bytes of the Nango key.
    let standard_key = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(NANGO_KEY)
    );
    for r in &requests {
        assert!(verify_standard(&standard_key, r), "{r:?}");
        assert!(r.header("webhook-id").starts_with("msg_"));
    }
    let types: BTreeSet<String> = requests
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        ["async_action", "auth", "forward", "sync"]
            .map(String::from)
            .into()
    );

    let syncs = by_type(&requests, "sync");
    let issue = syncs
        .iter()
        .map(|r| r.json())
        .find(|b| b["model"] == "Issue")
        .expect("a body for Issue");
    assert_eq!(issue["from"], "nango");
    assert_eq!(issue["connectionId"], "acme");
    assert_eq!(issue["providerConfigKey"], "github");
    assert_eq!(issue["syncName"], "issues");
    assert_eq!(issue["syncType"], "INITIAL");
    assert_eq!(
        issue["queryTimeStamp"],
        Value::Null,
        "null for an initial sync"
    );
    assert_eq!(
        issue["responseResults"],
        json!({"added": 3, "updated": 1, "deleted": 2})
    );
    let failure = syncs
        .iter()
        .map(|r| r.json())
        .find(|b| b["success"] == false)
        .expect("a failed sync body");
    assert_eq!(
        failure["error"],
        json!({"type": "rate_limit", "description": "rate limited"})
    );
    assert!(failure["failedAt"].as_str().unwrap().ends_with('Z'));

    let auths: Vec<Value> = by_type(&requests, "auth")
        .iter()
        .map(|r| r.json())
        .collect();
    let created = auths.iter().find(|b| b["operation"] == "creation").unwrap();
    assert_eq!(created["success"], true);
    assert_eq!(created["authMode"], "OAUTH2");
    assert_eq!(created["environment"], "prod");
    assert_eq!(
        created["endUser"],
        json!({"endUserId": "u-7", "endUserEmail": "ada@example.com", "organizationId": "org-1",
               "tags": {"plan": "pro", "region": "eu"}})
    );
    assert_eq!(created["tags"], json!({"plan": "pro", "region": "eu"}));
    let refreshed = auths.iter().find(|b| b["operation"] == "refresh").unwrap();
    assert_eq!(refreshed["success"], false);
    assert_eq!(refreshed["error"]["type"], "refresh_failed");

    let completion = by_type(&requests, "async_action")[0].json();
    assert_eq!(completion["payload"]["id"], action.as_str());
    assert_eq!(
        completion["payload"]["statusUrl"],
        format!("{PROD}/operations/{action}")
    );

    let forward = by_type(&requests, "forward")[0];
    let body = forward.json();
    assert_eq!(body["from"], "github");
    assert_eq!(body["connectionId"], "acme");
    assert_eq!(body["payload"]["issue"]["number"], 7);
    assert_eq!(forward.header("x-github-event"), "issues");
    assert_eq!(forward.header("authorization"), "", "credentials stay");
    // Keys sorted at every level, compact: what Nango's stable stringify sends.
    assert_eq!(
        forward.text(),
        r#"{"connectionId":"acme","from":"github","payload":{"a":[1,2.5,"x"],"action":"opened","issue":{"number":7,"title":"b"}},"providerConfigKey":"github","type":"forward"}"#
    );

    // The other URL keeps opslog's envelope and signature, with the context fields.
    let envelopes = plain.wait_for(7, WAIT);
    let kinds: BTreeSet<String> = envelopes
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "action.completed",
            "auth.created",
            "auth.failed",
            "sync.completed",
            "sync.records",
            "webhook.received"
        ]
        .map(String::from)
        .into()
    );
    let created = envelopes
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "auth.created")
        .unwrap();
    assert_eq!(created["end_user"]["id"], "u-7");
    assert_eq!(created["tags"]["plan"], "pro");
    for r in &envelopes {
        assert!(verify_nango(NANGO_KEY, r), "opslog format keeps its HMAC");
    }
    let list = d
        .get(&format!("{PROD}/deliveries?limit=100"), PROD_KEY)
        .body;
    let formats: BTreeSet<(String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["url"].as_str().unwrap().to_owned(),
                d["format"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        formats,
        [
            (nango.url(), "nango".to_owned()),
            (plain.url(), "opslog".to_owned())
        ]
        .into()
    );
}

#[test]
fn the_format_and_a_nango_key_are_set_through_the_admin_api() {
    let receiver = Receiver::ok();
    let d = Daemon::start();
    let put = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"url": receiver.url(), "format": "nango", "allow_insecure_http": true}}),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["webhooks"]["format"], "nango");
    assert_eq!(put.body["webhooks"]["secondary_format"], "opslog");
    let bad = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"format": "zapier"}}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(
        bad.text.contains("nango"),
        "names the choices: {}",
        bad.text
    );

    let rotate = |body: Option<&[u8]>| {
        d.raw(
            "POST",
            &format!("{PROD}/settings/webhook-secret/rotate?grace=0s"),
            Some(ADMIN),
            &[("content-type", "application/json")],
            body,
        )
    };
    let refused = rotate(Some(br#"{"secret": "short"}"#));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.text.contains("Nango signing key"),
        "{}",
        refused.text
    );
    let installed = rotate(Some(format!(r#"{{"secret": "{NANGO_KEY}"}}"#).as_bytes()));
    assert_eq!(installed.status, 200, "{}", installed.text);
    assert_eq!(installed.body["secret"], NANGO_KEY);
    let revealed = d.get(&format!("{PROD}/settings/webhook-secret"), ADMIN);
    assert_eq!(revealed.body["secret"], NANGO_KEY);

    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "integration": "hubspot", "connection_id": "c1", "state": "success"}),
    );
    let requests = receiver.wait_for(1, WAIT);
    assert_eq!(requests[0].json()["type"], "auth");
    assert_eq!(requests[0].json()["connectionId"], "c1");
    check_with_nango_sdk(NANGO_KEY, &requests);
    // A fresh rotation (no body) issues a `whsec_` secret again.
    let fresh = rotate(None);
    assert_eq!(fresh.status, 200, "{}", fresh.text);
    assert!(fresh.body["secret"].as_str().unwrap().starts_with("whsec_"));
    d.stop();

    // A format the config file sets is read-only.
    let d = Daemon::start_with(|config| {
        config.environments.get_mut("prod").unwrap().webhooks.format = Some(WebhookFormat::Nango);
    });
    let read_only = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"format": "opslog"}}),
    );
    assert_eq!(read_only.status, 409, "{}", read_only.text);
    let view = d.get(&format!("{PROD}/settings"), ADMIN).body;
    assert!(view["webhooks"]["read_only"]
        .as_array()
        .unwrap()
        .contains(&json!("format")));
}
