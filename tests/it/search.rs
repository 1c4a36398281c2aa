//! Search over HTTP: a generated dataset queried with random filter and query combinations, each
//! compared with a brute-force evaluation of the same records; freshness; facets and insights.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::support::*;

const WORDS: &[&str] = &[
    "timeout",
    "invalid_grant",
    "rate",
    "limit",
    "ratelimited",
    "refresh",
    "token",
    "records",
    "saved",
    "github",
    "salesforce",
    "page",
    "retry",
    "error",
    "warning",
    "customer",
    "sync",
    "fetched",
    "deleted",
    "webhook",
    "signature",
    "expired",
    "quota",
    "Timeout",
    "GRANT",
];
const INTEGRATIONS: &[&str] = &["github", "salesforce", "hubspot", "stripe", "slack"];
const SCRIPTS: &[&str] = &["issues", "contacts", "deals", "invoices"];
const TYPES: &[(&str, &str)] = &[
    ("sync", "run"),
    ("action", "run"),
    ("webhook", "incoming"),
    ("auth", "create_connection"),
    ("auth", "refresh_token"),
    ("proxy", "call"),
];
const STATES: &[&str] = &[
    "waiting",
    "running",
    "success",
    "failed",
    "timeout",
    "cancelled",
];
const LEVELS: &[&str] = &["debug", "info", "warn", "error"];

#[derive(Clone, Debug)]
struct Op {
    id: String,
    env: String,
    kind: String,
    action: String,
    state: String,
    integration: String,
    connection_id: String,
    script: Option<String>,
    title: String,
    created_at: String,
}

