//! Per-environment settings: the webhook destination, events, secret, timeout and retry schedule,
//! the OTLP export (collector endpoint, headers, resource, logs switch), and the ingress token
//! third parties post to. The JSON shape is one object per section (`webhooks`, `otel`,
//! `ingress`), and each section is stored as its own row, so a new section never reshapes an
//! existing one.
//!
//! The `otel` section is all-or-nothing: when the file has an `[environments.<env>.otel]` table,
//! every otel field is read-only; otherwise all of them are edited through the API.
//!
//! What the TOML file sets is authoritative and read-only here; what it leaves unset is edited
//! through the API and persisted in redb. The effective values live in `Settings`, a registry the
//! writer thread replaces after each committed change and everyone else only reads.
//!
//! Must not: write to the store outside start-up (changes go through `write`), or let a
//! secret reach a log line or a JSON answer unmasked (only `reveal` shows one, to an admin).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use crate::config::webhooks::{
    check_destination, check_secret, check_url, check_webhooks_config, default_schedule,
    DEFAULT_ROTATION_GRACE, DEFAULT_SCHEDULE_SECS, DEFAULT_TIMEOUT, MAX_NANGO_KEY_LEN,
    MAX_SCHEDULE_LEN, MAX_SCHEDULE_STEP, MIN_NANGO_KEY_LEN, SECRET_PREFIX,
};
use crate::config::{Config, HumanDuration, OtelConfig, WebhookFormat, WebhooksConfig};
use crate::destination::DestinationPolicy;
use crate::model::alert::{AlertRule, Notifier, StoredAlerts};
pub use crate::model::notifier::Notifiers;
use crate::model::settings::{NangoToggles, WebhookRoute};
pub use crate::model::settings::{SettingsError, StoredIngress, StoredOtel, StoredWebhooks};
use crate::model::view::StoredView;
use crate::model::{EventType, Operation, Timestamp};
use crate::otel::OtelTarget;
use crate::store::{Store, StoreError};

mod update;
mod view;

pub use update::{
    apply_alerts_update, apply_notifiers_update, apply_otel_update, apply_update,
    generate_ingress_token, generate_secret, rotate_secret, NotifiersUpdate, OtelUpdate,
    SettingsUpdate, WebhooksUpdate,
};
pub use view::{AlertsView, IngressView, NotifiersView, OtelView, SettingsView, WebhooksView};

impl StoredOtel {
    /// The stored values over the defaults, for `endpoint`.
    fn to_config(&self, endpoint: &str) -> OtelConfig {
        let mut config = OtelConfig::with_endpoint(endpoint);
        config.headers = self.headers.clone();
        if let Some(name) = &self.service_name {
            config.service_name = name.clone();
        }
        config.resource_attributes = self.resource_attributes.clone();
        if let Some(n) = self.max_events_per_span {
            config.max_events_per_span = n as usize;
        }
        if let Some(ms) = self.timeout_ms {
            config.timeout = HumanDuration(Duration::from_millis(ms));
        }
        config.logs = self.logs;
        config.names = self.names;
        config.trace_url = self.trace_url.clone().unwrap_or_default();
        config
    }
}

/// The otel fields, as named in the API (`otel.<field>`) and listed as read-only.
pub const OTEL_FIELDS: [&str; 9] = [
    "endpoint",
    "headers",
    "service_name",
    "resource_attributes",
    "max_events_per_span",
    "timeout",
    "logs",
    "names",
    "trace_url",
];

/// Effective OTLP export settings of one environment.
#[derive(Clone, Debug, PartialEq)]
pub struct OtelSettings {
    /// The settings in force (the file's table, else the API's over the defaults); the endpoint
    /// is empty when nothing is exported.
    pub config: OtelConfig,
    /// Where exports go; `None` when export is off.
    pub target: Option<Arc<OtelTarget>>,
    /// The file has an otel table: every field is read-only here.
    pub from_file: bool,
}

