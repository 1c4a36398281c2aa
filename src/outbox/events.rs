//! Which webhook events an operation change causes (DESIGN.md section 4), and the exact body
//! each is sent with. Pure functions: the writer calls `derive` inside the write transaction of
//! the change and enqueues one delivery per event per URL.
//!
//! Must not: do I/O. `webhook:deliver` operations (the log of deliveries) match no rule here, so
//! deliveries never cause deliveries.

use serde::Serialize;
use serde_json::{json, Value};

use crate::alerts::Observation;
use crate::model::{EventType, Json, OpState, OpType, Operation, Timestamp};

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

/// The body of DESIGN.md section 4, field order as documented.
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
        "signal": rule.signal.as_str(),
        "title": rule.signal.title(),
        "integration": rule.integration,
        "above": rule.above,
        "count": observed.count,
        "window": rule.window,
        "from": observed.from,
        "to": observed.to,
        "firing": kind == EventType::AlertTriggered,
        "dashboard_url": observed.link,
    });
    serde_json::to_string(&Envelope {
        id: event_id,
        kind: kind.as_str(),
        timestamp: now,
        environment,
        integration: rule.integration.as_deref(),
        connection_id: None,
        operation_id: None,
        data: &data,
    })
    .expect("an envelope always serializes")
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
            count: 3,
            from: Timestamp(0),
            to: Timestamp(900_000),
            link: "http://localhost:7400/?env=prod&page=signals".into(),
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
        assert_eq!(
            v["data"]["dashboard_url"],
            "http://localhost:7400/?env=prod&page=signals"
        );
    }
}
