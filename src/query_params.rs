//! The query parameters of the read API, declared once: [`QUERY_PARAMETERS`] says, for every
//! parameter of every search endpoint, its name, what values it takes ([`Kind`]), whether it
//! repeats, what it means, which endpoints take it and what it sets. Everything else is derived
//! from that table:
//!
//! - the HTTP parser ([`parse`]: names an endpoint does not take, values a kind refuses, a
//!   required one left out are a [`ParamError`] naming the field), and the canonical order of the
//!   repeated filters (so one search in two orders continues the same cursor);
//! - the inverse, a search written back as query parameters ([`to_pairs`]: the signals' searches
//!   in `/v1/vocabulary`, a saved view);
//! - the OpenAPI parameters of each endpoint (`http::openapi`), the `query_parameters` list of
//!   `GET /v1/vocabulary` that the dashboard builds its filters from, the fields `/facets` counts
//!   ([`FACET_FIELDS`]), and the filter flags of the `opslog` query commands (`cli::args`).
//!
//! The index maps a parsed [`Filters`] to its clauses (`index::search`); this table says what a
//! filter is, not how it is indexed. Adding a filter: a row here, the field of `Filters` it sets
//! (a [`Sets`] variant; the compiler then points at every match to extend), and its clause in
//! `index::search`.
//!
//! Must not: know HTTP or tantivy; keep a second list of names anywhere else.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::index::query::{self, TextQuery};
use crate::index::{Filters, TypeFilter};
use crate::ingest::input::{is_tag_key, MAX_NAME_CHARS, MAX_TAG_VALUE_CHARS};
use crate::model::ApiDuration;
use crate::model::{Id, Level, MessageType, OpState, OpType, Timestamp};

/// A page of a list or search: 50 unless asked, at most 500.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// An insights bucket width the client asks for: 1s to 366d.
pub type Interval = ApiDuration<1_000, 31_622_400_000>;

/// The read endpoints whose query strings the table declares (paths under `/v1/env/{env}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `GET /operations`: list and search operations.
    Operations,
    /// `GET /messages`: search messages across the environment.
    Messages,
    /// `GET /operations/{id}/messages`: one operation's messages.
    OperationMessages,
    /// `GET /facets`: the values of a field, with counts.
    Facets,
    /// `GET /insights`: operations per time bucket and state.
    Insights,
    /// `GET /signals`: the signals over a range.
    Signals,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Operations,
        Endpoint::Messages,
        Endpoint::OperationMessages,
        Endpoint::Facets,
        Endpoint::Insights,
        Endpoint::Signals,
    ];

    /// The path under `/v1/env/{env}`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Operations => "/operations",
            Endpoint::Messages => "/messages",
            Endpoint::OperationMessages => "/operations/{id}/messages",
            Endpoint::Facets => "/facets",
            Endpoint::Insights => "/insights",
            Endpoint::Signals => "/signals",
        }
    }

    /// Its parameters, in the table's order.
    pub fn parameters(self) -> impl Iterator<Item = &'static QueryParameter> {
        QUERY_PARAMETERS
            .iter()
            .filter(move |p| p.endpoints.contains(&self))
    }

    /// Its parameter named `name`.
    pub fn parameter(self, name: &str) -> Option<&'static QueryParameter> {
        self.parameters().find(|p| p.name == name)
    }

    /// Its filters (see [`QueryParameter::is_filter`]).
    pub fn filters(self) -> impl Iterator<Item = &'static QueryParameter> {
        self.parameters().filter(|p| p.is_filter())
    }
}

/// What values a parameter takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One of these values.
    OneOf(&'static [&'static str]),
    /// An operation type, or `type:action` (the action: 1-64 of `a-z 0-9 _ -`).
    OperationType,
    /// A name as operations carry it: 1-256 characters.
    Name,
    /// `key:value`: a tag key (1-64 of `A-Z a-z 0-9 _ . / -`), a colon, 1-256 characters.
    Tag,
    /// An RFC 3339 time.
    Time,
    /// A full-text query (at most 1,000 characters; the syntax is in the README's "Search").
    Text,
    /// A whole number from `min` to `max`; `default` when left out.
    Integer {
        min: usize,
        max: usize,
        default: usize,
    },
    /// `true` or `false`.
    Boolean,
    /// The `next_cursor` of the previous page of the same query.
    Cursor,
    /// A message id (a ULID).
    MessageId,
    /// One of the [`FACET_FIELDS`].
    FacetField,
    /// A duration ([`Interval`]: one number and one unit, 1s to 366d).
    Interval,
    /// Any text.
    Prefix,
    /// A W3C trace id: 32 hex digits, not all zero (any case).
    TraceId,
}

