//! What a view's query means: the checks a saved query passes (the same rules as the query
//! parameters of `GET /operations`), its search (index filters and text query), what it counts
//! over a window and the integrations behind that count. Views are the built-in four (the
//! signals) and those saved per environment (`EnvSettings::views`); alert rules count a view.
//!
//! Must not: write to the store (the writer saves views), or know about HTTP.

use crate::index::query::TextQuery;
use crate::index::{Filters, IndexError, Page, SearchIndex};
use crate::model::alert::{builtin_views, Signal};
pub use crate::model::view::{
    id_from_name, valid_id, StoredView, View, ViewQuery, MAX_ID_LEN, MAX_NAME_CHARS, MAX_Q_CHARS,
    MAX_VALUES, MAX_VIEWS, RANGES,
};
use crate::model::Timestamp;
use crate::query_params::{self, Endpoint};

/// Integrations named in a notification.
pub const TOP: usize = 5;
/// Integrations counted one by one when facets cannot count a view's matches directly (a text
/// query, or a view of messages), out of the busiest of its filters.
const CANDIDATES: usize = 20;

/// Why a view (or its query) was refused: the field (`name`, `query.type`, ...) and what is
/// wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` {message}")]
pub struct ViewError {
    pub field: String,
    pub message: String,
}

/// Why a change of views was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewRefused {
    #[error(transparent)]
    Invalid(#[from] ViewError),
    #[error("view `{0}` not found (GET /views lists this environment's)")]
    NotFound(String),
    #[error(
        "view `{0}` is built in: it cannot be changed or deleted; save a copy under another name"
    )]
    Builtin(String),
    #[error("a view with {field} `{value}` exists already; choose another {field}")]
    Taken { field: &'static str, value: String },
    #[error("view `{id}` is counted by alert rule `{rule}`; change or remove that rule first")]
    InUse { id: String, rule: String },
    #[error(
        "this environment has {MAX_VIEWS} saved views, the most it may have; delete one first"
    )]
    TooMany,
    #[error("view `{id}` is counted by alert rule `{rule}`, so changing it needs the admin token")]
    NeedsAdmin { id: String, rule: String },
}

