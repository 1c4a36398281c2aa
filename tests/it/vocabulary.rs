//! `GET /v1/vocabulary`, what the dashboard builds its pickers and lists from: exactly the values
//! of the server's enums (compared with the enums' own `ALL`), signal filters that list what the
//! signal counts, replay statuses a replay takes; and a guard that the dashboard's scripts hold
//! no copied list of those values.

use std::time::Duration;

use opslog::alerts::Signal;
use opslog::config::{SpanNames, WebhookFormat};
use opslog::model::{DeliveryStatus, EventType, Level, MessageType, OpState, OpType};
use opslog::query_params::Endpoint;
use serde::Serialize;
use serde_json::{json, Value};

use crate::support::*;

fn names<T: Serialize>(all: &[T]) -> Value {
    all.iter()
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

#[test]
fn the_vocabulary_lists_exactly_the_values_of_the_servers_enums() {
    let d = Daemon::start();
    let reply = d.get("/v1/vocabulary", ADMIN);
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.headers["cache-control"], "no-store");
    let v = &reply.body;

    let types: Value = OpType::ALL
        .iter()
        .map(|t| json!({"type": t.as_str(), "actions": t.actions()}))
        .collect();
    assert_eq!(v["types"], types);
    for t in OpType::ALL {
        assert_eq!(
            t.actions().first(),
            Some(&t.default_action()),
            "{t}: the first action is the default"
        );
    }
    // The action the dashboard's type picker once had wrong (`auth:refresh`).
    let auth = v["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "auth")
        .unwrap();
    assert!(auth["actions"]
        .as_array()
        .unwrap()
        .contains(&json!("refresh_token")));

    let states: Value = OpState::ALL
        .iter()
        .map(|s| json!({"state": s.as_str(), "terminal": s.is_terminal()}))
        .collect();
    assert_eq!(v["states"], states);
    assert_eq!(v["message_types"], names(MessageType::ALL));
    assert_eq!(v["levels"], names(Level::ALL));
    assert_eq!(v["events"], names(EventType::ALL));
    assert_eq!(v["delivery_statuses"], names(DeliveryStatus::ALL));
    assert_eq!(v["webhook_formats"], names(&WebhookFormat::ALL));
    assert_eq!(v["span_names"], names(&SpanNames::ALL));
    assert_eq!(
        v["audit_actions"],
        names(&opslog::model::audit::AuditAction::ALL)
    );
    let signals = v["signals"].as_array().unwrap();
    assert_eq!(
        signals
            .iter()
            .map(|s| s["signal"].clone())
            .collect::<Value>(),
        names(&Signal::ALL)
    );
    for (s, signal) in signals.iter().zip(Signal::ALL) {
        assert_eq!(s["title"], signal.title());
        let counts = if signal.counts_messages() {
            "messages"
        } else {
            "operations"
        };
        assert_eq!(s["counts"], counts);
    }

    // Any key that may read gets the same; no credentials, none.
    assert_eq!(d.get("/v1/vocabulary", PROD_KEY).body, reply.body);
    let anonymous = d.raw("GET", "/v1/vocabulary", None, &[], None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
}

#[test]
fn replay_statuses_are_exactly_those_a_replay_takes() {
    let d = Daemon::start();
    let v = d.get("/v1/vocabulary", ADMIN).body;
    let replayable = v["replay_statuses"].as_array().unwrap();
    assert!(!replayable.is_empty());
    for status in v["delivery_statuses"].as_array().unwrap() {
        let status = status.as_str().unwrap();
        let reply = d.raw(
            "POST",
            &format!(
                "/v1/environments/prod/deliveries/replay?from=2026-01-01T00:00:00Z&status={status}"
            ),
            Some(ADMIN),
            &[],
            None,
        );
        if replayable.contains(&json!(status)) {
            assert_eq!(reply.status, 202, "{status}: {}", reply.text);
        } else {
            assert_eq!(
                (reply.status, reply.body["error"]["field"].as_str()),
                (400, Some("status")),
                "{status}: {}",
                reply.text
            );
        }
    }
}

/// Each signal's `filters`, on the list its `counts` names, select exactly what `/signals` counts:
/// the dashboard opens a signal's list with them.
#[test]
fn each_signals_filters_list_exactly_what_it_counts() {
    let d = Daemon::start();
    let env = "/v1/environments/prod";
    let start = |body: Value| d.start_operation("prod", PROD_KEY, &body);
    // One of each signal, and near misses that none counts.
    start(json!({"type": "sync", "integration": "github", "state": "failed"}));
    start(json!({"type": "sync", "integration": "github", "state": "success"}));
    start(json!({"type": "auth", "action": "refresh_token", "state": "timeout"}));
    start(json!({"type": "webhook", "action": "incoming", "state": "failed"}));
    start(json!({"type": "webhook", "action": "forward", "state": "failed"}));
    let action = start(json!({"type": "action", "integration": "salesforce"}));
    let logged = d.post(
        &format!("{env}/operations/{action}/messages"),
        PROD_KEY,
        &json!([
            {"type": "http", "level": "error", "request": {"method": "POST", "url": "https://api.example/contacts"}, "response": {"status": 500}},
            {"level": "error", "message": "not an http call"},
        ]),
    );
    assert_eq!(logged.status, 201, "{}", logged.text);

    let vocabulary = d.get("/v1/vocabulary", PROD_KEY).body;
    let range = [
        ("from", "2020-01-01T00:00:00Z"),
        ("to", "2100-01-01T00:00:00Z"),
    ];
    let query = |pairs: &mut dyn Iterator<Item = (String, String)>| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            q.append_pair(&name, &value);
        }
        for (name, value) in range {
            q.append_pair(name, value);
        }
        q.finish()
    };
    let signals_query = query(&mut std::iter::empty());
    eventually(Duration::from_secs(20), || {
        let counted = d.get(&format!("{env}/signals?{signals_query}"), PROD_KEY);
        assert_eq!(counted.status, 200, "{}", counted.text);
        vocabulary["signals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| {
                let count = counted.body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["signal"] == s["signal"])
                    .unwrap()["count"]
                    .clone();
                let filters = s["filters"].as_array().unwrap().iter().map(|f| {
                    (
                        f["name"].as_str().unwrap().to_owned(),
                        f["value"].as_str().unwrap().to_owned(),
                    )
                });
                let listed = d.get(
                    &format!(
                        "{env}/{}?{}",
                        s["counts"].as_str().unwrap(),
                        query(&mut filters.into_iter())
                    ),
                    PROD_KEY,
                );
                assert_eq!(listed.status, 200, "{}", listed.text);
                count == json!(1) && listed.body["total"] == count
            })
            .then_some(())
    });
}

