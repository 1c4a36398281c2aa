//! The data model (README "API"): operations, messages and the small value types they carry.
//!
//! One struct per entity serves both the JSON API (serde) and the stored record (bincode), so the
//! two can never drift apart. Free-form JSON (meta, payloads, bodies) is kept as raw JSON text,
//! because bincode cannot encode a self-describing `serde_json::Value`.
//!
//! Every stored record type lives here, below everything else (docs/architecture.md §2): `job`
//! holds the outbox's jobs and attempts, `settings` the settings rows, `alert` the alert rules and
//! their states, `duration` the API's durations.
//!
//! Must not: know about redb, HTTP or request validation; those live in `store`, `http` and
//! `ingest`. Nothing here refers to a module above `model`.
//! The declaration order of every enum variant is part of the on-disk format: append, never reorder.

use std::collections::BTreeMap;
use std::fmt;

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use ulid::Ulid;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

pub mod alert;
pub mod audit;
mod duration;
pub mod erase;
pub mod job;
pub mod notifier;
pub mod settings;
pub mod trace;
pub mod view;

pub use duration::ApiDuration;
pub use settings::{SpanNames, WebhookFormat};
pub use trace::{SpanId, TraceContext, TraceId};

/// Milliseconds since the Unix epoch, shown as RFC 3339 UTC with milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Parses any RFC 3339 timestamp (any offset), keeping millisecond precision.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let parsed = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp ({e})"))?;
        Ok(Timestamp(
            (parsed.unix_timestamp_nanos() / 1_000_000) as i64,
        ))
    }
}

impl Timestamp {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`, written digit by digit: every response carries several per
    /// record, and `fmt`'s padding machinery cost more than the rest of a timestamp's output.
    /// `None` outside years 0-9999.
    fn rfc3339(self) -> Option<[u8; 24]> {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()?;
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, u8::from(t.month()).into());
        put(8, 2, t.day().into());
        put(11, 2, t.hour().into());
        put(14, 2, t.minute().into());
        put(17, 2, t.second().into());
        put(20, 3, t.millisecond().into());
        Some(out)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rfc3339() {
            Some(text) => f.write_str(std::str::from_utf8(&text).expect("ASCII digits")),
            None => write!(f, "invalid-timestamp({})", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339() {
            Some(text) => s.serialize_str(std::str::from_utf8(&text).expect("ASCII digits")),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A string schema for a type with its own text form, for the OpenAPI document.
fn text_schema(format: Option<SchemaFormat>, description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format)
        .description(Some(description))
        .examples([serde_json::Value::from(example)])
        .into()
}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        text_schema(
            Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)),
            "RFC 3339 timestamp; answers are UTC with milliseconds",
            "2026-11-25T19:27:49.123Z",
        )
    }
}

impl ToSchema for Timestamp {}

/// Free-form JSON kept as its exact text.
#[derive(Clone, Debug)]
pub struct Json(pub Box<RawValue>);

impl Json {
    pub fn from_value(value: &serde_json::Value) -> Json {
        Json(serde_json::value::to_raw_value(value).expect("a Value always serializes"))
    }

    pub fn text(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.text() == other.text()
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// The deepest nesting of arrays and objects a `Json` value may have: deeper input is refused
/// (a client's) or kept as text (a third party's webhook), so every reader of a stored record,
/// recursive JSON parsers included, can read it back.
pub const MAX_JSON_DEPTH: usize = 64;

/// How deeply arrays and objects nest in the JSON `text`, counted up to `MAX_JSON_DEPTH + 1`.
pub fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > MAX_JSON_DEPTH {
                    break;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        if json_depth(raw.get().as_bytes()) > MAX_JSON_DEPTH {
            return Err(serde::de::Error::custom(format!(
                "nests arrays and objects more than {MAX_JSON_DEPTH} levels deep; flatten it (or send it as a string)"
            )));
        }
        Ok(Json(raw))
    }
}

impl Encode for Json {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.text().encode(encoder)
    }
}

impl<Context> Decode<Context> for Json {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let text = String::decode(decoder)?;
        RawValue::from_string(text)
            .map(Json)
            .map_err(|e| DecodeError::OtherString(format!("stored JSON is invalid: {e}")))
    }
}
bincode::impl_borrow_decode!(Json);

impl PartialSchema for Json {
    fn schema() -> RefOr<Schema> {
        // Never null: a JSON `null` is the field left out (`Option<Json>` is `None`).
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
                Type::Object,
                Type::Array,
                Type::String,
                Type::Number,
                Type::Boolean,
            ]))
            .description(Some("any JSON value but null"))
            .into()
    }
}

impl ToSchema for Json {}

/// A struct read only from a JSON object. serde also builds a struct from an array of its fields
/// in order (`[null, null]`), which the API neither documents nor means to take.
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Fields(std::marker::PhantomData))
            .map(Object)
    }
}

/// For `#[serde(default, deserialize_with = "optional_object")]`: an optional struct field,
/// only from a JSON object.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Ok(Option::<Object<T>>::deserialize(d)?.map(|Object(t)| t))
}