fn refuse(field: &str, message: impl Into<String>) -> ViewError {
    ViewError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Checks a name: 1-100 characters, not only spaces.
pub fn check_name(name: &str) -> Result<String, ViewError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(refuse(
            "name",
            format!("must be 1-{MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(refuse("name", "must not hold control characters"));
    }
    Ok(name.to_owned())
}

/// Checks `query` with the rules `GET /operations` applies to the same parameters, and
/// normalizes it (sorted lists without repeats). Fields are named `query.<parameter>`.
pub fn check_query(mut query: ViewQuery) -> Result<ViewQuery, ViewError> {
    query.normalize();
    let field = |name: &str| format!("query.{name}");
    let lists: [(&str, usize); 9] = [
        ("type", query.types.len()),
        ("state", query.states.len()),
        ("integration", query.integrations.len()),
        ("connection_id", query.connection_ids.len()),
        ("script", query.scripts.len()),
        ("end_user_id", query.end_user_ids.len()),
        ("tag", query.tags.len()),
        ("level", query.levels.len()),
        ("message_type", query.message_types.len()),
    ];
    for (name, len) in lists {
        if len > MAX_VALUES {
            return Err(refuse(
                &field(name),
                format!("lists {len} values; at most {MAX_VALUES}"),
            ));
        }
    }
    if let Some(q) = &query.q {
        if q.chars().count() > MAX_Q_CHARS {
            return Err(refuse(
                &field("q"),
                format!("is longer than {MAX_Q_CHARS} characters"),
            ));
        }
    }
    // Every value as `GET /messages` (which takes all of a view's filters) would read it.
    query_params::parse_pairs(Endpoint::Messages, owned(query.pairs())).map_err(|e| {
        let named = format!("`{}`: ", e.field);
        ViewError {
            field: field(&e.field),
            message: e
                .message
                .strip_prefix(&named)
                .unwrap_or(&e.message)
                .to_owned(),
        }
    })?;
    if let Some(range) = &query.range {
        if !RANGES.contains(&range.as_str()) {
            return Err(refuse(
                &field("range"),
                format!("`{range}` is not one of {}", RANGES.join(", ")),
            ));
        }
    }
    Ok(query)
}

fn owned(pairs: Vec<(&'static str, String)>) -> impl Iterator<Item = (String, String)> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
}

/// The search of a checked query: index filters (without a time range) and the text query, as
/// the table of query parameters reads them. A value that no longer passes the checks (stored by
/// a binary with other rules) is left out.
pub fn search(query: &ViewQuery) -> (Filters, Option<TextQuery>) {
    let valid = query.pairs().into_iter().filter(|(name, value)| {
        query_params::parse_pairs(Endpoint::Messages, owned(vec![(*name, value.clone())])).is_ok()
    });
    let parsed = query_params::parse_pairs(Endpoint::Messages, owned(valid.collect()))
        .expect("each pair parses alone, so together");
    (parsed.filters, parsed.text)
}

/// Every view of an environment: the built-in ones, then the saved ones (`saved`) by name.
pub fn all(saved: &[StoredView]) -> Vec<View> {
    let mut views = builtin_views();
    let mut mine: Vec<View> = saved.iter().map(View::new).collect();
    mine.sort_by_key(|v| v.name.to_lowercase());
    views.extend(mine);
    views
}

/// The view `id` of an environment whose saved views are `saved`.
pub fn find(saved: &[StoredView], id: &str) -> Option<View> {
    match Signal::parse(id) {
        Some(signal) => Some(signal.view()),
        None => saved.iter().find(|v| v.id == id).map(View::new),
    }
}

/// Whether `id` names a built-in view.
pub fn is_builtin(id: &str) -> bool {
    Signal::parse(id).is_some()
}

/// How many records `query` (for `integration`) counts in `from..to`, by when operations started
/// (a message by its own time), as insights bucket them: history sent late counts where it
/// happened, not as a spike when it arrived.
pub fn count(
    index: &SearchIndex,
    environment: &str,
    query: &ViewQuery,
    integration: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> Result<u64, IndexError> {
    let (mut filters, text) = search(query);
    if let Some(integration) = integration {
        // Within the view's own integrations, if it names some: counting one of them, or none.
        if !filters.integrations.is_empty()
            && !filters.integrations.iter().any(|i| i == integration)
        {
            return Ok(0);
        }
        filters.integrations = vec![integration.to_owned()];
    }
    filters.from = Some(from);
    filters.to = Some(to);
    filters.by_start = true;
    let page = Page {
        limit: 1,
        ascending: false,
        bound: None,
    };
    let hits = if query.counts_messages() {
        index.messages(environment, &filters, text.as_ref(), page)?
    } else {
        index.operations(environment, &filters, text.as_ref(), page)?
    };
    Ok(hits.total)
}

/// The integrations with the most of what `query` counts in `from..to`, most first (at most
/// `TOP`, none with a zero count). Facets count operations by their filters directly; with a
/// text query or a view of messages, the busiest integrations of the filters are counted one by
/// one.
pub fn top_integrations(
    index: &SearchIndex,
    environment: &str,
    query: &ViewQuery,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(String, u64)>, IndexError> {
    let (mut filters, text) = search(query);
    filters.from = Some(from);
    filters.to = Some(to);
    filters.by_start = true;
    let direct = text.is_none() && !query.counts_messages();
    if direct {
        let (values, _) = index.facet_values(environment, "integration", "", &filters, TOP)?;
        return Ok(values.into_iter().filter(|(_, n)| *n > 0).collect());
    }
    filters.levels.clear();
    filters.message_types.clear();
    let (candidates, _) =
        index.facet_values(environment, "integration", "", &filters, CANDIDATES)?;
    let mut counts = Vec::with_capacity(candidates.len());
    for (integration, _) in candidates {
        let n = count(index, environment, query, Some(&integration), from, to)?;
        if n > 0 {
            counts.push((integration, n));
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(TOP);
    Ok(counts)
}

/// The dashboard's Logs tab showing `view` over `from..to` (for `integration`): the view's
/// query written out as the tab's URL, so the link shows what was counted even if the view
/// changes later.
pub fn dashboard_link(
    dashboard_url: &str,
    environment: &str,
    view_id: &str,
    query: &ViewQuery,
    integration: Option<&str>,
    from: Timestamp,
    to: Timestamp,
) -> String {
    let mut url = form_urlencoded::Serializer::new(String::new());
    url.append_pair("env", environment)
        .append_pair("page", "logs")
        .append_pair("view", view_id);
    for (name, value) in query.pairs() {
        if name == "integration" && integration.is_some() {
            continue;
        }
        url.append_pair(name, &value);
    }
    if let Some(integration) = integration {
        url.append_pair("integration", integration);
    }
    url.append_pair("from", &from.to_string())
        .append_pair("to", &to.to_string());
    format!("{dashboard_url}?{}", url.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(json: serde_json::Value) -> ViewQuery {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn queries_are_checked_like_the_parameters_of_get_operations() {
        let ok = check_query(query(serde_json::json!({
            "q": "\"invalid_grant\"", "type": ["sync:run", "auth"], "integration": ["salesforce", "salesforce"],
            "tag": ["team:core"], "state": ["failed"], "range": "7d"
        })))
        .unwrap();
        assert_eq!(ok.integrations, ["salesforce"]);
        for (json, field) in [
            (serde_json::json!({"type": ["cron"]}), "query.type"),
            (serde_json::json!({"type": ["sync:Run"]}), "query.type"),
            (
                serde_json::json!({"integration": [""]}),
                "query.integration",
            ),
            (serde_json::json!({"tag": ["nocolon"]}), "query.tag"),
            (serde_json::json!({"range": "2h"}), "query.range"),
            (
                serde_json::json!({"q": "a".repeat(MAX_Q_CHARS + 1)}),
                "query.q",
            ),
            (
                serde_json::json!({"script": (0..=MAX_VALUES).map(|i| i.to_string()).collect::<Vec<_>>()}),
                "query.script",
            ),
        ] {
            let err = check_query(query(json.clone())).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err}");
        }
        assert_eq!(check_name("  ").unwrap_err().field, "name");
        assert_eq!(check_name(" Daily check ").unwrap(), "Daily check");
    }

    #[test]
    fn a_signal_is_the_built_in_view_of_its_name() {
        let views = all(&[]);
        let ids: Vec<&str> = views.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "sync_failures",
                "action_errors",
                "auth_failures",
                "webhook_failures"
            ]
        );
        assert!(views.iter().all(|v| v.builtin));
        let errors = find(&[], "action_errors").unwrap();
        assert_eq!(errors.counts, "messages");
        let (filters, text) = search(&errors.query);
        assert_eq!(filters.levels, [crate::model::Level::Error]);
        assert!(text.is_none());
        let (filters, _) = search(&Signal::WebhookFailures.query());
        assert_eq!(filters.types[0].action.as_deref(), Some("incoming"));
    }

    #[test]
    fn links_write_the_query_out_for_the_window() {
        let q = query(
            serde_json::json!({"type": ["sync"], "state": ["failed"], "integration": ["a", "b"], "q": "oauth"}),
        );
        let link = dashboard_link(
            "http://localhost:7400/",
            "prod",
            "mine",
            &q,
            Some("b"),
            Timestamp(0),
            Timestamp(60_000),
        );
        assert_eq!(
            link,
            "http://localhost:7400/?env=prod&page=logs&view=mine&type=sync&state=failed&q=oauth&integration=b&from=1970-01-01T00%3A00%3A00.000Z&to=1970-01-01T00%3A01%3A00.000Z"
        );
    }
}