impl Kind {
    /// The values it takes, when it is a closed list.
    pub fn values(self) -> Option<Vec<&'static str>> {
        match self {
            Kind::OneOf(values) => Some(values.to_vec()),
            Kind::FacetField => Some(FACET_FIELDS.to_vec()),
            _ => None,
        }
    }

    /// Its name in `/v1/vocabulary`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OneOf(_) | Kind::FacetField => "one_of",
            Kind::OperationType => "operation_type",
            Kind::Name => "name",
            Kind::Tag => "tag",
            Kind::Time => "time",
            Kind::Text => "text",
            Kind::Integer { .. } => "integer",
            Kind::Boolean => "boolean",
            Kind::Cursor => "cursor",
            Kind::MessageId => "message_id",
            Kind::Interval => "duration",
            Kind::Prefix => "string",
            Kind::TraceId => "trace_id",
        }
    }
}

/// What a parameter sets in the parsed [`Query`]: a field of its [`Filters`] or one of the
/// request's own settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sets {
    Types,
    States,
    Integrations,
    ConnectionIds,
    Scripts,
    EndUserIds,
    Tags,
    TraceIds,
    Levels,
    MessageTypes,
    From,
    To,
    Text,
    Limit,
    Cursor,
    Snippets,
    After,
    Before,
    FacetField,
    Prefix,
    Interval,
}

/// One query parameter of one or more endpoints.
#[derive(Debug)]
pub struct QueryParameter {
    pub name: &'static str,
    /// What a person calls it (the dashboard's picker label).
    pub label: &'static str,
    pub kind: Kind,
    /// May be given more than once (`state=failed&state=timeout`): any of the values matches.
    pub repeatable: bool,
    /// Must be given.
    pub required: bool,
    pub description: &'static str,
    pub endpoints: &'static [Endpoint],
    pub sets: Sets,
}

impl QueryParameter {
    /// Selects by a field of the operation or message (not time, text, paging or presentation):
    /// what the dashboard offers as a filter picker and the CLI as a flag.
    pub fn is_filter(&self) -> bool {
        matches!(
            self.sets,
            Sets::Types
                | Sets::States
                | Sets::Integrations
                | Sets::ConnectionIds
                | Sets::Scripts
                | Sets::EndUserIds
                | Sets::Tags
                | Sets::Levels
                | Sets::MessageTypes
        )
    }

    /// `/facets` counts its values (`field=<name>`).
    pub fn is_facet(&self) -> bool {
        FACET_FIELDS.contains(&self.name)
    }
}

use Endpoint::{Facets, Insights, Messages, OperationMessages, Operations, Signals};

/// The fields `/facets` counts the values of (the index keeps each as a fast column of operations).
pub const FACET_FIELDS: &[&str] = &[
    "integration",
    "connection_id",
    "script",
    "end_user_id",
    "tag",
];

