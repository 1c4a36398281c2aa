//! The MCP server at `/mcp` (docs/otel.md "MCP"): the Streamable HTTP transport of the Model
//! Context Protocol (revisions 2025-03-26 to 2025-11-25), JSON-RPC 2.0 over `POST`, each request
//! answered with one JSON body. Stateless: no session id, no server-sent stream (`GET` is a 405).
//!
//! Its tools are the read API: each one's input schema is the query parameters its endpoint
//! declares in the OpenAPI document (built from `query_params`), and a call runs that endpoint
//! with the caller's own token, so a tool answers exactly what the REST API would, with the same
//! authorization and the same 4xx (as a tool result with `isError`).
//!
//! Must not: keep state between requests, or reach the store other than through the API.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use super::error::ApiError;
use super::extract::read_limited_body;
use crate::auth::Principal;

/// The protocol revisions spoken, oldest first; the newest is offered to a client that asks for
/// one it does not know.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-03-26", "2025-06-18", "2025-11-25"];
/// The largest request body read.
const MAX_BODY: usize = 1024 * 1024;

/// One tool: a read endpoint of an environment.
struct Tool {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    /// The path under `/v1/environments/{env}`; `{id}` is the `id` argument.
    path: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "list_operations",
        title: "List operations",
        description: "List and search operations (sync runs, actions, webhooks, proxy calls...) newest first, with the same filters as GET /operations: type, state, integration, connection, end user, tag, trace id, time range and full-text `q`. Pages with `cursor`.",
        path: "/operations",
    },
    Tool {
        name: "get_operation",
        title: "Get an operation",
        description: "One operation by id (GET /operations/{id}): its state, times, error, request and response, context and trace.",
        path: "/operations/{id}",
    },
    Tool {
        name: "list_operation_messages",
        title: "List an operation's messages",
        description: "The log messages of one operation, oldest first (GET /operations/{id}/messages), filtered by level, type or text.",
        path: "/operations/{id}/messages",
    },
    Tool {
        name: "search_messages",
        title: "Search messages",
        description: "Search log messages across the environment (GET /messages) by text, level, type and the fields of their operations.",
        path: "/messages",
    },
    Tool {
        name: "get_facets",
        title: "Count values of a field",
        description: "The values of a field (integration, connection_id, script, end_user_id, tag) among matching operations, with counts (GET /facets).",
        path: "/facets",
    },
    Tool {
        name: "get_insights",
        title: "Operations over time",
        description: "Operations per time bucket and state over a range (GET /insights): volumes and failure rates.",
        path: "/insights",
    },
    Tool {
        name: "get_signals",
        title: "Signals",
        description: "What stands out over a range (GET /signals): failure spikes, new errors, slow or stuck operations.",
        path: "/signals",
    },
    Tool {
        name: "list_views",
        title: "List saved views",
        description: "The environment's saved views (GET /views): named searches the team keeps, each with its query parameters to pass to list_operations or search_messages.",
        path: "/views",
    },
];

