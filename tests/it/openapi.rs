//! The OpenAPI document: the served one is the checked-in `openapi.json`, every documented route
//! exists, and real answers of a running daemon (successes and errors) validate against the schema
//! the document gives for their path, method and status.
//!
//! Regenerate the checked-in file after an API change: `OPSLOG_BLESS=1 cargo test --release --test
//! it openapi`.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use opslog::config::{HumanDuration, WebhooksConfig};
use serde_json::{json, Map, Value};

use crate::receiver::*;
use crate::support::*;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
const ENV: &str = "/v1/environments/{env}";
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn openapi_served_document_is_the_checked_in_file() {
    let d = Daemon::start();
    let served = d.raw("GET", "/openapi.json", None, &[], None);
    assert_eq!(served.status, 200, "no token needed: {}", served.text);
    assert_eq!(served.body["openapi"], "3.1.0");
    if std::env::var_os("OPSLOG_BLESS").is_some() {
        std::fs::write(CHECKED_IN, &served.text).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        served.text == checked_in,
        "openapi.json at the repo root differs from the document the daemon serves; after an \
         intended API change regenerate it with `OPSLOG_BLESS=1 cargo test --release --test it \
         openapi` and commit it"
    );
}

#[test]
fn openapi_documents_only_routes_that_exist() {
    let d = Daemon::start();
    let doc = d.raw("GET", "/openapi.json", None, &[], None).body;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{:?}", paths.keys());
    for (template, item) in paths {
        let path = template
            .replace("{env}", "prod")
            .replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
            .replace("{token}", "hook_unknown")
            .replace("{integration}", "github");
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let body = (method != "GET").then_some(b"{}".as_slice());
            // Handlers that refuse a request early leave its body unread, and the server then
            // closes the connection: one connection per probe, so none is reused after that.
            let reply = d.raw(
                &method,
                &path,
                Some(ADMIN),
                &[("connection", "close")],
                body,
            );
            assert!(
                reply.status != 405 && reply.code() != "route_not_found",
                "{method} {template} is documented but not served: {}",
                reply.text
            );
        }
    }
}

/// The document, and which (method, path, status) real answers were checked against it.
struct Contract {
    doc: Value,
    components: Value,
    checked: RefCell<BTreeSet<(String, String, u16)>>,
}

impl Contract {
    fn load(d: &Daemon) -> Contract {
        let doc = d.raw("GET", "/openapi.json", None, &[], None).body;
        let components = strict(&doc["components"]);
        Contract {
            doc,
            components,
            checked: RefCell::default(),
        }
    }

    /// Asserts `reply` has `status`, that the document lists that status for `method template`,
    /// and that the body validates against the schema given there.
    fn expect(&self, status: u16, method: &str, template: &str, reply: Reply) -> Reply {
        assert_eq!(reply.status, status, "{method} {template}: {}", reply.text);
        let operation = &self.doc["paths"][template][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not in the document"
        );
        let documented = &operation["responses"][status.to_string()];
        assert!(
            documented.is_object(),
            "{method} {template} answered {status}, which the document does not list: {}",
            reply.text
        );
        let content = documented["content"].as_object();
        match content {
            None => assert!(reply.text.is_empty(), "{method} {template}: {}", reply.text),
            Some(content) => {
                let media = reply
                    .headers
                    .get("content-type")
                    .map(|t| t.split(';').next().unwrap_or("").trim().to_owned())
                    .unwrap_or_default();
                let schema = content
                    .get(&media)
                    .unwrap_or_else(|| {
                        panic!("{method} {template} {status}: `{media}` is not documented")
                    })
                    .get("schema")
                    .expect("a schema");
                let what = format!("{method} {template} {status}");
                match media.as_str() {
                    "application/json" => self.validate(schema, &reply.body, &what),
                    "application/x-ndjson" => {
                        for (n, line) in reply.text.lines().enumerate() {
                            let value = serde_json::from_str(line)
                                .unwrap_or_else(|e| panic!("{what}: line {}: {e}", n + 1));
                            self.validate(schema, &value, &format!("{what}, line {}", n + 1));
                        }
                    }
                    _ => {}
                }
            }
        }
        self.checked
            .borrow_mut()
            .insert((method.to_owned(), template.to_owned(), status));
        reply
    }

    fn validate(&self, schema: &Value, instance: &Value, what: &str) {
        let mut root = schema.as_object().cloned().unwrap_or_default();
        root.insert("components".into(), self.components.clone());
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: the answer does not match the document:\n{}\n{instance:#}",
            errors.join("\n")
        );
    }

    /// Every documented method and path had at least one 2xx answer checked.
    fn assert_every_success_checked(&self) {
        let checked = self.checked.borrow();
        let mut missing = Vec::new();
        for (template, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let method = method.to_uppercase();
                let hit = checked
                    .iter()
                    .any(|(m, t, s)| *m == method && t == template && (200..300).contains(s));
                if !hit {
                    missing.push(format!("{method} {template}"));
                }
            }
        }
        assert!(missing.is_empty(), "no success checked for {missing:?}");
    }
}

