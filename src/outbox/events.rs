//! Which webhook events an operation change causes (README "Webhooks"), and the exact body
//! each is sent with. Pure functions: the writer calls `derive` inside the write transaction of
//! the change and enqueues one delivery per event per URL.
//!
//! A URL whose `format` is `nango` gets instead the bodies Nango sends for the same change
//! (`nango_bodies`, one function per event type): keys sorted at every level and compact, as
//! Nango's stable stringify writes them, so its SDK's checks pass on the bytes sent.
//!
//! Must not: do I/O. `webhook:deliver` operations (the log of deliveries) match no rule here, so
//! deliveries never cause deliveries.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::model::alert::Observation;
use crate::model::{EndUser, EventType, Json, OpState, OpType, Operation, Tags, Timestamp};

/// One event and its `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub kind: EventType,
    pub data: Value,
}

/// The events caused by an operation going from `before` (`None`: just created) to `after`.
pub fn derive(before: Option<&Operation>, after: &Operation) -> Vec<Event> {
    let created = before.is_none();
    let ended_now = after.state.is_terminal() && before.is_none_or(|b| !b.state.is_terminal());
    let mut events = Vec::new();
    match (after.kind, after.action.as_str()) {
        (OpType::Sync, _) if ended_now => {
            events.push(Event {
                kind: EventType::SyncCompleted,
                data: json!({
                    "script": after.script,
                    "action": after.action,
                    "success": after.state == OpState::Success,
                    "state": after.state,
                    "records": after.records.as_deref().unwrap_or_default(),
                    "error": after.error,
                    "started_at": after.started_at,
                    "ended_at": after.ended_at,
                    "duration_ms": after.duration_ms,
                }),
            });
            if after.state == OpState::Success {
                for r in after.records.iter().flatten() {
                    if r.added + r.updated + r.deleted > 0 {
                        events.push(Event {
                            kind: EventType::SyncRecords,
                            data: json!({
                                "script": after.script,
                                "model": r.model,
                                "added": r.added,
                                "updated": r.updated,
                                "deleted": r.deleted,
                                "started_at": after.started_at,
                                "ended_at": after.ended_at,
                            }),
                        });
                    }
                }
            }
        }
        (OpType::Auth, action) if ended_now => {
            let kind = match after.state {
                OpState::Success if action == "create_connection" => Some(EventType::AuthCreated),
                OpState::Failed | OpState::Timeout => Some(EventType::AuthFailed),
                _ => None,
            };
            if let Some(kind) = kind {
                events.push(Event {
                    kind,
                    data: json!({
                        "action": after.action,
                        "provider": after.provider,
                        "success": after.state == OpState::Success,
                        "state": after.state,
                        "error": after.error,
                        "ended_at": after.ended_at,
                    }),
                });
            }
        }
        (OpType::Action, _) if ended_now && after.is_async => {
            events.push(Event {
                kind: EventType::ActionCompleted,
                data: json!({
                    "script": after.script,
                    "action": after.action,
                    "success": after.state == OpState::Success,
                    "state": after.state,
                    "error": after.error,
                    "started_at": after.started_at,
                    "ended_at": after.ended_at,
                    "duration_ms": after.duration_ms,
                }),
            });
        }
        (OpType::Webhook, "incoming") if created => {
            let request = after.request.as_ref();
            events.push(Event {
                kind: EventType::WebhookReceived,
                data: json!({
                    "payload": request.and_then(|r| r.body.as_ref()).map(raw_value),
                    "headers": request.and_then(|r| r.headers.as_ref()),
                    "provider": after.provider,
                    "received_at": after.created_at,
                }),
            });
        }
        _ => {}
    }
    events
}

fn raw_value(json: &Json) -> Value {
    serde_json::from_str(json.text()).unwrap_or(Value::Null)
}

/// The envelope of README "Webhooks", field order as documented there.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: Timestamp,
    environment: &'a str,
    integration: Option<&'a str>,
    connection_id: Option<&'a str>,
    /// `null` for events no operation caused (alerts).
    operation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_user: Option<&'a EndUser>,
    #[serde(skip_serializing_if = "Tags::is_empty")]
    tags: &'a Tags,
    data: &'a Value,
}

