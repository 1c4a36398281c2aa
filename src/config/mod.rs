//! Configuration: the TOML file (config.example.toml has every key) over embedded defaults,
//! validated into typed values before anything starts.
//!
//! Parsing does the checking: durations, socket addresses and enums are typed fields, so toml names
//! the key and the line of a bad value. What serde cannot express (environment names, key strength)
//! is checked in `Config::validate`, which names the key too.
//!
//! Must not: touch the data dir or generate secrets (that is `auth::Credentials::load_or_generate`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod notifiers;
pub mod webhooks;

use crate::destination::{Cidr, DestinationPolicy};
use crate::model::EventType;
use crate::model::OpType;
pub use crate::model::{ApiDuration, SpanNames, WebhookFormat};
use crate::scope::KeyScope;
use crate::secrets::mask;

/// A duration written as a string with a unit: `500ms`, `15s`, `5m`, `24h`, `7d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "`{text}` is not a duration ({e}); write it like \"15s\", \"5m\" or \"24h\""
                ))
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl utoipa::PartialSchema for HumanDuration {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "a duration like \"15s\", \"5m\", \"24h\" or \"1h 30m\"",
            ))
            .examples([serde_json::Value::from("15s")])
            .into()
    }
}

impl utoipa::ToSchema for HumanDuration {}

/// A timeout per attempt: more than 0 and at most 5m.
pub type ApiTimeout = ApiDuration<1, 300_000>;
/// A wait: a retry delay, or how long a rotated-out secret keeps signing; at most 7d.
pub type ApiDelay = ApiDuration<0, 604_800_000>;

impl<const MIN_MS: u64, const MAX_MS: u64> From<ApiDuration<MIN_MS, MAX_MS>> for HumanDuration {
    fn from(d: ApiDuration<MIN_MS, MAX_MS>) -> HumanDuration {
        HumanDuration(d.0)
    }
}

fn duration(text: &str) -> HumanDuration {
    HumanDuration(humantime::parse_duration(text).expect("built-in durations parse"))
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub retention: RetentionConfig,
    pub audit: AuditConfig,
    pub deadlines: DeadlinesConfig,
    pub ingest: IngestConfig,
    pub outbox: OutboxConfig,
    pub alerts: AlertsConfig,
    /// Empty means the embedded defaults: `dev` and `prod`.
    pub environments: BTreeMap<String, EnvironmentConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_tokens: Vec<String>,
    pub max_body_bytes: usize,
    /// Memory the database may use to cache its pages.
    pub store_cache_bytes: usize,
    pub header_read_timeout: HumanDuration,
    pub shutdown_timeout: HumanDuration,
    /// How long a dashboard login lasts (the session cookie's Max-Age and the server-side expiry).
    pub session_ttl: HumanDuration,
    /// Mark the session cookie `Secure`; set it when a TLS proxy serves opslog over https,
    /// which opslog cannot detect itself.
    pub cookie_secure: bool,
    /// The dashboard's address as people reach it (behind a proxy, say), for the banner and the
    /// links in alert events; empty means `http://<listen>/`.
    pub public_url: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// How long records are kept, in days (fractions allowed: 0.5 is twelve hours); an
    /// environment's own `retention` overrides it.
    pub days: f64,
    /// How often expired records are removed (and the data dir's size checked).
    pub every: HumanDuration,
    /// The most the data dir may hold on disk: above it the oldest operations of every
    /// environment are removed. `None` (`""` in the file): no cap.
    #[serde(with = "optional_byte_size")]
    pub max_disk: Option<ByteSize>,
}

/// The audit log (`model::audit`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How long audit records are kept (removed on the `retention.every` timer).
    pub retention: HumanDuration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: duration("365d"),
        }
    }
}

