//! The audit log: one record per admin action (a settings change, a rotation, a retry or replay,
//! an import, a backup, an erasure, a view change, a dashboard sign-in or a refused one), written
//! in the same commit as the action it records (`write::audit`). Kept `[audit] retention`.
//!
//! A record names who acted (the kind of credential, never the credential), where from, what and
//! on what, and a JSON `detail` whose secrets are masked before it gets here.
//!
//! Must not: do I/O. The declaration order of enum variants is part of the on-disk format.

use bincode::{Decode, Encode};
use serde::Serialize;

use super::{Id, Timestamp};

/// What was done. Append variants; never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode, Serialize, utoipa::ToSchema)]
pub enum AuditAction {
    /// `PUT /settings`: `detail.changes` lists each key changed, old and new (secrets masked).
    #[serde(rename = "settings.change")]
    SettingsChange,
    #[serde(rename = "webhook_secret.rotate")]
    WebhookSecretRotate,
    /// `GET /settings/webhook-secret`: the secret was shown in full.
    #[serde(rename = "webhook_secret.reveal")]
    WebhookSecretReveal,
    #[serde(rename = "ingress_token.rotate")]
    IngressTokenRotate,
    #[serde(rename = "delivery.retry")]
    DeliveryRetry,
    #[serde(rename = "deliveries.replay")]
    DeliveriesReplay,
    #[serde(rename = "export.retry")]
    ExportRetry,
    #[serde(rename = "exports.replay")]
    ExportsReplay,
    /// `POST /import`: the counts added and skipped.
    #[serde(rename = "import")]
    Import,
    #[serde(rename = "backup.download")]
    BackupDownload,
    /// `POST /erase`: the selector and window.
    #[serde(rename = "erasure.start")]
    ErasureStart,
    /// The erasure's last step: the selector and the counts removed.
    #[serde(rename = "erasure.finish")]
    ErasureFinish,
    #[serde(rename = "view.create")]
    ViewCreate,
    #[serde(rename = "view.change")]
    ViewChange,
    #[serde(rename = "view.delete")]
    ViewDelete,
    /// A dashboard sign-in: the kind of key, never the key.
    #[serde(rename = "session.sign_in")]
    SignIn,
    /// A refused dashboard sign-in: why, never what was sent.
    #[serde(rename = "session.sign_in_refused")]
    SignInRefused,
}

impl AuditAction {
    pub const ALL: [AuditAction; 17] = [
        AuditAction::SettingsChange,
        AuditAction::WebhookSecretRotate,
        AuditAction::WebhookSecretReveal,
        AuditAction::IngressTokenRotate,
        AuditAction::DeliveryRetry,
        AuditAction::DeliveriesReplay,
        AuditAction::ExportRetry,
        AuditAction::ExportsReplay,
        AuditAction::Import,
        AuditAction::BackupDownload,
        AuditAction::ErasureStart,
        AuditAction::ErasureFinish,
        AuditAction::ViewCreate,
        AuditAction::ViewChange,
        AuditAction::ViewDelete,
        AuditAction::SignIn,
        AuditAction::SignInRefused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::SettingsChange => "settings.change",
            AuditAction::WebhookSecretRotate => "webhook_secret.rotate",
            AuditAction::WebhookSecretReveal => "webhook_secret.reveal",
            AuditAction::IngressTokenRotate => "ingress_token.rotate",
            AuditAction::DeliveryRetry => "delivery.retry",
            AuditAction::DeliveriesReplay => "deliveries.replay",
            AuditAction::ExportRetry => "export.retry",
            AuditAction::ExportsReplay => "exports.replay",
            AuditAction::Import => "import",
            AuditAction::BackupDownload => "backup.download",
            AuditAction::ErasureStart => "erasure.start",
            AuditAction::ErasureFinish => "erasure.finish",
            AuditAction::ViewCreate => "view.create",
            AuditAction::ViewChange => "view.change",
            AuditAction::ViewDelete => "view.delete",
            AuditAction::SignIn => "session.sign_in",
            AuditAction::SignInRefused => "session.sign_in_refused",
        }
    }

    pub fn parse(text: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// Which credential acted. Append variants; never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    /// An admin token (which one is not recorded).
    Admin,
    /// An environment API key (`environment` and `scope` say which kind).
    Key,
    /// opslog itself (an erasure's last step).
    System,
    /// A refused sign-in with a token opslog does not know.
    Unknown,
}

/// How the request came.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorVia {
    /// A bearer token.
    Api,
    /// A dashboard session (or a sign-in).
    Dashboard,
    /// No request: opslog's own work.
    Server,
}

/// Who acted: the kind of credential and where from; never the credential.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, utoipa::ToSchema)]
pub struct AuditActor {
    pub role: ActorRole,
    /// A key's environment.
    pub environment: Option<String>,
    /// A key's scope: `ingest`, `read` or `ingest+read`.
    pub scope: Option<String>,
    pub via: ActorVia,
    /// The client's IP address.
    pub address: Option<String>,
}

