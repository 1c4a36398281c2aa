//! Read endpoints over many records: list and search operations and messages, facet values for
//! the filter pickers, and insight buckets for the charts.
//!
//! Queries run on the blocking pool (tantivy and redb both block); hits are re-read from the store
//! so what is shown is always the stored truth.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::csv::{self, Column};
use super::error::ApiError;
use super::extract::{Auth, Path};
use super::{blocking, json, AppState, DataPage};
use crate::index::query::TextQuery;
use crate::index::{self, Bound, Filters, Hits, IndexError, Page};
use crate::model::{Id, Message, OpState, OpType, Operation, Timestamp};
use crate::query_params::{self, Endpoint, ParamError, Query};
use crate::scope::Scope;
use crate::snippet::{self, Snippet, SnippetSource};
use crate::store::{MessageRange, ReadTx, StoreError};

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

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> ApiError {
        ApiError::bad_request(e.code, e.message).with_field(e.field)
    }
}

/// The query string parsed for `endpoint` (`crate::query_params` declares what each takes).
fn parse(endpoint: Endpoint, query: Option<&str>) -> Result<Query, ApiError> {
    Ok(query_params::parse(endpoint, query)?)
}

/// The newest-first page `query` asks for, and the scope its cursors are sealed to.
fn newest_first_page(
    query: &Query,
    state: &AppState,
    endpoint: &str,
    env: &str,
) -> Result<(String, Page), ApiError> {
    let scope = cursor_scope(query, endpoint, env);
    let bound = query
        .cursor
        .as_deref()
        .map(|c| state.cursor_key.decode(&scope, c))
        .transpose()?;
    let page = Page {
        limit: query.limit,
        ascending: false,
        bound,
    };
    Ok((scope, page))
}

