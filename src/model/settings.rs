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
use crate::model::{EventType, Timestamp};

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
