//! Turning requests into typed input, with errors that say what to fix: the principal (a bearer
//! token, or the dashboard's session cookie standing for whoever signed in),
//! JSON bodies (size, encoding, syntax with position, the path of a bad field) and query strings;
//! and the middleware that reads what a handler left of a body, so refused clients read the answer.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::AppState;
use crate::auth::Principal;
use crate::model::Object;
use crate::session;

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

/// The W3C Trace Context of a request (`traceparent`, `tracestate`), or `None` when it has none
/// or it is not valid: the W3C says to ignore an invalid one, so it is never a 4xx. Two
/// `traceparent` headers are invalid; several `tracestate` headers are one list.
pub fn trace_context(headers: &HeaderMap) -> Option<crate::model::TraceContext> {
    let mut parents = headers.get_all("traceparent").iter();
    let parent = parents.next()?.to_str().ok()?;
    if parents.next().is_some() {
        return None;
    }
    let states: Vec<&str> = headers
        .get_all("tracestate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let state = (!states.is_empty()).then(|| states.join(","));
    crate::model::TraceContext::from_w3c(parent, state.as_deref())
}

/// Without a bearer token, a dashboard session cookie stands for whoever signed in: the admin,
/// or a viewer of one environment (an environment key with the `read` scope).
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
    match state.sessions.principal(id, Instant::now()) {
        Some(principal) => Ok(Auth(principal)),
        None => Err(ApiError::unauthorized(
            "your dashboard session has expired or was ended; log in again",
        )),
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
    match read_limited(headers, body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyRefused::TooLarge) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than the limit of {limit} bytes (server.max_body_bytes); send smaller batches"),
        )),
        Err(BodyRefused::Unreadable(e)) => Err(e),
    }
}

/// Why [`read_limited`] refused a body.
pub enum BodyRefused {
    TooLarge,
    Unreadable(ApiError),
}

/// Reads a body of at most `limit` bytes. A larger one is refused as soon as that is known (from
/// its declared length or from what arrived); [`drain_unread_body`] reads the rest.
pub async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Bytes, BodyRefused> {
    if content_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(BodyRefused::TooLarge);
    }
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            BodyRefused::Unreadable(ApiError::bad_request(
                "body_unreadable",
                format!("the request body could not be read: {e}"),
            ))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if kept.len() + data.len() > limit {
            return Err(BodyRefused::TooLarge);
        }
        kept.extend_from_slice(&data);
    }
    Ok(Bytes::from(kept))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The most bytes of a body left unread by its handler (refused as too large, or answered without
/// it) that are still read and dropped before the answer goes out. Clients that send the whole
/// body before they read (Python's urllib and requests, many others) then read the answer
/// instead of a connection reset mid-upload.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;
/// How long such a body is read at most.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Middleware: reads and drops what a handler left of the request body (at most `DRAIN_BYTES`
/// for at most `DRAIN_TIME`) before the answer is sent. A body beyond those bounds is not read
/// on; the answer then says `connection: close`.
pub async fn drain_unread_body(request: Request, next: Next) -> Response {
    let declared = content_length(request.headers());
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let left = Arc::new(Mutex::new(None));
    let body = Body::new(Tracked {
        inner: body,
        read: 0,
        polled: false,
        ended: false,
        left: left.clone(),
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let unread = left.lock().map(|mut slot| slot.take()).unwrap_or(None);
    let Some(unread) = unread else {
        return response;
    };
    // A client waiting for `100 Continue` has sent nothing yet and will not, if we do not ask.
    let worth_draining = (unread.polled || !expects_continue)
        && declared.is_none_or(|n| n.saturating_sub(unread.read) <= DRAIN_BYTES);
    let drained = worth_draining
        && tokio::time::timeout(DRAIN_TIME, drain(unread.body))
            .await
            .unwrap_or(false);
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads `body` to its end and drops it: true when it ended within `DRAIN_BYTES`.
async fn drain(mut body: Body) -> bool {
    let mut read = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return false;
        };
        if let Some(data) = frame.data_ref() {
            read += data.len() as u64;
            if read > DRAIN_BYTES {
                return false;
            }
        }
    }
    true
}

/// What a handler left of a request body.
struct Unread {
    body: Body,
    /// Bytes the handler read.
    read: u64,
    /// Whether the handler asked for the body at all.
    polled: bool,
}

/// A request body that, when dropped before its end, hands what is left to `left`.
struct Tracked {
    inner: Body,
    read: u64,
    polled: bool,
    ended: bool,
    left: Arc<Mutex<Option<Unread>>>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        this.polled = true;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                this.read += frame.data_ref().map_or(0, |d| d.len() as u64);
            }
            // A broken body is not drained: the connection is gone or unusable.
            Poll::Ready(None | Some(Err(_))) => this.ended = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.ended || self.inner.is_end_stream() {
            return;
        }
        if let Ok(mut slot) = self.left.lock() {
            *slot = Some(Unread {
                body: std::mem::replace(&mut self.inner, Body::empty()),
                read: self.read,
                polled: self.polled,
            });
        }
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
    // Well-formed bodies take the plain parser: tracking the path costs an allocation per object
    // key, a tenth of the daemon's CPU at full ingest. Only a refused body is parsed again, with
    // the path, to say where it went wrong.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        json_error(e.into_inner(), &path)
    })?;
    de.end().map_err(|e| json_error(e, ""))?;
    Ok(value)
}

/// Parses a JSON object into the struct `T` (never from an array of its fields).
pub fn parse_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_json::<Object<T>>(bytes).map(|Object(value)| value)
}

/// Parses a JSON array of objects into structs `T`.
pub fn parse_json_objects<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, ApiError> {
    let items: Vec<Object<T>> = parse_json(bytes)?;
    Ok(items.into_iter().map(|Object(item)| item).collect())
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
