//! The MCP server at `/mcp`, driven by both official client SDKs over the Streamable HTTP
//! transport: PyPI `mcp` and npm `@modelcontextprotocol/sdk` (pinned by `scripts/test` and
//! `tests/mcp/package-lock.json`) connect with an API key, list the tools and call each one, and
//! every answer equals the REST API's for the same query. The transport's refusals (methods,
//! origins, tokens, bad JSON-RPC) are checked on the wire.

use std::time::Duration;

use opslog::config::ApiKey;
use opslog::scope::KeyScope;
use serde_json::{json, Value};

use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WAIT: Duration = Duration::from_secs(30);
const FROM: &str = "2026-01-01T00:00:00Z";
const TO: &str = "2027-01-01T00:00:00Z";

const PYTHON_CLIENT: &str = r#"
import asyncio, json, sys
import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

url, token, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

async def main():
    async with httpx2.AsyncClient(headers={"Authorization": "Bearer " + token}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await session.list_tools()
                results = {}
                for name, arguments in calls:
                    r = await session.call_tool(name, arguments)
                    results.setdefault(name, []).append({
                        "isError": bool(r.is_error),
                        "structuredContent": r.structured_content,
                        "text": r.content[0].text,
                    })
                print(json.dumps({
                    "protocolVersion": init.protocol_version,
                    "server": init.server_info.name,
                    "tools": [t.model_dump(by_alias=True, exclude_none=True) for t in tools.tools],
                    "results": results,
                }))

asyncio.run(main())
"#;

const NODE_CLIENT: &str = r#"
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, callsJson] = process.argv.slice(2);
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "opslog-it", version: "1.0.0" });
await client.connect(transport);
const { tools } = await client.listTools();
const results = {};
for (const [name, args] of JSON.parse(callsJson)) {
  const r = await client.callTool({ name, arguments: args });
  (results[name] ??= []).push({
    isError: Boolean(r.isError),
    structuredContent: r.structuredContent ?? null,
    text: r.content[0].text,
  });
}
console.log(JSON.stringify({ server: client.getServerVersion().name, tools, results }));
await client.close();
"#;

fn last_json_line(output: std::process::Output, who: &str) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{who} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap()
}

fn python_client(d: &Daemon, token: &str, calls: &Value) -> Value {
    let output =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python"))
            .arg("-c")
            .arg(PYTHON_CLIENT)
            .arg(d.url("/mcp"))
            .arg(token)
            .arg(calls.to_string())
            .output()
            .expect("the repo's .venv Python with `mcp` (./scripts/test installs it)");
    last_json_line(output, "the Python MCP client")
}

fn node_client(d: &Daemon, token: &str, calls: &Value) -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp");
    let script = std::path::Path::new(dir).join(".client-it.mjs");
    std::fs::write(&script, NODE_CLIENT).unwrap();
    let output = std::process::Command::new("node")
        .current_dir(dir)
        .arg(&script)
        .arg(d.url("/mcp"))
        .arg(token)
        .arg(calls.to_string())
        .output()
        .expect("node (./scripts/test installs it and tests/mcp's packages)");
    last_json_line(output, "the Node MCP client")
}

/// Two operations in prod (a failed GitHub sync with messages, a Slack action), indexed.
fn seed(d: &Daemon) -> String {
    let failed = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme",
                "messages": [{"message": "rate limited by GitHub", "level": "warn"},
                             {"message": "giving up", "level": "error"}]}),
    );
    let ended = d.patch(
        &format!("{PROD}/operations/{failed}"),
        PROD_KEY,
        &json!({"state": "failed", "error": {"message": "rate limited"}}),
    );
    assert_eq!(ended.status, 200, "{}", ended.text);
    d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "action", "integration": "slack", "state": "success"}),
    );
    eventually(WAIT, || {
        let list = d.get(&format!("{PROD}/messages?q=rate"), PROD_KEY).body;
        let ops = d.get(&format!("{PROD}/operations"), PROD_KEY).body;
        (list["total"] == 1 && ops["total"] == 2).then_some(())
    });
    failed
}

