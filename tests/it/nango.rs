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
use opslog::config::{HumanDuration, WebhookFormat, WebhooksConfig};
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
    let named: Vec<(&Captured, Option<&str>)> = requests.iter().map(|r| (r, None)).collect();
    check_against_nango(secret, &named, false);
}

/// As `check_with_nango_sdk`, and each body named with a golden (tests/nango/golden.ts) is
/// compared with it key by key; with `auth_modes`, opslog's list of auth modes is checked against
/// Nango's `AuthModeType`.
fn check_against_nango(secret: &str, requests: &[(&Captured, Option<&str>)], auth_modes: bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nango");
    assert!(
        dir.join("node_modules/@nangohq/node").is_dir(),
        "Nango's SDK is not installed: run `npm ci` in tests/nango (scripts/test does)"
    );
    let cases: Vec<Value> = requests
        .iter()
        .map(|(r, golden)| json!({"secret": secret, "body": r.text(), "headers": r.headers, "golden": golden}))
        .collect();
    let input = json!({
        "cases": cases,
        "auth_modes": auth_modes.then_some(opslog::model::AUTH_MODES),
    });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(&input).unwrap()).unwrap();
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

/// The one delivered body that `matches`.
fn the<'a>(requests: &'a [Captured], what: &str, matches: impl Fn(&Value) -> bool) -> &'a Captured {
    let found: Vec<&Captured> = requests.iter().filter(|r| matches(&r.json())).collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: {:?}",
        found.iter().map(|r| r.text()).collect::<Vec<_>>()
    );
    found[0]
}

fn nango_daemon(nango_url: String, plain_url: String) -> Daemon {
    Daemon::start_with(move |config| {
        config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(nango_url),
            format: Some(WebhookFormat::Nango),
            secondary_url: Some(plain_url),
            secret: Some(NANGO_KEY.into()),
            ..Default::default()
        };
    })
}

