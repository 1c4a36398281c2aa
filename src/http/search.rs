//! Read endpoints over many records: list and search operations and messages, facet values for
//! the filter pickers, and insight buckets for the charts.
//!
//! Queries run on the blocking pool (tantivy and redb both block); hits are re-read from the store
//! so what is shown is always the stored truth.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::error::ApiError;
use super::extract::{Auth, Path};
use super::{blocking, json, page_limit, AppState, DataPage};
use crate::config::ApiDuration;
use crate::index::query::{self, TextQuery};
use crate::index::{self, Bound, Filters, Hits, IndexError, Page, TypeFilter};
use crate::model::{Id, Level, Message, MessageType, OpState, OpType, Operation, Timestamp};
use crate::scope::Scope;
use crate::snippet::{self, Snippet, SnippetSource};
use crate::store::{MessageRange, ReadTx};

impl From<IndexError> for ApiError {
    fn from(e: IndexError) -> ApiError {
        match e {
            IndexError::Rebuilding(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "index_rebuilding",
                e.to_string(),
            ),
            IndexError::Query(message) => {
                ApiError::bad_request("invalid_query", format!("`q`: {message}")).with_field("q")
            }
            IndexError::Store(s) => s.into(),
            other => ApiError::internal("search failed", &other),
        }
    }
}

/// The query string as (name, value) pairs; names outside `allowed` are a 400.
pub(super) fn pairs(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    for (name, _) in &pairs {
        if !allowed.contains(&name.as_str()) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "unknown query parameter `{name}`; this endpoint takes {}",
                    allowed.join(", ")
                ),
            )
            .with_field(name.clone()));
        }
    }
    Ok(pairs)
}

pub(super) fn invalid(field: &str, message: String) -> ApiError {
    ApiError::bad_request("invalid_query", format!("`{field}`: {message}")).with_field(field)
}

fn parse_enum<T>(
    field: &str,
    value: &str,
    parse: fn(&str) -> Option<T>,
    allowed: String,
) -> Result<T, ApiError> {
    parse(value).ok_or_else(|| invalid(field, format!("`{value}` is not one of {allowed}")))
}

pub(super) fn parse_time(field: &str, value: &str) -> Result<Timestamp, ApiError> {
    Timestamp::parse(value).map_err(|e| invalid(field, e))
}

fn parse_type(value: &str) -> Result<TypeFilter, ApiError> {
    let (kind, action) = match value.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (value, None),
    };
    let kind = parse_enum("type", kind, OpType::parse, OpType::allowed())?;
    if let Some(a) = action {
        let ok = !a.is_empty()
            && a.len() <= 64
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(invalid(
                "type",
                format!("`{value}` is not `type` or `type:action`"),
            ));
        }
    }
    Ok(TypeFilter {
        kind,
        action: action.map(str::to_owned),
    })
}

/// `key:value`, the form tags are indexed in.
fn parse_tag(text: &str) -> Result<String, ApiError> {
    match text.split_once(':') {
        Some((key, value))
            if crate::ingest::input::is_tag_key(key)
                && !value.is_empty()
                && value.chars().count() <= crate::ingest::input::MAX_TAG_VALUE_CHARS =>
        {
            Ok(text.to_owned())
        }
        _ => Err(invalid(
            "tag",
            format!(
                "`{text}` is not `key:value` (a tag key, a colon, a value of 1-256 characters)"
            ),
        )),
    }
}

/// A W3C trace id, as the drawer shows it and trace viewers print it (any case).
fn parse_trace_id(text: &str) -> Result<String, ApiError> {
    crate::model::TraceId::parse(&text.to_ascii_lowercase())
        .map(|id| id.to_string())
        .ok_or_else(|| {
            invalid(
                "trace_id",
                format!("`{text}` is not a trace id (32 hex digits, not all zero)"),
            )
        })
}

pub(super) fn check_value(field: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty() || value.chars().count() > 256 {
        return Err(invalid(field, "must be 1-256 characters".into()));
    }
    Ok(value.to_owned())
}

