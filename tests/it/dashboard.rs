//! The dashboard's server side: the page and its assets (types, caching, CSP), login with the
//! admin token, the session cookie's attributes, expiry and logout, and the cookie on the API.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

/// The `opslog_session=<id>` pair of a login's Set-Cookie.
fn session_pair(reply: &Reply) -> String {
    reply.headers["set-cookie"]
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The response head of a GET sent on a plain socket with `accept-encoding`.
fn raw_head(d: &Daemon, path: &str, accept_encoding: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(d.base.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\naccept-encoding: {accept_encoding}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase()
}

fn login(d: &Daemon, token: &str) -> Reply {
    let body = serde_json::to_vec(&json!({ "token": token })).unwrap();
    d.raw("POST", "/v1/session", None, &[], Some(&body))
}

fn get_with_cookie(d: &Daemon, path: &str, cookie: &str) -> Reply {
    d.raw("GET", path, None, &[("cookie", cookie)], None)
}

#[test]
fn page_and_assets_are_served_with_types_and_cache_headers() {
    let d = Daemon::start();
    let page = d.raw("GET", "/", None, &[], None);
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers["cache-control"], "no-cache");
    let csp = &page.headers["content-security-policy"];
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(page.text.contains("<title>opslog</title>"));

    // Every asset the page names is served, typed and cacheable forever under its versioned URL.
    let urls: Vec<&str> = page
        .text
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    assert!(urls.len() >= 4, "{urls:?}");
    for url in &urls {
        let reply = d.raw("GET", url, None, &[], None);
        assert_eq!(reply.status, 200, "{url}");
        let expected = if url.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else if url.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "image/svg+xml"
        };
        assert_eq!(reply.headers["content-type"], expected, "{url}");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
        assert!(
            reply.headers["cache-control"].contains("immutable"),
            "{url}"
        );
    }
    let app = urls.iter().find(|u| u.ends_with("/app.js")).unwrap();
    let js = d.raw("GET", app, None, &[], None);
    assert!(js.text.contains("/v1/session"), "the app script logs in");

    // Compressed for browsers that ask; an old version's URL is not cached as immutable.
    // (ureq decompresses by itself, so this asks on a plain socket.)
    let head = raw_head(&d, app, "gzip, br");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(!raw_head(&d, app, "identity").contains("content-encoding"));
    let stale = d.raw("GET", "/assets/0000/app.js", None, &[], None);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.headers["cache-control"], "no-cache");
    let missing = d.raw("GET", "/assets/0000/nope.js", None, &[], None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.code(), "asset_not_found");
}

#[test]
fn login_sets_a_strict_http_only_cookie_that_works_on_the_api() {
    let d = Daemon::start();
    let op = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );

    let reply = login(&d, ADMIN);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let cookie = &reply.headers["set-cookie"];
    assert!(cookie.starts_with("opslog_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not over plain http by default");
    assert!(!reply.text.contains(ADMIN), "the token is never echoed");
    let pair = session_pair(&reply);
    assert_eq!(pair.len(), "opslog_session=".len() + 64);

    let anonymous = d.raw("GET", "/v1/session", None, &[], None);
    assert_eq!(anonymous.status, 200);
    assert_eq!(anonymous.body["authenticated"], false);
    let me = get_with_cookie(&d, "/v1/session", &pair);
    assert_eq!(me.body["principal"], "admin");

    // The cookie is the admin: every environment, and the environment list.
    let envs = get_with_cookie(&d, "/v1/environments", &pair);
    assert_eq!(envs.status, 200);
    assert_eq!(
        envs.body["data"],
        json!([{"name": "dev"}, {"name": "prod"}])
    );
    let got = get_with_cookie(&d, &format!("/v1/environments/prod/operations/{op}"), &pair);
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["integration"], "github");
    let dev = get_with_cookie(&d, "/v1/environments/dev/operations", &pair);
    assert_eq!(dev.status, 200);

    // Bearer auth keeps working, and an environment key sees only its own environment.
    let list = d.get("/v1/environments", PROD_KEY);
    assert_eq!(list.body["data"], json!([{"name": "prod"}]));

    // Logout ends the session on the server, not just in the browser.
    let out = d.raw("DELETE", "/v1/session", None, &[("cookie", &pair)], None);
    assert_eq!(out.status, 204);
    assert!(out.headers["set-cookie"].contains("Max-Age=0"));
    let after = get_with_cookie(&d, "/v1/environments/prod/operations", &pair);
    assert_eq!(after.status, 401);
    assert!(
        after.message().contains("log in again"),
        "{}",
        after.message()
    );
}

