//! Saved views: a name and the Logs tab's query (text, filters, level, range preset), per
//! environment. The four signals are built-in views (`BUILTIN`), made here and never stored; the
//! others are rows of the `views` table, changed through the API.
//!
//! What a view's query means (its filters, and whether it counts operations or messages) is
//! `views`'; this module holds the record, its JSON and its bounds.
//!
//! Must not: depend on anything above `model`.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use super::{Level, MessageType, OpState, Timestamp};

/// The most saved views one environment may have (built-in ones not counted).
pub const MAX_VIEWS: usize = 100;
/// The longest view name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The longest view id.
pub const MAX_ID_LEN: usize = 64;
/// The most values one filter of a view may list.
pub const MAX_VALUES: usize = 50;
/// The longest `q` of a view, in characters.
pub const MAX_Q_CHARS: usize = 1_000;
/// The range presets of the Logs tab (`range`).
pub const RANGES: [&str; 6] = ["5m", "1h", "24h", "3d", "7d", "14d"];

/// What a view searches: the query parameters of `GET /operations` (and `level`,
/// `message_type` of `GET /messages`), each filter a list (OR within it, AND across), plus the
/// Logs tab's range preset. A view with a `level` or `message_type` counts messages; any other
/// counts operations.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, utoipa::ToSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ViewQuery {
    /// The full-text query, as `q` of `GET /operations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 1000)]
    pub q: Option<String>,
    /// `sync` or `sync:run`.
    #[serde(rename = "type", default)]
    #[schema(schema_with = type_values_schema)]
    pub types: Vec<String>,
    #[serde(rename = "state", default)]
    #[schema(max_items = 50)]
    pub states: Vec<OpState>,
    #[serde(rename = "integration", default)]
    #[schema(schema_with = name_values_schema)]
    pub integrations: Vec<String>,
    #[serde(rename = "connection_id", default)]
    #[schema(schema_with = name_values_schema)]
    pub connection_ids: Vec<String>,
    #[serde(rename = "script", default)]
    #[schema(schema_with = name_values_schema)]
    pub scripts: Vec<String>,
    #[serde(rename = "end_user_id", default)]
    #[schema(schema_with = name_values_schema)]
    pub end_user_ids: Vec<String>,
    /// `key:value`.
    #[serde(rename = "tag", default)]
    #[schema(schema_with = tag_values_schema)]
    pub tags: Vec<String>,
    /// Message levels: the view lists (and counts) messages.
    #[serde(rename = "level", default)]
    #[schema(max_items = 50)]
    pub levels: Vec<Level>,
    /// Message types (`log`, `http`): the view lists (and counts) messages.
    #[serde(rename = "message_type", default)]
    #[schema(max_items = 50)]
    pub message_types: Vec<MessageType>,
    /// The Logs tab's time range preset when the view is opened: `5m`, `1h`, `24h`, `3d`, `7d`
    /// or `14d` (absent: the tab's default). Alert rules count over their own window instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(5m|1h|24h|3d|7d|14d)$")]
    pub range: Option<String>,
}

impl ViewQuery {
    /// Whether the view counts (and lists) messages rather than operations.
    pub fn counts_messages(&self) -> bool {
        !self.levels.is_empty() || !self.message_types.is_empty()
    }

    /// The query as `GET /operations` (or `/messages`) parameters, each list value repeated,
    /// in a fixed order (the range preset is not a parameter of those endpoints).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut add = |name: &'static str, values: Vec<String>| {
            out.extend(values.into_iter().map(|v| (name, v)));
        };
        add("type", self.types.clone());
        add(
            "state",
            self.states.iter().map(|s| s.as_str().to_owned()).collect(),
        );
        add("integration", self.integrations.clone());
        add("connection_id", self.connection_ids.clone());
        add("script", self.scripts.clone());
        add("end_user_id", self.end_user_ids.clone());
        add("tag", self.tags.clone());
        add(
            "level",
            self.levels.iter().map(|l| l.as_str().to_owned()).collect(),
        );
        add(
            "message_type",
            self.message_types
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
        );
        add("q", self.q.iter().cloned().collect());
        out
    }

    /// Each list sorted and without repeats, so equal queries compare equal.
    pub fn normalize(&mut self) {
        for list in [
            &mut self.types,
            &mut self.integrations,
            &mut self.connection_ids,
            &mut self.scripts,
            &mut self.end_user_ids,
            &mut self.tags,
        ] {
            list.sort();
            list.dedup();
        }
        self.states.sort_by_key(|s| s.as_str());
        self.states.dedup();
        self.levels.sort_by_key(|l| l.as_str());
        self.levels.dedup();
        self.message_types.sort_by_key(|t| t.as_str());
        self.message_types.dedup();
        if self.q.as_deref().is_some_and(|q| q.trim().is_empty()) {
            self.q = None;
        }
    }
}

/// A list of at most `MAX_VALUES` strings, each as `item` says.
fn values_schema(item: utoipa::openapi::schema::ObjectBuilder) -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(item.schema_type(utoipa::openapi::schema::Type::String))
        .max_items(Some(MAX_VALUES))
        .build()
}