/// Each tool call and the REST request it stands for.
fn calls_and_rest(failed: &str) -> Vec<(&'static str, Value, String)> {
    vec![
        (
            "list_operations",
            json!({"state": ["failed"], "integration": "github"}),
            "/operations?state=failed&integration=github".into(),
        ),
        (
            "list_operations",
            json!({"environment": "prod", "limit": 1}),
            "/operations?limit=1".into(),
        ),
        (
            "get_operation",
            json!({"id": failed}),
            format!("/operations/{failed}"),
        ),
        (
            "list_operation_messages",
            json!({"id": failed, "level": ["error"]}),
            format!("/operations/{failed}/messages?level=error"),
        ),
        (
            "search_messages",
            json!({"q": "rate"}),
            "/messages?q=rate".into(),
        ),
        (
            "get_facets",
            json!({"field": "integration"}),
            "/facets?field=integration".into(),
        ),
        // A fixed range: the default one ends at the time of the request.
        (
            "get_insights",
            json!({"from": FROM, "to": TO}),
            format!("/insights?from={FROM}&to={TO}"),
        ),
        (
            "get_signals",
            json!({"from": FROM, "to": TO}),
            format!("/signals?from={FROM}&to={TO}"),
        ),
        ("list_views", json!({}), "/views".into()),
    ]
}

