//! An erasure: everything about one connection, end user or integration of an environment,
//! removed in bounded steps by a job whose progress is stored (so a restart resumes it).
//!
//! Must not: do I/O. The declaration order of enum variants is part of the on-disk format.

use bincode::{Decode, Encode};
use serde::Serialize;

use super::{Id, Operation, Timestamp};

/// What an erasure removes: the operations naming this value (and their messages, outbox jobs,
/// attempts and delivery logs). Append variants; never reorder.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum EraseSelector {
    ConnectionId(String),
    EndUserId(String),
    Integration(String),
}

impl EraseSelector {
    /// The API field naming the selector.
    pub fn field(&self) -> &'static str {
        match self {
            EraseSelector::ConnectionId(_) => "connection_id",
            EraseSelector::EndUserId(_) => "end_user_id",
            EraseSelector::Integration(_) => "integration",
        }
    }

    pub fn value(&self) -> &str {
        match self {
            EraseSelector::ConnectionId(v)
            | EraseSelector::EndUserId(v)
            | EraseSelector::Integration(v) => v,
        }
    }

    /// Whether `op` names the selected value.
    pub fn matches(&self, op: &Operation) -> bool {
        match self {
            EraseSelector::ConnectionId(v) => op.connection_id.as_deref() == Some(v),
            EraseSelector::EndUserId(v) => op.end_user.as_ref().is_some_and(|u| &u.id == v),
            EraseSelector::Integration(v) => op.integration.as_deref() == Some(v),
        }
    }
}

/// Where an erasure stands. Append variants; never reorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum ErasePhase {
    /// Removing the outbox jobs (deliveries, exports) of matching operations, scanning the outbox
    /// in job id order.
    Outbox,
    /// Removing the matching operations, found through the search index.
    Operations,
    Done,
}

/// What an erasure has removed so far.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, Serialize, utoipa::ToSchema,
)]
pub struct EraseCounts {
    pub operations: u64,
    pub messages: u64,
    /// Outbox jobs: webhook deliveries and OTLP exports.
    pub outbox_jobs: u64,
    /// Their delivery attempts.
    pub attempts: u64,
}

/// A stored erasure job (record version 1).
#[derive(Clone, Debug, PartialEq, Encode, Decode)]
pub struct EraseJob {
    pub id: Id,
    pub environment: String,
    pub selector: EraseSelector,
    /// Operations created at or after it only.
    pub from: Option<Timestamp>,
    /// Operations created before it only: the request's `to`, or when the erasure was asked for
    /// (what is recorded after that is not part of it).
    pub to: Timestamp,
    pub phase: ErasePhase,
    /// The outbox scan continues from this job id.
    pub outbox_from: u128,
    pub counts: EraseCounts,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

impl EraseJob {
    /// Whether the erasure removes `op`.
    pub fn covers(&self, op: &Operation) -> bool {
        op.environment == self.environment
            && self.selector.matches(op)
            && self.from.is_none_or(|from| op.created_at >= from)
            && op.created_at < self.to
    }

    pub fn view(&self) -> EraseView {
        let selector = match &self.selector {
            EraseSelector::ConnectionId(v) => EraseSelectorView {
                connection_id: Some(v.clone()),
                ..EraseSelectorView::default()
            },
            EraseSelector::EndUserId(v) => EraseSelectorView {
                end_user_id: Some(v.clone()),
                ..EraseSelectorView::default()
            },
            EraseSelector::Integration(v) => EraseSelectorView {
                integration: Some(v.clone()),
                ..EraseSelectorView::default()
            },
        };
        EraseView {
            id: self.id,
            environment: self.environment.clone(),
            state: match self.phase {
                ErasePhase::Done => "done",
                _ => "running",
            },
            selector,
            from: self.from,
            to: self.to,
            removed: self.counts,
            created_at: self.created_at,
            finished_at: self.finished_at,
        }
    }
}

/// The selector as the API shows it: exactly one field is set.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct EraseSelectorView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
}

/// The JSON of an erasure.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EraseView {
    pub id: Id,
    pub environment: String,
    /// `running` or `done`.
    pub state: &'static str,
    pub selector: EraseSelectorView,
    pub from: Option<Timestamp>,
    /// Operations recorded before it: the request's `to`, or when the erasure was asked for.
    pub to: Timestamp,
    /// What was removed so far.
    pub removed: EraseCounts,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}
