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

use super::nango_json;
use crate::model::alert::Observation;
use crate::model::settings::NangoToggles;
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
            // A re-authorization (`override`) is a connection made anew, as Nango reports it.
            let creates = matches!(action, "create_connection" | "override");
            let kind = match after.state {
                OpState::Success if creates => Some(EventType::AuthCreated),
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
        body: nango_json::stringify(&body),
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

/// The bodies Nango sends for `event` (none when Nango sends none for this change: `sync.records`
/// is carried by the per-model `sync` bodies, a sync that is not a run and an auth operation that
/// is not one of Nango's have no webhook). One function per event type; a new event type adds
/// its own.
pub fn nango_bodies(
    event: &Event,
    operation: &Operation,
    toggles: &NangoToggles,
) -> Vec<NangoBody> {
    let plain = |body: Value| NangoBody {
        body: nango_json::stringify(&body),
        forwarded_headers: Default::default(),
    };
    match event.kind {
        EventType::SyncCompleted => nango_sync(operation, toggles.sends_empty_models())
            .into_iter()
            .map(plain)
            .collect(),
        EventType::SyncRecords => Vec::new(),
        EventType::AuthCreated | EventType::AuthFailed => {
            nango_auth(operation).into_iter().map(plain).collect()
        }
        EventType::WebhookReceived => vec![nango_forward(operation)],
        EventType::ActionCompleted => vec![plain(nango_async_action(operation))],
        // Alerts are not caused by an operation: `nango_alert_body` makes theirs.
        EventType::AlertTriggered | EventType::AlertResolved => Vec::new(),
    }
}

/// The path where an action's output is read: the `statusUrl` of its `async_action` webhook.
pub fn output_path(op: &Operation) -> String {
    format!(
        "/v1/environments/{}/operations/{}/output",
        op.environment, op.id
    )
}

/// Nango's `syncType` of a sync run: its `sync_type`; else, from an older client, `meta.sync_type`;
/// else its checkpoints (`from: null` is a full run, `INITIAL`); else `INCREMENTAL`.
fn nango_sync_type(op: &Operation) -> &'static str {
    if let Some(kind) = op.sync_type {
        return kind.nango();
    }
    let legacy = meta_str(op, "sync_type").map(|t| t.to_ascii_uppercase());
    match legacy.as_deref() {
        Some("INITIAL" | "FULL") => return "INITIAL",
        Some("INCREMENTAL") => return "INCREMENTAL",
        Some("WEBHOOK") => return "WEBHOOK",
        _ => {}
    }
    match checkpoints(op) {
        Some(range) if range.get("from").is_none_or(Value::is_null) => "INITIAL",
        _ => "INCREMENTAL",
    }
}

/// The operation's `checkpoints`, parsed (they were checked when stored).
fn checkpoints(op: &Operation) -> Option<Value> {
    serde_json::from_str(op.checkpoints.as_ref()?.text()).ok()
}

