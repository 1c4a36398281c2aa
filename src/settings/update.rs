//! What `PUT /settings` and the rotations take, and how each is merged with the stored section
//! and the config file: a field the file sets is read-only, and a result that is not valid is
//! refused whole, leaving what is stored unchanged.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Deserializer};

use super::{
    check_destination, check_webhooks_config, SettingsError, StoredOtel, StoredWebhooks,
    OTEL_FIELDS, SECRET_PREFIX,
};
use crate::config::{
    ApiDelay, ApiTimeout, HumanDuration, OtelConfig, SpanNames, WebhookFormat, WebhooksConfig,
};
use crate::destination::DestinationPolicy;
use crate::model::alert::{AlertRule, StoredAlerts};
use crate::model::notifier::{
    mask_secret_path, mask_smtp_url, EmailNotifier, Notifiers, PagerDutyNotifier, SlackNotifier,
};
use crate::model::settings::{NangoToggles, WebhookRoute};
use crate::model::{EventType, Timestamp};
use crate::secrets::mask;

/// `PUT /settings`: sections to change. A section left out is unchanged; inside a section, a
/// field left out is unchanged and `null` resets it to its default.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    #[serde(default, deserialize_with = "crate::model::optional_object")]
    pub webhooks: Option<WebhooksUpdate>,
    #[serde(default, deserialize_with = "crate::model::optional_object")]
    pub otel: Option<OtelUpdate>,
    /// Replaces every alert rule of the environment (`[]` removes them all); refused when the
    /// config file sets them.
    #[serde(default, deserialize_with = "crate::model::optional_objects")]
    pub alerts: Option<Vec<AlertRule>>,
    #[serde(default, deserialize_with = "crate::model::optional_object")]
    pub notifiers: Option<NotifiersUpdate>,
}

impl SettingsUpdate {
    /// Whether it changes anything at all.
    pub fn changes_something(&self) -> bool {
        self.webhooks.is_some()
            || self.otel.is_some()
            || self.alerts.is_some()
            || self.notifiers.is_some()
    }
}

/// `PUT /settings` `notifiers`: a notifier left out is unchanged, `null` removes it, an object
/// replaces it. A secret sent back as `GET /settings` shows it (masked) keeps the stored one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifiersUpdate {
    #[serde(default, deserialize_with = "present")]
    pub slack: Option<Option<SlackNotifier>>,
    #[serde(default, deserialize_with = "present")]
    pub pagerduty: Option<Option<PagerDutyNotifier>>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<EmailNotifier>>,
    /// What `GET /settings` shows; ignored, so a UI can send back what it read.
    #[serde(default)]
    #[schema(ignore)]
    pub read_only: Option<serde::de::IgnoredAny>,
}

/// Applies `update` to the stored notifiers: refused for a notifier the file sets, and as a whole
/// when a result is not valid. On error `stored` is unchanged.
pub fn apply_notifiers_update(
    file: &Notifiers,
    stored: &Notifiers,
    update: NotifiersUpdate,
    destinations: &DestinationPolicy,
) -> Result<Notifiers, SettingsError> {
    let read_only = |name: &str, from_file: bool, sent: bool| {
        if from_file && sent {
            Err(SettingsError::ReadOnly {
                field: format!("notifiers.{name}"),
            })
        } else {
            Ok(())
        }
    };
    read_only("slack", file.slack.is_some(), update.slack.is_some())?;
    read_only(
        "pagerduty",
        file.pagerduty.is_some(),
        update.pagerduty.is_some(),
    )?;
    read_only("email", file.email.is_some(), update.email.is_some())?;
    let mut next = stored.clone();
    if let Some(slack) = update.slack {
        next.slack = slack.map(|mut new| {
            if let Some(old) = &stored.slack {
                if new.url == mask_secret_path(&old.url) {
                    new.url = old.url.clone();
                }
            }
            new
        });
    }
    if let Some(pagerduty) = update.pagerduty {
        next.pagerduty = pagerduty.map(|mut new| {
            if let Some(old) = &stored.pagerduty {
                if new.routing_key == mask(&old.routing_key) {
                    new.routing_key = old.routing_key.clone();
                }
            }
            new
        });
    }
    if let Some(email) = update.email {
        next.email = email.map(|mut new| {
            if let Some(old) = &stored.email {
                if new.url == mask_smtp_url(&old.url) {
                    new.url = old.url.clone();
                }
            }
            new
        });
    }
    crate::config::notifiers::check_notifiers(&next, destinations)?;
    Ok(next)
}

