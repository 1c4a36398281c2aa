//! Webhook notifications end to end: a real receiver on loopback, signatures checked by an
//! independent implementation and by the PyPI `standardwebhooks` package, retries (server
//! errors, 429 with Retry-After, 410, timeouts, a receiver that comes back), the five events and
//! when they must not fire, settings, deliveries and ingress.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use opslog::config::{Config, HumanDuration, WebhooksConfig};
use serde_json::{json, Value};

use crate::receiver::*;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WAIT: Duration = Duration::from_secs(30);

fn durations(items: &[&str]) -> Vec<HumanDuration> {
    items
        .iter()
        .map(|d| HumanDuration(humantime::parse_duration(d).unwrap()))
        .collect()
}

/// prod sends to `url` on a short schedule (tests must not wait minutes).
fn webhooks_to(url: &str, schedule: &[&str]) -> impl FnOnce(&mut Config) {
    let webhooks = WebhooksConfig {
        url: Some(url.to_owned()),
        retry_schedule: Some(durations(schedule)),
        timeout: Some(HumanDuration(Duration::from_secs(2))),
        ..Default::default()
    };
    move |config: &mut Config| {
        config.environments.get_mut("prod").unwrap().webhooks = webhooks;
    }
}

fn secret(d: &Daemon) -> String {
    let reply = d.get(&format!("{PROD}/settings/webhook-secret"), ADMIN);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["secret"].as_str().unwrap().to_owned()
}

fn deliveries(d: &Daemon, query: &str) -> Value {
    let reply = d.get(&format!("{PROD}/deliveries?{query}"), PROD_KEY);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

fn delivery(d: &Daemon, id: &str) -> Value {
    let reply = d.get(&format!("{PROD}/deliveries/{id}"), PROD_KEY);
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

/// Polls a delivery until `done` holds for it.
fn wait_delivery(d: &Daemon, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(WAIT, || {
        let body = delivery(d, id);
        done(&body).then_some(body)
    })
}

fn only_delivery(d: &Daemon) -> String {
    let list = deliveries(d, "");
    assert_eq!(list["total"], 1, "{list}");
    list["data"][0]["id"].as_str().unwrap().to_owned()
}

/// A sync that starts and then ends with `end`; returns its id.
fn sync(d: &Daemon, end: Value) -> String {
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "script": "issues"}),
    );
    let reply = d.patch(&format!("{PROD}/operations/{id}"), PROD_KEY, &end);
    assert_eq!(reply.status, 200, "{}", reply.text);
    id
}

