//! The audit log with the real daemon: a record for each admin action (who, what, on what,
//! secrets masked), none of the credentials or erased data in it, admin only, filters and pages,
//! kept across a restart, removed after `[audit] retention`.

use std::collections::BTreeSet;
use std::time::Duration;

use opslog::config::ApiKey;
use opslog::scope::KeyScope;
use serde_json::{json, Value};

use crate::collector::Collector;
use crate::receiver::Receiver;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const INGEST_ONLY: &str = "test-prod-ingest-only-key-0123";
const OTEL_SECRET: &str = "collector-secret-0123456789";
const WAIT: Duration = Duration::from_secs(20);

/// Every record of `GET /v1/audit?query`, following `next_cursor` with pages of `limit`.
fn every_record(d: &Daemon, query: &str, limit: usize) -> Vec<Value> {
    let mut records = Vec::new();
    let mut url = format!("/v1/audit?{query}&limit={limit}");
    for _ in 0..1_000 {
        let page = d.get(&url, ADMIN);
        assert_eq!(page.status, 200, "{url}: {}", page.text);
        records.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(c) => url = format!("/v1/audit?{query}&limit={limit}&cursor={c}"),
            None => return records,
        }
    }
    panic!("more pages than the test wrote");
}

/// The newest record of `action`.
fn newest(d: &Daemon, action: &str) -> Value {
    let page = d.get(&format!("/v1/audit?action={action}&limit=1"), ADMIN);
    assert_eq!(page.status, 200, "{}", page.text);
    let record = page.body["data"][0].clone();
    assert_eq!(record["action"], action, "{}", page.text);
    record
}

fn change<'a>(record: &'a Value, key: &str) -> &'a Value {
    record["detail"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no change of {key} in {record}"))
}

fn sign_in(d: &Daemon, token: &str) -> Reply {
    let body = serde_json::to_vec(&json!({ "token": token })).unwrap();
    d.raw("POST", "/v1/session", None, &[], Some(&body))
}

fn admin_by_api(record: &Value) {
    assert_eq!(record["actor"]["role"], "admin", "{record}");
    assert_eq!(record["actor"]["via"], "api", "{record}");
    assert_eq!(record["actor"]["address"], "127.0.0.1", "{record}");
}

