//! What the dashboard needs to answer "why": matches in context (snippets with highlight
//! ranges), signals with trends, insights by when operations started, and alert rules firing and
//! resolving through the signed outbox to a real receiver on loopback, once, across restarts.

use std::time::Duration;

use opslog::alerts::AlertRule;
use opslog::config::{Config, HumanDuration, WebhooksConfig};
use serde_json::{json, Value};

use crate::metrics::scrape;
use crate::receiver::*;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WAIT: Duration = Duration::from_secs(30);

fn get(d: &Daemon, path: &str) -> Value {
    let reply = d.get(&format!("{PROD}{path}"), PROD_KEY);
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.body
}

/// The text `snippet` marks, each range in brackets.
fn marked(snippet: &Value) -> String {
    let chars: Vec<char> = snippet["text"].as_str().unwrap().chars().collect();
    let mut out = String::new();
    let mut at = 0;
    for range in snippet["highlights"].as_array().unwrap() {
        let (from, to) = (
            range[0].as_u64().unwrap() as usize,
            range[1].as_u64().unwrap() as usize,
        );
        out.extend(&chars[at..from]);
        out.push('[');
        out.extend(&chars[from..to]);
        out.push(']');
        at = to;
    }
    out.extend(&chars[at..]);
    out
}

#[test]
fn searches_say_where_they_matched() {
    let d = Daemon::start();
    let sync = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme"}),
    );
    let reply = d.post(
        &format!("{PROD}/operations/{sync}/messages"),
        PROD_KEY,
        &json!([
            {"message": "fetching issues"},
            {"level": "error", "message": "GitHub answered <b>429</b>: Rate-Limit exceeded, retry later"},
            {"message": "rate limit again"}
        ]),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let rate_message = reply.body["data"][1]["id"].as_str().unwrap().to_owned();
    let auth = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "auth", "action": "refresh", "integration": "github",
                "error": {"message": "invalid_grant: refresh token revoked"}}),
    );
    eventually(WAIT, || {
        (get(&d, "/messages?limit=1")["total"] == 3 && get(&d, "/operations?limit=1")["total"] == 2)
            .then_some(())
    });

    // An operation matched through a message: that message's text, the phrase marked.
    let page = get(&d, "/operations?q=%22rate%20limit%22&snippets=true");
    assert_eq!(page["total"], 1, "{page}");
    let hit = &page["data"][0];
    assert_eq!(hit["id"], sync.as_str());
    let snippet = &hit["snippet"];
    assert_eq!(snippet["source"], "message");
    assert_eq!(
        snippet["message_id"],
        rate_message.as_str(),
        "the first match"
    );
    assert_eq!(
        marked(snippet),
        "GitHub answered <b>429</b>: [Rate-Limit] exceeded, retry later",
        "markup in a record stays text"
    );
    assert_eq!(snippet["truncated_start"], false);

    // An operation matched by its own text.
    let page = get(
        &d,
        "/operations?q=invalid_grant%20OR%20nothinglikethis&snippets=true",
    );
    assert_eq!(page["data"][0]["id"], auth.as_str(), "{page}");
    assert_eq!(page["data"][0]["snippet"]["source"], "operation");
    assert!(page["data"][0]["snippet"].get("message_id").is_none());
    assert_eq!(
        marked(&page["data"][0]["snippet"]),
        "auth refresh\n[invalid_grant]: refresh token revoked\ngithub",
        "title, error, integration: the operation's own text"
    );

    // Without the opt-in, the answer is as before.
    let page = get(&d, "/operations?q=%22rate%20limit%22");
    assert!(page["data"][0].get("snippet").is_none(), "{page}");

    // Message search: each hit with its own snippet, prefixes marked whole.
    let page = get(&d, "/messages?q=rat*&snippets=true");
    assert_eq!(page["total"], 2, "{page}");
    let texts: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| marked(&m["snippet"]))
        .collect();
    assert_eq!(
        texts,
        [
            "[rate] limit again",
            "GitHub answered <b>429</b>: [Rate]-Limit exceeded, retry later"
        ]
    );

    // One operation's messages: the drawer marks what matched.
    let page = get(
        &d,
        &format!("/operations/{sync}/messages?q=limit&snippets=true"),
    );
    assert_eq!(page["total"], 2, "{page}");
    assert_eq!(page["data"][0]["id"], rate_message.as_str());
    assert_eq!(
        marked(&page["data"][0]["snippet"]),
        "GitHub answered <b>429</b>: Rate-[Limit] exceeded, retry later"
    );

    let bad = d.get(&format!("{PROD}/operations?q=rate&snippets=yes"), PROD_KEY);
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.body["error"]["field"], "snippets");
}

