//! `GET /v1/vocabulary`: every value the server's enums take (operation types with the actions
//! the server knows, states, message types, levels, webhook events, delivery statuses, signals,
//! webhook formats, span names) and every query parameter of the read endpoints
//! (`crate::query_params`), so the dashboard builds its pickers, lists and filters from the
//! server and cannot drift from it. The dashboard reads it once per page load.
//!
//! Must not: write a value out by hand. Every list iterates its enum (`ALL`, whose completeness
//! the tests below check against the enum's own derive) or the parameter table, and a signal's
//! filters are its search (`Signal::filters`) written as query parameters (`query_params::to_pairs`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::error::ApiError;
use super::extract::Auth;
use super::json;
use super::outbox_jobs::REPLAYABLE;
use super::signals::counted;
use crate::alerts::Signal;
use crate::config::{SpanNames, WebhookFormat};
use crate::model::alert::Notifier;
use crate::model::notifier::PagerDutySeverity;
use crate::model::{DeliveryStatus, EventType, Level, MessageType, OpState, OpType};
use crate::query_params::{to_pairs, Endpoint, QUERY_PARAMETERS};
use crate::scope::Scope;

/// The values the API's enums take, each list in the server's order.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Vocabulary {
    /// Operation types (`type`), each with the actions the server knows; an operation may carry
    /// any other action.
    types: Vec<VocabularyType>,
    /// Operation states (`state`).
    states: Vec<VocabularyState>,
    /// Message types (`message_type`, or `type` on one operation's messages).
    message_types: Vec<MessageType>,
    /// Message levels (`level`).
    levels: Vec<Level>,
    /// Webhook events (`webhooks.events`, a delivery's `event`).
    events: Vec<EventType>,
    /// Where a delivery or an export stands (`status`).
    delivery_statuses: Vec<DeliveryStatus>,
    /// What a replay may send again (`status` of `/deliveries/replay`); the first is the default.
    replay_statuses: Vec<DeliveryStatus>,
    /// The signals (`/signals`, alert rules' `signal`).
    signals: Vec<VocabularySignal>,
    /// Body formats of a webhook URL (`webhooks.format`).
    webhook_formats: Vec<WebhookFormat>,
    /// Span names and attribute keys of exported traces (`otel.names`).
    span_names: Vec<SpanNames>,
    /// Where an alert rule's notifications go (its `notify`).
    notifiers: Vec<Notifier>,
    /// `notifiers.pagerduty.severity`.
    pagerduty_severities: Vec<PagerDutySeverity>,
    /// The range presets of a view's query (`query.range`).
    view_ranges: Vec<&'static str>,
    /// What the audit log records (`action` of `GET /v1/audit`).
    audit_actions: Vec<crate::model::audit::AuditAction>,
    /// The query parameters of the read endpoints: what each takes and which endpoints take it.
    query_parameters: Vec<VocabularyParameter>,
}

/// One query parameter of one or more read endpoints (`crate::query_params`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct VocabularyParameter {
    name: &'static str,
    /// What a person calls it.
    label: &'static str,
    /// What values it takes: `one_of` (see `values`), `operation_type` (`type` or
    /// `type:action`), `name` (1-256 characters), `tag` (`key:value`), `time` (RFC 3339), `text`
    /// (a full-text query), `integer`, `boolean`, `cursor`, `message_id`, `duration` or `string`.
    kind: &'static str,
    /// The values of a `one_of`.
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<Vec<&'static str>>,
    /// May be given more than once: any of the values matches.
    repeatable: bool,
    required: bool,
    /// Selects by a field of the operation or message (a filter picker), rather than by time or
    /// text, or shaping the answer.
    filter: bool,
    /// `GET /facets` counts its values (`field=<name>`).
    facet: bool,
    description: &'static str,
    /// The endpoints that take it, with this meaning.
    endpoints: Vec<Endpoint>,
}

/// An operation type and the actions the server gives a meaning to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct VocabularyType {
    #[serde(rename = "type")]
    kind: OpType,
    /// The first is the default: what an operation of this type gets when its client names none.
    actions: Vec<&'static str>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VocabularyState {
    state: OpState,
    /// Final: the operation has ended and its state can no longer change.
    terminal: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct VocabularySignal {
    signal: Signal,
    /// What people call it.
    title: &'static str,
    /// `operations` or `messages`: what is counted, and the list (`GET /operations`,
    /// `GET /messages`) that shows them.
    counts: &'static str,
    /// The query parameters of that list that select exactly what the signal counts.
    filters: Vec<QueryParameter>,
}

/// One `name=value` of a query string (names may repeat).
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueryParameter {
    name: &'static str,
    value: String,
}

