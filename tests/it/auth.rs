//! Bearer auth and isolation between environments.

use serde_json::{json, Value};

use crate::support::*;

#[test]
fn missing_or_unknown_tokens_are_401() {
    let d = Daemon::start();
    let path = "/v1/environments/prod/operations";
    let none = d.raw("POST", path, None, &[], Some(b"{\"type\":\"sync\"}"));
    assert_eq!((none.status, none.code()), (401, "unauthorized"));
    assert_eq!(
        none.headers.get("www-authenticate").map(String::as_str),
        Some("Bearer")
    );
    let wrong = d.raw(
        "POST",
        path,
        None,
        &[("authorization", "Bearer not-a-real-key-000000")],
        Some(b"{}"),
    );
    assert_eq!(wrong.status, 401);
    let basic = d.raw(
        "POST",
        path,
        None,
        &[("authorization", "Basic dXNlcjpwYXNz")],
        Some(b"{}"),
    );
    assert_eq!(basic.status, 401);
    assert!(basic.message().contains("Bearer"), "{}", basic.text);
}

#[test]
fn an_environment_key_never_reaches_another_environment() {
    let d = Daemon::start();
    let prod_op = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    let paths = [
        ("POST", "/v1/environments/prod/operations".to_owned()),
        ("GET", format!("/v1/environments/prod/operations/{prod_op}")),
        (
            "PATCH",
            format!("/v1/environments/prod/operations/{prod_op}"),
        ),
        (
            "POST",
            format!("/v1/environments/prod/operations/{prod_op}/messages"),
        ),
        (
            "GET",
            format!("/v1/environments/prod/operations/{prod_op}/messages"),
        ),
        ("POST", "/v1/environments/prod/messages".to_owned()),
    ];
    for (method, path) in &paths {
        let reply = d.raw(
            method,
            path,
            Some(DEV_KEY),
            &[],
            (*method != "GET").then_some(b"{}".as_slice()),
        );
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
        assert_eq!(reply.code(), "environment_not_found");
        assert!(
            !reply.text.contains("github"),
            "no data leaks: {}",
            reply.text
        );
    }
    // The prod operation through the dev environment's own path: not found either.
    let via_dev = d.get(
        &format!("/v1/environments/dev/operations/{prod_op}"),
        DEV_KEY,
    );
    assert_eq!(
        (via_dev.status, via_dev.code()),
        (404, "operation_not_found")
    );
    let log_into = d.post(
        &format!("/v1/environments/dev/operations/{prod_op}/messages"),
        DEV_KEY,
        &json!({"message": "sneaky"}),
    );
    assert_eq!(log_into.status, 404);
    let batch = d.post(
        "/v1/environments/dev/messages",
        DEV_KEY,
        &json!([{"operation_id": prod_op, "message": "sneaky"}]),
    );
    assert_eq!(batch.status, 404);
    let end = d.patch(
        &format!("/v1/environments/dev/operations/{prod_op}"),
        DEV_KEY,
        &json!({"state": "failed"}),
    );
    assert_eq!(end.status, 404);
    let still = d.get(
        &format!("/v1/environments/prod/operations/{prod_op}"),
        PROD_KEY,
    );
    assert_eq!(still.body["state"], "running");
    assert_eq!(still.body["message_count"], 0);

    // The admin token works everywhere; an unknown environment is a 404 for it too.
    assert_eq!(
        d.get(
            &format!("/v1/environments/prod/operations/{prod_op}"),
            ADMIN
        )
        .status,
        200
    );
    let unknown = d.get(
        "/v1/environments/staging/operations/01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ADMIN,
    );
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, "environment_not_found")
    );
}

#[test]
fn health_endpoints_need_no_token() {
    let d = Daemon::start();
    assert_eq!(d.raw("GET", "/healthz", None, &[], None).status, 200);
    let ready = d.raw("GET", "/readyz", None, &[], None);
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );
    let metrics = d.raw("GET", "/metrics", None, &[], None);
    assert!(
        metrics.text.contains("opslog_store_commits_total"),
        "{}",
        metrics.text
    );
    assert!(!metrics.text.contains(PROD_KEY) && !metrics.text.contains(ADMIN));
}