impl OtelSettings {
    /// The file's table when there is one, else the stored section.
    pub fn new(environment: &str, file: Option<&OtelConfig>, stored: &StoredOtel) -> OtelSettings {
        let (config, from_file) = match file {
            Some(file) => (file.clone(), true),
            None => (
                stored.to_config(stored.endpoint.as_deref().unwrap_or("")),
                false,
            ),
        };
        let target = if config.endpoint.is_empty() {
            None
        } else {
            match OtelTarget::new(environment, &config) {
                Ok(target) => Some(Arc::new(target)),
                Err(e) => {
                    tracing::error!(error = %e, "OTel export disabled");
                    None
                }
            }
        };
        OtelSettings {
            config,
            target,
            from_file,
        }
    }
}

/// Effective webhook settings of one environment.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookSettings {
    pub url: Option<String>,
    pub secondary_url: Option<String>,
    pub events: Vec<EventType>,
    pub timeout: Duration,
    pub retry_schedule: Vec<Duration>,
    pub allow_insecure_http: bool,
    pub secret: String,
    pub previous_secret: Option<(String, Timestamp)>,
    pub rotation_grace: Duration,
    /// The body shape `url` receives.
    pub format: WebhookFormat,
    /// The body shape `secondary_url` receives.
    pub secondary_format: WebhookFormat,
    /// Nango's toggles: which events are sent at all, to every URL.
    pub toggles: NangoToggles,
    /// Operations whose events go to another URL (Nango's per-connection override).
    pub routes: Vec<WebhookRoute>,
    /// Fields the config file sets (read-only through the API).
    pub read_only: BTreeSet<&'static str>,
}

impl WebhookSettings {
    /// Where each event goes and in which body shape: the primary URL, then the secondary one
    /// (one delivery per URL); only the route's URL when a route matches the operation that
    /// caused it (`op`; `None` for an alert); nowhere when the toggles drop it.
    pub fn destinations(
        &self,
        event: EventType,
        op: Option<&Operation>,
    ) -> Vec<(&str, WebhookFormat)> {
        if !self.events.contains(&event) || !self.toggles.sends(event, op) {
            return Vec::new();
        }
        if let Some(route) = op.and_then(|op| self.routes.iter().find(|r| r.matches(op))) {
            return vec![(route.url.as_str(), route.format.unwrap_or(self.format))];
        }
        let mut urls: Vec<(&str, WebhookFormat)> =
            self.url.iter().map(|u| (u.as_str(), self.format)).collect();
        if let Some(second) = self.secondary_url.as_deref() {
            if !urls.iter().any(|(u, _)| *u == second) {
                urls.push((second, self.secondary_format));
            }
        }
        urls
    }

    /// The secrets that sign at `now`: the current one, and the previous one during its grace.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some((previous, until)) = &self.previous_secret {
            if now < *until {
                secrets.push(previous);
            }
        }
        secrets
    }
}

/// Everything configurable about one environment.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvSettings {
    pub environment: String,
    pub webhooks: WebhookSettings,
    pub otel: OtelSettings,
    pub ingress_token: String,
    pub alerts: AlertSettings,
    /// The views saved through the API (the built-in ones are `views::all`'s), by id.
    pub views: Vec<StoredView>,
    pub notifiers: NotifierSettings,
}

/// An environment's notifiers: each the config file sets (then read-only here), else the one set
/// through the API.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotifierSettings {
    pub current: Notifiers,
    /// Notifiers the config file sets (`slack`, `pagerduty`, `email`).
    pub read_only: BTreeSet<&'static str>,
}

impl NotifierSettings {
    pub fn new(file: &Notifiers, stored: &Notifiers) -> NotifierSettings {
        NotifierSettings {
            current: Notifiers {
                slack: file.slack.clone().or_else(|| stored.slack.clone()),
                pagerduty: file.pagerduty.clone().or_else(|| stored.pagerduty.clone()),
                email: file.email.clone().or_else(|| stored.email.clone()),
            },
            read_only: file.names().into_iter().collect(),
        }
    }

    /// Whether `notifier` can be told: the webhooks always can, the others once set up.
    pub fn configured(&self, notifier: Notifier) -> bool {
        match notifier {
            Notifier::Webhook => true,
            Notifier::Slack => self.current.slack.is_some(),
            Notifier::Pagerduty => self.current.pagerduty.is_some(),
            Notifier::Email => self.current.email.is_some(),
        }
    }
}