/// Everything a list or search request can say, parsed and validated.
#[derive(Default)]
struct Request {
    filters: Filters,
    q: Option<TextQuery>,
    q_text: String,
    limit: Option<usize>,
    cursor: Option<String>,
    after: Option<Id>,
    before: Option<Id>,
    /// `snippets=true`: each hit says where the query matched it.
    snippets: bool,
    other: Vec<(String, String)>,
}

impl Request {
    /// `message_type_key` names the parameter holding log/http (`type` on one operation's
    /// messages, where the operation type is fixed; `message_type` elsewhere).
    fn parse(pairs: Vec<(String, String)>, message_type_key: &str) -> Result<Request, ApiError> {
        let mut r = Request::default();
        for (name, value) in pairs {
            let f = &mut r.filters;
            match name.as_str() {
                n if n == message_type_key => f.message_types.push(parse_enum(
                    n,
                    &value,
                    MessageType::parse,
                    MessageType::allowed(),
                )?),
                "type" => f.types.push(parse_type(&value)?),
                "state" => f.states.push(parse_enum(
                    "state",
                    &value,
                    OpState::parse,
                    OpState::allowed(),
                )?),
                "integration" => f.integrations.push(check_value("integration", &value)?),
                "connection_id" => f.connection_ids.push(check_value("connection_id", &value)?),
                "script" => f.scripts.push(check_value("script", &value)?),
                "end_user_id" => f.end_user_ids.push(check_value("end_user_id", &value)?),
                "tag" => f.tags.push(parse_tag(&value)?),
                "trace_id" => f.trace_ids.push(parse_trace_id(&value)?),
                "level" => {
                    f.levels
                        .push(parse_enum("level", &value, Level::parse, Level::allowed())?)
                }
                "from" => f.from = Some(parse_time("from", &value)?),
                "to" => f.to = Some(parse_time("to", &value)?),
                "q" => {
                    let parsed = query::parse(&value).map_err(|e| invalid("q", e.to_string()))?;
                    r.q = (!parsed.is_empty()).then_some(parsed);
                    r.q_text = value;
                }
                "limit" => {
                    r.limit = Some(
                        value
                            .parse()
                            .map_err(|_| invalid("limit", format!("`{value}` is not a number")))?,
                    )
                }
                "cursor" => r.cursor = Some(value),
                "snippets" => {
                    r.snippets = match value.as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(invalid(
                                "snippets",
                                format!("`{value}` is not true or false"),
                            ))
                        }
                    }
                }
                "after" | "before" => {
                    let id = Id::parse(&value).ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_cursor",
                            format!("`{name}` must be a message id (26-character ULID)"),
                        )
                        .with_field(name.clone())
                    })?;
                    if name == "after" {
                        r.after = Some(id)
                    } else {
                        r.before = Some(id)
                    }
                }
                _ => r.other.push((name, value)),
            }
        }
        let f = &mut r.filters;
        // Canonical order, so the same filters in another order continue the same cursor.
        f.types
            .sort_by(|a, b| (a.kind.as_str(), &a.action).cmp(&(b.kind.as_str(), &b.action)));
        f.types.dedup();
        for list in [
            &mut f.integrations,
            &mut f.connection_ids,
            &mut f.scripts,
            &mut f.end_user_ids,
            &mut f.tags,
            &mut f.trace_ids,
        ] {
            list.sort();
            list.dedup();
        }
        f.states.sort_by_key(|s| s.as_str());
        f.states.dedup();
        f.levels.sort_by_key(|l| l.as_str());
        f.levels.dedup();
        f.message_types.sort_by_key(|t| t.as_str());
        f.message_types.dedup();
        Ok(r)
    }

    /// The newest-first page this request asks for, and the scope its cursors are sealed to.
    fn newest_first_page(
        &self,
        state: &AppState,
        endpoint: &str,
        env: &str,
    ) -> Result<(String, Page), ApiError> {
        let limit = page_limit(self.limit)?;
        let scope = self.scope(endpoint, env);
        let bound = self
            .cursor
            .as_deref()
            .map(|c| state.cursor_key.decode(&scope, c))
            .transpose()?;
        let page = Page {
            limit,
            ascending: false,
            bound,
        };
        Ok((scope, page))
    }

    /// What a cursor of this request is bound to.
    fn scope(&self, endpoint: &str, env: &str) -> String {
        format!("{endpoint}|{env}|{:?}|{}", self.filters, self.q_text)
    }
}

