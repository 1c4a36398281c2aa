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
use super::{ApiDuration, Timestamp};

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
        self == Signal::ActionErrors
    }
}

/// One rule, as the config file, `PUT /settings` and `GET /settings` write it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub signal: Signal,
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
}

impl AlertRule {
    /// What identifies a rule's state: one rule per signal and integration, so changing the
    /// threshold or window keeps whether it is firing.
    pub fn key(&self) -> String {
        match &self.integration {
            Some(i) => format!("{}/{i}", self.signal.as_str()),
            None => self.signal.as_str().to_owned(),
        }
    }

    pub fn window_ms(&self) -> i64 {
        self.window.0.as_millis() as i64
    }
}

/// A rule as stored in redb (the `alerts` settings section).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredRule {
    /// `Signal::as_str`, so a signal added later never renumbers stored ones.
    pub signal: String,
    pub integration: Option<String>,
    pub above: u64,
    pub window_ms: u64,
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
                    signal: r.signal.as_str().to_owned(),
                    integration: r.integration.clone(),
                    above: r.above,
                    window_ms: r.window.0.as_millis() as u64,
                })
                .collect(),
        }
    }

    /// The rules; a stored rule this binary cannot read (an unknown signal) is left out, with a
    /// log line.
    pub fn rules(&self, environment: &str) -> Vec<AlertRule> {
        self.rules
            .iter()
            .filter_map(|r| {
                let signal = Signal::parse(&r.signal);
                if signal.is_none() {
                    tracing::warn!(environment, signal = %r.signal, "stored alert rule has an unknown signal; ignored");
                }
                Some(AlertRule {
                    signal: signal?,
                    integration: r.integration.clone(),
                    above: r.above,
                    window: ApiDuration(Duration::from_millis(r.window_ms)),
                })
            })
            .collect()
    }
}

/// Checks a rule list; `field` prefixes problem paths (`alerts`, `environments.prod.alerts`).
pub fn check_rules(field: &str, rules: &[AlertRule]) -> Result<(), SettingsError> {
    if rules.len() > MAX_RULES {
        return Err(SettingsError::Invalid {
            field: field.to_owned(),
            message: format!("has {} rules; at most {MAX_RULES} are allowed", rules.len()),
        });
    }
    let mut keys = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        if rule.above > MAX_ABOVE {
            return Err(SettingsError::Invalid {
                field: format!("{field}[{i}].above"),
                message: format!("{} is more than {MAX_ABOVE}", rule.above),
            });
        }
        if let Some(integration) = &rule.integration {
            if integration.is_empty() || integration.chars().count() > 256 {
                return Err(SettingsError::Invalid {
                    field: format!("{field}[{i}].integration"),
                    message: "must be 1-256 characters (leave it out for every integration)".into(),
                });
            }
        }
        if !keys.insert(rule.key()) {
            return Err(SettingsError::Invalid {
                field: format!("{field}[{i}]"),
                message: format!(
                    "repeats signal `{}`{}; one rule per signal and integration",
                    rule.signal.as_str(),
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
    pub count: u64,
    pub from: Timestamp,
    pub to: Timestamp,
    /// The dashboard page listing what was counted.
    pub link: String,
}