/// An environment's alert rules: the config file's (`[[environments.<env>.alerts]]`, then all
/// read-only) or else those set through the API.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AlertSettings {
    pub rules: Vec<AlertRule>,
    pub from_file: bool,
}

impl AlertSettings {
    pub fn new(
        environment: &str,
        file: Option<&Vec<AlertRule>>,
        stored: &StoredAlerts,
    ) -> AlertSettings {
        match file {
            Some(rules) => AlertSettings {
                rules: rules.clone(),
                from_file: true,
            },
            None => AlertSettings {
                rules: stored.rules(environment),
                from_file: false,
            },
        }
    }
}

/// The effective settings of every environment. Read by anyone; replaced only by the writer
/// thread after the change is committed.
pub struct Settings {
    files: BTreeMap<String, WebhooksConfig>,
    /// Each environment's `[environments.<env>.otel]` table, when the file has one.
    otel_files: BTreeMap<String, OtelConfig>,
    /// Each environment's `[[environments.<env>.alerts]]` rules, when the file has some.
    alert_files: BTreeMap<String, Vec<AlertRule>>,
    /// Each environment's `[environments.<env>.notifiers]` table (empty when the file has none).
    notifier_files: BTreeMap<String, Notifiers>,
    /// Where destinations set through the API may point (`[outbox] allow_private_destinations`).
    destinations: DestinationPolicy,
    current: RwLock<BTreeMap<String, Arc<EnvSettings>>>,
}

impl Settings {
    /// Loads the stored sections of every configured environment, generating (and persisting) a
    /// webhook secret and an ingress token where none exists yet. On error nothing was persisted.
    pub fn load_or_init(config: &Config, store: &Store) -> Result<Settings, StoreError> {
        let mut tx = store.write()?;
        let mut current = BTreeMap::new();
        let mut files = BTreeMap::new();
        let mut otel_files = BTreeMap::new();
        let mut alert_files = BTreeMap::new();
        let mut notifier_files = BTreeMap::new();
        let destinations = config.outbox.destinations();
        for (name, env) in &config.environments {
            if let Some(file) = &env.otel {
                otel_files.insert(name.clone(), file.clone());
            }
            let mut webhooks = tx.webhook_settings(name)?.unwrap_or_default();
            if env.webhooks.secret.is_none() && webhooks.secret.is_none() {
                webhooks.secret = Some(generate_secret());
                tx.put_webhook_settings(name, &webhooks)?;
            }
            let ingress = match tx.ingress_settings(name)? {
                Some(ingress) => ingress,
                None => {
                    let ingress = StoredIngress {
                        token: generate_ingress_token(),
                    };
                    tx.put_ingress_settings(name, &ingress)?;
                    ingress
                }
            };
            let stored_otel = tx.otel_settings(name)?.unwrap_or_default();
            let otel = OtelSettings::new(name, env.otel.as_ref(), &stored_otel);
            if let Some(rules) = &env.alerts {
                alert_files.insert(name.clone(), rules.clone());
            }
            let stored_alerts = tx.alert_settings(name)?.unwrap_or_default();
            let alerts = AlertSettings::new(name, env.alerts.as_ref(), &stored_alerts);
            let mut effective = effective(name, &env.webhooks, &webhooks, otel, &ingress, alerts);
            effective.views = tx.views(name)?;
            let stored_notifiers = tx.notifier_settings(name)?.unwrap_or_default();
            effective.notifiers = NotifierSettings::new(&env.notifiers, &stored_notifiers);
            notifier_files.insert(name.clone(), env.notifiers.clone());
            warn_refused_destinations(&effective, &destinations);
            for rule in &effective.alerts.rules {
                if crate::views::find(&effective.views, rule.view_id()).is_none() {
                    tracing::warn!(environment = %name, rule = %rule.key(), "an alert rule of the config file names a view this environment does not have; it counts nothing until the view is saved");
                }
                for notifier in &rule.notify {
                    if !effective.notifiers.configured(*notifier) {
                        tracing::warn!(environment = %name, rule = %rule.key(), notifier = notifier.as_str(), "an alert rule of the config file tells a notifier that is not set up; it is skipped until it is");
                    }
                }
            }
            current.insert(name.clone(), Arc::new(effective));
            files.insert(name.clone(), env.webhooks.clone());
        }
        tx.commit()?;
        Ok(Settings {
            files,
            otel_files,
            alert_files,
            notifier_files,
            destinations,
            current: RwLock::new(current),
        })
    }

