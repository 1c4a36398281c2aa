//! The OpenAPI 3.1 document of the HTTP API, served at `GET /openapi.json` and checked in as
//! `openapi.json` at the repository root.
//!
//! Schemas come from the Rust types that are serialized (`utoipa::ToSchema` derives), so a changed
//! struct changes the document. The paths are declared here, one entry per route, so the whole
//! API reads as one table and handlers stay free of annotations. Adding an endpoint is one
//! `api.env(...)` (or `api.add(...)`) entry; a new settings section is a field of `SettingsView`.
//!
//! Must not: describe a route the router does not serve, or a status a handler cannot answer.
//! `tests/it/openapi.rs` validates real answers against this document and compares it with the
//! checked-in file.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::link::{Link, LinkBuilder};
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, ParameterStyle, Paths,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOfBuilder, ArrayBuilder, KnownFormat, ObjectBuilder,
    OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required,
    ResponseBuilder,
};
use utoipa::ToSchema;

use super::dashboard::{Environment, LoggedIn, Login, SessionStatus};
use super::error::ErrorBody;
use super::hooks::Received;
use super::outbox_jobs::Replayed;
use super::search::{Facets, Insights, MessageHit, MessageInContext, OperationHit};
use super::settings::SecretReveal;
use super::signals::Signals;
use super::vocabulary::Vocabulary;
use super::Health;
use crate::archive::CONTENT_TYPE as NDJSON;
use crate::config::ApiDelay;
use crate::ingest::input::{NewMessage, NewOperation, OperationPatch, MAX_BATCH, MAX_NAME_CHARS};
use crate::model::audit::{AuditAction, AuditView};
use crate::model::erase::EraseView;
use crate::model::job::{DeliveryDetail, DeliveryView, ExportDetail, ExportView};
use crate::model::{
    DeliveryStatus, EventType, Id, Message, MessageType, OpState, OpType, Operation, Timestamp,
    ID_PATTERN,
};
use crate::query_params::{Endpoint as QueryEndpoint, Interval, Kind, FACET_FIELDS};
use crate::scope::Scope;
use crate::session::COOKIE_NAME;
use crate::settings::{SettingsUpdate, SettingsView};
use crate::write::Imported;

/// The extension on every operation naming the scope it needs: `ingest`, `read`, `admin`, or
/// `none` (no bearer token).
pub const SCOPE_EXTENSION: &str = "x-opslog-scope";

/// The document as served and checked in: pretty JSON with a trailing newline.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut text = document()
            .to_pretty_json()
            .expect("the OpenAPI document serializes");
        text.push('\n');
        text
    })
}