#[test]
fn both_official_sdks_list_the_tools_and_each_call_answers_as_the_rest_api() {
    let d = Daemon::start();
    let failed = seed(&d);
    let plan = calls_and_rest(&failed);
    let mut calls: Vec<Value> = plan
        .iter()
        .map(|(name, args, _)| json!([name, args]))
        .collect();
    // A refusal the model can act on is the tool's error, as the REST API words it.
    calls.push(json!(["get_operation", {"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}]));
    let calls = Value::Array(calls);

    let python = python_client(&d, PROD_KEY, &calls);
    let node = node_client(&d, PROD_KEY, &calls);
    assert_eq!(python["server"], "opslog");
    assert_eq!(node["server"], "opslog");
    assert_eq!(python["protocolVersion"], "2025-11-25");

    for client in [&python, &node] {
        let names: Vec<&str> = client["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "list_operations",
                "get_operation",
                "list_operation_messages",
                "search_messages",
                "get_facets",
                "get_insights",
                "get_signals",
                "list_views"
            ]
        );
        let mut seen = std::collections::HashMap::<&str, usize>::new();
        for (name, _, rest) in &plan {
            let n = seen.entry(name).or_default();
            let result = &client["results"][name][*n];
            *n += 1;
            let expected = d.get(&format!("{PROD}{rest}"), PROD_KEY);
            assert_eq!(expected.status, 200, "{rest}: {}", expected.text);
            assert_eq!(result["isError"], false, "{name}: {result}");
            assert_eq!(
                result["structuredContent"], expected.body,
                "{name} vs GET {rest}"
            );
            assert_eq!(
                serde_json::from_str::<Value>(result["text"].as_str().unwrap()).unwrap(),
                expected.body
            );
        }
        let missing = &client["results"]["get_operation"][1];
        assert_eq!(missing["isError"], true, "{missing}");
        assert!(
            missing["text"]
                .as_str()
                .unwrap()
                .contains("operation_not_found"),
            "{missing}"
        );
    }

    // The input schemas are the API's query parameters, from the same table as the OpenAPI's.
    let doc = d.get("/openapi.json", PROD_KEY).body;
    let tools = python["tools"].as_array().unwrap();
    let list = tools
        .iter()
        .find(|t| t["name"] == "list_operations")
        .unwrap();
    let schema = &list["inputSchema"];
    let documented: Vec<String> = doc["paths"]["/v1/environments/{env}/operations"]["get"]
        ["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let mut offered: Vec<String> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "environment")
        .cloned()
        .collect();
    let mut documented_sorted = documented.clone();
    documented_sorted.sort();
    offered.sort();
    assert_eq!(offered, documented_sorted);
    assert!(documented.contains(&"trace_id".to_owned()));
    assert_eq!(schema["properties"]["state"]["type"], "array", "{schema}");
    let facets = tools.iter().find(|t| t["name"] == "get_facets").unwrap();
    assert_eq!(facets["inputSchema"]["required"], json!(["field"]));
}

#[test]
fn the_transport_refuses_what_the_spec_refuses() {
    let d = Daemon::start();
    let rpc = |body: &[u8], headers: &[(&str, &str)], token: Option<&str>| {
        d.raw("POST", "/mcp", token, headers, Some(body))
    };
    let accept = ("accept", "application/json, text/event-stream");

    let init = rpc(
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        &[accept],
        Some(PROD_KEY),
    );
    assert_eq!(init.status, 200, "{}", init.text);
    assert_eq!(init.body["id"], 1);
    assert_eq!(init.body["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(
        init.body["result"]["capabilities"]["tools"]["listChanged"],
        false
    );
    assert!(!init.headers.contains_key("mcp-session-id"), "stateless");

    let unknown = rpc(
        br#"{"jsonrpc":"2.0","id":"a","method":"resources/list"}"#,
        &[accept],
        Some(PROD_KEY),
    );
    assert_eq!(unknown.body["error"]["code"], -32601, "{}", unknown.text);
    assert_eq!(unknown.body["id"], "a");
    let garbled = rpc(b"{not json", &[accept], Some(PROD_KEY));
    assert_eq!(garbled.status, 400);
    assert_eq!(garbled.body["error"]["code"], -32700, "{}", garbled.text);
    let batch = rpc(
        br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        &[accept],
        Some(PROD_KEY),
    );
    assert_eq!(batch.body["error"]["code"], -32600, "{}", batch.text);
    let notification = rpc(
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        &[accept],
        Some(PROD_KEY),
    );
    assert_eq!(notification.status, 202, "{}", notification.text);
    assert!(notification.text.is_empty());
    let bad_tool = rpc(
        br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"drop_tables","arguments":{}}}"#,
        &[accept],
        Some(PROD_KEY),
    );
    assert_eq!(bad_tool.body["error"]["code"], -32602, "{}", bad_tool.text);

    let version = rpc(
        br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#,
        &[accept, ("mcp-protocol-version", "1999-01-01")],
        Some(PROD_KEY),
    );
    assert_eq!(version.status, 400, "{}", version.text);
    assert_eq!(version.body["error"]["field"], "mcp-protocol-version");
    let origin = rpc(
        br#"{"jsonrpc":"2.0","id":4,"method":"ping"}"#,
        &[accept, ("origin", "http://evil.example")],
        Some(PROD_KEY),
    );
    assert_eq!(origin.status, 403, "{}", origin.text);
    let anonymous = rpc(
        br#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#,
        &[accept],
        None,
    );
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.headers["www-authenticate"], "Bearer");
    let stream = d.raw(
        "GET",
        "/mcp",
        Some(PROD_KEY),
        &[("accept", "text/event-stream")],
        None,
    );
    assert_eq!(stream.status, 405);
    assert_eq!(stream.headers["allow"], "POST");

    // An ingest-only key reaches the server, but the read tools answer the API's 403.
    let d = Daemon::start_with(|c| {
        c.environments.get_mut("prod").unwrap().api_keys = vec![ApiKey {
            key: PROD_KEY.into(),
            scope: KeyScope::Ingest,
        }];
    });
    let call = d.raw(
        "POST",
        "/mcp",
        Some(PROD_KEY),
        &[accept],
        Some(br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"list_operations","arguments":{}}}"#),
    );
    assert_eq!(call.status, 200, "{}", call.text);
    assert_eq!(call.body["result"]["isError"], true, "{}", call.text);
    assert!(call.text.contains("insufficient_scope"), "{}", call.text);
}