    /// Where destinations may point.
    pub fn destinations(&self) -> &DestinationPolicy {
        &self.destinations
    }

    pub fn get(&self, environment: &str) -> Option<Arc<EnvSettings>> {
        self.current
            .read()
            .expect("settings lock")
            .get(environment)
            .cloned()
    }

    /// Where `environment`'s spans (and logs) are exported, when it has an OTel collector now.
    pub fn otel(&self, environment: &str) -> Option<Arc<OtelTarget>> {
        self.get(environment)?.otel.target.clone()
    }

    /// What the config file sets for `environment`'s webhooks.
    pub fn file(&self, environment: &str) -> WebhooksConfig {
        self.files.get(environment).cloned().unwrap_or_default()
    }

    /// What the config file sets of `environment`'s notifiers.
    pub fn notifiers_file(&self, environment: &str) -> Notifiers {
        self.notifier_files
            .get(environment)
            .cloned()
            .unwrap_or_default()
    }

    /// The config file's alert rules of `environment`, when it sets them.
    pub fn alerts_file(&self, environment: &str) -> Option<&Vec<AlertRule>> {
        self.alert_files.get(environment)
    }

    /// Every configured environment, in name order.
    pub fn environments(&self) -> Vec<String> {
        self.current
            .read()
            .expect("settings lock")
            .keys()
            .cloned()
            .collect()
    }

    /// The config file's otel table of `environment`, when it has one.
    pub fn otel_file(&self, environment: &str) -> Option<&OtelConfig> {
        self.otel_files.get(environment)
    }

    /// The environment whose ingress token this is. Compares digests in constant time.
    pub fn environment_of_ingress_token(&self, token: &str) -> Option<String> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (name, env) in self.current.read().expect("settings lock").iter() {
            let known: [u8; 32] = Sha256::digest(env.ingress_token.as_bytes()).into();
            if bool::from(known.ct_eq(&presented)) {
                found = Some(name.clone());
            }
        }
        found
    }

    /// Installs committed settings. Only the writer thread calls this, after its commit.
    pub(crate) fn replace(&self, settings: EnvSettings) {
        self.current
            .write()
            .expect("settings lock")
            .insert(settings.environment.clone(), Arc::new(settings));
    }
}

/// A destination stored through the API before the config refused its range still stays set;
/// each attempt to it fails with the rule. Say so once at start.
fn warn_refused_destinations(settings: &EnvSettings, policy: &DestinationPolicy) {
    let urls = [
        ("webhooks.url", settings.webhooks.url.as_deref()),
        (
            "webhooks.secondary_url",
            settings.webhooks.secondary_url.as_deref(),
        ),
        (
            "otel.endpoint",
            Some(settings.otel.config.endpoint.as_str()).filter(|e| !e.is_empty()),
        ),
        (
            "notifiers.slack.url",
            settings
                .notifiers
                .current
                .slack
                .as_ref()
                .map(|s| s.url.as_str()),
        ),
        (
            "notifiers.pagerduty.url",
            settings
                .notifiers
                .current
                .pagerduty
                .as_ref()
                .map(|p| p.events_url()),
        ),
    ];
    for (field, url) in urls {
        if let Some(Err(refused)) = url.map(|url| policy.check_url(url)) {
            tracing::warn!(
                environment = %settings.environment,
                field,
                reason = %refused,
                "a stored destination is refused by the config; its deliveries will fail until it is changed"
            );
        }
    }
}