/// `POST /mcp`: one JSON-RPC message. A request gets its response as JSON; a notification or
/// a response gets 202 and no body.
pub async fn post(api: Router, principal: Principal, headers: HeaderMap, body: Body) -> Response {
    if let Some(refused) = check_headers(&headers) {
        return refused;
    }
    let bytes = match read_limited_body(&headers, body, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let message: Value = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(e) => {
            return rpc_reply(
                StatusCode::BAD_REQUEST,
                error(Value::Null, -32700, &format!("parse error: {e}")),
            )
        }
    };
    let Some(object) = message.as_object() else {
        return rpc_reply(
            StatusCode::BAD_REQUEST,
            error(
                Value::Null,
                -32600,
                "invalid request: one JSON-RPC message (an object) per POST; batches are not supported",
            ),
        );
    };
    let id = object.get("id").cloned();
    let method = object.get("method").and_then(Value::as_str);
    let (Some(id), Some(method)) = (id, method) else {
        // A notification (`notifications/initialized`, a cancellation) or a response: accepted.
        return StatusCode::ACCEPTED.into_response();
    };
    if object.get("jsonrpc") != Some(&json!("2.0"))
        || !(id.is_string() || id.is_i64() || id.is_u64())
    {
        return rpc_reply(
            StatusCode::BAD_REQUEST,
            error(
                id,
                -32600,
                "invalid request: `jsonrpc` must be \"2.0\" and `id` a string or an integer",
            ),
        );
    }
    let params = object.get("params").cloned().unwrap_or(json!({}));
    let answer = match method {
        "initialize" => Ok(initialize(&params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": tools() })),
        "tools/call" => call(&api, &principal, &headers, &params).await,
        other => Err((-32601, format!("method not found: `{other}`"))),
    };
    let reply = match answer {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err((code, message)) => error(id, code, &message),
    };
    rpc_reply(StatusCode::OK, reply)
}

/// `GET` and `DELETE /mcp`: no server-sent stream and no session to end.
pub async fn not_allowed() -> Response {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this MCP server answers each request in its POST response: it opens no stream and keeps no session",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// A refusal for an `Origin` other than the server's own (DNS rebinding) or a protocol version it
/// does not speak.
fn check_headers(headers: &HeaderMap) -> Option<Response> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if origin_host != host {
            return Some(
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    "origin_refused",
                    format!("requests from origin `{origin}` are refused (the server is `{host}`)"),
                )
                .with_field("origin")
                .into_response(),
            );
        }
    }
    if let Some(version) = headers.get("mcp-protocol-version") {
        let version = version.to_str().unwrap_or("");
        if !PROTOCOL_VERSIONS.contains(&version) {
            return Some(
                ApiError::bad_request(
                    "unsupported_protocol_version",
                    format!(
                        "MCP protocol version `{version}` is not supported; this server speaks {}",
                        PROTOCOL_VERSIONS.join(", ")
                    ),
                )
                .with_field("mcp-protocol-version")
                .into_response(),
            );
        }
    }
    None
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

fn rpc_reply(status: StatusCode, body: Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn initialize(params: &Value) -> Value {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = if PROTOCOL_VERSIONS.contains(&asked) {
        asked
    } else {
        PROTOCOL_VERSIONS[PROTOCOL_VERSIONS.len() - 1]
    };
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "opslog", "title": "opslog", "version": env!("CARGO_PKG_VERSION") },
        "instructions": "opslog records an integration platform's operations (sync runs, actions, webhooks, proxy calls) and their log messages. Start with list_operations (filter by state=failed, integration, q=...), then get_operation and list_operation_messages for one of them. Every tool takes `environment` (e.g. prod); an environment key may leave it out.",
    })
}

/// The tools with their input schemas: `environment`, `id` for one operation, and the query
/// parameters the OpenAPI document declares for the endpoint.
fn tools() -> Vec<Value> {
    let document: Value =
        serde_json::from_str(super::openapi::document_json()).expect("the document is JSON");
    TOOLS
        .iter()
        .map(|tool| {
            json!({
                "name": tool.name,
                "title": tool.title,
                "description": tool.description,
                "inputSchema": input_schema(&document, tool),
                "annotations": { "readOnlyHint": true, "openWorldHint": false },
            })
        })
        .collect()
}