/// Every query parameter of the read endpoints. A name may have one row per meaning (`type` is an
/// operation type on most endpoints and a message type on one operation's messages).
pub static QUERY_PARAMETERS: &[QueryParameter] = &[
    QueryParameter {
        name: "type",
        label: "Type",
        kind: Kind::OperationType,
        repeatable: true,
        required: false,
        description: "operation `type` or `type:action`",
        endpoints: &[Operations, Messages, Facets, Insights],
        sets: Sets::Types,
    },
    QueryParameter {
        name: "state",
        label: "Status",
        kind: Kind::OneOf(OpState::NAMES),
        repeatable: true,
        required: false,
        description: "keep these states",
        endpoints: &[Operations, Messages, Facets],
        sets: Sets::States,
    },
    QueryParameter {
        name: "integration",
        label: "Integration",
        kind: Kind::Name,
        repeatable: true,
        required: false,
        description: "keep these integrations",
        endpoints: &[Operations, Messages, Insights],
        sets: Sets::Integrations,
    },
    QueryParameter {
        name: "connection_id",
        label: "Connection",
        kind: Kind::Name,
        repeatable: true,
        required: false,
        description: "keep these connections",
        endpoints: &[Operations, Messages, Insights],
        sets: Sets::ConnectionIds,
    },
    QueryParameter {
        name: "script",
        label: "Script",
        kind: Kind::Name,
        repeatable: true,
        required: false,
        description: "keep these scripts (sync or action names)",
        endpoints: &[Operations, Messages, Insights],
        sets: Sets::Scripts,
    },
    QueryParameter {
        name: "end_user_id",
        label: "End user",
        kind: Kind::Name,
        repeatable: true,
        required: false,
        description: "keep operations for these end users",
        endpoints: &[Operations, Messages, Insights],
        sets: Sets::EndUserIds,
    },
    QueryParameter {
        name: "tag",
        label: "Tag",
        kind: Kind::Tag,
        repeatable: true,
        required: false,
        description: "keep operations with this tag, as `key:value` (tags of one key: any of them; of different keys: all)",
        endpoints: &[Operations, Messages, Insights],
        sets: Sets::Tags,
    },
    QueryParameter {
        name: "trace_id",
        label: "Trace",
        kind: Kind::TraceId,
        repeatable: true,
        required: false,
        description: "keep operations started in this W3C trace (`trace_context.trace_id`, 32 hex digits, any case)",
        endpoints: &[Operations, Messages, Insights],
        sets: Sets::TraceIds,
    },
    QueryParameter {
        name: "level",
        label: "Level",
        kind: Kind::OneOf(Level::NAMES),
        repeatable: true,
        required: false,
        description: "keep these levels",
        endpoints: &[Messages, OperationMessages],
        sets: Sets::Levels,
    },
    QueryParameter {
        name: "message_type",
        label: "Message type",
        kind: Kind::OneOf(MessageType::NAMES),
        repeatable: true,
        required: false,
        description: "keep these message types",
        endpoints: &[Messages],
        sets: Sets::MessageTypes,
    },
    QueryParameter {
        name: "type",
        label: "Message type",
        kind: Kind::OneOf(MessageType::NAMES),
        repeatable: true,
        required: false,
        description: "keep these message types",
        endpoints: &[OperationMessages],
        sets: Sets::MessageTypes,
    },
    QueryParameter {
        name: "from",
        label: "From",
        kind: Kind::Time,
        repeatable: false,
        required: false,
        description: "created at or after (RFC 3339)",
        endpoints: &[Operations, Messages, Facets],
        sets: Sets::From,
    },
    QueryParameter {
        name: "to",
        label: "To",
        kind: Kind::Time,
        repeatable: false,
        required: false,
        description: "created before (RFC 3339); later than `from`",
        endpoints: &[Operations, Messages, Facets],
        sets: Sets::To,
    },
    QueryParameter {
        name: "from",
        label: "From",
        kind: Kind::Time,
        repeatable: false,
        required: false,
        description: "started at or after (RFC 3339); default: 24 hours before `to`",
        endpoints: &[Insights, Signals],
        sets: Sets::From,
    },
    QueryParameter {
        name: "to",
        label: "To",
        kind: Kind::Time,
        repeatable: false,
        required: false,
        description: "started before (RFC 3339); default: now. A range that ends at or before `from` counts nothing",
        endpoints: &[Insights, Signals],
        sets: Sets::To,
    },
    QueryParameter {
        name: "integration",
        label: "Integration",
        kind: Kind::Name,
        repeatable: false,
        required: false,
        description: "count only this integration's",
        endpoints: &[Signals],
        sets: Sets::Integrations,
    },
    QueryParameter {
        name: "q",
        label: "Search",
        kind: Kind::Text,
        repeatable: false,
        required: false,
        description: "full text: operations match by their own text fields or any of their messages",
        endpoints: &[Operations, Messages, OperationMessages],
        sets: Sets::Text,
    },
    QueryParameter {
        name: "limit",
        label: "Page size",
        kind: Kind::Integer {
            min: 1,
            max: MAX_PAGE,
            default: DEFAULT_PAGE,
        },
        repeatable: false,
        required: false,
        description: "page size",
        endpoints: &[Operations, Messages, OperationMessages],
        sets: Sets::Limit,
    },
    QueryParameter {
        name: "cursor",
        label: "Cursor",
        kind: Kind::Cursor,
        repeatable: false,
        required: false,
        description: "the `next_cursor` of the previous page (of the same query); one this server did not give out for this query answers 404",
        endpoints: &[Operations, Messages, OperationMessages],
        sets: Sets::Cursor,
    },
    QueryParameter {
        name: "after",
        label: "After",
        kind: Kind::MessageId,
        repeatable: false,
        required: false,
        description: "messages after this message id",
        endpoints: &[OperationMessages],
        sets: Sets::After,
    },
    QueryParameter {
        name: "before",
        label: "Before",
        kind: Kind::MessageId,
        repeatable: false,
        required: false,
        description: "messages before this message id (newest last)",
        endpoints: &[OperationMessages],
        sets: Sets::Before,
    },
    QueryParameter {
        name: "snippets",
        label: "Snippets",
        kind: Kind::Boolean,
        repeatable: false,
        required: false,
        description: "with `q`: give each hit a `snippet`, the matching text (at most 200 characters) with highlight ranges in characters; never markup",
        endpoints: &[Operations, Messages, OperationMessages],
        sets: Sets::Snippets,
    },
    QueryParameter {
        name: "field",
        label: "Field",
        kind: Kind::FacetField,
        repeatable: false,
        required: true,
        description: "the field whose values to count",
        endpoints: &[Facets],
        sets: Sets::FacetField,
    },
    QueryParameter {
        name: "prefix",
        label: "Prefix",
        kind: Kind::Prefix,
        repeatable: false,
        required: false,
        description: "only values starting with this (case-insensitive)",
        endpoints: &[Facets],
        sets: Sets::Prefix,
    },
    QueryParameter {
        name: "limit",
        label: "Values",
        kind: Kind::Integer {
            min: 1,
            max: 100,
            default: 20,
        },
        repeatable: false,
        required: false,
        description: "the most values to answer",
        endpoints: &[Facets],
        sets: Sets::Limit,
    },
    QueryParameter {
        name: "interval",
        label: "Interval",
        kind: Kind::Interval,
        repeatable: false,
        required: false,
        description: "bucket width, widened when the range would have more than 1,000 buckets (the answer's `interval_ms` is the width used; default: 30-100 buckets over the range)",
        endpoints: &[Insights],
        sets: Sets::Interval,
    },
];