#[test]
fn every_admin_action_is_recorded_with_who_what_and_masked_values() {
    let receiver = Receiver::ok();
    let collector = Collector::start(Vec::new());
    let d = Daemon::start_with(|c| {
        c.environments
            .get_mut("prod")
            .unwrap()
            .api_keys
            .push(ApiKey {
                key: INGEST_ONLY.into(),
                scope: KeyScope::Ingest,
            });
    });
    let mut secrets: Vec<String> = vec![
        ADMIN.into(),
        PROD_KEY.into(),
        INGEST_ONLY.into(),
        OTEL_SECRET.into(),
    ];

    // Settings: which keys changed, old and new values, secrets masked as GET /settings does.
    let old_ingress = d.get(&format!("{PROD}/settings"), ADMIN).body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.push(old_ingress.clone());
    let set = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({
            "webhooks": {"url": receiver.url(), "events": ["sync.completed"]},
            "otel": {"endpoint": collector.url(""), "headers": {"x-api-key": OTEL_SECRET}},
        }),
    );
    assert_eq!(set.status, 200, "{}", set.text);
    let record = newest(&d, "settings.change");
    admin_by_api(&record);
    assert_eq!(record["environment"], "prod");
    assert_eq!(record["target"], "settings");
    let url = change(&record, "webhooks.url");
    assert_eq!(
        (&url["old"], &url["new"]),
        (&Value::Null, &json!(receiver.url()))
    );
    let events = change(&record, "webhooks.events");
    assert_eq!(events["new"], json!(["sync.completed"]));
    assert_eq!(
        change(&record, "otel.headers.x-api-key")["new"],
        "coll…(masked)"
    );
    assert_eq!(
        change(&record, "otel.endpoint")["new"],
        collector.url("").as_str()
    );

    // The secret shown, then rotated; the ingress token rotated.
    let shown = d.get(&format!("{PROD}/settings/webhook-secret"), ADMIN);
    let old_secret = shown.body["secret"].as_str().unwrap().to_owned();
    secrets.push(old_secret.clone());
    let record = newest(&d, "webhook_secret.reveal");
    admin_by_api(&record);
    assert_eq!(record["target"], "webhooks.secret");
    let rotated = d.post(
        &format!("{PROD}/settings/webhook-secret/rotate?grace=1h"),
        ADMIN,
        &json!({}),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    secrets.push(rotated.body["secret"].as_str().unwrap().to_owned());
    let record = newest(&d, "webhook_secret.rotate");
    assert_eq!(record["detail"]["grace"], "1h");
    assert_eq!(record["detail"]["given"], false);
    let secret = change(&record, "webhooks.secret");
    assert_eq!(secret["old"], format!("{}…(masked)", &old_secret[..4]));
    assert!(secret["new"].as_str().unwrap().ends_with("…(masked)"));
    let rotated = d.post(
        &format!("{PROD}/settings/ingress-token/rotate"),
        ADMIN,
        &json!({}),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    secrets.push(
        rotated.body["ingress"]["token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let record = newest(&d, "ingress_token.rotate");
    let token = change(&record, "ingress.token");
    assert_eq!(token["old"], format!("{}…(masked)", &old_ingress[..4]));

    // A finished sync: one delivery and one export, each retried, then replayed.
    let _synced = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme", "state": "success"}),
    );
    let (delivery, export) = eventually(WAIT, || {
        let deliveries = d.get(&format!("{PROD}/deliveries?status=delivered"), ADMIN);
        let exports = d.get(&format!("{PROD}/exports?status=delivered"), ADMIN);
        let delivery = deliveries.body["data"][0]["id"].as_str()?.to_owned();
        let export = exports.body["data"][0]["id"].as_str()?.to_owned();
        Some((delivery, export))
    });
    for (family, action, job) in [
        ("deliveries", "delivery.retry", &delivery),
        ("exports", "export.retry", &export),
    ] {
        let retried = d.post(&format!("{PROD}/{family}/{job}/retry"), ADMIN, &json!({}));
        assert_eq!(retried.status, 202, "{}", retried.text);
        let record = newest(&d, action);
        admin_by_api(&record);
        assert_eq!(record["target"], job.as_str());
        assert_eq!(record["detail"]["requeued"], 1);
        assert_eq!(record["detail"]["ids"], json!([job]));
    }
    eventually(WAIT, || {
        let pending = |family: &str| {
            d.get(&format!("{PROD}/{family}?status=pending"), ADMIN)
                .body["total"]
                == 0
        };
        (pending("deliveries") && pending("exports")).then_some(())
    });
    for (family, action) in [
        ("deliveries", "deliveries.replay"),
        ("exports", "exports.replay"),
    ] {
        let replayed = d.post(
            &format!("{PROD}/{family}/replay?from=2020-01-01T00:00:00Z&status=delivered"),
            ADMIN,
            &json!({}),
        );
        assert_eq!(replayed.status, 202, "{}", replayed.text);
        let record = newest(&d, action);
        assert_eq!(record["detail"]["requeued"], replayed.body["requeued"]);
        assert!(record["detail"]["requeued"].as_u64() >= Some(1), "{record}");
        assert_eq!(record["detail"]["status"], "delivered");
        assert_eq!(record["detail"]["from"], "2020-01-01T00:00:00.000Z");
    }

    // An import (prod's own export: all of it already stored), a backup.
    let export_file = d.get(&format!("{PROD}/export"), ADMIN);
    let imported = d.raw(
        "POST",
        &format!("{PROD}/import"),
        Some(ADMIN),
        &[("content-type", "application/x-ndjson")],
        Some(export_file.text.as_bytes()),
    );
    assert_eq!(imported.status, 200, "{}", imported.text);
    let record = newest(&d, "import");
    assert_eq!(record["environment"], "prod");
    assert_eq!(record["detail"]["imported"], imported.body);
    assert!(imported.body["operations_skipped"].as_u64().unwrap() >= 1);
    let backup = d.get("/v1/backup", ADMIN);
    assert_eq!(backup.status, 200);
    let record = newest(&d, "backup.download");
    admin_by_api(&record);
    assert_eq!(record["environment"], Value::Null);

    // An erasure: its selector and counts, never what it removed.
    let erased = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "erased-integration", "connection_id": "gone-conn",
                "end_user": {"id": "erased-user-77", "email": "erased@example.com"},
                "messages": [{"message": "erased-payload-one"}, {"message": "erased-payload-two"}]}),
    );
    let erasure = d.post(
        &format!("{PROD}/erase"),
        ADMIN,
        &json!({"connection_id": "gone-conn"}),
    );
    assert!([200, 202].contains(&erasure.status), "{}", erasure.text);
    let job = erasure.body["id"].as_str().unwrap().to_owned();
    let finished = eventually(WAIT, || {
        let page = d.get("/v1/audit?action=erasure.finish", ADMIN);
        (page.body["total"] == 1).then(|| page.body["data"][0].clone())
    });
    let started = newest(&d, "erasure.start");
    admin_by_api(&started);
    for record in [&started, &finished] {
        assert_eq!(record["target"], job.as_str());
        assert_eq!(record["environment"], "prod");
        assert_eq!(
            record["detail"]["selector"],
            json!({"connection_id": "gone-conn"})
        );
    }
    assert_eq!(finished["actor"]["role"], "system");
    assert_eq!(finished["detail"]["removed"]["operations"], 1);
    assert_eq!(finished["detail"]["removed"]["messages"], 2);
    let text = d
        .get("/v1/audit?action=erasure.start,erasure.finish", ADMIN)
        .text;
    for value in [
        erased.as_str(),
        "erased-integration",
        "erased-user-77",
        "erased@example.com",
        "erased-payload",
    ] {
        assert!(!text.contains(value), "{value} in {text}");
    }

    // Views: created by a viewer key, changed and deleted by the admin.
    let created = d.post(
        &format!("{PROD}/views"),
        PROD_KEY,
        &json!({"name": "Acme failures", "query": {"state": ["failed"], "connection_id": ["acme"]}}),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let view = created.body["id"].as_str().unwrap().to_owned();
    let record = newest(&d, "view.create");
    assert_eq!(record["actor"]["role"], "key");
    assert_eq!(record["actor"]["environment"], "prod");
    assert_eq!(record["actor"]["scope"], "ingest+read");
    assert_eq!(record["target"], view.as_str());
    assert_eq!(record["detail"]["before"], Value::Null);
    assert_eq!(record["detail"]["after"]["name"], "Acme failures");
    let renamed = d.send(
        "PUT",
        &format!("{PROD}/views/{view}"),
        ADMIN,
        &json!({"name": "Acme errors"}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let record = newest(&d, "view.change");
    assert_eq!(record["detail"]["before"]["name"], "Acme failures");
    assert_eq!(record["detail"]["after"]["name"], "Acme errors");
    let deleted = d.raw(
        "DELETE",
        &format!("{PROD}/views/{view}"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let record = newest(&d, "view.delete");
    assert_eq!(record["target"], view.as_str());
    assert_eq!(record["detail"]["after"], Value::Null);

    // Dashboard sign-ins, accepted and refused: the kind of key and the address, no token.
    assert_eq!(sign_in(&d, ADMIN).status, 200);
    let record = newest(&d, "session.sign_in");
    assert_eq!(record["actor"]["role"], "admin");
    assert_eq!(record["actor"]["via"], "dashboard");
    assert_eq!(record["actor"]["address"], "127.0.0.1");
    assert_eq!(sign_in(&d, PROD_KEY).status, 200);
    let record = newest(&d, "session.sign_in");
    assert_eq!(
        (
            &record["actor"]["role"],
            &record["actor"]["scope"],
            &record["environment"]
        ),
        (&json!("key"), &json!("ingest+read"), &json!("prod"))
    );
    assert_eq!(sign_in(&d, INGEST_ONLY).status, 401);
    let record = newest(&d, "session.sign_in_refused");
    assert_eq!(record["actor"]["scope"], "ingest");
    assert_eq!(record["detail"]["reason"], "ingest_only_key");
    let unknown = "not-a-token-at-all-0123456789";
    secrets.push(unknown.into());
    assert_eq!(sign_in(&d, unknown).status, 401);
    let record = newest(&d, "session.sign_in_refused");
    assert_eq!(record["actor"]["role"], "unknown");
    assert_eq!(record["actor"]["address"], "127.0.0.1");
    assert_eq!(record["detail"]["reason"], "unknown_token");
    assert_eq!(record["detail"]["locked_out"], false);

    // One record of every kind of action, and no credential anywhere in the log.
    let all = every_record(&d, "", 500);
    let kinds: BTreeSet<&str> = all.iter().map(|r| r["action"].as_str().unwrap()).collect();
    let vocabulary = d.get("/v1/vocabulary", ADMIN);
    let expected: BTreeSet<&str> = vocabulary.body["audit_actions"]
        .as_array()
        .expect("the vocabulary lists the audit actions")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(kinds, expected);
    let log = serde_json::to_string(&all).unwrap();
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a credential in the log");
    }

    // Admin only: a key (even one of the environment) is refused, no token is a 401.
    let refused = d.get("/v1/audit", PROD_KEY);
    assert_eq!(
        (refused.status, refused.code()),
        (403, "insufficient_scope")
    );
    assert_eq!(d.raw("GET", "/v1/audit", None, &[], None).status, 401);
    let bad = d.get("/v1/audit?action=settings.nope", ADMIN);
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("action"))
    );

    // Filters and pages: newest first, every record once across pages of 3.
    let paged = every_record(&d, "", 3);
    assert_eq!(paged, all);
    let ids: Vec<&str> = paged.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted, "newest first");
    let total = d.get("/v1/audit?limit=1", ADMIN).body["total"].clone();
    assert_eq!(total, all.len());
    let settings = every_record(&d, "action=settings.change&action=import", 2);
    assert!(settings
        .iter()
        .all(|r| ["settings.change", "import"].contains(&r["action"].as_str().unwrap())));
    assert_eq!(settings.len(), 2);
    let first_at = all.last().unwrap()["at"].as_str().unwrap().to_owned();
    let before_all = d.get("/v1/audit?to=2020-01-01T00:00:00Z", ADMIN);
    assert_eq!(before_all.body["total"], 0);
    let since = every_record(&d, &format!("from={}", urlencoding::encode(&first_at)), 50);
    assert_eq!(since.len(), all.len());

    drop(receiver);
}

#[test]
fn audit_records_survive_a_restart() {
    let d = Daemon::start();
    let set = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"events": ["sync.completed"]}}),
    );
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(sign_in(&d, ADMIN).status, 200);
    assert_eq!(d.get("/v1/backup", ADMIN).status, 200);
    let before = every_record(&d, "", 2);
    assert_eq!(before.len(), 3);
    let dir = d.stop();
    let d = Daemon::start_in(dir, |_| {});
    assert_eq!(every_record(&d, "", 2), before);
}

#[test]
fn audit_records_leave_after_their_retention() {
    let d = Daemon::start_with(|c| {
        c.audit.retention = opslog::config::HumanDuration(Duration::from_millis(1));
        c.retention.every = opslog::config::HumanDuration(Duration::from_millis(50));
    });
    let set = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"webhooks": {"events": ["sync.completed"]}}),
    );
    assert_eq!(set.status, 200, "{}", set.text);
    eventually(WAIT, || {
        (d.get("/v1/audit?action=settings.change", ADMIN).body["total"] == 0).then_some(())
    });
    // The default keeps a year.
    assert_eq!(
        opslog::config::Config::default().audit.retention.0,
        Duration::from_secs(365 * 86_400)
    );
}
