//! The operation state machine (README "API"), as pure functions:
//! `waiting → running → {success, failed, timeout, cancelled}`; a terminal state is final,
//! repeating it is a no-op, changing it is a conflict.
//!
//! Must not: do I/O. The writer calls these and stores what they produce.

use std::time::Duration;

use super::input::{OperationDraft, OperationPatch};
use crate::model::*;

/// What a successful change did, so the writer knows whether the operation just ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An idempotent repeat of the terminal state it already has: nothing to store.
    Unchanged,
    Updated,
    /// It reached a terminal state now: the point where events and exports are derived.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("operation already ended as `{current}`; a terminal state is final")]
    AlreadyEnded { current: OpState },
    #[error("an operation cannot go from `{from}` back to `{to}`")]
    Backwards { from: OpState, to: OpState },
}

/// A display title when the client gives none.
pub fn default_title(kind: OpType, action: &str) -> String {
    match (kind, action) {
        (OpType::Sync, "run") => "Sync execution".into(),
        (OpType::Action, "run") => "Action execution".into(),
        (OpType::Webhook, "incoming") => "Incoming webhook".into(),
        (OpType::Webhook, "forward") => "Webhook forwarded".into(),
        (OpType::Auth, "create_connection") => "Connection creation".into(),
        (OpType::Auth, "refresh_token") => "Token refresh".into(),
        (OpType::Proxy, "call") => "Proxy call".into(),
        (kind, action) => format!("{kind} {}", action.replace(['_', '-'], " ")),
    }
}

/// Builds a new operation from a validated draft. Returns whether it was created already ended.
pub fn new_operation(
    id: Id,
    environment: &str,
    draft: OperationDraft,
    now: Timestamp,
    deadline: Duration,
) -> (Operation, Change) {
    let OperationDraft {
        input,
        action,
        trace_context,
        ..
    } = draft;
    let state = input.state.unwrap_or(OpState::Running);
    let started_at = match state {
        OpState::Waiting => input.started_at,
        _ => Some(input.started_at.unwrap_or(now)),
    };
    let mut op = Operation {
        id,
        environment: environment.to_owned(),
        kind: input.kind,
        message: input
            .message
            .unwrap_or_else(|| default_title(input.kind, &action)),
        action,
        state,
        integration: input.integration,
        connection_id: input.connection_id,
        script: input.script,
        provider: input.provider,
        error: input.error,
        request: input.request,
        response: input.response,
        records: input.records,
        meta: input.meta,
        end_user: input.end_user,
        tags: input.tags.unwrap_or_default(),
        is_async: input.is_async.unwrap_or(false),
        sync_type: input.sync_type,
        checkpoints: input.checkpoints,
        auth_mode: input.auth_mode,
        output: input.output,
        trace_context,
        created_at: now,
        updated_at: now,
        started_at,
        ended_at: None,
        expires_at: input
            .expires_at
            .unwrap_or_else(|| now.plus_millis(deadline.as_millis() as i64)),
        duration_ms: None,
        message_count: 0,
    };
    if state.is_terminal() {
        finish(&mut op, input.ended_at.unwrap_or(now));
        (op, Change::Ended)
    } else {
        (op, Change::Updated)
    }
}

/// Applies a validated patch. On error `op` is unchanged.
pub fn apply_patch(
    op: &mut Operation,
    patch: OperationPatch,
    now: Timestamp,
) -> Result<Change, LifecycleError> {
    check_patch(op, &patch)?;
    Ok(apply_checked(op, patch, now))
}

/// Whether `patch` may change `op`: a terminal state is final (repeating it is a no-op) and
/// `running` never goes back to `waiting`.
pub fn check_patch(op: &Operation, patch: &OperationPatch) -> Result<(), LifecycleError> {
    if op.state.is_terminal() {
        return match patch.state {
            Some(s) if s == op.state => Ok(()),
            _ => Err(LifecycleError::AlreadyEnded { current: op.state }),
        };
    }
    if patch.state == Some(OpState::Waiting) && op.state == OpState::Running {
        return Err(LifecycleError::Backwards {
            from: op.state,
            to: OpState::Waiting,
        });
    }
    Ok(())
}

/// Applies a patch that `check_patch` accepted for `op`.
fn apply_checked(op: &mut Operation, patch: OperationPatch, now: Timestamp) -> Change {
    if op.state.is_terminal() {
        return Change::Unchanged;
    }
    let target = patch.state.unwrap_or(op.state);
    let OperationPatch {
        state: _,
        message,
        error,
        records,
        meta,
        request,
        response,
        sync_type,
        checkpoints,
        auth_mode,
        output,
        started_at,
        ended_at,
    } = patch;
    replace_if_some(&mut op.sync_type, sync_type.map(Some));
    replace_if_some(&mut op.checkpoints, checkpoints.map(Some));
    replace_if_some(&mut op.auth_mode, auth_mode.map(Some));
    replace_if_some(&mut op.output, output.map(Some));
    replace_if_some(&mut op.message, message);
    replace_if_some(&mut op.error, error.map(Some));
    replace_if_some(&mut op.records, records.map(Some));
    replace_if_some(&mut op.meta, meta.map(Some));
    replace_if_some(&mut op.request, request.map(Some));
    replace_if_some(&mut op.response, response.map(Some));
    replace_if_some(&mut op.started_at, started_at.map(Some));
    if target != OpState::Waiting && op.started_at.is_none() {
        op.started_at = Some(now);
    }
    op.state = target;
    op.updated_at = now;
    if target.is_terminal() {
        finish(op, ended_at.unwrap_or(now));
        Change::Ended
    } else {
        Change::Updated
    }
}