/// A query string an endpoint refuses: which parameter and why, said so a person can fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    pub field: String,
    /// `invalid_query`, or `invalid_cursor` for `after`/`before`.
    pub code: &'static str,
    pub message: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

fn invalid(field: &str, message: String) -> ParamError {
    ParamError {
        field: field.to_owned(),
        code: "invalid_query",
        message: format!("`{field}`: {message}"),
    }
}

/// A query string parsed for one endpoint: its filters and the request's own settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub filters: Filters,
    /// `q`, parsed (`None` when absent or blank).
    pub text: Option<TextQuery>,
    /// `q` as given (a cursor is sealed to it).
    pub text_source: String,
    /// `limit`, or the endpoint's default (0 for an endpoint without one).
    pub limit: usize,
    pub cursor: Option<String>,
    pub after: Option<Id>,
    pub before: Option<Id>,
    pub snippets: bool,
    pub facet_field: Option<&'static str>,
    pub prefix: String,
    pub interval: Option<Duration>,
}

/// Parses `query` (a URL query string, undecoded) for `endpoint`.
pub fn parse(endpoint: Endpoint, query: Option<&str>) -> Result<Query, ParamError> {
    parse_pairs(
        endpoint,
        form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned(),
    )
}

/// Parses decoded `(name, value)` pairs for `endpoint`: every name must be one of its
/// parameters, every value of its kind, a parameter that does not repeat given once, a required
/// one given. Repeated filters come out in a canonical order without duplicates.
pub fn parse_pairs(
    endpoint: Endpoint,
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<Query, ParamError> {
    let mut query = Query {
        limit: endpoint
            .parameters()
            .find_map(|p| match (p.sets, p.kind) {
                (Sets::Limit, Kind::Integer { default, .. }) => Some(default),
                _ => None,
            })
            .unwrap_or(0),
        ..Query::default()
    };
    let mut seen: Vec<&'static str> = Vec::new();
    for (name, value) in pairs {
        let Some(parameter) = endpoint.parameter(&name) else {
            let takes: Vec<&str> = endpoint.parameters().map(|p| p.name).collect();
            return Err(ParamError {
                message: format!(
                    "unknown query parameter `{name}`; this endpoint takes {}",
                    takes.join(", ")
                ),
                field: name,
                code: "invalid_query",
            });
        };
        if !parameter.repeatable && seen.contains(&parameter.name) {
            return Err(invalid(
                parameter.name,
                "is given more than once; it takes one value".into(),
            ));
        }
        seen.push(parameter.name);
        set(&mut query, parameter, value)?;
    }
    if let Some(missing) = endpoint
        .parameters()
        .find(|p| p.required && !seen.contains(&p.name))
    {
        let values = missing
            .kind
            .values()
            .map(|v| format!(": {}", v.join(", ")))
            .unwrap_or_default();
        return Err(invalid(missing.name, format!("is required{values}")));
    }
    normalise(&mut query.filters);
    Ok(query)
}

/// Checks `value` against `parameter`'s kind and sets what the parameter sets.
fn set(query: &mut Query, parameter: &QueryParameter, value: String) -> Result<(), ParamError> {
    let name = parameter.name;
    let f = &mut query.filters;
    match parameter.sets {
        Sets::Types => f.types.push(type_filter(name, &value)?),
        Sets::States => f.states.push(one_of(parameter, &value, OpState::parse)?),
        Sets::Integrations => f.integrations.push(check_name(name, value)?),
        Sets::ConnectionIds => f.connection_ids.push(check_name(name, value)?),
        Sets::Scripts => f.scripts.push(check_name(name, value)?),
        Sets::EndUserIds => f.end_user_ids.push(check_name(name, value)?),
        Sets::Tags => f.tags.push(check_tag(name, value)?),
        Sets::TraceIds => f.trace_ids.push(trace_id(name, &value)?),
        Sets::Levels => f.levels.push(one_of(parameter, &value, Level::parse)?),
        Sets::MessageTypes => f
            .message_types
            .push(one_of(parameter, &value, MessageType::parse)?),
        Sets::From => f.from = Some(time(name, &value)?),
        Sets::To => f.to = Some(time(name, &value)?),
        Sets::Text => {
            let parsed = query::parse(&value).map_err(|e| invalid(name, e.to_string()))?;
            query.text = (!parsed.is_empty()).then_some(parsed);
            query.text_source = value;
        }
        Sets::Limit => {
            let Kind::Integer { min, max, .. } = parameter.kind else {
                unreachable!("`limit` is an integer")
            };
            let n: usize = value
                .parse()
                .map_err(|_| invalid(name, format!("`{value}` is not a number")))?;
            if !(min..=max).contains(&n) {
                return Err(ParamError {
                    field: name.to_owned(),
                    code: "invalid_query",
                    message: format!("`{name}` is {n}; it must be between {min} and {max}"),
                });
            }
            query.limit = n;
        }
        Sets::Cursor => query.cursor = Some(value),
        Sets::Snippets => {
            query.snippets = match value.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(invalid(name, format!("`{value}` is not true or false"))),
            }
        }
        Sets::After | Sets::Before => {
            let id = Id::parse(&value).ok_or_else(|| ParamError {
                field: name.to_owned(),
                code: "invalid_cursor",
                message: format!("`{name}` must be a message id (26-character ULID)"),
            })?;
            if parameter.sets == Sets::After {
                query.after = Some(id);
            } else {
                query.before = Some(id);
            }
        }
        Sets::FacetField => {
            query.facet_field = Some(
                FACET_FIELDS
                    .iter()
                    .copied()
                    .find(|f| *f == value)
                    .ok_or_else(|| {
                        invalid(
                            name,
                            format!("`{value}` is not one of {}", FACET_FIELDS.join(", ")),
                        )
                    })?,
            )
        }
        Sets::Prefix => query.prefix = value,
        Sets::Interval => {
            query.interval = Some(Interval::parse(&value).map_err(|e| invalid(name, e))?.0)
        }
    }
    Ok(())
}