const PROD_INGEST: &str = "test-prod-ingest-only-0123456789";
const PROD_READ: &str = "test-prod-read-only-0123456789";

/// prod gains an ingest-only key and a read-only key.
fn with_scoped_keys(config: &mut opslog::config::Config) {
    use opslog::config::ApiKey;
    use opslog::scope::KeyScope;
    let prod = config.environments.get_mut("prod").unwrap();
    for (key, scope) in [(PROD_INGEST, KeyScope::Ingest), (PROD_READ, KeyScope::Read)] {
        prod.api_keys.push(ApiKey {
            key: key.into(),
            scope,
        });
    }
}

#[test]
fn failed_logins_are_401_with_a_reason() {
    let d = Daemon::start_with(with_scoped_keys);
    let wrong = login(&d, "not-the-admin-token-at-all");
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.message().contains("unknown token"),
        "{}",
        wrong.message()
    );
    assert!(!wrong.headers.contains_key("set-cookie"));

    let env_key = login(&d, PROD_INGEST);
    assert_eq!(env_key.status, 401);
    assert!(
        env_key.message().contains("only the `ingest` scope"),
        "{}",
        env_key.message()
    );
    assert!(!env_key.headers.contains_key("set-cookie"));

    let malformed = d.raw("POST", "/v1/session", None, &[], Some(b"{\"tok\": 1}"));
    assert_eq!(malformed.status, 400);

    let forged = get_with_cookie(&d, "/v1/environments", "opslog_session=0123abcd");
    assert_eq!(forged.status, 401);
    let none = d.raw("GET", "/v1/environments", None, &[], None);
    assert_eq!(none.status, 401);
}

/// A key with the `read` scope signs in as a viewer of its environment: it reads what the key
/// reads and nothing more — every admin route answers 403 to its session, and other
/// environments 404, exactly as for the key itself.
#[test]
fn a_read_key_signs_in_as_a_viewer_of_its_own_environment() {
    let d = Daemon::start_with(with_scoped_keys);
    let op = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    for (key, scope) in [(PROD_READ, "read"), (PROD_KEY, "ingest+read")] {
        let reply = login(&d, key);
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.body,
            json!({"principal": "environment", "environment": "prod", "scope": scope, "expires_in_seconds": 43200})
        );
        assert!(!reply.text.contains(key), "the key is never echoed");
        let pair = session_pair(&reply);
        let me = get_with_cookie(&d, "/v1/session", &pair);
        assert_eq!(me.body["principal"], "environment");
        assert_eq!(me.body["environment"], "prod");
        assert_eq!(me.body["scope"], scope);
        let envs = get_with_cookie(&d, "/v1/environments", &pair);
        assert_eq!(envs.body["data"], json!([{"name": "prod"}]));
        // What a viewer reads.
        for path in [
            format!("/v1/environments/prod/operations/{op}"),
            "/v1/environments/prod/operations".into(),
            "/v1/environments/prod/messages".into(),
            "/v1/environments/prod/insights".into(),
            "/v1/environments/prod/signals".into(),
            "/v1/environments/prod/views".into(),
            "/v1/environments/prod/deliveries".into(),
        ] {
            let got = get_with_cookie(&d, &path, &pair);
            assert_eq!(got.status, 200, "{path}: {}", got.text);
        }
        // What only the admin may: 403 naming the scope, for this session too.
        for (method, path) in [
            ("GET", "/v1/environments/prod/settings"),
            ("PUT", "/v1/environments/prod/settings"),
            ("GET", "/v1/environments/prod/settings/webhook-secret"),
            (
                "POST",
                "/v1/environments/prod/settings/webhook-secret/rotate",
            ),
            (
                "POST",
                "/v1/environments/prod/settings/ingress-token/rotate",
            ),
            ("POST", "/v1/environments/prod/deliveries/replay"),
            ("POST", "/v1/environments/prod/import"),
            ("GET", "/v1/backup"),
        ] {
            let body = (method != "GET").then_some(&b"{}"[..]);
            let got = d.raw(
                method,
                path,
                None,
                &[("cookie", &pair), ("content-type", "application/json")],
                body,
            );
            assert_eq!(got.status, 403, "{method} {path}: {}", got.text);
            assert_eq!(got.code(), "insufficient_scope", "{method} {path}");
        }
        // Another environment is not there for it.
        let dev = get_with_cookie(&d, "/v1/environments/dev/operations", &pair);
        assert_eq!(dev.status, 404, "{}", dev.text);
        if scope == "read" {
            // A read key's session cannot write operations either.
            let body = serde_json::to_vec(&json!({"type": "sync"})).unwrap();
            let post = d.raw(
                "POST",
                "/v1/environments/prod/operations",
                None,
                &[("cookie", &pair), ("content-type", "application/json")],
                Some(&body),
            );
            assert_eq!(post.status, 403, "{}", post.text);
        }
    }
}