/// Applies a new alert rule list: refused when the file sets the rules, or when the list is not
/// valid. On error nothing changed.
pub fn apply_alerts_update(
    file: Option<&Vec<AlertRule>>,
    rules: Vec<AlertRule>,
) -> Result<StoredAlerts, SettingsError> {
    if file.is_some() {
        return Err(SettingsError::ReadOnly {
            field: "alerts".into(),
        });
    }
    crate::model::alert::check_rules("alerts", &rules)?;
    Ok(StoredAlerts::from_rules(&rules))
}

/// `PUT /settings` `otel`: a field left out is unchanged; `null` resets it to its default
/// (`endpoint: null` turns export off). `headers` replaces the whole map, except that a value
/// equal to the masked one `GET /settings` shows keeps the stored secret.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtelUpdate {
    #[serde(default, deserialize_with = "present")]
    pub endpoint: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub headers: Option<Option<BTreeMap<String, String>>>,
    /// The `service.name` of exported spans: 1-256 characters, not blank (`null` resets it to
    /// the default, `opslog`; an empty name is refused, since a collector would file the spans
    /// under no service).
    #[serde(default, deserialize_with = "present")]
    #[schema(min_length = 1, max_length = 256, pattern = r"\S")]
    pub service_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub resource_attributes: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    pub max_events_per_span: Option<Option<u32>>,
    #[serde(default, deserialize_with = "present")]
    pub timeout: Option<Option<ApiTimeout>>,
    #[serde(default, deserialize_with = "present")]
    pub logs: Option<Option<bool>>,
    #[serde(default, deserialize_with = "present")]
    pub names: Option<Option<SpanNames>>,
    /// A trace viewer's URL with `{trace_id}`: the dashboard links an operation's trace with it.
    #[serde(default, deserialize_with = "present")]
    #[schema(examples("http://localhost:16686/trace/{trace_id}"))]
    pub trace_url: Option<Option<String>>,
    /// What `GET /settings` shows; ignored, so a UI can send back what it read.
    #[serde(default)]
    #[schema(ignore)]
    pub read_only: Option<serde::de::IgnoredAny>,
}

impl OtelUpdate {
    /// The fields sent, in `OTEL_FIELDS` order.
    fn sent(&self) -> Vec<&'static str> {
        let sent = [
            self.endpoint.is_some(),
            self.headers.is_some(),
            self.service_name.is_some(),
            self.resource_attributes.is_some(),
            self.max_events_per_span.is_some(),
            self.timeout.is_some(),
            self.logs.is_some(),
            self.names.is_some(),
            self.trace_url.is_some(),
        ];
        OTEL_FIELDS
            .iter()
            .zip(sent)
            .filter_map(|(name, sent)| sent.then_some(*name))
            .collect()
    }
}