/// `GET /openapi.json` (no auth).
pub async fn serve() -> Response {
    let mut response = (StatusCode::OK, document_json()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Every route of `super::router` except the dashboard page and its assets.
pub fn document() -> OpenApi {
    use HttpMethod::{Delete, Get, Patch, Post, Put};
    let api = Api::default();
    let operation = api.schema::<Operation>();
    let message = api.schema::<Message>();
    let new_message = message_input(&api);
    let settings = api.schema::<SettingsView>();
    let reveal = api.schema::<SecretReveal>();
    let delivery = api.schema::<DeliveryView>();
    let job_page_params = page_params(job_cursor());

    let op = "operation";
    let id = || id_param(&api, "an operation id (26-character ULID)");

    let new_operation = ends_in_terminal_state(api.schema::<NewOperation>());
    let one_or_many_operations = OneOfBuilder::new()
        .item(new_operation.clone())
        .item(array(new_operation, Some(MAX_BATCH)))
        .into();
    let operation_or_page = OneOfBuilder::new()
        .item(operation.clone())
        .item(api.page::<Operation>())
        .into();
    api.env(Post, "/operations", endpoint("createOperation", "Start an operation (an object), or up to 1,000 at once (an array, all or nothing), each with its first messages if any", op)
        .scope(Scope::Ingest)
        .param(header_param("Idempotency-Key", idempotency_key(), "1-255 printable ASCII characters, for an object only; a retry with the same key and body answers the first operation again (with `idempotent-replayed: true`), with another body 422"))
        .param(header_param("traceparent", string(), "W3C Trace Context: the operation (each of an array without its own `trace_context`) joins this trace, its exported span a child of this span, and webhooks about it carry its span's `traceparent`; an invalid value is ignored, never refused (the body's `trace_context` wins)"))
        .param(header_param("tracestate", string(), "W3C Trace Context vendor entries, kept with a valid `traceparent` (at most 512 characters, whole entries cut from the end)"))
        .param(prefer())
        .body(one_or_many_operations, "the operation to start, or an array of them; `type` is required; `messages` (at most 1,000 in the request) are stored with it")
        .link("getOperation", "getOperation")
        .link("updateOperation", "updateOperation")
        .link("appendMessages", "appendMessages")
        .link("listMessages", "listMessages")
        .reply(201, "the operation as stored for an object; a page of them for an array", operation_or_page)
        .reply_empty(204, STORED_MINIMAL)
        .errors(&[400, 413, 415, 422, 503, 507]));
    api.env(
        Patch,
        "/operations/{id}",
        endpoint(
            "updateOperation",
            "Update an operation: state, error, records, meta, request/response, times",
            op,
        )
        .scope(Scope::Ingest)
        .param(id())
        .body(
            ends_in_terminal_state(api.schema::<OperationPatch>()),
            "the fields to change; a terminal state is final",
        )
        .reply(200, "the operation after the change", operation.clone())
        .errors(&[400, 409, 413, 415, 503, 507]),
    );
    api.env(
        Get,
        "/operations/{id}",
        endpoint("getOperation", "One operation", op)
            .scope(Scope::Read)
            .param(id())
            .reply(200, "the operation", operation.clone())
            .errors(&[400]),
    );
    api.env(
        Get,
        "/operations/{id}/output",
        endpoint(
            "getOperationOutput",
            "What an action returned (its `output`), as Nango's `statusUrl` answers: the bare JSON",
            op,
        )
        .scope(Scope::Read)
        .param(id())
        .reply(
            200,
            "the output as stored; null when the action reported none",
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
                .description(Some("any JSON value: the action's output"))
                .into(),
        )
        .errors(&[400, 409]),
    );
    api.env(
        Get,
        "/operations",
        endpoint("listOperations", "List operations, newest first", op)
            .scope(Scope::Read)
            .params(query_parameters(&api, QueryEndpoint::Operations))
            .param(csv_format())
            .reply_or_csv(
                200,
                "a page of operations; as CSV, every match",
                api.page::<OperationHit>(),
            )
            .errors(&[400, 503]),
    );

    let in_operation = without_operation_id(new_message.clone());
    let one_or_many = OneOfBuilder::new()
        .item(in_operation.clone())
        .item(array(in_operation, Some(MAX_BATCH)))
        .into();
    let message_or_page = OneOfBuilder::new()
        .item(message.clone())
        .item(api.page::<Message>())
        .into();
    let msg = "message";
    api.env(
        Post,
        "/operations/{id}/messages",
        endpoint(
            "appendMessages",
            "Append one message (an object) or up to 1,000 (an array) to an operation",
            msg,
        )
        .scope(Scope::Ingest)
        .param(id())
        .param(prefer())
        .body(
            one_or_many,
            "a message, or an array of messages; `operation_id` may be left out",
        )
        .reply(
            201,
            "the stored message for an object; a page of them for an array",
            message_or_page,
        )
        .reply_empty(204, STORED_MINIMAL)
        .errors(&[400, 413, 415, 503, 507]),
    );
    api.env(Post, "/messages", endpoint("appendBatch", "Append up to 1,000 messages for many operations (each names `operation_id`); all or nothing", msg)
        .scope(Scope::Ingest)
        .param(prefer())
        .body(array(with_operation_id(&api, new_message), Some(MAX_BATCH)), "messages, each with `operation_id`")
        .reply(201, "the stored messages", api.page::<Message>())
        .reply_empty(204, STORED_MINIMAL)
        .errors(&[400, 413, 415, 503, 507]));
    api.env(
        Get,
        "/operations/{id}/messages",
        endpoint(
            "listMessages",
            "An operation's messages, oldest first; `after`/`before` for live tailing",
            msg,
        )
        .scope(Scope::Read)
        .param(id())
        .params(query_parameters(&api, QueryEndpoint::OperationMessages))
        .param(csv_format())
        .reply_or_csv(
            200,
            "a page of messages; as CSV, every message",
            api.page::<MessageInContext>(),
        )
        .errors(&[400, 503]),
    );
    api.env(
        Get,
        "/messages",
        endpoint(
            "searchMessages",
            "Search messages across the environment, newest first",
            msg,
        )
        .scope(Scope::Read)
        .params(query_parameters(&api, QueryEndpoint::Messages))
        .param(csv_format())
        .reply_or_csv(
            200,
            "a page of messages with their operations; as CSV, every match",
            api.page::<MessageHit>(),
        )
        .errors(&[400, 503]),
    );

    let search = "search";
    api.env(
        Get,
        "/facets",
        endpoint(
            "facets",
            "Values of a field with counts, for filter pickers",
            search,
        )
        .scope(Scope::Read)
        .params(query_parameters(&api, QueryEndpoint::Facets))
        .reply(200, "the most frequent values", api.schema::<Facets>())
        .errors(&[400, 503]),
    );
    api.env(
        Get,
        "/insights",
        endpoint(
            "insights",
            "Operations per time bucket split by state, for charts",
            search,
        )
        .scope(Scope::Read)
        .params(query_parameters(&api, QueryEndpoint::Insights))
        .reply(200, "the buckets", api.schema::<Insights>())
        .errors(&[400, 503]),
    );
    api.env(Get, "/signals", endpoint("signals", "The four signals (failed syncs, action errors, auth failures, failed incoming webhooks) over a range: count, previous equal period, a 12-point series and the top integrations. `from` defaults to 24h before `to`, `to` to now; an empty range counts nothing", search)
        .scope(Scope::Read)
        .params(query_parameters(&api, QueryEndpoint::Signals))
        .reply(200, "each signal's summary", api.schema::<Signals>())
        .errors(&[400, 503]));

    let vw = "views";
    let view = api.schema::<crate::views::View>();
    let view_id = || {
        path_param("id", "a view id: `sync_failures`, `action_errors`, `auth_failures`, `webhook_failures` (built in) or a saved view's")
    };
    api.env(Get, "/views", endpoint("listViews", "The environment's views: the four built-in ones (the signals), then the saved ones by name", vw)
        .scope(Scope::Read)
        .reply(200, "every view", api.page::<crate::views::View>()));
    api.env(Post, "/views", endpoint("createView", "Save a view: a name and the Logs tab's query (`q`, the filters of GET /operations, `level`, `message_type`, a range preset)", vw)
        .scope(Scope::Read)
        .body(api.schema::<super::views::NewView>(), "the view; `name` is required")
        .reply(201, "the view as saved", view.clone())
        .errors(&[400, 409, 413, 415, 503, 507]));
    api.env(
        Get,
        "/views/{id}",
        endpoint("getView", "One view", vw)
            .scope(Scope::Read)
            .param(view_id())
            .reply(200, "the view", view.clone()),
    );
    api.env(Put, "/views/{id}", endpoint("updateView", "Rename a saved view or replace its query (a field left out is unchanged); built-in views cannot be changed, and the query of a view an alert rule counts only with the admin token", vw)
        .scope(Scope::Read)
        .param(view_id())
        .body(api.schema::<super::views::ViewUpdate>(), "what to change")
        .reply(200, "the view as saved", view)
        .errors(&[400, 403, 409, 413, 415, 503, 507]));
    api.env(Delete, "/views/{id}", endpoint("deleteView", "Delete a saved view; built-in views cannot be deleted, nor a view an alert rule counts", vw)
        .scope(Scope::Read)
        .param(view_id())
        .reply_empty(204, "deleted")
        .errors(&[403, 409, 503, 507]));

    let st = "settings";
    api.env(
        Get,
        "/settings",
        endpoint(
            "getSettings",
            "The environment's settings, secrets masked",
            st,
        )
        .scope(Scope::Admin)
        .reply(200, "the effective settings", settings.clone()),
    );
    api.env(Put, "/settings", endpoint("putSettings", "Change settings: a field left out is unchanged, `null` resets it; fields the config file sets are read-only", st)
        .scope(Scope::Admin)
        .body(api.schema::<SettingsUpdate>(), "the sections and fields to change")
        .reply(200, "the settings after the change", settings.clone())
        .errors(&[400, 409, 413, 415, 503, 507]));
    api.env(
        Get,
        "/settings/webhook-secret",
        endpoint(
            "revealWebhookSecret",
            "The webhook secret in full (admin token only)",
            st,
        )
        .scope(Scope::Admin)
        .reply(
            200,
            "the secret, and the previous one during a rotation's grace period",
            reveal.clone(),
        )
        .errors(&[403]),
    );
    api.env(Post, "/settings/webhook-secret/rotate", endpoint("rotateWebhookSecret", "Issue a new webhook secret, or install an existing Nango signing key (admin token only); the old one keeps signing for the grace period", st)
        .scope(Scope::Admin)
        .optional_body(api.schema::<crate::http::settings::RotateBody>(), "`secret`: an existing Nango signing key to sign with; leave the body out for a fresh `whsec_` secret")
        .param(query("grace", api.schema::<ApiDelay>(), "how long the old secret keeps signing (default `webhooks.rotation_grace`, 24h)"))
        .reply(200, "the new secret in full", reveal)
        .errors(&[400, 403, 409, 413, 415, 503, 507]));
    api.env(
        Post,
        "/settings/ingress-token/rotate",
        endpoint(
            "rotateIngressToken",
            "Issue a new ingress token (admin token only); the old one stops working at once",
            st,
        )
        .scope(Scope::Admin)
        .reply(200, "the settings with the new token", settings)
        .errors(&[403, 503, 507]),
    );

    let dl = "deliveries";
    let window = [
        query(
            "from",
            api.schema::<Timestamp>(),
            "created at or after (RFC 3339)",
        ),
        query(
            "to",
            api.schema::<Timestamp>(),
            "created at or before (RFC 3339)",
        ),
    ];
    let delivery_id = || id_param(&api, "a delivery id (26-character ULID)");
    api.env(
        Get,
        "/deliveries",
        endpoint("listDeliveries", "Webhook deliveries, newest first", dl)
            .scope(Scope::Read)
            .param(query(
                "status",
                api.schema::<DeliveryStatus>(),
                "keep this status",
            ))
            .param(query("event", api.schema::<EventType>(), "keep this event"))
            .params(window.clone())
            .params(job_page_params.clone())
            .reply(200, "a page of deliveries", api.page::<DeliveryView>())
            .errors(&[400]),
    );
    api.env(
        Get,
        "/deliveries/{id}",
        endpoint(
            "getDelivery",
            "One delivery with its body and every attempt",
            dl,
        )
        .scope(Scope::Read)
        .param(delivery_id())
        .reply(200, "the delivery", api.schema::<DeliveryDetail>())
        .errors(&[400]),
    );
    api.env(
        Post,
        "/deliveries/{id}/retry",
        endpoint(
            "retryDelivery",
            "Send a delivery again, starting a new round of attempts",
            dl,
        )
        .scope(Scope::Admin)
        .param(delivery_id())
        .link("getDelivery", "getDelivery")
        .reply(202, "the delivery, queued", delivery)
        .errors(&[400, 503, 507]),
    );
    let replay_status: RefOr<Schema> = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([
            DeliveryStatus::Failed.as_str(),
            DeliveryStatus::Delivered.as_str(),
        ]))
        .default(Some(Value::from(DeliveryStatus::Failed.as_str())))
        .into();
    let [from, to] = window.clone();
    api.env(
        Post,
        "/deliveries/replay",
        endpoint(
            "replayDeliveries",
            "Send every delivery of a window again",
            dl,
        )
        .scope(Scope::Admin)
        .param(required(from))
        .param(to)
        .param(query(
            "status",
            replay_status.clone(),
            "which deliveries to send again",
        ))
        .reply(
            202,
            "what was queued; call again while `limit_reached`",
            api.schema::<Replayed>(),
        )
        .errors(&[400, 503, 507]),
    );

    let ex = "exports";
    let export_id = || id_param(&api, "an export id (26-character ULID)");
    api.env(
        Get,
        "/exports",
        endpoint(
            "listExports",
            "OTLP exports (spans, log batches), newest first",
            ex,
        )
        .scope(Scope::Read)
        .param(query(
            "status",
            api.schema::<DeliveryStatus>(),
            "keep this status",
        ))
        .params(window.clone())
        .params(job_page_params)
        .reply(200, "a page of exports", api.page::<ExportView>())
        .errors(&[400]),
    );
    api.env(
        Get,
        "/exports/{id}",
        endpoint("getExport", "One export with every attempt", ex)
            .scope(Scope::Read)
            .param(export_id())
            .reply(200, "the export", api.schema::<ExportDetail>())
            .errors(&[400]),
    );
    api.env(
        Post,
        "/exports/{id}/retry",
        endpoint(
            "retryExport",
            "Send an export again, starting a new round of attempts",
            ex,
        )
        .scope(Scope::Admin)
        .param(export_id())
        .link("getExport", "getExport")
        .reply(202, "the export, queued", api.schema::<ExportView>())
        .errors(&[400, 503, 507]),
    );
    let [from, to] = window;
    api.env(
        Post,
        "/exports/replay",
        endpoint("replayExports", "Send every export of a window again", ex)
            .scope(Scope::Admin)
            .param(required(from))
            .param(to)
            .param(query(
                "status",
                replay_status,
                "which exports to send again",
            ))
            .reply(
                202,
                "what was queued; call again while `limit_reached`",
                api.schema::<Replayed>(),
            )
            .errors(&[400, 503, 507]),
    );

    let er = "erasures";
    let erasure = api.schema::<EraseView>();
    api.env(
        Post,
        "/erase",
        endpoint(
            "erase",
            "Erase everything about one connection, end user or integration: its operations, \
             their messages, and the deliveries, exports, attempts and delivery logs that carry \
             them (admin). Runs in bounded steps; a restart resumes it",
            er,
        )
        .scope(Scope::Admin)
        .body(
            erase_request(),
            "exactly one of `connection_id`, `end_user_id`, `integration`; `from`/`to` narrow it \
             to operations created in the window",
        )
        .link("getErasure", "getErasure")
        .reply(200, "the erasure, done: what it removed", erasure.clone())
        .reply(
            202,
            "the erasure, still running after 10 seconds: what it removed so far",
            erasure.clone(),
        )
        .errors(&[400, 413, 415, 503, 507]),
    );
    api.env(
        Get,
        "/erasures",
        endpoint(
            "listErasures",
            "The environment's erasures, newest first (the last 100)",
            er,
        )
        .scope(Scope::Admin)
        .reply(200, "the erasures", api.page::<EraseView>()),
    );
    api.env(
        Get,
        "/erasures/{id}",
        endpoint("getErasure", "One erasure and its progress", er)
            .scope(Scope::Admin)
            .param(id_param(&api, "an erasure id (26-character ULID)"))
            .reply(200, "the erasure", erasure)
            .errors(&[400]),
    );

    let ar = "archive";
    let line = export_line(&api);
    api.env(
        Get,
        "/export",
        endpoint(
            "exportOperations",
            "The environment's operations created in the window, each followed by its messages, \
             as newline-delimited JSON from one snapshot, closed by an `end` line with the counts \
             (a file without it is truncated)",
            ar,
        ).scope(Scope::Read)
        .param(query(
            "from",
            api.schema::<Timestamp>(),
            "operations created at or after (RFC 3339)",
        ))
        .param(query(
            "to",
            api.schema::<Timestamp>(),
            "operations created at or before (RFC 3339)",
        ))
        .reply_media(
            200,
            NDJSON,
            "one `ExportLine` per line: an operation, its messages, the next operation..., then the end",
            line.clone(),
        )
        .errors(&[400]),
    );
    api.env(
        Post,
        "/import",
        endpoint(
            "importOperations",
            "Add the lines of an export with their ids (admin token only); what is already \
             stored is skipped, so importing twice adds nothing. A message must follow its \
             operation, in this request or an earlier one. Imports queue no webhooks or exports",
            ar,
        )
        .scope(Scope::Admin)
        .body_medias(
            &[
                (NDJSON, line.clone()),
                (
                    "application/json",
                    ArrayBuilder::new().items(line).min_items(Some(1)).into(),
                ),
            ],
            "`ExportLine`s: as NDJSON, one per line (what `GET /export` answers), or as a JSON \
             array of them; at most `server.max_body_bytes` per request",
        )
        .reply(200, "what was added and skipped", api.schema::<Imported>())
        .errors(&[403, 413, 415, 503, 507]),
    );
    for (path, id, what, count_key) in [
        ("/otlp/v1/traces", "ingestOtlpTraces", "spans: each becomes an ended operation in its trace (its events its messages)", "rejectedSpans"),
        ("/otlp/v1/logs", "ingestOtlpLogs", "log records: each becomes a message of the operation of its span (sent before it, or by opslog)", "rejectedLogRecords"),
    ] {
        api.env(
            Post,
            path,
            endpoint(
                id,
                &format!(
                    "OTLP/HTTP ingest of {what}; point an OpenTelemetry exporter at \
                     `/v1/environments/{{env}}/otlp`. What is already stored is skipped, so a \
                     retried export adds nothing; ingested operations queue no webhooks or exports"
                ),
                op,
            )
            .otlp_errors()
            .scope(Scope::Ingest)
            .otlp_body(&format!("an OTLP export request (`Export{}ServiceRequest`), plain or with `content-encoding: gzip`, at most `server.max_body_bytes` once decompressed", if count_key == "rejectedSpans" { "Trace" } else { "Logs" }))
            .otlp_reply(count_key)
            .errors(&[413, 415, 503, 507]),
        );
    }
    api.add(
        Get,
        "/v1/backup",
        endpoint(
            "backup",
            "A consistent copy of the whole database (every environment, settings, deliveries) \
             as a redb file, taken while writes go on (admin token only). Restore: stop opslog, \
             put the file at `<data_dir>/opslog.redb`, remove `<data_dir>/index`, start",
            ar,
        )
        .scope(Scope::Admin)
        .reply_media(
            200,
            "application/octet-stream",
            "the redb file",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/octet-stream")
                .into(),
        )
        .errors(&[401, 403]),
    );

    api.add(
        Get,
        "/v1/audit",
        endpoint(
            "listAudit",
            "The audit log, newest first (admin token only): every settings change (old and new \
             values, secrets masked), secret reveal and rotation, retry and replay, import, \
             backup, erasure (selector and counts), view change and dashboard sign-in, refused \
             ones included, each written in the commit of its action",
            "audit",
        )
        .scope(Scope::Admin)
        .param(query(
            "action",
            api.schema::<AuditAction>(),
            "keep these actions (comma-separated, or the parameter repeated)",
        ))
        .param(query(
            "from",
            api.schema::<Timestamp>(),
            "recorded at or after (RFC 3339)",
        ))
        .param(query(
            "to",
            api.schema::<Timestamp>(),
            "recorded at or before (RFC 3339)",
        ))
        .params(page_params(job_cursor()))
        .reply(200, "a page of audit records", api.page::<AuditView>())
        .errors(&[400, 401, 403]),
    );

    let url_check = "a provider's URL check (Slack `url_verification`, Microsoft Graph `validationToken`, Dropbox, Meta `hub.challenge`, Strava, Asana, monday.com, Smartsheet, Twitch, Okta) is answered as that provider wants, and not recorded";
    api.add(Post, "/v1/hooks/{token}/{integration}", endpoint("receiveWebhook", "Receive a third-party webhook: records a `webhook:incoming` operation and emits `webhook.received`. The ingress token authenticates (no bearer)", "ingress")
        .public()
        .param(path_param("token", "the environment's ingress token (GET /settings shows it)"))
        .param(typed_path_param("integration", name(), "the integration the webhook is for, e.g. `github`"))
        .param(query("connection_id", name(), "the connection it is for; other query parameters are kept with the payload"))
        .param(query("provider", name(), "the provider sending it (Nango's provider key, e.g. `slack`), when the integration is named otherwise: Nango's `from`, and whose URL check is answered"))
        .optional_body(any_json(), "any body, or none; JSON is kept as JSON (as text when nested deeper than 64 levels), a form (`application/x-www-form-urlencoded`) as an object of its fields, anything else as a string")
        .reply_handshake(200, &format!("recorded (JSON); or {url_check}"), api.schema::<Received>())
        .errors(&[400, 404, 413, 503, 507]));
    api.add(Get, "/v1/hooks/{token}/{integration}", endpoint("checkWebhookUrl", "Answer a provider's URL check made with GET (Dropbox, Meta, Strava, Okta) or HEAD (any provider); any other GET is a 404 (`no_url_check`)", "ingress")
        .public()
        .param(path_param("token", "the environment's ingress token (GET /settings shows it)"))
        .param(typed_path_param("integration", name(), "the integration the webhook is for, e.g. `github`"))
        .param(query("provider", name(), "the provider checking the URL, when the integration is named otherwise"))
        .reply_handshake(200, url_check, ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::AnyValue).into())
        .errors(&[400, 404]));

    let ui = "dashboard";
    api.add(
        Get,
        "/v1/environments",
        endpoint(
            "listEnvironments",
            "The environments this caller may open (all, for the admin)",
            ui,
        )
        .scope(Scope::Read)
        .reply(200, "the environments", api.page::<Environment>())
        .errors(&[401]),
    );
    api.add(
        Get,
        "/v1/vocabulary",
        endpoint(
            "getVocabulary",
            "Every value the API's enums take (operation types and the actions the server knows, states, levels, message types, webhook events, delivery statuses, signals with their filters, formats), made from the server's own enums: what the dashboard builds its pickers from",
            ui,
        )
        .scope(Scope::Read)
        .reply(200, "the vocabulary", api.schema::<Vocabulary>())
        .errors(&[401]),
    );
    api.add(
        Get,
        "/v1/session",
        endpoint(
            "sessionStatus",
            "Whether the caller (bearer token or session cookie) is authenticated",
            ui,
        )
        .public()
        .reply(200, "always 200", api.schema::<SessionStatus>()),
    );
    api.add(Post, "/v1/session", endpoint("login", "Log the dashboard in with the admin token: sets an HttpOnly, SameSite=Strict session cookie. Failed logins from one client address are rate-limited", ui)
        .public()
        .body(api.schema::<Login>(), "the admin token")
        .reply(200, "logged in; `Set-Cookie` carries the session", api.schema::<LoggedIn>())
        .errors(&[400, 401, 413, 415, 429]));
    api.add(
        Delete,
        "/v1/session",
        endpoint("logout", "End the session and clear the cookie", ui)
            .public()
            .reply_empty(204, "logged out (also when no session was open)"),
    );

    let ops = "operations";
    let health = api.schema::<Health>();
    api.add(
        Get,
        "/healthz",
        endpoint("healthz", "Liveness", ops).public().reply(
            200,
            "the process is up",
            health.clone(),
        ),
    );
    api.add(
        Get,
        "/readyz",
        endpoint("readyz", "Readiness: accepting writes", ops)
            .public()
            .reply(200, "ready", health.clone())
            .reply(503, "shutting down", health),
    );
    api.add(
        Get,
        "/metrics",
        endpoint(
            "metrics",
            "Prometheus metrics (text exposition format)",
            ops,
        )
        .public()
        .reply_text(200, "the metrics"),
    );
    api.add(
        Get,
        "/openapi.json",
        endpoint("openapi", "This document", ops).public().reply(
            200,
            "the OpenAPI 3.1 document",
            any_json(),
        ),
    );

    api.build()
}