/// The effective settings: the file's values over the stored ones over the defaults.
pub fn effective(
    environment: &str,
    file: &WebhooksConfig,
    stored: &StoredWebhooks,
    otel: OtelSettings,
    ingress: &StoredIngress,
    alerts: AlertSettings,
) -> EnvSettings {
    let mut read_only = BTreeSet::new();
    let mut pick = |name: &'static str, from_file: bool| {
        if from_file {
            read_only.insert(name);
        }
    };
    pick("url", file.url.is_some());
    pick("secondary_url", file.secondary_url.is_some());
    pick("events", file.events.is_some());
    pick("timeout", file.timeout.is_some());
    pick("retry_schedule", file.retry_schedule.is_some());
    pick("allow_insecure_http", file.allow_insecure_http.is_some());
    pick("secret", file.secret.is_some());
    pick("format", file.format.is_some());
    pick("secondary_format", file.secondary_format.is_some());
    pick("toggles", file.toggles.is_some());
    pick("routes", file.routes.is_some());
    let mut events: Vec<EventType> = file
        .events
        .clone()
        .or_else(|| stored.events.clone())
        .unwrap_or_else(|| EventType::ALL.to_vec());
    events.sort();
    events.dedup();
    let webhooks = WebhookSettings {
        url: file.url.clone().or_else(|| stored.url.clone()),
        secondary_url: file
            .secondary_url
            .clone()
            .or_else(|| stored.secondary_url.clone()),
        events,
        timeout: file
            .timeout
            .map(|d| d.0)
            .or(stored.timeout_ms.map(Duration::from_millis))
            .unwrap_or(DEFAULT_TIMEOUT),
        retry_schedule: file
            .retry_schedule
            .as_ref()
            .map(|s| s.iter().map(|d| d.0).collect())
            .or_else(|| {
                stored
                    .retry_schedule_ms
                    .as_ref()
                    .map(|s| s.iter().map(|ms| Duration::from_millis(*ms)).collect())
            })
            .unwrap_or_else(default_schedule),
        allow_insecure_http: file
            .allow_insecure_http
            .or(stored.allow_insecure_http)
            .unwrap_or(false),
        secret: file
            .secret
            .clone()
            .or_else(|| stored.secret.clone())
            .unwrap_or_default(),
        previous_secret: if file.secret.is_some() {
            None
        } else {
            stored.previous_secret.clone()
        },
        rotation_grace: file
            .rotation_grace
            .map(|d| d.0)
            .unwrap_or(DEFAULT_ROTATION_GRACE),
        format: file.format.or(stored.format).unwrap_or_default(),
        secondary_format: file
            .secondary_format
            .or(stored.secondary_format)
            .unwrap_or_default(),
        toggles: file.toggles.or(stored.toggles).unwrap_or_default(),
        routes: file
            .routes
            .clone()
            .or_else(|| stored.routes.clone())
            .unwrap_or_default(),
        read_only,
    };
    EnvSettings {
        environment: environment.to_owned(),
        webhooks,
        otel,
        ingress_token: ingress.token.clone(),
        alerts,
        views: Vec::new(),
        notifiers: NotifierSettings::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::mask;

    fn update(json: &str) -> WebhooksUpdate {
        serde_json::from_str(json).unwrap()
    }

    fn no_otel() -> OtelSettings {
        OtelSettings::new("prod", None, &StoredOtel::default())
    }

    fn otel_update(json: &str) -> OtelUpdate {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn otel_updates_merge_keep_masked_secrets_and_name_the_bad_field() {
        let stored = StoredOtel {
            endpoint: Some("https://otlp.example.com".into()),
            headers: [("x-api-key".to_owned(), "secret-key-0123456789".to_owned())].into(),
            ..StoredOtel::default()
        };
        let shown = mask("secret-key-0123456789");
        let next = apply_otel_update(
            None,
            &stored,
            otel_update(&format!(
                r#"{{"headers":{{"x-api-key":"{shown}","x-team":"blue"}},"logs":true,"read_only":[]}}"#
            )), &DestinationPolicy::default()
        )
        .unwrap();
        assert_eq!(next.headers["x-api-key"], "secret-key-0123456789", "kept");
        assert_eq!(next.headers["x-team"], "blue");
        assert!(next.logs);
        assert_eq!(next.endpoint, stored.endpoint, "absent: unchanged");

        let off = apply_otel_update(
            None,
            &next,
            otel_update(r#"{"endpoint":null}"#),
            &DestinationPolicy::default(),
        )
        .unwrap();
        assert_eq!(off.endpoint, None);
        assert!(OtelSettings::new("prod", None, &off).target.is_none());
        assert!(OtelSettings::new("prod", None, &next).target.is_some());

        for (json, field) in [
            (r#"{"endpoint":"ftp://x"}"#, "otel.endpoint"),
            (
                r#"{"headers":{"content-type":"x"}}"#,
                "otel.headers.content-type",
            ),
            (
                r#"{"max_events_per_span":5000}"#,
                "otel.max_events_per_span",
            ),
            (r#"{"service_name":" "}"#, "otel.service_name"),
            (r#"{"service_name":""}"#, "otel.service_name"),
        ] {
            let err = apply_otel_update(
                None,
                &stored,
                otel_update(json),
                &DestinationPolicy::default(),
            )
            .unwrap_err();
            assert_eq!(err.field(), field, "{json}");
        }
        // A timeout out of range does not even parse (the API names the field from the parser).
        let err = serde_json::from_str::<OtelUpdate>(r#"{"timeout":"1h"}"#).unwrap_err();
        assert!(err.to_string().contains("from 1ms to 5m"), "{err}");

        let file = OtelConfig::with_endpoint("http://127.0.0.1:4318");
        let err = apply_otel_update(
            Some(&file),
            &stored,
            otel_update(r#"{"logs":true}"#),
            &DestinationPolicy::default(),
        );
        assert_eq!(
            err.unwrap_err(),
            SettingsError::ReadOnly {
                field: "otel.logs".into()
            }
        );
        assert!(apply_otel_update(
            Some(&file),
            &stored,
            otel_update("{}"),
            &DestinationPolicy::default()
        )
        .is_ok());
    }

    #[test]
    fn otel_view_masks_headers_and_lists_file_fields_as_read_only() {
        let mut file = OtelConfig::with_endpoint("http://127.0.0.1:4318");
        file.headers
            .insert("x-api-key".into(), "file-secret-0123456789".into());
        let otel = OtelSettings::new("prod", Some(&file), &StoredOtel::default());
        let view = serde_json::to_value(OtelView::new(&otel)).unwrap();
        assert_eq!(view["headers"]["x-api-key"], mask("file-secret-0123456789"));
        assert_eq!(view["endpoint"], "http://127.0.0.1:4318");
        assert_eq!(
            view["read_only"].as_array().unwrap().len(),
            OTEL_FIELDS.len()
        );
        let view = serde_json::to_value(OtelView::new(&no_otel())).unwrap();
        assert_eq!(
            view,
            serde_json::json!({
                "endpoint": null, "headers": {}, "service_name": "opslog",
                "resource_attributes": {}, "max_events_per_span": 128, "timeout": "10s", "trace_url": null,
                "logs": false, "names": "opslog", "read_only": []
            })
        );
    }

    #[test]
    fn urls_are_checked_with_a_reason() {
        assert!(check_url("https://backend.example.com/hooks", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/x", false).is_ok());
        assert!(check_url("http://localhost/x", false).is_ok());
        assert!(check_url("http://[::1]:80/x", false).is_ok());
        let err = check_url("http://backend.example.com/x", false).unwrap_err();
        assert!(err.contains("allow_insecure_http"), "{err}");
        assert!(check_url("http://backend.example.com/x", true).is_ok());
        assert!(check_url("/relative", false)
            .unwrap_err()
            .contains("absolute"));
        assert!(check_url("ftp://x.example.com/", false)
            .unwrap_err()
            .contains("ftp"));
        assert!(check_url("https://u:p@x.example.com/", false)
            .unwrap_err()
            .contains("credentials"));
        assert!(check_url("not a url", false)
            .unwrap_err()
            .contains("not a valid URL"));
    }

    #[test]
    fn secrets_are_whsec_base64_or_a_nango_key() {
        let secret = generate_secret();
        assert!(check_secret(&secret).is_ok(), "{secret}");
        assert!(check_secret("3f1c9a52-7d1e-4b7a-9f0e-2c4d6b8a1e37").is_ok());
        assert!(check_secret("short").unwrap_err().contains("whsec_"));
        assert!(check_secret("has a space in it, too long anyway")
            .unwrap_err()
            .contains("Nango signing key"));
        assert!(check_secret("whsec_!!!").unwrap_err().contains("base64"));
        assert!(check_secret("whsec_YWJj").unwrap_err().contains("3 bytes"));
    }

    #[test]
    fn updates_merge_reset_and_respect_the_file() {
        let file = WebhooksConfig {
            timeout: Some(HumanDuration(Duration::from_secs(3))),
            ..Default::default()
        };
        let stored = StoredWebhooks {
            secondary_url: Some("https://two.example.com".into()),
            ..Default::default()
        };
        let next = apply_update(
            &file,
            &stored,
            update(r#"{"url":"https://one.example.com/h","secondary_url":null,"events":["sync.completed"]}"#), &DestinationPolicy::default()
        )
        .unwrap();
        assert_eq!(next.url.as_deref(), Some("https://one.example.com/h"));
        assert_eq!(next.secondary_url, None, "null resets");
        assert_eq!(next.events, Some(vec![EventType::SyncCompleted]));

        let err = apply_update(
            &file,
            &stored,
            update(r#"{"timeout":"9s"}"#),
            &DestinationPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            SettingsError::ReadOnly {
                field: "webhooks.timeout".into()
            }
        );
        let err = apply_update(
            &file,
            &stored,
            update(r#"{"url":"http://example.com"}"#),
            &DestinationPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(err.field(), "webhooks.url");
        let ok = apply_update(
            &file,
            &stored,
            update(r#"{"url":"http://example.com","allow_insecure_http":true}"#),
            &DestinationPolicy::default(),
        );
        assert!(ok.is_ok(), "{ok:?}");
        let err = apply_update(
            &file,
            &stored,
            update(r#"{"retry_schedule":[]}"#),
            &DestinationPolicy::default(),
        )
        .unwrap_err();
        assert_eq!(err.field(), "webhooks.retry_schedule");
        let err = apply_update(
            &file,
            &stored,
            update(r#"{"secret":"whsec_x"}"#),
            &DestinationPolicy::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("rotate"), "{err}");
    }

    #[test]
    fn file_values_win_and_rotation_keeps_the_old_secret_for_a_while() {
        let file = WebhooksConfig {
            url: Some("https://file.example.com".into()),
            ..Default::default()
        };
        let stored = StoredWebhooks {
            url: Some("https://api.example.com".into()),
            secret: Some("whsec_old".into()),
            ..Default::default()
        };
        let ingress = StoredIngress {
            token: "hook_x".into(),
        };
        let now = Timestamp(1_000_000);
        let rotated = rotate_secret(
            &file,
            &stored,
            now,
            Duration::from_secs(60),
            "whsec_new".into(),
        )
        .unwrap();
        let env = effective(
            "prod",
            &file,
            &rotated,
            no_otel(),
            &ingress,
            AlertSettings::default(),
        );
        assert_eq!(
            env.webhooks.url.as_deref(),
            Some("https://file.example.com")
        );
        assert!(env.webhooks.read_only.contains("url"));
        assert_eq!(env.webhooks.events, EventType::ALL.to_vec());
        assert_eq!(env.webhooks.retry_schedule.len(), 8);
        assert_eq!(
            env.webhooks.signing_secrets(now),
            vec!["whsec_new", "whsec_old"]
        );
        assert_eq!(
            env.webhooks.signing_secrets(now.plus_millis(60_000)),
            vec!["whsec_new"]
        );
        let file_secret = WebhooksConfig {
            secret: Some(generate_secret()),
            ..Default::default()
        };
        assert!(matches!(
            rotate_secret(&file_secret, &stored, now, Duration::ZERO, "x".into()),
            Err(SettingsError::ReadOnly { .. })
        ));
    }

    #[test]
    fn view_masks_the_secret() {
        let stored = StoredWebhooks {
            secret: Some("whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0".into()),
            ..Default::default()
        };
        let env = effective(
            "prod",
            &WebhooksConfig::default(),
            &stored,
            no_otel(),
            &StoredIngress {
                token: "hook_abc".into(),
            },
            AlertSettings::default(),
        );
        let json = serde_json::to_string(&SettingsView::new(&env, Timestamp(0))).unwrap();
        assert!(!json.contains("c2VjcmV0LXNl"), "{json}");
        assert!(json.contains(r#""timeout":"15s""#), "{json}");
        assert!(
            json.contains(r#""path":"/v1/hooks/hook_abc/{integration}""#),
            "{json}"
        );
    }
}