#[test]
fn sessions_expire_after_the_configured_ttl() {
    let d = Daemon::start_with(|c| {
        c.server.session_ttl = opslog::config::HumanDuration(Duration::from_secs(1));
        c.server.cookie_secure = true;
    });
    let reply = login(&d, ADMIN);
    let cookie = &reply.headers["set-cookie"];
    assert!(
        cookie.contains("Max-Age=1") && cookie.contains("; Secure"),
        "{cookie}"
    );
    let pair = session_pair(&reply);
    assert_eq!(get_with_cookie(&d, "/v1/environments", &pair).status, 200);
    // The server forgets the session at its expiry even if a client keeps sending the cookie.
    let status = eventually(Duration::from_secs(10), || {
        let status = get_with_cookie(&d, "/v1/environments", &pair).status;
        (status != 200).then_some(status)
    });
    assert_eq!(status, 401);
}

/// A login sent from `source` (a loopback address: all of 127.0.0.0/8 reaches the daemon), as
/// (status, the whole response).
fn login_from(d: &Daemon, source: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let daemon = d.base.trim_start_matches("http://").parse().unwrap();
        socket.connect(daemon).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    let body = json!({ "token": token }).to_string();
    write!(
        stream,
        "POST /v1/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    (status, answer)
}

#[test]
fn failed_logins_lock_out_only_their_own_address() {
    let d = Daemon::start();
    for attempt in 1..=5 {
        let (status, answer) = login_from(&d, "127.0.0.1", "guess-0000000000000000");
        assert_eq!(status, 401, "attempt {attempt} is free: {answer}");
    }
    let (status, answer) = login_from(&d, "127.0.0.1", "guess-0000000000000000");
    let locked_at = std::time::Instant::now();
    assert_eq!(status, 429, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1\r\n"), "{answer}");
    assert!(answer.contains("\"too_many_failed_logins\""), "{answer}");
    // While locked out even the right token is refused from that address (else guessing goes
    // on). The first lockout lasts 1 s; on a machine too busy to ask within it, say so.
    let (status, _) = login_from(&d, "127.0.0.1", ADMIN);
    if locked_at.elapsed() < Duration::from_millis(900) {
        assert_eq!(status, 429);
    } else {
        eprintln!("the 1 s lockout passed before the next login could be sent; not checked");
    }
    // Another address logs in at once; its own failures start from zero.
    let (status, answer) = login_from(&d, "127.0.0.2", ADMIN);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("opslog_session="), "{answer}");
    let (status, _) = login_from(&d, "127.0.0.3", "guess-0000000000000000");
    assert_eq!(status, 401);
    // Bearer tokens on the API are not affected by the login lockout.
    assert_eq!(d.get("/v1/environments", ADMIN).status, 200);
}