impl AuditActor {
    /// opslog's own work.
    pub fn system() -> AuditActor {
        AuditActor {
            role: ActorRole::System,
            environment: None,
            scope: None,
            via: ActorVia::Server,
            address: None,
        }
    }
}

/// What a command records, before the writer gives it an id and a time.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditDraft {
    pub action: AuditAction,
    pub actor: AuditActor,
    /// The environment acted on (`None` for the whole server: a backup, a sign-in).
    pub environment: Option<String>,
    /// What was acted on: a delivery's or view's id, an erasure's, a settings section.
    pub target: Option<String>,
    /// Everything else, as a JSON object (secrets masked).
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl AuditDraft {
    pub fn new(action: AuditAction, actor: AuditActor, environment: Option<String>) -> AuditDraft {
        AuditDraft {
            action,
            actor,
            environment,
            target: None,
            detail: serde_json::Map::new(),
        }
    }

    pub fn target(mut self, target: impl Into<String>) -> AuditDraft {
        self.target = Some(target.into());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Serialize) -> AuditDraft {
        self.set(key, value);
        self
    }

    pub fn set(&mut self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.detail.insert(key.to_owned(), value);
    }

    pub fn record(self, id: Id, at: Timestamp) -> AuditRecord {
        AuditRecord {
            id,
            at,
            action: self.action,
            actor: self.actor,
            environment: self.environment,
            target: self.target,
            detail: serde_json::Value::Object(self.detail).to_string(),
        }
    }
}

/// A stored audit record (record version 1), keyed by its id (a ULID: key order is time order).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AuditRecord {
    pub id: Id,
    pub at: Timestamp,
    pub action: AuditAction,
    pub actor: AuditActor,
    pub environment: Option<String>,
    pub target: Option<String>,
    /// A JSON object, as text.
    pub detail: String,
}

/// An audit record in the API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub id: Id,
    pub at: Timestamp,
    pub action: AuditAction,
    pub actor: AuditActor,
    pub environment: Option<String>,
    pub target: Option<String>,
    /// What the action changed or counted: a settings change's `changes` (`key`, `old`, `new`;
    /// secrets masked as `GET /settings` masks them), a replay's `requeued`, an erasure's
    /// `selector` and `removed` counts, a sign-in's refusal `reason`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl AuditView {
    pub fn new(record: AuditRecord) -> AuditView {
        AuditView {
            detail: serde_json::from_str(&record.detail).unwrap_or(serde_json::Value::Null),
            id: record.id,
            at: record.at,
            action: record.action,
            actor: record.actor,
            environment: record.environment,
            target: record.target,
        }
    }
}

/// The changes between two JSON documents (`GET /settings` before and after), as one
/// `{key, old, new}` per leaf that differs, keys joined with `.` (arrays compared whole).
pub fn changes(old: &serde_json::Value, new: &serde_json::Value) -> Vec<serde_json::Value> {
    fn walk(
        path: &str,
        old: Option<&serde_json::Value>,
        new: Option<&serde_json::Value>,
        out: &mut Vec<serde_json::Value>,
    ) {
        use serde_json::Value::Object;
        match (old, new) {
            // An object on either side (a section added or gone counts as empty): key by key.
            (Some(Object(_)) | None, Some(Object(_)) | None) => {
                let empty = serde_json::Map::new();
                let a = old.and_then(|v| v.as_object()).unwrap_or(&empty);
                let b = new.and_then(|v| v.as_object()).unwrap_or(&empty);
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(&path, a.get(key), b.get(key), out);
                }
            }
            (a, b) if a != b => out.push(serde_json::json!({
                "key": path,
                "old": a.cloned().unwrap_or_default(),
                "new": b.cloned().unwrap_or_default(),
            })),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn actions_have_one_name_each_and_parse_back() {
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
        assert_eq!(AuditAction::parse("nope"), None);
    }

    #[test]
    fn changes_name_each_leaf_that_differs() {
        let old = json!({"webhooks": {"url": null, "events": ["a"], "secret": "whsec_…abcd"},
                         "environment": "prod"});
        let new = json!({"webhooks": {"url": "https://x", "events": ["a"], "secret": "whsec_…wxyz"},
                         "environment": "prod", "otel": {"logs": true}});
        assert_eq!(
            changes(&old, &new),
            vec![
                json!({"key": "otel.logs", "old": null, "new": true}),
                json!({"key": "webhooks.secret", "old": "whsec_…abcd", "new": "whsec_…wxyz"}),
                json!({"key": "webhooks.url", "old": null, "new": "https://x"}),
            ]
        );
        assert!(changes(&old, &old).is_empty());
    }
}