#[test]
fn signals_compare_with_the_previous_period_and_name_integrations() {
    let d = Daemon::start();
    let failed_sync = |integration: &str, started_at: &str| {
        let id = d.start_operation(
            "prod",
            PROD_KEY,
            &json!({"type": "sync", "integration": integration, "started_at": started_at}),
        );
        let reply = d.patch(
            &format!("{PROD}/operations/{id}"),
            PROD_KEY,
            &json!({"state": "failed"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    };
    let now = opslog::model::Timestamp::now();
    let hours_ago = |h: i64| now.plus_millis(-h * 3_600_000).to_string();
    for integration in ["github", "github", "github", "slack"] {
        failed_sync(integration, &hours_ago(0));
    }
    // Sent now, but it started 3 hours ago: insights put it there, not in the last bucket.
    let late = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "late", "state": "success",
                "started_at": hours_ago(3), "ended_at": hours_ago(3)}),
    );
    eventually(WAIT, || {
        (get(&d, "/operations?limit=1")["total"] == 5).then_some(())
    });

    let signals = get(&d, "/signals");
    let sync = signals["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["signal"] == "sync_failures")
        .unwrap()
        .clone();
    assert_eq!(sync["count"], 4, "{sync}");
    assert_eq!(sync["previous_count"], 0);
    assert_eq!(sync["counts"], "operations");
    let series: Vec<u64> = sync["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .collect();
    assert_eq!(series.len(), 12);
    assert_eq!(series.iter().sum::<u64>(), 4);
    assert_eq!(series[11], 4, "all in the last step: {series:?}");
    assert_eq!(
        sync["top_integrations"],
        json!([{"integration": "github", "count": 3}, {"integration": "slack", "count": 1}])
    );
    let slack = get(&d, "/signals?integration=slack");
    assert_eq!(slack["data"][0]["count"], 1, "{slack}");
    let empty = get(
        &d,
        "/signals?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
    );
    assert_eq!(
        empty["data"][0]["count"], 0,
        "an empty range counts nothing"
    );
    assert_eq!(empty["data"][0]["series"], json!([]));
    let bad = d.get(&format!("{PROD}/signals?from=yesterday"), PROD_KEY);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["field"], "from");

    // A failed sync sent now that started 3 hours ago counts where it happened, as insights put
    // it: in the last day, not in the last hour.
    failed_sync("late", &hours_ago(3));
    eventually(WAIT, || {
        (get(&d, "/operations?limit=1")["total"] == 6).then_some(())
    });
    let sync_count = |query: &str| {
        let signals = get(&d, &format!("/signals{query}"));
        signals["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["signal"] == "sync_failures")
            .unwrap()["count"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(sync_count(""), 5);
    let hour_ago = hours_ago(1).replace(':', "%3A").replace('+', "%2B");
    assert_eq!(
        sync_count(&format!("?from={hour_ago}")),
        4,
        "by start, not by arrival"
    );

    let insights = get(
        &d,
        &format!(
            "/insights?type=sync&interval=1h&from={}",
            hours_ago(6).replace(':', "%3A")
        ),
    );
    let buckets = insights["buckets"].as_array().unwrap();
    let success: Vec<u64> = buckets
        .iter()
        .map(|b| b["success"].as_u64().unwrap())
        .collect();
    assert_eq!(success.iter().sum::<u64>(), 1, "{insights}");
    assert_eq!(
        success[3], 1,
        "bucketed by start, 3h before now: {success:?} ({late})"
    );
    assert_eq!(buckets.last().unwrap()["failed"], 4);
}

/// prod: webhooks to `url` on a short schedule, rules evaluated every second.
fn alerting_to(url: &str) -> impl FnOnce(&mut Config) {
    let url = url.to_owned();
    move |config: &mut Config| {
        config.alerts.every = HumanDuration(Duration::from_secs(1));
        config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(url),
            retry_schedule: Some(vec![
                HumanDuration(Duration::ZERO),
                HumanDuration(Duration::from_secs(1)),
            ]),
            timeout: Some(HumanDuration(Duration::from_secs(2))),
            ..Default::default()
        };
    }
}

fn alert_requests(receiver: &Receiver) -> Vec<Captured> {
    receiver
        .requests()
        .into_iter()
        .filter(|r| {
            r.json()["type"]
                .as_str()
                .unwrap_or("")
                .starts_with("alert.")
        })
        .collect()
}

/// Waits until the daemon has evaluated the rules `n` more times than `since`.
fn evaluations_after(d: &Daemon, since: f64, n: f64) -> f64 {
    eventually(WAIT, || {
        let now = scrape(d)["opslog_alert_evaluations_total"];
        (now >= since + n).then_some(now)
    })
}

fn put_rules(d: &Daemon, rules: Value) -> Value {
    let reply = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({ "alerts": rules }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

#[test]
fn alert_rules_fire_once_resolve_once_and_survive_restarts() {
    let receiver = Receiver::ok();
    let d = Daemon::start_with(alerting_to(&receiver.url()));
    let secret = d
        .get(&format!("{PROD}/settings/webhook-secret"), ADMIN)
        .body["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = put_rules(
        &d,
        json!([{"signal": "sync_failures", "integration": "github", "above": 1, "window": "1h"}]),
    );
    assert_eq!(
        view["alerts"],
        json!({"rules": [{"signal": "sync_failures", "integration": "github", "above": 1, "window": "1h"}], "read_only": false})
    );
    for integration in ["github", "github", "slack"] {
        let id = d.start_operation(
            "prod",
            PROD_KEY,
            &json!({"type": "sync", "integration": integration}),
        );
        let reply = d.patch(
            &format!("{PROD}/operations/{id}"),
            PROD_KEY,
            &json!({"state": "failed"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let fired = eventually(WAIT, || {
        let alerts = alert_requests(&receiver);
        (!alerts.is_empty()).then_some(alerts)
    });
    assert_eq!(fired.len(), 1);
    let request = &fired[0];
    assert!(verify_standard(&secret, request), "signed: {request:?}");
    assert!(verify_nango(&secret, request), "X-Nango-* signed too");
    let body = request.json();
    assert_eq!(body["type"], "alert.triggered", "{body}");
    assert_eq!(body["environment"], "prod");
    assert_eq!(body["integration"], "github");
    assert_eq!(body["operation_id"], Value::Null);
    let data = &body["data"];
    assert_eq!(data["signal"], "sync_failures");
    assert_eq!(data["rule"], "sync_failures/github");
    assert_eq!(data["count"], 2, "slack's failure is not github's");
    assert_eq!(data["above"], 1);
    assert_eq!(data["window"], "1h");
    let link = data["dashboard_url"].as_str().unwrap();
    assert!(
        link.starts_with(&d.url("/?env=prod&page=signals&signal=sync_failures&from="))
            && link.ends_with("&integration=github"),
        "{link}"
    );
    // The delivery is logged and listed like every other.
    let listed = get(&d, "/deliveries?event=alert.triggered");
    assert_eq!(listed["total"], 1, "{listed}");

    // Later evaluations, and a restart, fire nothing more while the count stays above.
    let seen = scrape(&d)["opslog_alert_evaluations_total"];
    evaluations_after(&d, seen, 2.0);
    let dir = d.stop();
    let d = Daemon::start_in(dir, alerting_to(&receiver.url()));
    evaluations_after(&d, 0.0, 3.0);
    assert_eq!(
        alert_requests(&receiver).len(),
        1,
        "no second alert.triggered"
    );

    // Raising the threshold over the count resolves it, once.
    put_rules(
        &d,
        json!([{"signal": "sync_failures", "integration": "github", "above": 5, "window": "1h"}]),
    );
    let resolved = eventually(WAIT, || {
        let alerts = alert_requests(&receiver);
        (alerts.len() == 2).then_some(alerts)
    });
    let body = resolved[1].json();
    assert!(verify_standard(&secret, &resolved[1]));
    assert_eq!(body["type"], "alert.resolved", "{body}");
    assert_eq!(body["data"]["count"], 2);
    assert_eq!(body["data"]["above"], 5);
    let seen = scrape(&d)["opslog_alert_evaluations_total"];
    evaluations_after(&d, seen, 2.0);
    assert_eq!(alert_requests(&receiver).len(), 2, "resolved once");
    assert_eq!(
        scrape(&d)["opslog_alert_transitions_total"],
        1.0,
        "since the restart"
    );
}

/// A `PUT /settings` refused for one section changes no other section, in memory or on disk.
#[test]
fn a_refused_settings_change_keeps_every_section_across_a_restart() {
    let d = Daemon::start();
    let settings = format!("{PROD}/settings");
    let before = d.get(&settings, ADMIN).body;
    let reply = d.send(
        "PUT",
        &settings,
        ADMIN,
        &json!({
            "otel": { "service_name": "renamed-by-a-refused-request" },
            "alerts": [
                {"signal": "sync_failures", "above": 1, "window": "5m"},
                {"signal": "sync_failures", "above": 2, "window": "5m"}
            ]
        }),
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["error"]["field"], "alerts[1]", "{}", reply.text);
    assert_eq!(
        d.get(&settings, ADMIN).body,
        before,
        "nothing changed in memory"
    );

    let d = Daemon::start_in(d.stop(), |_| {});
    let after = d.get(&settings, ADMIN).body;
    assert_eq!(
        after["otel"]["service_name"],
        before["otel"]["service_name"]
    );
    assert_eq!(after, before, "nothing changed on disk");
}

#[test]
fn alert_rules_are_checked_and_the_file_wins() {
    let d = Daemon::start();
    for (rules, field) in [
        (
            json!([{"signal": "cpu", "above": 1, "window": "1h"}]),
            "alerts[0].signal",
        ),
        (
            json!([{"signal": "sync_failures", "above": 1, "window": "30s"}]),
            "alerts[0].window",
        ),
        (
            json!([{"signal": "sync_failures", "above": -1, "window": "1h"}]),
            "alerts[0].above",
        ),
        (
            json!([{"signal": "auth_failures", "above": 1, "window": "1h"},
                   {"signal": "auth_failures", "above": 2, "window": "2h"}]),
            "alerts[1]",
        ),
    ] {
        let reply = d.send(
            "PUT",
            &format!("{PROD}/settings"),
            ADMIN,
            &json!({ "alerts": rules }),
        );
        assert_eq!(reply.status, 400, "{rules}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.text);
    }
    assert_eq!(
        d.get(&format!("{PROD}/settings"), ADMIN).body["alerts"]["rules"],
        json!([]),
        "nothing saved"
    );

    let rule: AlertRule =
        serde_json::from_value(json!({"signal": "webhook_failures", "above": 10, "window": "5m"}))
            .unwrap();
    let d = Daemon::start_with(move |c| {
        c.environments.get_mut("prod").unwrap().alerts = Some(vec![rule]);
    });
    let view = d.get(&format!("{PROD}/settings"), ADMIN).body;
    assert_eq!(view["alerts"]["read_only"], true);
    assert_eq!(view["alerts"]["rules"][0]["signal"], "webhook_failures");
    let reply = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"alerts": []}),
    );
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.body["error"]["field"], "alerts");
}