/// Nango's `sync` webhook (`NangoSyncWebhookBody`), only for sync runs, as Nango sends it: on
/// success one body per model of `records` (one with an empty `model` when there are none), on
/// failure one body naming every model comma-joined. `modifiedAfter` and the deprecated
/// `queryTimeStamp` are both the run's start, as Nango's are.
fn nango_sync(op: &Operation, empty_models: bool) -> Vec<Value> {
    if op.kind != OpType::Sync || op.action != "run" {
        return Vec::new();
    }
    let started = op.started_at.unwrap_or(op.created_at).to_string();
    let mut base = Map::new();
    base.insert("from".into(), json!("nango"));
    base.insert("type".into(), json!("sync"));
    base.insert(
        "connectionId".into(),
        json!(op.connection_id.as_deref().unwrap_or_default()),
    );
    base.insert(
        "providerConfigKey".into(),
        json!(op.integration.as_deref().unwrap_or_default()),
    );
    base.insert(
        "syncName".into(),
        json!(op.script.as_deref().unwrap_or(&op.action)),
    );
    base.insert(
        "syncVariant".into(),
        json!(meta_str(op, "sync_variant").unwrap_or_else(|| "base".into())),
    );
    base.insert("syncType".into(), json!(nango_sync_type(op)));
    if let Some(range) = checkpoints(op) {
        base.insert("checkpoints".into(), range);
    }
    let records = op.records.as_deref().unwrap_or_default();
    if op.state != OpState::Success {
        let models: Vec<&str> = records.iter().map(|r| r.model.as_str()).collect();
        let mut body = base;
        body.insert("model".into(), json!(models.join(",")));
        body.insert("success".into(), json!(false));
        body.insert("error".into(), nango_error(op, "script_error"));
        body.insert("startedAt".into(), json!(started));
        let failed = op.ended_at.unwrap_or(op.updated_at).to_string();
        body.insert("failedAt".into(), json!(failed));
        return vec![Value::Object(body)];
    }
    let mut models: Vec<(&str, [u64; 3])> = records
        .iter()
        .map(|r| (r.model.as_str(), [r.added, r.updated, r.deleted]))
        .collect();
    if models.is_empty() {
        models.push(("", [0; 3]));
    }
    // `on_sync_completion_always` off: as Nango, no body for a model with nothing changed.
    models.retain(|(_, counts)| empty_models || counts.iter().sum::<u64>() > 0);
    models
        .into_iter()
        .map(|(model, [added, updated, deleted])| {
            let mut body = base.clone();
            body.insert("model".into(), json!(model));
            body.insert("success".into(), json!(true));
            body.insert(
                "responseResults".into(),
                json!({"added": added, "updated": updated, "deleted": deleted}),
            );
            body.insert("modifiedAfter".into(), json!(started));
            body.insert("queryTimeStamp".into(), json!(started));
            Value::Object(body)
        })
        .collect()
}

/// Nango's `operation` of an auth webhook for an auth operation's action, when Nango sends one
/// for it: a connection created (`creation`, also when its first test failed), re-authorized
/// (`override`), or whose credentials stopped working (`refresh`: a refresh or a later test
/// failed). Nango sends no webhook for anything else (its `unknown` is never sent).
pub fn nango_auth_operation(action: &str) -> Option<&'static str> {
    match action {
        "create_connection" | "create" => Some("creation"),
        "override" | "reconnect" => Some("override"),
        "refresh_token" | "refresh" | "connection_test" => Some("refresh"),
        _ => None,
    }
}

/// Nango's `auth` webhook (`NangoAuthWebhookBody`). `tags` are the connection's tags as Nango
/// derives them: `end_user_id`, `end_user_email`, `end_user_display_name`, `organization_id`,
/// `organization_display_name` from the end user, then the operation's own tags (keys
/// lowercased), which win.
fn nango_auth(op: &Operation) -> Option<Value> {
    let operation = nango_auth_operation(&op.action)?;
    let auth_mode = op
        .auth_mode
        .clone()
        .or_else(|| {
            meta_str(op, "auth_mode").filter(|m| crate::model::AUTH_MODES.contains(&m.as_str()))
        })
        .unwrap_or_else(|| "unknown".into());
    let mut body = json!({
        "from": "nango",
        "type": "auth",
        "connectionId": op.connection_id.as_deref().unwrap_or_default(),
        "providerConfigKey": op.integration.as_deref().unwrap_or_default(),
        "authMode": auth_mode,
        "provider": op.provider.as_deref().or(op.integration.as_deref()).unwrap_or("unknown"),
        "environment": op.environment,
        "operation": operation,
        "success": op.state == OpState::Success,
    });
    let fields = body.as_object_mut().expect("an object");
    if op.state != OpState::Success {
        fields.insert("error".into(), nango_error(op, "auth_failed"));
    }
    let tags = connection_tags(op);
    if !tags.is_empty() {
        fields.insert("tags".into(), json!(tags));
    }
    if let Some(user) = &op.end_user {
        let mut end_user = Map::new();
        end_user.insert("endUserId".into(), json!(user.id));
        end_user.insert("endUserEmail".into(), json!(user.email));
        if let Some(org) = &user.organization {
            end_user.insert("organizationId".into(), json!(org.id));
        }
        end_user.insert("tags".into(), json!(op.tags));
        fields.insert("endUser".into(), Value::Object(end_user));
    }
    Some(body)
}