#[test]
fn nango_format_deliveries_pass_nangos_sdk_and_types() {
    let nango = Receiver::ok();
    let plain = Receiver::ok();
    let d = nango_daemon(nango.url(), plain.url());
    let token = d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = |id: &str, body: Value| {
        let reply = d.patch(&format!("{PROD}/operations/{id}"), PROD_KEY, &body);
        assert_eq!(reply.status, 200, "{}", reply.text);
    };

    // An incremental sync run reporting two models, one unchanged: one `sync` body per model,
    // with the checkpoints it started from and saved.
    let ok = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues",
                "sync_type": "incremental", "checkpoints": {"from": {"page": 3, "cursor": "c3"}, "to": null}}),
    );
    patch(
        &ok,
        json!({"state": "success",
        "checkpoints": {"from": {"page": 3, "cursor": "c3"}, "to": {"page": 4.0, "cursor": "c4", "done": true}},
        "records": [{"model": "Issue", "added": 3, "updated": 1, "deleted": 2}, {"model": "Comment"}]}),
    );
    // A first run that failed: one body naming both models, the error's payload kept.
    let failed = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues",
                "checkpoints": {"from": null, "to": null}}),
    );
    patch(
        &failed,
        json!({"state": "failed", "records": [{"model": "Issue"}, {"model": "Comment"}],
        "error": {"message": "rate limited", "type": "rate_limit", "payload": {"retry_after": 30}}}),
    );
    // A paused sync: Nango sends no `sync` body for it (opslog's envelope still says it ended).
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "action": "pause", "integration": "github", "connection_id": "acme",
                "script": "issues", "state": "success"}),
    );
    // A new connection, made by an end user of an organization, with tags.
    let auth = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "integration": "github-prod", "connection_id": "acme", "provider": "github",
                "auth_mode": "OAUTH2",
                "end_user": {"id": "u-7", "email": "ada@example.com", "display_name": "Ada",
                             "organization": {"id": "org-1", "display_name": "Acme"}},
                "tags": {"plan": "pro", "region": "eu"}}),
    );
    patch(&auth, json!({"state": "success"}));
    // A failed token refresh.
    let refresh = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "action": "refresh_token", "integration": "github-prod",
                "connection_id": "acme", "provider": "github", "auth_mode": "OAUTH2"}),
    );
    patch(
        &refresh,
        json!({"state": "failed",
        "error": {"message": "invalid_grant", "name": "refresh_failed", "payload": {"status": 400}}}),
    );
    // A re-authorization that succeeded, and a post-connection script that failed (Nango sends
    // nothing for the latter).
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "action": "override", "integration": "github-prod", "connection_id": "acme",
                "provider": "github", "auth_mode": "OAUTH2", "state": "success"}),
    );
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "action": "post_connection", "integration": "github-prod",
                "connection_id": "acme", "state": "failed", "error": {"message": "script failed"}}),
    );
    // An async action that completes with an output.
    let action = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "github", "connection_id": "acme",
                "script": "create-issue", "async": true}),
    );
    let running = d.get(&format!("{PROD}/operations/{action}/output"), PROD_KEY);
    assert_eq!(running.status, 409, "{}", running.text);
    patch(
        &action,
        json!({"state": "success", "output": {"issue": 7, "url": "https://github.com/o/r/issues/7"}}),
    );
    // A Slack event forwarded with its headers, its numbers printed as JSON.stringify does.
    let forwarded = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/slack-prod?connection_id=acme&provider=slack"),
        None,
        &[
            ("x-slack-signature", "v0=abc"),
            ("authorization", "Bearer third-party-secret"),
            ("content-type", "application/json"),
        ],
        Some(br#"{"team_id":"T1","n":1.0,"event":{"type":"message","ts":1.0}}"#),
    );
    assert_eq!(forwarded.status, 200, "{}", forwarded.text);

    // 2 sync bodies + 1 failed sync + creation, refresh and override + 1 async action + 1 forward.
    let requests = nango.wait_for(8, WAIT);
    assert_eq!(
        requests.len(),
        8,
        "{:#?}",
        requests.iter().map(|r| r.text()).collect::<Vec<_>>()
    );
    let named = [
        (
            the(&requests, "sync Issue", |b| b["model"] == "Issue"),
            Some("sync_success"),
        ),
        (
            the(&requests, "sync Comment", |b| b["model"] == "Comment"),
            None,
        ),
        (
            the(&requests, "failed sync", |b| {
                b["type"] == "sync" && b["success"] == false
            }),
            Some("sync_error"),
        ),
        (
            the(&requests, "creation", |b| b["operation"] == "creation"),
            Some("auth_creation"),
        ),
        (
            the(&requests, "refresh", |b| b["operation"] == "refresh"),
            Some("auth_refresh_error"),
        ),
        (
            the(&requests, "override", |b| b["operation"] == "override"),
            None,
        ),
        (
            the(&requests, "async action", |b| b["type"] == "async_action"),
            Some("async_action"),
        ),
        (
            the(&requests, "forward", |b| b["type"] == "forward"),
            Some("forward"),
        ),
    ];
    check_against_nango(NANGO_KEY, &named, true);

    // Standard Webhooks headers still come, keyed with the bytes of the Nango key.
    let standard_key = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(NANGO_KEY)
    );
    for r in &requests {
        assert!(verify_standard(&standard_key, r), "{r:?}");
        assert!(r.header("webhook-id").starts_with("msg_"));
    }

    let comment = named[1].0.json();
    assert_eq!(
        comment["responseResults"],
        json!({"added": 0, "updated": 0, "deleted": 0})
    );
    let issue = named[0].0.json();
    assert_eq!(issue["modifiedAfter"], issue["queryTimeStamp"]);
    let reauthorized = named[5].0.json();
    assert_eq!(
        (
            reauthorized["success"].clone(),
            reauthorized["provider"].clone()
        ),
        (json!(true), json!("github"))
    );

    let completion = named[6].0.json();
    assert_eq!(completion["payload"]["id"], action.as_str());
    let status_url = completion["payload"]["statusUrl"].as_str().unwrap();
    assert_eq!(status_url, format!("{PROD}/operations/{action}/output"));
    let output = d.get(status_url, PROD_KEY);
    assert_eq!(output.status, 200, "{}", output.text);
    assert_eq!(
        output.body,
        json!({"issue": 7, "url": "https://github.com/o/r/issues/7"})
    );

    let forward = named[7].0;
    assert_eq!(forward.header("x-slack-signature"), "v0=abc");
    assert_eq!(forward.header("authorization"), "", "credentials stay");
    // Keys sorted at every level, compact, numbers as JSON.stringify prints them.
    assert_eq!(
        forward.text(),
        r#"{"connectionId":"acme","from":"slack","payload":{"event":{"ts":1,"type":"message"},"n":1,"team_id":"T1"},"providerConfigKey":"slack-prod","type":"forward"}"#
    );

    // The other URL keeps opslog's envelope and signature, with the context fields.
    let envelopes = plain.wait_for(10, WAIT);
    let mut kinds: Vec<String> = envelopes
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "action.completed",
            "auth.created",
            "auth.created",
            "auth.failed",
            "auth.failed",
            "sync.completed",
            "sync.completed",
            "sync.completed",
            "sync.records",
            "webhook.received"
        ]
    );
    let created = envelopes
        .iter()
        .map(|r| r.json())
        .find(|b| b["type"] == "auth.created" && b["data"]["action"] == "create_connection")
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
    // The operation holds what its bodies were made from.
    let stored = d.get(&format!("{PROD}/operations/{ok}"), PROD_KEY).body;
    assert_eq!(stored["sync_type"], "incremental");
    assert_eq!(stored["checkpoints"]["to"]["cursor"], "c4");
}