/// Applies `update` to the stored otel section: refused field by field when the file has an otel
/// table, and refused as a whole when the result is not valid. On error `stored` is unchanged.
pub fn apply_otel_update(
    file: Option<&OtelConfig>,
    stored: &StoredOtel,
    update: OtelUpdate,
    destinations: &DestinationPolicy,
) -> Result<StoredOtel, SettingsError> {
    if file.is_some() {
        return match update.sent().first() {
            Some(field) => Err(SettingsError::ReadOnly {
                field: format!("otel.{field}"),
            }),
            None => Ok(stored.clone()),
        };
    }
    let mut next = stored.clone();
    if let Some(endpoint) = update.endpoint {
        next.endpoint = endpoint
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty());
    }
    if let Some(headers) = update.headers {
        next.headers = headers
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let kept = stored
                    .headers
                    .iter()
                    .find(|(old, secret)| old.eq_ignore_ascii_case(&name) && mask(secret) == value)
                    .map(|(_, secret)| secret.clone());
                (name, kept.unwrap_or(value))
            })
            .collect();
    }
    if let Some(name) = update.service_name {
        next.service_name = name;
    }
    if let Some(attributes) = update.resource_attributes {
        next.resource_attributes = attributes.unwrap_or_default();
    }
    if let Some(n) = update.max_events_per_span {
        next.max_events_per_span = n;
    }
    if let Some(timeout) = update.timeout {
        next.timeout_ms = timeout.map(|d| d.0.as_millis() as u64);
    }
    if let Some(logs) = update.logs {
        next.logs = logs.unwrap_or(false);
    }
    if let Some(names) = update.names {
        next.names = names.unwrap_or_default();
    }
    if let Some(url) = update.trace_url {
        next.trace_url = url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
    }
    // Every field is checked even while export is off, against a stand-in endpoint.
    let endpoint = next.endpoint.as_deref().unwrap_or("http://127.0.0.1:4318");
    next.to_config(endpoint)
        .check()
        .map_err(|problem| SettingsError::Invalid {
            field: format!("otel.{}", problem.field),
            message: problem.message,
        })?;
    if let Some(endpoint) = &next.endpoint {
        check_destination("otel.endpoint", endpoint, destinations)?;
    }
    Ok(next)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhooksUpdate {
    #[serde(default, deserialize_with = "present")]
    pub url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub secondary_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub events: Option<Option<Vec<EventType>>>,
    #[serde(default, deserialize_with = "present")]
    pub timeout: Option<Option<ApiTimeout>>,
    /// One delay per attempt, the first usually `0s`.
    #[serde(default, deserialize_with = "present")]
    #[schema(min_items = 1, max_items = 30)]
    pub retry_schedule: Option<Option<Vec<ApiDelay>>>,
    #[serde(default, deserialize_with = "present")]
    pub allow_insecure_http: Option<Option<bool>>,
    /// The body shape `url` receives: `opslog` (default) or `nango`.
    #[serde(default, deserialize_with = "present")]
    pub format: Option<Option<WebhookFormat>>,
    /// The body shape `secondary_url` receives: `opslog` (default) or `nango`.
    #[serde(default, deserialize_with = "present")]
    pub secondary_format: Option<Option<WebhookFormat>>,
    /// Nango's toggles (a toggle left out is on); `null` turns every one on.
    #[serde(default, deserialize_with = "present")]
    pub toggles: Option<Option<NangoToggles>>,
    /// Replaces every route (`null` or `[]` removes them).
    #[serde(default, deserialize_with = "present")]
    pub routes: Option<Option<Vec<WebhookRoute>>>,
    /// Refused with a pointer to the rotate call, rather than as an unknown field.
    #[serde(default, deserialize_with = "present")]
    #[schema(ignore)]
    pub secret: Option<Option<serde::de::IgnoredAny>>,
}

/// `present` for a whole number (`crate::model::whole`).
fn present_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    crate::model::optional_whole(d).map(Some)
}