const FILTERS: &[&str] = &[
    "type",
    "state",
    "integration",
    "connection_id",
    "script",
    "end_user_id",
    "tag",
    "trace_id",
    "from",
    "to",
    "q",
];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    FILTERS.iter().chain(extra).copied().collect()
}

/// An operation found by `GET /operations`; with `snippets=true` and a `q`, where it matched.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OperationHit {
    #[serde(flatten)]
    operation: Operation,
    /// Where the query matched: the operation's own text, or else its first matching message.
    #[serde(skip_serializing_if = "Option::is_none")]
    snippet: Option<Snippet>,
}

pub async fn list_operations(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let request = Request::parse(
        pairs(query.as_deref(), &with(&["limit", "cursor", "snippets"]))?,
        "",
    )?;
    let (scope, page) = request.newest_first_page(&state, "operations", &env)?;
    let st = state.clone();
    let (hits, data) = blocking(move || {
        let hits = st
            .index
            .operations(&env, &request.filters, request.q.as_ref(), page)?;
        let read = st.store.read()?;
        let mut data = Vec::with_capacity(hits.ids.len());
        for (id, _) in &hits.ids {
            let Some(operation) = read.operation(*id)? else {
                continue;
            };
            let snippet = match (&request.q, request.snippets) {
                (Some(q), true) => operation_snippet(&st, &read, q, &operation)?,
                _ => None,
            };
            data.push(OperationHit { operation, snippet });
        }
        Ok((hits, data))
    })
    .await?;
    let next_cursor = next_cursor(&state, &scope, &hits, false);
    Ok(json(
        StatusCode::OK,
        &DataPage {
            data,
            next_cursor,
            total: hits.total,
        },
    ))
}

/// Where `q` matched `op`: its own text when that matches, else its oldest matching message
/// (one index lookup, limit 1, within the operation).
fn operation_snippet(
    state: &AppState,
    read: &ReadTx,
    q: &TextQuery,
    op: &Operation,
) -> Result<Option<Snippet>, ApiError> {
    let own = index::operation_text(op);
    if let Some(s) = snippet::snippet(q, &own, SnippetSource::Operation, None) {
        return Ok(Some(s));
    }
    let within = Filters {
        operation: Some(op.id),
        ..Filters::default()
    };
    let first = Page {
        limit: 1,
        ascending: true,
        bound: None,
    };
    let hits = state
        .index
        .messages(&op.environment, &within, Some(q), first)?;
    let Some((message_id, _)) = hits.ids.first() else {
        return Ok(None);
    };
    Ok(read
        .message(op.id, *message_id)?
        .and_then(|m| message_snippet(q, &m)))
}

fn message_snippet(q: &TextQuery, message: &Message) -> Option<Snippet> {
    let text = index::message_text(message);
    snippet::snippet(q, &text, SnippetSource::Message, Some(message.id))
}

fn next_cursor(state: &AppState, scope: &str, hits: &Hits, ascending: bool) -> Option<String> {
    if !hits.more {
        return None;
    }
    let (last, _) = hits.ids.last()?;
    let bound = if ascending {
        Bound::After(last.0)
    } else {
        Bound::Before(last.0)
    };
    Some(state.cursor_key.encode(scope, bound))
}

/// The operation a message hit belongs to, enough to show and filter it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct OperationSummary {
    id: Id,
    #[serde(rename = "type")]
    kind: OpType,
    action: String,
    state: OpState,
    integration: Option<String>,
    connection_id: Option<String>,
    script: Option<String>,
}

