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
    check_references, check_rules, transition, AlertRule, AlertState, AlertWindow, Notifier,
    Observation, Signal, StoredAlerts, StoredRule, Transition, MAX_ABOVE, MAX_RULES,
};

use crate::index::{Filters, SearchIndex};
use crate::model::Timestamp;
use crate::settings::{EnvSettings, Settings};
use crate::views;
use crate::write::{ObserveAlerts, Writer};

/// The search that finds what a signal counts (the Signals cards, alert rules).
impl Signal {
    /// The search that finds what the signal counts: its built-in view's, without time.
    pub fn filters(self) -> Filters {
        views::search(&self.query()).0
    }
}

/// The dashboard page that lists what `rule` counts over `from..to`: the Signals page for a
/// signal rule, the Logs tab with the view's query for a rule on a view.
pub fn dashboard_link(
    dashboard_url: &str,
    environment: &str,
    rule: &AlertRule,
    query: &views::ViewQuery,
    from: Timestamp,
    to: Timestamp,
) -> String {
    let Some(signal) = rule.signal else {
        return views::dashboard_link(
            dashboard_url,
            environment,
            rule.view_id(),
            query,
            rule.integration.as_deref(),
            from,
            to,
        );
    };
    let mut url = form_urlencoded::Serializer::new(String::new());
    url.append_pair("env", environment)
        .append_pair("page", "signals")
        .append_pair("signal", signal.as_str())
        .append_pair("from", &from.to_string())
        .append_pair("to", &to.to_string());
    if let Some(integration) = &rule.integration {
        url.append_pair("integration", integration);
    }
    format!("{dashboard_url}?{}", url.finish())
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

/// How many records `signal` (for `integration`) counts in `from..to` (by start, as
/// [`window_filters`] and [`views::count`]).
pub fn count(
    index: &SearchIndex,
    environment: &str,
    signal: Signal,
    integration: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Result<u64, crate::index::IndexError> {
    views::count(index, environment, &signal.query(), integration, from, to)
}

/// Counts `rule` over the window ending `to`, with what a notification shows. `None` when the
/// view it names is gone (only a rule of the config file can name a view that was never saved).
fn observe(
    index: &SearchIndex,
    settings: &EnvSettings,
    dashboard_url: &str,
    rule: AlertRule,
    to: Timestamp,
) -> Result<Option<Observation>, crate::index::IndexError> {
    let environment = &settings.environment;
    let Some(view) = views::find(&settings.views, rule.view_id()) else {
        tracing::warn!(environment = %environment, rule = %rule.key(), "alert rule names a view that does not exist; not counted");
        return Ok(None);
    };
    let from = to.plus_millis(-rule.window_ms());
    let integration = rule.integration.as_deref();
    let count = views::count(index, environment, &view.query, integration, from, to)?;
    let top_integrations = match integration {
        _ if count <= rule.above => Vec::new(),
        Some(i) => vec![(i.to_owned(), count)],
        None => views::top_integrations(index, environment, &view.query, from, to)?,
    };
    let link = dashboard_link(dashboard_url, environment, &rule, &view.query, from, to);
    Ok(Some(Observation {
        view_name: view.name,
        counts: view.counts,
        rule,
        count,
        from,
        to,
        link,
        top_integrations,
    }))
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
            if env_settings.alerts.rules.is_empty() {
                continue;
            }
            let (index, dashboard_url) = (index.clone(), dashboard_url.clone());
            let counted = tokio::task::spawn_blocking(move || {
                let to = Timestamp::now();
                let mut observed = Vec::new();
                for rule in env_settings.alerts.rules.clone() {
                    observed.extend(observe(&index, &env_settings, &dashboard_url, rule, to)?);
                }
                Ok::<_, crate::index::IndexError>(observed)
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
            signal: Some(signal),
            view: None,
            integration: integration.map(str::to_owned),
            above: 3,
            window: AlertWindow::parse("15m").unwrap(),
            notify: vec![Notifier::Webhook],
        }
    }

    fn on_view(view: &str) -> AlertRule {
        AlertRule {
            signal: None,
            view: Some(view.to_owned()),
            ..rule(Signal::SyncFailures, None)
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
            AlertRule {
                notify: vec![Notifier::Slack, Notifier::Pagerduty],
                ..on_view("salesforce_auth")
            },
        ];
        check_rules("alerts", &rules).unwrap();
        let stored = StoredAlerts::from_rules(&rules);
        assert!(!stored.is_signal_webhooks_only());
        assert_eq!(stored.rules("prod"), rules);
        assert!(StoredAlerts::from_rules(&rules[..2]).is_signal_webhooks_only());
        let twice = vec![
            rule(Signal::AuthFailures, Some("x")),
            rule(Signal::AuthFailures, Some("x")),
        ];
        assert_eq!(
            check_rules("alerts", &twice).unwrap_err().field(),
            "alerts[1]"
        );
        let same = vec![rule(Signal::AuthFailures, None), on_view("auth_failures")];
        assert_eq!(
            check_rules("alerts", &same).unwrap_err().field(),
            "alerts[1]",
            "a signal is its built-in view"
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
        let both = AlertRule {
            view: Some("x".into()),
            ..rule(Signal::AuthFailures, None)
        };
        assert_eq!(
            check_rules("alerts", &[both]).unwrap_err().field(),
            "alerts[0].view"
        );
        let neither = AlertRule {
            signal: None,
            ..rule(Signal::AuthFailures, None)
        };
        assert_eq!(
            check_rules("alerts", &[neither]).unwrap_err().field(),
            "alerts[0]"
        );
        let bad_id = on_view("Not An Id");
        assert_eq!(
            check_rules("alerts", &[bad_id]).unwrap_err().field(),
            "alerts[0].view"
        );
        let repeated = AlertRule {
            notify: vec![Notifier::Email, Notifier::Email],
            ..on_view("x")
        };
        assert_eq!(
            check_rules("alerts", &[repeated]).unwrap_err().field(),
            "alerts[0].notify[1]"
        );
        let none = AlertRule {
            notify: vec![],
            ..on_view("x")
        };
        assert_eq!(
            check_rules("alerts", &[none]).unwrap_err().field(),
            "alerts[0].notify"
        );
        let many: Vec<AlertRule> = (0..=MAX_RULES)
            .map(|i| rule(Signal::SyncFailures, Some(&format!("i{i}"))))
            .collect();
        assert!(check_rules("alerts", &many).is_err());
        let unknown = StoredAlerts {
            rules: vec![StoredRule {
                signal: Some("later".into()),
                view: None,
                integration: None,
                above: 1,
                window_ms: 60_000,
                notify: vec!["webhook".into()],
            }],
        };
        assert!(unknown.rules("prod").is_empty());
    }

    #[test]
    fn references_name_the_missing_view_or_notifier() {
        let rules = vec![
            rule(Signal::SyncFailures, None),
            AlertRule {
                notify: vec![Notifier::Webhook, Notifier::Email],
                ..on_view("mine")
            },
        ];
        let views = |id: &str| id == "mine";
        check_references("alerts", &rules, views, |_| true).unwrap();
        let err = check_references("alerts", &rules, |_| false, |_| true).unwrap_err();
        assert_eq!(err.field(), "alerts[1].view");
        let err = check_references("alerts", &rules, views, |n| n != Notifier::Email).unwrap_err();
        assert_eq!(err.field(), "alerts[1].notify[1]");
        assert!(err.to_string().contains("notifiers.email"), "{err}");
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
        assert_eq!(json.notify, [Notifier::Webhook], "the webhooks by default");
        assert_eq!(
            serde_json::to_value(&json).unwrap(),
            serde_json::json!({"signal":"sync_failures","integration":"github","above":5,"window":"15m"}),
            "shown as written"
        );
        let on: AlertRule = serde_json::from_str(
            r#"{"view":"failed_salesforce","above":0,"window":"5m","notify":["slack","pagerduty"]}"#,
        )
        .unwrap();
        assert_eq!(on.key(), "failed_salesforce");
        assert!(on.notifies(Notifier::Pagerduty) && !on.notifies(Notifier::Webhook));
        assert!(
            serde_json::from_str::<AlertRule>(r#"{"signal":"x","above":1,"window":"1m"}"#).is_err()
        );
        assert!(serde_json::from_str::<AlertRule>(
            r#"{"signal":"sync_failures","above":1,"window":"30s"}"#
        )
        .is_err());
        assert!(serde_json::from_str::<AlertRule>(
            r#"{"view":"x","above":1,"window":"1m","notify":["sms"]}"#
        )
        .is_err());
    }

    #[test]
    fn links_open_the_signal_or_the_view_over_the_window() {
        let query = Signal::SyncFailures.query();
        let link = dashboard_link(
            "http://localhost:7400/",
            "prod",
            &rule(Signal::SyncFailures, Some("git hub")),
            &query,
            Timestamp(0),
            Timestamp(60_000),
        );
        assert_eq!(
            link,
            "http://localhost:7400/?env=prod&page=signals&signal=sync_failures&from=1970-01-01T00%3A00%3A00.000Z&to=1970-01-01T00%3A01%3A00.000Z&integration=git+hub"
        );
        let link = dashboard_link(
            "http://localhost:7400/",
            "prod",
            &on_view("sync_failures"),
            &query,
            Timestamp(0),
            Timestamp(60_000),
        );
        assert!(
            link.starts_with("http://localhost:7400/?env=prod&page=logs&view=sync_failures&type=sync&state=failed&state=timeout&from="),
            "{link}"
        );
    }
}