/// A sync in `env` with messages and an end (so a delivery is queued), marked with `marker`
/// everywhere a list, search, facet or delivery could show it.
fn seed_environment(d: &Daemon, env: &str, key: &str, marker: &str) -> String {
    let op = d.start_operation(
        env,
        key,
        &json!({"type": "sync", "integration": marker, "connection_id": marker, "script": marker}),
    );
    let base = format!("/v1/environments/{env}/operations/{op}");
    let r = d.post(
        &format!("{base}/messages"),
        key,
        &json!({"message": format!("{marker} zebra payload")}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = d.patch(&base, key, &json!({"state": "success"}));
    assert_eq!(r.status, 200, "{}", r.text);
    op
}

fn first_delivery(d: &Daemon, env: &str, key: &str) -> String {
    eventually(std::time::Duration::from_secs(30), || {
        let r = d.get(&format!("/v1/environments/{env}/deliveries"), key);
        r.body["data"][0]["id"].as_str().map(str::to_owned)
    })
}

#[test]
fn every_endpoint_keeps_environments_apart() {
    let receiver = crate::receiver::Receiver::ok();
    let url = receiver.url();
    let d = Daemon::start_with(move |c| {
        for env in ["dev", "prod"] {
            c.environments.get_mut(env).unwrap().webhooks = opslog::config::WebhooksConfig {
                url: Some(url.clone()),
                ..Default::default()
            };
        }
    });
    let prod_op = seed_environment(&d, "prod", PROD_KEY, "prodmarker");
    let dev_op = seed_environment(&d, "dev", DEV_KEY, "devmarker");
    let prod_delivery = first_delivery(&d, "prod", PROD_KEY);
    let dev_delivery = first_delivery(&d, "dev", DEV_KEY);
    eventually(std::time::Duration::from_secs(30), || {
        let r = d.get("/v1/environments/prod/messages?q=zebra", ADMIN);
        (r.body["total"] == 1).then_some(())
    });
    let prod_secret = d
        .get("/v1/environments/prod/settings/webhook-secret", ADMIN)
        .text;
    let prod_settings = d.get("/v1/environments/prod/settings", ADMIN).text;
    let prod_before = d
        .get(
            &format!("/v1/environments/prod/operations/{prod_op}"),
            ADMIN,
        )
        .text;

    // 1. The dev key on every prod path: the same 404 as an unknown environment, and no data.
    let prod = "/v1/environments/prod";
    let every_endpoint = [
        ("GET", format!("{prod}/operations")),
        ("POST", format!("{prod}/operations")),
        ("GET", format!("{prod}/operations/{prod_op}")),
        ("PATCH", format!("{prod}/operations/{prod_op}")),
        ("GET", format!("{prod}/operations/{prod_op}/messages")),
        ("POST", format!("{prod}/operations/{prod_op}/messages")),
        ("GET", format!("{prod}/messages?q=zebra")),
        ("POST", format!("{prod}/messages")),
        ("GET", format!("{prod}/facets?field=integration")),
        ("GET", format!("{prod}/insights")),
        ("GET", format!("{prod}/settings")),
        ("PUT", format!("{prod}/settings")),
        ("GET", format!("{prod}/settings/webhook-secret")),
        ("POST", format!("{prod}/settings/webhook-secret/rotate")),
        ("POST", format!("{prod}/settings/ingress-token/rotate")),
        ("GET", format!("{prod}/deliveries")),
        ("GET", format!("{prod}/deliveries/{prod_delivery}")),
        ("POST", format!("{prod}/deliveries/{prod_delivery}/retry")),
        (
            "POST",
            format!("{prod}/deliveries/replay?from=2020-01-01T00:00:00Z"),
        ),
    ];
    for (method, path) in &every_endpoint {
        let body = matches!(*method, "POST" | "PATCH" | "PUT").then_some(
            br#"{"type":"sync","state":"failed","message":"x","webhooks":{"events":[]}}"#
                .as_slice(),
        );
        let reply = d.raw(method, path, Some(DEV_KEY), &[], body);
        assert_eq!(
            (reply.status, reply.code()),
            (404, "environment_not_found"),
            "{method} {path}: {}",
            reply.text
        );
        assert!(!reply.text.contains("prodmarker"), "{}", reply.text);
    }

    // 2. Prod ids through dev's own paths: not found, never prod's data.
    let dev = "/v1/environments/dev";
    let through_dev = [
        (
            "GET",
            format!("{dev}/operations/{prod_op}"),
            "operation_not_found",
        ),
        (
            "PATCH",
            format!("{dev}/operations/{prod_op}"),
            "operation_not_found",
        ),
        (
            "GET",
            format!("{dev}/operations/{prod_op}/messages"),
            "operation_not_found",
        ),
        (
            "POST",
            format!("{dev}/operations/{prod_op}/messages"),
            "operation_not_found",
        ),
        (
            "GET",
            format!("{dev}/deliveries/{prod_delivery}"),
            "delivery_not_found",
        ),
    ];
    for (method, path, code) in &through_dev {
        let body = match (*method, path.ends_with("/messages")) {
            ("GET", _) => None,
            ("POST", true) => Some(br#"{"message":"sneaky"}"#.as_slice()),
            ("PATCH", _) => Some(br#"{"state":"failed"}"#.as_slice()),
            _ => None,
        };
        let reply = d.raw(method, path, Some(DEV_KEY), &[], body);
        assert_eq!(
            (reply.status, reply.code()),
            (404, *code),
            "{method} {path}: {}",
            reply.text
        );
    }
    let batch = d.post(
        &format!("{dev}/messages"),
        DEV_KEY,
        &json!([{"operation_id": prod_op, "message": "sneaky"}]),
    );
    assert_eq!(batch.status, 404, "{}", batch.text);
    // Retrying needs the admin token, which reaches prod's delivery through prod's path only.
    let retry = d.raw(
        "POST",
        &format!("{dev}/deliveries/{prod_delivery}/retry"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(
        (retry.status, retry.code()),
        (404, "delivery_not_found"),
        "{}",
        retry.text
    );
    let dev_settings = d.get(&format!("{dev}/settings"), ADMIN);
    assert!(!dev_settings.text.contains("prodmarker") && !dev_settings.text.contains(&prod_op));
    let dev_reads = [
        format!("{dev}/operations"),
        format!("{dev}/operations?q=prodmarker"),
        format!("{dev}/messages?q=zebra"),
        format!("{dev}/messages?integration=prodmarker"),
        format!("{dev}/facets?field=integration"),
        format!("{dev}/facets?field=connection_id"),
        format!("{dev}/facets?field=script"),
        format!("{dev}/deliveries"),
    ];
    for path in &dev_reads {
        let reply = d.get(path, DEV_KEY);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        assert!(
            !reply.text.contains("prodmarker"),
            "{path} shows prod: {}",
            reply.text
        );
        assert!(
            !reply.text.contains(&prod_op),
            "{path} shows prod: {}",
            reply.text
        );
    }
    let zebra = d.get(&format!("{dev}/messages?q=zebra"), DEV_KEY);
    assert_eq!(
        zebra.body["total"], 1,
        "dev finds only its own: {}",
        zebra.text
    );
    // (Each environment also has a `webhook:deliver` operation logging its delivery.)
    let insights = d.get(&format!("{dev}/insights?type=sync"), DEV_KEY);
    assert_eq!(
        insights.body["total"], 1,
        "only dev's one sync: {}",
        insights.text
    );
    let replay = d.raw(
        "POST",
        &format!("{dev}/deliveries/replay?from=2020-01-01T00:00:00Z&status=delivered"),
        Some(ADMIN),
        &[],
        None,
    );
    assert_eq!(replay.status, 202, "{}", replay.text);
    for id in replay.body["ids"].as_array().unwrap() {
        assert_ne!(
            id,
            prod_delivery.as_str(),
            "a dev replay requeued a prod delivery"
        );
    }
    assert!(replay.text.contains(&dev_delivery), "{}", replay.text);

    // 3. Nothing of prod changed; the admin reaches both.
    assert_eq!(
        d.get("/v1/environments/prod/settings/webhook-secret", ADMIN)
            .text,
        prod_secret
    );
    assert_eq!(
        d.get("/v1/environments/prod/settings", ADMIN).text,
        prod_settings
    );
    assert_eq!(
        d.get(
            &format!("/v1/environments/prod/operations/{prod_op}"),
            ADMIN
        )
        .text,
        prod_before
    );
    for (method, path) in &every_endpoint {
        let admin = d.raw(method, path, Some(ADMIN), &[], None);
        assert_ne!(admin.code(), "environment_not_found", "{method} {path}");
        assert!(admin.status < 500, "{method} {path}: {}", admin.text);
    }
    for (env, op) in [("prod", &prod_op), ("dev", &dev_op)] {
        let r = d.get(
            &format!("/v1/environments/{env}/operations?type=sync"),
            ADMIN,
        );
        assert_eq!(r.body["data"][0]["id"], op.as_str(), "{}", r.text);
    }
}

/// Secrets (API keys, webhook secrets, the admin token, session ids, ingress tokens) never
/// appear in the daemon's log, at its most verbose, nor in any answer but the admin's reveal.
#[test]
fn secrets_stay_out_of_logs_and_answers() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    let receiver = crate::receiver::Receiver::start(|_, index| {
        if index == 0 {
            crate::receiver::Answer::Status(500, "first attempt fails")
        } else {
            crate::receiver::Answer::Status(200, "ok")
        }
    });
    let prod_secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM0NQ==";
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opslog.toml");
    write_private(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_tokens = [\"{ADMIN}\"]\n\n\
             [environments.prod]\napi_keys = [\"{PROD_KEY}\"]\n\n\
             [environments.prod.webhooks]\nurl = \"{}\"\nsecret = \"{prod_secret}\"\nretry_schedule = [\"0s\", \"0s\"]\n\n\
             [environments.dev]\napi_keys = [\"{DEV_KEY}\"]\n",
            dir.path().join("data").display(),
            receiver.url()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_opslog"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "trace")
        .env_remove("OPSLOG_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let base = first
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut answers: Vec<String> = Vec::new();
    let call = |method: &str, path: &str, auth: Option<&str>, body: Option<Value>| {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .header("content-type", "application/json");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = agent.run(request.body(body).unwrap()).unwrap();
        let status = response.status().as_u16();
        let headers = format!("{:?}", response.headers());
        let text = response.into_body().read_to_string().unwrap();
        (status, headers, text)
    };
    let bearer = |key: &str| format!("Bearer {key}");

    // Failed and successful logins (a viewer's too), a session in use, a logout.
    let (status, _, text) = call(
        "POST",
        "/v1/session",
        None,
        Some(json!({"token": format!("{PROD_KEY}x")})),
    );
    assert_eq!(status, 401, "{text}");
    answers.push(text);
    let (status, _, text) = call(
        "POST",
        "/v1/session",
        None,
        Some(json!({"token": PROD_KEY})),
    );
    assert_eq!(status, 200, "{text}");
    answers.push(text);
    let (status, headers, text) = call("POST", "/v1/session", None, Some(json!({"token": ADMIN})));
    assert_eq!(status, 200, "{text}");
    answers.push(text);
    let session = headers
        .split("opslog_session=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    // Wrong tokens that contain real ones must not be echoed either.
    for wrong in [format!("{PROD_KEY}x"), format!("x{ADMIN}")] {
        let (status, _, text) = call(
            "GET",
            "/v1/environments/prod/operations",
            Some(&bearer(&wrong)),
            None,
        );
        assert_eq!(status, 401, "{text}");
        answers.push(text);
    }
    // Ordinary work in both environments; user-supplied credentials in an HTTP message.
    let (status, _, text) = call(
        "POST",
        "/v1/environments/prod/operations",
        Some(&bearer(PROD_KEY)),
        Some(json!({"type": "sync", "integration": "github"})),
    );
    assert_eq!(status, 201, "{text}");
    let op = serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    answers.push(text);
    let (status, _, text) = call(
        "POST",
        &format!("/v1/environments/prod/operations/{op}/messages"),
        Some(&bearer(PROD_KEY)),
        Some(
            json!({"type": "http", "request": {"method": "GET", "url": "https://api.example.com",
            "headers": {"authorization": bearer(ADMIN), "x-api-key": DEV_KEY}}}),
        ),
    );
    assert_eq!(status, 201, "{text}");
    answers.push(text);
    let (status, _, text) = call(
        "PATCH",
        &format!("/v1/environments/prod/operations/{op}"),
        Some(&bearer(PROD_KEY)),
        Some(json!({"state": "success"})),
    );
    assert_eq!(status, 200, "{text}");
    answers.push(text);
    receiver.wait_for(2, Duration::from_secs(30));
    let delivered = eventually(Duration::from_secs(30), || {
        let (_, _, text) = call(
            "GET",
            "/v1/environments/prod/deliveries?status=delivered",
            Some(&bearer(PROD_KEY)),
            None,
        );
        text.contains("\"delivered\"").then_some(text)
    });
    answers.push(delivered);
    for path in [
        "/v1/environments/prod/settings",
        "/v1/environments/dev/settings",
        "/v1/environments/prod/operations?q=github",
        "/v1/environments",
        "/metrics",
    ] {
        let (_, _, text) = call("GET", path, Some(&bearer(ADMIN)), None);
        answers.push(text);
    }
    let (_, _, text) = call(
        "GET",
        "/v1/environments/dev/operations",
        Some(&bearer(DEV_KEY)),
        None,
    );
    answers.push(text);
    let (status, _, text) = call("GET", "/v1/environments", None, None);
    assert_eq!(status, 401, "{text}");
    answers.push(text);
    let cookie_call = agent
        .get(format!("{base}/v1/environments"))
        .header("cookie", format!("opslog_session={session}"))
        .call()
        .unwrap();
    answers.push(cookie_call.into_body().read_to_string().unwrap());
    // The reveals: the only answers that may hold a webhook secret.
    let (_, _, dev_reveal) = call(
        "GET",
        "/v1/environments/dev/settings/webhook-secret",
        Some(&bearer(ADMIN)),
        None,
    );
    let dev_secret = serde_json::from_str::<Value>(&dev_reveal).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, rotated) = call(
        "POST",
        "/v1/environments/dev/settings/webhook-secret/rotate",
        Some(&bearer(ADMIN)),
        None,
    );
    let rotated_secret = serde_json::from_str::<Value>(&rotated).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, text) = call(
        "GET",
        "/v1/environments/dev/settings",
        Some(&bearer(ADMIN)),
        None,
    );
    let ingress = serde_json::from_str::<Value>(&text).unwrap()["ingress"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, text) = call(
        "POST",
        &format!("/v1/hooks/{ingress}/stripe"),
        None,
        Some(json!({"id": "evt_1"})),
    );
    assert_eq!(status, 200, "{text}");
    answers.push(text);
    let (status, _, _) = call("DELETE", "/v1/session", None, None);
    assert_eq!(status, 204);

    // A graceful stop, so everything buffered is in the log.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let stdout: Vec<String> = rx.try_iter().collect();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.len() > 1000,
        "the log has content at trace level: {} bytes",
        log.len()
    );
    let secrets = [
        ("admin token", ADMIN),
        ("prod key", PROD_KEY),
        ("dev key", DEV_KEY),
        ("prod webhook secret", prod_secret),
        ("dev webhook secret", dev_secret.as_str()),
        ("rotated webhook secret", rotated_secret.as_str()),
        ("session id", session.as_str()),
        ("ingress token", ingress.as_str()),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(secret), "the {what} is in the log");
        assert!(
            !stdout.iter().any(|l| l.contains(secret)),
            "the {what} is on stdout"
        );
        let key_part = secret.trim_start_matches("whsec_");
        assert!(
            !log.contains(key_part),
            "the {what} (its key) is in the log"
        );
    }
    for (what, secret) in &secrets[..6] {
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "the {what} is in an answer: {answer}"
            );
        }
    }
    assert!(dev_reveal.contains(&dev_secret) && rotated.contains(&rotated_secret));
}