/// The tags Nango gives a connection made by `op`'s end user (`buildTagsFromEndUser`).
fn connection_tags(op: &Operation) -> Tags {
    let mut tags = Tags::new();
    if let Some(user) = &op.end_user {
        let mut put = |key: &str, value: Option<&String>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                tags.insert(key.to_owned(), value.clone());
            }
        };
        put("end_user_id", Some(&user.id));
        put("end_user_email", user.email.as_ref());
        put("end_user_display_name", user.display_name.as_ref());
        if let Some(org) = &user.organization {
            put("organization_id", Some(&org.id));
            put("organization_display_name", org.display_name.as_ref());
        }
    }
    for (key, value) in &op.tags {
        tags.insert(key.to_ascii_lowercase(), value.clone());
    }
    tags
}

/// Nango's `forward` webhook (`NangoForwardWebhookBody`): the third party's payload as received,
/// from its provider (`?provider=` of the ingress URL, else the integration), with its headers.
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
        body: nango_json::stringify(&body),
        forwarded_headers: request
            .and_then(|r| r.headers.as_ref())
            .map(forwardable_headers)
            .unwrap_or_default(),
    }
}

/// Nango's `async_action` webhook (`NangoAsyncActionWebhookBody`): the action's id and where its
/// output is read (`GET /v1/environments/{env}/operations/{id}/output`, as Nango's `statusUrl`
/// answers with the action's output).
fn nango_async_action(op: &Operation) -> Value {
    json!({
        "from": "nango",
        "type": "async_action",
        "connectionId": op.connection_id.as_deref().unwrap_or_default(),
        "providerConfigKey": op.integration.as_deref().unwrap_or_default(),
        "payload": {
            "id": op.id.to_string(),
            "statusUrl": output_path(op),
        },
    })
}

