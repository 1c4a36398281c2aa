//! The JSON of `GET /settings`: every section, secrets masked, read-only fields listed.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{EnvSettings, OtelSettings, OTEL_FIELDS};
use crate::config::{ApiDelay, ApiDuration, ApiTimeout, SpanNames, WebhookFormat};
use crate::model::alert::AlertRule;
use crate::model::settings::{NangoToggles, WebhookRoute};
use crate::model::{EventType, Timestamp};
use crate::secrets::mask;

/// The JSON of `GET /settings`: every section, secrets masked, read-only fields listed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SettingsView {
    pub environment: String,
    pub webhooks: WebhooksView,
    pub otel: OtelView,
    pub ingress: IngressView,
    pub alerts: AlertsView,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertsView {
    /// Each fires `alert.triggered` when its signal's count over its window goes above `above`,
    /// and `alert.resolved` when it is back at or under it.
    pub rules: Vec<AlertRule>,
    /// The config file sets the rules: change them there.
    pub read_only: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OtelView {
    /// `null`: nothing is exported.
    pub endpoint: Option<String>,
    /// Values masked; sending a masked value back keeps the stored one.
    pub headers: BTreeMap<String, String>,
    pub service_name: String,
    pub resource_attributes: BTreeMap<String, String>,
    pub max_events_per_span: usize,
    pub timeout: ApiTimeout,
    pub logs: bool,
    pub names: SpanNames,
    /// The dashboard's trace link, with `{trace_id}`; `null`: none.
    pub trace_url: Option<String>,
    /// Fields the config file sets (all of them when it has an otel table): change them there.
    pub read_only: Vec<&'static str>,
}

impl OtelView {
    pub(super) fn new(otel: &OtelSettings) -> OtelView {
        let masked = otel.config.masked();
        OtelView {
            endpoint: Some(masked.endpoint).filter(|e| !e.is_empty()),
            headers: masked.headers,
            service_name: masked.service_name,
            resource_attributes: masked.resource_attributes,
            max_events_per_span: masked.max_events_per_span,
            timeout: ApiDuration(masked.timeout.0),
            logs: masked.logs,
            names: masked.names,
            trace_url: Some(masked.trace_url).filter(|u| !u.is_empty()),
            read_only: if otel.from_file {
                OTEL_FIELDS.to_vec()
            } else {
                Vec::new()
            },
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhooksView {
    pub url: Option<String>,
    pub secondary_url: Option<String>,
    pub events: Vec<EventType>,
    pub timeout: ApiTimeout,
    pub retry_schedule: Vec<ApiDelay>,
    pub allow_insecure_http: bool,
    /// Masked; `GET /settings/webhook-secret` shows it to an admin.
    pub secret: String,
    /// Until when the rotated-out secret still signs, during a rotation's grace period.
    pub previous_secret_expires_at: Option<Timestamp>,
    pub rotation_grace: ApiDelay,
    /// The body shape `url` receives.
    pub format: WebhookFormat,
    /// The body shape `secondary_url` receives.
    pub secondary_format: WebhookFormat,
    /// Nango's toggles: which events are sent at all.
    pub toggles: NangoToggles,
    /// Operations whose events go to another URL instead (Nango's per-connection override).
    pub routes: Vec<WebhookRoute>,
    /// Fields the config file sets: change them there.
    pub read_only: Vec<&'static str>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngressView {
    pub token: String,
    /// Where third parties post, with `{integration}` to fill in.
    pub path: String,
}

impl SettingsView {
    pub fn new(settings: &EnvSettings, now: Timestamp) -> SettingsView {
        let w = &settings.webhooks;
        SettingsView {
            environment: settings.environment.clone(),
            webhooks: WebhooksView {
                url: w.url.clone(),
                secondary_url: w.secondary_url.clone(),
                events: w.events.clone(),
                timeout: ApiDuration(w.timeout),
                retry_schedule: w.retry_schedule.iter().map(|d| ApiDuration(*d)).collect(),
                allow_insecure_http: w.allow_insecure_http,
                secret: mask(&w.secret),
                previous_secret_expires_at: w
                    .previous_secret
                    .as_ref()
                    .map(|(_, until)| *until)
                    .filter(|until| now < *until),
                rotation_grace: ApiDuration(w.rotation_grace),
                format: w.format,
                secondary_format: w.secondary_format,
                toggles: w.toggles,
                routes: w.routes.clone(),
                read_only: w.read_only.iter().copied().collect(),
            },
            otel: OtelView::new(&settings.otel),
            ingress: IngressView {
                path: format!("/v1/hooks/{}/{{integration}}", settings.ingress_token),
                token: settings.ingress_token.clone(),
            },
            alerts: AlertsView {
                rules: settings.alerts.rules.clone(),
                read_only: settings.alerts.from_file,
            },
        }
    }
}