fn one_of<T>(
    parameter: &QueryParameter,
    value: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, ParamError> {
    parse(value).ok_or_else(|| {
        let allowed = parameter.kind.values().unwrap_or_default().join(", ");
        invalid(parameter.name, format!("`{value}` is not one of {allowed}"))
    })
}

fn type_filter(name: &str, value: &str) -> Result<TypeFilter, ParamError> {
    let (kind, action) = match value.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (value, None),
    };
    let kind = OpType::parse(kind).ok_or_else(|| {
        invalid(
            name,
            format!("`{kind}` is not one of {}", OpType::NAMES.join(", ")),
        )
    })?;
    if let Some(a) = action {
        let ok = !a.is_empty()
            && a.len() <= 64
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(invalid(
                name,
                format!("`{value}` is not `type` or `type:action`"),
            ));
        }
    }
    Ok(TypeFilter {
        kind,
        action: action.map(str::to_owned),
    })
}

/// A name as operations carry it: 1-256 characters.
pub fn check_name(name: &str, value: String) -> Result<String, ParamError> {
    if value.is_empty() || value.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            name,
            format!("must be 1-{MAX_NAME_CHARS} characters"),
        ));
    }
    Ok(value)
}

/// `key:value`, the form tags are indexed in.
fn check_tag(name: &str, value: String) -> Result<String, ParamError> {
    match value.split_once(':') {
        Some((key, tag_value))
            if is_tag_key(key)
                && !tag_value.is_empty()
                && tag_value.chars().count() <= MAX_TAG_VALUE_CHARS =>
        {
            Ok(value)
        }
        _ => Err(invalid(
            name,
            format!(
                "`{value}` is not `key:value` (a tag key, a colon, a value of 1-{MAX_TAG_VALUE_CHARS} characters)"
            ),
        )),
    }
}

