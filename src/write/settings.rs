//! The settings command: `PUT /settings` and the two rotations, merged with the config file
//! (`settings` holds the merge rules) and installed in the registry once committed.

use super::engine::{Command, Tx, WriteError};
use crate::settings::{self, AlertSettings, EnvSettings, OtelSettings, SettingsUpdate};
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

impl Command for ChangeSettings {
    /// The settings now in force (installed in the registry once the commit succeeds).
    type Reply = EnvSettings;

    fn apply(self, tx: &mut Tx<'_>) -> Result<EnvSettings, WriteError> {
        let environment = self.environment;
        let file = tx.deps.settings.file(&environment);
        let otel_file = tx.deps.settings.otel_file(&environment).cloned();
        let mut webhooks = tx.db.webhook_settings(&environment)?.unwrap_or_default();
        let mut otel = tx.db.otel_settings(&environment)?.unwrap_or_default();
        let mut ingress = tx.db.ingress_settings(&environment)?.unwrap_or_default();
        let alerts_file = tx.deps.settings.alerts_file(&environment).cloned();
        match self.change {
            SettingsChange::Update(update) => {
                let update = *update;
                if let Some(update) = update.webhooks {
                    webhooks = settings::apply_update(
                        &file,
                        &webhooks,
                        update,
                        tx.deps.settings.destinations(),
                    )?;
                }
                if let Some(update) = update.otel {
                    otel = settings::apply_otel_update(
                        otel_file.as_ref(),
                        &otel,
                        update,
                        tx.deps.settings.destinations(),
                    )?;
                    tx.db.put_otel_settings(&environment, &otel)?;
                }
                if let Some(rules) = update.alerts {
                    let keys: Vec<String> = rules.iter().map(|r| r.key()).collect();
                    let alerts =
                        settings::apply_alerts_update(alerts_file.as_ref(), rules.clone())?;
                    let saved = tx.db.views(&environment)?;
                    crate::model::alert::check_references(
                        "alerts",
                        &rules,
                        |id| crate::views::find(&saved, id).is_some(),
                        |_| false,
                    )?;
                    // A rule taken away forgets whether it fired: added again, it
                    // starts from not firing.
                    for (key, _) in tx.db.alert_states(&environment)? {
                        if !keys.contains(&key) {
                            tx.db.remove_alert_state(&environment, &key)?;
                        }
                    }
                    tx.db.put_alert_settings(&environment, &alerts)?;
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
        tx.db.put_webhook_settings(&environment, &webhooks)?;
        tx.db.put_ingress_settings(&environment, &ingress)?;
        let effective = stored_settings(tx, &environment)?;
        tx.settings_changed(effective.clone());
        Ok(effective)
    }
}

/// The settings of `environment` as this group has written them, merged with the config file:
/// what a command that changed any of them installs once committed.
pub(super) fn stored_settings(tx: &Tx<'_>, environment: &str) -> Result<EnvSettings, StoreError> {
    let registry = &tx.deps.settings;
    let webhooks = tx.db.webhook_settings(environment)?.unwrap_or_default();
    let ingress = tx.db.ingress_settings(environment)?.unwrap_or_default();
    let otel_file = registry.otel_file(environment);
    let otel = tx.db.otel_settings(environment)?.unwrap_or_default();
    let otel = OtelSettings::new(environment, otel_file, &otel);
    let alerts = tx.db.alert_settings(environment)?.unwrap_or_default();
    let alerts = AlertSettings::new(environment, registry.alerts_file(environment), &alerts);
    let file = registry.file(environment);
    let mut effective = settings::effective(environment, &file, &webhooks, otel, &ingress, alerts);
    effective.views = tx.db.views(environment)?;
    Ok(effective)
}
