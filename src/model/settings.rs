//! Settings as stored in redb, one row per section and environment (`webhooks`, `ingress`,
//! `otel`; `alerts` is in `alert`), the formats they name, and why a change was refused.
//! Merging with the config file, the registry and the views are `settings`'.
//!
//! Must not: depend on anything above `model`. Enum declaration order is part of the stored
//! format: append variants, never reorder.

use std::collections::BTreeMap;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::destination::Refused;
use crate::model::{EventType, OpState, Operation, Tags, Timestamp};

/// The body shape a webhook URL receives: opslog's envelope (README "Webhooks"), or the bodies
/// Nango sends (`{"from":"nango","type":"sync",...}`), for receivers written for Nango.
/// The declaration order is part of the stored settings format: append, never reorder.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Deserialize,
    Serialize,
    bincode::Encode,
    bincode::Decode,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Opslog,
    Nango,
}

impl WebhookFormat {
    /// Every format, in declaration order (the dashboard offers these).
    pub const ALL: [WebhookFormat; 2] = [WebhookFormat::Opslog, WebhookFormat::Nango];
}

/// The span names and attribute keys of exported traces: opslog's (`sync.run`, `opslog.*`), or
/// Nango's (`nango.sync.run`, `nango.*`), for dashboards built on Nango's traces.
/// The declaration order is part of the stored settings format: append, never reorder.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Deserialize,
    Serialize,
    bincode::Encode,
    bincode::Decode,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SpanNames {
    #[default]
    Opslog,
    Nango,
}

impl SpanNames {
    /// Every naming, in declaration order (the dashboard offers these).
    pub const ALL: [SpanNames; 2] = [SpanNames::Opslog, SpanNames::Nango];
}

/// Why a settings change or a `[webhooks]` table was refused; `field` is its path, e.g.
/// `webhooks.url`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("`{field}` {message}")]
    Invalid { field: String, message: String },
    #[error("`{field}` is set in the config file, which is authoritative; change it there")]
    ReadOnly { field: String },
    #[error("`{field}` is refused: {refused}")]
    DestinationRefused { field: String, refused: Refused },
}

impl SettingsError {
    pub fn invalid(field: &str, message: impl Into<String>) -> SettingsError {
        SettingsError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn field(&self) -> &str {
        match self {
            SettingsError::Invalid { field, .. }
            | SettingsError::ReadOnly { field }
            | SettingsError::DestinationRefused { field, .. } => field,
        }
    }

    /// The problem without the field name.
    pub fn reason(&self) -> String {
        match self {
            SettingsError::Invalid { message, .. } => message.clone(),
            SettingsError::ReadOnly { .. } => "is read-only here".into(),
            SettingsError::DestinationRefused { refused, .. } => format!("is refused: {refused}"),
        }
    }
}

/// The `webhooks` section as stored in redb: only what the API set (the file wins over it), plus
/// the generated secret and, during a rotation's grace period, the previous one.
#[derive(Clone, Debug, Default, PartialEq, Encode, Decode)]
pub struct StoredWebhooks {
    pub url: Option<String>,
    pub secondary_url: Option<String>,
    pub events: Option<Vec<EventType>>,
    pub timeout_ms: Option<u64>,
    pub retry_schedule_ms: Option<Vec<u64>>,
    pub allow_insecure_http: Option<bool>,
    pub secret: Option<String>,
    /// A rotated-out secret and the time until which it still signs.
    pub previous_secret: Option<(String, Timestamp)>,
    pub format: Option<WebhookFormat>,
    pub secondary_format: Option<WebhookFormat>,
    pub toggles: Option<NangoToggles>,
    pub routes: Option<Vec<WebhookRoute>>,
}

/// Nango's webhook toggles (its environment settings), under the same names, for every URL of an
/// environment (routes included), whatever their format. Each is on by default: opslog sends every
/// event unless told not to.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Encode, Decode, utoipa::ToSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct NangoToggles {
    /// A successful sync run is reported even for a model with nothing added, updated or deleted.
    pub on_sync_completion_always: bool,
    /// A failed sync run is reported.
    pub on_sync_error: bool,
    /// A connection's creation (`auth:create_connection`, succeeded or failed) is reported.
    pub on_auth_creation: bool,
    /// A failed refresh (`auth:refresh_token`, `auth:connection_test`) is reported.
    pub on_auth_refresh_error: bool,
    /// An async action's end is reported.
    pub on_async_action_completion: bool,
}

impl Default for NangoToggles {
    fn default() -> NangoToggles {
        NangoToggles {
            on_sync_completion_always: true,
            on_sync_error: true,
            on_auth_creation: true,
            on_auth_refresh_error: true,
            on_async_action_completion: true,
        }
    }
}

