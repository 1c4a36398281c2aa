//! The alert evaluator's command: each rule's new count, decided against its stored state.

use std::collections::BTreeMap;

use super::effects::{Bodies, DeliveryCause};
use super::engine::{Check, Command, Tx, WriteError};
use crate::model::alert::{transition, AlertState, Observation, Transition};
use crate::model::{EventType, Timestamp};
use crate::outbox::events;
use crate::store::StoreError;

/// Alert rules' counts (`alerts::evaluate`): records each rule's new count against its stored
/// state and, where it crossed its threshold, the new state and the `alert.*` deliveries, in
/// this one commit. Counts of rules no longer configured are ignored, and their states removed.
pub struct ObserveAlerts {
    pub environment: String,
    pub observations: Vec<Observation>,
}

impl Command for ObserveAlerts {
    type Reply = ();
    /// Never refused: counts of rules changed meanwhile are ignored when writing.
    type Plan = Self;

    fn check(self, _: &mut Check<'_>) -> Result<Self, WriteError> {
        Ok(self)
    }

    fn write(plan: Self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        observe(tx, &plan.environment, plan.observations)?;
        tx.deps.metrics.alert_evaluations.inc();
        Ok(())
    }
}

fn observe(
    tx: &mut Tx<'_>,
    environment: &str,
    observations: Vec<Observation>,
) -> Result<(), StoreError> {
    let Some(settings) = tx.deps.settings.get(environment) else {
        return Ok(());
    };
    let rules = &settings.alerts.rules;
    let stored: BTreeMap<String, AlertState> =
        tx.db.alert_states(environment)?.into_iter().collect();
    for key in stored.keys() {
        if !rules.iter().any(|r| r.key() == *key) {
            tx.db.remove_alert_state(environment, key)?;
        }
    }
    let now = Timestamp::now();
    for observed in observations {
        if !rules.contains(&observed.rule) {
            continue; // changed since it was counted; the next evaluation counts it anew
        }
        let key = observed.rule.key();
        let firing = stored.get(&key).is_some_and(|s| s.firing);
        let Some(change) = transition(firing, observed.count, observed.rule.above) else {
            continue;
        };
        let state = AlertState {
            firing: change == Transition::Triggered,
            since: now,
            count: observed.count,
        };
        tx.db.put_alert_state(environment, &key, &state)?;
        tx.deps.metrics.alert_transitions.inc();
        tracing::info!(environment, rule = %key, count = observed.count, above = observed.rule.above, ?change, "alert rule changed");
        let kind = match change {
            Transition::Triggered => EventType::AlertTriggered,
            Transition::Resolved => EventType::AlertResolved,
        };
        let cause = DeliveryCause {
            operation: None,
            environment: environment.to_owned(),
            integration: observed.rule.integration.clone(),
            connection_id: None,
            label: format!("alert {key}"),
            trace: None,
        };
        let bodies = Bodies {
            envelope: |event_id: &str| {
                events::alert_envelope(event_id, kind, environment, &observed, now)
            },
            nango: || vec![events::nango_alert_body(kind, environment, &observed)],
        };
        tx.queue_deliveries(&settings, kind, None, bodies, &cause, false, now)?;
    }
    Ok(())
}