/// What a cursor of `query` is bound to.
fn cursor_scope(query: &Query, endpoint: &str, env: &str) -> String {
    format!("{endpoint}|{env}|{:?}|{}", query.filters, query.text_source)
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
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let (as_csv, query) = csv::negotiate(&headers, query.as_deref())?;
    let request = parse(Endpoint::Operations, query.as_deref())?;
    let (scope, page) = newest_first_page(&request, &state, "operations", &env)?;
    if as_csv {
        let pages = move |st: &AppState, before: Option<u128>| {
            let (hits, data) = operation_page(st, &env, &request, csv_page(page, before))?;
            Ok((data, next_bound(&hits)))
        };
        return Ok(stream_csv(
            state,
            "operations",
            csv::OPERATION_COLUMNS,
            pages,
        ));
    }
    let st = state.clone();
    let (hits, data) = blocking(move || operation_page(&st, &env, &request, page)).await?;
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

/// A page of the operations `request` finds, read from the store.
fn operation_page(
    st: &AppState,
    env: &str,
    request: &Query,
    page: Page,
) -> Result<(Hits, Vec<OperationHit>), ApiError> {
    let hits = st
        .index
        .operations(env, &request.filters, request.text.as_ref(), page)?;
    let read = st.store.read()?;
    let mut data = Vec::with_capacity(hits.ids.len());
    for (id, _) in &hits.ids {
        let Some(operation) = read.operation(*id)? else {
            continue;
        };
        let snippet = match (&request.text, request.snippets) {
            (Some(q), true) => operation_snippet(st, &read, q, &operation)?,
            _ => None,
        };
        data.push(OperationHit { operation, snippet });
    }
    Ok((hits, data))
}

/// Hits read per page of a CSV answer.
const CSV_PAGE: usize = 1_000;

/// A page of a CSV answer, newest first: the request's first page (its cursor), then those
/// before `before`.
fn csv_page(first: Page, before: Option<u128>) -> Page {
    Page {
        limit: CSV_PAGE,
        ascending: false,
        bound: before.map(Bound::Before).or(first.bound),
    }
}

/// Where the page after `hits` starts, if there is one.
fn next_bound(hits: &Hits) -> Option<u128> {
    hits.ids
        .last()
        .filter(|_| hits.more)
        .map(|(last, _)| last.0)
}

/// Every match as CSV rows: `page_of(state, bound)` reads a page from `bound` (`None` first) and
/// says where the next one starts (`None` after the last).
fn stream_csv<T: Serialize>(
    state: Arc<AppState>,
    name: &str,
    columns: &'static [Column],
    page_of: impl Fn(&AppState, Option<u128>) -> Result<(Vec<T>, Option<u128>), ApiError>
        + Send
        + 'static,
) -> Response {
    let mut response = super::archive::stream_blocking(csv::CONTENT_TYPE, move |out| {
        use std::io::Write;
        let mut text = String::new();
        csv::header_row(columns, &mut text);
        let mut bound = None;
        loop {
            let (data, next) = page_of(&state, bound).map_err(|e| e.message)?;
            for item in &data {
                let value = serde_json::to_value(item).map_err(|e| e.to_string())?;
                csv::item_row(columns, &value, &mut text);
            }
            out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
            text.clear();
            match next {
                Some(next) => bound = Some(next),
                None => return Ok(()),
            }
        }
    });
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.csv\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
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
    Ok(hit_messages(read, &hits)?
        .into_iter()
        .flatten()
        .next()
        .and_then(|m| message_snippet(q, &m)))
}

/// The messages of message hits, in the hits' order (`None` for one no longer stored), read by
/// sequence number: each block is decompressed once for all its hits.
fn hit_messages(read: &ReadTx, hits: &Hits) -> Result<Vec<Option<Message>>, StoreError> {
    let mut seqs = hits.seqs.clone();
    seqs.sort_unstable();
    let mut found: HashMap<u64, Message> = read.messages_at(&seqs)?.into_iter().collect();
    Ok(hits.seqs.iter().map(|seq| found.remove(seq)).collect())
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
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let (as_csv, query) = csv::negotiate(&headers, query.as_deref())?;
    let request = parse(Endpoint::Messages, query.as_deref())?;
    let (scope, page) = newest_first_page(&request, &state, "messages", &env)?;
    if as_csv {
        let pages = move |st: &AppState, before: Option<u128>| {
            let (hits, data) = message_page(st, &env, &request, csv_page(page, before))?;
            Ok((data, next_bound(&hits)))
        };
        return Ok(stream_csv(state, "messages", csv::MESSAGE_COLUMNS, pages));
    }
    let st = state.clone();
    let (hits, data) = blocking(move || message_page(&st, &env, &request, page)).await?;
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

/// A page of the messages `request` finds, with their operations, read from the store.
fn message_page(
    st: &AppState,
    env: &str,
    request: &Query,
    page: Page,
) -> Result<(Hits, Vec<MessageHit>), ApiError> {
    let hits = st
        .index
        .messages(env, &request.filters, request.text.as_ref(), page)?;
    let read = st.store.read()?;
    let mut data = Vec::with_capacity(hits.ids.len());
    for (message, (_, op_id)) in hit_messages(&read, &hits)?.into_iter().zip(&hits.ids) {
        let (Some(message), Some(op)) = (message, read.operation(*op_id)?) else {
            continue;
        };
        let snippet = match (&request.text, request.snippets) {
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
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let op_id = super::operations::parse_id(&id)?;
    let (as_csv, query) = csv::negotiate(&headers, query.as_deref())?;
    let mut request = parse(Endpoint::OperationMessages, query.as_deref())?;
    request.filters.operation = Some(op_id);
    let limit = request.limit;
    let scope = cursor_scope(&request, "operation-messages", &env);
    let mut after = request.after;
    let mut before = request.before;
    if let Some(cursor) = &request.cursor {
        match state.cursor_key.decode(&scope, cursor)? {
            Bound::After(id) => after = Some(Id(id)),
            Bound::Before(id) => before = Some(Id(id)),
        }
    }
    let backwards = before.is_some() && after.is_none();
    let filtered = request.text.is_some()
        || !request.filters.levels.is_empty()
        || !request.filters.message_types.is_empty();
    if as_csv {
        return operation_messages_csv(state, env, op_id, request, filtered).await;
    }
    let snippet_query = request.text.clone().filter(|_| request.snippets);
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
        let hits =
            st.index
                .messages(&env_for_read, &request.filters, request.text.as_ref(), page)?;
        let mut messages: Vec<Message> =
            hit_messages(&read, &hits)?.into_iter().flatten().collect();
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

/// Every message of one operation, oldest first, as CSV: from the store, or through the index
/// when the request filters them.
async fn operation_messages_csv(
    state: Arc<AppState>,
    env: String,
    op_id: Id,
    request: Query,
    filtered: bool,
) -> Result<Response, ApiError> {
    let (st, environment) = (state.clone(), env.clone());
    blocking(move || {
        st.store
            .read()?
            .operation(op_id)?
            .filter(|op| op.environment == environment)
            .ok_or_else(|| super::operations::operation_not_found(op_id))
    })
    .await?;
    let pages = move |st: &AppState, after: Option<u128>| {
        let read = st.store.read()?;
        if !filtered {
            let range = MessageRange {
                after: after.map(Id),
                before: None,
                limit: CSV_PAGE,
            };
            let (messages, more) = read.messages(op_id, range)?;
            let next = messages.last().filter(|_| more).map(|m| m.id.0);
            return Ok((messages, next));
        }
        let page = Page {
            limit: CSV_PAGE,
            ascending: true,
            bound: after.map(Bound::After),
        };
        let hits = st
            .index
            .messages(&env, &request.filters, request.text.as_ref(), page)?;
        let messages: Vec<Message> = hit_messages(&read, &hits)?.into_iter().flatten().collect();
        Ok((messages, next_bound(&hits)))
    };
    Ok(stream_csv(
        state,
        "messages",
        csv::OPERATION_MESSAGE_COLUMNS,
        pages,
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
    let request = parse(Endpoint::Facets, query.as_deref())?;
    // Required: the parser refuses a query without it.
    let Some(field) = request.facet_field else {
        return Err(
            ApiError::bad_request("invalid_query", "`field`: is required").with_field("field"),
        );
    };
    let (limit, prefix) = (request.limit, request.prefix);
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
    let mut request = parse(Endpoint::Insights, query.as_deref())?;
    let to = request.filters.to.unwrap_or_else(Timestamp::now);
    let from = request
        .filters
        .from
        .unwrap_or(to.plus_millis(-24 * 3600 * 1000));
    // An empty window (`to` at or before `from`) has no buckets.
    let span = to.millis().saturating_sub(from.millis()).max(0);
    let asked = match request.interval {
        Some(interval) => i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
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

    #[test]
    fn auto_intervals_are_round() {
        assert_eq!(auto_interval(3_600_000), 60_000);
        assert_eq!(auto_interval(86_400_000), 900_000);
        assert_eq!(auto_interval(14 * 86_400_000), 6 * 3_600_000);
    }
}
