//! The settings command: `PUT /settings` and the two rotations, merged with the config file
//! (`settings` holds the merge rules) and installed in the registry once committed.

use super::engine::{Check, Command, Tx, WriteError};
use crate::model::alert::AlertRule;
use crate::model::alert::StoredAlerts;
use crate::settings::{
    self, AlertSettings, EnvSettings, NotifierSettings, Notifiers, OtelSettings, SettingsError,
    SettingsUpdate, StoredIngress, StoredOtel, StoredWebhooks,
};
use crate::store::StoreError;

pub struct ChangeSettings {
    pub environment: String,
    pub change: SettingsChange,
}

#[derive(Debug)]
pub enum SettingsChange {
    /// `PUT /settings`: every section it names, applied together or not at all.
    Update(Box<SettingsUpdate>),
    /// A new webhook secret; the old one keeps signing for the grace period.
    RotateSecret {
        grace: Option<std::time::Duration>,
        /// The secret to sign with from now on (an existing Nango signing key, checked by the
        /// caller); `None` issues a fresh `whsec_` one.
        secret: Option<String>,
    },
    RotateIngressToken,
}

/// The settings rows as `check` merged them, to be stored.
pub struct NewSettings {
    environment: String,
    webhooks: StoredWebhooks,
    ingress: StoredIngress,
    otel: Option<StoredOtel>,
    /// New alert rules, and the rules taken away (whose states are forgotten).
    alerts: Option<(StoredAlerts, Vec<String>)>,
    notifiers: Option<Notifiers>,
    effective: EnvSettings,
}

impl NewSettings {
    pub(super) fn environment(&self) -> &str {
        &self.environment
    }
}

impl Command for ChangeSettings {
    /// The settings now in force (installed in the registry once the commit succeeds).
    type Reply = EnvSettings;
    type Plan = NewSettings;

    fn check(self, tx: &mut Check<'_>) -> Result<NewSettings, WriteError> {
        let environment = self.environment;
        let registry = &tx.deps.settings;
        let file = registry.file(&environment);
        let otel_file = registry.otel_file(&environment).cloned();
        let alerts_file = registry.alerts_file(&environment).cloned();
        let mut webhooks = tx.db.webhook_settings(&environment)?.unwrap_or_default();
        let mut ingress = tx.db.ingress_settings(&environment)?.unwrap_or_default();
        let stored_otel = tx.db.otel_settings(&environment)?.unwrap_or_default();
        let stored_alerts = tx.db.alert_settings(&environment)?.unwrap_or_default();
        let notifiers_file = registry.notifiers_file(&environment);
        let stored_notifiers = tx.db.notifier_settings(&environment)?.unwrap_or_default();
        let mut otel = None;
        let mut alerts = None;
        let mut notifiers = None;
        match self.change {
            SettingsChange::Update(update) => {
                let update = *update;
                if let Some(update) = update.notifiers {
                    notifiers = Some(settings::apply_notifiers_update(
                        &notifiers_file,
                        &stored_notifiers,
                        update,
                        registry.destinations(),
                    )?);
                }
                let notifiers_now = NotifierSettings::new(
                    &notifiers_file,
                    notifiers.as_ref().unwrap_or(&stored_notifiers),
                );
                if let Some(update) = update.webhooks {
                    webhooks =
                        settings::apply_update(&file, &webhooks, update, registry.destinations())?;
                }
                if let Some(update) = update.otel {
                    otel = Some(settings::apply_otel_update(
                        otel_file.as_ref(),
                        &stored_otel,
                        update,
                        registry.destinations(),
                    )?);
                }
                if let Some(rules) = update.alerts {
                    let keys: Vec<String> = rules.iter().map(|r| r.key()).collect();
                    let new = settings::apply_alerts_update(alerts_file.as_ref(), rules.clone())?;
                    // A rule names a view this group sees saved.
                    let saved = tx.db.views(&environment)?;
                    crate::model::alert::check_references(
                        "alerts",
                        &rules,
                        |id| crate::views::find(&saved, id).is_some(),
                        |n| notifiers_now.configured(n),
                    )?;
                    // A rule taken away forgets whether it fired: added again, it starts from
                    // not firing.
                    let removed = tx
                        .db
                        .alert_states(&environment)?
                        .into_iter()
                        .map(|(key, _)| key)
                        .filter(|key| !keys.contains(key))
                        .collect();
                    alerts = Some((new, removed));
                } else if notifiers.is_some() {
                    // The rules stay: none may tell a notifier this change takes away.
                    let rules =
                        AlertSettings::new(&environment, alerts_file.as_ref(), &stored_alerts)
                            .rules;
                    still_told(&rules, &notifiers_now)?;
                }
            }
            SettingsChange::RotateSecret { grace, secret } => {
                let grace = grace.unwrap_or(
                    file.rotation_grace
                        .map(|g| g.0)
                        .unwrap_or(settings::DEFAULT_ROTATION_GRACE),
                );
                webhooks = settings::rotate_secret(
                    &file,
                    &webhooks,
                    tx.now,
                    grace,
                    secret.unwrap_or_else(settings::generate_secret),
                )?;
            }
            SettingsChange::RotateIngressToken => {
                ingress.token = settings::generate_ingress_token();
            }
        }
        let otel_now = OtelSettings::new(
            &environment,
            otel_file.as_ref(),
            otel.as_ref().unwrap_or(&stored_otel),
        );
        let alerts_now = AlertSettings::new(
            &environment,
            alerts_file.as_ref(),
            alerts.as_ref().map_or(&stored_alerts, |(new, _)| new),
        );
        let mut effective = settings::effective(
            &environment,
            &file,
            &webhooks,
            otel_now,
            &ingress,
            alerts_now,
        );
        effective.views = tx.db.views(&environment)?;
        effective.notifiers = NotifierSettings::new(
            &notifiers_file,
            notifiers.as_ref().unwrap_or(&stored_notifiers),
        );
        Ok(NewSettings {
            environment,
            webhooks,
            ingress,
            otel,
            alerts,
            notifiers,
            effective,
        })
    }

