//! The audit log's commands. An admin action that is a write command is wrapped in [`Audited`],
//! whose `write` carries the action out and appends its record in the same transaction: the
//! record is durable exactly when the action is, and a refused action (refused in `check`)
//! records nothing. What a record says beyond what the caller knew (a settings change's old and
//! new values, the counts) comes from the command's [`Audit`] impl. Actions that write nothing
//! (a backup download, a dashboard sign-in, a refused one, revealing the webhook secret) append
//! their record alone through [`AppendAudit`]. Retention removes records older than
//! `[audit] retention` through [`RemoveExpiredAudit`].

use super::engine::{Check, Command, Tx, WriteError};
use super::import::{Import, Imported};
use super::outbox::RequeueJobs;
use super::settings::ChangeSettings;
use super::views::{ChangeView, ViewPlan};
use super::StartErase;
use crate::model::audit::{changes, AuditDraft};
use crate::model::erase::{EraseJob, EraseSelector};
use crate::model::job::Job;
use crate::model::view::View;
use crate::model::Timestamp;
use crate::secrets::mask;
use crate::settings::{EnvSettings, SettingsView};
use crate::store::{id_range, StoreError};

/// The most job ids a replay's record lists (its count is always exact).
const LISTED_IDS: usize = 100;
/// Audit records one retention command removes.
pub const AUDIT_REMOVE_BUDGET: usize = 10_000;

/// A write command whose effect an audit record describes.
pub trait Audit: Command {
    /// What the record needs from before the write (the settings in force, a view as it was).
    type Before;

    fn before(plan: &Self::Plan, tx: &Tx<'_>) -> Result<Self::Before, StoreError>;

    /// Completes `draft` (made by the caller: action, actor, environment) from what was there
    /// before and the reply.
    fn describe(before: Self::Before, reply: &Self::Reply, draft: &mut AuditDraft);
}

/// `command`, recorded in the audit log in its own commit.
pub struct Audited<C> {
    pub command: C,
    pub draft: AuditDraft,
}

impl<C: Audit> Command for Audited<C> {
    type Reply = C::Reply;
    type Plan = (C::Plan, AuditDraft);

    fn check(self, tx: &mut Check<'_>) -> Result<Self::Plan, WriteError> {
        Ok((self.command.check(tx)?, self.draft))
    }

    fn write((plan, mut draft): Self::Plan, tx: &mut Tx<'_>) -> Result<C::Reply, StoreError> {
        let before = C::before(&plan, tx)?;
        let reply = C::write(plan, tx)?;
        C::describe(before, &reply, &mut draft);
        append(tx, draft)?;
        Ok(reply)
    }
}

/// Appends a record of an action that writes nothing else.
pub struct AppendAudit(pub AuditDraft);

impl Command for AppendAudit {
    type Reply = ();
    /// Never refused.
    type Plan = AuditDraft;

    fn check(self, _: &mut Check<'_>) -> Result<AuditDraft, WriteError> {
        Ok(self.0)
    }

    fn write(draft: AuditDraft, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        append(tx, draft)
    }
}

/// Removes audit records from before `cutoff`, a bounded number per command; answers how many.
pub struct RemoveExpiredAudit {
    pub cutoff: Timestamp,
}

impl Command for RemoveExpiredAudit {
    type Reply = u64;
    /// Never refused.
    type Plan = Timestamp;

    fn check(self, _: &mut Check<'_>) -> Result<Timestamp, WriteError> {
        Ok(self.cutoff)
    }

    fn write(cutoff: Timestamp, tx: &mut Tx<'_>) -> Result<u64, StoreError> {
        let (before, _) = id_range(Some(cutoff), None);
        tx.db.remove_audit_before(before, AUDIT_REMOVE_BUDGET)
    }
}

pub(super) fn append(tx: &mut Tx<'_>, draft: AuditDraft) -> Result<(), StoreError> {
    let record = draft.record(tx.next_id(), tx.now);
    tx.db.put_audit(&record)
}

impl Audit for ChangeSettings {
    type Before = Option<EnvSettings>;

    fn before(plan: &Self::Plan, tx: &Tx<'_>) -> Result<Option<EnvSettings>, StoreError> {
        Ok(tx.settings_in_force(plan.environment()))
    }