/// The paths and schemas as they are declared. Shared borrows all through, so a declaration
/// can register the schemas it refers to in its own arguments.
#[derive(Default)]
struct Api {
    paths: RefCell<Paths>,
    schemas: RefCell<BTreeMap<String, RefOr<Schema>>>,
}

impl Api {
    /// Registers `T` (and every schema it refers to) and answers a reference to it.
    fn schema<T: ToSchema>(&self) -> RefOr<Schema> {
        let mut nested = Vec::new();
        T::schemas(&mut nested);
        let mut schemas = self.schemas.borrow_mut();
        schemas.extend(nested);
        schemas.insert(T::name().into_owned(), T::schema());
        RefOr::Ref(Ref::from_schema_name(T::name()))
    }

    /// Registers `<T>Page`, the `{data, next_cursor, total}` answer of a list, and refers to it.
    fn page<T: ToSchema>(&self) -> RefOr<Schema> {
        let item = self.schema::<T>();
        let name = format!("{}Page", T::name());
        let next_cursor = ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
            .description(Some(
                "pass as `cursor` for the next page; null on the last page",
            ));
        let total = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .description(Some("how many match in all, over every page"));
        let page = ObjectBuilder::new()
            .property("data", array(item, None))
            .property("next_cursor", next_cursor)
            .property("total", total)
            .required("data")
            .required("next_cursor")
            .required("total");
        self.schemas.borrow_mut().insert(name.clone(), page.into());
        RefOr::Ref(Ref::from_schema_name(name))
    }