/// A size in bytes written with a unit: `"500MB"`, `"20GB"` (powers of 1000) or `"1.5GiB"`
/// (powers of 1024); a bare number is bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let unit_bytes: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            _ => {
                return Err(format!(
                    "`{text}` is not a size; write it like \"500MB\", \"20GB\" or \"1.5GiB\""
                ))
            }
        };
        let number: f64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not a size; write it like \"20GB\""))?;
        let bytes = number * unit_bytes as f64;
        if !(bytes.is_finite() && bytes < u64::MAX as f64) {
            return Err(format!("`{text}` is too large"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (1_000_000_000_000, "TB"),
            (1_000_000_000, "GB"),
            (1_000_000, "MB"),
            (1_000, "KB"),
        ];
        for (size, unit) in units {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// `Option<ByteSize>` as a string; `""` is `None`.
mod optional_byte_size {
    use super::ByteSize;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<ByteSize>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(size) => s.collect_str(size),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ByteSize>, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        ByteSize::parse(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeadlinesConfig {
    pub sync: HumanDuration,
    pub action: HumanDuration,
    pub webhook: HumanDuration,
    pub auth: HumanDuration,
    pub proxy: HumanDuration,
    pub deploy: HumanDuration,
    pub admin: HumanDuration,
    pub events: HumanDuration,
    pub function: HumanDuration,
    /// How often the sweeper looks for overdue operations.
    pub sweep_every: HumanDuration,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Header names redacted in stored requests/responses, on top of the built-in list.
    pub redact_headers: Vec<String>,
    /// The largest third-party webhook body `POST /v1/hooks/...` accepts, in bytes.
    pub incoming_webhook_max_bytes: usize,
    /// Write requests that may wait for the writer; when that many wait, OTLP ingest answers 503
    /// with `Retry-After` and other writes wait for room.
    pub writer_queue: usize,
}

/// How the outbox dispatcher sends: limits shared by every sink.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Attempts in flight at once, over all destinations (sender threads).
    pub concurrency: usize,
    /// Attempts in flight at once to one destination URL.
    pub per_destination: usize,
    /// The longest `Retry-After` honoured, by webhooks and OTLP exports; a longer one is cut to
    /// this.
    pub max_retry_after: HumanDuration,
    /// On shutdown, attempts in flight get this long to finish (then they are sent again after
    /// the restart).
    pub drain_timeout: HumanDuration,
    /// OTLP exports stop retrying this long after they were queued (or retried/replayed by hand)
    /// and become `failed`, replayable.
    pub export_retry_for: HumanDuration,
    /// The longest wait between two attempts of an OTLP export: its backoff doubles from 1s up
    /// to this.
    pub export_max_backoff: HumanDuration,
    /// Loopback and private ranges webhooks and exports may be sent to (link-local and cloud
    /// metadata addresses never are). Default: loopback only.
    pub allow_private_destinations: Vec<Cidr>,
}

/// How alert rules are evaluated.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often every rule's count is taken (one index count per rule).
    pub every: HumanDuration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            every: duration("1m"),
        }
    }
}

impl OutboxConfig {
    /// Where the outbox may send, as this config allows.
    pub fn destinations(&self) -> DestinationPolicy {
        DestinationPolicy::new(self.allow_private_destinations.clone())
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvironmentConfig {
    /// Empty means an ingest key and a read key generated on first start and kept in the data
    /// dir. A plain string is a key with both scopes (`ingest+read`).
    pub api_keys: Vec<ApiKey>,
    /// What the file sets here is authoritative; the rest is editable through the API.
    pub webhooks: WebhooksConfig,
    /// Where finished operations are exported as OTLP spans; `None`: not set in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otel: Option<OtelConfig>,
    /// `[[environments.<env>.alerts]]`: when the file has any, the rules are read-only in the
    /// API; `None`: not set in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<crate::model::alert::AlertRule>>,
    /// How long this environment's operations are kept; `None`: `retention.days`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<HumanDuration>,
    /// `[environments.<env>.notifiers.<kind>]`: each notifier the file sets is read-only in the
    /// API.
    #[serde(skip_serializing_if = "is_empty_notifiers")]
    pub notifiers: crate::model::notifier::Notifiers,
}

fn is_empty_notifiers(notifiers: &crate::model::notifier::Notifiers) -> bool {
    notifiers.names().is_empty()
}

/// One entry of `api_keys`: `"<key>"` (scope `ingest+read`, what every key could do before
/// scopes existed) or `{ key = "<key>", scope = "ingest" | "read" | "ingest+read" }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub key: String,
    pub scope: KeyScope,
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> ApiKey {
        ApiKey::from(key.to_owned())
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> ApiKey {
        ApiKey {
            key,
            scope: KeyScope::IngestRead,
        }
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Scoped {
            key: String,
            scope: KeyScope,
        }
        struct Entry;
        impl<'de> serde::de::Visitor<'de> for Entry {
            type Value = ApiKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a key as a string, or a table { key = \"...\", scope = \"ingest\" | \"read\" | \"ingest+read\" }",
                )
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<ApiKey, E> {
                Ok(ApiKey::from(key))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<ApiKey, A::Error> {
                let Scoped { key, scope } =
                    Scoped::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ApiKey { key, scope })
            }
        }
        d.deserialize_any(Entry)
    }
}

impl Serialize for ApiKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut table = s.serialize_struct("ApiKey", 2)?;
        table.serialize_field("key", &self.key)?;
        table.serialize_field("scope", &self.scope)?;
        table.end()
    }
}

/// `[environments.<name>.webhooks]`: every key optional. A key set here is read-only in the API.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventType>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_schedule: Option<Vec<HumanDuration>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_insecure_http: Option<bool>,
    /// How long a rotated-out secret keeps signing next to the new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_grace: Option<HumanDuration>,
    /// The body shape sent to `url` (default `opslog`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<WebhookFormat>,
    /// The body shape sent to `secondary_url` (default `opslog`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secondary_format: Option<WebhookFormat>,
    /// Nango's webhook toggles, for every URL (each on unless set false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toggles: Option<crate::model::settings::NangoToggles>,
    /// Nango's per-connection URL override: the events of matching operations go to the route's
    /// URL instead of `url` and `secondary_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<crate::model::settings::WebhookRoute>>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            concurrency: 16,
            per_destination: 4,
            max_retry_after: duration("10h"),
            drain_timeout: duration("10s"),
            export_retry_for: duration("24h"),
            export_max_backoff: duration("5m"),
            allow_private_destinations: crate::destination::default_allowed(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            redact_headers: Vec::new(),
            incoming_webhook_max_bytes: 1024 * 1024,
            writer_queue: 4096,
        }
    }
}

/// `[environments.<name>.otel]`: the OTLP/HTTP collector this environment's spans go to.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtelConfig {
    /// Base URL of the collector; spans are POSTed to `<endpoint>/v1/traces`.
    pub endpoint: String,
    /// Sent with every export (API keys): secrets, masked whenever shown.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_service_name")]
    pub service_name: String,
    #[serde(default)]
    pub resource_attributes: BTreeMap<String, String>,
    #[serde(default = "default_max_events_per_span")]
    pub max_events_per_span: usize,
    /// How long one export request may take before it counts as a connection failure.
    #[serde(default = "default_otel_timeout")]
    pub timeout: HumanDuration,
    /// Also export the messages of exported operations as OTLP log records (`<endpoint>/v1/logs`).
    #[serde(default)]
    pub logs: bool,
    /// Span names and attribute keys: `opslog` (default) or `nango`.
    #[serde(default)]
    pub names: SpanNames,
    /// A trace viewer's URL with `{trace_id}`, which the dashboard turns an operation's trace
    /// into a link with; empty: no link.
    #[serde(default)]
    pub trace_url: String,
}

