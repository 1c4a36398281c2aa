//! What a change of an operation causes, queued in the same transaction: the webhook events it
//! derives (one delivery per event per subscribed URL, each logged by a `webhook:deliver`
//! operation), its span once it ends, and its messages as OTLP log records. Every command that
//! changes an operation calls `operation_changed`, so a commit can never leave an operation
//! changed without its deliveries and exports queued.
//!
//! Must not: send anything (the dispatcher does), or decide retry timing beyond the first
//! attempt (`outbox::policy` does).

use opentelemetry_proto::tonic::logs::v1::ScopeLogs;

use super::engine::Tx;
use crate::ingest::input::{NewOperation, OperationDraft};
use crate::ingest::lifecycle;
use crate::model::job::{
    Job, JobKind, NangoWebhookJob, OtlpLogsJob, OtlpSpanJob, WebhookJob, OTLP_LOGS_FORMAT_V1,
    OTLP_SPAN_FORMAT_V1,
};
use crate::model::{
    DeliveryStatus, EventType, HttpRequest, Id, Json, Message, OpState, OpType, Operation,
    Timestamp, TraceContext, WebhookFormat,
};
use crate::outbox::{events, policy};
use crate::settings::EnvSettings;
use crate::store::StoreError;

impl Tx<'_> {
    /// Every change of an operation (creation, update, timeout) passes here, inside the write
    /// transaction that makes it: the webhook events it causes are queued here, in the same
    /// commit, one delivery per event per URL. `before` is `None` at creation.
    pub(super) fn operation_changed(
        &mut self,
        before: Option<&Operation>,
        after: &Operation,
    ) -> Result<(), StoreError> {
        if after.state.is_terminal() && before.is_none_or(|b| !b.state.is_terminal()) {
            self.deps.metrics.record_end(after.state);
            self.queue_span(after)?;
        }
        let derived = events::derive(before, after);
        if derived.is_empty() {
            return Ok(());
        }
        let Some(settings) = self.deps.settings.get(&after.environment) else {
            return Ok(());
        };
        let now = Timestamp::now();
        let cause = DeliveryCause::of(after);
        for event in derived {
            // An open incoming webhook is settled by its forwards: their attempts are its own
            // `http` messages and their outcome its state, within a deadline covering retries.
            let settles = event.kind == EventType::WebhookReceived && !after.state.is_terminal();
            if settles
                && !settings
                    .webhooks
                    .destinations(event.kind, Some(after))
                    .is_empty()
            {
                let span = policy::worst_case_span(
                    &settings.webhooks.retry_schedule,
                    settings.webhooks.timeout,
                    self.deps.max_retry_after,
                );
                let needed = now.plus_millis(span.as_millis() as i64);
                if let Some(entry) = self.find_operation(after.id)? {
                    if entry.current.expires_at < needed {
                        entry.current.expires_at = needed;
                        entry.dirty = true;
                    }
                }
            }
            let bodies = Bodies {
                envelope: |event_id: &str| events::envelope(event_id, &event, after, now),
                nango: || events::nango_bodies(&event, after, &settings.webhooks.toggles),
            };
            self.queue_deliveries(
                &settings,
                event.kind,
                Some(after),
                bodies,
                &cause,
                settles,
                now,
            )?;
        }
        Ok(())
    }

    /// Queues one delivery of one event per URL subscribed to `kind` (several for a Nango-format
    /// URL when Nango sends several bodies), each with the `webhook:deliver` operation that logs
    /// it, or, when the delivery `settles` its cause (a forwarded incoming webhook), logged on
    /// the cause itself. Only the body formats some URL takes are made.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn queue_deliveries<E, N>(
        &mut self,
        settings: &EnvSettings,
        kind: EventType,
        op: Option<&Operation>,
        bodies: Bodies<E, N>,
        cause: &DeliveryCause,
        settles: bool,
        now: Timestamp,
    ) -> Result<(), StoreError>
    where
        E: FnOnce(&str) -> String,
        N: FnOnce() -> Vec<events::NangoBody>,
    {
        let urls = settings.webhooks.destinations(kind, op);
        if urls.is_empty() {
            return Ok(());
        }
        let event_id = format!("evt_{}", self.next_id());
        let takes = |wanted: WebhookFormat| urls.iter().any(|(_, format)| *format == wanted);
        let envelope = if takes(WebhookFormat::Opslog) {
            (bodies.envelope)(&event_id)
        } else {
            String::new()
        };
        let nango = if takes(WebhookFormat::Nango) {
            (bodies.nango)()
        } else {
            Vec::new()
        };
        for (url, format) in urls {
            let bodies: Vec<events::NangoBody> = match format {
                WebhookFormat::Opslog => vec![events::NangoBody {
                    body: envelope.clone(),
                    forwarded_headers: Vec::new(),
                }],
                WebhookFormat::Nango => nango.clone(),
            };
            for body in bodies {
                let id = self.next_id();
                let log_operation_id = match cause.operation {
                    Some(operation) if settles => operation,
                    _ => {
                        let log = self.delivery_log(id, cause, kind, url, settings, now);
                        let log_id = log.id;
                        self.insert_operation(log);
                        log_id
                    }
                };
                let delivery = WebhookJob {
                    event_id: event_id.clone(),
                    event: kind,
                    url: url.to_owned(),
                    body: body.body,
                    // An alert has no operation: its delivery's own log stands for it.
                    operation_id: cause.operation.unwrap_or(log_operation_id),
                    log_operation_id,
                };
                let job = Job {
                    id,
                    environment: settings.environment.clone(),
                    kind: match format {
                        WebhookFormat::Opslog => JobKind::Webhook(delivery),
                        WebhookFormat::Nango => JobKind::NangoWebhook(NangoWebhookJob {
                            delivery,
                            forwarded_headers: body.forwarded_headers,
                        }),
                    },
                    status: DeliveryStatus::Pending,
                    created_at: now,
                    updated_at: now,
                    attempts: 0,
                    round_attempts: 0,
                    next_attempt_at: Some(first_attempt_at(settings, now)),
                    last_error: None,
                    round_started_at: now,
                };
                self.db.put_job(&job, None)?;
                self.deps.metrics.deliveries_queued.inc();
                self.outbox_queued();
            }
        }
        Ok(())
    }

    /// Queues the span of `ended` (just become terminal) for its environment's OTLP collector,
    /// when the environment has one and the operation's type is exported.
    pub(super) fn queue_span(&mut self, ended: &Operation) -> Result<(), StoreError> {
        let settings = self.deps.settings.clone();
        let Some(target) = settings.otel(&ended.environment) else {
            return Ok(());
        };
        if !crate::otel::is_exported_as(ended.kind, target.names()) {
            return Ok(());
        }
        let max_events = target.max_events_per_span();
        let messages = self.message_ends(ended.id, max_events)?;
        let Some(span) =
            crate::otel::operation_span_named(ended, &messages, max_events, target.names())
        else {
            return Ok(());
        };
        let kind = JobKind::OtlpSpan(OtlpSpanJob {
            format: OTLP_SPAN_FORMAT_V1,
            operation_id: ended.id,
            url: target.traces_url().to_owned(),
            span: prost::Message::encode_to_vec(&span),
        });
        self.queue_export(&ended.environment, kind)
    }

    /// Keeps `messages` (appended to operations of `environment`) for the group's OTLP log
    /// export, when the environment exports logs.
    pub(super) fn export_messages(&mut self, environment: &str, messages: &[Message]) {
        let exports = self
            .deps
            .settings
            .otel(environment)
            .is_some_and(|target| target.exports_logs());
        if !exports {
            return;
        }
        for m in messages {
            self.group
                .logged
                .entry(m.operation_id)
                .or_default()
                .push(m.clone());
        }
    }

    /// Queues the messages this group appended to each operation of an exported type as one
    /// `OtlpLogs` job per operation (not one per message: fewer rows, fewer requests).
    pub(super) fn queue_logs(&mut self) -> Result<(), StoreError> {
        let now = Timestamp::now();
        for (op_id, messages) in std::mem::take(&mut self.group.logged) {
            // Gone when retention removed it in this same group.
            let Some(op) = self.group.ops.get(&op_id).map(|o| &o.current) else {
                continue;
            };
            let Some(target) = self.deps.settings.otel(&op.environment) else {
                continue;
            };
            if !crate::otel::is_exported_as(op.kind, target.names()) {
                continue;
            }
            let scope = ScopeLogs {
                log_records: messages
                    .iter()
                    .map(|m| crate::otel::message_log_record_named(op, m, now, target.names()))
                    .collect(),
                ..ScopeLogs::default()
            };
            let kind = JobKind::OtlpLogs(OtlpLogsJob {
                format: OTLP_LOGS_FORMAT_V1,
                operation_id: op_id,
                url: target.logs_url().to_owned(),
                count: messages.len() as u32,
                records: prost::Message::encode_to_vec(&scope),
            });
            let environment = op.environment.clone();
            self.queue_export(&environment, kind)?;
        }
        Ok(())
    }

    /// Writes a new export job, due now.
    pub(super) fn queue_export(
        &mut self,
        environment: &str,
        kind: JobKind,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let job = Job {
            id: self.next_id(),
            environment: environment.to_owned(),
            kind,
            status: DeliveryStatus::Pending,
            created_at: now,
            updated_at: now,
            attempts: 0,
            round_attempts: 0,
            next_attempt_at: Some(now),
            last_error: None,
            round_started_at: now,
        };
        self.db.put_job(&job, None)?;
        self.deps.metrics.exports_queued.inc();
        self.outbox_queued();
        Ok(())
    }

    /// A new `webhook:deliver` operation that logs one round of a delivery's attempts. It waits
    /// until the first attempt, and its deadline covers the whole retry schedule.
    pub(super) fn delivery_log(
        &mut self,
        delivery: Id,
        cause: &DeliveryCause,
        event: EventType,
        url: &str,
        settings: &EnvSettings,
        now: Timestamp,
    ) -> Operation {
        let span = policy::worst_case_span(
            &settings.webhooks.retry_schedule,
            settings.webhooks.timeout,
            self.deps.max_retry_after,
        );
        let input = NewOperation {
            kind: OpType::Webhook,
            action: None,
            state: Some(OpState::Waiting),
            integration: cause.integration.clone(),
            connection_id: cause.connection_id.clone(),
            script: None,
            provider: None,
            message: Some(format!("Webhook {event} to {url}")),
            error: None,
            request: Some(HttpRequest {
                method: "POST".into(),
                url: url.to_owned(),
                headers: None,
                body: None,
            }),
            response: None,
            records: None,
            end_user: None,
            tags: None,
            is_async: None,
            sync_type: None,
            checkpoints: None,
            auth_mode: None,
            output: None,
            trace_context: None,
            meta: Some(Json::from_value(&serde_json::json!({
                "delivery_id": delivery.to_string(),
                "event": event,
                "caused_by": cause.label,
            }))),
            started_at: None,
            ended_at: None,
            expires_at: Some(now.plus_millis(span.as_millis() as i64)),
            messages: None,
        };
        let draft = OperationDraft {
            input,
            action: "deliver".into(),
            trace_context: cause.trace.clone(),
            messages: Vec::new(),
        };
        let id = self.next_id();
        let (log, _) = lifecycle::new_operation(id, &cause.environment, draft, now, span);
        log
    }
}