/// The compact JSON body of `event`, caused by `operation`, with event id `event_id`.
pub fn envelope(event_id: &str, event: &Event, operation: &Operation, now: Timestamp) -> String {
    serde_json::to_string(&Envelope {
        id: event_id,
        kind: event.kind.as_str(),
        timestamp: now,
        environment: &operation.environment,
        integration: operation.integration.as_deref(),
        connection_id: operation.connection_id.as_deref(),
        operation_id: Some(operation.id.to_string()),
        end_user: operation.end_user.as_ref(),
        tags: &operation.tags,
        data: &event.data,
    })
    .expect("an envelope always serializes")
}

/// The compact JSON body of an `alert.triggered` / `alert.resolved` event (`kind`) for the rule
/// count `observed`, with event id `event_id`: the standard envelope, no operation, and in `data`
/// the rule, the count, the window and a link to the dashboard page listing what was counted.
/// Every alert body is made here (one place to add another webhook format).
pub fn alert_envelope(
    event_id: &str,
    kind: EventType,
    environment: &str,
    observed: &Observation,
    now: Timestamp,
) -> String {
    let rule = &observed.rule;
    let data = json!({
        "rule": rule.key(),
        "signal": rule.signal.map(|s| s.as_str()),
        "view": rule.view_id(),
        "title": observed.view_name,
        "counts": observed.counts,
        "integration": rule.integration,
        "above": rule.above,
        "count": observed.count,
        "window": rule.window,
        "from": observed.from,
        "to": observed.to,
        "firing": kind == EventType::AlertTriggered,
        "dashboard_url": observed.link,
        "top_integrations": top_integrations(observed),
    });
    serde_json::to_string(&Envelope {
        id: event_id,
        kind: kind.as_str(),
        timestamp: now,
        environment,
        integration: rule.integration.as_deref(),
        connection_id: None,
        operation_id: None,
        end_user: None,
        tags: &Tags::default(),
        data: &data,
    })
    .expect("an envelope always serializes")
}

/// `[{"integration","count"}]`, most first.
fn top_integrations(observed: &Observation) -> Value {
    observed
        .top_integrations
        .iter()
        .map(|(integration, count)| json!({"integration": integration, "count": count}))
        .collect()
}

/// The body of an alert event for a URL in the Nango format. Nango has no alert webhook, so
/// this one is ours in Nango's style (`from`, `type`, camelCase, keys sorted, compact).
pub fn nango_alert_body(kind: EventType, environment: &str, observed: &Observation) -> NangoBody {
    let rule = &observed.rule;
    let body = json!({
        "from": "opslog",
        "type": "alert",
        "operation": if kind == EventType::AlertTriggered { "triggered" } else { "resolved" },
        "environment": environment,
        "providerConfigKey": rule.integration,
        "rule": rule.key(),
        "signal": rule.signal.map(|s| s.as_str()),
        "view": rule.view_id(),
        "title": observed.view_name,
        "above": rule.above,
        "count": observed.count,
        "window": rule.window,
        "windowStart": observed.from,
        "windowEnd": observed.to,
        "dashboardUrl": observed.link,
    });
    NangoBody {
        body: body.to_string(),
        forwarded_headers: Vec::new(),
    }
}

/// One body for a URL in the Nango format, and the third party's headers to send with it (a
/// forwarded webhook's; empty otherwise).
#[derive(Clone, Debug, PartialEq)]
pub struct NangoBody {
    pub body: String,
    pub forwarded_headers: Vec<(String, String)>,
}

/// The bodies Nango sends for `event` (none when Nango has no such webhook: `sync.records` is
/// carried by the per-model `sync` bodies). One function per event type; a new event type adds
/// its own.
pub fn nango_bodies(event: &Event, operation: &Operation) -> Vec<NangoBody> {
    let plain = |body: Value| NangoBody {
        body: body.to_string(),
        forwarded_headers: Default::default(),
    };
    match event.kind {
        EventType::SyncCompleted => nango_sync(operation).into_iter().map(plain).collect(),
        EventType::SyncRecords => Vec::new(),
        EventType::AuthCreated | EventType::AuthFailed => vec![plain(nango_auth(operation))],
        EventType::WebhookReceived => vec![nango_forward(operation)],
        EventType::ActionCompleted => vec![plain(nango_async_action(operation))],
        // Alerts are not caused by an operation: `nango_alert_body` makes theirs.
        EventType::AlertTriggered | EventType::AlertResolved => Vec::new(),
    }
}