    /// An endpoint under `/v1/environments/{env}` (its scope declared with `Endpoint::scope`),
    /// and the 400 (a path that does not decode) and 404 every such endpoint can answer.
    fn env(&self, method: HttpMethod, path: &str, endpoint: Endpoint) {
        let endpoint = endpoint
            .param(path_param(
                "env",
                "the environment, e.g. `prod`; an environment the key does not belong to answers 404",
            ))
            .errors(&[400, 404]);
        self.add(method, &format!("/v1/environments/{{env}}{path}"), endpoint);
    }

    fn add(&self, method: HttpMethod, path: &str, endpoint: Endpoint) {
        let Endpoint {
            operation,
            mut params,
            ..
        } = endpoint;
        // Path parameters first, then the rest as declared (a stable sort keeps their order).
        params.sort_by_key(|p| p.parameter_in != ParameterIn::Path);
        let operation = operation.parameters(Some(params)).build();
        self.paths
            .borrow_mut()
            .add_path_operation(path, vec![method], operation);
    }

    fn build(self) -> OpenApi {
        self.schema::<ErrorBody>();
        let components = ComponentsBuilder::new()
            .schemas_from_iter(self.schemas.into_inner())
            .security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "an environment API key (its own environment only, within its scope: `ingest`, `read` or `ingest+read`) or an admin token (every environment, every scope); each operation names the scope it needs in `x-opslog-scope` and as the role of its security requirement",
                        ))
                        .build(),
                ),
            )
            .security_scheme(
                "session",
                SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                    COOKIE_NAME,
                    "the dashboard's session cookie from POST /v1/session; stands for the token that signed in (the admin token, or an environment key with the `read` scope)",
                ))),
            )
            .build();
        OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("opslog")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(
                        "Operations and their log messages: record, search, notify (signed webhooks) and export (OTLP). \
                         Every non-2xx answer is `{\"error\": {\"code\", \"message\", \"field\"?}}`. \
                         Lists answer `{\"data\", \"next_cursor\", \"total\"}`: pass `next_cursor` as `cursor` for the next page.",
                    ))
                    .build(),
            )
            .paths(self.paths.into_inner())
            .components(Some(components))
            .build()
    }
}