/// For `#[serde(default, deserialize_with = "optional_objects")]`: an optional list of structs,
/// each only from a JSON object.
pub fn optional_objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    Ok(Option::<Vec<Object<T>>>::deserialize(d)?
        .map(|items| items.into_iter().map(|Object(t)| t).collect()))
}

/// For `#[serde(deserialize_with = "whole")]`: an unsigned integer field that also takes a
/// number with a zero fraction (`3.0`), which JSON Schema counts as an integer too.
pub fn whole<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    struct Whole;
    impl serde::de::Visitor<'_> for Whole {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number, 0 or more")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            // 2^64 is the first float past u64::MAX.
            if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                Ok(v as u64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    let n = d.deserialize_any(Whole)?;
    T::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is too large for this field")))
}

/// `whole` for an optional field.
pub fn optional_whole<'de, D: Deserializer<'de>, T: TryFrom<u64>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "whole")] u64);
    let n = Option::<Wrapped>::deserialize(d)?;
    n.map(|Wrapped(n)| {
        T::try_from(n).map_err(|_| serde::de::Error::custom(format!("{n} is too large")))
    })
    .transpose()
}

/// The text of an `Id`: what `Id::parse` takes (case-insensitive Crockford base32).
pub const ID_PATTERN: &str = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$";

/// A time-sortable identifier (ULID), shown as its 26-character text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub u128);

impl Id {
    pub fn parse(text: &str) -> Option<Id> {
        Ulid::from_string(text).ok().map(|u| Id(u.0))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Ulid(self.0), f)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Ulid(self.0).array_to_str(&mut [0; ulid::ULID_LEN]))
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Id::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not an id (26-character ULID)"))
        })
    }
}

impl Encode for Id {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.0.encode(encoder)
    }
}

impl<Context> Decode<Context> for Id {
    fn decode<D: Decoder<Context = Context>>(decoder: &mut D) -> Result<Self, DecodeError> {
        Ok(Id(u128::decode(decoder)?))
    }
}
bincode::impl_borrow_decode!(Id);

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(ID_PATTERN))
            .description(Some(
                "server-assigned ULID (26 characters): unique and sortable by creation time",
            ))
            .examples([serde_json::Value::from("01ARZ3NDEKTSV4RRFFQ69G5FAV")])
            .into()
    }
}

impl ToSchema for Id {}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Encode, Decode, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The values as the API writes them, in the order of `ALL`.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The allowed values, for error messages.
            pub fn allowed() -> String {
                [$($text),+].join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// What kind of high-level action an operation is.
    OpType {
        Sync = "sync",
        Action = "action",
        Webhook = "webhook",
        Auth = "auth",
        Proxy = "proxy",
        Deploy = "deploy",
        Admin = "admin",
        Events = "events",
        Function = "function",
    }
);