/// `type`: `sync` or `sync:run`, the operation types as `GET /operations` reads them.
fn type_values_schema() -> utoipa::openapi::schema::Array {
    let kinds: Vec<&str> = super::OpType::ALL.iter().map(|t| t.as_str()).collect();
    values_schema(
        utoipa::openapi::schema::ObjectBuilder::new().pattern(Some(format!(
            "^({})(:[a-z0-9_-]{{1,64}})?$",
            kinds.join("|")
        ))),
    )
}

/// Integrations, connections, scripts, end users: 1-256 characters each.
fn name_values_schema() -> utoipa::openapi::schema::Array {
    values_schema(
        utoipa::openapi::schema::ObjectBuilder::new()
            .min_length(Some(1))
            .max_length(Some(256)),
    )
}

/// `key:value` tags.
fn tag_values_schema() -> utoipa::openapi::schema::Array {
    let key = super::TAG_KEY_PATTERN
        .trim_start_matches('^')
        .trim_end_matches('$');
    values_schema(
        utoipa::openapi::schema::ObjectBuilder::new().pattern(Some(format!(
            "^{key}:[\\s\\S]{{1,{}}}$",
            super::MAX_TAG_VALUE_CHARS
        ))),
    )
}

/// A view as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct View {
    /// `sync_failures`, `action_errors`, `auth_failures`, `webhook_failures` for the built-in
    /// views; for a saved one, the id given when it was saved, else one made from its name.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub id: String,
    pub name: String,
    /// A built-in view (one of the four signals): it cannot be changed or deleted.
    pub builtin: bool,
    /// `operations` or `messages`: what the view lists, and what an alert rule on it counts.
    pub counts: &'static str,
    pub query: ViewQuery,
    /// Absent for built-in views.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

impl View {
    pub fn new(stored: &StoredView) -> View {
        View {
            id: stored.id.clone(),
            name: stored.name.clone(),
            builtin: false,
            counts: counted(&stored.query),
            query: stored.query.clone(),
            created_at: Some(stored.created_at),
            updated_at: Some(stored.updated_at),
        }
    }
}

/// `operations` or `messages`: what `query` counts.
pub fn counted(query: &ViewQuery) -> &'static str {
    if query.counts_messages() {
        "messages"
    } else {
        "operations"
    }
}

/// A saved view as stored in redb under (environment, id).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct StoredView {
    pub id: String,
    pub name: String,
    pub query: ViewQuery,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Whether `id` is a valid view id: 1-64 characters `a-z`, `0-9`, `_`, `-`, starting with a
/// letter or digit.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// An id made from `name` (lowercase letters and digits, other runs as `_`), `view` when nothing
/// is left; the caller makes it unique.
pub fn id_from_name(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('_') {
            id.push('_');
        }
        if id.len() >= MAX_ID_LEN - 4 {
            break;
        }
    }
    let id = id.trim_end_matches('_').to_owned();
    if id.is_empty() {
        "view".to_owned()
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_names_and_are_checked() {
        assert_eq!(
            id_from_name("Failed Salesforce syncs!"),
            "failed_salesforce_syncs"
        );
        assert_eq!(id_from_name("  ** "), "view");
        assert_eq!(id_from_name("Ünïcode — 2"), "n_code_2");
        assert!(id_from_name(&"x".repeat(500)).len() <= MAX_ID_LEN);
        assert!(valid_id("sync_failures") && valid_id("a-1"));
        assert!(!valid_id("") && !valid_id("_x") && !valid_id("A") && !valid_id("a b"));
        assert!(!valid_id(&"a".repeat(MAX_ID_LEN + 1)));
    }

    #[test]
    fn queries_read_the_filter_names_and_normalize() {
        let mut query: ViewQuery = serde_json::from_value(serde_json::json!({
            "q": "\"invalid_grant\"", "type": ["sync", "auth"], "state": ["failed", "failed"],
            "integration": ["salesforce"], "range": "24h"
        }))
        .unwrap();
        query.normalize();
        assert_eq!(query.types, ["auth", "sync"]);
        assert_eq!(query.states, [OpState::Failed]);
        assert!(!query.counts_messages());
        assert_eq!(
            query.pairs(),
            [
                ("type", "auth".to_owned()),
                ("type", "sync".to_owned()),
                ("state", "failed".to_owned()),
                ("integration", "salesforce".to_owned()),
                ("q", "\"invalid_grant\"".to_owned()),
            ]
        );
        let shown = serde_json::to_value(&query).unwrap();
        assert_eq!(shown["range"], "24h");
        assert_eq!(shown["level"], serde_json::json!([]));
        assert!(serde_json::from_str::<ViewQuery>(r#"{"colour":["red"]}"#).is_err());
        assert!(serde_json::from_str::<ViewQuery>(r#"{"state":["lost"]}"#).is_err());
        let messages: ViewQuery = serde_json::from_str(r#"{"level":["error"]}"#).unwrap();
        assert!(messages.counts_messages());
    }
}