/// One operation of the document, as declared.
struct Endpoint {
    operation: OperationBuilder,
    params: Vec<utoipa::openapi::path::Parameter>,
    /// Links of the success reply declared next.
    links: Vec<(String, Link)>,
    /// Errors are OTLP/HTTP's `google.rpc.Status` (`otlp_errors`), not `ErrorBody`.
    status_errors: bool,
}

fn endpoint(id: &str, summary: &str, tag: &str) -> Endpoint {
    Endpoint {
        operation: OperationBuilder::new()
            .operation_id(Some(id))
            .summary(Some(summary))
            .tag(tag),
        params: Vec::new(),
        links: Vec::new(),
        status_errors: false,
    }
}

impl Endpoint {
    fn param(mut self, parameter: utoipa::openapi::path::Parameter) -> Endpoint {
        self.params.push(parameter);
        self
    }

    fn params(
        mut self,
        parameters: impl IntoIterator<Item = utoipa::openapi::path::Parameter>,
    ) -> Endpoint {
        self.params.extend(parameters);
        self
    }

    fn body(self, schema: RefOr<Schema>, description: &str) -> Endpoint {
        self.body_media("application/json", schema, description)
    }

    /// A JSON body a client may leave out.
    fn optional_body(self, schema: RefOr<Schema>, description: &str) -> Endpoint {
        self.body_required("application/json", schema, description, Required::False)
    }

