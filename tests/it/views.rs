//! Saved views: the built-in four (the signals) and those saved per environment through
//! `/views`, checked like the query parameters of GET /operations, kept across restarts; alert
//! rules on any view count what its query counts, and a view a rule counts is protected.

use std::time::Duration;

use opslog::config::{ApiKey, Config, HumanDuration, WebhooksConfig};
use opslog::scope::KeyScope;
use serde_json::{json, Value};

use crate::receiver::*;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WAIT: Duration = Duration::from_secs(30);
const PROD_READ: &str = "test-prod-read-only-0123456789";

fn with_read_key(config: &mut Config) {
    config
        .environments
        .get_mut("prod")
        .unwrap()
        .api_keys
        .push(ApiKey {
            key: PROD_READ.into(),
            scope: KeyScope::Read,
        });
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn views_are_saved_listed_renamed_deleted_and_kept_across_restarts() {
    let d = Daemon::start_with(with_read_key);
    let list = d.get(&format!("{PROD}/views"), PROD_READ);
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(
        ids(&list.body),
        [
            "sync_failures",
            "action_errors",
            "auth_failures",
            "webhook_failures"
        ]
    );
    assert_eq!(list.body["total"], 4);
    let errors = &list.body["data"][1];
    assert_eq!(errors["builtin"], true);
    assert_eq!(errors["counts"], "messages");
    assert_eq!(errors["query"]["level"], json!(["error"]));
    assert_eq!(errors["query"]["type"], json!(["action"]));

    // A reader saves the Logs tab's query under a name; the id comes from the name.
    let query = json!({
        "q": "\"invalid_grant\"", "type": ["sync", "auth"], "state": ["failed"],
        "integration": ["salesforce"], "range": "7d"
    });
    let saved = d.post(
        &format!("{PROD}/views"),
        PROD_READ,
        &json!({"name": "Salesforce auth failures", "query": query}),
    );
    assert_eq!(saved.status, 201, "{}", saved.text);
    let view = &saved.body;
    assert_eq!(view["id"], "salesforce_auth_failures");
    assert_eq!(view["builtin"], false);
    assert_eq!(view["counts"], "operations");
    assert_eq!(view["query"]["type"], json!(["auth", "sync"]), "normalized");
    assert_eq!(view["query"]["q"], "\"invalid_grant\"");
    assert_eq!(view["query"]["range"], "7d");
    assert_eq!(view["query"]["tag"], json!([]));
    let again = d.post(
        &format!("{PROD}/views"),
        PROD_KEY,
        &json!({"name": "salesforce AUTH failures"}),
    );
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.code(), "view_exists");
    assert_eq!(again.body["error"]["field"], "name");
    let chosen = d.post(
        &format!("{PROD}/views"),
        PROD_KEY,
        &json!({"id": "errors-of-github", "name": "GitHub errors", "query": {"integration": ["github"], "level": ["error"]}}),
    );
    assert_eq!(chosen.status, 201, "{}", chosen.text);
    assert_eq!(chosen.body["counts"], "messages");

    // Bad input is a 400 naming the field; nothing is saved.
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (
            json!({"name": "x", "query": {"type": ["cron"]}}),
            "query.type",
        ),
        (
            json!({"name": "x", "query": {"state": ["lost"]}}),
            "query.state[0]",
        ),
        (
            json!({"name": "x", "query": {"colour": ["red"]}}),
            "query.colour",
        ),
        (
            json!({"name": "x", "query": {"tag": ["nocolon"]}}),
            "query.tag",
        ),
        (
            json!({"name": "x", "query": {"range": "2h"}}),
            "query.range",
        ),
        (json!({"name": "x", "id": "Not An Id"}), "id"),
        (json!({"name": "x", "id": "sync_failures"}), "id"),
    ] {
        let reply = d.post(&format!("{PROD}/views"), PROD_KEY, &body);
        assert!(
            reply.status == 400 || reply.status == 409,
            "{body}: {}",
            reply.text
        );
        assert_eq!(
            reply.body["error"]["field"], field,
            "{body}: {}",
            reply.text
        );
    }

    // Renamed, its query replaced; built-in views are not changed or deleted.
    let path = format!("{PROD}/views/salesforce_auth_failures");
    let renamed = d.send(
        "PUT",
        &path,
        PROD_READ,
        &json!({"name": "Salesforce: auth", "query": {"integration": ["salesforce"], "type": ["auth"]}}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    assert_eq!(
        renamed.body["id"], "salesforce_auth_failures",
        "the id stays"
    );
    assert_eq!(renamed.body["name"], "Salesforce: auth");
    assert_eq!(renamed.body["query"]["q"], Value::Null);
    for method in ["PUT", "DELETE"] {
        let reply = d.send(
            method,
            &format!("{PROD}/views/auth_failures"),
            PROD_KEY,
            &json!({"name": "x"}),
        );
        assert_eq!(reply.status, 409, "{method}: {}", reply.text);
        assert_eq!(reply.code(), "view_builtin");
    }
    let missing = d.get(&format!("{PROD}/views/nope"), PROD_KEY);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "view_not_found");
    // Another environment's key does not see prod's views.
    assert_eq!(d.get(&format!("{PROD}/views"), DEV_KEY).status, 404);
    assert_eq!(
        ids(&d.get("/v1/environments/dev/views", DEV_KEY).body).len(),
        4
    );

    // Kept across a restart, sorted by name after the built-in ones.
    let dir = d.stop();
    let d = Daemon::start_in(dir, with_read_key);
    let list = d.get(&format!("{PROD}/views"), PROD_READ).body;
    assert_eq!(
        &ids(&list)[4..],
        ["errors-of-github", "salesforce_auth_failures"]
    );
    assert_eq!(list["data"][5]["name"], "Salesforce: auth");
    let deleted = d.raw("DELETE", &path, Some(PROD_READ), &[], None);
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(d.get(&path, PROD_KEY).status, 404);
    assert_eq!(
        ids(&d.get(&format!("{PROD}/views"), PROD_KEY).body).len(),
        5
    );
}