#[derive(Clone, Debug)]
struct Msg {
    id: String,
    op: String,
    level: String,
    text: String,
    created_at: String,
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The query language, evaluated by hand on one unit of text.
#[derive(Clone, Debug)]
enum Atom {
    Word(String),
    Phrase(String),
    Prefix(String),
}

#[derive(Clone, Debug)]
struct Clause {
    any_of: Vec<Atom>,
    excluded: bool,
}

fn atom_matches(atom: &Atom, unit: &[String]) -> bool {
    let (text, prefix) = match atom {
        Atom::Word(t) | Atom::Phrase(t) => (t, false),
        Atom::Prefix(t) => (t, true),
    };
    let want = tokens(text);
    if want.len() > unit.len() {
        return false;
    }
    (0..=unit.len() - want.len()).any(|start| {
        want.iter().enumerate().all(|(i, w)| {
            let got = &unit[start + i];
            if prefix && i == want.len() - 1 {
                got.starts_with(w.as_str())
            } else {
                got == w
            }
        })
    })
}

fn query_matches(clauses: &[Clause], unit: &[String]) -> bool {
    clauses.iter().all(|c| {
        let hit = c.any_of.iter().any(|a| atom_matches(a, unit));
        hit != c.excluded
    })
}

fn render(clauses: &[Clause]) -> String {
    clauses
        .iter()
        .map(|c| {
            let alts: Vec<String> = c
                .any_of
                .iter()
                .map(|a| match a {
                    Atom::Word(w) => w.clone(),
                    Atom::Phrase(p) => format!("\"{p}\""),
                    Atom::Prefix(p) => format!("{p}*"),
                })
                .collect();
            format!("{}{}", if c.excluded { "-" } else { "" }, alts.join(" OR "))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn random_query(rng: &mut StdRng) -> Vec<Clause> {
    let n = rng.random_range(1..=3);
    (0..n)
        .map(|i| {
            let alternatives = if rng.random_bool(0.2) { 2 } else { 1 };
            let any_of = (0..alternatives)
                .map(|_| {
                    let w = WORDS.choose(rng).unwrap().to_string();
                    match rng.random_range(0..10) {
                        0..=5 => Atom::Word(w),
                        6..=7 => Atom::Prefix(w.chars().take(rng.random_range(2..=4)).collect()),
                        _ => Atom::Phrase(format!("{w} {}", WORDS.choose(rng).unwrap())),
                    }
                })
                .collect();
            Clause {
                any_of,
                excluded: i > 0 && alternatives == 1 && rng.random_bool(0.25),
            }
        })
        .collect()
}

struct Dataset {
    ops: Vec<Op>,
    messages: Vec<Msg>,
}

fn sentence(rng: &mut StdRng) -> String {
    let n = rng.random_range(2..=7);
    (0..n)
        .map(|_| *WORDS.choose(rng).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

fn build_dataset(d: &Daemon, seed: u64, operations: usize) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let specs: Vec<(String, Value)> = (0..operations)
        .map(|i| {
            let env = if i % 7 == 0 { "dev" } else { "prod" };
            let (kind, action) = *TYPES.choose(&mut rng).unwrap();
            let state = *STATES.choose(&mut rng).unwrap();
            let mut body = json!({
                "type": kind, "action": action, "state": state,
                "integration": INTEGRATIONS.choose(&mut rng).unwrap(),
                "connection_id": format!("conn-{}", rng.random_range(0..40)),
                "message": sentence(&mut rng),
            });
            if rng.random_bool(0.7) {
                body["script"] = json!(SCRIPTS.choose(&mut rng).unwrap());
            }
            (env.to_owned(), body)
        })
        .collect();
    let chunks: Vec<Vec<(String, Value)>> = specs
        .chunks(operations.div_ceil(8))
        .map(<[_]>::to_vec)
        .collect();
    let mut ops: Vec<Op> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(env, body)| {
                            let key = if env == "dev" { DEV_KEY } else { PROD_KEY };
                            let r =
                                d.post(&format!("/v1/environments/{env}/operations"), key, &body);
                            assert_eq!(r.status, 201, "{}", r.text);
                            op_from(&r.body)
                        })
                        .collect::<Vec<Op>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut messages = Vec::new();
    for env in ["prod", "dev"] {
        let key = if env == "dev" { DEV_KEY } else { PROD_KEY };
        let mut batch = Vec::new();
        for op in ops.iter().filter(|o| o.env == env) {
            for _ in 0..rng.random_range(0..6) {
                batch.push(json!({"operation_id": op.id, "level": LEVELS.choose(&mut rng).unwrap(), "message": sentence(&mut rng)}));
            }
        }
        batch.shuffle(&mut rng);
        for chunk in batch.chunks(500) {
            let r = d.post(
                &format!("/v1/environments/{env}/messages"),
                key,
                &Value::Array(chunk.to_vec()),
            );
            assert_eq!(r.status, 201, "{}", r.text);
            for m in r.body["data"].as_array().unwrap() {
                messages.push(Msg {
                    id: m["id"].as_str().unwrap().into(),
                    op: m["operation_id"].as_str().unwrap().into(),
                    level: m["level"].as_str().unwrap().into(),
                    text: m["message"].as_str().unwrap().into(),
                    created_at: m["created_at"].as_str().unwrap().into(),
                });
            }
        }
    }
    // Some operations end later: the index must follow state changes.
    for op in ops
        .iter_mut()
        .filter(|o| o.state == "running")
        .take(operations / 10)
    {
        let key = if op.env == "dev" { DEV_KEY } else { PROD_KEY };
        let r = d.patch(
            &format!("/v1/environments/{}/operations/{}", op.env, op.id),
            key,
            &json!({"state": "failed", "error": {"message": "quota expired"}}),
        );
        assert_eq!(r.status, 200);
        op.state = "failed".into();
        op.title = format!("{}\nquota expired", op.title);
    }
    Dataset { ops, messages }
}

fn op_from(v: &Value) -> Op {
    Op {
        id: v["id"].as_str().unwrap().into(),
        env: v["environment"].as_str().unwrap().into(),
        kind: v["type"].as_str().unwrap().into(),
        action: v["action"].as_str().unwrap().into(),
        state: v["state"].as_str().unwrap().into(),
        integration: v["integration"].as_str().unwrap().into(),
        connection_id: v["connection_id"].as_str().unwrap().into(),
        script: v["script"].as_str().map(str::to_owned),
        title: v["message"].as_str().unwrap().into(),
        created_at: v["created_at"].as_str().unwrap().into(),
    }
}

impl Op {
    fn own_text(&self) -> Vec<String> {
        let mut text = self.title.clone();
        for v in [
            Some(&self.integration),
            Some(&self.connection_id),
            self.script.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            text.push('\n');
            text.push_str(v);
        }
        tokens(&text)
    }
}

#[derive(Default, Debug)]
struct Filter {
    types: Vec<String>,
    states: Vec<String>,
    integrations: Vec<String>,
    connections: Vec<String>,
    scripts: Vec<String>,
    levels: Vec<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<Vec<Clause>>,
}

impl Filter {
    fn random(rng: &mut StdRng, ds: &Dataset) -> Filter {
        let mut f = Filter::default();
        let pick = |rng: &mut StdRng, p: f64, values: Vec<String>| -> Vec<String> {
            if rng.random_bool(p) {
                let n = rng.random_range(1..=2);
                values.choose_multiple(rng, n).cloned().collect()
            } else {
                Vec::new()
            }
        };
        f.types = pick(
            rng,
            0.3,
            TYPES
                .iter()
                .map(|(k, a)| {
                    if a.len() % 2 == 0 {
                        k.to_string()
                    } else {
                        format!("{k}:{a}")
                    }
                })
                .collect(),
        );
        f.states = pick(rng, 0.3, STATES.iter().map(|s| s.to_string()).collect());
        f.integrations = pick(
            rng,
            0.3,
            INTEGRATIONS.iter().map(|s| s.to_string()).collect(),
        );
        f.connections = pick(rng, 0.15, (0..40).map(|i| format!("conn-{i}")).collect());
        f.scripts = pick(rng, 0.2, SCRIPTS.iter().map(|s| s.to_string()).collect());
        f.levels = pick(rng, 0.3, LEVELS.iter().map(|s| s.to_string()).collect());
        if rng.random_bool(0.25) {
            let mut times: Vec<&String> = ds.ops.iter().map(|o| &o.created_at).collect();
            times.sort();
            let a = rng.random_range(0..times.len());
            let b = rng.random_range(a..times.len());
            if times[a] < times[b] {
                f.from = Some(times[a].clone());
                f.to = Some(times[b].clone());
            }
        }
        if rng.random_bool(0.7) {
            f.q = Some(random_query(rng));
        }
        f
    }

    fn query_string(&self, with_levels: bool) -> String {
        let mut parts: Vec<(&str, String)> = Vec::new();
        parts.extend(self.types.iter().map(|v| ("type", v.clone())));
        parts.extend(self.states.iter().map(|v| ("state", v.clone())));
        parts.extend(self.integrations.iter().map(|v| ("integration", v.clone())));
        parts.extend(
            self.connections
                .iter()
                .map(|v| ("connection_id", v.clone())),
        );
        parts.extend(self.scripts.iter().map(|v| ("script", v.clone())));
        if with_levels {
            parts.extend(self.levels.iter().map(|v| ("level", v.clone())));
        }
        if let Some(v) = &self.from {
            parts.push(("from", v.clone()));
        }
        if let Some(v) = &self.to {
            parts.push(("to", v.clone()));
        }
        if let Some(q) = &self.q {
            parts.push(("q", render(q)));
        }
        parts
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencoding::encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn op_context(&self, op: &Op) -> bool {
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|t| match t.split_once(':') {
                Some((k, a)) => op.kind == k && op.action == a,
                None => op.kind == *t,
            });
        type_ok
            && (self.integrations.is_empty() || self.integrations.contains(&op.integration))
            && (self.connections.is_empty() || self.connections.contains(&op.connection_id))
            && (self.scripts.is_empty()
                || op.script.as_ref().is_some_and(|s| self.scripts.contains(s)))
    }

    fn in_time(&self, t: &str) -> bool {
        self.from.as_ref().is_none_or(|f| t >= f.as_str())
            && self.to.as_ref().is_none_or(|to| t < to.as_str())
    }

    fn expected_operations(&self, ds: &Dataset, env: &str) -> Vec<String> {
        let mut by_op: HashMap<&str, Vec<&Msg>> = HashMap::new();
        for m in &ds.messages {
            by_op.entry(m.op.as_str()).or_default().push(m);
        }
        let mut out: Vec<&Op> = ds
            .ops
            .iter()
            .filter(|op| op.env == env && self.op_context(op) && self.in_time(&op.created_at))
            .filter(|op| self.states.is_empty() || self.states.contains(&op.state))
            .filter(|op| match &self.q {
                None => true,
                Some(q) => {
                    query_matches(q, &op.own_text())
                        || by_op
                            .get(op.id.as_str())
                            .is_some_and(|ms| ms.iter().any(|m| query_matches(q, &tokens(&m.text))))
                }
            })
            .collect();
        out.sort_by(|a, b| b.id.cmp(&a.id));
        out.into_iter().map(|o| o.id.clone()).collect()
    }

    fn expected_messages(&self, ds: &Dataset, env: &str) -> Vec<String> {
        let ops: HashMap<&str, &Op> = ds.ops.iter().map(|o| (o.id.as_str(), o)).collect();
        let mut out: Vec<&Msg> = ds
            .messages
            .iter()
            .filter(|m| {
                let op = ops[m.op.as_str()];
                op.env == env
                    && self.op_context(op)
                    && (self.states.is_empty() || self.states.contains(&op.state))
                    && (self.levels.is_empty() || self.levels.contains(&m.level))
                    && self.in_time(&m.created_at)
                    && self
                        .q
                        .as_ref()
                        .is_none_or(|q| query_matches(q, &tokens(&m.text)))
            })
            .collect();
        out.sort_by(|a, b| b.id.cmp(&a.id));
        out.into_iter().map(|m| m.id.clone()).collect()
    }
}

/// Every page of a list endpoint: (ids in order, the total each page reported).
fn all_pages(d: &Daemon, path: &str, query: &str, limit: usize) -> (Vec<String>, Vec<u64>) {
    let mut ids = Vec::new();
    let mut totals = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut url = format!("{path}?limit={limit}&{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = d.get(&url, PROD_KEY);
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        ids.extend(
            r.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["id"].as_str().unwrap().to_owned()),
        );
        totals.push(r.body["total"].as_u64().unwrap());
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (ids, totals),
        }
    }
    panic!("pagination did not end");
}

fn wait_indexed(d: &Daemon, ds: &Dataset) {
    let ops = ds.ops.iter().filter(|o| o.env == "prod").count() as u64;
    let failed = ds
        .ops
        .iter()
        .filter(|o| o.env == "prod" && o.state == "failed")
        .count() as u64;
    let messages = ds
        .messages
        .iter()
        .filter(|m| ds.ops.iter().any(|o| o.id == m.op && o.env == "prod"))
        .count() as u64;
    eventually(Duration::from_secs(30), || {
        let o = d.get("/v1/environments/prod/operations?limit=1", PROD_KEY);
        let f = d.get(
            "/v1/environments/prod/operations?limit=1&state=failed",
            PROD_KEY,
        );
        let m = d.get("/v1/environments/prod/messages?limit=1", PROD_KEY);
        (o.body["total"] == ops && f.body["total"] == failed && m.body["total"] == messages)
            .then_some(())
    });
}

#[test]
fn random_queries_agree_with_brute_force() {
    let d = Daemon::start();
    let ds = build_dataset(&d, 0x5eed, 2_000);
    wait_indexed(&d, &ds);
    let mut rng = StdRng::seed_from_u64(42);
    let mut nonempty = 0;
    for case in 0..120 {
        let f = Filter::random(&mut rng, &ds);
        let limit = rng.random_range(1..=60);
        let expected = f.expected_operations(&ds, "prod");
        let (got, totals) = all_pages(
            &d,
            "/v1/environments/prod/operations",
            &f.query_string(false),
            limit,
        );
        assert_eq!(got, expected, "case {case}: operations for {f:?}");
        assert!(
            totals.iter().all(|t| *t == expected.len() as u64),
            "case {case}: totals {totals:?} vs {}",
            expected.len()
        );

        let expected = f.expected_messages(&ds, "prod");
        let (got, totals) = all_pages(
            &d,
            "/v1/environments/prod/messages",
            &f.query_string(true),
            limit.max(20),
        );
        assert_eq!(got, expected, "case {case}: messages for {f:?}");
        assert!(
            totals.iter().all(|t| *t == expected.len() as u64),
            "case {case}"
        );
        nonempty += usize::from(!expected.is_empty());

        check_facets(&d, &ds, &f, case);
    }
    assert!(
        nonempty > 40,
        "the generated cases must mostly find something ({nonempty})"
    );
}

/// Facet values over the operations matching `f`'s type, state and time filters (those facets
/// take), against counting the dataset: every value's count, the order, the distinct total.
fn check_facets(d: &Daemon, ds: &Dataset, f: &Filter, case: usize) {
    let f = Filter {
        types: f.types.clone(),
        states: f.states.clone(),
        from: f.from.clone(),
        to: f.to.clone(),
        ..Filter::default()
    };
    let ops: HashMap<&str, &Op> = ds.ops.iter().map(|o| (o.id.as_str(), o)).collect();
    let field = ["integration", "connection_id", "script"][case % 3];
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for id in f.expected_operations(ds, "prod") {
        let op = ops[id.as_str()];
        let value = match field {
            "integration" => Some(op.integration.as_str()),
            "connection_id" => Some(op.connection_id.as_str()),
            _ => op.script.as_deref(),
        };
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            *counts.entry(value).or_default() += 1;
        }
    }
    let mut expected: Vec<(&str, u64)> = counts.into_iter().collect();
    expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let limit = 5;
    let query = f.query_string(false);
    let r = d.get(
        &format!("/v1/environments/prod/facets?field={field}&limit={limit}&{query}"),
        PROD_KEY,
    );
    assert_eq!(r.status, 200, "case {case}: {}", r.text);
    assert_eq!(r.body["total_values"], expected.len(), "case {case}: {f:?}");
    let want: Vec<Value> = expected
        .iter()
        .take(limit)
        .map(|(value, count)| json!({"value": value, "count": count}))
        .collect();
    assert_eq!(
        r.body["data"],
        Value::Array(want),
        "case {case}: {field} for {f:?}"
    );
}

#[test]
fn one_operations_messages_filter_by_text_and_level() {
    let d = Daemon::start();
    let id = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let path = format!("/v1/environments/prod/operations/{id}/messages");
    let batch: Vec<Value> = (0..30)
        .map(|i| json!({"level": if i % 3 == 0 { "error" } else { "info" }, "message": format!("page {i} {}", if i % 5 == 0 { "rate limited" } else { "fetched" })}))
        .collect();
    let posted = d.post(&path, PROD_KEY, &Value::Array(batch));
    assert_eq!(posted.status, 201);
    let r = eventually(Duration::from_secs(10), || {
        let r = d.get(
            &format!("{path}?q=%22rate%20limited%22&level=error&limit=1"),
            PROD_KEY,
        );
        (r.body["total"] == 2).then_some(r)
    });
    assert_eq!(
        r.body["data"][0]["message"], "page 0 rate limited",
        "oldest first"
    );
    let next = r.body["next_cursor"].as_str().unwrap();
    let r2 = d.get(
        &format!("{path}?q=%22rate%20limited%22&level=error&limit=1&cursor={next}"),
        PROD_KEY,
    );
    assert_eq!(r2.body["data"][0]["message"], "page 15 rate limited");
    assert_eq!(r2.body["next_cursor"], Value::Null);
    // A cursor only continues the query it came from.
    let foreign = d.get(&format!("{path}?q=fetched&cursor={next}"), PROD_KEY);
    assert_eq!((foreign.status, foreign.code()), (404, "cursor_not_found"));
    let http_only = d.get(&format!("{path}?type=http"), PROD_KEY);
    assert_eq!(http_only.body["total"], 0);
}

#[test]
fn acknowledged_messages_are_searchable_promptly() {
    let d = Daemon::start();
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "github", "connection_id": "acme"}),
    );
    for round in 0..5 {
        let word = format!("zebra{round}quokka");
        let r = d.post(
            &format!("/v1/environments/prod/operations/{id}/messages"),
            PROD_KEY,
            &json!({"message": format!("upstream said {word}")}),
        );
        assert_eq!(r.status, 201);
        let hit = eventually(Duration::from_secs(5), || {
            let s = d.get(
                &format!("/v1/environments/prod/messages?q={word}"),
                PROD_KEY,
            );
            (s.body["total"] == 1).then_some(s)
        });
        assert_eq!(hit.body["data"][0]["id"], r.body["id"]);
        assert_eq!(hit.body["data"][0]["operation"]["id"], id.as_str());
        assert_eq!(hit.body["data"][0]["operation"]["integration"], "github");
        assert_eq!(hit.body["data"][0]["operation"]["connection_id"], "acme");
        assert_eq!(hit.body["data"][0]["operation"]["type"], "action");
    }
    // The other environment sees none of it.
    let other = d.get("/v1/environments/dev/messages?q=zebra0quokka", DEV_KEY);
    assert_eq!(other.body["total"], 0);
}