    fn body_media(self, media: &str, schema: RefOr<Schema>, description: &str) -> Endpoint {
        self.body_required(media, schema, description, Required::True)
    }

    /// A required body that may come in any of these media types.
    fn body_medias(mut self, medias: &[(&str, RefOr<Schema>)], description: &str) -> Endpoint {
        let mut body = RequestBodyBuilder::new()
            .description(Some(description))
            .required(Some(Required::True));
        for (media, schema) in medias {
            body = body.content(
                *media,
                ContentBuilder::new().schema(Some(schema.clone())).build(),
            );
        }
        self.operation = self.operation.request_body(Some(body.build()));
        self
    }

    fn body_required(
        mut self,
        media: &str,
        schema: RefOr<Schema>,
        description: &str,
        required: Required,
    ) -> Endpoint {
        let body = RequestBodyBuilder::new()
            .description(Some(description))
            .required(Some(required))
            .content(media, ContentBuilder::new().schema(Some(schema)).build())
            .build();
        self.operation = self.operation.request_body(Some(body));
        self
    }

    fn reply(self, status: u16, description: &str, schema: RefOr<Schema>) -> Endpoint {
        self.reply_media(status, "application/json", description, schema)
    }

    fn reply_text(self, status: u16, description: &str) -> Endpoint {
        self.reply_media(status, "text/plain", description, string())
    }

    /// The operation `operation_id` can follow the next reply, with the `id` that reply's body
    /// carries (in the same environment).
    fn link(mut self, name: &str, operation_id: &str) -> Endpoint {
        // utoipa 5.5 writes `Link::operation_id` as `operation_id`; OpenAPI names it `operationId`.
        let key = Extensions::from_iter([("operationId", operation_id)]);
        let link = LinkBuilder::new()
            .parameter("env", "$request.path.env")
            .parameter("id", "$response.body#/id")
            .extensions(Some(key))
            .build();
        self.links.push((name.to_owned(), link));
        self
    }

    fn reply_media(
        mut self,
        status: u16,
        media: &str,
        description: &str,
        schema: RefOr<Schema>,
    ) -> Endpoint {
        let mut response = ResponseBuilder::new()
            .description(description)
            .content(media, ContentBuilder::new().schema(Some(schema)).build());
        for (name, link) in std::mem::take(&mut self.links) {
            response = response.link(name, link);
        }
        self.operation = self
            .operation
            .response(status.to_string(), response.build());
        self
    }

    /// An OTLP export request: protobuf, or OTLP/JSON.
    fn otlp_body(mut self, description: &str) -> Endpoint {
        let body = RequestBodyBuilder::new()
            .description(Some(description))
            .required(Some(Required::True))
            .content(
                "application/x-protobuf",
                ContentBuilder::new().schema(Some(protobuf())).build(),
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::Object)
                            .description(Some(
                                "OTLP/JSON: ids in hex, field names in lowerCamelCase",
                            )),
                    ))
                    .build(),
            )
            .build();
        self.operation = self.operation.request_body(Some(body));
        self
    }

    /// OTLP's answer, in the request's encoding: `partialSuccess` only when something was
    /// refused (`count_key` of them, and why the first was).
    fn otlp_reply(mut self, count_key: &str) -> Endpoint {
        let partial = ObjectBuilder::new()
            .property(
                count_key,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+$"))
                    .description(Some("how many were refused (an int64, as a string)")),
            )
            .property("errorMessage", string())
            .required(count_key)
            .required("errorMessage")
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        let json = ObjectBuilder::new()
            .property("partialSuccess", partial)
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
        let response = ResponseBuilder::new()
            .description(
                "what was accepted is stored; `partialSuccess` says how many were refused and why",
            )
            .content(
                "application/x-protobuf",
                ContentBuilder::new().schema(Some(protobuf())).build(),
            )
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(json)).build(),
            );
        self.operation = self.operation.response("200", response.build());
        self
    }

    /// A reply that is JSON (`json`) or the plain text a provider's URL check wants.
    fn reply_handshake(mut self, status: u16, description: &str, json: RefOr<Schema>) -> Endpoint {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(json)).build(),
            )
            .content(
                "text/plain",
                ContentBuilder::new().schema(Some(string())).build(),
            );
        self.operation = self
            .operation
            .response(status.to_string(), response.build());
        self
    }

    /// A JSON page, or with `Accept: text/csv` or `format=csv` every match as RFC 4180 CSV with a
    /// header row (the columns are the README's).
    fn reply_or_csv(mut self, status: u16, description: &str, json: RefOr<Schema>) -> Endpoint {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(json)).build(),
            )
            .content(
                "text/csv",
                ContentBuilder::new().schema(Some(string())).build(),
            );
        self.operation = self
            .operation
            .response(status.to_string(), response.build());
        self
    }

    fn reply_empty(mut self, status: u16, description: &str) -> Endpoint {
        let response = ResponseBuilder::new().description(description);
        self.operation = self
            .operation
            .response(status.to_string(), response.build());
        self
    }

    /// Its errors (every status declared after this) are OTLP/HTTP's: a `google.rpc.Status` in
    /// the request's encoding.
    fn otlp_errors(mut self) -> Endpoint {
        self.status_errors = true;
        self
    }

    /// The error statuses this endpoint answers, each with the error body.
    fn errors(mut self, statuses: &[u16]) -> Endpoint {
        for &status in statuses {
            let response = ResponseBuilder::new().description(error_meaning(status));
            let response = if self.status_errors {
                response
                    .content(
                        "application/x-protobuf",
                        ContentBuilder::new().schema(Some(protobuf())).build(),
                    )
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(rpc_status())).build(),
                    )
            } else {
                response.content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(Ref::from_schema_name(ErrorBody::name()))))
                        .build(),
                )
            };
            self.operation = self
                .operation
                .response(status.to_string(), response.build());
        }
        self
    }

    /// Needs a bearer token (or the dashboard's session cookie, which stands for the admin token)
    /// holding `scope`: the security requirement lists it as the role, `x-opslog-scope` names it
    /// for tools, and the description says which keys have it.
    fn scope(mut self, scope: Scope) -> Endpoint {
        let who = match scope {
            Scope::Ingest => {
                "an `ingest` or `ingest+read` key of the environment, or the admin token"
            }
            Scope::Read => "a `read` or `ingest+read` key of the environment, or the admin token",
            Scope::Admin => "the admin token (or a dashboard session)",
        };
        self.operation = self
            .operation
            .description(Some(format!("Scope: `{scope}` — {who}.")))
            .security(SecurityRequirement::new("bearer", [scope.as_str()]))
            .security(SecurityRequirement::new("session", Vec::<String>::new()))
            .extensions(Some(
                ExtensionsBuilder::new()
                    .add(SCOPE_EXTENSION, scope.as_str())
                    .build(),
            ));
        self.errors(&[401, 403])
    }

    /// Needs no bearer token (public, or authenticated by what the request carries itself).
    fn public(mut self) -> Endpoint {
        self.operation = self.operation.extensions(Some(
            ExtensionsBuilder::new()
                .add(SCOPE_EXTENSION, "none")
                .build(),
        ));
        self
    }
}

