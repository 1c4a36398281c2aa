//! Alert rules as the config file, the API and redb hold them, the state of each rule, and the
//! pure decision of when a rule fires and resolves (`transition`). Counting and evaluating is
//! `alerts`'; the writer applies `transition` against the stored state.
//!
//! Must not: depend on anything above `model`.

use std::collections::BTreeSet;
use std::time::Duration;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::settings::SettingsError;
use super::view::{counted, View, ViewQuery};
use super::{ApiDuration, Level, MessageType, OpState, Timestamp};

/// The most rules one environment may have.
pub const MAX_RULES: usize = 20;
/// The largest threshold.
pub const MAX_ABOVE: u64 = 1_000_000_000;
/// A rule's window: 1m to 24h.
pub type AlertWindow = ApiDuration<60_000, 86_400_000>;

/// What a rule counts: one of the dashboard's signals.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Failed or timed-out sync runs (operations).
    SyncFailures,
    /// Error-level http messages of actions: 4xx/5xx answers of external APIs (messages).
    ActionErrors,
    /// Failed or timed-out auth operations (connections, token refreshes).
    AuthFailures,
    /// Incoming webhooks whose processing failed or timed out (operations).
    WebhookFailures,
}

impl Signal {
    pub const ALL: [Signal; 4] = [
        Signal::SyncFailures,
        Signal::ActionErrors,
        Signal::AuthFailures,
        Signal::WebhookFailures,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::SyncFailures => "sync_failures",
            Signal::ActionErrors => "action_errors",
            Signal::AuthFailures => "auth_failures",
            Signal::WebhookFailures => "webhook_failures",
        }
    }

    pub fn parse(text: &str) -> Option<Signal> {
        Signal::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What people call it (the dashboard card's title).
    pub fn title(self) -> &'static str {
        match self {
            Signal::SyncFailures => "Sync health",
            Signal::ActionErrors => "Action errors",
            Signal::AuthFailures => "Connection status",
            Signal::WebhookFailures => "Webhook processing",
        }
    }

    /// Whether the signal counts messages (else operations).
    pub fn counts_messages(self) -> bool {
        self.query().counts_messages()
    }

    /// The search that finds what the signal counts: its built-in view's query.
    pub fn query(self) -> ViewQuery {
        let failed = vec![OpState::Failed, OpState::Timeout];
        let of_type = |t: &str| vec![t.to_owned()];
        match self {
            Signal::SyncFailures => ViewQuery {
                types: of_type("sync"),
                states: failed,
                ..ViewQuery::default()
            },
            Signal::ActionErrors => ViewQuery {
                types: of_type("action"),
                levels: vec![Level::Error],
                message_types: vec![MessageType::Http],
                ..ViewQuery::default()
            },
            Signal::AuthFailures => ViewQuery {
                types: of_type("auth"),
                states: failed,
                ..ViewQuery::default()
            },
            Signal::WebhookFailures => ViewQuery {
                types: of_type("webhook:incoming"),
                states: failed,
                ..ViewQuery::default()
            },
        }
    }

    /// The signal as a built-in view (id: the signal's name).
    pub fn view(self) -> View {
        let query = self.query();
        View {
            id: self.as_str().to_owned(),
            name: self.title().to_owned(),
            builtin: true,
            counts: counted(&query),
            query,
            created_at: None,
            updated_at: None,
        }
    }
}

/// The built-in views: the four signals, in their order.
pub fn builtin_views() -> Vec<View> {
    Signal::ALL.into_iter().map(Signal::view).collect()
}

/// Where a rule's notifications go: the environment's signed webhook URLs (today's `alert.*`
/// events), or one of its notifiers (`notifiers` of the config file and `PUT /settings`).
/// The declaration order is not stored (rules store the names).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Notifier {
    /// The `alert.triggered` / `alert.resolved` webhook event, signed, to the webhook URLs.
    Webhook,
    /// A message to a Slack incoming webhook.
    Slack,
    /// A PagerDuty Events API v2 event: `trigger` on firing, `resolve` on resolving.
    Pagerduty,
    /// An email over SMTP.
    Email,
}