/// Distinguishes a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Applies `update` to the stored section, refusing fields the file sets and any result that
/// is not valid. On error `stored` is unchanged.
pub fn apply_update(
    file: &WebhooksConfig,
    stored: &StoredWebhooks,
    update: WebhooksUpdate,
    destinations: &DestinationPolicy,
) -> Result<StoredWebhooks, SettingsError> {
    let mut next = stored.clone();
    let read_only = |name: &str, from_file: bool, sent: bool| {
        if from_file && sent {
            Err(SettingsError::ReadOnly {
                field: format!("webhooks.{name}"),
            })
        } else {
            Ok(())
        }
    };
    if update.secret.is_some() {
        return Err(SettingsError::invalid(
            "webhooks.secret",
            "cannot be set; POST /settings/webhook-secret/rotate issues a new one",
        ));
    }
    read_only("url", file.url.is_some(), update.url.is_some())?;
    read_only(
        "secondary_url",
        file.secondary_url.is_some(),
        update.secondary_url.is_some(),
    )?;
    read_only("events", file.events.is_some(), update.events.is_some())?;
    read_only("timeout", file.timeout.is_some(), update.timeout.is_some())?;
    read_only(
        "retry_schedule",
        file.retry_schedule.is_some(),
        update.retry_schedule.is_some(),
    )?;
    read_only(
        "allow_insecure_http",
        file.allow_insecure_http.is_some(),
        update.allow_insecure_http.is_some(),
    )?;
    read_only("format", file.format.is_some(), update.format.is_some())?;
    read_only(
        "secondary_format",
        file.secondary_format.is_some(),
        update.secondary_format.is_some(),
    )?;
    read_only("toggles", file.toggles.is_some(), update.toggles.is_some())?;
    read_only("routes", file.routes.is_some(), update.routes.is_some())?;
    if let Some(toggles) = update.toggles {
        next.toggles = toggles;
    }
    if let Some(routes) = update.routes {
        next.routes = routes.filter(|r| !r.is_empty());
    }
    if let Some(format) = update.format {
        next.format = format;
    }
    if let Some(format) = update.secondary_format {
        next.secondary_format = format;
    }
    if let Some(url) = update.url {
        next.url = url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
    }
    if let Some(url) = update.secondary_url {
        next.secondary_url = url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
    }
    if let Some(events) = update.events {
        next.events = events;
    }
    if let Some(timeout) = update.timeout {
        next.timeout_ms = timeout.map(|d| d.0.as_millis() as u64);
    }
    if let Some(schedule) = update.retry_schedule {
        next.retry_schedule_ms =
            schedule.map(|s| s.iter().map(|d| d.0.as_millis() as u64).collect());
    }
    if let Some(allow) = update.allow_insecure_http {
        next.allow_insecure_http = allow;
    }
    // Check the merged result: whether plain http is allowed depends on both sources.
    let merged = WebhooksConfig {
        url: file.url.clone().or_else(|| next.url.clone()),
        secondary_url: file
            .secondary_url
            .clone()
            .or_else(|| next.secondary_url.clone()),
        events: None,
        secret: None,
        timeout: next
            .timeout_ms
            .map(|ms| HumanDuration(Duration::from_millis(ms))),
        retry_schedule: next.retry_schedule_ms.as_ref().map(|s| {
            s.iter()
                .map(|ms| HumanDuration(Duration::from_millis(*ms)))
                .collect()
        }),
        allow_insecure_http: file.allow_insecure_http.or(next.allow_insecure_http),
        rotation_grace: None,
        format: None,
        secondary_format: None,
        toggles: None,
        routes: next.routes.clone(),
    };
    check_webhooks_config(&merged, destinations)?;
    Ok(next)
}

/// Replaces the generated secret, keeping the old one signing until `now + grace`.
pub fn rotate_secret(
    file: &WebhooksConfig,
    stored: &StoredWebhooks,
    now: Timestamp,
    grace: Duration,
    new_secret: String,
) -> Result<StoredWebhooks, SettingsError> {
    if file.secret.is_some() {
        return Err(SettingsError::ReadOnly {
            field: "webhooks.secret".into(),
        });
    }
    let mut next = stored.clone();
    if let Some(old) = next.secret.take() {
        if !grace.is_zero() {
            next.previous_secret = Some((old, now.plus_millis(grace.as_millis() as i64)));
        } else {
            next.previous_secret = None;
        }
    }
    next.secret = Some(new_secret);
    Ok(next)
}

/// A fresh `whsec_` secret: base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill(&mut key);
    format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// A fresh ingress token: 192 random bits, URL-safe.
pub fn generate_ingress_token() -> String {
    format!("hook_{}", crate::secrets::random_hex(24))
}
