//! Turning requests into typed input, with errors that say what to fix: the principal (a bearer
//! token, or the dashboard's session cookie standing for the admin),
//! JSON bodies (size, encoding, syntax with position, the path of a bad field) and query strings.

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::auth::Principal;
use crate::session;
use std::sync::Arc;
use std::time::Instant;

/// The authenticated caller. Missing or unknown tokens are a 401.
pub struct Auth(pub Principal);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Auth, ApiError> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return session_principal(parts, state);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <key>`")
            })?;
        state
            .credentials
            .authenticate(token)
            .map(Auth)
            .ok_or_else(|| ApiError::unauthorized("unknown API key or admin token"))
    }
}

/// Without a bearer token, a dashboard session cookie stands for the admin token.
fn session_principal(parts: &Parts, state: &AppState) -> Result<Auth, ApiError> {
    let id = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| session::cookie_value(v, session::COOKIE_NAME))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing `Authorization: Bearer <key>` header (or a dashboard session cookie)",
            )
        })?;
    if state.sessions.is_valid(id, Instant::now()) {
        Ok(Auth(Principal::Admin))
    } else {
        Err(ApiError::unauthorized(
            "your dashboard session has expired or was ended; log in again",
        ))
    }
}

/// Path parameters, like axum's `Path`, but a parameter that does not decode (say, `%FF`, which
/// is not UTF-8) is a 400 in the API's error shape rather than axum's plain-text rejection.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "invalid_path",
                format!("the URL path: {}", rejection.body_text()),
            )),
        }
    }
}

/// Reads a body of at most `limit` bytes; more is a 413. A declared non-JSON type is a 415.
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send JSON with `content-type: application/json`, not `{essence}`"),
            ));
        }
    }
    read_limited_body(headers, body, limit).await
}

/// Reads a body of at most `limit` bytes, whatever its type; more is a 413.
pub async fn read_limited_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes (server.max_body_bytes); send smaller batches"),
        )
    };
    match read_limited(headers, body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyRefused::TooLarge) => Err(too_large()),
        Err(BodyRefused::Unreadable(e)) => Err(ApiError::bad_request(
            "body_unreadable",
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// How much of a refused body is still read (and dropped): enough that a client still sending
/// it reads the 413 instead of a reset connection, little enough that refusing stays cheap.
const DRAIN_BYTES: usize = 1024 * 1024;

/// Why [`read_limited`] refused a body.
pub enum BodyRefused {
    TooLarge,
    Unreadable(String),
}

/// Reads a body of at most `limit` bytes. A larger one is refused; it is read on (and dropped)
/// for up to `DRAIN_BYTES` more, unless its declared length already says it is beyond that.
pub async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Bytes, BodyRefused> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let drain_until = limit.saturating_add(DRAIN_BYTES);
    if declared.is_some_and(|n| n > drain_until as u64) {
        return Err(BodyRefused::TooLarge);
    }
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyRefused::Unreadable(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > drain_until {
            break;
        }
    }
    if seen > limit {
        Err(BodyRefused::TooLarge)
    } else {
        Ok(Bytes::from(kept))
    }
}

/// Parses JSON, naming the position of a syntax error or the path of a field of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(ApiError::bad_request(
            "invalid_utf8",
            format!(
                "the request body is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "the request body is empty; send a JSON document",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(e.into_inner(), &path)
    })?;
    de.end().map_err(|e| json_error(e, ""))?;
    Ok(value)
}

fn json_error(inner: serde_json::Error, path: &str) -> ApiError {
    let position = format!("line {} column {}", inner.line(), inner.column());
    let text = strip_position(&inner.to_string());
    match inner.classify() {
        serde_json::error::Category::Data if path.is_empty() || path == "." => {
            ApiError::bad_request("invalid_field", format!("{text} (at {position})"))
        }
        serde_json::error::Category::Data => {
            ApiError::bad_request("invalid_field", format!("`{path}`: {text} (at {position})"))
                .with_field(path)
        }
        _ => ApiError::bad_request(
            "malformed_json",
            format!("malformed JSON at {position}: {text}"),
        ),
    }
}

/// serde_json appends " at line L column C"; we say the position our own way.
fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

/// Parses a query string into `T`; unknown parameters and bad values are a 400 naming them.
pub fn parse_query<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let query = query.unwrap_or("");
    serde_urlencoded::from_str(query).map_err(|e| {
        let text = e.to_string();
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.starts_with("unknown field"))
            .map(str::to_owned);
        let error = ApiError::bad_request("invalid_query", format!("query string: {text}"));
        match field {
            Some(f) => error.with_field(f),
            None => error,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        level: Option<crate::model::Level>,
        count: Option<u32>,
    }

    #[test]
    fn errors_say_where() {
        let err = parse_json::<Item>(br#"{"level": "warn",}"#).unwrap_err();
        assert_eq!(err.code, "malformed_json");
        assert!(err.message.contains("line 1 column"), "{}", err.message);

        let err = parse_json::<Vec<Item>>(br#"[{}, {"level": "loud"}]"#).unwrap_err();
        assert_eq!(err.code, "invalid_field");
        assert_eq!(err.field.as_deref(), Some("[1].level"));
        assert!(err.message.contains("debug, info, warn") || err.message.contains("`debug`"));

        let err = parse_json::<Item>(br#"{"levle": "warn"}"#).unwrap_err();
        assert!(
            err.message.contains("unknown field `levle`"),
            "{}",
            err.message
        );

        let err = parse_json::<Item>(br#"{"count": 99999999999999999999}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("count"));

        let err = parse_json::<Item>(b"{\"level\": \"\xff\"}").unwrap_err();
        assert_eq!(err.code, "invalid_utf8");

        let err = parse_json::<Item>(br#"{} {}"#).unwrap_err();
        assert_eq!(err.code, "malformed_json");
    }
}
