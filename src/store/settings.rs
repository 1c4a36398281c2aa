//! The settings tables: one row per section (`webhooks`, `ingress`, `otel`, `alerts`,
//! `notifiers`) and environment, so a new section never reshapes an existing one; each alert
//! rule's state; the saved views.

use redb::ReadableTable;

use super::codec;
use super::tables::*;
use super::{StoreError, WriteTx};
use crate::model::alert::{AlertState, StoredAlerts};
use crate::model::settings::{StoredIngress, StoredOtel, StoredWebhooks};
use crate::model::view::StoredView;

const WEBHOOKS_SECTION: &str = "webhooks";
const INGRESS_SECTION: &str = "ingress";
const OTEL_SECTION: &str = "otel";
const ALERTS_SECTION: &str = "alerts";

impl WriteTx {
    pub fn webhook_settings(
        &self,
        environment: &str,
    ) -> Result<Option<StoredWebhooks>, StoreError> {
        let table = self.txn.open_table(SETTINGS)?;
        let value = table.get((environment, WEBHOOKS_SECTION))?;
        value
            .map(|v| codec::decode_webhook_settings(v.value()))
            .transpose()
    }

    pub fn put_webhook_settings(
        &mut self,
        environment: &str,
        settings: &StoredWebhooks,
    ) -> Result<(), StoreError> {
        self.txn.open_table(SETTINGS)?.insert(
            (environment, WEBHOOKS_SECTION),
            codec::encode_webhook_settings(settings).as_slice(),
        )?;
        Ok(())
    }

    pub fn ingress_settings(&self, environment: &str) -> Result<Option<StoredIngress>, StoreError> {
        let table = self.txn.open_table(SETTINGS)?;
        let value = table.get((environment, INGRESS_SECTION))?;
        value
            .map(|v| codec::decode_ingress_settings(v.value()))
            .transpose()
    }

    pub fn put_ingress_settings(
        &mut self,
        environment: &str,
        settings: &StoredIngress,
    ) -> Result<(), StoreError> {
        self.txn.open_table(SETTINGS)?.insert(
            (environment, INGRESS_SECTION),
            codec::encode_ingress_settings(settings).as_slice(),
        )?;
        Ok(())
    }

    pub fn otel_settings(&self, environment: &str) -> Result<Option<StoredOtel>, StoreError> {
        let table = self.txn.open_table(SETTINGS)?;
        let value = table.get((environment, OTEL_SECTION))?;
        value
            .map(|v| codec::decode_otel_settings(v.value()))
            .transpose()
    }

    pub fn put_otel_settings(
        &mut self,
        environment: &str,
        settings: &StoredOtel,
    ) -> Result<(), StoreError> {
        self.txn.open_table(SETTINGS)?.insert(
            (environment, OTEL_SECTION),
            codec::encode_otel_settings(settings).as_slice(),
        )?;
        Ok(())
    }

    pub fn alert_settings(&self, environment: &str) -> Result<Option<StoredAlerts>, StoreError> {
        let table = self.txn.open_table(SETTINGS)?;
        let value = table.get((environment, ALERTS_SECTION))?;
        value
            .map(|v| codec::decode_alert_settings(v.value()))
            .transpose()
    }

    pub fn put_alert_settings(
        &mut self,
        environment: &str,
        settings: &StoredAlerts,
    ) -> Result<(), StoreError> {
        self.txn.open_table(SETTINGS)?.insert(
            (environment, ALERTS_SECTION),
            codec::encode_alert_settings(settings).as_slice(),
        )?;
        Ok(())
    }

    /// Every saved view of `environment`, by id.
    pub fn views(&self, environment: &str) -> Result<Vec<StoredView>, StoreError> {
        let table = self.txn.open_table(VIEWS)?;
        let mut views = Vec::new();
        for row in table.range((environment, "")..)? {
            let (key, value) = row?;
            if key.value().0 != environment {
                break;
            }
            views.push(codec::decode_view(value.value())?);
        }
        Ok(views)
    }

    pub fn put_view(&mut self, environment: &str, view: &StoredView) -> Result<(), StoreError> {
        self.txn.open_table(VIEWS)?.insert(
            (environment, view.id.as_str()),
            codec::encode_view(view).as_slice(),
        )?;
        Ok(())
    }

    pub fn remove_view(&mut self, environment: &str, id: &str) -> Result<(), StoreError> {
        self.txn.open_table(VIEWS)?.remove((environment, id))?;
        Ok(())
    }

    /// Every stored alert state of `environment`, by rule key.
    pub fn alert_states(&self, environment: &str) -> Result<Vec<(String, AlertState)>, StoreError> {
        let table = self.txn.open_table(ALERT_STATES)?;
        let mut states = Vec::new();
        for row in table.range((environment, "")..)? {
            let (key, value) = row?;
            let (env, rule) = key.value();
            if env != environment {
                break;
            }
            states.push((rule.to_owned(), codec::decode_alert_state(value.value())?));
        }
        Ok(states)
    }

    pub fn put_alert_state(
        &mut self,
        environment: &str,
        rule: &str,
        state: &AlertState,
    ) -> Result<(), StoreError> {
        self.txn.open_table(ALERT_STATES)?.insert(
            (environment, rule),
            codec::encode_alert_state(state).as_slice(),
        )?;
        Ok(())
    }

    pub fn remove_alert_state(&mut self, environment: &str, rule: &str) -> Result<(), StoreError> {
        self.txn
            .open_table(ALERT_STATES)?
            .remove((environment, rule))?;
        Ok(())
    }
}
