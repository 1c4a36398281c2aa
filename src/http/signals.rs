//! `GET /signals`: the dashboard's four signals over a time range, each with its count, the
//! count of the previous equal period, a small series over the range and the integrations
//! behind it. Each signal is the fixed search `alerts::Signal` defines, the same one alert rules
//! count.
//!
//! Cost is bounded by the number of queries, not the data: per signal two counts, `SERIES_POINTS`
//! counts for the series and at most `CANDIDATES` for a message signal's integrations.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;

use super::error::ApiError;
use super::extract::{Auth, Path};
use super::{blocking, json, AppState};
use crate::alerts::{self, Signal};
use crate::index::SearchIndex;
use crate::model::Timestamp;
use crate::query_params::{self, Endpoint};
use crate::scope::Scope;

/// Points of each signal's series.
pub const SERIES_POINTS: usize = 12;
/// Integrations shown per signal.
const TOP: usize = 5;
/// Integrations a message signal counts, out of the busiest of the type.
const CANDIDATES: usize = 20;

#[derive(Serialize, utoipa::ToSchema)]
pub struct SeriesPoint {
    start: Timestamp,
    count: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IntegrationCount {
    integration: String,
    count: u64,
}

/// One signal over the range.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignalSummary {
    signal: Signal,
    title: &'static str,
    /// `operations` or `messages`: what is counted, and which list shows them.
    counts: &'static str,
    count: u64,
    /// The count over the equal period just before `from`.
    previous_count: u64,
    /// The range in `SERIES_POINTS` equal steps (none for an empty range).
    series: Vec<SeriesPoint>,
    /// The integrations with the most, most first (at most 5).
    top_integrations: Vec<IntegrationCount>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Signals {
    from: Timestamp,
    to: Timestamp,
    previous_from: Timestamp,
    data: Vec<SignalSummary>,
}

pub async fn signals(
    State(state): State<Arc<AppState>>,
    Path(env): Path<String>,
    Auth(principal): Auth,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    state.authorize(&principal, &env, Scope::Read)?;
    let request = query_params::parse(Endpoint::Signals, query.as_deref())?;
    // One at most: `integration` does not repeat here.
    let integration = request.filters.integrations.into_iter().next();
    let to = request.filters.to.unwrap_or_else(Timestamp::now);
    let from = request
        .filters
        .from
        .unwrap_or(to.plus_millis(-24 * 3600 * 1000));
    // An empty range (`to` at or before `from`) counts nothing, as with insights.
    let span = (to.millis() - from.millis()).max(0);
    let st = state.clone();
    let data = blocking(move || {
        Signal::ALL
            .into_iter()
            .map(|signal| summary(&st.index, &env, signal, integration.as_deref(), from, to))
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &Signals {
            from,
            to,
            // Not before year 0, the first a timestamp shows (a window reaching back further
            // counts nothing there anyway).
            previous_from: from.plus_millis(-span).max(Timestamp(-62_167_219_200_000)),
            data,
        },
    ))
}

fn summary(
    index: &SearchIndex,
    env: &str,
    signal: Signal,
    integration: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Result<SignalSummary, ApiError> {
    let span = to.millis() - from.millis();
    if span <= 0 {
        return Ok(SignalSummary {
            signal,
            title: signal.title(),
            counts: counted(signal),
            count: 0,
            previous_count: 0,
            series: Vec::new(),
            top_integrations: Vec::new(),
        });
    }
    let count =
        |i: Option<&str>, a: Timestamp, b: Timestamp| alerts::count(index, env, signal, i, a, b);
    let step = span.div_euclid(SERIES_POINTS as i64).max(1);
    let mut series = Vec::with_capacity(SERIES_POINTS);
    for k in 0..SERIES_POINTS as i64 {
        let start = from.plus_millis(k * step);
        let end = if k + 1 == SERIES_POINTS as i64 {
            to
        } else {
            start.plus_millis(step)
        };
        series.push(SeriesPoint {
            start,
            count: count(integration, start, end)?,
        });
    }
    let top_integrations = match integration {
        Some(i) => vec![IntegrationCount {
            integration: i.to_owned(),
            count: count(Some(i), from, to)?,
        }],
        None => top_integrations(index, env, signal, from, to)?,
    };
    Ok(SignalSummary {
        signal,
        title: signal.title(),
        counts: counted(signal),
        count: count(integration, from, to)?,
        previous_count: count(integration, from.plus_millis(-span), from)?,
        series,
        top_integrations: top_integrations
            .into_iter()
            .filter(|c| c.count > 0)
            .collect(),
    })
}

/// `operations` or `messages`: what `signal` counts, and the list (`/operations`, `/messages`)
/// that shows them.
pub(super) fn counted(signal: Signal) -> &'static str {
    if signal.counts_messages() {
        "messages"
    } else {
        "operations"
    }
}

fn top_integrations(
    index: &SearchIndex,
    env: &str,
    signal: Signal,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<IntegrationCount>, ApiError> {
    let mut filters = alerts::window_filters(signal, None, from, to);
    if !signal.counts_messages() {
        let (values, _) = index.facet_values(env, "integration", "", &filters, TOP)?;
        return Ok(values
            .into_iter()
            .map(|(integration, count)| IntegrationCount { integration, count })
            .collect());
    }
    // Facets count operations: take the busiest integrations of the signal's operation type,
    // then count the signal's messages of each.
    filters.levels.clear();
    filters.message_types.clear();
    let (candidates, _) = index.facet_values(env, "integration", "", &filters, CANDIDATES)?;
    let mut counts = candidates
        .into_iter()
        .map(|(integration, _)| {
            let count = alerts::count(index, env, signal, Some(&integration), from, to)?;
            Ok(IntegrationCount { integration, count })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    counts.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.integration.cmp(&b.integration))
    });
    counts.truncate(TOP);
    Ok(counts)
}