/// A W3C trace id, as the drawer shows it and trace viewers print it (any case), lowercased.
fn trace_id(name: &str, value: &str) -> Result<String, ParamError> {
    crate::model::TraceId::parse(&value.to_ascii_lowercase())
        .map(|id| id.to_string())
        .ok_or_else(|| {
            invalid(
                name,
                format!("`{value}` is not a trace id (32 hex digits, not all zero)"),
            )
        })
}

/// An RFC 3339 time.
pub fn time(name: &str, value: &str) -> Result<Timestamp, ParamError> {
    Timestamp::parse(value).map_err(|e| invalid(name, e))
}

/// Sorts and deduplicates every repeated filter, so the same filters in another order are the
/// same search (and continue the same cursor). Every field of `Filters` is named here: a new one
/// does not compile until it says whether it needs an order.
fn normalise(filters: &mut Filters) {
    let Filters {
        types,
        states,
        integrations,
        connection_ids,
        scripts,
        end_user_ids,
        tags,
        trace_ids,
        levels,
        message_types,
        from: _,
        to: _,
        operation: _,
        by_start: _,
    } = filters;
    types.sort_by(|a, b| (a.kind.as_str(), &a.action).cmp(&(b.kind.as_str(), &b.action)));
    types.dedup();
    for list in [
        integrations,
        connection_ids,
        scripts,
        end_user_ids,
        tags,
        trace_ids,
    ] {
        list.sort();
        list.dedup();
    }
    states.sort_by_key(|s| s.as_str());
    states.dedup();
    levels.sort_by_key(|l| l.as_str());
    levels.dedup();
    message_types.sort_by_key(|t| t.as_str());
    message_types.dedup();
}