/// Nango's `sync` webhook, one per model (Nango's `NangoSyncWebhookBody`). A sync that reported
/// no record counts gets one body with an empty `model`. `syncType` is `meta.sync_type` when it
/// is one of Nango's (`INITIAL`, `INCREMENTAL`, `WEBHOOK`), else `INCREMENTAL`.
fn nango_sync(op: &Operation) -> Vec<Value> {
    let sync_type = meta_str(op, "sync_type")
        .map(|t| t.to_ascii_uppercase())
        .filter(|t| matches!(t.as_str(), "INITIAL" | "INCREMENTAL" | "WEBHOOK"))
        .unwrap_or_else(|| "INCREMENTAL".into());
    let started = op.started_at.unwrap_or(op.created_at).to_string();
    let mut models: Vec<(&str, [u64; 3])> = op
        .records
        .iter()
        .flatten()
        .map(|r| (r.model.as_str(), [r.added, r.updated, r.deleted]))
        .collect();
    if models.is_empty() {
        models.push(("", [0; 3]));
    }
    models
        .into_iter()
        .map(|(model, [added, updated, deleted])| {
            let mut body = json!({
                "from": "nango",
                "type": "sync",
                "connectionId": op.connection_id.as_deref().unwrap_or_default(),
                "providerConfigKey": op.integration.as_deref().unwrap_or_default(),
                "syncName": op.script.as_deref().unwrap_or(&op.action),
                "syncVariant": meta_str(op, "sync_variant").unwrap_or_else(|| "base".into()),
                "model": model,
                "syncType": sync_type,
                "success": op.state == OpState::Success,
            });
            let fields = body.as_object_mut().expect("an object");
            if op.state == OpState::Success {
                fields.insert(
                    "responseResults".into(),
                    json!({"added": added, "updated": updated, "deleted": deleted}),
                );
                fields.insert("modifiedAfter".into(), json!(started));
                let query_time = (sync_type != "INITIAL").then(|| started.clone());
                fields.insert("queryTimeStamp".into(), json!(query_time));
            } else {
                fields.insert("error".into(), nango_error(op, "sync_failed"));
                fields.insert("startedAt".into(), json!(started));
                let failed = op.ended_at.unwrap_or(op.updated_at).to_string();
                fields.insert("failedAt".into(), json!(failed));
            }
            body
        })
        .collect()
}

/// Nango's `auth` webhook (`NangoAuthWebhookBody`). `operation` from the action
/// (`create_connection` is a creation, `refresh_token` a refresh, ...); `authMode` is
/// `meta.auth_mode` when set, else `unknown`.
fn nango_auth(op: &Operation) -> Value {
    let operation = match op.action.as_str() {
        "create_connection" | "create" => "creation",
        "override" | "reconnect" | "update_connection" => "override",
        "refresh_token" | "refresh" => "refresh",
        "delete_connection" | "delete" => "deletion",
        _ => "unknown",
    };
    let mut body = json!({
        "from": "nango",
        "type": "auth",
        "connectionId": op.connection_id.as_deref().unwrap_or_default(),
        "providerConfigKey": op.integration.as_deref().unwrap_or_default(),
        "authMode": meta_str(op, "auth_mode").unwrap_or_else(|| "unknown".into()),
        "provider": op.provider.as_deref().or(op.integration.as_deref()).unwrap_or_default(),
        "environment": op.environment,
        "operation": operation,
        "success": op.state == OpState::Success,
    });
    let fields = body.as_object_mut().expect("an object");
    if op.state != OpState::Success {
        fields.insert("error".into(), nango_error(op, "auth_failed"));
    }
    if !op.tags.is_empty() {
        fields.insert("tags".into(), json!(op.tags));
    }
    if let Some(user) = &op.end_user {
        let mut end_user = Map::new();
        end_user.insert("endUserId".into(), json!(user.id));
        if let Some(email) = &user.email {
            end_user.insert("endUserEmail".into(), json!(email));
        }
        if let Some(org) = &user.organization {
            end_user.insert("organizationId".into(), json!(org.id));
        }
        end_user.insert("tags".into(), json!(op.tags));
        fields.insert("endUser".into(), Value::Object(end_user));
    }
    body
}

/// Nango's `forward` webhook (`NangoForwardWebhookBody`): the third party's payload as received,
/// from its provider (or, without one, the integration), with its headers.
fn nango_forward(op: &Operation) -> NangoBody {
    let request = op.request.as_ref();
    let mut body = json!({
        "from": op.provider.as_deref().or(op.integration.as_deref()).unwrap_or_default(),
        "type": "forward",
        "providerConfigKey": op.integration.as_deref().unwrap_or_default(),
        "payload": request.and_then(|r| r.body.as_ref()).map(raw_value),
    });
    if let Some(connection) = &op.connection_id {
        body["connectionId"] = json!(connection);
    }
    NangoBody {
        body: body.to_string(),
        forwarded_headers: request
            .and_then(|r| r.headers.as_ref())
            .map(forwardable_headers)
            .unwrap_or_default(),
    }
}