fn error_meaning(status: u16) -> &'static str {
    match status {
        400 => "bad input; `error.message` says what to fix and `error.field` names it",
        401 => "missing or unknown token",
        403 => "the key lacks the scope this endpoint needs (`error.message` names it)",
        404 => "not found (an environment this key may not use is not found either)",
        409 => {
            "conflicts with the current state (an ended operation, a setting the config file sets, a view that is built in, taken or counted by an alert rule)"
        }
        413 => "the body (or the batch) is too large",
        415 => "the body is not of the documented content type",
        422 => "the Idempotency-Key was used before with another body",
        429 => "too many failed attempts from this address; retry after `Retry-After` seconds",
        503 => {
            "shutting down, the search index is rebuilding, or (OTLP ingest) the writer's queue is full; retry after `Retry-After` seconds"
        }
        507 => "the server's disk is full; nothing was written",
        _ => "error",
    }
}

/// A message as clients send it: `NewMessage`, and the rule serde cannot state: a `log` message
/// (the type given, or inferred when there is neither `request` nor `response`) needs `message`.
fn message_input(api: &Api) -> RefOr<Schema> {
    let has = |field: &str, schema: RefOr<Schema>| -> RefOr<Schema> {
        ObjectBuilder::new()
            .property(field, schema)
            .required(field)
            .into()
    };
    let object = || ObjectBuilder::new().schema_type(Type::Object).into();
    let inferred_http = AllOfBuilder::new()
        .item(ObjectBuilder::new().property("type", ObjectBuilder::new().schema_type(Type::Null)))
        .item(
            AnyOfBuilder::new()
                .item(has("request", object()))
                .item(has("response", object())),
        );
    let rule = AnyOfBuilder::new()
        .description(Some(
            "`message` is required unless the message is `http` (given as `type`, or inferred from `request` or `response`)",
        ))
        .item(has("message", string()))
        .item(has(
            "type",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([MessageType::Http.as_str()]))
                .into(),
        ))
        .item(inferred_http);
    AllOfBuilder::new()
        .item(api.schema::<NewMessage>())
        .item(rule)
        .into()
}

/// A message posted to its operation's URL: the URL names the operation, so the body does not.
fn without_operation_id(message: RefOr<Schema>) -> RefOr<Schema> {
    let absent = ObjectBuilder::new()
        .schema_type(Type::Null)
        .description(Some("leave it out: the URL names the operation"));
    AllOfBuilder::new()
        .item(message)
        .item(ObjectBuilder::new().property("operation_id", absent))
        .into()
}

/// The body of `POST /erase`: exactly one selector (any text; what matches it goes), and an
/// optional window of creation times.
fn erase_request() -> RefOr<Schema> {
    let time = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
    };
    let variant = |key: &str, description: &str| {
        ObjectBuilder::new()
            .property(
                key,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .description(Some(description)),
            )
            .required(key)
            .property(
                "from",
                time().description(Some("only operations created at or after it")),
            )
            .property(
                "to",
                time().description(Some(
                    "only operations created before it (never after the request)",
                )),
            )
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
    };
    OneOfBuilder::new()
        .description(Some(
            "exactly one of `connection_id`, `end_user_id` or `integration`",
        ))
        .item(variant(
            "connection_id",
            "erase this connection's operations",
        ))
        .item(variant("end_user_id", "erase this end user's operations"))
        .item(variant(
            "integration",
            "erase this integration's operations",
        ))
        .into()
}

/// `ExportLine`: one object with exactly one of `operation`, `message` or `end`.
fn export_line(api: &Api) -> RefOr<Schema> {
    let variant = |key: &str, schema: RefOr<Schema>| {
        ObjectBuilder::new()
            .property(key, schema)
            .required(key)
            .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)))
    };
    let line = OneOfBuilder::new()
        .description(Some(
            "one line of an export: an operation, one of its messages, or the closing counts",
        ))
        .item(variant("operation", api.schema::<Operation>()))
        .item(variant("message", api.schema::<Message>()))
        .item(variant("end", api.schema::<crate::archive::End>()));
    api.schemas
        .borrow_mut()
        .insert("ExportLine".into(), line.into());
    RefOr::Ref(Ref::from_schema_name("ExportLine"))
}

/// An operation body with the rule serde cannot state: `ended_at` comes with a terminal `state`.
fn ends_in_terminal_state(body: RefOr<Schema>) -> RefOr<Schema> {
    let terminal: Vec<&str> = OpState::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str())
        .collect();
    let no_end =
        ObjectBuilder::new().property("ended_at", ObjectBuilder::new().schema_type(Type::Null));
    let ended = ObjectBuilder::new()
        .property(
            "state",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(terminal)),
        )
        .required("state");
    AllOfBuilder::new()
        .item(body)
        .item(
            AnyOfBuilder::new()
                .description(Some(
                    "`ended_at` only with a terminal `state` (success, failed, timeout, cancelled)",
                ))
                .item(no_end)
                .item(ended),
        )
        .into()
}

/// A message for `POST /messages`, where each one names its operation.
fn with_operation_id(api: &Api, message: RefOr<Schema>) -> RefOr<Schema> {
    AllOfBuilder::new()
        .item(message)
        .item(
            ObjectBuilder::new()
                .property("operation_id", api.schema::<Id>())
                .required("operation_id"),
        )
        .into()
}