/// `filters` written back as the query parameters of `endpoint` that select the same, in the
/// table's order; what the endpoint does not take is left out (and `operation` and `by_start`,
/// which the endpoints set themselves). `parse_pairs(endpoint, to_pairs(endpoint, f))` gives `f`
/// back for filters the endpoint takes.
pub fn to_pairs(endpoint: Endpoint, filters: &Filters) -> Vec<(&'static str, String)> {
    let Filters {
        types,
        states,
        integrations,
        connection_ids,
        scripts,
        end_user_ids,
        tags,
        trace_ids,
        levels,
        message_types,
        from,
        to,
        operation: _,
        by_start: _,
    } = filters;
    let mut out = Vec::new();
    for parameter in endpoint.parameters() {
        let values: Vec<String> = match parameter.sets {
            Sets::Types => types
                .iter()
                .map(|t| match &t.action {
                    Some(action) => format!("{}:{action}", t.kind),
                    None => t.kind.to_string(),
                })
                .collect(),
            Sets::States => states.iter().map(|s| s.to_string()).collect(),
            Sets::Integrations => integrations.clone(),
            Sets::ConnectionIds => connection_ids.clone(),
            Sets::Scripts => scripts.clone(),
            Sets::EndUserIds => end_user_ids.clone(),
            Sets::Tags => tags.clone(),
            Sets::TraceIds => trace_ids.clone(),
            Sets::Levels => levels.iter().map(|l| l.to_string()).collect(),
            Sets::MessageTypes => message_types.iter().map(|m| m.to_string()).collect(),
            Sets::From => from.iter().map(|t| t.to_string()).collect(),
            Sets::To => to.iter().map(|t| t.to_string()).collect(),
            Sets::Text
            | Sets::Limit
            | Sets::Cursor
            | Sets::Snippets
            | Sets::After
            | Sets::Before
            | Sets::FacetField
            | Sets::Prefix
            | Sets::Interval => Vec::new(),
        };
        out.extend(values.into_iter().map(|v| (parameter.name, v)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(text.as_bytes())
            .into_owned()
            .collect()
    }

    /// A value of `kind` the parser takes, different for `n` = 0 and 1 where the kind allows.
    fn sample(kind: Kind, n: usize) -> String {
        match kind {
            Kind::OneOf(values) => values[n % values.len()].to_owned(),
            Kind::FacetField => FACET_FIELDS[n % FACET_FIELDS.len()].to_owned(),
            Kind::OperationType => ["sync", "action:run-now"][n % 2].to_owned(),
            Kind::Name => format!("name-{n}"),
            Kind::Tag => format!("plan:tier {n}"),
            Kind::Time => Timestamp(1_767_225_600_000 + n as i64).to_string(),
            Kind::Text => "\"rate limit\" refresh*".to_owned(),
            Kind::Integer { min, max, .. } => (min + n).min(max).to_string(),
            Kind::Boolean => "true".to_owned(),
            Kind::Cursor => "c".repeat(10),
            Kind::MessageId => Id(1 + n as u128).to_string(),
            Kind::Interval => "5m".to_owned(),
            Kind::Prefix => "gi".to_owned(),
            Kind::TraceId => [
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "0af7651916cd43dd8448eb211c80319c",
            ][n % 2]
                .to_owned(),
        }
    }

    #[test]
    fn names_are_unique_per_endpoint_and_every_endpoint_has_parameters() {
        for endpoint in Endpoint::ALL {
            let names: Vec<&str> = endpoint.parameters().map(|p| p.name).collect();
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(names.len(), unique.len(), "{endpoint:?}: {names:?}");
            assert!(!names.is_empty(), "{endpoint:?}");
        }
        for p in QUERY_PARAMETERS {
            assert!(!p.endpoints.is_empty(), "{} is taken nowhere", p.name);
        }
    }

    /// Every filter of every endpoint, given twice in reverse order, parses, writes back as the
    /// same parameters and parses again to the same filters: the table, the parser and
    /// `to_pairs` agree on every name and value.
    #[test]
    fn every_filter_round_trips_through_the_parser_and_back() {
        for endpoint in Endpoint::ALL {
            let mut given = Vec::new();
            for p in endpoint.parameters() {
                if !(p.is_filter() || matches!(p.sets, Sets::From | Sets::To)) {
                    continue;
                }
                let times = if p.repeatable { 2 } else { 1 };
                for n in (0..times).rev() {
                    given.push((p.name.to_owned(), sample(p.kind, n)));
                }
            }
            let required: Vec<(String, String)> = endpoint
                .parameters()
                .filter(|p| p.required)
                .map(|p| (p.name.to_owned(), sample(p.kind, 0)))
                .collect();
            let parsed = parse_pairs(endpoint, given.iter().cloned().chain(required.clone()))
                .unwrap_or_else(|e| panic!("{endpoint:?}: {e}"));
            let back = to_pairs(endpoint, &parsed.filters);
            let mut expected: Vec<(&str, String)> =
                given.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
            let mut got = back.clone();
            expected.sort();
            got.sort();
            assert_eq!(got, expected, "{endpoint:?}: every value written back");
            let again = parse_pairs(
                endpoint,
                back.into_iter()
                    .map(|(n, v)| (n.to_owned(), v))
                    .chain(required),
            )
            .unwrap();
            assert_eq!(again.filters, parsed.filters, "{endpoint:?}");
        }
    }

    #[test]
    fn every_parameter_of_every_endpoint_takes_a_value_of_its_kind() {
        for endpoint in Endpoint::ALL {
            let required: Vec<(String, String)> = endpoint
                .parameters()
                .filter(|p| p.required)
                .map(|p| (p.name.to_owned(), sample(p.kind, 0)))
                .collect();
            for p in endpoint.parameters() {
                let one = [(p.name.to_owned(), sample(p.kind, 0))];
                let given = required.iter().filter(|&(n, _)| n != p.name).cloned();
                parse_pairs(endpoint, given.chain(one))
                    .unwrap_or_else(|e| panic!("{endpoint:?} {}: {e}", p.name));
            }
        }
    }

    #[test]
    fn filters_parse_and_normalise() {
        let r = parse_pairs(
            Operations,
            pairs(
                "type=sync:run&type=action&state=failed&integration=b&integration=a&integration=a",
            ),
        )
        .unwrap();
        assert_eq!(r.filters.types.len(), 2);
        assert_eq!(r.filters.integrations, vec!["a", "b"]);
        let other_order = parse_pairs(
            Operations,
            pairs("integration=a&integration=b&state=failed&type=action&type=sync:run"),
        )
        .unwrap();
        assert_eq!(r.filters, other_order.filters);
        let field = |endpoint, q: &str| parse_pairs(endpoint, pairs(q)).unwrap_err().field;
        assert_eq!(field(Operations, "type=cron"), "type");
        assert_eq!(field(Operations, "type=sync:Run Now"), "type");
        assert_eq!(
            field(Operations, "level=error"),
            "level",
            "not on operations"
        );
        assert_eq!(field(Operations, "limit=501"), "limit");
        assert_eq!(field(Facets, "limit=101"), "limit");
        assert_eq!(field(Facets, "prefix=a"), "field", "required");
        assert_eq!(
            field(
                Operations,
                "from=2026-01-01T00:00:00Z&from=2026-01-02T00:00:00Z"
            ),
            "from"
        );
        // An empty window is a query that matches nothing, not a mistake.
        assert!(parse_pairs(
            Operations,
            pairs("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")
        )
        .is_ok());
        assert_eq!(
            parse_pairs(OperationMessages, pairs("type=http"))
                .unwrap()
                .filters
                .message_types,
            vec![MessageType::Http]
        );
        assert_eq!(
            parse_pairs(Operations, pairs("")).unwrap().limit,
            DEFAULT_PAGE
        );
        assert_eq!(parse_pairs(Facets, pairs("field=tag")).unwrap().limit, 20);
    }

    #[test]
    fn facet_fields_are_names_of_operation_filters() {
        for field in FACET_FIELDS {
            let p = Operations
                .parameter(field)
                .unwrap_or_else(|| panic!("`{field}` is not a filter of /operations"));
            assert!(p.is_filter() && p.is_facet());
        }
    }
}