impl OpType {
    /// The actions (sub-kinds) the server gives a meaning to: a default title, an event, a span
    /// kind, or its own operations (`webhook:deliver`). The first is the default, used when a
    /// client names none. Clients may send any other action too; the dashboard offers these.
    pub fn actions(self) -> &'static [&'static str] {
        match self {
            OpType::Sync | OpType::Action | OpType::Function => &["run"],
            OpType::Webhook => &["incoming", "forward", "deliver"],
            OpType::Auth => &["create_connection", "refresh_token"],
            OpType::Proxy => &["call"],
            OpType::Deploy => &["deploy"],
            OpType::Admin => &["admin"],
            OpType::Events => &["event"],
        }
    }

    /// The sub-kind used when a client names none.
    pub fn default_action(self) -> &'static str {
        self.actions()[0]
    }
}

string_enum!(
    /// How a sync run began (Nango's `SyncOperationType`): from no saved state (`full`, sent to
    /// Nango receivers as `INITIAL`), from the previous run's state (`incremental`), or for one
    /// external event (`webhook`).
    SyncType {
        Full = "full",
        Incremental = "incremental",
        Webhook = "webhook",
    }
);

impl SyncType {
    /// The `syncType` a Nango `sync` webhook body carries.
    pub fn nango(self) -> &'static str {
        match self {
            SyncType::Full => "INITIAL",
            SyncType::Incremental => "INCREMENTAL",
            SyncType::Webhook => "WEBHOOK",
        }
    }
}

/// The auth modes a connection may use, as Nango names them (`AuthModes` of `@nangohq/types`):
/// the values `auth_mode` takes (`tests/it/nango.rs` checks each against Nango's type).
pub const AUTH_MODES: &[&str] = &[
    "OAUTH1",
    "OAUTH2",
    "OAUTH2_CC",
    "BASIC",
    "API_KEY",
    "CUSTOM",
    "APP",
    "NONE",
    "TBA",
    "JWT",
    "BILL",
    "TWO_STEP",
    "SIGNATURE",
    "MCP_OAUTH2",
    "MCP_OAUTH2_GENERIC",
    "INSTALL_PLUGIN",
    "AWS_SIGV4",
];

string_enum!(
    /// Where an operation is in its lifecycle.
    OpState {
        Waiting = "waiting",
        Running = "running",
        Success = "success",
        Failed = "failed",
        Timeout = "timeout",
        Cancelled = "cancelled",
    }
);

impl OpState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OpState::Success | OpState::Failed | OpState::Timeout | OpState::Cancelled
        )
    }
}

string_enum!(
    /// Where a delivery (one event on its way to one URL) stands.
    DeliveryStatus {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
    }
);

string_enum!(
    MessageType {
        Log = "log",
        Http = "http",
    }
);

string_enum!(
    Level {
        Debug = "debug",
        Info = "info",
        Warn = "warn",
        Error = "error",
    }
);

string_enum!(
    Source {
        System = "system",
        User = "user",
    }
);