fn default_service_name() -> String {
    "opslog".into()
}

fn default_max_events_per_span() -> usize {
    128
}

fn default_otel_timeout() -> HumanDuration {
    duration("10s")
}

/// The most events one span may carry; a batch of 512 such spans is already tens of megabytes.
pub const MAX_EVENTS_PER_SPAN: usize = 1000;

/// Headers opslog sets itself on an export; a configured one would corrupt the request.
const RESERVED_OTEL_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
];

/// One bad OTel setting: the key below the `otel` table and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
}

impl OtelConfig {
    /// Settings for `endpoint` with every other key at its default.
    pub fn with_endpoint(endpoint: &str) -> OtelConfig {
        OtelConfig {
            endpoint: endpoint.to_owned(),
            headers: BTreeMap::new(),
            service_name: default_service_name(),
            resource_attributes: BTreeMap::new(),
            max_events_per_span: default_max_events_per_span(),
            timeout: default_otel_timeout(),
            logs: false,
            names: SpanNames::Opslog,
            trace_url: String::new(),
        }
    }

    /// Checks what serde cannot: the URL, header syntax and bounds. Used for the TOML file and
    /// for settings edited through the API, so both refuse the same things.
    pub fn check(&self) -> Result<(), FieldProblem> {
        let problem = |field: &str, message: String| FieldProblem {
            field: field.to_owned(),
            message,
        };
        check_otel_endpoint(&self.endpoint).map_err(|m| problem("endpoint", m))?;
        if self.headers.len() > 64 {
            return Err(problem("headers", "at most 64 headers".into()));
        }
        for (name, value) in &self.headers {
            let field = format!("headers.{name}");
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(problem(&field, "is not a valid HTTP header name".into()));
            }
            if RESERVED_OTEL_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(problem(
                    &field,
                    "is set by opslog itself and cannot be configured".into(),
                ));
            }
            if http::HeaderValue::from_str(value).is_err() || value.len() > 8192 {
                return Err(problem(
                    &field,
                    "the value must be printable ASCII of at most 8192 bytes".into(),
                ));
            }
        }
        if self.service_name.trim().is_empty() || self.service_name.chars().count() > 256 {
            return Err(problem(
                "service_name",
                "must be 1-256 characters and not blank (null resets it to the default, `opslog`)"
                    .into(),
            ));
        }
        for (key, value) in &self.resource_attributes {
            let field = format!("resource_attributes.{key}");
            if key.is_empty() || key.len() > 256 {
                return Err(problem(&field, "keys are 1-256 characters".into()));
            }
            if key == "service.name" {
                return Err(problem(&field, "set it with `service_name` instead".into()));
            }
            if value.len() > 4096 {
                return Err(problem(&field, "values are at most 4096 bytes".into()));
            }
        }
        if self.max_events_per_span > MAX_EVENTS_PER_SPAN {
            return Err(problem(
                "max_events_per_span",
                format!(
                    "{} is too many; use at most {MAX_EVENTS_PER_SPAN}",
                    self.max_events_per_span
                ),
            ));
        }
        if self.timeout.0.is_zero() || self.timeout.0 > Duration::from_secs(300) {
            return Err(problem("timeout", "must be between 1ms and 5m".into()));
        }
        check_trace_url(&self.trace_url).map_err(|m| problem("trace_url", m))?;
        Ok(())
    }

    /// A copy fit to show: every header value masked.
    pub fn masked(&self) -> OtelConfig {
        let mut masked = self.clone();
        for value in masked.headers.values_mut() {
            *value = mask(value);
        }
        masked
    }
}

/// A trace link template: empty, or an absolute http(s) URL with `{trace_id}` in it.
pub fn check_trace_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    if url.len() > 2048 {
        return Err("the URL is longer than 2048 bytes".into());
    }
    if !url.contains("{trace_id}") {
        return Err(format!(
            "`{url}` has no `{{trace_id}}`; write it like \"http://localhost:16686/trace/{{trace_id}}\""
        ));
    }
    let example = url.replace("{trace_id}", "4bf92f3577b34da6a3ce929d0e0e4736");
    match example.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {
            Ok(())
        }
        _ => Err(format!(
            "`{url}` is not an absolute http(s) URL once `{{trace_id}}` is filled in"
        )),
    }
}

/// An OTLP/HTTP base URL: absolute http(s) with a host, no credentials, query or fragment, and
/// not already ending in the `/v1/traces` that opslog appends.
pub fn check_otel_endpoint(endpoint: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("`{endpoint}` {why}"));
    if endpoint.len() > 2048 {
        return Err("the URL is longer than 2048 bytes".into());
    }
    let uri: http::Uri = match endpoint.parse() {
        Ok(uri) => uri,
        Err(_) => return invalid("is not a URL; write it like \"http://127.0.0.1:4318\""),
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return invalid("must start with http:// or https://");
    }
    let Some(authority) = uri.authority() else {
        return invalid("has no host");
    };
    if authority.host().is_empty() {
        return invalid("has no host");
    }
    if authority.as_str().contains('@') {
        return invalid("must not contain credentials; send them with `headers`");
    }
    if uri.query().is_some() || endpoint.contains('#') {
        return invalid("must not have a query or fragment");
    }
    if uri.path().trim_end_matches('/').ends_with("/v1/traces") {
        return invalid("is the collector's base URL: leave out /v1/traces, opslog appends it");
    }
    Ok(())
}