/// The query parameters of a read endpoint, as `crate::query_params` declares them: a
/// parameter that repeats is an exploded array of its kind.
fn query_parameters(api: &Api, endpoint: QueryEndpoint) -> Vec<utoipa::openapi::path::Parameter> {
    endpoint
        .parameters()
        .map(|p| {
            let schema = kind_schema(api, p.kind);
            let parameter = if p.repeatable {
                repeated(p.name, schema, p.description)
            } else {
                query(p.name, schema, p.description)
            };
            if p.required {
                required(parameter)
            } else {
                parameter
            }
        })
        .collect()
}

/// The schema of one value of `kind`.
fn kind_schema(api: &Api, kind: Kind) -> RefOr<Schema> {
    let one_of = |values: Vec<&'static str>| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
            .into()
    };
    match kind {
        Kind::OneOf(values) => one_of(values.to_vec()),
        Kind::FacetField => one_of(FACET_FIELDS.to_vec()),
        Kind::OperationType => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!(
                "^({})(:[a-z0-9_-]{{1,64}})?$",
                OpType::NAMES.join("|")
            )))
            .examples([Value::from("sync"), Value::from("sync:run")])
            .into(),
        Kind::Name => name(),
        Kind::Tag => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Za-z0-9_./-]{1,64}:.{1,256}$"))
            .examples([Value::from("plan:pro")])
            .into(),
        Kind::Time => api.schema::<Timestamp>(),
        Kind::Text => text_query(),
        Kind::Integer { min, max, default } => integer(min as i64, max as i64, default as i64),
        Kind::Boolean => ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .default(Some(false.into()))
            .into(),
        Kind::Cursor => search_cursor(),
        Kind::MessageId => api.schema::<Id>(),
        Kind::Interval => api.schema::<Interval>(),
        Kind::Prefix => string(),
        // At least one digit not zero (an all-zero id is invalid), without a lookahead.
        Kind::TraceId => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-fA-F]*[1-9a-fA-F][0-9a-fA-F]*$"))
            .min_length(Some(32))
            .max_length(Some(32))
            .examples([Value::from("4bf92f3577b34da6a3ce929d0e0e4736")])
            .into(),
    }
}

fn page_params(cursor: RefOr<Schema>) -> Vec<utoipa::openapi::path::Parameter> {
    vec![
        query("limit", integer(1, 500, 50), "page size"),
        query(
            "cursor",
            cursor,
            "the `next_cursor` of the previous page (of the same query); one this server did not give out for this query answers 404",
        ),
    ]
}

/// The sealed cursor of searches (`super::cursor`): unpadded base64url.
fn search_cursor() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^[A-Za-z0-9_-]{{{}}}$",
            super::cursor::TEXT_LEN
        )))
        .into()
}

/// The cursor of delivery and export lists: `before.` and an id.
fn job_cursor() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^before\\.{}",
            ID_PATTERN.trim_start_matches('^')
        )))
        .into()
}

/// What an append answers to `Prefer: return=minimal`.
const STORED_MINIMAL: &str =
    "stored and durable, with `Prefer: return=minimal` (`Preference-Applied: return=minimal`, no body)";

/// `Prefer` (RFC 7240) on the appends: `return=minimal` answers 204 without the stored messages;
/// a server ignores preferences it does not know, so any text is accepted.
fn prefer() -> utoipa::openapi::path::Parameter {
    header_param(
        "Prefer",
        ObjectBuilder::new()
            .schema_type(Type::String)
            .examples(["return=minimal"])
            .into(),
        "`return=minimal`: answer 204 with no body once the messages are durable, instead of 201 with them all (saves the server serializing them and the client reading them); other preferences are ignored (RFC 7240)",
    )
}

/// `Idempotency-Key`: what `operations::idempotency_key` takes.
fn idempotency_key() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[!-~]{1,255}$"))
        .into()
}

/// A name (integration, connection, script): `ingest::input::check_name`.
fn name() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .into()
}

fn text_query() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "at most 1,000 characters: words (all must match), \"exact phrases\", `prefix*` (2+ characters), `a OR b`, `-excluded`; case-insensitive",
        ))
        .into()
}

fn path_param(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    typed_path_param(name, string(), description)
}

/// The `{id}` of a path: a ULID.
fn id_param(api: &Api, description: &str) -> utoipa::openapi::path::Parameter {
    typed_path_param("id", api.schema::<Id>(), description)
}

fn typed_path_param(
    name: &str,
    schema: RefOr<Schema>,
    description: &str,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn header_param(
    name: &str,
    schema: RefOr<Schema>,
    description: &str,
) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// `format`: `csv` answers every match as CSV (as `Accept: text/csv` does); `json` a page.
fn csv_format() -> utoipa::openapi::path::Parameter {
    let formats = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["json", "csv"]))
        .into();
    query(
        "format",
        formats,
        "`csv`: every match (not one page) as RFC 4180 CSV with a header row, like `Accept: text/csv`",
    )
}

fn query(name: &str, schema: RefOr<Schema>, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A query parameter that may be given more than once (`state=failed&state=timeout`): any of
/// the values matches.
fn repeated(
    name: &str,
    item: RefOr<Schema>,
    description: &str,
) -> utoipa::openapi::path::Parameter {
    let mut parameter = query(name, array(item, None), description);
    parameter.style = Some(ParameterStyle::Form);
    parameter.explode = Some(true);
    parameter
}

fn required(mut parameter: utoipa::openapi::path::Parameter) -> utoipa::openapi::path::Parameter {
    parameter.required = Required::True;
    parameter
}

/// A protobuf message, as bytes.
fn protobuf() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/x-protobuf")
        .into()
}

/// `google.rpc.Status` in JSON, as OTLP/HTTP error answers carry it.
fn rpc_status() -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some(
            "`google.rpc.Status`: `code` a `google.rpc.Code` (3 invalid argument, 5 not found, 7 \
             permission denied, 8 resource exhausted, 14 unavailable, 16 unauthenticated), \
             `message` opslog's error code, message and field",
        ))
        .property("code", ObjectBuilder::new().schema_type(Type::Integer))
        .property("message", string())
        .property(
            "details",
            array(ObjectBuilder::new().schema_type(Type::Object).into(), None),
        )
        .required("code")
        .required("message")
        .into()
}

fn string() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn integer(min: i64, max: i64, default: i64) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
        .default(Some(Value::from(default)))
        .into()
}

fn array(item: RefOr<Schema>, max: Option<usize>) -> RefOr<Schema> {
    ArrayBuilder::new().items(item).max_items(max).into()
}

fn any_json() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .format(None::<SchemaFormat>)
        .into()
}