/// Nango's `async_action` webhook (`NangoAsyncActionWebhookBody`): the action's id and where its
/// result is read (`GET /v1/environments/{env}/operations/{id}`).
fn nango_async_action(op: &Operation) -> Value {
    json!({
        "from": "nango",
        "type": "async_action",
        "connectionId": op.connection_id.as_deref().unwrap_or_default(),
        "providerConfigKey": op.integration.as_deref().unwrap_or_default(),
        "payload": {
            "id": op.id.to_string(),
            "statusUrl": format!("/v1/environments/{}/operations/{}", op.environment, op.id),
        },
    })
}

/// Nango's `ErrorPayload`: `{type, description}` from the operation's error (its `type`, else
/// its `name`, else `fallback` or the state).
fn nango_error(op: &Operation, fallback: &str) -> Value {
    let kind = op
        .error
        .as_ref()
        .and_then(|e| e.kind.clone().or_else(|| e.name.clone()))
        .unwrap_or_else(|| match op.state {
            OpState::Timeout => "timeout".into(),
            OpState::Cancelled => "cancelled".into(),
            _ => fallback.into(),
        });
    let description = op
        .error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_else(|| format!("the operation ended as {}", op.state));
    json!({"type": kind, "description": description})
}

/// The string `key` of the operation's `meta` object, if it has one.
fn meta_str(op: &Operation, key: &str) -> Option<String> {
    let meta: Value = serde_json::from_str(op.meta.as_ref()?.text()).ok()?;
    Some(meta.get(key)?.as_str()?.to_owned())
}

/// Headers of a third party's request that Nango does not forward (by prefix, lowercase): the
/// transport's, credentials, and those the delivery sets itself.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "authorization",
    "connection",
    "keep-alive",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "cookie",
    "set-cookie",
    "referer",
    "user-agent",
    "sec-",
    "proxy-",
    "www-authenticate",
    "server",
    "webhook-",
    "x-nango-",
];