impl Notifier {
    pub const ALL: [Notifier; 4] = [
        Notifier::Webhook,
        Notifier::Slack,
        Notifier::Pagerduty,
        Notifier::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Notifier::Webhook => "webhook",
            Notifier::Slack => "slack",
            Notifier::Pagerduty => "pagerduty",
            Notifier::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Notifier> {
        Notifier::ALL.into_iter().find(|n| n.as_str() == text)
    }
}

fn default_notify() -> Vec<Notifier> {
    vec![Notifier::Webhook]
}

fn is_default_notify(notify: &[Notifier]) -> bool {
    notify == [Notifier::Webhook]
}

/// One rule, as the config file, `PUT /settings` and `GET /settings` write it: what it counts
/// (a `signal`, or any saved or built-in `view`), over which window, above which threshold, and
/// whom it tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// One of the four signals (the same as `view` naming its built-in view).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// The id of a view of the environment (saved or built-in): the rule counts what the view's
    /// query counts over `window`. Give `signal` or `view`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub view: Option<String>,
    /// Count only this integration's; absent: every integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256)]
    pub integration: Option<String>,
    /// Fires when the count over `window` is above this (at most 1,000,000,000).
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "crate::model::whole")]
    pub above: u64,
    /// How far back the count looks, 1m to 24h (`"15m"`).
    pub window: AlertWindow,
    /// Where firing and resolving are told (default `["webhook"]`); each other notifier must be
    /// set up under `notifiers`.
    #[serde(default = "default_notify", skip_serializing_if = "is_default_notify")]
    #[schema(min_items = 1, max_items = 4)]
    pub notify: Vec<Notifier>,
}

impl AlertRule {
    /// The id of the view the rule counts: its `view`, or its signal's built-in view.
    pub fn view_id(&self) -> &str {
        match (&self.view, self.signal) {
            (Some(view), _) => view,
            (None, Some(signal)) => signal.as_str(),
            (None, None) => "",
        }
    }

    /// What identifies a rule's state: one rule per view and integration, so changing the
    /// threshold, window or notifiers keeps whether it is firing (and a signal rule and a rule
    /// on its built-in view are the same rule).
    pub fn key(&self) -> String {
        match &self.integration {
            Some(i) => format!("{}/{i}", self.view_id()),
            None => self.view_id().to_owned(),
        }
    }

    pub fn window_ms(&self) -> i64 {
        self.window.0.as_millis() as i64
    }

    /// Whether the rule tells `notifier`.
    pub fn notifies(&self, notifier: Notifier) -> bool {
        self.notify.contains(&notifier)
    }
}

/// A rule as stored in redb (the `alerts` settings section).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredRule {
    /// `Signal::as_str`, so a signal added later never renumbers stored ones.
    pub signal: Option<String>,
    pub view: Option<String>,
    pub integration: Option<String>,
    pub above: u64,
    pub window_ms: u64,
    /// `Notifier::as_str` of each.
    pub notify: Vec<String>,
}

/// The `alerts` settings section as stored: the rules set through the API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct StoredAlerts {
    pub rules: Vec<StoredRule>,
}

impl StoredAlerts {
    pub fn from_rules(rules: &[AlertRule]) -> StoredAlerts {
        StoredAlerts {
            rules: rules
                .iter()
                .map(|r| StoredRule {
                    signal: r.signal.map(|s| s.as_str().to_owned()),
                    view: r.view.clone(),
                    integration: r.integration.clone(),
                    above: r.above,
                    window_ms: r.window.0.as_millis() as u64,
                    notify: r.notify.iter().map(|n| n.as_str().to_owned()).collect(),
                })
                .collect(),
        }
    }

    /// Whether every rule is one the first release of alerts could store: a signal rule that
    /// notifies the webhooks only (such a section keeps that release's record version).
    pub fn is_signal_webhooks_only(&self) -> bool {
        self.rules
            .iter()
            .all(|r| r.signal.is_some() && r.view.is_none() && r.notify == ["webhook"])
    }

    /// The rules; a stored rule this binary cannot read (an unknown signal or notifier) is left
    /// out, with a log line.
    pub fn rules(&self, environment: &str) -> Vec<AlertRule> {
        self.rules
            .iter()
            .filter_map(|r| {
                let signal = match &r.signal {
                    Some(name) => match Signal::parse(name) {
                        Some(signal) => Some(signal),
                        None => {
                            tracing::warn!(environment, signal = %name, "stored alert rule has an unknown signal; ignored");
                            return None;
                        }
                    },
                    None => None,
                };
                let mut notify = Vec::new();
                for name in &r.notify {
                    match Notifier::parse(name) {
                        Some(n) => notify.push(n),
                        None => {
                            tracing::warn!(environment, notifier = %name, "stored alert rule has an unknown notifier; ignored");
                            return None;
                        }
                    }
                }
                Some(AlertRule {
                    signal,
                    view: r.view.clone(),
                    integration: r.integration.clone(),
                    above: r.above,
                    window: ApiDuration(Duration::from_millis(r.window_ms)),
                    notify,
                })
            })
            .collect()
    }
}