/// A message found by `GET /messages`, with the operation it belongs to.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageHit {
    #[serde(flatten)]
    message: Message,
    operation: OperationSummary,
    /// With `snippets=true` and a `q`: where the query matched this message.
    #[serde(skip_serializing_if = "Option::is_none")]
    snippet: Option<Snippet>,
}

pub async fn search_messages(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let request = Request::parse(
        pairs(
            query.as_deref(),
            &with(&["level", "message_type", "limit", "cursor", "snippets"]),
        )?,
        "message_type",
    )?;
    let (scope, page) = request.newest_first_page(&state, "messages", &env)?;
    let st = state.clone();
    let (hits, data) = blocking(move || {
        let hits = st
            .index
            .messages(&env, &request.filters, request.q.as_ref(), page)?;
        let read = st.store.read()?;
        let mut data = Vec::with_capacity(hits.ids.len());
        for (id, op_id) in &hits.ids {
            let (Some(message), Some(op)) = (read.message(*op_id, *id)?, read.operation(*op_id)?)
            else {
                continue;
            };
            let snippet = match (&request.q, request.snippets) {
                (Some(q), true) => message_snippet(q, &message),
                _ => None,
            };
            data.push(MessageHit {
                snippet,
                message,
                operation: OperationSummary {
                    id: op.id,
                    kind: op.kind,
                    action: op.action,
                    state: op.state,
                    integration: op.integration,
                    connection_id: op.connection_id,
                    script: op.script,
                },
            });
        }
        Ok((hits, data))
    })
    .await?;
    let next_cursor = next_cursor(&state, &scope, &hits, false);
    Ok(json(
        StatusCode::OK,
        &DataPage {
            data,
            next_cursor,
            total: hits.total,
        },
    ))
}

/// A message of one operation; with `snippets=true` and a `q`, where the query matched it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageInContext {
    #[serde(flatten)]
    message: Message,
    #[serde(skip_serializing_if = "Option::is_none")]
    snippet: Option<Snippet>,
}

