//! The HTTP front: the accept loop (hyper, with header-read timeouts and graceful shutdown), the
//! router, and the state handlers share. Handlers live in one file per resource; errors become
//! responses only in `error`.
//!
//! Must not: touch redb on the runtime's threads (reads go to `spawn_blocking`, writes to the
//! writer), or log secrets.

pub mod archive;
pub mod audit;
pub mod csv;
pub mod cursor;
pub mod dashboard;
pub mod deliveries;
pub mod erase;
pub mod error;
pub mod exports;
pub mod extract;
pub mod hooks;
pub mod mcp;
pub mod openapi;
pub mod operations;
pub mod otlp;
mod outbox_jobs;
pub mod search;
pub mod settings;
pub mod signals;
pub mod views;
pub mod vocabulary;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::auth::{Credentials, Principal};
use crate::index::SearchIndex;
use crate::ingest::input::Redaction;
use crate::metrics::Metrics;
use crate::scope::Scope;
use crate::settings::Settings;
use crate::store::Store;
use crate::write::Writer;
use cursor::CursorKey;
use error::ApiError;
use extract::Auth;

/// What every handler can reach.
pub struct AppState {
    pub store: Arc<Store>,
    pub writer: Writer,
    pub credentials: Credentials,
    pub environments: BTreeSet<String>,
    pub redaction: Redaction,
    pub max_body_bytes: usize,
    pub incoming_webhook_max_bytes: usize,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    pub index: Arc<SearchIndex>,
    pub cursor_key: CursorKey,
    /// Dashboard logins (in memory; see `session`).
    pub sessions: crate::session::Sessions,
    /// Whether the session cookie is marked `Secure` (`server.cookie_secure`).
    pub cookie_secure: bool,
    /// Failed dashboard logins per client address.
    pub login_limit: crate::login_limit::LoginLimit,
    /// Where erasures are handed to the eraser, and their progress watched.
    pub erasures: crate::retention::erase::Erasures,
}

impl AppState {
    /// Whether `principal` may do what needs `scope` in `env`. An unknown environment, or one
    /// the key does not belong to, is the same 404: a key learns nothing about other
    /// environments. A key of the environment without the scope is a 403 naming it.
    pub fn authorize(
        &self,
        principal: &Principal,
        env: &str,
        scope: Scope,
    ) -> Result<(), ApiError> {
        if !(self.environments.contains(env) && principal.may_access(env)) {
            return Err(ApiError::not_found(
                "environment_not_found",
                format!("environment `{env}` not found for this key"),
            ));
        }
        require_scope(principal, scope)
    }
}

/// A 403 unless `principal` holds `needed`; the message names the scope and the key to use.
pub fn require_scope(principal: &Principal, needed: Scope) -> Result<(), ApiError> {
    let Principal::Environment { name, scope } = principal else {
        return Ok(());
    };
    if scope.allows(needed) {
        return Ok(());
    }
    let which = match needed {
        Scope::Admin => "the admin token".to_owned(),
        scope => format!("a key of `{name}` with the `{scope}` scope, or the admin token"),
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!(
            "this needs the `{needed}` scope; this key of `{name}` has the `{scope}` scope. Use {which}"
        ),
    ))
}

pub use crate::query_params::{DEFAULT_PAGE, MAX_PAGE};

pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid_query",
            format!("`limit` is {n}; it must be between 1 and {MAX_PAGE}"),
        )
        .with_field("limit")),
    }
}

/// A page of results: `total` counts every match, `next_cursor` continues where this page ended.
#[derive(Serialize)]
pub struct DataPage<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
    pub total: u64,
}

impl<T> DataPage<T> {
    /// Everything in one page.
    pub fn all(data: Vec<T>) -> DataPage<T> {
        DataPage {
            total: data.len() as u64,
            data,
            next_cursor: None,
        }
    }
}