impl NangoToggles {
    /// Whether event `kind`, caused by `op`, is sent at all (as Nango's `shouldSend`). A sync run
    /// whose every model is unchanged counts as empty; Nango-format bodies drop the unchanged
    /// models one by one (`sends_empty_models`).
    pub fn sends(&self, kind: EventType, op: Option<&Operation>) -> bool {
        let Some(op) = op else {
            return true;
        };
        match kind {
            EventType::SyncCompleted if op.state != OpState::Success => self.on_sync_error,
            EventType::SyncCompleted => {
                let changed = op
                    .records
                    .iter()
                    .flatten()
                    .any(|r| r.added + r.updated + r.deleted > 0);
                self.on_sync_completion_always || changed
            }
            EventType::AuthCreated | EventType::AuthFailed
                if matches!(op.action.as_str(), "create_connection" | "create") =>
            {
                self.on_auth_creation
            }
            EventType::AuthFailed
                if matches!(
                    op.action.as_str(),
                    "refresh_token" | "refresh" | "connection_test"
                ) =>
            {
                self.on_auth_refresh_error
            }
            EventType::ActionCompleted => self.on_async_action_completion,
            _ => true,
        }
    }

    /// Whether a Nango `sync` body is sent for a model with no change.
    pub fn sends_empty_models(&self) -> bool {
        self.on_sync_completion_always
    }
}

/// A route (Nango's per-connection webhook URL override): the events of the operations it matches
/// go to `url` instead of the environment's URLs (both of them, as in Nango). It matches an
/// operation when every criterion it gives holds: its connection is one of `connection_ids`, its
/// end user one of `end_user_ids`, and it carries every tag of `tags`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, Encode, Decode, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRoute {
    pub url: String,
    /// The body shape `url` receives; default: the environment's `format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WebhookFormat>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connection_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub end_user_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Tags::is_empty")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub tags: Tags,
}

/// The most routes an environment may have.
pub const MAX_ROUTES: usize = 100;
/// The most values one route's list may hold.
pub const MAX_ROUTE_VALUES: usize = 1000;

impl WebhookRoute {
    pub fn matches(&self, op: &Operation) -> bool {
        let connection = self.connection_ids.is_empty()
            || op
                .connection_id
                .as_ref()
                .is_some_and(|c| self.connection_ids.contains(c));
        let end_user = self.end_user_ids.is_empty()
            || op
                .end_user
                .as_ref()
                .is_some_and(|u| self.end_user_ids.contains(&u.id));
        let tags = self.tags.iter().all(|(k, v)| op.tags.get(k) == Some(v));
        connection && end_user && tags
    }

    /// Why this route cannot be kept (`field` is its path, e.g. `webhooks.routes[2]`).
    pub fn check(&self, field: &str) -> Result<(), SettingsError> {
        if self.connection_ids.is_empty() && self.end_user_ids.is_empty() && self.tags.is_empty() {
            return Err(SettingsError::invalid(
                field,
                "matches every operation; give it connection_ids, end_user_ids or tags",
            ));
        }
        for (name, values) in [
            ("connection_ids", &self.connection_ids),
            ("end_user_ids", &self.end_user_ids),
        ] {
            if values.len() > MAX_ROUTE_VALUES {
                return Err(SettingsError::invalid(
                    &format!("{field}.{name}"),
                    format!("lists {} values; at most {MAX_ROUTE_VALUES}", values.len()),
                ));
            }
            if let Some(bad) = values
                .iter()
                .find(|v| v.is_empty() || v.chars().count() > 256)
            {
                return Err(SettingsError::invalid(
                    &format!("{field}.{name}"),
                    format!("`{bad}` is not 1-256 characters"),
                ));
            }
        }
        if self.tags.len() > crate::model::MAX_TAGS {
            return Err(SettingsError::invalid(
                &format!("{field}.tags"),
                format!("at most {} tags", crate::model::MAX_TAGS),
            ));
        }
        Ok(())
    }
}

/// The `ingress` section as stored: the token in `POST /v1/hooks/{token}/{integration}`.
#[derive(Clone, Debug, Default, PartialEq, Encode, Decode)]
pub struct StoredIngress {
    pub token: String,
}

/// The `otel` section as stored in redb: what the API set. Only used while the config file has
/// no `[environments.<env>.otel]` table. No endpoint: nothing is exported.
#[derive(Clone, Debug, Default, PartialEq, Encode, Decode)]
pub struct StoredOtel {
    pub endpoint: Option<String>,
    /// Secrets: shown masked, kept when a masked value is sent back.
    pub headers: BTreeMap<String, String>,
    pub service_name: Option<String>,
    pub resource_attributes: BTreeMap<String, String>,
    pub max_events_per_span: Option<u32>,
    pub timeout_ms: Option<u64>,
    pub logs: bool,
    pub names: SpanNames,
    /// The dashboard's trace link (`otel.trace_url`); `None`: no link.
    pub trace_url: Option<String>,
}