fn statuses(detail: &Value) -> Vec<Value> {
    detail["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].clone())
        .collect()
}

#[test]
fn deliveries_are_signed_verifiable_and_logged() {
    let receiver = Receiver::ok();
    let d = Daemon::start_with(webhooks_to(&receiver.url(), &["0s", "1s"]));
    let secret = secret(&d);
    assert!(secret.starts_with("whsec_"), "generated when absent");
    let op = sync(
        &d,
        json!({"state": "success", "records": [{"model": "Issue", "added": 3, "updated": 1}]}),
    );
    let requests = receiver.wait_for(2, WAIT);
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert!(
            verify_standard(&secret, r),
            "webhook-signature verifies: {r:?}"
        );
        assert!(verify_nango(&secret, r), "X-Nango-* verify: {r:?}");
        assert!(!verify_standard(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            r
        ));
        assert_eq!(r.header("content-type"), "application/json");
        assert_eq!(
            r.header("user-agent"),
            format!("opslog/{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(r.header("webhook-timestamp").parse::<i64>().unwrap() > 1_700_000_000);
        assert_eq!(r.path, "/hook");
        let body = r.text();
        assert!(
            !body.contains(": ") && !body.contains('\n'),
            "compact: {body}"
        );
        assert!(body.starts_with(r#"{"id":"evt_"#), "{body}");
    }
    let by_type: BTreeMap<String, Value> = requests
        .iter()
        .map(|r| (r.json()["type"].as_str().unwrap().to_owned(), r.json()))
        .collect();
    let completed = &by_type["sync.completed"];
    assert_eq!(completed["environment"], "prod");
    assert_eq!(completed["integration"], "github");
    assert_eq!(completed["connection_id"], "acme");
    assert_eq!(completed["operation_id"], op.as_str());
    assert_eq!(completed["data"]["success"], true);
    assert_eq!(completed["data"]["script"], "issues");
    assert_eq!(completed["data"]["records"][0]["added"], 3);
    assert!(completed["data"]["ended_at"].is_string());
    let records = &by_type["sync.records"];
    assert_eq!(records["data"]["model"], "Issue");
    assert_eq!(
        (
            records["data"]["added"].as_u64(),
            records["data"]["updated"].as_u64()
        ),
        (Some(3), Some(1))
    );
    assert_ne!(records["id"], completed["id"], "one event id per event");

    // The API shows each delivery with its attempt and the receiver's webhook-id.
    // (Received is not yet recorded: the attempt's result commits just after the answer.)
    let list = eventually(WAIT, || {
        let list = deliveries(&d, "status=delivered");
        (list["total"] == 2).then_some(list)
    });
    assert_eq!(deliveries(&d, "")["total"], 2);
    for item in list["data"].as_array().unwrap() {
        let detail = wait_delivery(&d, item["id"].as_str().unwrap(), |d| {
            d["status"] == "delivered"
        });
        let sent = requests
            .iter()
            .find(|r| r.header("webhook-id") == detail["webhook_id"].as_str().unwrap())
            .expect("the webhook-id of the delivery was received");
        assert_eq!(sent.json(), detail["body"]);
        assert_eq!(detail["url"], receiver.url());
        let attempt = &detail["attempt_log"][0];
        assert_eq!(attempt["status"], 200);
        assert_eq!(attempt["response_excerpt"], "ok");
        assert_eq!(attempt["url"], receiver.url());
        assert!(attempt["duration_ms"].is_u64() && attempt["started_at"].is_string());
        // ... and as a webhook:deliver operation with one http message per attempt.
        let log = d.get(
            &format!(
                "{PROD}/operations/{}",
                detail["log_operation_id"].as_str().unwrap()
            ),
            PROD_KEY,
        );
        assert_eq!(
            (&log.body["type"], &log.body["action"], &log.body["state"]),
            (&json!("webhook"), &json!("deliver"), &json!("success")),
            "{}",
            log.text
        );
        let messages = d.get(
            &format!(
                "{PROD}/operations/{}/messages",
                detail["log_operation_id"].as_str().unwrap()
            ),
            PROD_KEY,
        );
        assert_eq!(messages.body["total"], 1, "{}", messages.text);
        let message = &messages.body["data"][0];
        assert_eq!(message["type"], "http");
        assert_eq!(message["response"]["status"], 200);
        assert_eq!(
            message["request"]["headers"]["webhook-id"],
            detail["webhook_id"]
        );
    }
    // Delivery logs never cause deliveries.
    assert_eq!(deliveries(&d, "")["total"], 2);
}

#[test]
fn the_standardwebhooks_package_verifies_captured_requests() {
    let receiver = Receiver::ok();
    let d = Daemon::start_with(webhooks_to(&receiver.url(), &["0s"]));
    let old = secret(&d);
    sync(
        &d,
        json!({"state": "failed", "error": {"message": "rate limited"}}),
    );
    receiver.wait_for(1, WAIT);
    // During a rotation both secrets sign: each must verify on its own.
    let rotated = d.raw(
        "POST",
        &format!("{PROD}/settings/webhook-secret/rotate"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(rotated.body["previous_secret"], old.as_str());
    sync(&d, json!({"state": "success"}));
    let requests = receiver.wait_for(2, WAIT);
    let mut cases = Vec::new();
    for (request, secrets) in [(&requests[0], vec![&old]), (&requests[1], vec![&new, &old])] {
        assert_eq!(
            request.header("webhook-signature").split(' ').count(),
            secrets.len()
        );
        for secret in secrets {
            assert!(verify_standard(secret, request));
            cases.push(json!({
                "secret": secret,
                "body": request.text(),
                "headers": {
                    "webhook-id": request.header("webhook-id"),
                    "webhook-timestamp": request.header("webhook-timestamp"),
                    "webhook-signature": request.header("webhook-signature"),
                },
            }));
        }
    }
    assert!(
        verify_nango(&new, &requests[1]),
        "X-Nango-* use the newest secret"
    );
    let file = d.dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
cases = json.load(open(sys.argv[1]))
for case in cases:
    Webhook(case["secret"]).verify(case["body"], case["headers"])
    try:
        Webhook(case["secret"]).verify(case["body"] + " ", case["headers"])
    except Exception:
        pass
    else:
        sys.exit("a tampered body verified")
print("verified", len(cases))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .expect("python3 runs (scripts/test installs standardwebhooks)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "verified 3");
}

#[test]
fn events_fire_exactly_when_specified() {
    let receiver = Receiver::ok();
    let d = Daemon::start_with(|config| {
        webhooks_to(&receiver.url(), &["0s", "1s"])(config);
        config.deadlines.auth = HumanDuration(Duration::from_millis(300));
        config.deadlines.sweep_every = HumanDuration(Duration::from_millis(50));
    });
    let events_of = |op: &str| -> Vec<String> {
        let list = deliveries(&d, "limit=500");
        let mut events: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["operation_id"] == op)
            .map(|d| d["event"].as_str().unwrap().to_owned())
            .collect();
        events.sort();
        events
    };
    let start = |body: Value| d.start_operation("prod", PROD_KEY, &body);
    let end = |id: &str, body: Value| {
        let reply = d.patch(&format!("{PROD}/operations/{id}"), PROD_KEY, &body);
        assert_eq!(reply.status, 200, "{}", reply.text);
    };
    // Deliveries are committed with the change, so they are listed as soon as it is acknowledged.
    let running = start(json!({"type": "sync"}));
    assert!(
        events_of(&running).is_empty(),
        "a running sync fires nothing"
    );
    end(
        &running,
        json!({"state": "success", "records": [{"model": "Issue"}]}),
    );
    assert_eq!(
        events_of(&running),
        ["sync.completed"],
        "zero changes: no sync.records"
    );
    end(&running, json!({"state": "success"}));
    assert_eq!(
        events_of(&running),
        ["sync.completed"],
        "repeating the end fires nothing"
    );

    let changed = sync(
        &d,
        json!({"state": "success", "records": [
            {"model": "Issue", "deleted": 1}, {"model": "User"}, {"model": "Repo", "added": 2}]}),
    );
    assert_eq!(
        events_of(&changed),
        ["sync.completed", "sync.records", "sync.records"],
        "one sync.records per changed model"
    );
    let failed = sync(
        &d,
        json!({"state": "failed", "records": [{"model": "Issue", "added": 1}]}),
    );
    assert_eq!(
        events_of(&failed),
        ["sync.completed"],
        "a failed sync reports no records"
    );
    let cancelled = start(json!({"type": "sync", "state": "cancelled"}));
    assert_eq!(events_of(&cancelled), ["sync.completed"], "created ended");

    let auth = start(json!({"type": "auth", "action": "create_connection"}));
    end(&auth, json!({"state": "success"}));
    assert_eq!(events_of(&auth), ["auth.created"]);
    let refresh_ok = start(json!({"type": "auth", "action": "refresh_token"}));
    end(&refresh_ok, json!({"state": "success"}));
    assert!(
        events_of(&refresh_ok).is_empty(),
        "a refresh succeeding is no event"
    );
    let refresh_failed = start(json!({"type": "auth", "action": "refresh_token"}));
    end(
        &refresh_failed,
        json!({"state": "failed", "error": {"message": "invalid_grant"}}),
    );
    assert_eq!(events_of(&refresh_failed), ["auth.failed"]);
    let auth_timeout = start(json!({"type": "auth", "action": "create_connection"}));
    let failed_by_sweeper = eventually(WAIT, || {
        let events = events_of(&auth_timeout);
        (!events.is_empty()).then_some(events)
    });
    assert_eq!(failed_by_sweeper, ["auth.failed"], "a timed-out auth fails");

    let incoming = start(
        json!({"type": "webhook", "action": "incoming", "state": "success",
        "request": {"method": "POST", "url": "/x", "body": {"hello": "world"}}}),
    );
    assert_eq!(events_of(&incoming), ["webhook.received"]);
    for other in [
        json!({"type": "action", "state": "failed"}),
        json!({"type": "proxy", "state": "success"}),
        json!({"type": "webhook", "action": "forward", "state": "failed"}),
        json!({"type": "webhook", "action": "deliver", "state": "failed"}),
        json!({"type": "deploy", "state": "success"}),
    ] {
        let id = start(other.clone());
        assert!(events_of(&id).is_empty(), "{other} fires nothing");
    }
    let expected = 1 + 3 + 1 + 1 + 1 + 1 + 1 + 1;
    assert_eq!(deliveries(&d, "")["total"], expected);
    // Every delivery arrives; their webhook:deliver operations end and cause nothing more.
    let received = receiver.wait_for(expected, WAIT);
    let events: BTreeSet<String> = received
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events.len(), 5, "{events:?}");
    eventually(WAIT, || {
        (deliveries(&d, "status=delivered")["total"] == expected).then_some(())
    });
    let payload = received
        .iter()
        .find(|r| r.json()["type"] == "webhook.received")
        .unwrap()
        .json();
    assert_eq!(payload["data"]["payload"], json!({"hello": "world"}));
    assert_eq!(deliveries(&d, "")["total"], expected);
    assert_eq!(receiver.requests().len(), expected);
    assert_eq!(deliveries(&d, "event=auth.failed")["total"], 2);
}

#[test]
fn events_filter_and_secondary_url() {
    let primary = Receiver::ok();
    let secondary = Receiver::ok();
    let d = Daemon::start_with(|config| {
        config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(primary.url()),
            secondary_url: Some(secondary.url()),
            events: Some(vec![opslog::model::EventType::SyncCompleted]),
            ..Default::default()
        };
    });
    let op = sync(
        &d,
        json!({"state": "success", "records": [{"model": "A", "added": 1}]}),
    );
    let list = deliveries(&d, "");
    assert_eq!(list["total"], 2, "sync.records is not enabled: {list}");
    let a = primary.wait_for(1, WAIT);
    let b = secondary.wait_for(1, WAIT);
    assert_eq!(a[0].json()["id"], b[0].json()["id"], "the same event");
    assert_eq!(a[0].body, b[0].body);
    assert_ne!(
        a[0].header("webhook-id"),
        b[0].header("webhook-id"),
        "one delivery per URL"
    );
    assert_eq!(a[0].json()["operation_id"], op.as_str());
    // dev has no URL: nothing is queued there.
    let dev = d.start_operation("dev", DEV_KEY, &json!({"type": "sync", "state": "success"}));
    assert!(!dev.is_empty());
    let dev_list = d.get("/v1/environments/dev/deliveries", DEV_KEY);
    assert_eq!(dev_list.body["total"], 0);
    // A key of another environment sees none of prod's deliveries.
    let id = list["data"][0]["id"].as_str().unwrap();
    let other = d.get(&format!("/v1/environments/prod/deliveries/{id}"), DEV_KEY);
    assert_eq!(other.status, 404);
}

#[test]
fn a_receiver_that_is_down_gets_the_delivery_when_it_returns() {
    let addr = free_port();
    let url = format!("http://{addr}/hook");
    let mut schedule = vec!["0s"];
    schedule.extend(["200ms"; 29]);
    let d = Daemon::start_with(webhooks_to(&url, &schedule));
    sync(&d, json!({"state": "success"}));
    let id = only_delivery(&d);
    let down = wait_delivery(&d, &id, |d| d["attempts"].as_u64() >= Some(2));
    assert_eq!(down["status"], "pending");
    let first = &down["attempt_log"][0];
    assert_eq!(first["status"], Value::Null);
    assert_eq!(
        down["last_status"],
        Value::Null,
        "no response, so no status"
    );
    assert!(
        first["error"].as_str().unwrap().contains("connection"),
        "{first}"
    );
    assert!(first["retry_at"].is_string());
    let receiver = Receiver::start_on(std::net::TcpListener::bind(addr).unwrap(), |_, _| {
        Answer::Status(204, "")
    });
    let done = wait_delivery(&d, &id, |d| d["status"] == "delivered");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("webhook-id"),
        done["webhook_id"].as_str().unwrap()
    );
    assert_eq!(
        done["attempt_log"].as_array().unwrap().last().unwrap()["status"],
        204
    );
    assert_eq!(done["last_error"], Value::Null);
}

#[test]
fn server_errors_retry_then_fail_and_can_be_resent() {
    let receiver = Receiver::start(|_, _| Answer::Status(500, "boom: database unavailable"));
    let d = Daemon::start_with(webhooks_to(&receiver.url(), &["0s", "100ms", "100ms"]));
    sync(&d, json!({"state": "success"}));
    let id = only_delivery(&d);
    let failed = wait_delivery(&d, &id, |d| d["status"] == "failed");
    assert_eq!(statuses(&failed), [json!(500), json!(500), json!(500)]);
    assert_eq!(failed["attempts"], 3);
    assert_eq!(failed["next_attempt_at"], Value::Null);
    assert!(
        failed["last_error"]
            .as_str()
            .unwrap()
            .contains("3 attempts"),
        "{failed}"
    );
    assert_eq!(
        failed["attempt_log"][0]["response_excerpt"],
        "boom: database unavailable"
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| r.header("webhook-id") == requests[0].header("webhook-id")),
        "the same webhook-id on every attempt"
    );
    let log = d.get(
        &format!(
            "{PROD}/operations/{}",
            failed["log_operation_id"].as_str().unwrap()
        ),
        PROD_KEY,
    );
    assert_eq!(log.body["state"], "failed");
    assert_eq!(log.body["message_count"], 3);
    let listed = deliveries(&d, "status=failed");
    assert_eq!(listed["total"], 1);
    assert_eq!(listed["data"][0]["last_status"], 500, "{listed}");
    assert_eq!(failed["last_status"], 500);

    // Retry one: the receiver is fixed now.
    receiver.set_behaviour(|_, _| Answer::Status(200, "ok"));
    let retried = d.raw(
        "POST",
        &format!("{PROD}/deliveries/{id}/retry"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(retried.status, 202, "{}", retried.text);
    assert_eq!(retried.body["status"], "pending");
    let delivered = wait_delivery(&d, &id, |d| d["status"] == "delivered");
    assert_eq!(delivered["attempts"], 4);
    assert_eq!(delivered["last_status"], 200);
    let requests = receiver.requests();
    assert_eq!(
        requests[3].header("webhook-id"),
        requests[0].header("webhook-id")
    );
    assert_ne!(
        delivered["log_operation_id"], failed["log_operation_id"],
        "a new round logs under a new webhook:deliver operation"
    );

    // Replay a window: only failed ones by default, so nothing now; delivered ones on request.
    let from = "2000-01-01T00:00:00Z";
    let replay = |status: &str| {
        d.raw(
            "POST",
            &format!("{PROD}/deliveries/replay?from={from}{status}"),
            Some(ADMIN),
            &[],
            None,
        )
    };
    let none = replay("");
    assert_eq!(
        (none.status, &none.body["requeued"]),
        (202, &json!(0)),
        "{}",
        none.text
    );
    let again = replay("&status=delivered");
    assert_eq!(again.body["requeued"], 1, "{}", again.text);
    receiver.wait_for(5, WAIT);
    wait_delivery(&d, &id, |d| {
        d["status"] == "delivered" && d["attempts"] == 5
    });
}

#[test]
fn too_many_requests_waits_as_retry_after_says() {
    let receiver = Receiver::start(|_, index| match index {
        0 => Answer::WithHeaders(429, vec![("retry-after", "2".into())]),
        _ => Answer::Status(200, "ok"),
    });
    let d = Daemon::start_with(webhooks_to(&receiver.url(), &["0s", "50ms", "50ms"]));
    sync(&d, json!({"state": "success"}));
    let id = only_delivery(&d);
    let done = wait_delivery(&d, &id, |d| d["status"] == "delivered");
    assert_eq!(statuses(&done), [json!(429), json!(200)]);
    let first = &done["attempt_log"][0];
    let started = opslog::model::Timestamp::parse(first["started_at"].as_str().unwrap()).unwrap();
    let retry_at = opslog::model::Timestamp::parse(first["retry_at"].as_str().unwrap()).unwrap();
    assert!(
        retry_at.millis() - started.millis() >= 2000,
        "scheduled no sooner than Retry-After: {first}"
    );
    let requests = receiver.requests();
    assert!(
        requests[1].at - requests[0].at >= Duration::from_millis(1900),
        "the second attempt waited for Retry-After"
    );
}

#[test]
fn gone_stops_at_once() {
    let receiver = Receiver::start(|_, _| Answer::Status(410, "unsubscribed"));
    let d = Daemon::start_with(webhooks_to(&receiver.url(), &["0s", "50ms", "50ms"]));
    sync(&d, json!({"state": "success"}));
    let id = only_delivery(&d);
    let failed = wait_delivery(&d, &id, |d| d["status"] == "failed");
    assert_eq!(statuses(&failed), [json!(410)]);
    assert!(
        failed["last_error"].as_str().unwrap().contains("410"),
        "{failed}"
    );
    assert_eq!(receiver.requests().len(), 1);
}

#[test]
fn a_hanging_receiver_times_out_and_is_retried() {
    let receiver = Receiver::start(|_, _| Answer::Hang);
    let d = Daemon::start_with(|config| {
        webhooks_to(&receiver.url(), &["0s", "50ms"])(config);
        config
            .environments
            .get_mut("prod")
            .unwrap()
            .webhooks
            .timeout = Some(HumanDuration(Duration::from_millis(300)));
    });
    sync(&d, json!({"state": "success"}));
    let id = only_delivery(&d);
    let failed = wait_delivery(&d, &id, |d| d["status"] == "failed");
    let log = failed["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    for attempt in log {
        assert_eq!(attempt["status"], Value::Null);
        assert!(
            attempt["error"].as_str().unwrap().contains("timed out"),
            "{attempt}"
        );
    }
    assert_eq!(receiver.requests().len(), 2);
}

#[test]
fn redirects_are_not_followed() {
    let target = Receiver::ok();
    let location = target.url();
    let receiver =
        Receiver::start(move |_, _| Answer::WithHeaders(307, vec![("location", location.clone())]));
    let d = Daemon::start_with(webhooks_to(&receiver.url(), &["0s"]));
    sync(&d, json!({"state": "success"}));
    let id = only_delivery(&d);
    let failed = wait_delivery(&d, &id, |d| d["status"] == "failed");
    assert_eq!(statuses(&failed), [json!(307)]);
    assert!(target.requests().is_empty());
}

#[test]
fn settings_are_masked_validated_and_respect_the_file() {
    let d = Daemon::start_with(|config| {
        config
            .environments
            .get_mut("prod")
            .unwrap()
            .webhooks
            .timeout = Some(HumanDuration(Duration::from_secs(5)));
    });
    let path = format!("{PROD}/settings");
    let got = d.get(&path, ADMIN);
    assert_eq!(got.status, 200, "{}", got.text);
    let webhooks = &got.body["webhooks"];
    assert_eq!(webhooks["url"], Value::Null);
    assert_eq!(webhooks["timeout"], "5s");
    assert_eq!(webhooks["read_only"], json!(["timeout"]));
    assert_eq!(
        webhooks["retry_schedule"],
        json!(["0s", "5s", "5m", "30m", "2h", "5h", "10h", "10h"])
    );
    assert_eq!(
        webhooks["events"].as_array().unwrap().len(),
        8,
        "every event by default, alerts included"
    );
    let secret = secret(&d);
    assert!(
        !got.text.contains(&secret[6..]),
        "never in full: {}",
        got.text
    );
    assert!(got.body["ingress"]["token"].as_str().unwrap().len() >= 40);

    let put = |body: Value| d.send("PUT", &path, ADMIN, &body);
    let ok = put(
        json!({"webhooks": {"url": "https://backend.example.com/opslog",
        "events": ["sync.completed", "auth.failed"], "retry_schedule": ["0s", "1m"]}}),
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(
        ok.body["webhooks"]["url"],
        "https://backend.example.com/opslog"
    );
    assert_eq!(ok.body["webhooks"]["retry_schedule"], json!(["0s", "1m"]));
    let again = d.get(&path, ADMIN);
    assert_eq!(
        again.body["webhooks"]["events"],
        json!(["sync.completed", "auth.failed"])
    );

    for (body, status, field, needle) in [
        (
            json!({"webhooks": {"url": "http://backend.example.com/x"}}),
            400,
            "webhooks.url",
            "allow_insecure_http",
        ),
        (
            json!({"webhooks": {"url": "backend.example.com"}}),
            400,
            "webhooks.url",
            "absolute",
        ),
        (
            json!({"webhooks": {"secondary_url": "ftp://x.example.com/"}}),
            400,
            "webhooks.secondary_url",
            "ftp",
        ),
        (
            json!({"webhooks": {"timeout": "9s"}}),
            409,
            "webhooks.timeout",
            "config file",
        ),
        (
            json!({"webhooks": {"retry_schedule": []}}),
            400,
            "webhooks.retry_schedule",
            "1 to",
        ),
        (
            json!({"webhooks": {"retry_schedule": ["0s", "soon"]}}),
            400,
            "webhooks.retry_schedule",
            "soon",
        ),
        (
            json!({"webhooks": {"events": ["sync.done"]}}),
            400,
            "webhooks.events[0]",
            "sync.completed",
        ),
        (
            json!({"webhooks": {"secret": "whsec_x"}}),
            400,
            "webhooks.secret",
            "rotate",
        ),
        (
            json!({"webhooks": {"urll": "https://x.example.com"}}),
            400,
            "webhooks",
            "urll",
        ),
        (json!({"otle": {}}), 400, "", "otle"),
    ] {
        let reply = put(body.clone());
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert!(reply.message().contains(needle), "{body}: {}", reply.text);
        if !field.is_empty() {
            assert!(
                reply.body["error"]["field"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(field),
                "{body}: {}",
                reply.text
            );
        }
    }
    // A refused change wrote nothing.
    assert_eq!(d.get(&path, ADMIN).body, again.body);
    let insecure = put(
        json!({"webhooks": {"url": "http://backend.example.com/x", "allow_insecure_http": true}}),
    );
    assert_eq!(insecure.status, 200, "{}", insecure.text);
    let reset = put(json!({"webhooks": {"url": null, "allow_insecure_http": null}}));
    assert_eq!(reset.body["webhooks"]["url"], Value::Null);

    // Revealing and rotating secrets is for admins.
    let reveal = d.get(&format!("{path}/webhook-secret"), PROD_KEY);
    assert_eq!((reveal.status, reveal.code()), (403, "insufficient_scope"));
    let rotate = format!("{path}/webhook-secret/rotate");
    let denied = d.raw("POST", &rotate, Some(PROD_KEY), &[], None);
    assert_eq!(denied.status, 403);
    let bad_grace = d.raw(
        "POST",
        &format!("{rotate}?grace=forever"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(
        (bad_grace.status, bad_grace.code()),
        (400, "invalid_query"),
        "{}",
        bad_grace.text
    );
    let rotated = d.raw(
        "POST",
        &format!("{rotate}?grace=1h"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_eq!(rotated.body["previous_secret"], secret.as_str());
    let after = d.get(&path, ADMIN);
    assert!(after.body["webhooks"]["previous_secret_expires_at"].is_string());

    // Settings survive a restart.
    let dir = d.stop();
    let d = Daemon::start_with(|config| {
        config.server.data_dir = dir.path().to_owned();
        config
            .environments
            .get_mut("prod")
            .unwrap()
            .webhooks
            .timeout = Some(HumanDuration(Duration::from_secs(5)));
    });
    let restarted = d.get(&path, ADMIN);
    assert_eq!(
        restarted.body["webhooks"]["events"],
        json!(["sync.completed", "auth.failed"])
    );
    assert_eq!(secret_of(&d), rotated.body["secret"].as_str().unwrap());
    drop(dir);
}

fn secret_of(d: &Daemon) -> String {
    secret(d)
}

#[test]
fn deliveries_endpoints_reject_bad_input() {
    let d = Daemon::start();
    for (query, field, needle) in [
        ("status=done", "status", "pending, delivered, failed"),
        ("event=sync", "event", "sync.completed"),
        ("from=yesterday", "from", "RFC 3339"),
        ("limit=0", "limit", "between 1 and 500"),
        ("cursor=zzz", "cursor", "next_cursor"),
        ("colour=red", "colour", "unknown field"),
    ] {
        let reply = d.get(&format!("{PROD}/deliveries?{query}"), PROD_KEY);
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(
            reply.body["error"]["field"], field,
            "{query}: {}",
            reply.text
        );
        assert!(reply.message().contains(needle), "{query}: {}", reply.text);
    }
    let bad_id = d.get(&format!("{PROD}/deliveries/nope"), PROD_KEY);
    assert_eq!((bad_id.status, bad_id.code()), (400, "invalid_id"));
    let missing = d.get(
        &format!("{PROD}/deliveries/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        PROD_KEY,
    );
    assert_eq!(
        (missing.status, missing.code()),
        (404, "delivery_not_found")
    );
    let retry_missing = d.raw(
        "POST",
        &format!("{PROD}/deliveries/01ARZ3NDEKTSV4RRFFQ69G5FAV/retry"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(retry_missing.status, 404, "{}", retry_missing.text);
    for (query, field) in [
        ("", "from"),
        ("from=2026-01-01T00:00:00Z&status=pending", "status"),
        ("from=later", "from"),
    ] {
        let reply = d.raw(
            "POST",
            &format!("{PROD}/deliveries/replay?{query}"),
            Some(ADMIN),
            &[],
            None,
        );
        assert_eq!(reply.status, 400, "{query}: {}", reply.text);
        assert_eq!(
            reply.body["error"]["field"], field,
            "{query}: {}",
            reply.text
        );
    }
    let unauthenticated = d.raw("GET", &format!("{PROD}/deliveries"), None, &[], None);
    assert_eq!(unauthenticated.status, 401);
}

#[test]
fn deliveries_page_newest_first_with_a_total() {
    let receiver = Receiver::ok();
    let d = Daemon::start_with(webhooks_to(&receiver.url(), &["0s"]));
    for _ in 0..5 {
        sync(&d, json!({"state": "success"}));
    }
    let first = deliveries(&d, "limit=2");
    assert_eq!(first["total"], 5);
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => page = deliveries(&d, &format!("limit=2&cursor={cursor}")),
            None => break,
        }
        assert_eq!(page["total"], 5);
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");
    assert_eq!(deliveries(&d, "from=2999-01-01T00:00:00Z")["total"], 0);
    assert_eq!(
        deliveries(&d, "event=sync.completed&from=2000-01-01T00:00:00Z")["total"],
        5
    );
}

#[test]
fn ingress_records_the_payload_and_notifies() {
    let receiver = Receiver::ok();
    let d = Daemon::start_with(|config| {
        webhooks_to(&receiver.url(), &["0s"])(config);
        config.ingest.incoming_webhook_max_bytes = 2048;
    });
    let token = d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let payload = br#"{"action":"opened","issue":{"number":7}}"#;
    let reply = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/github?connection_id=acme&extra=1"),
        None,
        &[
            ("authorization", "Bearer third-party-secret"),
            ("x-github-event", "issues"),
        ],
        Some(payload),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    let op_id = reply.body["operation_id"].as_str().unwrap().to_owned();
    let op = d.get(&format!("{PROD}/operations/{op_id}"), PROD_KEY).body;
    assert_eq!(
        (&op["type"], &op["action"]),
        (&json!("webhook"), &json!("incoming"))
    );
    assert_eq!(op["integration"], "github");
    assert_eq!(op["connection_id"], "acme");
    assert_eq!(op["request"]["body"]["issue"]["number"], 7);
    assert_eq!(op["request"]["headers"]["authorization"], "[REDACTED]");
    assert!(
        !op.to_string().contains(&token),
        "the token is a credential: {op}"
    );
    // The event is queued by the same commit.
    let list = deliveries(&d, "event=webhook.received");
    assert_eq!(list["total"], 1, "{list}");
    let sent = receiver.wait_for(1, WAIT)[0].json();
    assert_eq!(sent["type"], "webhook.received");
    assert_eq!(sent["operation_id"], op_id.as_str());
    assert_eq!(sent["integration"], "github");
    assert_eq!(sent["connection_id"], "acme");
    assert_eq!(
        sent["data"]["payload"],
        serde_json::from_slice::<Value>(payload).unwrap()
    );
    assert_eq!(sent["data"]["headers"]["x-github-event"], "issues");
    assert_eq!(sent["data"]["headers"]["authorization"], "[REDACTED]");

    let text = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/slack"),
        None,
        &[("content-type", "text/plain")],
        Some(b"ping"),
    );
    assert_eq!(text.status, 200, "{}", text.text);
    let too_big = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/github"),
        None,
        &[],
        Some(&[b' '; 4096]),
    );
    assert_eq!((too_big.status, too_big.code()), (413, "body_too_large"));
    let unknown = d.raw("POST", "/v1/hooks/hook_0000/github", None, &[], Some(b"{}"));
    assert_eq!((unknown.status, unknown.code()), (404, "hook_not_found"));
    let bad_name = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/github?connection_id="),
        None,
        &[],
        Some(b"{}"),
    );
    assert_eq!(bad_name.status, 400, "{}", bad_name.text);

    // Rotating the token retires the old one at once.
    let rotated = d.raw(
        "POST",
        &format!("{PROD}/settings/ingress-token/rotate"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_token = rotated.body["ingress"]["token"].as_str().unwrap();
    assert_ne!(new_token, token);
    let old = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/github"),
        None,
        &[],
        Some(b"{}"),
    );
    assert_eq!(old.status, 404);
    let new = d.raw(
        "POST",
        &format!("/v1/hooks/{new_token}/github"),
        None,
        &[],
        Some(b"{}"),
    );
    assert_eq!(new.status, 200);
}

/// The ingress token of prod.
fn ingress_token(d: &Daemon) -> String {
    d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn receive(d: &Daemon, token: &str, payload: &[u8]) -> String {
    let reply = d.raw(
        "POST",
        &format!("/v1/hooks/{token}/github"),
        None,
        &[("content-type", "application/json")],
        Some(payload),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["operation_id"].as_str().unwrap().to_owned()
}

fn wait_state(d: &Daemon, id: &str, state: &str) -> Value {
    eventually(WAIT, || {
        let op = d.get(&format!("{PROD}/operations/{id}"), PROD_KEY).body;
        (op["state"] == state).then_some(op)
    })
}

#[test]
fn an_incoming_webhook_ends_with_the_backends_answer() {
    // The backend processes payloads saying `ok` and fails the others.
    let receiver = Receiver::start(|request, _| {
        if request.json()["data"]["payload"]["ok"] == true {
            Answer::Status(200, "processed")
        } else {
            Answer::Status(500, "cannot process")
        }
    });
    let d = Daemon::start_with(webhooks_to(&receiver.url(), &["0s", "0s"]));
    let token = ingress_token(&d);

    let processed = receive(&d, &token, br#"{"ok": true}"#);
    let op = wait_state(&d, &processed, "success");
    assert_eq!(op["message_count"], 1, "{op}");
    let messages = d
        .get(&format!("{PROD}/operations/{processed}/messages"), PROD_KEY)
        .body;
    let attempt = &messages["data"][0];
    assert_eq!(attempt["type"], "http");
    assert_eq!(attempt["response"]["status"], 200);
    assert_eq!(attempt["request"]["url"], receiver.url().as_str());

    let refused = receive(&d, &token, br#"{"ok": false}"#);
    let op = wait_state(&d, &refused, "failed");
    let error = op["error"]["message"].as_str().unwrap();
    assert!(
        error.starts_with("HTTP 500; gave up after 2 attempts"),
        "{op}"
    );
    let messages = d
        .get(&format!("{PROD}/operations/{refused}/messages"), PROD_KEY)
        .body;
    let statuses: Vec<&Value> = messages["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["response"]["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(500), &json!(500)],
        "every attempt: {messages}"
    );
    // Nothing else logs these deliveries: the incoming operation is their log.
    let logs = d
        .get(&format!("{PROD}/operations?type=webhook:deliver"), PROD_KEY)
        .body;
    assert_eq!(logs["total"], 0, "{logs}");
}

#[test]
fn an_incoming_webhook_nobody_forwards_waits_for_the_platform_or_its_deadline() {
    let d = Daemon::start_with(|config| {
        config.deadlines.webhook = HumanDuration(Duration::from_millis(400));
        config.deadlines.sweep_every = HumanDuration(Duration::from_millis(50));
    });
    let token = ingress_token(&d);
    let settled = receive(&d, &token, b"{}");
    let op = d
        .get(&format!("{PROD}/operations/{settled}"), PROD_KEY)
        .body;
    assert_eq!(op["state"], "running", "not processed yet: {op}");
    let reply = d.patch(
        &format!("{PROD}/operations/{settled}"),
        PROD_KEY,
        &json!({"state": "failed", "error": {"message": "unknown event type"}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["state"], "failed");

    let forgotten = receive(&d, &token, b"{}");
    let op = wait_state(&d, &forgotten, "timeout");
    assert_eq!(op["type"], "webhook");
    // The settled one kept what the platform said.
    let op = d
        .get(&format!("{PROD}/operations/{settled}"), PROD_KEY)
        .body;
    assert_eq!(op["error"]["message"], "unknown event type");
}
