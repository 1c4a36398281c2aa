//! The one place where errors become HTTP responses: `{"error":{"code","message","field"?}}`.
//!
//! Client mistakes keep their 4xx and a message a person can act on. Everything else is logged
//! with its context here and answered as an opaque 500 (or 503/507 where the client can retry).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ingest::input::FieldError;
use crate::ingest::lifecycle::LifecycleError;
use crate::settings::SettingsError;
use crate::store::StoreError;
use crate::views::{ViewError, ViewRefused};
use crate::write::WriteError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Sent as `Retry-After` (whole seconds, rounded up); a 503 without one says 1.
    pub retry_after: Option<std::time::Duration>,
}

/// The body of every non-2xx answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable, machine-readable, e.g. `invalid_field` or `operation_not_found`.
    code: &'a str,
    /// What went wrong and what to do about it, for a person.
    message: &'a str,
    /// The input at fault (a body field path like `[1].level`, a query parameter or a header).
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, wait: std::time::Duration) -> ApiError {
        self.retry_after = Some(wait);
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Logs an unexpected failure and hides its details from the client.
    pub fn internal(context: &str, error: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the details",
        )
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> ApiError {
        ApiError::bad_request("invalid_field", format!("`{}` {}", e.field, e.message))
            .with_field(e.field)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::DiskFull(_) => {
                tracing::error!(error = %e, "write refused");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "disk_full",
                    "the server's disk is full; nothing was written. Retry once space is freed",
                )
            }
            other => ApiError::internal("store failure", &other),
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> ApiError {
        match e {
            WriteError::OperationNotFound(id) => {
                ApiError::not_found("operation_not_found", format!("operation `{id}` not found"))
            }
            WriteError::Lifecycle(l @ LifecycleError::AlreadyEnded { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "operation_ended", l.to_string())
            }
            WriteError::Lifecycle(l @ LifecycleError::Backwards { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", l.to_string())
                    .with_field("state")
            }
            WriteError::IdempotencyMismatch(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                e.to_string(),
            ),
            WriteError::DeliveryNotFound(id) => {
                ApiError::not_found("delivery_not_found", format!("delivery `{id}` not found"))
            }
            WriteError::ExportNotFound(id) => {
                ApiError::not_found("export_not_found", format!("export `{id}` not found"))
            }
            WriteError::Settings(s) => s.into(),
            WriteError::View(v) => v.into(),
            WriteError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down; nothing was written. Retry shortly",
            ),
            WriteError::Store(s) => s.into(),
        }
    }
}

impl From<SettingsError> for ApiError {
    fn from(e: SettingsError) -> ApiError {
        let field = e.field().to_owned();
        match e {
            SettingsError::Invalid { .. } => {
                ApiError::bad_request("invalid_setting", e.to_string()).with_field(field)
            }
            SettingsError::ReadOnly { .. } => {
                ApiError::new(StatusCode::CONFLICT, "setting_read_only", e.to_string())
                    .with_field(field)
            }
            SettingsError::DestinationRefused { .. } => {
                ApiError::bad_request("destination_refused", e.to_string()).with_field(field)
            }
        }
    }
}

impl From<ViewRefused> for ApiError {
    fn from(e: ViewRefused) -> ApiError {
        let message = e.to_string();
        match e {
            ViewRefused::Invalid(ViewError { field, message }) => {
                ApiError::bad_request("invalid_view", format!("`{field}` {message}"))
                    .with_field(field)
            }
            ViewRefused::NotFound(_) => ApiError::not_found("view_not_found", message),
            ViewRefused::Builtin(_) => ApiError::new(StatusCode::CONFLICT, "view_builtin", message),
            ViewRefused::Taken { field, .. } => {
                ApiError::new(StatusCode::CONFLICT, "view_exists", message).with_field(field)
            }
            ViewRefused::InUse { .. } => {
                ApiError::new(StatusCode::CONFLICT, "view_in_use", message)
            }
            ViewRefused::TooMany => ApiError::new(StatusCode::CONFLICT, "too_many_views", message),
            ViewRefused::NeedsAdmin { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "insufficient_scope", message)
            }
        }
    }
}

/// `wait` in whole seconds, rounded up (a client that waits that long is not early).
pub fn whole_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        })
        .expect("error bodies serialize");
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        let retry_after = match self.retry_after {
            Some(wait) => Some(whole_seconds(wait)),
            None => (self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
        };
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