/// Something the user's backend is notified of (README "Webhooks"); the name is the `type` of
/// the webhook body.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Encode,
    Decode,
    ToSchema,
)]
pub enum EventType {
    #[serde(rename = "sync.completed")]
    SyncCompleted,
    #[serde(rename = "sync.records")]
    SyncRecords,
    #[serde(rename = "auth.created")]
    AuthCreated,
    #[serde(rename = "auth.failed")]
    AuthFailed,
    #[serde(rename = "webhook.received")]
    WebhookReceived,
    #[serde(rename = "action.completed")]
    ActionCompleted,
    /// An alert rule's count went above its threshold. Appended: stored jobs encode the index.
    #[serde(rename = "alert.triggered")]
    AlertTriggered,
    /// An alert rule's count is back at or under its threshold.
    #[serde(rename = "alert.resolved")]
    AlertResolved,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::SyncCompleted,
        EventType::SyncRecords,
        EventType::AuthCreated,
        EventType::AuthFailed,
        EventType::WebhookReceived,
        EventType::ActionCompleted,
        EventType::AlertTriggered,
        EventType::AlertResolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::SyncCompleted => "sync.completed",
            EventType::SyncRecords => "sync.records",
            EventType::AuthCreated => "auth.created",
            EventType::AuthFailed => "auth.failed",
            EventType::WebhookReceived => "webhook.received",
            EventType::ActionCompleted => "action.completed",
            EventType::AlertTriggered => "alert.triggered",
            EventType::AlertResolved => "alert.resolved",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|e| e.as_str() == text)
    }

    /// The allowed values, for error messages.
    pub fn allowed() -> String {
        EventType::ALL
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header name → value. Sensitive values are redacted before they are stored.
pub type Headers = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub message: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Json>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    #[serde(
        default,
        deserialize_with = "deserialize_headers",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = headers_schema)]
    pub headers: Option<Headers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Json>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpResponse {
    #[schema(format = "uint16", maximum = 65535)]
    #[serde(deserialize_with = "whole")]
    pub status: u16,
    #[serde(
        default,
        deserialize_with = "deserialize_headers",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(schema_with = headers_schema)]
    pub headers: Option<Headers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Json>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    #[serde(deserialize_with = "whole")]
    pub attempt: u32,
    #[schema(format = "uint32", maximum = 4294967295_u64)]
    #[serde(deserialize_with = "whole")]
    pub max: u32,
    #[serde(default, deserialize_with = "whole")]
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub waited_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordCount {
    pub model: String,
    #[serde(default, deserialize_with = "whole")]
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub added: u64,
    #[serde(default, deserialize_with = "whole")]
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub updated: u64,
    #[serde(default, deserialize_with = "whole")]
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub deleted: u64,
}

/// The person of the user's own product an operation acted for (Nango's end user): what matches
/// a new connection to the user who made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndUser {
    #[schema(min_length = 1, max_length = 256)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256)]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256)]
    pub display_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "optional_object",
        skip_serializing_if = "Option::is_none"
    )]
    pub organization: Option<Organization>,
}

/// The end user's organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Organization {
    #[schema(min_length = 1, max_length = 256)]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256)]
    pub display_name: Option<String>,
}

/// Free-form labels of an operation (`plan: pro`), filterable as `tag=key:value`.
pub type Tags = BTreeMap<String, String>;

/// Deserialized only from `opslog export` files (`archive`); the API takes `ingest::input` types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
pub struct Operation {
    pub id: Id,
    pub environment: String,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub action: String,
    pub state: OpState,
    pub integration: Option<String>,
    pub connection_id: Option<String>,
    pub script: Option<String>,
    pub provider: Option<String>,
    pub message: String,
    pub error: Option<ErrorInfo>,
    pub request: Option<HttpRequest>,
    pub response: Option<HttpResponse>,
    pub records: Option<Vec<RecordCount>>,
    pub meta: Option<Json>,
    /// Who the operation acted for; set when it starts.
    #[serde(default)]
    pub end_user: Option<EndUser>,
    /// Labels set when it starts; `{}` when none.
    #[serde(default)]
    #[schema(schema_with = stored_tags_schema)]
    pub tags: Tags,
    /// An action started as async: its end fires `action.completed`, so a backend need not poll.
    #[serde(default, rename = "async")]
    pub is_async: bool,
    /// A sync run: how it began (Nango's `syncType`).
    #[serde(default)]
    pub sync_type: Option<SyncType>,
    /// A sync run: the checkpoint it started from and the one it saved, `{"from": {..}|null,
    /// "to": {..}|null}` (Nango's `checkpoints`; `from: null` is a full sync).
    #[serde(default)]
    #[schema(schema_with = checkpoints_schema)]
    pub checkpoints: Option<Json>,
    /// An auth operation: the connection's auth mode, one of Nango's (`OAUTH2`, `API_KEY`, ...).
    #[serde(default)]
    #[schema(schema_with = auth_mode_schema)]
    pub auth_mode: Option<String>,
    /// An action: what it returned, served at `GET /operations/{id}/output` (the `statusUrl` of
    /// Nango's `async_action` webhook).
    #[serde(default)]
    pub output: Option<Json>,
    /// The trace it belongs to (W3C Trace Context), set when it starts: from the `traceparent`
    /// it was started with, or the span it came as over OTLP. `null`: its exported span is the
    /// root of a trace of its own.
    #[serde(default)]
    pub trace_context: Option<TraceContext>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub expires_at: Timestamp,
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    #[serde(default, deserialize_with = "optional_whole")]
    pub duration_ms: Option<u64>,
    /// How many messages the operation holds; kept so pages can report a total without a scan.
    #[serde(deserialize_with = "whole")]
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub message_count: u64,
}