#[test]
fn nango_fields_are_validated_naming_the_field() {
    let d = Daemon::start();
    for (body, field) in [
        (json!({"type": "sync", "sync_type": "initial"}), "sync_type"),
        (
            json!({"type": "sync", "checkpoints": {"from": {"a": [1]}}}),
            "checkpoints.from.a",
        ),
        (
            json!({"type": "sync", "checkpoints": {"since": null}}),
            "checkpoints.since",
        ),
        (json!({"type": "auth", "auth_mode": "oauth"}), "auth_mode"),
    ] {
        let reply = d.send("POST", &format!("{PROD}/operations"), PROD_KEY, &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert!(
            reply.text.contains(field),
            "{body} names {field}: {}",
            reply.text
        );
    }
    let id = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let reply = d.patch(
        &format!("{PROD}/operations/{id}"),
        PROD_KEY,
        &json!({"checkpoints": {"to": "page 4"}}),
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("checkpoints.to"), "{}", reply.text);
    let failed = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "state": "failed", "error": {"message": "no such repo"}}),
    );
    let output = d.get(&format!("{PROD}/operations/{failed}/output"), PROD_KEY);
    assert_eq!(output.status, 409, "{}", output.text);
    assert!(output.text.contains("no such repo"), "{}", output.text);
}