/// One operation's messages, oldest first. Without `q`/`level`/`type` they are read straight from
/// the store (so even a just-written message shows); with them, through the index.
pub async fn list_messages(
    State(state): State<Arc<AppState>>,
    Path((env, id)): Path<(String, String)>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let op_id = super::operations::parse_id(&id)?;
    let mut request = Request::parse(
        pairs(
            query.as_deref(),
            &[
                "q", "level", "type", "limit", "cursor", "after", "before", "snippets",
            ],
        )?,
        "type",
    )?;
    request.filters.operation = Some(op_id);
    let limit = page_limit(request.limit)?;
    let scope = request.scope("operation-messages", &env);
    let mut after = request.after;
    let mut before = request.before;
    if let Some(cursor) = &request.cursor {
        match state.cursor_key.decode(&scope, cursor)? {
            Bound::After(id) => after = Some(Id(id)),
            Bound::Before(id) => before = Some(Id(id)),
        }
    }
    let backwards = before.is_some() && after.is_none();
    let filtered = request.q.is_some()
        || !request.filters.levels.is_empty()
        || !request.filters.message_types.is_empty();
    let snippet_query = request.q.clone().filter(|_| request.snippets);
    let st = state.clone();
    let env_for_read = env.clone();
    let (operation, messages, more, total) = blocking(move || {
        let read = st.store.read()?;
        let operation = read
            .operation(op_id)?
            .filter(|op| op.environment == env_for_read)
            .ok_or_else(|| super::operations::operation_not_found(op_id))?;
        if !filtered {
            let range = MessageRange {
                after,
                before,
                limit,
            };
            let (messages, more) = read.messages(op_id, range)?;
            let total = operation.message_count;
            return Ok((operation, messages, more, total));
        }
        let bound = match (after, before) {
            (Some(a), _) => Some(Bound::After(a.0)),
            (None, Some(b)) => Some(Bound::Before(b.0)),
            (None, None) => None,
        };
        let page = Page {
            limit,
            ascending: !backwards,
            bound,
        };
        let hits = st
            .index
            .messages(&env_for_read, &request.filters, request.q.as_ref(), page)?;
        let mut messages = Vec::with_capacity(hits.ids.len());
        for (id, _) in &hits.ids {
            messages.extend(read.message(op_id, *id)?);
        }
        if backwards {
            messages.reverse();
        }
        Ok((operation, messages, hits.more, hits.total))
    })
    .await?;
    drop(operation);
    let data: Vec<MessageInContext> = messages
        .into_iter()
        .map(|message| MessageInContext {
            snippet: snippet_query
                .as_ref()
                .and_then(|q| message_snippet(q, &message)),
            message,
        })
        .collect();
    let next_cursor = match (more, backwards) {
        (false, _) => None,
        (true, false) => data.last().map(|m| {
            state
                .cursor_key
                .encode(&scope, Bound::After(m.message.id.0))
        }),
        (true, true) => data.first().map(|m| {
            state
                .cursor_key
                .encode(&scope, Bound::Before(m.message.id.0))
        }),
    };
    Ok(json(
        StatusCode::OK,
        &DataPage {
            data,
            next_cursor,
            total,
        },
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct FacetValue {
    value: String,
    /// Operations with this value among those matching the filters.
    count: u64,
}

/// The values of one field, most frequent first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Facets {
    field: &'static str,
    data: Vec<FacetValue>,
    /// How many distinct values match (`data` holds at most `limit` of them).
    total_values: usize,
}

pub async fn facets(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let request = Request::parse(
        pairs(
            query.as_deref(),
            &["field", "prefix", "from", "to", "type", "state", "limit"],
        )?,
        "",
    )?;
    let mut field = None;
    let mut prefix = String::new();
    for (name, value) in &request.other {
        match name.as_str() {
            "field" => field = Some(value.clone()),
            _ => prefix = value.clone(),
        }
    }
    let field: &'static str = match field.as_deref() {
        Some("integration") => "integration",
        Some("connection_id") => "connection_id",
        Some("script") => "script",
        Some("end_user_id") => "end_user_id",
        Some("tag") => "tag",
        Some(other) => {
            return Err(invalid(
                "field",
                format!(
                    "`{other}` is not one of integration, connection_id, script, end_user_id, tag"
                ),
            ))
        }
        None => {
            return Err(invalid(
                "field",
                "is required: integration, connection_id, script, end_user_id or tag".into(),
            ))
        }
    };
    let limit = match request.limit {
        None => 20,
        Some(n) if (1..=100).contains(&n) => n,
        Some(n) => return Err(invalid("limit", format!("{n} is not between 1 and 100"))),
    };
    let st = state.clone();
    let (values, distinct) = blocking(move || {
        Ok(st
            .index
            .facet_values(&env, field, &prefix, &request.filters, limit)?)
    })
    .await?;
    let data: Vec<FacetValue> = values
        .into_iter()
        .map(|(value, count)| FacetValue { value, count })
        .collect();
    Ok(json(
        StatusCode::OK,
        &Facets {
            field,
            data,
            total_values: distinct,
        },
    ))
}

const MAX_BUCKETS: i64 = 1_000;
/// An insights bucket width the client asks for: 1s to 366d.
pub type Interval = ApiDuration<1_000, 31_622_400_000>;

/// Operations started in one time bucket (created, for those with no start), by state.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Bucket {
    start: Timestamp,
    success: u64,
    failed: u64,
    timeout: u64,
    cancelled: u64,
    /// Waiting or running.
    running: u64,
}

/// Counts per time bucket, for charts.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Insights {
    from: Timestamp,
    to: Timestamp,
    interval_ms: i64,
    buckets: Vec<Bucket>,
    /// Operations counted over every bucket.
    total: u64,
}