/// A JavaScript source as string literals (their text) and the other characters, comments left
/// out; a template's `${...}` is read as code.
#[derive(Debug, PartialEq)]
enum Token {
    Text(String),
    Code(char),
}

fn tokens(source: &str) -> Vec<Token> {
    fn code(chars: &[char], i: &mut usize, out: &mut Vec<Token>, in_template: bool) {
        let mut depth = 0;
        while *i < chars.len() {
            let c = chars[*i];
            let next = chars.get(*i + 1).copied();
            match c {
                '/' if next == Some('/') => {
                    while *i < chars.len() && chars[*i] != '\n' {
                        *i += 1;
                    }
                    continue;
                }
                '/' if next == Some('*') => {
                    *i += 2;
                    while *i + 1 < chars.len() && !(chars[*i] == '*' && chars[*i + 1] == '/') {
                        *i += 1;
                    }
                    *i += 2;
                    continue;
                }
                '\'' | '"' => {
                    let mut text = String::new();
                    *i += 1;
                    while *i < chars.len() && chars[*i] != c {
                        if chars[*i] == '\\' {
                            *i += 1;
                        }
                        text.extend(chars.get(*i));
                        *i += 1;
                    }
                    *i += 1;
                    out.push(Token::Text(text));
                    continue;
                }
                '`' => {
                    *i += 1;
                    let mut text = String::new();
                    while *i < chars.len() && chars[*i] != '`' {
                        if chars[*i] == '\\' {
                            *i += 1;
                        } else if chars[*i] == '$' && chars.get(*i + 1) == Some(&'{') {
                            out.push(Token::Text(std::mem::take(&mut text)));
                            *i += 2;
                            code(chars, i, out, true);
                            continue;
                        }
                        text.extend(chars.get(*i));
                        *i += 1;
                    }
                    *i += 1;
                    out.push(Token::Text(text));
                    continue;
                }
                '{' => depth += 1,
                '}' if in_template && depth == 0 => {
                    *i += 1;
                    return;
                }
                '}' => depth -= 1,
                _ => {}
            }
            out.push(Token::Code(c));
            *i += 1;
        }
    }
    let chars: Vec<char> = source.chars().collect();
    let mut out = Vec::new();
    code(&chars, &mut 0, &mut out, false);
    out
}

/// Pairs of different values of `set` that are neighbours in a list literal of `source` (only
/// commas, brackets, spaces and other strings between them): a copy of the server's values.
fn copied_lists(source: &str, set: &[String]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut last: Option<&str> = None;
    for token in &tokens(source) {
        match token {
            Token::Text(t) => {
                if let Some(value) = set.iter().find(|v| *v == t) {
                    if let Some(l) = last.filter(|l| *l != value.as_str()) {
                        found.push((l.to_owned(), value.clone()));
                    }
                    last = Some(value.as_str());
                }
            }
            Token::Code(c) if c.is_whitespace() || matches!(c, ',' | '[' | ']') => {}
            Token::Code(_) => last = None,
        }
    }
    found
}