    fn describe(before: Option<EnvSettings>, after: &EnvSettings, draft: &mut AuditDraft) {
        draft.set("changes", settings_changes(before.as_ref(), after));
    }
}

/// Each key of `GET /settings` that differs between `old` and `new`, with both values as
/// `GET /settings` shows them (secrets masked). The ingress token, which `GET /settings` shows
/// to the admin, is masked too: the audit log holds no credential. A secret whose masked form
/// did not change (masking shows its first characters only) is listed all the same.
pub fn settings_changes(old: Option<&EnvSettings>, new: &EnvSettings) -> Vec<serde_json::Value> {
    let view = |s: &EnvSettings| {
        let mut view = serde_json::to_value(SettingsView::new(s, Timestamp(0))).unwrap_or_default();
        let token = mask(&s.ingress_token);
        view["ingress"]["token"] = token.clone().into();
        view["ingress"]["path"] = format!("/v1/hooks/{token}/{{integration}}").into();
        view
    };
    let new_view = view(new);
    // Without settings before (an environment not installed yet), every key is new.
    let old_view = old.map(view).unwrap_or_else(|| serde_json::json!({}));
    let mut list = changes(&old_view, &new_view);
    let Some(old) = old else {
        return list;
    };
    let mut secret = |key: String, was: Option<&str>, now: Option<&str>| {
        if was != now && !list.iter().any(|c| c["key"] == key.as_str()) {
            list.push(serde_json::json!({
                "key": key, "old": was.map(mask), "new": now.map(mask),
            }));
        }
    };
    secret(
        "webhooks.secret".into(),
        Some(&old.webhooks.secret),
        Some(&new.webhooks.secret),
    );
    secret(
        "ingress.token".into(),
        Some(&old.ingress_token),
        Some(&new.ingress_token),
    );
    let (was, now) = (&old.otel.config.headers, &new.otel.config.headers);
    for name in was.keys().chain(now.keys()) {
        secret(
            format!("otel.headers.{name}"),
            was.get(name).map(String::as_str),
            now.get(name).map(String::as_str),
        );
    }
    // The notifiers' secrets: a Slack URL's path, a routing key, an SMTP URL's password.
    let (was, now) = (&old.notifiers.current, &new.notifiers.current);
    secret(
        "notifiers.slack.url".into(),
        was.slack.as_ref().map(|n| n.url.as_str()),
        now.slack.as_ref().map(|n| n.url.as_str()),
    );
    secret(
        "notifiers.pagerduty.routing_key".into(),
        was.pagerduty.as_ref().map(|n| n.routing_key.as_str()),
        now.pagerduty.as_ref().map(|n| n.routing_key.as_str()),
    );
    secret(
        "notifiers.email.url".into(),
        was.email.as_ref().map(|n| n.url.as_str()),
        now.email.as_ref().map(|n| n.url.as_str()),
    );
    list.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    list
}

impl Audit for ChangeView {
    /// The view as it was (`None` for a new one).
    type Before = Option<View>;

    fn before(plan: &ViewPlan, tx: &Tx<'_>) -> Result<Option<View>, StoreError> {
        let (environment, id) = match plan {
            ViewPlan::Put { environment, view } => (environment, &view.id),
            ViewPlan::Remove { environment, id } => (environment, id),
        };
        let saved = tx.db.views(environment)?;
        Ok(saved.iter().find(|v| &v.id == id).map(View::new))
    }

    fn describe(before: Option<View>, after: &Option<View>, draft: &mut AuditDraft) {
        let id = after.as_ref().or(before.as_ref()).map(|v| v.id.clone());
        if let Some(id) = id {
            draft.target = Some(id);
        }
        draft.set("before", before);
        draft.set("after", after);
    }
}

impl Audit for RequeueJobs {
    type Before = ();

    fn before(_: &Vec<Job>, _: &Tx<'_>) -> Result<(), StoreError> {
        Ok(())
    }

    fn describe(_: (), requeued: &Vec<Job>, draft: &mut AuditDraft) {
        draft.set("requeued", requeued.len());
        let ids: Vec<String> = requeued
            .iter()
            .take(LISTED_IDS)
            .map(|j| j.id.to_string())
            .collect();
        draft.set("ids", ids);
    }
}

impl Audit for Import {
    type Before = ();

    fn before(_: &Self::Plan, _: &Tx<'_>) -> Result<(), StoreError> {
        Ok(())
    }

    fn describe(_: (), imported: &Imported, draft: &mut AuditDraft) {
        draft.set("imported", imported);
    }
}

impl Audit for StartErase {
    type Before = ();

    fn before(_: &Self, _: &Tx<'_>) -> Result<(), StoreError> {
        Ok(())
    }

    fn describe(_: (), job: &EraseJob, draft: &mut AuditDraft) {
        draft.target = Some(job.id.to_string());
        describe_erasure(job, draft);
    }
}

/// An erasure's selector and window: what it names, never what it removed.
pub(super) fn describe_erasure(job: &EraseJob, draft: &mut AuditDraft) {
    let selector = match &job.selector {
        EraseSelector::ConnectionId(v)
        | EraseSelector::EndUserId(v)
        | EraseSelector::Integration(v) => serde_json::json!({ job.selector.field(): v }),
    };
    draft.set("selector", selector);
    draft.set("from", job.from);
    draft.set("to", job.to);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_change_is_listed_masked_even_when_its_mask_did_not_change() {
        use crate::settings::{AlertSettings, OtelSettings};
        let mut old = crate::settings::effective(
            "prod",
            &Default::default(),
            &Default::default(),
            OtelSettings::new("prod", None, &Default::default()),
            &crate::model::settings::StoredIngress {
                token: "ingress-token-0123456789abcdef".into(),
            },
            AlertSettings::default(),
        );
        old.webhooks.secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=".into();
        let mut new = old.clone();
        new.webhooks.secret = format!("{}-rotated-secret-value", &old.webhooks.secret[..6]);
        new.webhooks.url = Some("https://hooks.example.com/a".into());
        let list = settings_changes(Some(&old), &new);
        let keys: Vec<&str> = list.iter().map(|c| c["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["webhooks.secret", "webhooks.url"]);
        let text = serde_json::to_string(&list).unwrap();
        assert!(!text.contains("rotated-secret-value"), "{text}");
        assert!(!text.contains(&old.webhooks.secret), "{text}");
        assert!(text.contains("…(masked)"), "{text}");
        let mut rotated = old.clone();
        rotated.ingress_token = "ingress-token-fedcba9876543210".into();
        let list = settings_changes(Some(&old), &rotated);
        let text = serde_json::to_string(&list).unwrap();
        assert!(
            !text.contains("0123456789") && !text.contains("fedcba"),
            "{text}"
        );
        assert_eq!(list[0]["key"], "ingress.token", "{text}");
    }
}