/// The headers of an incoming webhook a Nango-format `forward` delivery passes on.
pub fn forwardable_headers(headers: &crate::model::Headers) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, value)| {
            let name = name.to_ascii_lowercase();
            !NOT_FORWARDED.iter().any(|p| name.starts_with(p))
                && value.as_str() != crate::ingest::input::REDACTED
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Id, RecordCount};

    fn op(kind: OpType, action: &str, state: OpState) -> Operation {
        let mut op = crate::store::tests_support::sample_operation();
        op.kind = kind;
        op.action = action.into();
        op.state = state;
        op.records = None;
        op
    }

    fn kinds(events: &[Event]) -> Vec<EventType> {
        events.iter().map(|e| e.kind).collect()
    }

    fn records(counts: &[(u64, u64, u64)]) -> Option<Vec<RecordCount>> {
        Some(
            counts
                .iter()
                .enumerate()
                .map(|(i, (a, u, d))| RecordCount {
                    model: format!("Model{i}"),
                    added: *a,
                    updated: *u,
                    deleted: *d,
                })
                .collect(),
        )
    }

    #[test]
    fn syncs_complete_once_and_report_changed_models() {
        let running = op(OpType::Sync, "run", OpState::Running);
        assert!(derive(None, &running).is_empty(), "starting fires nothing");
        let mut done = op(OpType::Sync, "run", OpState::Success);
        done.records = records(&[(1, 0, 0), (0, 0, 0), (0, 2, 3)]);
        let events = derive(Some(&running), &done);
        assert_eq!(
            kinds(&events),
            [
                EventType::SyncCompleted,
                EventType::SyncRecords,
                EventType::SyncRecords
            ]
        );
        assert_eq!(events[1].data["model"], "Model0");
        assert_eq!(events[2].data["deleted"], 3);
        assert_eq!(events[0].data["success"], true);
        assert!(derive(Some(&done), &done).is_empty(), "already ended");

        let mut unchanged = done.clone();
        unchanged.records = records(&[(0, 0, 0)]);
        assert_eq!(
            kinds(&derive(Some(&running), &unchanged)),
            [EventType::SyncCompleted]
        );
        let mut failed = op(OpType::Sync, "run", OpState::Failed);
        failed.records = records(&[(5, 0, 0)]);
        let events = derive(Some(&running), &failed);
        assert_eq!(kinds(&events), [EventType::SyncCompleted]);
        assert_eq!(events[0].data["success"], false);
        for state in [OpState::Timeout, OpState::Cancelled] {
            assert_eq!(
                kinds(&derive(None, &op(OpType::Sync, "run", state))),
                [EventType::SyncCompleted],
                "created ended as {state}"
            );
        }
    }

    #[test]
    fn auth_events() {
        let running = op(OpType::Auth, "create_connection", OpState::Running);
        let ok = op(OpType::Auth, "create_connection", OpState::Success);
        assert_eq!(
            kinds(&derive(Some(&running), &ok)),
            [EventType::AuthCreated]
        );
        let refreshed = op(OpType::Auth, "refresh_token", OpState::Success);
        assert!(derive(Some(&running), &refreshed).is_empty());
        for state in [OpState::Failed, OpState::Timeout] {
            let failed = op(OpType::Auth, "refresh_token", state);
            assert_eq!(
                kinds(&derive(Some(&running), &failed)),
                [EventType::AuthFailed]
            );
        }
        let cancelled = op(OpType::Auth, "create_connection", OpState::Cancelled);
        assert!(derive(Some(&running), &cancelled).is_empty());
    }

    #[test]
    fn incoming_webhooks_fire_at_creation_and_deliveries_never() {
        let incoming = op(OpType::Webhook, "incoming", OpState::Success);
        assert_eq!(
            kinds(&derive(None, &incoming)),
            [EventType::WebhookReceived]
        );
        let running = op(OpType::Webhook, "incoming", OpState::Running);
        assert!(
            derive(Some(&running), &incoming).is_empty(),
            "only when recorded"
        );
        for state in [
            OpState::Waiting,
            OpState::Running,
            OpState::Success,
            OpState::Failed,
        ] {
            let deliver = op(OpType::Webhook, "deliver", state);
            assert!(derive(None, &deliver).is_empty());
            assert!(derive(Some(&running), &deliver).is_empty());
        }
        for kind in [OpType::Action, OpType::Proxy, OpType::Deploy] {
            assert!(derive(None, &op(kind, "run", OpState::Failed)).is_empty());
        }
    }

    #[test]
    fn envelope_is_compact_and_ordered() {
        let mut done = op(OpType::Sync, "run", OpState::Success);
        done.id = Id(1);
        let event = &derive(None, &done)[0];
        let body = envelope("evt_1", event, &done, Timestamp(0));
        assert!(
            body.starts_with(r#"{"id":"evt_1","type":"sync.completed","timestamp":"1970-01-01T00:00:00.000Z","environment":"prod","integration":"github","connection_id":"conn-1","operation_id":"00000000000000000000000001","data":{"#),
            "{body}"
        );
        assert!(!body.contains(": ") && !body.contains('\n'), "{body}");
    }

    #[test]
    fn alert_envelope_names_the_rule_count_window_and_link() {
        let observed = Observation {
            rule: serde_json::from_str(
                r#"{"signal":"sync_failures","integration":"github","above":2,"window":"15m"}"#,
            )
            .unwrap(),
            view_name: "Sync health".into(),
            counts: "operations",
            count: 3,
            from: Timestamp(0),
            to: Timestamp(900_000),
            link: "http://localhost:7400/?env=prod&page=signals".into(),
            top_integrations: vec![("github".into(), 3)],
        };
        let body = alert_envelope(
            "evt_1",
            EventType::AlertTriggered,
            "prod",
            &observed,
            Timestamp(900_000),
        );
        assert!(
            body.starts_with(r#"{"id":"evt_1","type":"alert.triggered","timestamp":"1970-01-01T00:15:00.000Z","environment":"prod","integration":"github","connection_id":null,"operation_id":null,"data":{"#),
            "{body}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["count"], 3);
        assert_eq!(v["data"]["above"], 2);
        assert_eq!(v["data"]["window"], "15m");
        assert_eq!(v["data"]["signal"], "sync_failures");
        assert_eq!(v["data"]["view"], "sync_failures");
        assert_eq!(v["data"]["title"], "Sync health");
        assert_eq!(
            v["data"]["top_integrations"],
            serde_json::json!([{"integration": "github", "count": 3}])
        );
        assert_eq!(
            v["data"]["dashboard_url"],
            "http://localhost:7400/?env=prod&page=signals"
        );
    }
}