fn input_schema(document: &Value, tool: &Tool) -> Value {
    let mut properties = Map::new();
    properties.insert(
        "environment".into(),
        json!({ "type": "string", "description": "the environment, e.g. `prod`; may be left out with a key of one environment" }),
    );
    let mut required = Vec::new();
    let path = format!("/v1/environments/{{env}}{}", tool.path);
    let parameters = document["paths"][&path]["get"]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for parameter in parameters {
        let name = parameter["name"].as_str().unwrap_or("");
        let place = parameter["in"].as_str().unwrap_or("");
        if name == "env" || !(place == "query" || place == "path") {
            continue;
        }
        let mut schema = resolve(document, &parameter["schema"], 0);
        if let (Some(object), Some(description)) =
            (schema.as_object_mut(), parameter["description"].as_str())
        {
            object
                .entry("description")
                .or_insert_with(|| description.into());
        }
        if parameter["required"] == true {
            required.push(name.to_owned());
        }
        properties.insert(name.to_owned(), schema);
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// `schema` with every `$ref` to a component replaced by the component (a tool's input schema
/// stands alone).
fn resolve(document: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 16 {
        return json!({});
    }
    match schema {
        Value::Object(object) => {
            if let Some(target) = object.get("$ref").and_then(Value::as_str) {
                let name = target.trim_start_matches("#/components/schemas/");
                return resolve(
                    document,
                    &document["components"]["schemas"][name],
                    depth + 1,
                );
            }
            Value::Object(
                object
                    .iter()
                    .map(|(k, v)| (k.clone(), resolve(document, v, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(document, v, depth + 1))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `tools/call`: the tool's endpoint, run with the caller's token. A 4xx is the tool's error
/// (`isError`), as the spec wants for errors a model can act on; an unknown tool or arguments
/// that are not an object are a protocol error.
async fn call(
    api: &Router,
    principal: &Principal,
    headers: &HeaderMap,
    params: &Value,
) -> Result<Value, (i64, String)> {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let tool = TOOLS
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| (-32602, format!("unknown tool `{name}`")))?;
    let empty = Map::new();
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(arguments)) => arguments,
        Some(_) => return Err((-32602, "`arguments` must be an object".into())),
    };
    let (status, body) = match request_for(tool, arguments, principal, headers) {
        Ok(request) => run(api, request).await,
        Err(message) => (
            StatusCode::BAD_REQUEST,
            json!({ "error": { "code": "invalid_argument", "message": message } }),
        ),
    };
    let text = body.to_string();
    let mut result = json!({
        "content": [{ "type": "text", "text": text }],
        "isError": !status.is_success(),
    });
    if status.is_success() && body.is_object() {
        result["structuredContent"] = body;
    }
    Ok(result)
}

/// The GET request a tool call makes: the arguments as the endpoint's query parameters (a list
/// repeats its parameter), with the caller's credentials.
fn request_for(
    tool: &Tool,
    arguments: &Map<String, Value>,
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<Request<Body>, String> {
    let env = match (arguments.get("environment"), principal) {
        (Some(Value::String(env)), _) => env.clone(),
        (None | Some(Value::Null), Principal::Environment { name, .. }) => name.clone(),
        (None | Some(Value::Null), _) => {
            return Err("`environment` is required with the admin token (e.g. `prod`)".into())
        }
        (Some(_), _) => return Err("`environment` must be a string".into()),
    };
    let mut path = tool.path.to_owned();
    if path.contains("{id}") {
        let id = arguments
            .get("id")
            .and_then(Value::as_str)
            .ok_or("`id` (the operation's id) is required")?;
        path = path.replace("{id}", &urlencoding::encode(id));
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in arguments {
        if name == "environment" || name == "id" {
            continue;
        }
        let values = match value {
            Value::Array(items) => items.clone(),
            Value::Null => continue,
            other => vec![other.clone()],
        };
        for value in values {
            let text = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(format!("`{name}` must be a string, a number or a boolean")),
            };
            query.append_pair(name, &text);
        }
    }
    let query = query.finish();
    let mut uri = format!("/v1/environments/{}{path}", urlencoding::encode(&env));
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query);
    }
    let mut request = Request::builder().method(Method::GET).uri(uri);
    for name in [header::AUTHORIZATION, header::COOKIE] {
        for value in headers.get_all(&name) {
            request = request.header(&name, value);
        }
    }
    request.body(Body::empty()).map_err(|e| e.to_string())
}

async fn run(api: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = match api.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}
