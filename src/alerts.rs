//! Alert rules: "signal S (optionally for integration I) above N in window W", per environment,
//! and the pure decision of when a rule fires (`alert.triggered`) and resolves (`alert.resolved`).
//!
//! The four signals are the dashboard's Signals cards; each is a fixed search (type, state, level),
//! so a rule's count is one index count over its window. The evaluator (`evaluate`, run by the
//! daemon every `[alerts] every`) counts each rule off the writer thread, then hands the counts to
//! the writer, which decides with `transition` against the rule's state stored in redb and queues
//! the events in the same commit as the new state: an event is queued exactly once per crossing,
//! across restarts and crashes.
//!
//! Cost: at most `MAX_RULES` rules per environment, one count query per rule per evaluation, and
//! a window of at most 24h, so the work per minute does not grow with the data kept, only with
//! what one window holds.
//!
//! Must not: write to the store (the writer does), or send anything itself (the outbox does).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::ApiDuration;
use crate::index::{Filters, Page, SearchIndex, TypeFilter};
use crate::ingest::writer::{Command, Writer};
use crate::model::{Level, MessageType, OpState, OpType, Timestamp};
use crate::settings::{Settings, SettingsError};

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

    /// The search that finds what the signal counts.
    pub fn filters(self) -> Filters {
        let failed = vec![OpState::Failed, OpState::Timeout];
        let kind = |kind, action: Option<&str>| TypeFilter {
            kind,
            action: action.map(str::to_owned),
        };
        match self {
            Signal::SyncFailures => Filters {
                types: vec![kind(OpType::Sync, None)],
                states: failed,
                ..Filters::default()
            },
            Signal::ActionErrors => Filters {
                types: vec![kind(OpType::Action, None)],
                levels: vec![Level::Error],
                message_types: vec![MessageType::Http],
                ..Filters::default()
            },
            Signal::AuthFailures => Filters {
                types: vec![kind(OpType::Auth, None)],
                states: failed,
                ..Filters::default()
            },
            Signal::WebhookFailures => Filters {
                types: vec![kind(OpType::Webhook, Some("incoming"))],
                states: failed,
                ..Filters::default()
            },
        }
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

/// The dashboard page that lists what `rule` counts over `from..to`.
pub fn dashboard_link(
    dashboard_url: &str,
    environment: &str,
    rule: &AlertRule,
    from: Timestamp,
    to: Timestamp,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("env", environment)
        .append_pair("page", "signals")
        .append_pair("signal", rule.signal.as_str())
        .append_pair("from", &from.to_string())
        .append_pair("to", &to.to_string());
    if let Some(integration) = &rule.integration {
        query.append_pair("integration", integration);
    }
    format!("{dashboard_url}?{}", query.finish())
}

/// How many records `signal` (for `integration`) counts in `from..to`.
pub fn count(
    index: &SearchIndex,
    environment: &str,
    signal: Signal,
    integration: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Result<u64, crate::index::IndexError> {
    let mut filters = signal.filters();
    filters.integrations.extend(integration.map(str::to_owned));
    filters.from = Some(from);
    filters.to = Some(to);
    let page = Page {
        limit: 1,
        ascending: false,
        bound: None,
    };
    let hits = if signal.counts_messages() {
        index.messages(environment, &filters, None, page)?
    } else {
        index.operations(environment, &filters, None, page)?
    };
    Ok(hits.total)
}

/// Counts every rule of every environment and hands the counts to the writer; called every
/// `every` until `stop`. A failed evaluation is logged and tried again at the next tick.
pub async fn evaluate(
    index: Arc<SearchIndex>,
    settings: Arc<Settings>,
    writer: Writer,
    dashboard_url: String,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        for environment in settings.environments() {
            let Some(env_settings) = settings.get(&environment) else {
                continue;
            };
            let rules = env_settings.alerts.rules.clone();
            if rules.is_empty() {
                continue;
            }
            let (index, dashboard_url, env) =
                (index.clone(), dashboard_url.clone(), environment.clone());
            let counted = tokio::task::spawn_blocking(move || {
                let to = Timestamp::now();
                rules
                    .into_iter()
                    .map(|rule| {
                        let from = to.plus_millis(-rule.window_ms());
                        let count = count(
                            &index,
                            &env,
                            rule.signal,
                            rule.integration.as_deref(),
                            from,
                            to,
                        )?;
                        let link = dashboard_link(&dashboard_url, &env, &rule, from, to);
                        Ok(Observation {
                            rule,
                            count,
                            from,
                            to,
                            link,
                        })
                    })
                    .collect::<Result<Vec<_>, crate::index::IndexError>>()
            })
            .await;
            let observations = match counted {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    tracing::warn!(environment, error = %e, "alert rules not evaluated");
                    continue;
                }
                Err(e) => {
                    tracing::error!(environment, error = %e, "alert evaluation panicked");
                    continue;
                }
            };
            let command = Command::ObserveAlerts {
                environment: environment.clone(),
                observations,
            };
            if let Err(e) = writer.submit(command).await {
                tracing::warn!(environment, error = %e, "alert states not recorded");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(signal: Signal, integration: Option<&str>) -> AlertRule {
        AlertRule {
            signal,
            integration: integration.map(str::to_owned),
            above: 3,
            window: AlertWindow::parse("15m").unwrap(),
        }
    }

    #[test]
    fn fires_once_above_and_resolves_once_at_or_under() {
        assert_eq!(
            transition(false, 3, 3),
            None,
            "at the threshold is not above"
        );
        assert_eq!(transition(false, 4, 3), Some(Transition::Triggered));
        assert_eq!(transition(true, 9, 3), None, "already firing");
        assert_eq!(transition(true, 3, 3), Some(Transition::Resolved));
        assert_eq!(transition(false, 0, 3), None);
    }

    #[test]
    fn rules_are_checked_and_round_trip_through_storage() {
        let rules = vec![
            rule(Signal::SyncFailures, None),
            rule(Signal::SyncFailures, Some("github")),
        ];
        check_rules("alerts", &rules).unwrap();
        assert_eq!(StoredAlerts::from_rules(&rules).rules("prod"), rules);
        let twice = vec![
            rule(Signal::AuthFailures, Some("x")),
            rule(Signal::AuthFailures, Some("x")),
        ];
        assert_eq!(
            check_rules("alerts", &twice).unwrap_err().field(),
            "alerts[1]"
        );
        let mut huge = rule(Signal::AuthFailures, None);
        huge.above = MAX_ABOVE + 1;
        assert_eq!(
            check_rules("alerts", &[huge]).unwrap_err().field(),
            "alerts[0].above"
        );
        let empty = vec![rule(Signal::AuthFailures, Some(""))];
        assert_eq!(
            check_rules("alerts", &empty).unwrap_err().field(),
            "alerts[0].integration"
        );
        let many: Vec<AlertRule> = (0..=MAX_RULES)
            .map(|i| rule(Signal::SyncFailures, Some(&format!("i{i}"))))
            .collect();
        assert!(check_rules("alerts", &many).is_err());
        let unknown = StoredAlerts {
            rules: vec![StoredRule {
                signal: "later".into(),
                integration: None,
                above: 1,
                window_ms: 60_000,
            }],
        };
        assert!(unknown.rules("prod").is_empty());
    }

    #[test]
    fn rules_read_from_json_and_toml_alike() {
        let json: AlertRule = serde_json::from_str(
            r#"{"signal":"sync_failures","integration":"github","above":5,"window":"15m"}"#,
        )
        .unwrap();
        let toml: AlertRule = toml::from_str(
            "signal = \"sync_failures\"\nintegration = \"github\"\nabove = 5\nwindow = \"15m\"\n",
        )
        .unwrap();
        assert_eq!(json, toml);
        assert_eq!(json.key(), "sync_failures/github");
        assert!(
            serde_json::from_str::<AlertRule>(r#"{"signal":"x","above":1,"window":"1m"}"#).is_err()
        );
        assert!(serde_json::from_str::<AlertRule>(
            r#"{"signal":"sync_failures","above":1,"window":"30s"}"#
        )
        .is_err());
    }

    #[test]
    fn links_open_the_signal_over_the_window() {
        let link = dashboard_link(
            "http://localhost:7400/",
            "prod",
            &rule(Signal::SyncFailures, Some("git hub")),
            Timestamp(0),
            Timestamp(60_000),
        );
        assert_eq!(
            link,
            "http://localhost:7400/?env=prod&page=signals&signal=sync_failures&from=1970-01-01T00%3A00%3A00.000Z&to=1970-01-01T00%3A01%3A00.000Z&integration=git+hub"
        );
    }
}