pub async fn insights(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let mut request = Request::parse(
        pairs(
            query.as_deref(),
            &[
                "type",
                "integration",
                "connection_id",
                "script",
                "end_user_id",
                "tag",
                "trace_id",
                "from",
                "to",
                "interval",
            ],
        )?,
        "",
    )?;
    let to = request.filters.to.unwrap_or_else(Timestamp::now);
    let from = request
        .filters
        .from
        .unwrap_or(to.plus_millis(-24 * 3600 * 1000));
    // An empty window (`to` at or before `from`) has no buckets.
    let span = to.millis().saturating_sub(from.millis()).max(0);
    let asked = match request.other.iter().find(|(n, _)| n == "interval") {
        Some((_, text)) => {
            let interval = Interval::parse(text).map_err(|e| invalid("interval", e))?;
            i64::try_from(interval.0.as_millis()).unwrap_or(i64::MAX)
        }
        None => auto_interval(span.max(1)),
    };
    // Widened when it would give more buckets than a chart can show; the answer says which.
    let interval_ms = asked.max((span.unsigned_abs().div_ceil(MAX_BUCKETS as u64)) as i64);
    let buckets = span.unsigned_abs().div_ceil(interval_ms.unsigned_abs());
    request.filters.from = Some(from);
    request.filters.to = Some(to);
    // Bucketed by when operations happened: history sent (or imported) later lands where it
    // belongs, not in the last bucket.
    request.filters.by_start = true;
    let st = state.clone();
    let filters = request.filters.clone();
    let counts = blocking(move || {
        Ok(st
            .index
            .state_buckets(&env, &filters, from, interval_ms, buckets as usize)?)
    })
    .await?;
    let code = crate::index::search::state_code;
    let data: Vec<Bucket> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| Bucket {
            start: from.plus_millis(i as i64 * interval_ms),
            success: c[code(OpState::Success)],
            failed: c[code(OpState::Failed)],
            timeout: c[code(OpState::Timeout)],
            cancelled: c[code(OpState::Cancelled)],
            running: c[code(OpState::Running)] + c[code(OpState::Waiting)],
        })
        .collect();
    let total: u64 = counts.iter().flatten().sum();
    Ok(json(
        StatusCode::OK,
        &Insights {
            from,
            to,
            interval_ms,
            buckets: data,
            total,
        },
    ))
}

/// A round interval giving 30-100 buckets over `span_ms`.
fn auto_interval(span_ms: i64) -> i64 {
    const STEPS: &[u64] = &[
        60,
        300,
        900,
        1800,
        3600,
        3 * 3600,
        6 * 3600,
        12 * 3600,
        86400,
    ];
    STEPS
        .iter()
        .map(|s| Duration::from_secs(*s).as_millis() as i64)
        .find(|step| span_ms / step <= 100)
        .unwrap_or(86_400_000 * 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str, mt: &str) -> Result<Request, ApiError> {
        Request::parse(
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
            mt,
        )
    }

    #[test]
    fn filters_parse_and_normalise() {
        let r = parse(
            "type=sync:run&type=action&state=failed&integration=b&integration=a&integration=a",
            "",
        )
        .unwrap();
        assert_eq!(r.filters.types.len(), 2);
        assert_eq!(r.filters.integrations, vec!["a", "b"]);
        let other_order = parse(
            "integration=a&integration=b&state=failed&type=action&type=sync:run",
            "",
        )
        .unwrap();
        assert_eq!(r.scope("x", "prod"), other_order.scope("x", "prod"));
        assert_eq!(
            parse("type=cron", "").err().unwrap().field.as_deref(),
            Some("type")
        );
        assert_eq!(
            parse("type=sync:Run Now", "")
                .err()
                .unwrap()
                .field
                .as_deref(),
            Some("type")
        );
        assert_eq!(
            parse("q=%22open", "").err().unwrap().field.as_deref(),
            Some("q")
        );
        // An empty window is a query that matches nothing, not a mistake.
        assert!(parse("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "").is_ok());
        assert_eq!(
            parse("type=http", "type").unwrap().filters.message_types,
            vec![MessageType::Http]
        );
    }

    #[test]
    fn auto_intervals_are_round() {
        assert_eq!(auto_interval(3_600_000), 60_000);
        assert_eq!(auto_interval(86_400_000), 900_000);
        assert_eq!(auto_interval(14 * 86_400_000), 6 * 3_600_000);
    }
}