impl ServerConfig {
    /// Where people open the dashboard: `public_url`, or the address the daemon listens on
    /// (`localhost` when it listens on every interface). Always ends with `/`.
    pub fn dashboard_url(&self, listening: SocketAddr) -> String {
        if !self.public_url.is_empty() {
            let mut url = self.public_url.clone();
            if !url.ends_with('/') {
                url.push('/');
            }
            return url;
        }
        if listening.ip().is_unspecified() {
            format!("http://localhost:{}/", listening.port())
        } else {
            format!("http://{listening}/")
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            data_dir: PathBuf::from("./opslog-data"),
            admin_tokens: Vec::new(),
            max_body_bytes: 10 * 1024 * 1024,
            store_cache_bytes: DEFAULT_STORE_CACHE_BYTES,
            header_read_timeout: duration("10s"),
            shutdown_timeout: duration("30s"),
            session_ttl: duration("12h"),
            cookie_secure: false,
            public_url: String::new(),
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            days: 15.0,
            every: duration("1m"),
            max_disk: None,
        }
    }
}

impl Default for DeadlinesConfig {
    fn default() -> Self {
        DeadlinesConfig {
            sync: duration("24h"),
            action: duration("15m"),
            webhook: duration("15m"),
            auth: duration("5m"),
            proxy: duration("15m"),
            deploy: duration("15m"),
            admin: duration("15m"),
            events: duration("15m"),
            function: duration("15m"),
            sweep_every: duration("1s"),
        }
    }
}

impl RetentionConfig {
    /// How long records are kept where no environment says otherwise.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(self.days * 86_400.0)
    }
}

/// The longest retention: 100 years.
const MAX_RETENTION: Duration = Duration::from_secs(36_500 * 86_400);
/// The smallest `retention.max_disk`: below it a fresh data dir is already over.
pub const MIN_MAX_DISK: u64 = 1 << 20;

impl Config {
    /// How long each configured environment's operations are kept.
    pub fn retention_by_environment(&self) -> BTreeMap<String, Duration> {
        let default = self.retention.period();
        self.environments
            .iter()
            .map(|(name, env)| (name.clone(), env.retention.map_or(default, |r| r.0)))
            .collect()
    }
}

impl DeadlinesConfig {
    pub fn for_type(&self, kind: OpType) -> Duration {
        let d = match kind {
            OpType::Sync => self.sync,
            OpType::Action => self.action,
            OpType::Webhook => self.webhook,
            OpType::Auth => self.auth,
            OpType::Proxy => self.proxy,
            OpType::Deploy => self.deploy,
            OpType::Admin => self.admin,
            OpType::Events => self.events,
            OpType::Function => self.function,
        };
        d.0
    }
}

/// Why a configuration was refused: the key and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid config: `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("{0}")]
    Exposed(String),
}

pub const ADMIN_TOKEN_ENV: &str = "OPSLOG_ADMIN_TOKEN";

