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

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use crate::model::alert::{
    check_rules, transition, AlertRule, AlertState, AlertWindow, Observation, Signal, StoredAlerts,
    StoredRule, Transition, MAX_ABOVE, MAX_RULES,
};

use crate::index::{Filters, Page, SearchIndex, TypeFilter};
use crate::model::{Level, MessageType, OpState, OpType, Timestamp};
use crate::settings::Settings;
use crate::write::{ObserveAlerts, Writer};

/// The search that finds what a signal counts (the Signals cards, alert rules).
impl Signal {
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

/// The search of `signal` (for `integration`) over `from..to`, by when operations started (a
/// message by its own time), as insights bucket them: history sent or imported late counts where
/// it happened, not as a spike when it arrived.
pub fn window_filters(
    signal: Signal,
    integration: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Filters {
    let mut filters = signal.filters();
    filters.integrations.extend(integration.map(str::to_owned));
    filters.from = Some(from);
    filters.to = Some(to);
    filters.by_start = true;
    filters
}

/// How many records `signal` (for `integration`) counts in `from..to` ([`window_filters`]).
pub fn count(
    index: &SearchIndex,
    environment: &str,
    signal: Signal,
    integration: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Result<u64, crate::index::IndexError> {
    let filters = window_filters(signal, integration, from, to);
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
            let command = ObserveAlerts {
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
