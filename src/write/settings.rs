//! The settings command: `PUT /settings` and the two rotations, merged with the config file
//! (`settings` holds the merge rules) and installed in the registry once committed.

use super::engine::{Command, Tx, WriteError};
use crate::settings::{self, AlertSettings, EnvSettings, OtelSettings, SettingsUpdate};

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
        let mut alerts = tx.db.alert_settings(&environment)?.unwrap_or_default();
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
                    alerts = settings::apply_alerts_update(alerts_file.as_ref(), rules)?;
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
        let otel = OtelSettings::new(&environment, otel_file.as_ref(), &otel);
        let alerts = AlertSettings::new(&environment, alerts_file.as_ref(), &alerts);
        let effective = settings::effective(&environment, &file, &webhooks, otel, &ingress, alerts);
        tx.settings_changed(effective.clone());
        Ok(effective)
    }
}
