//! End user and tags on operations, end to end: stored as sent, refused past their bounds with a
//! 400 naming the field, filterable and faceted through the index, carried into spans and
//! webhook events, and kept by export and import. Async actions fire `action.completed`.

use serde_json::{json, Value};

use crate::support::*;

const PROD: &str = "/v1/environments/prod";

fn list(d: &Daemon, query: &str) -> Value {
    let reply = d.get(&format!("{PROD}/operations?{query}"), PROD_KEY);
    assert_eq!(reply.status, 200, "{query}: {}", reply.text);
    reply.body
}

fn ids(page: &Value) -> Vec<String> {
    let mut ids: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[test]
fn end_user_and_tags_are_stored_filterable_and_exported() {
    let d = Daemon::start();
    let ada = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github",
                "end_user": {"id": "u-ada", "email": "ada@example.com", "display_name": "Ada",
                             "organization": {"id": "org-1", "display_name": "Acme"}},
                "tags": {"plan": "pro", "region": "eu"}}),
    );
    let bob = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github",
                "end_user": {"id": "u-bob"}, "tags": {"plan": "free", "region": "eu"}}),
    );
    let nobody = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let op = d.get(&format!("{PROD}/operations/{ada}"), PROD_KEY).body;
    assert_eq!(
        op["end_user"],
        json!({"id": "u-ada", "email": "ada@example.com", "display_name": "Ada",
               "organization": {"id": "org-1", "display_name": "Acme"}})
    );
    assert_eq!(op["tags"], json!({"plan": "pro", "region": "eu"}));
    assert_eq!(op["async"], false);
    let plain = d.get(&format!("{PROD}/operations/{nobody}"), PROD_KEY).body;
    assert_eq!(
        (&plain["end_user"], &plain["tags"]),
        (&Value::Null, &json!({}))
    );

    // The index sees them once it catches up.
    let by_user = eventually(std::time::Duration::from_secs(20), || {
        let page = list(&d, "end_user_id=u-ada");
        (page["total"] == 1).then_some(page)
    });
    assert_eq!(ids(&by_user), [ada.as_str()]);
    assert_eq!(
        ids(&list(&d, "tag=region:eu")),
        sorted(vec![ada.clone(), bob.clone()])
    );
    assert_eq!(
        ids(&list(&d, "tag=region:eu&tag=plan:free")),
        [bob.as_str()]
    );
    assert_eq!(
        ids(&list(&d, "tag=plan:free&tag=plan:pro")),
        sorted(vec![ada.clone(), bob.clone()]),
        "tags of one key: any of them"
    );
    assert_eq!(list(&d, "tag=plan:enterprise")["total"], 0);
    assert_eq!(
        ids(&list(
            &d,
            "end_user_id=u-ada&end_user_id=u-bob&tag=plan:pro"
        )),
        [ada.as_str()]
    );
    for bad in ["tag=plan", "tag=:pro", "tag=pl%20an:pro", "end_user_id="] {
        let reply = d.get(&format!("{PROD}/operations?{bad}"), PROD_KEY);
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
    }
    // Messages of an operation carry its context.
    d.post(
        &format!("{PROD}/operations/{ada}/messages"),
        PROD_KEY,
        &json!({"message": "fetched page 1"}),
    );
    let found = eventually(std::time::Duration::from_secs(20), || {
        let page = d
            .get(&format!("{PROD}/messages?tag=plan:pro"), PROD_KEY)
            .body;
        (page["total"] == 1).then_some(page)
    });
    assert_eq!(found["data"][0]["message"], "fetched page 1");

    // Facets count them.
    let facets = d
        .get(&format!("{PROD}/facets?field=end_user_id"), PROD_KEY)
        .body;
    let values: Vec<(&str, u64)> = facets["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["value"].as_str().unwrap(), v["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(values, [("u-ada", 1), ("u-bob", 1)]);
    let tags = d.get(&format!("{PROD}/facets?field=tag"), PROD_KEY).body;
    assert_eq!(tags["data"][0], json!({"value": "region:eu", "count": 2}));

    // Export and import keep them.
    let export = d.raw("GET", &format!("{PROD}/export"), Some(PROD_KEY), &[], None);
    assert_eq!(export.status, 200, "{}", export.text);
    let target = Daemon::start();
    let imported = target.raw(
        "POST",
        &format!("{PROD}/import"),
        Some(ADMIN),
        &[("content-type", opslog::archive::CONTENT_TYPE)],
        Some(export.text.as_bytes()),
    );
    assert_eq!(imported.status, 200, "{}", imported.text);
    let copy = target
        .get(&format!("{PROD}/operations/{ada}"), PROD_KEY)
        .body;
    assert_eq!(copy["end_user"], op["end_user"]);
    assert_eq!(copy["tags"], op["tags"]);
    let filtered = eventually(std::time::Duration::from_secs(20), || {
        let page = target
            .get(&format!("{PROD}/operations?tag=plan:free"), PROD_KEY)
            .body;
        (page["total"] == 1).then_some(page)
    });
    assert_eq!(ids(&filtered), [bob]);
}

#[test]
fn context_past_its_bounds_is_a_400_naming_the_field() {
    let d = Daemon::start();
    let too_many: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("k{i}"), json!("v"))).collect();
    let cases = [
        (json!({"type": "sync", "tags": too_many}), "tags"),
        (
            json!({"type": "sync", "tags": {"bad key": "v"}}),
            "tags.bad key",
        ),
        (json!({"type": "sync", "tags": {"k": ""}}), "tags.k"),
        (
            json!({"type": "sync", "tags": {"k": "x".repeat(257)}}),
            "tags.k",
        ),
        (json!({"type": "sync", "tags": {"k": 1}}), ""),
        (
            json!({"type": "sync", "end_user": {"id": ""}}),
            "end_user.id",
        ),
        (json!({"type": "sync", "end_user": {"email": "a@b.c"}}), ""),
        (
            json!({"type": "sync", "end_user": {"id": "u", "organization": {"id": "x".repeat(300)}}}),
            "end_user.organization.id",
        ),
    ];
    for (body, field) in cases {
        let reply = d.post(&format!("{PROD}/operations"), PROD_KEY, &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        if !field.is_empty() {
            assert_eq!(
                reply.body["error"]["field"], field,
                "{body}: {}",
                reply.text
            );
        }
    }
    assert_eq!(list(&d, "")["total"], 0, "nothing was stored");
}

#[test]
fn an_async_action_announces_its_end() {
    let receiver = crate::receiver::Receiver::ok();
    let url = receiver.url();
    let d = Daemon::start_with(move |config| {
        config.environments.get_mut("prod").unwrap().webhooks.url = Some(url);
    });
    let sync_action = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "script": "create-issue", "connection_id": "acme",
                "end_user": {"id": "u-1"}, "tags": {"team": "core"}}),
    );
    let async_action = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "script": "create-issue", "connection_id": "acme", "async": true}),
    );
    for id in [&sync_action, &async_action] {
        let reply = d.patch(
            &format!("{PROD}/operations/{id}"),
            PROD_KEY,
            &json!({"state": "failed", "error": {"message": "422 from api"}}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let requests = receiver.wait_for(1, std::time::Duration::from_secs(30));
    let body = requests[0].json();
    assert_eq!(body["type"], "action.completed");
    assert_eq!(body["operation_id"], async_action.as_str());
    assert_eq!(body["data"]["success"], false);
    assert_eq!(body["data"]["error"]["message"], "422 from api");
    let list = d.get(&format!("{PROD}/deliveries"), PROD_KEY).body;
    assert_eq!(list["total"], 1, "only the async action: {list}");
}