/// Checks a rule list on its own (the views and notifiers it names are checked against the
/// environment by [`check_references`]); `field` prefixes problem paths (`alerts`,
/// `environments.prod.alerts`).
pub fn check_rules(field: &str, rules: &[AlertRule]) -> Result<(), SettingsError> {
    if rules.len() > MAX_RULES {
        return Err(SettingsError::Invalid {
            field: field.to_owned(),
            message: format!("has {} rules; at most {MAX_RULES} are allowed", rules.len()),
        });
    }
    let mut keys = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = |name: &str| format!("{field}[{i}]{name}");
        match (&rule.signal, &rule.view) {
            (Some(_), Some(_)) => return Err(SettingsError::invalid(
                &at(".view"),
                "give `signal` or `view`, not both (a signal is the built-in view of the same id)",
            )),
            (None, None) => {
                return Err(SettingsError::invalid(
                    &at(""),
                    "needs `signal` (one of the four signals) or `view` (the id of a view)",
                ))
            }
            (None, Some(view)) if !super::view::valid_id(view) => {
                return Err(SettingsError::invalid(
                    &at(".view"),
                    format!("`{view}` is not a view id (1-64 characters a-z, 0-9, '_' and '-')"),
                ))
            }
            _ => {}
        }
        if rule.above > MAX_ABOVE {
            return Err(SettingsError::Invalid {
                field: at(".above"),
                message: format!("{} is more than {MAX_ABOVE}", rule.above),
            });
        }
        if let Some(integration) = &rule.integration {
            if integration.is_empty() || integration.chars().count() > 256 {
                return Err(SettingsError::Invalid {
                    field: at(".integration"),
                    message: "must be 1-256 characters (leave it out for every integration)".into(),
                });
            }
        }
        if rule.notify.is_empty() {
            return Err(SettingsError::invalid(
                &at(".notify"),
                "names no notifier; leave it out for the webhooks, or list webhook, slack, pagerduty or email",
            ));
        }
        for (n, notifier) in rule.notify.iter().enumerate() {
            if rule.notify[..n].contains(notifier) {
                return Err(SettingsError::invalid(
                    &at(&format!(".notify[{n}]")),
                    format!("repeats `{}`", notifier.as_str()),
                ));
            }
        }
        if !keys.insert(rule.key()) {
            return Err(SettingsError::Invalid {
                field: at(""),
                message: format!(
                    "repeats view `{}`{}; one rule per view (or signal) and integration",
                    rule.view_id(),
                    rule.integration
                        .as_deref()
                        .map(|i| format!(" for integration `{i}`"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    Ok(())
}

/// Checks that every view a rule names exists (`view_exists`) and every notifier it tells is set
/// up (`configured`), naming the field of the first that is not.
pub fn check_references(
    field: &str,
    rules: &[AlertRule],
    view_exists: impl Fn(&str) -> bool,
    configured: impl Fn(Notifier) -> bool,
) -> Result<(), SettingsError> {
    for (i, rule) in rules.iter().enumerate() {
        if let Some(view) = &rule.view {
            if !view_exists(view) {
                return Err(SettingsError::invalid(
                    &format!("{field}[{i}].view"),
                    format!(
                        "names view `{view}`, which this environment does not have (GET /views lists them)"
                    ),
                ));
            }
        }
        for (n, notifier) in rule.notify.iter().enumerate() {
            if *notifier != Notifier::Webhook && !configured(*notifier) {
                return Err(SettingsError::invalid(
                    &format!("{field}[{i}].notify[{n}]"),
                    format!(
                        "is `{0}`, which is not set up for this environment; set `notifiers.{0}` first",
                        notifier.as_str()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Whether a rule is firing, as stored in redb under (environment, rule key).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AlertState {
    pub firing: bool,
    /// When it last started or stopped firing.
    pub since: Timestamp,
    /// The count that made it change.
    pub count: u64,
}

/// What a new count does to a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Triggered,
    Resolved,
}

/// The pure rule: above the threshold fires once, at or under it resolves once; anything else
/// changes nothing. `firing` is the stored state (`false` when there is none).
pub fn transition(firing: bool, count: u64, above: u64) -> Option<Transition> {
    match (firing, count > above) {
        (false, true) => Some(Transition::Triggered),
        (true, false) => Some(Transition::Resolved),
        _ => None,
    }
}

/// One rule's count over its window, on its way to the writer.
#[derive(Clone, Debug)]
pub struct Observation {
    pub rule: AlertRule,
    /// The name of the view counted (a signal's title for a signal rule).
    pub view_name: String,
    /// `operations` or `messages`.
    pub counts: &'static str,
    pub count: u64,
    pub from: Timestamp,
    pub to: Timestamp,
    /// The dashboard page listing what was counted.
    pub link: String,
    /// The integrations with the most of what was counted, most first (at most 5); taken only
    /// when the count is above the threshold.
    pub top_integrations: Vec<(String, u64)>,
}