/// Deserialized only from `opslog export` files (`archive`); the API takes `ingest::input` types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Encode, Decode, ToSchema)]
pub struct Message {
    pub id: Id,
    pub operation_id: Id,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub level: Level,
    pub source: Source,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    #[serde(default, deserialize_with = "optional_whole")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Json>,
    pub created_at: Timestamp,
}

/// The JSON Schema of headers: what `deserialize_headers` takes, strings, numbers or arrays of
/// strings (answers always hold strings).
fn headers_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, OneOfBuilder, SchemaType};
    let value = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)));
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::OneOf(value.build())))))
        .description(Some("header name to value; a number or a list of strings is taken too (a list is joined with \", \"); sensitive values are stored as [REDACTED]"))
        .build()
}

/// Accepts header values as strings, numbers or arrays of strings (joined with ", ").
fn deserialize_headers<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Headers>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum HeaderValue {
        One(String),
        Number(serde_json::Number),
        Many(Vec<String>),
    }
    let raw: Option<BTreeMap<String, HeaderValue>> = Option::deserialize(d)?;
    Ok(raw.map(|map| {
        map.into_iter()
            .map(|(name, value)| {
                let value = match value {
                    HeaderValue::One(s) => s,
                    HeaderValue::Number(n) => n.to_string(),
                    HeaderValue::Many(v) => v.join(", "),
                };
                (name, value)
            })
            .collect()
    }))
}

/// What one retention command (by age, or for the disk cap) removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub operations: u64,
    pub messages: u64,
    /// The bytes of the store's rows removed with the operations (keys and values).
    pub bytes: u64,
    /// Finished outbox jobs (deliveries and exports).
    pub jobs: u64,
    pub attempts: u64,
    /// More expired operations remain for another command.
    pub more_operations: bool,
    /// Outbox jobs were left unscanned: the next command continues from this job id.
    pub jobs_resume_from: Option<u128>,
}

/// The most tags one operation may carry.
pub const MAX_TAGS: usize = 32;
/// The longest tag key, in characters (letters, digits, `_`, `-`, `.`, `/`).
pub const MAX_TAG_KEY_CHARS: usize = 64;
/// The longest tag value, in characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// What a tag key may be (`ingest::input::is_tag_key`), as a JSON Schema pattern.
pub const TAG_KEY_PATTERN: &str = "^[A-Za-z0-9_./-]{1,64}$";

/// The JSON Schema of `tags`, with the bounds the API holds them to (`ingest::input::check_tags`):
/// the same for a stored operation (an import) as for a request, which may also send `null`.
pub(crate) fn tags_schema(nullable: bool) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_TAG_VALUE_CHARS));
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(TAG_KEY_PATTERN));
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter(
            [Type::Object]
                .into_iter()
                .chain(nullable.then_some(Type::Null)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(value.into())))
        .property_names(Some(name))
        .max_properties(Some(MAX_TAGS))
        .build()
}