/// Nango's `ErrorPayload`: `{type, description, payload?}` from the operation's error (its `type`,
/// else its `name`, else `fallback` or the state; `payload` when it is an object or an array, as
/// Nango's type allows).
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
    let mut error = json!({"type": kind, "description": description});
    let payload = op
        .error
        .as_ref()
        .and_then(|e| e.payload.as_ref())
        .map(raw_value);
    if let Some(payload) = payload.filter(|p| p.is_object() || p.is_array()) {
        error["payload"] = payload;
    }
    error
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
        let reauthorized = op(OpType::Auth, "override", OpState::Success);
        assert_eq!(
            kinds(&derive(Some(&running), &reauthorized)),
            [EventType::AuthCreated],
            "a re-authorization is reported as Nango reports it"
        );
    }

    fn nango(op: &Operation) -> Vec<String> {
        derive(None, op)
            .iter()
            .flat_map(|event| nango_bodies(event, op, &NangoToggles::default()))
            .map(|b| b.body)
            .collect()
    }

    fn sync_run(state: OpState) -> Operation {
        let mut op = op(OpType::Sync, "run", state);
        op.meta = None;
        op.started_at = Some(Timestamp(1_000));
        op.ended_at = Some(Timestamp(2_000));
        op
    }

    #[test]
    fn nango_sync_bodies_are_nangos_byte_for_byte() {
        let mut ok = sync_run(OpState::Success);
        ok.records = records(&[(3, 1, 0), (0, 0, 0)]);
        ok.sync_type = Some(crate::model::SyncType::Full);
        ok.checkpoints = Some(Json::from_value(
            &json!({"from": null, "to": {"page": 4.0, "cursor": "c4"}}),
        ));
        assert_eq!(
            nango(&ok),
            [
                r#"{"checkpoints":{"from":null,"to":{"cursor":"c4","page":4}},"connectionId":"conn-1","from":"nango","model":"Model0","modifiedAfter":"1970-01-01T00:00:01.000Z","providerConfigKey":"github","queryTimeStamp":"1970-01-01T00:00:01.000Z","responseResults":{"added":3,"deleted":0,"updated":1},"success":true,"syncName":"issues","syncType":"INITIAL","syncVariant":"base","type":"sync"}"#,
                r#"{"checkpoints":{"from":null,"to":{"cursor":"c4","page":4}},"connectionId":"conn-1","from":"nango","model":"Model1","modifiedAfter":"1970-01-01T00:00:01.000Z","providerConfigKey":"github","queryTimeStamp":"1970-01-01T00:00:01.000Z","responseResults":{"added":0,"deleted":0,"updated":0},"success":true,"syncName":"issues","syncType":"INITIAL","syncVariant":"base","type":"sync"}"#,
            ]
        );

        let mut failed = sync_run(OpState::Failed);
        failed.records = records(&[(0, 0, 0), (0, 0, 0)]);
        failed.error = Some(crate::model::ErrorInfo {
            name: None,
            message: "boom".into(),
            kind: None,
            payload: Some(Json::from_value(&json!({"status": 500}))),
        });
        failed.checkpoints = Some(Json::from_value(&json!({"from": {"page": 2}, "to": null})));
        assert_eq!(
            nango(&failed),
            [
                r#"{"checkpoints":{"from":{"page":2},"to":null},"connectionId":"conn-1","error":{"description":"boom","payload":{"status":500},"type":"script_error"},"failedAt":"1970-01-01T00:00:02.000Z","from":"nango","model":"Model0,Model1","providerConfigKey":"github","startedAt":"1970-01-01T00:00:01.000Z","success":false,"syncName":"issues","syncType":"INCREMENTAL","syncVariant":"base","type":"sync"}"#
            ]
        );

        for action in ["pause", "unpause", "init", "request_run"] {
            let mut other = sync_run(OpState::Success);
            other.action = action.into();
            assert!(
                nango(&other).is_empty(),
                "{action}: Nango sends sync bodies for runs only"
            );
        }
    }

    #[test]
    fn nango_auth_bodies_carry_the_connection_tags_and_only_nangos_operations() {
        let mut created = op(OpType::Auth, "create_connection", OpState::Success);
        created.provider = Some("github".into());
        created.integration = Some("github-prod".into());
        created.auth_mode = Some("OAUTH2".into());
        created.end_user = Some(EndUser {
            id: "u-7".into(),
            email: None,
            display_name: Some("Ada".into()),
            organization: Some(crate::model::Organization {
                id: "org-1".into(),
                display_name: Some("Acme".into()),
            }),
        });
        created.tags = [("Plan".to_owned(), "pro".to_owned())].into();
        assert_eq!(
            nango(&created),
            [
                r#"{"authMode":"OAUTH2","connectionId":"conn-1","endUser":{"endUserEmail":null,"endUserId":"u-7","organizationId":"org-1","tags":{"Plan":"pro"}},"environment":"prod","from":"nango","operation":"creation","provider":"github","providerConfigKey":"github-prod","success":true,"tags":{"end_user_display_name":"Ada","end_user_id":"u-7","organization_display_name":"Acme","organization_id":"org-1","plan":"pro"},"type":"auth"}"#
            ]
        );
        let body = |action: &str, state: OpState| -> Option<Value> {
            let mut o = op(OpType::Auth, action, state);
            o.meta = None;
            o.error = None;
            nango(&o).first().map(|b| serde_json::from_str(b).unwrap())
        };
        let reauthorized = body("override", OpState::Success).unwrap();
        assert_eq!(
            (
                reauthorized["operation"].as_str(),
                reauthorized["authMode"].as_str()
            ),
            (Some("override"), Some("unknown"))
        );
        assert_eq!(
            body("connection_test", OpState::Failed).unwrap()["operation"],
            "refresh"
        );
        assert_eq!(
            body("create_connection", OpState::Timeout).unwrap()["error"]["type"],
            "timeout"
        );
        for action in ["post_connection", "delete_connection", "something_else"] {
            assert_eq!(
                body(action, OpState::Failed),
                None,
                "{action}: Nango sends no `unknown`"
            );
        }
    }

    #[test]
    fn nango_forward_and_async_action_bodies() {
        let mut incoming = op(OpType::Webhook, "incoming", OpState::Running);
        incoming.integration = Some("slack-prod".into());
        incoming.provider = Some("slack".into());
        incoming.connection_id = None;
        incoming.request = Some(crate::model::HttpRequest {
            method: "POST".into(),
            url: "/v1/hooks/x/slack-prod".into(),
            headers: Some(
                [
                    ("x-slack-signature".to_owned(), "v0=1".to_owned()),
                    ("authorization".to_owned(), "Bearer x".to_owned()),
                ]
                .into(),
            ),
            body: Some(Json(
                serde_json::value::RawValue::from_string(
                    r#"{"n":1.0,"big":1e21,"b":[2.50]}"#.into(),
                )
                .unwrap(),
            )),
        });
        let bodies: Vec<NangoBody> = derive(None, &incoming)
            .iter()
            .flat_map(|e| nango_bodies(e, &incoming, &NangoToggles::default()))
            .collect();
        assert_eq!(
            bodies[0].body,
            r#"{"from":"slack","payload":{"b":[2.5],"big":1e+21,"n":1},"providerConfigKey":"slack-prod","type":"forward"}"#
        );
        assert_eq!(
            bodies[0].forwarded_headers,
            [("x-slack-signature".to_owned(), "v0=1".to_owned())]
        );

        let mut action = op(OpType::Action, "run", OpState::Failed);
        action.is_async = true;
        action.id = Id(1);
        assert_eq!(
            nango(&action),
            [
                r#"{"connectionId":"conn-1","from":"nango","payload":{"id":"00000000000000000000000001","statusUrl":"/v1/environments/prod/operations/00000000000000000000000001/output"},"providerConfigKey":"github","type":"async_action"}"#
            ]
        );
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

    fn sync_op(action: &str, state: OpState) -> Operation {
        let mut op = crate::store::tests_support::sample_operation();
        op.action = action.into();
        op.state = state;
        op
    }

    #[test]
    fn nango_toggles_drop_what_nango_drops() {
        let all = NangoToggles::default();
        let none = NangoToggles {
            on_sync_completion_always: false,
            on_sync_error: false,
            on_auth_creation: false,
            on_auth_refresh_error: false,
            on_async_action_completion: false,
        };
        let mut empty = sync_op("run", OpState::Success);
        empty.records = Some(vec![RecordCount {
            model: "Issue".into(),
            added: 0,
            updated: 0,
            deleted: 0,
        }]);
        let mut changed = empty.clone();
        changed.records.as_mut().unwrap()[0].added = 1;
        let cases = [
            (EventType::SyncCompleted, empty, false),
            (EventType::SyncCompleted, changed, true),
            (
                EventType::SyncCompleted,
                sync_op("run", OpState::Failed),
                false,
            ),
            (
                EventType::AuthCreated,
                sync_op("create_connection", OpState::Success),
                false,
            ),
            (
                EventType::AuthFailed,
                sync_op("create_connection", OpState::Failed),
                false,
            ),
            (
                EventType::AuthFailed,
                sync_op("refresh_token", OpState::Failed),
                false,
            ),
            (
                EventType::AuthFailed,
                sync_op("connection_test", OpState::Failed),
                false,
            ),
            (
                EventType::AuthCreated,
                sync_op("override", OpState::Success),
                true,
            ),
            (
                EventType::ActionCompleted,
                sync_op("run", OpState::Success),
                false,
            ),
            (
                EventType::WebhookReceived,
                sync_op("incoming", OpState::Running),
                true,
            ),
        ];
        for (kind, op, sent_when_off) in cases {
            assert!(all.sends(kind, Some(&op)), "{kind} {}", op.action);
            assert_eq!(
                none.sends(kind, Some(&op)),
                sent_when_off,
                "{kind} {}",
                op.action
            );
        }
        assert!(
            none.sends(EventType::AlertTriggered, None),
            "alerts have no toggle"
        );
    }

    #[test]
    fn a_webhook_route_matches_when_every_criterion_it_gives_holds() {
        let mut operation = sync_op("run", OpState::Success);
        operation.connection_id = Some("acme".into());
        operation.tags = [("plan".to_owned(), "pro".to_owned())].into();
        let route = |connections: &[&str], users: &[&str], tags: &[(&str, &str)]| {
            crate::model::settings::WebhookRoute {
                url: "https://dev.example.com/h".into(),
                format: None,
                connection_ids: connections.iter().map(|c| c.to_string()).collect(),
                end_user_ids: users.iter().map(|c| c.to_string()).collect(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }
        };
        assert!(route(&["acme", "other"], &[], &[]).matches(&operation));
        assert!(route(&["acme"], &[], &[("plan", "pro")]).matches(&operation));
        assert!(!route(&["acme"], &[], &[("plan", "free")]).matches(&operation));
        assert!(
            !route(&["acme"], &["u-7"], &[]).matches(&operation),
            "no end user"
        );
        assert!(!route(&["other"], &[], &[]).matches(&operation));
        assert!(
            route(&[], &[], &[]).check("webhooks.routes[0]").is_err(),
            "matches everything"
        );
        assert!(route(&[""], &[], &[]).check("r").is_err());
    }
}