#[test]
fn bad_queries_say_where() {
    let d = Daemon::start();
    // A quote left open is a phrase to the end of the query, as a search box is typed.
    let op = d.start_operation("prod", PROD_KEY, &json!({"type": "sync"}));
    let reply = d.post(
        &format!("/v1/environments/prod/operations/{op}/messages"),
        PROD_KEY,
        &json!([{"message": "rate limit exceeded"}, {"message": "limit the rate"}]),
    );
    assert_eq!(reply.status, 201, "{}", reply.text);
    let found = eventually(Duration::from_secs(10), || {
        let r = d.get("/v1/environments/prod/messages?q=%22rate%20limit", PROD_KEY);
        assert_eq!(r.status, 200, "{}", r.text);
        (r.body["total"] == 1).then_some(r)
    });
    assert_eq!(found.body["data"][0]["message"], "rate limit exceeded");
    let r = d.get("/v1/environments/prod/messages?q=a%20OR", PROD_KEY);
    assert!(r.message().contains("character 3"), "{}", r.text);
    let r = d.get("/v1/environments/prod/messages?q=%21%21%21", PROD_KEY);
    assert_eq!(r.status, 400, "{}", r.text);
    let r = d.get("/v1/environments/prod/operations?state=done", PROD_KEY);
    assert_eq!(r.body["error"]["field"], "state");
    assert!(r.message().contains("running"), "{}", r.text);
    let r = d.get("/v1/environments/prod/operations?colour=red", PROD_KEY);
    assert_eq!(r.body["error"]["field"], "colour");
    let r = d.get("/v1/environments/prod/operations?cursor=AAAA", PROD_KEY);
    assert_eq!(r.code(), "invalid_cursor");
    let long = "a ".repeat(600);
    let r = d.get(
        &format!(
            "/v1/environments/prod/operations?q={}",
            urlencoding::encode(&long)
        ),
        PROD_KEY,
    );
    assert_eq!(r.status, 400);
    // Empty q means no text filter.
    assert_eq!(
        d.get("/v1/environments/prod/operations?q=", PROD_KEY)
            .status,
        200
    );
    // Pathological but valid queries answer.
    let r = d.get(
        &format!(
            "/v1/environments/prod/messages?q={}",
            urlencoding::encode("aa* ab* ac* ad* -ae* \"a b c d e f g h\"")
        ),
        PROD_KEY,
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn facets_and_insights_count_operations() {
    let d = Daemon::start();
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for (i, integration) in [
        "github",
        "github",
        "gitlab",
        "salesforce",
        "github",
        "slack",
    ]
    .iter()
    .enumerate()
    {
        let state = if i % 2 == 0 { "success" } else { "failed" };
        d.start_operation("prod", PROD_KEY, &json!({"type": "sync", "integration": integration, "state": state, "connection_id": format!("c{i}")}));
        *expected.entry(integration).or_default() += 1;
    }
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "github"}),
    );
    d.start_operation(
        "dev",
        DEV_KEY,
        &json!({"type": "sync", "integration": "gitea"}),
    );
    let r = eventually(Duration::from_secs(10), || {
        let r = d.get(
            "/v1/environments/prod/facets?field=integration&type=sync",
            PROD_KEY,
        );
        (r.body["data"].as_array().map(Vec::len) == Some(4)).then_some(r)
    });
    assert_eq!(r.body["data"][0], json!({"value": "github", "count": 3}));
    assert_eq!(r.body["total_values"], 4);
    let r = d.get(
        "/v1/environments/prod/facets?field=integration&prefix=GIT",
        PROD_KEY,
    );
    assert_eq!(
        r.body["data"],
        json!([{"value": "github", "count": 4}, {"value": "gitlab", "count": 1}]),
        "no dev values"
    );
    let r = d.get("/v1/environments/prod/facets?field=owner", PROD_KEY);
    assert_eq!(r.body["error"]["field"], "field");

    let r = d.get(
        "/v1/environments/prod/insights?type=sync&interval=1h",
        PROD_KEY,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["total"], 6);
    let buckets = r.body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    let sum = |state: &str| {
        buckets
            .iter()
            .map(|b| b[state].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((sum("success"), sum("failed"), sum("running")), (3, 3, 0));
    let all = d.get("/v1/environments/prod/insights?interval=1h", PROD_KEY);
    assert_eq!(all.body["total"], 7);
    let r = d.get("/v1/environments/prod/insights?interval=1s&from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", PROD_KEY);
    // Too fine for the range: widened to the most buckets a chart shows, and said so.
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["interval_ms"], 31 * 86_400_000_i64 / 1000);
    assert_eq!(r.body["buckets"].as_array().unwrap().len(), 1000);
    let empty = d.get(
        "/v1/environments/prod/insights?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        PROD_KEY,
    );
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!(
        (
            empty.body["total"].as_u64(),
            empty.body["buckets"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
}

#[test]
fn a_deleted_index_is_rebuilt_from_the_store() {
    let d = Daemon::start();
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    let batch: Vec<Value> = (0..300)
        .map(|i| json!({"message": format!("rebuild marker{i} kiwi")}))
        .collect();
    assert_eq!(
        d.post(
            &format!("/v1/environments/prod/operations/{id}/messages"),
            PROD_KEY,
            &Value::Array(batch)
        )
        .status,
        201
    );
    let dir = d.stop();
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let d = Daemon::start_with(|c| c.server.data_dir = dir.path().to_owned());
    let r = eventually(Duration::from_secs(30), || {
        let r = d.get("/v1/environments/prod/messages?q=kiwi&limit=1", PROD_KEY);
        (r.status == 200 && r.body["total"] == 300).then_some(r)
    });
    assert_eq!(r.body["data"][0]["message"], "rebuild marker299 kiwi");
    let ops = d.get(
        "/v1/environments/prod/operations?integration=github",
        PROD_KEY,
    );
    assert_eq!(ops.body["total"], 1);
    drop(dir);
}