impl Vocabulary {
    pub fn new() -> Vocabulary {
        Vocabulary {
            types: OpType::ALL
                .iter()
                .map(|&kind| VocabularyType {
                    kind,
                    actions: kind.actions().to_vec(),
                })
                .collect(),
            states: OpState::ALL
                .iter()
                .map(|&state| VocabularyState {
                    state,
                    terminal: state.is_terminal(),
                })
                .collect(),
            message_types: MessageType::ALL.to_vec(),
            levels: Level::ALL.to_vec(),
            events: EventType::ALL.to_vec(),
            delivery_statuses: DeliveryStatus::ALL.to_vec(),
            replay_statuses: REPLAYABLE.to_vec(),
            signals: Signal::ALL
                .into_iter()
                .map(|signal| VocabularySignal {
                    signal,
                    title: signal.title(),
                    counts: counted(signal),
                    filters: query_parameters(signal),
                })
                .collect(),
            webhook_formats: WebhookFormat::ALL.to_vec(),
            span_names: SpanNames::ALL.to_vec(),
            notifiers: Notifier::ALL.to_vec(),
            pagerduty_severities: PagerDutySeverity::ALL.to_vec(),
            view_ranges: crate::views::RANGES.to_vec(),
            audit_actions: crate::model::audit::AuditAction::ALL.to_vec(),
            query_parameters: QUERY_PARAMETERS
                .iter()
                .map(|p| VocabularyParameter {
                    name: p.name,
                    label: p.label,
                    kind: p.kind.as_str(),
                    values: p.kind.values(),
                    repeatable: p.repeatable,
                    required: p.required,
                    filter: p.is_filter(),
                    facet: p.is_facet(),
                    description: p.description,
                    endpoints: p.endpoints.to_vec(),
                })
                .collect(),
        }
    }
}

impl Default for Vocabulary {
    fn default() -> Self {
        Vocabulary::new()
    }
}

/// A signal's search as the query parameters of the list that shows what it counts.
fn query_parameters(signal: Signal) -> Vec<QueryParameter> {
    let endpoint = if signal.counts_messages() {
        Endpoint::Messages
    } else {
        Endpoint::Operations
    };
    to_pairs(endpoint, &signal.filters())
        .into_iter()
        .map(|(name, value)| QueryParameter { name, value })
        .collect()
}

/// GET /v1/vocabulary: needs the `read` scope, like the other dashboard reads.
pub async fn vocabulary(Auth(principal): Auth) -> Result<Response, ApiError> {
    super::require_scope(&principal, Scope::Read)?;
    let mut response = json(StatusCode::OK, &Vocabulary::new());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use utoipa::ToSchema;

    /// The values the enum's `ToSchema` derive lists (from its variants and serde renames).
    fn derived<T: ToSchema>() -> Vec<serde_json::Value> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["enum"].as_array().expect("a string enum").clone()
    }

    fn listed<T: Serialize>(all: &[T]) -> Vec<serde_json::Value> {
        all.iter()
            .map(|v| serde_json::to_value(v).unwrap())
            .collect()
    }

    /// `ALL` is written out for some enums: a variant added without it would be missing from
    /// the vocabulary, so each `ALL` is compared with the variants the derive sees.
    #[test]
    fn every_all_lists_every_variant_in_order() {
        assert_eq!(listed(OpType::ALL), derived::<OpType>());
        assert_eq!(listed(OpState::ALL), derived::<OpState>());
        assert_eq!(listed(MessageType::ALL), derived::<MessageType>());
        assert_eq!(listed(Level::ALL), derived::<Level>());
        assert_eq!(listed(EventType::ALL), derived::<EventType>());
        assert_eq!(listed(DeliveryStatus::ALL), derived::<DeliveryStatus>());
        assert_eq!(listed(&Signal::ALL), derived::<Signal>());
        assert_eq!(listed(&WebhookFormat::ALL), derived::<WebhookFormat>());
        assert_eq!(listed(&SpanNames::ALL), derived::<SpanNames>());
        assert_eq!(listed(&Notifier::ALL), derived::<Notifier>());
        assert_eq!(
            listed(&PagerDutySeverity::ALL),
            derived::<PagerDutySeverity>()
        );
    }

    #[test]
    fn a_signals_filters_are_its_search_as_query_parameters() {
        let pairs = |s: Signal| -> Vec<(&str, String)> {
            query_parameters(s)
                .into_iter()
                .map(|p| (p.name, p.value))
                .collect()
        };
        assert_eq!(
            pairs(Signal::WebhookFailures),
            [
                ("type", "webhook:incoming".to_owned()),
                ("state", "failed".to_owned()),
                ("state", "timeout".to_owned()),
            ]
        );
        assert_eq!(
            pairs(Signal::ActionErrors),
            [
                ("type", "action".to_owned()),
                ("level", "error".to_owned()),
                ("message_type", "http".to_owned()),
            ]
        );
        for signal in Signal::ALL {
            let f = signal.filters();
            assert!(
                f.from.is_none() && f.to.is_none() && f.operation.is_none() && !f.by_start,
                "{signal:?}: a signal's search has no time, operation or ordering to write out"
            );
        }
    }
}