#[test]
fn nango_urls_are_not_retried_after_a_4xx_as_nango_does() {
    let strict = Receiver::start(|_, _| Answer::Status(400, "unknown type"));
    let flaky = Receiver::start(|_, i| {
        if i == 0 {
            Answer::Status(503, "busy")
        } else {
            Answer::Status(200, "ok")
        }
    });
    let (strict_url, flaky_url) = (strict.url(), flaky.url());
    let d = Daemon::start_with(move |config| {
        config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(strict_url),
            format: Some(WebhookFormat::Nango),
            secondary_url: Some(flaky_url),
            secondary_format: Some(WebhookFormat::Nango),
            secret: Some(NANGO_KEY.into()),
            retry_schedule: Some(
                ["0s", "0s", "0s"]
                    .iter()
                    .map(|d| HumanDuration(humantime::parse_duration(d).unwrap()))
                    .collect(),
            ),
            ..Default::default()
        };
    });
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "integration": "hubspot", "connection_id": "c1", "state": "success"}),
    );
    assert_eq!(flaky.wait_for(2, WAIT).len(), 2, "a 503 is retried");
    let deliveries = eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/deliveries"), PROD_KEY).body;
        let done = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] != "pending");
        done.then_some(list)
    });
    let of = |url: &str| {
        deliveries["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["url"] == url)
            .unwrap()
            .clone()
    };
    let refused = of(&strict.url());
    assert_eq!(refused["status"], "failed");
    assert_eq!(
        refused["attempts"], 1,
        "a 400 is final for a Nango-format URL"
    );
    assert!(
        refused["last_error"].as_str().unwrap().contains("Nango"),
        "{refused}"
    );
    assert_eq!(strict.requests().len(), 1);
    assert_eq!(of(&flaky.url())["status"], "delivered");
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

/// Each provider's URL check, sent as that provider sends it, gets the answer it wants and is not
/// recorded; events and forms that follow are recorded and forwarded as Nango forwards them.
#[test]
fn ingress_answers_each_providers_url_check_and_parses_forms() {
    let nango = Receiver::ok();
    let plain = Receiver::ok();
    let d = nango_daemon(nango.url(), plain.url());
    let token = d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let hook = |rest: &str| format!("/v1/hooks/{token}/{rest}");

    // Slack's Events API URL verification (a JSON POST).
    let slack = d.raw(
        "POST",
        &hook("slack"),
        None,
        &[("content-type", "application/json"), ("x-slack-signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")],
        Some(br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#),
    );
    assert_eq!(slack.status, 200, "{}", slack.text);
    assert_eq!(
        slack.text,
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    assert!(slack.headers["content-type"].starts_with("text/plain"));
    // Microsoft Graph's subscription validation: a POST with the token in the query, no body.
    let graph = d.raw(
        "POST",
        &hook("outlook-mail?validationToken=Validation%3A%20Testing%20client%20application%20reachability%20for%20subscription%20Request-Id%3A%2025fb5ad2-b1d0-4cb3-a3df-e5bb6e1ee2a0"),
        None,
        &[("content-type", "text/plain; charset=utf-8")],
        Some(b""),
    );
    assert_eq!(graph.status, 200, "{}", graph.text);
    assert_eq!(
        graph.text,
        "Validation: Testing client application reachability for subscription Request-Id: 25fb5ad2-b1d0-4cb3-a3df-e5bb6e1ee2a0"
    );
    // Dropbox's GET challenge.
    let dropbox = d.raw(
        "GET",
        &hook("dropbox?challenge=wnJf6dzZSd4d1Bm0"),
        None,
        &[],
        None,
    );
    assert_eq!(
        (dropbox.status, dropbox.text.as_str()),
        (200, "wnJf6dzZSd4d1Bm0")
    );
    assert_eq!(dropbox.headers["x-content-type-options"], "nosniff");
    // Meta's (WhatsApp) verification request, for an integration named otherwise.
    let meta = d.raw(
        "GET",
        &hook("wa-prod?provider=whatsapp&hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"),
        None,
        &[],
        None,
    );
    assert_eq!((meta.status, meta.text.as_str()), (200, "1158201444"));
    // Asana's handshake: the X-Hook-Secret header echoed back.
    let asana = d.raw(
        "POST",
        &hook("asana"),
        None,
        &[(
            "x-hook-secret",
            "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81",
        )],
        None,
    );
    assert_eq!(asana.status, 200, "{}", asana.text);
    assert_eq!(
        asana.headers["x-hook-secret"],
        "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
    );
    // Twitch EventSub's callback verification.
    let twitch = d.raw(
        "POST",
        &hook("twitch"),
        None,
        &[("twitch-eventsub-message-type", "webhook_callback_verification"), ("content-type", "application/json")],
        Some(br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387","status":"webhook_callback_verification_pending","type":"channel.follow"}}"#),
    );
    assert_eq!(
        (twitch.status, twitch.text.as_str()),
        (200, "pogchamp-kappa-360noscope-vohiyo")
    );
    // Okta's one-time verification GET.
    let okta = d.raw(
        "GET",
        &hook("okta"),
        None,
        &[("x-okta-verification-challenge", "NwT5nE8Rav1f4d0e")],
        None,
    );
    assert_eq!(okta.body, json!({"verification": "NwT5nE8Rav1f4d0e"}));
    // Trello's HEAD check.
    assert_eq!(d.raw("HEAD", &hook("trello"), None, &[], None).status, 200);
    // A GET that is no URL check, and an unknown token.
    let stray = d.raw("GET", &hook("github"), None, &[], None);
    assert_eq!(stray.status, 404, "{}", stray.text);
    assert!(stray.text.contains("no_url_check"), "{}", stray.text);
    assert_eq!(
        d.raw("GET", "/v1/hooks/nope/dropbox?challenge=x", None, &[], None)
            .status,
        404
    );
    let checks = d.get(
        &format!("{PROD}/operations?type=webhook:incoming"),
        PROD_KEY,
    );
    assert_eq!(
        checks.body["total"], 0,
        "URL checks are not recorded: {}",
        checks.text
    );

    // Slack's interactive payload (a form with a JSON `payload` field) and a plain form.
    let interactive = format!(
        "payload={}",
        urlencoding::encode(
            r#"{"type":"block_actions","team":{"id":"T1"},"actions":[{"value":"1.50"}]}"#
        )
    );
    let reply = d.raw(
        "POST",
        &hook("slack?connection_id=acme"),
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(interactive.as_bytes()),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = d.raw(
        "POST",
        &hook("twilio?connection_id=acme"),
        None,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        Some(b"From=%2B15551234567&Body=Hello+there&MediaUrl=a&MediaUrl=b"),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let forwards = nango.wait_for(2, WAIT);
    assert_eq!(forwards.len(), 2);
    check_with_nango_sdk(NANGO_KEY, &forwards);
    let slack = the(&forwards, "slack", |b| b["from"] == "slack").json();
    assert_eq!(
        slack["payload"],
        json!({"type": "block_actions", "team": {"id": "T1"}, "actions": [{"value": "1.50"}]})
    );
    let form = the(&forwards, "twilio", |b| b["from"] == "twilio").json();
    assert_eq!(
        form["payload"],
        json!({"From": "+15551234567", "Body": "Hello there", "MediaUrl": ["a", "b"]})
    );
}

/// Nango's toggles drop what they turn off, for every URL; a route (Nango's per-connection URL
/// override) sends the events of its connections to its URL instead of the environment's.
#[test]
fn toggles_and_routes_choose_what_goes_where() {
    let shared = Receiver::ok();
    let routed = Receiver::ok();
    let d = Daemon::start();
    let put = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"url": shared.url(), "format": "nango", "allow_insecure_http": true,
            "toggles": {"on_sync_completion_always": false, "on_auth_refresh_error": false},
            "routes": [{"url": routed.url(), "connection_ids": ["dev-conn"]}]}}),
    );
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(
        put.body["webhooks"]["toggles"],
        json!({"on_sync_completion_always": false, "on_sync_error": true, "on_auth_creation": true,
               "on_auth_refresh_error": false, "on_async_action_completion": true})
    );
    assert_eq!(
        put.body["webhooks"]["routes"][0]["connection_ids"],
        json!(["dev-conn"])
    );
    let bad = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"routes": [{"url": routed.url()}]}}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("webhooks.routes[0]"), "{}", bad.text);

    let sync = |connection: &str, records: Value| {
        d.start_operation(
            "prod",
            PROD_KEY,
            &json!({"type": "sync", "integration": "github", "connection_id": connection,
                    "script": "issues", "state": "success", "records": records}),
        )
    };
    // One model changed, one not: only the changed one is reported.
    sync(
        "c1",
        json!([{"model": "Issue", "added": 1}, {"model": "Comment"}]),
    );
    // Nothing changed: nothing is sent.
    sync("c1", json!([{"model": "Issue"}]));
    // A failed refresh: turned off.
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "action": "refresh_token", "integration": "github",
                "connection_id": "c1", "state": "failed", "error": {"message": "invalid_grant"}}),
    );
    // A creation: sent.
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "integration": "github", "connection_id": "c1", "state": "success"}),
    );
    // The routed connection's sync goes to its own URL only.
    sync("dev-conn", json!([{"model": "Issue", "updated": 2}]));

    let to_shared = shared.wait_for(2, WAIT);
    let routed_requests = routed.wait_for(1, WAIT);
    let list = d
        .get(&format!("{PROD}/deliveries?limit=100"), PROD_KEY)
        .body;
    let mut queued: Vec<(String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["url"].as_str().unwrap().to_owned(),
                d["event"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    queued.sort();
    let mut expected = vec![
        (shared.url(), "sync.completed".to_owned()),
        (shared.url(), "auth.created".to_owned()),
        (routed.url(), "sync.completed".to_owned()),
    ];
    expected.sort();
    assert_eq!(queued, expected);
    let models: Vec<Value> = to_shared
        .iter()
        .map(|r| r.json())
        .filter(|b| b["type"] == "sync")
        .map(|b| b["model"].clone())
        .collect();
    assert_eq!(models, [json!("Issue")], "no body for the unchanged model");
    assert_eq!(routed_requests[0].json()["connectionId"], "dev-conn");
    check_with_nango_sdk(
        d.get(&format!("{PROD}/settings/webhook-secret"), ADMIN)
            .body["secret"]
            .as_str()
            .unwrap(),
        &routed_requests,
    );
}