/// The components with undocumented fields refused: `unevaluatedProperties: false` on every
/// object schema, except those that others extend with `allOf` (serde's `flatten`), where the
/// extending schema carries it instead.
fn strict(components: &Value) -> Value {
    let mut components = components.clone();
    let schemas = components["schemas"].as_object_mut().unwrap();
    let extended: BTreeSet<String> = schemas
        .values()
        .filter_map(|s| s["allOf"].as_array())
        .flatten()
        .filter_map(|part| part["$ref"].as_str())
        .map(|r| r.trim_start_matches("#/components/schemas/").to_owned())
        .collect();
    for (name, schema) in schemas.iter_mut() {
        let Some(object) = schema.as_object_mut() else {
            continue;
        };
        let is_object = object.contains_key("properties") || object.contains_key("allOf");
        if is_object && !extended.contains(name) && !object.contains_key("additionalProperties") {
            object.insert("unevaluatedProperties".into(), Value::Bool(false));
        }
    }
    components
}

fn with_query(path: &str, query: &str) -> String {
    format!("{path}?{query}")
}

#[test]
fn openapi_real_answers_match_the_document() {
    // Every delivery fails on its one attempt, so it can be retried and replayed.
    let receiver = Receiver::start(|_, _| Answer::Status(500, "down for maintenance"));
    let url = receiver.url();
    // The collector refuses every export for good, so exports fail and can be retried.
    let collector =
        crate::collector::Collector::start(vec![crate::collector::Answer::status(400); 64]);
    let endpoint = collector.url("");
    let d = Daemon::start_with(move |config| {
        config.server.max_body_bytes = 256 * 1024;
        config.environments.get_mut("prod").unwrap().otel =
            Some(opslog::config::OtelConfig::with_endpoint(&endpoint));
        config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
            url: Some(url),
            retry_schedule: Some(vec![HumanDuration(Duration::ZERO)]),
            timeout: Some(HumanDuration(Duration::from_secs(2))),
            ..Default::default()
        };
    });
    let c = Contract::load(&d);
    let prod = "/v1/environments/prod";

    // Operations.
    let ops = format!("{ENV}/operations");
    let op = format!("{ENV}/operations/{{id}}");
    let full = json!({
        "type": "sync", "action": "run", "integration": "github", "connection_id": "acme",
        "script": "issues", "provider": "github-app", "message": "nightly issues sync",
        "request": {"method": "GET", "url": "https://api.github.com/issues", "headers": {"authorization": "token x", "accept": ["a", "b"]}, "body": {"page": 1}},
        "meta": {"shard": 3}, "started_at": "2026-01-05T10:00:00Z"
    });
    let idem = [("Idempotency-Key", "nightly-1")];
    let bytes = serde_json::to_vec(&full).unwrap();
    let created = c.expect(
        201,
        "POST",
        &ops,
        d.raw(
            "POST",
            &format!("{prod}/operations"),
            Some(PROD_KEY),
            &idem,
            Some(&bytes),
        ),
    );
    let id = created.body["id"].as_str().unwrap().to_owned();
    let replayed = c.expect(
        201,
        "POST",
        &ops,
        d.raw(
            "POST",
            &format!("{prod}/operations"),
            Some(PROD_KEY),
            &idem,
            Some(&bytes),
        ),
    );
    assert_eq!(replayed.body["id"], id.as_str());
    c.expect(
        422,
        "POST",
        &ops,
        d.raw(
            "POST",
            &format!("{prod}/operations"),
            Some(PROD_KEY),
            &idem,
            Some(b"{\"type\":\"action\"}"),
        ),
    );
    let minimal = c.expect(
        201,
        "POST",
        &ops,
        d.post(
            &format!("{prod}/operations"),
            PROD_KEY,
            &json!({"type": "auth"}),
        ),
    );
    let auth_id = minimal.body["id"].as_str().unwrap().to_owned();
    c.expect(
        400,
        "POST",
        &ops,
        d.raw(
            "POST",
            &format!("{prod}/operations"),
            Some(PROD_KEY),
            &[],
            Some(b"{\"type\":"),
        ),
    );
    c.expect(
        400,
        "POST",
        &ops,
        d.post(
            &format!("{prod}/operations"),
            PROD_KEY,
            &json!({"type": "cron"}),
        ),
    );
    c.expect(
        415,
        "POST",
        &ops,
        d.raw(
            "POST",
            &format!("{prod}/operations"),
            Some(PROD_KEY),
            &[("content-type", "text/plain")],
            Some(b"{}"),
        ),
    );
    let huge = json!({"type": "sync", "message": "x".repeat(300 * 1024)});
    c.expect(
        413,
        "POST",
        &ops,
        d.post(&format!("{prod}/operations"), PROD_KEY, &huge),
    );
    c.expect(
        401,
        "POST",
        &ops,
        d.raw(
            "POST",
            &format!("{prod}/operations"),
            None,
            &[],
            Some(b"{}"),
        ),
    );
    c.expect(
        404,
        "POST",
        &ops,
        d.post(
            "/v1/environments/staging/operations",
            ADMIN,
            &json!({"type": "sync"}),
        ),
    );

    let one = format!("{prod}/operations/{id}");
    c.expect(200, "GET", &op, d.get(&one, PROD_KEY));
    let output = format!("{ENV}/operations/{{id}}/output");
    c.expect(
        409,
        "GET",
        &output,
        d.get(&format!("{one}/output"), PROD_KEY),
    );
    let done = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "state": "success", "output": {"issue": 7}}),
    );
    c.expect(
        200,
        "GET",
        &output,
        d.get(&format!("{prod}/operations/{done}/output"), PROD_KEY),
    );
    c.expect(
        400,
        "GET",
        &op,
        d.get(&format!("{prod}/operations/..%2Fetc"), PROD_KEY),
    );
    c.expect(
        404,
        "GET",
        &op,
        d.get(
            &format!("{prod}/operations/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            PROD_KEY,
        ),
    );
    c.expect(
        200,
        "PATCH",
        &op,
        d.patch(
            &one,
            PROD_KEY,
            &json!({"state": "running", "meta": {"shard": 4}}),
        ),
    );

    // Messages.
    let msgs = format!("{ENV}/operations/{{id}}/messages");
    let posted = format!("{one}/messages");
    c.expect(
        201,
        "POST",
        &msgs,
        d.post(
            &posted,
            PROD_KEY,
            &json!({"message": "fetched page 1 of issues", "level": "info", "meta": {"page": 1}}),
        ),
    );
    c.expect(201, "POST", &msgs, d.post(&posted, PROD_KEY, &json!([
        {"message": "rate limited, waiting", "level": "warn", "retry": {"attempt": 1, "max": 5, "waited_ms": 1000}},
        {"type": "http", "request": {"method": "GET", "url": "https://api.github.com/issues?page=2", "headers": {"x-api-key": "k"}},
         "response": {"status": 502, "headers": {"retry-after": 3}, "body": "bad gateway"}, "duration_ms": 120,
         "error": {"name": "HttpError", "message": "upstream 502", "type": "http", "payload": {"status": 502}}},
        {"message": "done", "created_at": "2026-01-05T10:05:00.250+01:00"}
    ])));
    c.expect(
        400,
        "POST",
        &msgs,
        d.post(&posted, PROD_KEY, &json!({"message": "x", "level": "loud"})),
    );
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"message": format!("m{i}")}))
        .collect();
    c.expect(
        400,
        "POST",
        &msgs,
        d.post(&posted, PROD_KEY, &Value::Array(too_many)),
    );
    c.expect(
        404,
        "POST",
        &msgs,
        d.post(
            &format!("{prod}/operations/01ARZ3NDEKTSV4RRFFQ69G5FAV/messages"),
            PROD_KEY,
            &json!({"message": "x"}),
        ),
    );
    let batch = format!("{ENV}/messages");
    c.expect(
        201,
        "POST",
        &batch,
        d.post(
            &format!("{prod}/messages"),
            PROD_KEY,
            &json!([
                {"operation_id": id, "message": "batched for the sync"},
                {"operation_id": auth_id, "message": "token exchanged", "source": "system"}
            ]),
        ),
    );
    c.expect(
        404,
        "POST",
        &batch,
        d.post(
            &format!("{prod}/messages"),
            PROD_KEY,
            &json!([{"operation_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "message": "x"}]),
        ),
    );

    let page = c.expect(
        200,
        "GET",
        &msgs,
        d.get(&with_query(&posted, "limit=2"), PROD_KEY),
    );
    assert!(page.body["next_cursor"].is_string(), "{}", page.text);
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    c.expect(
        200,
        "GET",
        &msgs,
        d.get(
            &with_query(&posted, &format!("limit=2&cursor={cursor}")),
            PROD_KEY,
        ),
    );
    c.expect(
        400,
        "GET",
        &msgs,
        d.get(&with_query(&posted, "cursor=forged"), PROD_KEY),
    );
    c.expect(
        404,
        "GET",
        &msgs,
        d.get(
            &format!("{prod}/operations/01ARZ3NDEKTSV4RRFFQ69G5FAV/messages"),
            PROD_KEY,
        ),
    );

    // Search, once the index has the messages (freshness is a second; allow more on a busy box).
    let search = format!("{ENV}/messages");
    let hits = eventually(WAIT, || {
        let r = d.get(&format!("{prod}/messages?q=rate%20limited"), PROD_KEY);
        (r.status == 200 && r.body["total"] == 1).then_some(r)
    });
    c.expect(200, "GET", &search, hits);
    let with_snippets = c.expect(
        200,
        "GET",
        &search,
        d.get(
            &format!("{prod}/messages?q=rate%20limited&snippets=true"),
            PROD_KEY,
        ),
    );
    assert!(
        with_snippets.body["data"][0]["snippet"]["highlights"].is_array(),
        "{}",
        with_snippets.text
    );
    c.expect(200, "GET", &search, d.get(&format!("{prod}/messages?level=warn&level=error&message_type=http&integration=github&limit=1"), PROD_KEY));
    c.expect(
        400,
        "GET",
        &search,
        d.get(&format!("{prod}/messages?q=rate%20OR"), PROD_KEY),
    );
    let filtered = c.expect(
        200,
        "GET",
        &msgs,
        d.get(&with_query(&posted, "q=page&level=info"), PROD_KEY),
    );
    assert!(
        filtered.body["total"].as_u64().unwrap() >= 1,
        "{}",
        filtered.text
    );
    c.expect(
        200,
        "GET",
        &ops,
        d.get(
            &format!("{prod}/operations?type=sync:run&state=running&integration=github&q=issues"),
            PROD_KEY,
        ),
    );
    let op_snippets = c.expect(
        200,
        "GET",
        &ops,
        d.get(
            &format!("{prod}/operations?q=rate%20limited&snippets=true"),
            PROD_KEY,
        ),
    );
    assert!(
        op_snippets.body["data"][0]["snippet"]["text"].is_string(),
        "{}",
        op_snippets.text
    );
    let in_context = c.expect(
        200,
        "GET",
        &msgs,
        d.get(&with_query(&posted, "q=rate&snippets=true"), PROD_KEY),
    );
    assert_eq!(in_context.status, 200, "{}", in_context.text);
    let listed = c.expect(
        200,
        "GET",
        &ops,
        d.get(&format!("{prod}/operations?limit=1"), PROD_KEY),
    );
    assert!(listed.body["next_cursor"].is_string(), "{}", listed.text);
    c.expect(
        400,
        "GET",
        &ops,
        d.get(&format!("{prod}/operations?state=done"), PROD_KEY),
    );
    let facets = format!("{ENV}/facets");
    c.expect(
        200,
        "GET",
        &facets,
        d.get(
            &format!("{prod}/facets?field=integration&prefix=git"),
            PROD_KEY,
        ),
    );
    c.expect(
        400,
        "GET",
        &facets,
        d.get(&format!("{prod}/facets"), PROD_KEY),
    );
    let insights = format!("{ENV}/insights");
    c.expect(
        200,
        "GET",
        &insights,
        d.get(&format!("{prod}/insights?type=sync&interval=1h"), PROD_KEY),
    );
    c.expect(
        400,
        "GET",
        &insights,
        d.get(&format!("{prod}/insights?interval=1ms"), PROD_KEY),
    );
    let signals = format!("{ENV}/signals");
    c.expect(
        200,
        "GET",
        &signals,
        d.get(&format!("{prod}/signals?integration=github"), PROD_KEY),
    );
    c.expect(
        400,
        "GET",
        &signals,
        d.get(&format!("{prod}/signals?from=yesterday"), PROD_KEY),
    );

    // Views: the built-in ones and one saved, changed and deleted.
    let views = format!("{ENV}/views");
    let view = format!("{ENV}/views/{{id}}");
    c.expect(
        200,
        "GET",
        &views,
        d.get(&format!("{prod}/views"), PROD_KEY),
    );
    let saved = json!({"name": "Failed GitHub syncs", "query": {"type": ["sync"], "state": ["failed"], "integration": ["github"], "q": "timeout", "range": "24h"}});
    c.expect(
        201,
        "POST",
        &views,
        d.post(&format!("{prod}/views"), PROD_KEY, &saved),
    );
    c.expect(
        409,
        "POST",
        &views,
        d.post(&format!("{prod}/views"), PROD_KEY, &saved),
    );
    c.expect(
        400,
        "POST",
        &views,
        d.post(
            &format!("{prod}/views"),
            PROD_KEY,
            &json!({"name": "x", "query": {"level": ["loud"]}}),
        ),
    );
    let mine = format!("{prod}/views/failed_github_syncs");
    c.expect(200, "GET", &view, d.get(&mine, PROD_KEY));
    c.expect(
        200,
        "GET",
        &view,
        d.get(&format!("{prod}/views/action_errors"), PROD_KEY),
    );
    c.expect(
        404,
        "GET",
        &view,
        d.get(&format!("{prod}/views/nope"), PROD_KEY),
    );
    c.expect(
        200,
        "PUT",
        &view,
        d.send(
            "PUT",
            &mine,
            PROD_KEY,
            &json!({"name": "GitHub sync failures"}),
        ),
    );
    c.expect(
        409,
        "PUT",
        &view,
        d.send(
            "PUT",
            &format!("{prod}/views/sync_failures"),
            PROD_KEY,
            &json!({"name": "x"}),
        ),
    );
    c.expect(
        409,
        "DELETE",
        &view,
        d.raw(
            "DELETE",
            &format!("{prod}/views/sync_failures"),
            Some(PROD_KEY),
            &[],
            None,
        ),
    );
    c.expect(
        204,
        "DELETE",
        &view,
        d.raw("DELETE", &mine, Some(PROD_KEY), &[], None),
    );

    // Ending the sync queues sync.completed and sync.records; a terminal state is final.
    let ended = json!({"state": "success", "records": [{"model": "Issue", "added": 3, "updated": 1}],
                       "response": {"status": 200}, "ended_at": "2026-01-05T10:06:00Z"});
    c.expect(200, "PATCH", &op, d.patch(&one, PROD_KEY, &ended));
    c.expect(
        409,
        "PATCH",
        &op,
        d.patch(&one, PROD_KEY, &json!({"state": "failed"})),
    );
    c.expect(
        400,
        "PATCH",
        &op,
        d.patch(&one, PROD_KEY, &json!({"state": "finished"})),
    );

    // Settings.
    let settings = format!("{ENV}/settings");
    c.expect(
        200,
        "GET",
        &settings,
        d.get(&format!("{prod}/settings"), ADMIN),
    );
    c.expect(200, "PUT", &settings, d.send("PUT", &format!("{prod}/settings"), ADMIN, &json!({"webhooks": {"events": ["sync.completed", "sync.records", "webhook.received"]}})));
    c.expect(200, "PUT", &settings, d.send("PUT", "/v1/environments/dev/settings", ADMIN, &json!({"webhooks": {"url": "https://backend.example.com/hooks", "secondary_url": null}})));
    c.expect(
        400,
        "PUT",
        &settings,
        d.send(
            "PUT",
            "/v1/environments/dev/settings",
            ADMIN,
            &json!({"webhooks": {"url": "http://backend.example.com/hooks"}}),
        ),
    );
    c.expect(
        409,
        "PUT",
        &settings,
        d.send(
            "PUT",
            &format!("{prod}/settings"),
            ADMIN,
            &json!({"webhooks": {"url": "https://elsewhere.example.com"}}),
        ),
    );
    let secret = format!("{ENV}/settings/webhook-secret");
    c.expect(
        200,
        "GET",
        &secret,
        d.get(&format!("{prod}/settings/webhook-secret"), ADMIN),
    );
    c.expect(
        403,
        "GET",
        &secret,
        d.get(&format!("{prod}/settings/webhook-secret"), PROD_KEY),
    );
    let rotate = format!("{ENV}/settings/webhook-secret/rotate");
    let rotated = c.expect(
        200,
        "POST",
        &rotate,
        d.raw(
            "POST",
            &format!("{prod}/settings/webhook-secret/rotate?grace=1h"),
            Some(ADMIN),
            &[],
            None,
        ),
    );
    assert!(
        rotated.body["previous_secret"].is_string(),
        "{}",
        rotated.text
    );
    c.expect(
        400,
        "POST",
        &rotate,
        d.raw(
            "POST",
            &format!("{prod}/settings/webhook-secret/rotate?grace=30d"),
            Some(ADMIN),
            &[],
            None,
        ),
    );
    c.expect(
        403,
        "POST",
        &rotate,
        d.raw(
            "POST",
            &format!("{prod}/settings/webhook-secret/rotate"),
            Some(PROD_KEY),
            &[],
            None,
        ),
    );
    let ingress = format!("{ENV}/settings/ingress-token/rotate");
    let rotated = c.expect(
        200,
        "POST",
        &ingress,
        d.raw(
            "POST",
            &format!("{prod}/settings/ingress-token/rotate"),
            Some(ADMIN),
            &[],
            None,
        ),
    );
    let token = rotated.body["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ingress.
    let hooks = "/v1/hooks/{token}/{integration}";
    c.expect(
        200,
        "POST",
        hooks,
        d.raw(
            "POST",
            &format!("/v1/hooks/{token}/stripe?connection_id=acme&sig=1"),
            None,
            &[],
            Some(b"{\"type\":\"charge.succeeded\"}"),
        ),
    );
    c.expect(
        404,
        "POST",
        hooks,
        d.raw(
            "POST",
            "/v1/hooks/hook_wrong/stripe",
            None,
            &[],
            Some(b"{}"),
        ),
    );
    c.expect(
        200,
        "POST",
        hooks,
        d.raw(
            "POST",
            &format!("/v1/hooks/{token}/slack"),
            None,
            &[],
            Some(br#"{"type":"url_verification","challenge":"c1"}"#),
        ),
    );
    c.expect(
        200,
        "GET",
        hooks,
        d.raw(
            "GET",
            &format!("/v1/hooks/{token}/dropbox?challenge=c2"),
            None,
            &[],
            None,
        ),
    );
    c.expect(
        404,
        "GET",
        hooks,
        d.raw("GET", &format!("/v1/hooks/{token}/stripe"), None, &[], None),
    );
    c.expect(
        404,
        "GET",
        hooks,
        d.raw(
            "GET",
            "/v1/hooks/hook_wrong/dropbox?challenge=c",
            None,
            &[],
            None,
        ),
    );

    // Deliveries: wait until the sync's deliveries have failed their single attempt.
    let deliveries = format!("{ENV}/deliveries");
    let list = eventually(WAIT, || {
        let r = d.get(&format!("{prod}/deliveries?status=failed"), PROD_KEY);
        (r.status == 200 && r.body["total"].as_u64() >= Some(2)).then_some(r)
    });
    let list = c.expect(200, "GET", &deliveries, list);
    let delivery_id = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    c.expect(
        200,
        "GET",
        &deliveries,
        d.get(
            &format!("{prod}/deliveries?event=sync.records&limit=1"),
            PROD_KEY,
        ),
    );
    c.expect(
        400,
        "GET",
        &deliveries,
        d.get(&format!("{prod}/deliveries?status=lost"), PROD_KEY),
    );
    let delivery = format!("{ENV}/deliveries/{{id}}");
    let detail = c.expect(
        200,
        "GET",
        &delivery,
        d.get(&format!("{prod}/deliveries/{delivery_id}"), PROD_KEY),
    );
    assert!(
        !detail.body["attempt_log"].as_array().unwrap().is_empty(),
        "{}",
        detail.text
    );
    c.expect(
        400,
        "GET",
        &delivery,
        d.get(&format!("{prod}/deliveries/nope"), PROD_KEY),
    );
    c.expect(
        404,
        "GET",
        &delivery,
        d.get(
            &format!("{prod}/deliveries/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            PROD_KEY,
        ),
    );
    let retry = format!("{ENV}/deliveries/{{id}}/retry");
    c.expect(
        202,
        "POST",
        &retry,
        d.raw(
            "POST",
            &format!("{prod}/deliveries/{delivery_id}/retry"),
            Some(ADMIN),
            &[],
            None,
        ),
    );
    c.expect(
        404,
        "POST",
        &retry,
        d.raw(
            "POST",
            &format!("{prod}/deliveries/01ARZ3NDEKTSV4RRFFQ69G5FAV/retry"),
            Some(ADMIN),
            &[],
            None,
        ),
    );
    let replay = format!("{ENV}/deliveries/replay");
    c.expect(
        202,
        "POST",
        &replay,
        d.raw(
            "POST",
            &format!("{prod}/deliveries/replay?from=2020-01-01T00:00:00Z&status=failed"),
            Some(ADMIN),
            &[],
            None,
        ),
    );
    c.expect(
        400,
        "POST",
        &replay,
        d.raw(
            "POST",
            &format!("{prod}/deliveries/replay"),
            Some(ADMIN),
            &[],
            None,
        ),
    );

    // Exports: the ended sync's span was refused (400), so it is failed.
    let exports = format!("{ENV}/exports");
    let list = eventually(WAIT, || {
        let r = d.get(&format!("{prod}/exports?status=failed"), PROD_KEY);
        (r.status == 200 && r.body["total"].as_u64() >= Some(1)).then_some(r)
    });
    let list = c.expect(200, "GET", &exports, list);
    let export_id = list.body["data"][0]["id"].as_str().unwrap().to_owned();
    c.expect(
        400,
        "GET",
        &exports,
        d.get(&format!("{prod}/exports?status=lost"), PROD_KEY),
    );
    let export = format!("{ENV}/exports/{{id}}");
    c.expect(
        200,
        "GET",
        &export,
        d.get(&format!("{prod}/exports/{export_id}"), PROD_KEY),
    );
    c.expect(
        404,
        "GET",
        &export,
        d.get(
            &format!("{prod}/exports/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            PROD_KEY,
        ),
    );
    c.expect(
        202,
        "POST",
        &format!("{ENV}/exports/{{id}}/retry"),
        d.raw(
            "POST",
            &format!("{prod}/exports/{export_id}/retry"),
            Some(ADMIN),
            &[],
            None,
        ),
    );
    c.expect(
        202,
        "POST",
        &format!("{ENV}/exports/replay"),
        d.raw(
            "POST",
            &format!("{prod}/exports/replay?from=2020-01-01T00:00:00Z&status=failed"),
            Some(ADMIN),
            &[],
            None,
        ),
    );

    // Export, import, backup.
    let export = format!("{ENV}/export");
    let exported = c.expect(
        200,
        "GET",
        &export,
        d.get(&format!("{prod}/export"), PROD_KEY),
    );
    let lines: Vec<Value> = exported
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["operation"]["id"] == id.as_str()),
        "the export holds the operation created above"
    );
    assert!(lines.last().unwrap()["end"]["operations"].as_u64().unwrap() >= 2);
    c.expect(
        400,
        "GET",
        &export,
        d.get(&format!("{prod}/export?from=yesterday"), PROD_KEY),
    );
    // OTLP ingest: a span accepted and one refused (partial success), a log record, bad bodies.
    // The span is a minute old: one older than the retention period would be removed by a sweep.
    let minute_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 60;
    let (start, end) = (
        (minute_ago as u128 * 1_000_000_000).to_string(),
        ((minute_ago + 1) as u128 * 1_000_000_000).to_string(),
    );
    for (signal, body) in [
        (
            "traces",
            json!({"resourceSpans": [{"scopeSpans": [{"spans": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                 "name": "nightly", "startTimeUnixNano": start,
                 "endTimeUnixNano": end},
                {"traceId": "", "spanId": "", "name": "no ids"}
            ]}]}]}),
        ),
        (
            "logs",
            json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
                {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                 "body": {"stringValue": "done"}}
            ]}]}]}),
        ),
    ] {
        let template = format!("{ENV}/otlp/v1/{signal}");
        let path = format!("{prod}/otlp/v1/{signal}");
        let body = serde_json::to_vec(&body).unwrap();
        c.expect(
            200,
            "POST",
            &template,
            d.raw("POST", &path, Some(PROD_KEY), &[], Some(&body)),
        );
        let protobuf = [("content-type", "application/x-protobuf")];
        c.expect(
            200,
            "POST",
            &template,
            d.raw("POST", &path, Some(PROD_KEY), &protobuf, Some(b"")),
        );
        c.expect(
            400,
            "POST",
            &template,
            d.raw("POST", &path, Some(PROD_KEY), &protobuf, Some(b"\xff")),
        );
        let text = [("content-type", "text/plain")];
        c.expect(
            415,
            "POST",
            &template,
            d.raw("POST", &path, Some(PROD_KEY), &text, Some(b"hi")),
        );
    }
    let import = format!("{ENV}/import");
    let ndjson = [("content-type", "application/x-ndjson")];
    let imported = c.expect(
        200,
        "POST",
        &import,
        d.raw(
            "POST",
            &format!("{prod}/import"),
            Some(ADMIN),
            &ndjson,
            Some(exported.text.as_bytes()),
        ),
    );
    assert_eq!(imported.body["operations_added"], 0, "all already stored");
    assert_eq!(
        imported.body["operations_skipped"],
        lines.last().unwrap()["end"]["operations"]
    );
    c.expect(
        403,
        "POST",
        &import,
        d.raw(
            "POST",
            &format!("{prod}/import"),
            Some(PROD_KEY),
            &ndjson,
            Some(exported.text.as_bytes()),
        ),
    );
    c.expect(
        415,
        "POST",
        &import,
        d.raw(
            "POST",
            &format!("{prod}/import"),
            Some(ADMIN),
            &[("content-type", "text/csv")],
            Some(b"id,type"),
        ),
    );
    c.expect(
        400,
        "POST",
        &import,
        d.raw(
            "POST",
            &format!("{prod}/import"),
            Some(ADMIN),
            &ndjson,
            Some(b"{\"operation\": 1}"),
        ),
    );
    let backup = c.expect(200, "GET", "/v1/backup", d.get("/v1/backup", ADMIN));
    assert!(
        !backup.text.is_empty(),
        "the backup has the database's bytes"
    );
    c.expect(403, "GET", "/v1/backup", d.get("/v1/backup", PROD_KEY));
    c.expect(
        401,
        "GET",
        "/v1/backup",
        d.raw("GET", "/v1/backup", None, &[], None),
    );

    let audit = c.expect(
        200,
        "GET",
        "/v1/audit",
        d.get("/v1/audit?action=backup.download&limit=5", ADMIN),
    );
    assert_eq!(audit.body["data"][0]["action"], "backup.download");
    c.expect(400, "GET", "/v1/audit", d.get("/v1/audit?action=x", ADMIN));
    c.expect(403, "GET", "/v1/audit", d.get("/v1/audit", PROD_KEY));
    c.expect(
        401,
        "GET",
        "/v1/audit",
        d.raw("GET", "/v1/audit", None, &[], None),
    );

    // Dashboard and server-wide endpoints.
    c.expect(
        200,
        "GET",
        "/v1/environments",
        d.get("/v1/environments", ADMIN),
    );
    c.expect(
        401,
        "GET",
        "/v1/environments",
        d.raw("GET", "/v1/environments", None, &[], None),
    );
    c.expect(200, "GET", "/v1/vocabulary", d.get("/v1/vocabulary", ADMIN));
    c.expect(
        401,
        "GET",
        "/v1/vocabulary",
        d.raw("GET", "/v1/vocabulary", None, &[], None),
    );
    c.expect(
        200,
        "GET",
        "/v1/session",
        d.raw("GET", "/v1/session", None, &[], None),
    );
    c.expect(200, "GET", "/v1/session", d.get("/v1/session", DEV_KEY));
    c.expect(
        401,
        "POST",
        "/v1/session",
        d.raw(
            "POST",
            "/v1/session",
            None,
            &[],
            Some(br#"{"token": "wrong"}"#),
        ),
    );
    c.expect(
        400,
        "POST",
        "/v1/session",
        d.raw(
            "POST",
            "/v1/session",
            None,
            &[],
            Some(br#"{"password": "x"}"#),
        ),
    );
    c.expect(
        200,
        "POST",
        "/v1/session",
        d.raw(
            "POST",
            "/v1/session",
            None,
            &[],
            Some(json!({"token": ADMIN}).to_string().as_bytes()),
        ),
    );
    c.expect(
        204,
        "DELETE",
        "/v1/session",
        d.raw("DELETE", "/v1/session", None, &[], None),
    );
    c.expect(
        200,
        "GET",
        "/healthz",
        d.raw("GET", "/healthz", None, &[], None),
    );
    c.expect(
        200,
        "GET",
        "/readyz",
        d.raw("GET", "/readyz", None, &[], None),
    );
    c.expect(
        200,
        "GET",
        "/metrics",
        d.raw("GET", "/metrics", None, &[], None),
    );
    c.expect(
        200,
        "GET",
        "/openapi.json",
        d.raw("GET", "/openapi.json", None, &[], None),
    );

    // Erasures: one of a connection nobody has, done at once; and the CSV of a list.
    let erase = format!("{ENV}/erase");
    let erased = c.expect(
        200,
        "POST",
        &erase,
        d.post(
            &format!("{prod}/erase"),
            ADMIN,
            &json!({"connection_id": "nobody"}),
        ),
    );
    let erasure = erased.body["id"].as_str().unwrap().to_owned();
    c.expect(
        400,
        "POST",
        &erase,
        d.post(&format!("{prod}/erase"), ADMIN, &json!({})),
    );
    c.expect(
        200,
        "GET",
        &format!("{ENV}/erasures"),
        d.get(&format!("{prod}/erasures"), ADMIN),
    );
    c.expect(
        200,
        "GET",
        &format!("{ENV}/erasures/{{id}}"),
        d.get(&format!("{prod}/erasures/{erasure}"), ADMIN),
    );
    c.expect(
        200,
        "GET",
        &format!("{ENV}/operations"),
        d.raw(
            "GET",
            &format!("{prod}/operations"),
            Some(PROD_KEY),
            &[("accept", "text/csv")],
            None,
        ),
    );

    c.assert_every_success_checked();
}

#[test]
fn openapi_strictness_catches_an_undocumented_field() {
    // The check above must be able to fail: an extra field, a wrong type, a missing field.
    let d = Daemon::start();
    let c = Contract::load(&d);
    let schema = json!({"$ref": "#/components/schemas/ErrorBody"});
    let good = json!({"error": {"code": "x", "message": "y"}});
    c.validate(&schema, &good, "a valid error body");
    for bad in [
        json!({"error": {"code": "x", "message": "y", "hint": "z"}}),
        json!({"error": {"code": 1, "message": "y"}}),
        json!({"error": {"code": "x"}}),
    ] {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.validate(&schema, &bad, "an invalid error body")
        }));
        assert!(result.is_err(), "{bad} passed");
    }
    let hit = json!({"$ref": "#/components/schemas/MessageHit"});
    let mut message = Map::new();
    for (k, v) in [
        ("id", json!("01ARZ3NDEKTSV4RRFFQ69G5FAV")),
        ("operation_id", json!("01ARZ3NDEKTSV4RRFFQ69G5FAV")),
        ("type", json!("log")),
        ("level", json!("info")),
        ("source", json!("user")),
        ("message", json!("hello")),
        ("created_at", json!("2026-01-05T10:00:00.000Z")),
        (
            "operation",
            json!({"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "type": "sync", "action": "run", "state": "running",
                   "integration": null, "connection_id": null, "script": null}),
        ),
    ] {
        message.insert(k.into(), v);
    }
    c.validate(&hit, &Value::Object(message.clone()), "a flattened hit");
    message.insert("surprise".into(), json!(1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.validate(
            &hit,
            &Value::Object(message),
            "a flattened hit with an extra field",
        )
    }));
    assert!(
        result.is_err(),
        "extra fields next to a flattened struct are caught"
    );
}