/// Every set of values the dashboard takes from the vocabulary, from the enums themselves.
fn server_value_sets() -> Vec<(&'static str, Vec<String>)> {
    let strings = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    vec![
        ("states", strings(names(OpState::ALL))),
        ("types", strings(names(OpType::ALL))),
        (
            "type filters",
            OpType::ALL
                .iter()
                .flat_map(|t| t.actions().iter().map(move |a| format!("{t}:{a}")))
                .collect(),
        ),
        ("levels", strings(names(Level::ALL))),
        ("message types", strings(names(MessageType::ALL))),
        ("events", strings(names(EventType::ALL))),
        ("delivery statuses", strings(names(DeliveryStatus::ALL))),
        ("signals", strings(names(&Signal::ALL))),
        ("webhook formats", strings(names(&WebhookFormat::ALL))),
        ("span names", strings(names(&SpanNames::ALL))),
        (
            "operation filters",
            Endpoint::Operations
                .filters()
                .map(|p| p.name.to_owned())
                .collect(),
        ),
    ]
}

/// The query parameters the vocabulary lists (what the dashboard builds its filters from) are
/// those the OpenAPI document gives each endpoint: same names, order, repetition and requirement.
#[test]
fn the_vocabularys_query_parameters_are_the_documented_ones() {
    let d = Daemon::start();
    let vocabulary = d.get("/v1/vocabulary", ADMIN).body;
    let document = d.get("/openapi.json", ADMIN).body;
    for endpoint in Endpoint::ALL {
        let key = serde_json::to_value(endpoint).unwrap();
        let listed: Vec<(String, bool, bool)> = vocabulary["query_parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["endpoints"].as_array().unwrap().contains(&key))
            .map(|p| {
                let name = p["name"].as_str().unwrap().to_owned();
                (name, p["repeatable"] == true, p["required"] == true)
            })
            .collect();
        let path = format!("/v1/environments/{{env}}{}", endpoint.path());
        let documented: Vec<(String, bool, bool)> = document["paths"][&path]["get"]["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("{path} is not documented"))
            .iter()
            // `format` picks the representation (CSV or a JSON page) and is negotiated with
            // `Accept` before the query is parsed (`http::csv::negotiate`): not a query parameter
            // of the table.
            .filter(|p| p["in"] == "query" && p["name"] != "format")
            .map(|p| {
                let name = p["name"].as_str().unwrap().to_owned();
                (name, p["schema"]["type"] == "array", p["required"] == true)
            })
            .collect();
        assert_eq!(listed, documented, "{endpoint:?}");
        assert!(!listed.is_empty());
    }
    let filters: Vec<&str> = vocabulary["query_parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["filter"] == true
                && p["endpoints"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("operations"))
        })
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        filters,
        [
            "type",
            "state",
            "integration",
            "connection_id",
            "script",
            "end_user_id",
            "tag"
        ]
    );
}

#[test]
fn the_copy_guard_finds_a_copied_list_and_reads_templates_through() {
    let states = server_value_sets().remove(0).1;
    let copied = "const STATES = ['success', 'failed', /* more */ 'running'];\n\
                  const STACK = [['success', '#2f9e44'], ['failed', '#e03131']];";
    assert_eq!(
        copied_lists(copied, &states),
        [
            ("success".to_owned(), "failed".to_owned()),
            ("failed".to_owned(), "running".to_owned()),
            ("success".to_owned(), "failed".to_owned()),
        ]
    );
    // Labels keyed by value, comparisons, and templates within templates are no copies.
    let fine = "const COLORS = { success: '#2f9e44', failed: '#e03131' };\n\
                const x = s === 'success' ? `a ${y ? `b ${'c'}` : 'd'} e` : f('failed');";
    assert!(copied_lists(fine, &states).is_empty());
    assert!(tokens(fine).contains(&Token::Text("c".into())));
}

/// The dashboard takes these values from `/v1/vocabulary`: a list of them written into its
/// scripts would drift from the server again.
#[test]
fn the_dashboard_scripts_hold_no_copied_list_of_server_values() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/static");
    let sets = server_value_sets();
    let mut copies = Vec::new();
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "js") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        read += 1;
        for (what, set) in &sets {
            for (a, b) in copied_lists(&source, set) {
                copies.push(format!("{}: {what} `{a}`, `{b}`", path.display()));
            }
        }
    }
    assert!(read >= 5, "only {read} scripts in {}", dir.display());
    assert!(
        copies.is_empty(),
        "lists of the server's values in the dashboard; take them from vocabulary.js:\n{}",
        copies.join("\n")
    );
}