    fn write(new: NewSettings, tx: &mut Tx<'_>) -> Result<EnvSettings, StoreError> {
        let environment = &new.environment;
        tx.db.put_webhook_settings(environment, &new.webhooks)?;
        tx.db.put_ingress_settings(environment, &new.ingress)?;
        if let Some(otel) = &new.otel {
            tx.db.put_otel_settings(environment, otel)?;
        }
        if let Some((alerts, removed)) = &new.alerts {
            for key in removed {
                tx.db.remove_alert_state(environment, key)?;
            }
            tx.db.put_alert_settings(environment, alerts)?;
        }
        if let Some(notifiers) = &new.notifiers {
            tx.db.put_notifier_settings(environment, notifiers)?;
        }
        tx.settings_changed(new.effective.clone());
        Ok(new.effective)
    }
}

/// Refuses taking away a notifier a rule still tells, naming the notifier.
fn still_told(rules: &[AlertRule], notifiers: &NotifierSettings) -> Result<(), SettingsError> {
    for (i, rule) in rules.iter().enumerate() {
        if let Some(gone) = rule.notify.iter().find(|n| !notifiers.configured(**n)) {
            return Err(SettingsError::invalid(
                &format!("notifiers.{}", gone.as_str()),
                format!(
                    "is told by alert rule alerts[{i}] ({}); take it out of that rule's `notify` first",
                    rule.key()
                ),
            ));
        }
    }
    Ok(())
}

/// The settings of `environment` as this group has written them, merged with the config file:
/// what a command that changed a part of them (a view) installs once committed.
pub(super) fn stored_settings(tx: &Tx<'_>, environment: &str) -> Result<EnvSettings, StoreError> {
    let registry = &tx.deps.settings;
    let webhooks = tx.db.webhook_settings(environment)?.unwrap_or_default();
    let ingress = tx.db.ingress_settings(environment)?.unwrap_or_default();
    let otel = tx.db.otel_settings(environment)?.unwrap_or_default();
    let otel = OtelSettings::new(environment, registry.otel_file(environment), &otel);
    let alerts = tx.db.alert_settings(environment)?.unwrap_or_default();
    let alerts = AlertSettings::new(environment, registry.alerts_file(environment), &alerts);
    let file = registry.file(environment);
    let mut effective = settings::effective(environment, &file, &webhooks, otel, &ingress, alerts);
    effective.views = tx.db.views(environment)?;
    let notifiers = tx.db.notifier_settings(environment)?.unwrap_or_default();
    effective.notifiers = NotifierSettings::new(&registry.notifiers_file(environment), &notifiers);
    Ok(effective)
}