/// How to make an event's bodies: the standard envelope from the event id, and the Nango bodies.
pub(super) struct Bodies<E, N> {
    pub(super) envelope: E,
    pub(super) nango: N,
}

/// What caused a delivery: an operation's change, or an alert rule's.
pub(super) struct DeliveryCause {
    /// The operation whose change it was; `None` for an alert.
    pub(super) operation: Option<Id>,
    pub(super) environment: String,
    pub(super) integration: Option<String>,
    pub(super) connection_id: Option<String>,
    /// `caused_by` in the delivery log's `meta`: the operation id, or `alert <rule key>`.
    pub(super) label: String,
    /// The trace the delivery's log joins: as a child of the operation's span.
    pub(super) trace: Option<TraceContext>,
}

impl DeliveryCause {
    pub(super) fn of(op: &Operation) -> DeliveryCause {
        DeliveryCause {
            operation: Some(op.id),
            environment: op.environment.clone(),
            integration: op.integration.clone(),
            connection_id: op.connection_id.clone(),
            label: op.id.to_string(),
            trace: Some(crate::otel::child_context(op)),
        }
    }
}

/// When a new delivery's first attempt is due: the first delay of the schedule.
fn first_attempt_at(settings: &EnvSettings, now: Timestamp) -> Timestamp {
    let first = settings
        .webhooks
        .retry_schedule
        .first()
        .copied()
        .unwrap_or_default();
    now.plus_millis(first.as_millis() as i64)
}