impl Config {
    /// Reads and validates a TOML file, then applies `OPSLOG_ADMIN_TOKEN`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let config = Config::from_toml(&text, &path.display().to_string())?;
        crate::permissions::check_config_file(path, &config.secrets_held())
            .map_err(|e| ConfigError::Exposed(e.to_string()))?;
        config.finish()
    }

    /// The keys of the file that hold secrets, for the check that others cannot read it.
    fn secrets_held(&self) -> Vec<&'static str> {
        let mut held = Vec::new();
        if !self.server.admin_tokens.is_empty() {
            held.push("server.admin_tokens");
        }
        let envs = self.environments.values();
        if envs.clone().any(|env| !env.api_keys.is_empty()) {
            held.push("api_keys");
        }
        if envs.clone().any(|env| env.webhooks.secret.is_some()) {
            held.push("webhooks.secret");
        }
        if envs
            .clone()
            .any(|env| env.otel.as_ref().is_some_and(|o| !o.headers.is_empty()))
        {
            held.push("otel.headers");
        }
        if envs.clone().any(|env| !env.notifiers.names().is_empty()) {
            held.push("notifiers");
        }
        held
    }

    /// The embedded defaults, with `OPSLOG_ADMIN_TOKEN` applied.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::default().finish()
    }

    /// Parses TOML text without environment overrides; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let parse_error = |key: String, e: toml::de::Error| ConfigError::Parse {
            path: origin.to_owned(),
            message: match key.as_str() {
                "" | "." => e.to_string().trim_end().to_owned(),
                key => format!("`{key}`: {}", e.to_string().trim_end()),
            },
        };
        let deserializer =
            toml::Deserializer::parse(text).map_err(|e| parse_error(String::new(), e))?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string();
            parse_error(key, e.into_inner())
        })?;
        config.validate()?;
        Ok(config)
    }

    fn finish(mut self) -> Result<Config, ConfigError> {
        if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV) {
            check_secret(ADMIN_TOKEN_ENV, &token)?;
            if !self.server.admin_tokens.contains(&token) {
                self.server.admin_tokens.push(token);
            }
        }
        if self.environments.is_empty() {
            for name in ["dev", "prod"] {
                self.environments
                    .insert(name.to_owned(), EnvironmentConfig::default());
            }
        }
        Ok(self)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        if self.server.max_body_bytes < 1024 {
            return Err(invalid(
                "server.max_body_bytes",
                format!(
                    "{} is too small; use at least 1024",
                    self.server.max_body_bytes
                ),
            ));
        }
        if self.server.store_cache_bytes < 1024 * 1024 {
            return Err(invalid(
                "server.store_cache_bytes",
                format!(
                    "{} is too small; use at least 1048576 (1 MiB)",
                    self.server.store_cache_bytes
                ),
            ));
        }
        if self.server.data_dir.as_os_str().is_empty() {
            return Err(invalid("server.data_dir", "must not be empty".into()));
        }
        let public_url = &self.server.public_url;
        if !public_url.is_empty() {
            let ok = public_url.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !ok {
                return Err(invalid(
                    "server.public_url",
                    format!(
                        "`{public_url}` is not an http(s) URL such as https://opslog.example.com/"
                    ),
                ));
            }
        }
        for token in &self.server.admin_tokens {
            check_secret("server.admin_tokens", token)?;
        }
        let ttl = self.server.session_ttl.0;
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(30 * 86400) {
            return Err(invalid(
                "server.session_ttl",
                "must be between 1s and 30d".into(),
            ));
        }
        let every = self.alerts.every.0;
        if every < Duration::from_secs(1) || every > Duration::from_secs(3600) {
            return Err(invalid("alerts.every", "must be between 1s and 1h".into()));
        }
        if !(self.retention.days > 0.0 && self.retention.days <= 36_500.0) {
            return Err(invalid(
                "retention.days",
                format!(
                    "{} is not a number of days between 0 and 36500",
                    self.retention.days
                ),
            ));
        }
        if self.audit.retention.0.is_zero() || self.audit.retention.0 > MAX_RETENTION {
            return Err(invalid(
                "audit.retention",
                "must be longer than 0s and at most 36500d".into(),
            ));
        }
        if self.retention.every.0 < Duration::from_millis(10) {
            return Err(invalid("retention.every", "must be at least 10ms".into()));
        }
        if let Some(max) = self.retention.max_disk {
            if max.0 < MIN_MAX_DISK {
                return Err(invalid(
                    "retention.max_disk",
                    format!("{max} is too small; use at least 1MiB, or \"\" for no cap"),
                ));
            }
        }
        for kind in OpType::ALL {
            if self.deadlines.for_type(*kind).is_zero() {
                return Err(invalid(
                    &format!("deadlines.{kind}"),
                    "must be longer than 0s".into(),
                ));
            }
        }
        if self.deadlines.sweep_every.0 < Duration::from_millis(10) {
            return Err(invalid(
                "deadlines.sweep_every",
                "must be at least 10ms".into(),
            ));
        }
        if self.outbox.concurrency == 0 || self.outbox.concurrency > 256 {
            return Err(invalid(
                "outbox.concurrency",
                "must be between 1 and 256".into(),
            ));
        }
        if self.outbox.per_destination == 0 {
            return Err(invalid(
                "outbox.per_destination",
                "must be at least 1".into(),
            ));
        }
        if self.outbox.export_retry_for.0.is_zero() {
            return Err(invalid(
                "outbox.export_retry_for",
                "must be longer than 0s (e.g. \"24h\")".into(),
            ));
        }
        if self.outbox.export_max_backoff.0 < Duration::from_secs(1) {
            return Err(invalid(
                "outbox.export_max_backoff",
                "must be at least 1s (the first wait of the backoff)".into(),
            ));
        }
        if self.ingest.writer_queue == 0 {
            return Err(invalid("ingest.writer_queue", "must be at least 1".into()));
        }
        if self.ingest.incoming_webhook_max_bytes < 1024 {
            return Err(invalid(
                "ingest.incoming_webhook_max_bytes",
                "must be at least 1024".into(),
            ));
        }
        for (i, range) in self.outbox.allow_private_destinations.iter().enumerate() {
            crate::destination::check_allowed_range(range).map_err(|message| {
                invalid(&format!("outbox.allow_private_destinations[{i}]"), message)
            })?;
        }
        let destinations = self.outbox.destinations();
        let mut seen_keys = BTreeMap::new();
        for (name, env) in &self.environments {
            if !valid_environment_name(name) {
                return Err(invalid(
                    &format!("environments.{name}"),
                    "environment names use 1-64 characters a-z, 0-9, '-' and '_'".into(),
                ));
            }
            if let Some(retention) = env.retention {
                if retention.0.is_zero() || retention.0 > MAX_RETENTION {
                    return Err(invalid(
                        &format!("environments.{name}.retention"),
                        "must be longer than 0s and at most 36500d".into(),
                    ));
                }
            }
            if let Some(otel) = &env.otel {
                otel.check().map_err(|p| {
                    invalid(&format!("environments.{name}.otel.{}", p.field), p.message)
                })?;
            }
            for ApiKey { key, .. } in &env.api_keys {
                let field = format!("environments.{name}.api_keys");
                check_secret(&field, key)?;
                if self.server.admin_tokens.contains(key) {
                    return Err(invalid(
                        &field,
                        "a key must not equal an admin token".into(),
                    ));
                }
                if let Some(other) = seen_keys.insert(key.clone(), name.clone()) {
                    return Err(invalid(
                        &field,
                        format!("the same key is also an api key of environment `{other}`"),
                    ));
                }
            }
            if let Some(rules) = &env.alerts {
                crate::model::alert::check_rules(&format!("environments.{name}.alerts"), rules)
                    .map_err(|e| invalid(e.field(), e.reason()))?;
            }
            notifiers::check_notifiers(&env.notifiers, &destinations)
                .map_err(|e| invalid(&format!("environments.{name}.{}", e.field()), e.reason()))?;
            webhooks::check_webhooks_config(&env.webhooks, &destinations)
                .map_err(|e| invalid(&format!("environments.{name}.{}", e.field()), e.reason()))?;
            if let Some(otel) = &env.otel {
                destinations.check_url(&otel.endpoint).map_err(|refused| {
                    invalid(
                        &format!("environments.{name}.otel.endpoint"),
                        refused.to_string(),
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, every secret masked.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        for token in &mut masked.server.admin_tokens {
            *token = mask(token);
        }
        for env in masked.environments.values_mut() {
            for entry in &mut env.api_keys {
                entry.key = mask(&entry.key);
            }
            if let Some(secret) = &mut env.webhooks.secret {
                *secret = mask(secret);
            }
            env.otel = env.otel.as_ref().map(OtelConfig::masked);
            let n = &mut env.notifiers;
            if let Some(slack) = &mut n.slack {
                slack.url = crate::model::notifier::mask_secret_path(&slack.url);
            }
            if let Some(pagerduty) = &mut n.pagerduty {
                pagerduty.routing_key = mask(&pagerduty.routing_key);
            }
            if let Some(email) = &mut n.email {
                email.url = crate::model::notifier::mask_smtp_url(&email.url);
            }
        }
        toml::to_string_pretty(&masked).expect("the config always serializes")
    }
}

pub fn valid_environment_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn check_secret(key: &str, secret: &str) -> Result<(), ConfigError> {
    let problem = if secret.len() < 16 {
        Some("must be at least 16 characters long")
    } else if secret.len() > 512 {
        Some("must be at most 512 characters long")
    } else if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        Some("must be printable ASCII without spaces")
    } else {
        None
    };
    match problem {
        Some(p) => Err(ConfigError::Invalid {
            key: key.to_owned(),
            message: format!("a secret {p}"),
        }),
        None => Ok(()),
    }
}

/// redb's page cache unless `server.store_cache_bytes` says otherwise. redb's own default, 1 GiB,
/// would let the cache alone take the whole memory budget of a large store.
pub const DEFAULT_STORE_CACHE_BYTES: usize = 256 * 1024 * 1024;

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_masked_toml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's pattern and the server's parser take exactly the same strings.
    #[test]
    fn sizes_and_retentions_parse_and_are_checked() {
        assert_eq!(ByteSize::parse("20GB"), Ok(ByteSize(20_000_000_000)));
        assert_eq!(ByteSize::parse("1.5GiB"), Ok(ByteSize(3 << 29)));
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        assert_eq!(ByteSize(20_000_000_000).to_string(), "20GB");
        assert!(ByteSize::parse("20 parsecs").is_err());
        assert!(ByteSize::parse("GB").is_err());
        let config = Config::from_toml(
            "[retention]\nmax_disk = \"8MB\"\n[environments.prod]\nretention = \"30d\"\n[environments.dev]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(config.retention.max_disk, Some(ByteSize(8_000_000)));
        let by_env = config.retention_by_environment();
        assert_eq!(by_env["prod"], Duration::from_secs(30 * 86_400));
        assert_eq!(by_env["dev"], Duration::from_secs(15 * 86_400));
        for (toml, key) in [
            ("[retention]\nmax_disk = \"10KB\"\n", "retention.max_disk"),
            ("[retention]\nmax_disk = \"lots\"\n", "retention.max_disk"),
            (
                "[environments.prod]\nretention = \"0s\"\n",
                "environments.prod.retention",
            ),
            (
                "[environments.prod]\nretention = \"soon\"\n",
                "environments.prod.retention",
            ),
        ] {
            let err = Config::from_toml(toml, "t.toml").unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn api_durations_match_their_pattern_both_ways() {
        fn agree<const LO: u64, const HI: u64>(texts: &[String]) {
            let schema =
                serde_json::json!({"type": "string", "pattern": ApiDuration::<LO, HI>::pattern()});
            let validator = jsonschema::validator_for(&schema).unwrap();
            for text in texts {
                let by_pattern = validator.is_valid(&serde_json::Value::from(text.as_str()));
                let parsed = ApiDuration::<LO, HI>::parse(text);
                assert_eq!(
                    by_pattern,
                    parsed.is_ok(),
                    "{LO}..={HI} `{text}`: {parsed:?}"
                );
                if let Ok(d) = parsed {
                    assert_eq!(ApiDuration::<LO, HI>::parse(&d.to_string()), Ok(d));
                }
            }
        }
        let mut texts: Vec<String> = [
            "",
            "s",
            "0",
            "00s",
            "01s",
            "1h 30m",
            " 5s",
            "5s ",
            "5S",
            "1e3ms",
            "-1s",
            "1.5s",
            "18446744073709551616ms",
            "99999999999999999999d",
        ]
        .iter()
        .map(|t| t.to_string())
        .collect();
        let mut n: u64 = 0;
        while n < 2_000_000_000 {
            for unit in ["ms", "s", "m", "h", "d", "us", "w"] {
                texts.push(format!("{n}{unit}"));
            }
            n = n * 3 / 2 + 1;
        }
        for edge in [
            0u64,
            1,
            5,
            7,
            8,
            9,
            10,
            99,
            100,
            168,
            169,
            300,
            301,
            999,
            1000,
            10080,
            10081,
            300_000,
            300_001,
            604_800,
            604_801,
            604_800_000,
            604_800_001,
        ] {
            for unit in ["ms", "s", "m", "h", "d"] {
                texts.push(format!("{edge}{unit}"));
            }
        }
        agree::<1, 300_000>(&texts);
        agree::<0, 604_800_000>(&texts);
        agree::<1_000, 31_622_400_000>(&texts);
        assert_eq!(ApiTimeout::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(ApiDelay::parse("120m").unwrap().to_string(), "2h");
        assert_eq!(ApiDelay::parse("0ms").unwrap().to_string(), "0s");
    }

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
                .unwrap();
        let parsed = Config::from_toml(&text, "config.example.toml").unwrap();
        let defaults = Config::default();
        assert_eq!(parsed.server.listen, defaults.server.listen);
        assert_eq!(parsed.server.data_dir, defaults.server.data_dir);
        assert_eq!(parsed.server.max_body_bytes, defaults.server.max_body_bytes);
        assert_eq!(
            parsed.server.store_cache_bytes,
            defaults.server.store_cache_bytes
        );
        assert_eq!(parsed.retention.days, defaults.retention.days);
        assert_eq!(parsed.retention.max_disk, defaults.retention.max_disk);
        assert_eq!(parsed.audit.retention, defaults.audit.retention);
        assert_eq!(
            parsed.deadlines.to_masked(),
            defaults.deadlines.to_masked(),
            "config.example.toml must show the defaults"
        );
        assert_eq!(
            toml::to_string(&parsed.outbox).unwrap(),
            toml::to_string(&defaults.outbox).unwrap()
        );
        assert_eq!(
            parsed.ingest.incoming_webhook_max_bytes,
            defaults.ingest.incoming_webhook_max_bytes
        );
        // The commented webhooks table parses as written, with the documented defaults.
        let webhooks: String = text
            .lines()
            .skip_while(|l| *l != "# [environments.prod.webhooks]")
            .skip(1)
            .take_while(|l| !l.starts_with("# ["))
            .map(|l| l.trim_start_matches("# ").trim_start_matches('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let table: WebhooksConfig = toml::from_str(
            &webhooks
                .lines()
                .filter(|l| l.contains(" = "))
                .filter(|l| !l.starts_with("secret"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        let schedule: Vec<Duration> = table.retry_schedule.unwrap().iter().map(|d| d.0).collect();
        assert_eq!(schedule, webhooks::default_schedule());
        assert_eq!(table.timeout.unwrap().0, webhooks::DEFAULT_TIMEOUT);
        assert_eq!(
            table.rotation_grace.unwrap().0,
            webhooks::DEFAULT_ROTATION_GRACE
        );
        assert_eq!(table.events.unwrap(), EventType::ALL.to_vec());
        assert_eq!(table.allow_insecure_http, Some(false));
    }

    #[test]
    fn webhook_tables_are_checked() {
        let err = Config::from_toml(
            "[environments.prod.webhooks]\nurl = \"http://backend.example.com\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("environments.prod.webhooks.url") && err.contains("allow_insecure_http"),
            "{err}"
        );
        let err = Config::from_toml(
            "[environments.prod.webhooks]\nevents = [\"sync.done\"]\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sync.done") && err.contains("line 2"), "{err}");
        let err = Config::from_toml(
            "[environments.prod.webhooks]\nsecret = \"hunter2\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("webhooks.secret") && err.contains("whsec_"),
            "{err}"
        );
        let ok = Config::from_toml(
            "[environments.prod.webhooks]\nurl = \"https://b.example.com/h\"\nretry_schedule = [\"0s\", \"1s\"]\n",
            "t.toml",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    impl DeadlinesConfig {
        fn to_masked(&self) -> String {
            toml::to_string(self).unwrap()
        }
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let err = Config::from_toml("[deadlines]\nsync = \"15x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("15x"), "{err}");
        assert!(
            err.contains("`deadlines.sync`"),
            "names the whole key: {err}"
        );
        let err = Config::from_toml("[server]\nlisten = \"nowhere\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("listen"), "{err}");
        let err = Config::from_toml("[server]\nlisen = \"x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `lisen`"), "{err}");
        let err = Config::from_toml("[environments.Prod]\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("environments.Prod"), "{err}");
        let err = Config::from_toml("[environments.prod]\napi_keys = [\"short\"]\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environments.prod.api_keys") && err.contains("16"),
            "{err}"
        );
        let err = Config::from_toml("[outbox]\nexport_max_backoff = \"500ms\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("outbox.export_max_backoff") && err.contains("at least 1s"),
            "{err}"
        );
        let ok = Config::from_toml("[outbox]\nexport_max_backoff = \"1h\"\n", "t.toml").unwrap();
        assert_eq!(ok.outbox.export_max_backoff.0, Duration::from_secs(3600));
    }

    /// The commented `# [environments.prod.otel]` block of the example, uncommented.
    fn example_otel_block() -> String {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
                .unwrap();
        let mut lines = text
            .lines()
            .skip_while(|l| *l != "# [environments.prod.otel]");
        let mut block = format!(
            "{}\n",
            &lines.next().expect("the example has an otel block")[2..]
        );
        for line in lines.take_while(|l| !l.starts_with("# [")) {
            let setting = line.strip_prefix("# ").unwrap_or("");
            let key_len = setting.find(" = ").unwrap_or(0);
            if key_len > 0
                && setting[..key_len]
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            {
                block.push_str(setting);
                block.push('\n');
            }
        }
        block
    }

    #[test]
    fn example_otel_block_shows_every_key_with_its_default() {
        let block = example_otel_block();
        let parsed = Config::from_toml(&block, "example otel block").unwrap();
        let otel = parsed.environments["prod"].otel.clone().unwrap();
        assert_eq!(otel, OtelConfig::with_endpoint("http://127.0.0.1:4318"));
        let documented: Vec<&str> = block
            .lines()
            .skip(1)
            .map(|l| l.split(" = ").next().unwrap())
            .collect();
        let every_key = toml::Table::try_from(&otel).unwrap();
        assert!(
            every_key.contains_key("headers"),
            "empty tables are keys too"
        );
        for key in every_key.keys() {
            assert!(
                documented.contains(&key.as_str()),
                "config.example.toml documents `{key}`"
            );
        }
    }

    #[test]
    fn otel_settings_parse_and_are_checked() {
        let text = r#"
            [environments.prod.otel]
            endpoint = "https://api.honeycomb.io/"
            headers = { "x-honeycomb-team" = "hc-secret-key-0123" }
            service_name = "opslog-prod"
            resource_attributes = { "deployment.environment.name" = "prod" }
            max_events_per_span = 16
            timeout = "3s"
        "#;
        let config = Config::from_toml(text, "t.toml").unwrap();
        let otel = config.environments["prod"].otel.as_ref().unwrap();
        assert_eq!(otel.endpoint, "https://api.honeycomb.io/");
        assert_eq!(otel.headers["x-honeycomb-team"], "hc-secret-key-0123");
        assert_eq!(otel.service_name, "opslog-prod");
        assert_eq!(
            otel.resource_attributes["deployment.environment.name"],
            "prod"
        );
        assert_eq!(otel.max_events_per_span, 16);
        assert_eq!(otel.timeout.0, Duration::from_secs(3));

        let refused = |table: &str| {
            Config::from_toml(&format!("[environments.prod.otel]\n{table}"), "t.toml")
                .unwrap_err()
                .to_string()
        };
        for (table, key, words) in [
            ("", "environments.prod.otel", "missing field `endpoint`"),
            (
                "endpoint = \"ftp://x\"",
                "environments.prod.otel.endpoint",
                "http://",
            ),
            (
                "endpoint = \"4318\"",
                "environments.prod.otel.endpoint",
                "http://",
            ),
            (
                "endpoint = \"http://u:p@c:4318\"",
                "environments.prod.otel.endpoint",
                "credentials",
            ),
            (
                "endpoint = \"http://c:4318/v1/traces\"",
                "environments.prod.otel.endpoint",
                "leave out /v1/traces",
            ),
            (
                "endpoint = \"http://c?a=b\"",
                "environments.prod.otel.endpoint",
                "query",
            ),
            (
                "endpoint = \"http://c\"\nheaders = { \"bad name\" = \"v\" }",
                "environments.prod.otel.headers.bad name",
                "header name",
            ),
            (
                "endpoint = \"http://c\"\nheaders = { \"content-type\" = \"x\" }",
                "environments.prod.otel.headers.content-type",
                "set by opslog",
            ),
            (
                "endpoint = \"http://c\"\nheaders = { k = \"a\\nb\" }",
                "environments.prod.otel.headers.k",
                "printable",
            ),
            (
                "endpoint = \"http://c\"\nservice_name = \" \"",
                "environments.prod.otel.service_name",
                "blank",
            ),
            (
                "endpoint = \"http://c\"\nresource_attributes = { \"service.name\" = \"x\" }",
                "environments.prod.otel.resource_attributes.service.name",
                "service_name",
            ),
            (
                "endpoint = \"http://c\"\nmax_events_per_span = 5000",
                "environments.prod.otel.max_events_per_span",
                "at most 1000",
            ),
            (
                "endpoint = \"http://c\"\ntimeout = \"0s\"",
                "environments.prod.otel.timeout",
                "between",
            ),
            (
                "endpoint = \"http://c\"\nendpont = \"x\"",
                "environments.prod.otel",
                "unknown field `endpont`",
            ),
        ] {
            let err = refused(table);
            assert!(err.contains(key) && err.contains(words), "{table}: {err}");
        }
    }

    #[test]
    fn masked_output_hides_otel_header_values() {
        let mut config = Config::default();
        let mut otel = OtelConfig::with_endpoint("http://127.0.0.1:4318");
        otel.headers
            .insert("x-api-key".into(), "otel-secret-0123456789".into());
        config.environments.insert(
            "prod".into(),
            EnvironmentConfig {
                otel: Some(otel),
                ..EnvironmentConfig::default()
            },
        );
        let text = config.to_masked_toml();
        assert!(!text.contains("otel-secret-0123456789"), "{text}");
        assert!(text.contains("otel…(masked)"), "{text}");
        assert!(text.contains("http://127.0.0.1:4318"), "{text}");
        let reparsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(
            reparsed.environments["prod"]
                .otel
                .as_ref()
                .unwrap()
                .max_events_per_span,
            128
        );
    }

    #[test]
    fn api_keys_are_plain_strings_or_tables_with_a_scope() {
        let config = Config::from_toml(
            "[environments.prod]\napi_keys = [\"plain-key-0123456789\", \
             { key = \"ingest-key-0123456789\", scope = \"ingest\" }, \
             { key = \"read-key-0123456789ab\", scope = \"read\" }]\n",
            "t.toml",
        )
        .unwrap();
        let scopes: Vec<KeyScope> = config.environments["prod"]
            .api_keys
            .iter()
            .map(|k| k.scope)
            .collect();
        assert_eq!(
            scopes,
            [KeyScope::IngestRead, KeyScope::Ingest, KeyScope::Read]
        );
        for (entry, words) in [
            (
                "{ key = \"k-0123456789abcdef\", scope = \"admin\" }",
                "unknown variant `admin`",
            ),
            ("{ key = \"k-0123456789abcdef\" }", "missing field `scope`"),
            ("{ key = \"short\", scope = \"read\" }", "16"),
            (
                "{ key = \"k-0123456789abcdef\", scope = \"read\", x = 1 }",
                "unknown field `x`",
            ),
        ] {
            let err = Config::from_toml(
                &format!("[environments.prod]\napi_keys = [{entry}]\n"),
                "t.toml",
            )
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("environments.prod.api_keys") && err.contains(words),
                "{entry}: {err}"
            );
        }
        let masked = config.to_masked_toml();
        assert!(!masked.contains("read-key-0123456789ab"), "{masked}");
        assert!(masked.contains("scope = \"read\""), "{masked}");
    }

    #[test]
    fn masked_output_hides_secrets() {
        let mut config = Config::default();
        config.server.admin_tokens = vec!["admin-secret-0123456789".into()];
        let text = config.to_masked_toml();
        assert!(!text.contains("admin-secret-0123456789"), "{text}");
        assert!(text.contains("admi…(masked)"), "{text}");
        let reparsed: Config = toml::from_str(&text).unwrap();
        assert_eq!(reparsed.deadlines.sync, config.deadlines.sync);
    }
}