/// Moves an overdue operation to `timeout`, explaining why in its error; one already ended is
/// left as it is.
pub fn time_out(op: &mut Operation, now: Timestamp) -> Change {
    let patch = OperationPatch {
        state: Some(OpState::Timeout),
        message: None,
        error: op.error.is_none().then(|| ErrorInfo {
            name: Some("timeout".into()),
            message: format!(
                "no end was reported before the deadline ({})",
                op.expires_at
            ),
            kind: None,
            payload: None,
        }),
        records: None,
        meta: None,
        request: None,
        response: None,
        sync_type: None,
        checkpoints: None,
        auth_mode: None,
        output: None,
        started_at: None,
        ended_at: None,
    };
    // Never refused: a terminal operation is left unchanged and `timeout` is no step back.
    apply_checked(op, patch, now)
}

/// Moves a delivery's `webhook:deliver` log to `state` (`running` while it retries, then its
/// outcome), with the receiver's answer; an ended log is left as it is.
pub fn settle_delivery_log(
    op: &mut Operation,
    state: OpState,
    error: Option<ErrorInfo>,
    response: Option<HttpResponse>,
    now: Timestamp,
) -> Change {
    let patch = OperationPatch {
        state: Some(state),
        message: None,
        error,
        records: None,
        meta: None,
        request: None,
        response,
        sync_type: None,
        checkpoints: None,
        auth_mode: None,
        output: None,
        started_at: None,
        ended_at: None,
    };
    if state == OpState::Waiting {
        return Change::Unchanged; // never asked for: a log only moves on
    }
    apply_checked(op, patch, now)
}

fn finish(op: &mut Operation, ended_at: Timestamp) {
    let started = *op.started_at.get_or_insert(op.created_at.min(ended_at));
    op.ended_at = Some(ended_at);
    op.duration_ms = Some(ended_at.millis().saturating_sub(started.millis()).max(0) as u64);
}

fn replace_if_some<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::input::{validate_new_operation, Redaction};

    fn create(json: &str, now: i64) -> (Operation, Change) {
        let input = serde_json::from_str(json).unwrap();
        let draft = validate_new_operation(input, &Redaction::new(&[])).unwrap();
        new_operation(
            Id(1),
            "prod",
            draft,
            Timestamp(now),
            Duration::from_secs(60),
        )
    }

    fn patch(json: &str) -> OperationPatch {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn running_then_success_sets_times() {
        let (mut op, change) = create(r#"{"type":"sync","script":"issues"}"#, 1_000);
        assert_eq!(change, Change::Updated);
        assert_eq!(op.state, OpState::Running);
        assert_eq!(op.started_at, Some(Timestamp(1_000)));
        assert_eq!(op.expires_at, Timestamp(61_000));
        assert_eq!(op.message, "Sync execution");
        let change = apply_patch(&mut op, patch(r#"{"state":"success"}"#), Timestamp(3_500));
        assert_eq!(change, Ok(Change::Ended));
        assert_eq!(op.ended_at, Some(Timestamp(3_500)));
        assert_eq!(op.duration_ms, Some(2_500));
    }

    #[test]
    fn terminal_states_are_final() {
        let (mut op, _) = create(r#"{"type":"action"}"#, 0);
        apply_patch(&mut op, patch(r#"{"state":"failed"}"#), Timestamp(5)).unwrap();
        let before = op.clone();
        assert_eq!(
            apply_patch(&mut op, patch(r#"{"state":"failed"}"#), Timestamp(9)),
            Ok(Change::Unchanged)
        );
        assert_eq!(
            apply_patch(&mut op, patch(r#"{"state":"success"}"#), Timestamp(9)),
            Err(LifecycleError::AlreadyEnded {
                current: OpState::Failed
            })
        );
        assert_eq!(
            apply_patch(&mut op, patch(r#"{"meta":{"a":1}}"#), Timestamp(9)),
            Err(LifecycleError::AlreadyEnded {
                current: OpState::Failed
            })
        );
        assert_eq!(
            op, before,
            "a refused change leaves the operation as it was"
        );
    }

    #[test]
    fn waiting_starts_later_and_never_goes_back() {
        let (mut op, _) = create(r#"{"type":"sync","state":"waiting"}"#, 0);
        assert_eq!(op.started_at, None);
        apply_patch(&mut op, patch(r#"{"state":"running"}"#), Timestamp(7)).unwrap();
        assert_eq!(op.started_at, Some(Timestamp(7)));
        assert!(matches!(
            apply_patch(&mut op, patch(r#"{"state":"waiting"}"#), Timestamp(8)),
            Err(LifecycleError::Backwards { .. })
        ));
    }

    #[test]
    fn created_ended_and_timed_out() {
        let (op, change) = create(
            r#"{"type":"webhook","state":"success","started_at":"1970-01-01T00:00:00.010Z","ended_at":"1970-01-01T00:00:00.030Z"}"#,
            100,
        );
        assert_eq!(change, Change::Ended);
        assert_eq!(op.duration_ms, Some(20));
        assert_eq!(op.message, "Incoming webhook");

        let (mut op, _) = create(r#"{"type":"auth"}"#, 0);
        assert_eq!(time_out(&mut op, Timestamp(70_000)), Change::Ended);
        assert_eq!(op.state, OpState::Timeout);
        assert!(op.error.unwrap().message.contains("deadline"));
    }
}