/// Runs blocking store or index work on the blocking pool, never on the runtime's threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("read task failed", &e))?
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => ApiError::internal("response serialization failed", &e).into_response(),
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    use operations::*;
    use search::*;
    let api = Router::new()
        .route("/operations", post(create_operation).get(list_operations))
        .route(
            "/operations/{id}",
            get(get_operation).patch(update_operation),
        )
        .route("/operations/{id}/output", get(operations::get_output))
        .route(
            "/operations/{id}/messages",
            post(append_messages).get(list_messages),
        )
        .route("/messages", post(append_batch).get(search_messages))
        .route("/facets", get(facets))
        .route("/insights", get(insights))
        .route("/signals", get(signals::signals))
        .route("/views", get(views::list_views).post(views::create_view))
        .route(
            "/views/{id}",
            get(views::get_view)
                .put(views::update_view)
                .delete(views::delete_view),
        )
        .route(
            "/settings",
            get(settings::get_settings).put(settings::put_settings),
        )
        .route(
            "/settings/webhook-secret",
            get(settings::reveal_webhook_secret),
        )
        .route(
            "/settings/webhook-secret/rotate",
            post(settings::rotate_webhook_secret),
        )
        .route(
            "/settings/ingress-token/rotate",
            post(settings::rotate_ingress_token),
        )
        .route("/deliveries", get(deliveries::list_deliveries))
        .route("/deliveries/replay", post(deliveries::replay_deliveries))
        .route("/deliveries/{id}", get(deliveries::get_delivery))
        .route("/deliveries/{id}/retry", post(deliveries::retry_delivery))
        .route("/export", get(archive::export))
        .route("/import", post(archive::import))
        .route("/exports", get(exports::list_exports))
        .route("/exports/replay", post(exports::replay_exports))
        .route("/exports/{id}", get(exports::get_export))
        .route("/exports/{id}/retry", post(exports::retry_export))
        .route("/erase", post(erase::erase))
        .route("/erasures", get(erase::list_erasures))
        .route("/erasures/{id}", get(erase::get_erasure))
        .route(
            "/otlp/v1/traces",
            post(otlp::traces).layer(middleware::from_fn(otlp::status_errors)),
        )
        .route(
            "/otlp/v1/logs",
            post(otlp::logs).layer(middleware::from_fn(otlp::status_errors)),
        );
    // The MCP server's tools run the read API as the caller (`mcp`).
    let rest = Router::new()
        .nest("/v1/environments/{env}", api.clone())
        .with_state(state.clone());
    let mcp_post =
        move |Auth(principal): Auth, headers: axum::http::HeaderMap, body: axum::body::Body| {
            mcp::post(rest.clone(), principal, headers, body)
        };
    Router::new()
        .nest("/v1/environments/{env}", api)
        .route(
            "/mcp",
            post(mcp_post)
                .get(mcp::not_allowed)
                .delete(mcp::not_allowed),
        )
        .route(
            "/v1/hooks/{token}/{integration}",
            // GET and HEAD only for a provider's URL check (`ingest::handshake`).
            post(hooks::receive_webhook).get(hooks::receive_webhook),
        )
        .route("/v1/environments", get(dashboard::environments))
        .route("/v1/vocabulary", get(vocabulary::vocabulary))
        .route("/v1/backup", get(archive::backup))
        .route("/v1/audit", get(audit::list_audit))
        .route(
            "/v1/session",
            get(dashboard::session_status)
                .post(dashboard::login)
                .delete(dashboard::logout),
        )
        .route("/", get(dashboard::index))
        .route("/assets/{version}/{*path}", get(dashboard::asset))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(extract::drain_unread_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_responses,
        ))
        .with_state(state)
}

async fn count_responses(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let m = &state.metrics;
    m.http_requests.inc();
    if response.status().is_client_error() {
        m.http_client_errors.inc();
    } else if response.status().is_server_error() {
        m.http_server_errors.inc();
    }
    response
}

/// The answer of `/healthz` and `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` (healthz), `ready` or `stopping` (readyz).
    status: &'static str,
}

async fn healthz() -> Response {
    json(StatusCode::OK, &Health { status: "ok" })
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.writer.is_running() {
        json(StatusCode::OK, &Health { status: "ready" })
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &Health { status: "stopping" },
        )
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let index = crate::metrics::IndexGauges {
        indexed_seq: state.index.shared.indexed_seq.load(Ordering::Acquire),
        segments: state.index.segment_count(),
    };
    let mut response = state.metrics.render(index).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

async fn route_not_found(request: Request) -> ApiError {
    ApiError::not_found(
        "route_not_found",
        format!(
            "no such endpoint: {} {}; the API lives under /v1/environments/{{env}}/",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Timeouts of the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// A client must finish sending its request headers within this (slow clients are cut off).
    pub header_read_timeout: Duration,
    /// After shutdown begins, in-flight requests get this long to finish.
    pub shutdown_timeout: Duration,
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting and waits
/// (up to `shutdown_timeout`) for in-flight requests to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    options: ServeOptions,
) {
    let graceful = GracefulShutdown::new();
    let service = router;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout);
        // Handlers that care who is calling (login limits) read the peer address.
        let service = service
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(options.shutdown_timeout) => {
            tracing::warn!("in-flight requests did not finish in time; closing them");
        }
    }
}