fn stored_tags_schema() -> utoipa::openapi::schema::Object {
    tags_schema(false)
}

/// The most keys one checkpoint (`checkpoints.from` or `.to`) may have.
pub const MAX_CHECKPOINT_KEYS: usize = 64;

/// The JSON Schema of `checkpoints` (`ingest::input::check_checkpoints` holds them to it): Nango's
/// `CheckpointRange`, two flat objects of strings, numbers and booleans, each possibly null.
pub(crate) fn checkpoints_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaType, Type};
    let value = || {
        ObjectBuilder::new().schema_type(SchemaType::from_iter([
            Type::String,
            Type::Number,
            Type::Boolean,
        ]))
    };
    let checkpoint = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
            .additional_properties(Some(AdditionalProperties::RefOr(value().into())))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(256)),
            ))
            .max_properties(Some(MAX_CHECKPOINT_KEYS))
    };
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property("from", checkpoint())
        .property("to", checkpoint())
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some(
            "a sync run's checkpoints: the one it started from (`from`, null for a full sync) and the one it saved (`to`); flat objects of strings, numbers and booleans",
        ))
        .build()
}

/// The JSON Schema of `auth_mode`: one of [`AUTH_MODES`].
pub(crate) fn auth_mode_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(
            AUTH_MODES
                .iter()
                .copied()
                .map(serde_json::Value::from)
                .chain([serde_json::Value::Null]),
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_with_millis() {
        let t = Timestamp::parse("2026-11-25T20:27:49.123+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T19:27:49.123Z");
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        assert!(Timestamp::parse("yesterday").is_err());
    }

    #[test]
    fn timestamps_print_as_rfc3339_with_millis_in_json_too() {
        let reference = |millis: i64| {
            let t =
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        };
        let last = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        for millis in [
            0,
            -1,
            1,
            951_782_400_000,
            1_764_700_000_123,
            last,
            -62_167_219_200_000,
        ]
        .into_iter()
        .chain((0..2000).map(|i| i * 7_919_993_337_i64 - 1_000_000_000_000))
        {
            let t = Timestamp(millis);
            assert_eq!(t.to_string(), reference(millis), "{millis}");
            assert_eq!(serde_json::to_value(t).unwrap(), reference(millis));
        }
        assert_eq!(Timestamp(-1).to_string(), "1969-12-31T23:59:59.999Z");
        let beyond = Timestamp(last + 1);
        assert_eq!(
            beyond.to_string(),
            format!("invalid-timestamp({})", last + 1)
        );
        assert_eq!(serde_json::to_value(beyond).unwrap(), beyond.to_string());
    }

    #[test]
    fn ids_are_ulids() {
        let id = Id(Ulid::new().0);
        assert_eq!(Id::parse(&id.to_string()), Some(id));
        assert_eq!(serde_json::to_value(id).unwrap(), id.to_string());
        assert_eq!(Id::parse("../../etc/passwd"), None);
    }

    #[test]
    fn enums_list_their_values() {
        assert_eq!(OpState::parse("timeout"), Some(OpState::Timeout));
        assert_eq!(OpState::parse("done"), None);
        assert_eq!(
            Level::allowed(),
            "debug, info, warn, error",
            "error messages list the allowed values in order"
        );
        assert!(OpState::Cancelled.is_terminal() && !OpState::Running.is_terminal());
    }

    #[test]
    fn headers_accept_strings_numbers_and_lists() {
        let req: HttpRequest = serde_json::from_str(
            r#"{"method":"GET","url":"/x","headers":{"a":"1","b":2,"c":["x","y"]}}"#,
        )
        .unwrap();
        let headers = req.headers.unwrap();
        assert_eq!(headers["a"], "1");
        assert_eq!(headers["b"], "2");
        assert_eq!(headers["c"], "x, y");
    }
}