/// prod: webhooks to `url` on a short schedule, rules evaluated every second.
fn alerting_to(url: &str) -> impl FnOnce(&mut Config) {
    let url = url.to_owned();
    move |config: &mut Config| {
        with_read_key(config);
        config.alerts.every = HumanDuration(Duration::from_secs(1));
        config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(url),
            retry_schedule: Some(vec![HumanDuration(Duration::ZERO)]),
            timeout: Some(HumanDuration(Duration::from_secs(2))),
            ..Default::default()
        };
    }
}

#[test]
fn a_rule_on_a_saved_view_counts_its_query_and_the_view_is_protected() {
    let receiver = Receiver::ok();
    let d = Daemon::start_with(alerting_to(&receiver.url()));
    let saved = d.post(
        &format!("{PROD}/views"),
        PROD_READ,
        &json!({"name": "Grant failures", "query": {"q": "invalid_grant", "state": ["failed"], "type": ["auth"]}}),
    );
    assert_eq!(saved.status, 201, "{}", saved.text);

    // A rule on an unknown view, or naming both a signal and a view, is refused naming the field.
    for (rules, field) in [
        (
            json!([{"view": "nope", "above": 1, "window": "1h"}]),
            "alerts[0].view",
        ),
        (
            json!([{"view": "grant_failures", "signal": "auth_failures", "above": 1, "window": "1h"}]),
            "alerts[0].view",
        ),
        (
            json!([{"view": "grant_failures", "above": 1, "window": "1h", "notify": ["slack"]}]),
            "alerts[0].notify[0]",
        ),
    ] {
        let reply = d.send(
            "PUT",
            &format!("{PROD}/settings"),
            ADMIN,
            &json!({"alerts": rules}),
        );
        assert_eq!(reply.status, 400, "{rules}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.text);
    }
    let rule = json!({"view": "grant_failures", "above": 1, "window": "1h"});
    let reply = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"alerts": [rule]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["alerts"]["rules"], json!([rule]));

    // Two salesforce auth failures that say invalid_grant (one in a message), one that does not,
    // and a github one that does: the view counts three, salesforce first.
    let fail = |integration: &str, text: &str, in_message: bool| {
        let body = if in_message {
            json!({"type": "auth", "integration": integration})
        } else {
            json!({"type": "auth", "integration": integration, "message": text})
        };
        let id = d.start_operation("prod", PROD_KEY, &body);
        if in_message {
            let reply = d.post(
                &format!("{PROD}/operations/{id}/messages"),
                PROD_KEY,
                &json!({"message": text, "level": "error"}),
            );
            assert_eq!(reply.status, 201, "{}", reply.text);
        }
        let reply = d.patch(
            &format!("{PROD}/operations/{id}"),
            PROD_KEY,
            &json!({"state": "failed"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    };
    fail("salesforce", "token refresh: invalid_grant", false);
    fail(
        "salesforce",
        "400 invalid_grant from the token endpoint",
        true,
    );
    fail("salesforce", "connection reset", false);
    fail("github", "invalid_grant", false);
    let fired = eventually(WAIT, || {
        receiver
            .requests()
            .into_iter()
            .find(|r| r.json()["type"] == "alert.triggered")
    });
    let data = &fired.json()["data"];
    assert_eq!(data["view"], "grant_failures", "{data}");
    assert_eq!(data["signal"], Value::Null);
    assert_eq!(data["title"], "Grant failures");
    assert_eq!(data["counts"], "operations");
    assert_eq!(data["count"], 3, "{data}");
    assert_eq!(
        data["top_integrations"],
        json!([{"integration": "salesforce", "count": 2}, {"integration": "github", "count": 1}])
    );
    let link = data["dashboard_url"].as_str().unwrap();
    assert!(
        link.starts_with(&d.url(
            "/?env=prod&page=logs&view=grant_failures&type=auth&state=failed&q=invalid_grant&from="
        )),
        "{link}"
    );

    // The view a rule counts is protected: not deleted, and its query not changed by a reader.
    let path = format!("{PROD}/views/grant_failures");
    let reply = d.raw("DELETE", &path, Some(ADMIN), &[], None);
    assert_eq!(reply.status, 409, "{}", reply.text);
    assert_eq!(reply.code(), "view_in_use");
    assert!(reply.message().contains("alerts[0]"), "{}", reply.message());
    let reply = d.raw("DELETE", &path, Some(PROD_READ), &[], None);
    assert_eq!(reply.status, 403, "{}", reply.text);
    let reply = d.send("PUT", &path, PROD_READ, &json!({"query": {}}));
    assert_eq!(reply.status, 403, "{}", reply.text);
    assert_eq!(reply.code(), "insufficient_scope");
    let reply = d.send(
        "PUT",
        &path,
        PROD_READ,
        &json!({"name": "Grant failures (auth)"}),
    );
    assert_eq!(reply.status, 200, "a reader may rename it: {}", reply.text);
    let reply = d.send(
        "PUT",
        &path,
        ADMIN,
        &json!({"query": {"q": "invalid_grant", "type": ["auth"]}}),
    );
    assert_eq!(reply.status, 200, "the admin may change it: {}", reply.text);
    // Once no rule counts it, it can go.
    let reply = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"alerts": []}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(
        d.raw("DELETE", &path, Some(PROD_READ), &[], None).status,
        204
    );
    let reply = d.send(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        &json!({"alerts": [rule]}),
    );
    assert_eq!(
        reply.status, 400,
        "a rule on a deleted view: {}",
        reply.text
    );
    assert_eq!(reply.body["error"]["field"], "alerts[0].view");
}
