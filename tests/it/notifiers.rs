//! Alerts that reach people: a rule's `notify` sends its firing and resolving to Slack (the body
//! checked with Slack's own Block Kit models, PyPI `slack_sdk`), PagerDuty's Events API v2 (a
//! `trigger` and a `resolve` with one `dedup_key`) and an SMTP server (PyPI `aiosmtpd`, over
//! STARTTLS or TLS with a login), all on loopback, through the durable outbox; secrets stay masked
//! in answers and out of the log.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opslog::config::{Config, HumanDuration, WebhooksConfig};
use serde_json::{json, Value};

use crate::receiver::*;
use crate::support::*;

const PROD: &str = "/v1/environments/prod";
const WAIT: Duration = Duration::from_secs(60);
const SLACK_PATH: &str = "/services/T0001/B0002/SlackSecretPath0123";
const ROUTING_KEY: &str = "R0123456789abcdefROUTINGKEY00000";
const SMTP_USER: &str = "alerts";
const SMTP_PASSWORD: &str = "smtp-Pa55word-0123";

fn notify_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/notify")
        .join(name)
}

/// `tests/notify/smtp_server.py` in `mode`: a real SMTP server; stops when dropped.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl SmtpServer {
    pub fn start(mode: &str, login: bool) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("python3");
        command
            .arg(notify_script("smtp_server.py"))
            .args(["--mode", mode, "--dir"])
            .arg(dir.path());
        if login {
            command.args(["--user", SMTP_USER, "--password", SMTP_PASSWORD]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("python3 is needed for this test ({e}); ./scripts/test installs aiosmtpd and trustme")
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| {
                panic!("the SMTP server did not start (`{line}`); ./scripts/test installs aiosmtpd and trustme")
            })
            .parse()
            .unwrap();
        SmtpServer { child, port, dir }
    }

    pub fn ca_file(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    /// The messages received so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        let mut found: Vec<(u32, Value)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| {
                let path = e.ok()?.path();
                let n: u32 = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((n, serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?))
            })
            .collect();
        found.sort_by_key(|(n, _)| *n);
        found.into_iter().map(|(_, v)| v).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks a Slack body with `tests/notify/slack_check.py` (slack_sdk's Block Kit models).
fn check_slack(body: &[u8]) -> Value {
    let mut child = Command::new("python3")
        .arg(notify_script("slack_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed; ./scripts/test installs slack_sdk");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "slack_sdk refuses the body: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(body)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn pagerduty_answer() -> Answer {
    Answer::WithHeaders(202, vec![("content-type", "application/json".to_owned())])
}

/// The daemon as users run it (its own process, a config file, the most verbose log to a file),
/// with every notifier set in the file and rules counted every second.
struct Served {
    child: Child,
    base: String,
    log: PathBuf,
    _stdout: BufReader<std::process::ChildStdout>,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(notifiers: &str) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("opslog.toml");
        write_private(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nadmin_tokens = [\"{ADMIN}\"]\n\n\
                 [alerts]\nevery = \"1s\"\n\n\
                 [environments.prod]\napi_keys = [\"{PROD_KEY}\"]\n\n\
                 [environments.prod.webhooks]\nretry_schedule = [\"0s\", \"1s\", \"1s\"]\ntimeout = \"5s\"\n\n{notifiers}",
                dir.path().join("data").display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_opslog"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "trace")
            .env_remove("OPSLOG_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // Kept open while the daemon runs: it prints more of its banner after this line.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let base = first
            .split("listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("opslog did not start: {first}"))
            .trim()
            .trim_end_matches('/')
            .to_owned();
        Served {
            child,
            base,
            log,
            _stdout: stdout,
            _dir: dir,
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = agent.run(request.body(body).unwrap()).unwrap();
        let status = response.status().as_u16();
        let text = response.into_body().read_to_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }

    fn stop(mut self) -> String {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The whole path: a rule on a saved view fires and resolves; Slack, PagerDuty and email each get
/// both, checked by their peers; the deliveries are listed; no secret reaches an answer or the
/// log.
#[test]
fn a_rule_tells_slack_pagerduty_and_email_when_it_fires_and_resolves() {
    let slack = Receiver::start(|_, _| Answer::Status(200, "ok"));
    let pagerduty = Receiver::start(|_, _| pagerduty_answer());
    let smtp = SmtpServer::start("starttls", true);
    let served = Served::start(&format!(
        "[environments.prod.notifiers.slack]\nurl = \"{}{SLACK_PATH}\"\n\n\
         [environments.prod.notifiers.pagerduty]\nrouting_key = \"{ROUTING_KEY}\"\nurl = \"{}/v2/enqueue\"\nseverity = \"critical\"\n\n\
         [environments.prod.notifiers.email]\nurl = \"smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}\"\nfrom = \"opslog <alerts@example.com>\"\nto = [\"oncall@example.com\", \"ops@example.com\"]\nca_file = \"{}\"\n",
        slack.url(),
        pagerduty.url(),
        smtp.port,
        smtp.ca_file(),
    ));
    let mut answers = Vec::new();

    // Secrets are masked in GET /settings, and the notifiers the file sets are read-only.
    let (status, settings, text) = served.call("GET", &format!("{PROD}/settings"), ADMIN, None);
    assert_eq!(status, 200, "{text}");
    let n = &settings["notifiers"];
    assert_eq!(n["read_only"], json!(["email", "pagerduty", "slack"]));
    assert!(
        n["slack"]["url"].as_str().unwrap().ends_with("…(masked)"),
        "{n}"
    );
    assert!(n["pagerduty"]["routing_key"]
        .as_str()
        .unwrap()
        .ends_with("…(masked)"));
    assert_eq!(n["pagerduty"]["severity"], "critical");
    assert_eq!(
        n["email"]["url"],
        format!("smtp://{SMTP_USER}:(masked)@127.0.0.1:{}", smtp.port)
    );
    answers.push(text);

    // A view, and a rule on it that tells every notifier (the webhooks too, which have no URL).
    let (status, _, text) = served.call(
        "POST",
        &format!("{PROD}/views"),
        PROD_KEY,
        Some(json!({"name": "Failed Salesforce syncs", "query": {"type": ["sync"], "state": ["failed"], "integration": ["salesforce"]}})),
    );
    assert_eq!(status, 201, "{text}");
    let rule = json!({"view": "failed_salesforce_syncs", "above": 0, "window": "1h", "notify": ["email", "pagerduty", "slack"]});
    let (status, reply, text) = served.call(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        Some(json!({"alerts": [rule]})),
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(reply["alerts"]["rules"], json!([rule]));

    let (status, op, text) = served.call(
        "POST",
        &format!("{PROD}/operations"),
        PROD_KEY,
        Some(json!({"type": "sync", "integration": "salesforce"})),
    );
    assert_eq!(status, 201, "{text}");
    let id = op["id"].as_str().unwrap();
    let (status, _, text) = served.call(
        "PATCH",
        &format!("{PROD}/operations/{id}"),
        PROD_KEY,
        Some(json!({"state": "failed"})),
    );
    assert_eq!(status, 200, "{text}");

    // Slack: Slack's own models take the message; it names the view, the count, the link.
    let posted = slack.wait_for(1, WAIT);
    assert_eq!(posted[0].path, format!("/hook{SLACK_PATH}"));
    assert_eq!(posted[0].header("content-type"), "application/json");
    let checked = check_slack(&posted[0].body);
    assert_eq!(
        checked["types"],
        json!(["header", "section", "section", "actions", "context"])
    );
    let message = posted[0].json();
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains("Firing: Failed Salesforce syncs")
            && text.contains("1 operation in the last 1h, above the threshold of 0"),
        "{text}"
    );
    let link = message["blocks"][3]["elements"][0]["url"].as_str().unwrap();
    assert!(
        link.starts_with(&format!(
            "{}/?env=prod&page=logs&view=failed_salesforce_syncs&type=sync&state=failed&integration=salesforce&from=",
            served.base
        )),
        "{link}"
    );
    assert!(message["blocks"][2]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("• salesforce: 1"));

    // PagerDuty: a trigger with the routing key, a dedup key and the payload PagerDuty requires.
    let events = pagerduty.wait_for(1, WAIT);
    assert_eq!(events[0].path, "/hook/v2/enqueue");
    let trigger = events[0].json();
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["event_action"], "trigger");
    let dedup_key = trigger["dedup_key"].as_str().unwrap().to_owned();
    assert_eq!(dedup_key, "opslog/prod/failed_salesforce_syncs");
    let payload = &trigger["payload"];
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["source"], "opslog/prod");
    let summary = payload["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("[opslog prod] Firing: Failed Salesforce syncs — 1 operation")
            && summary.len() <= 1024,
        "{summary}"
    );
    assert_eq!(payload["custom_details"]["count"], 1);
    assert_eq!(trigger["links"][0]["href"], link);

    // Email: over STARTTLS, logged in, to both recipients, text and HTML with the same content.
    let mails = eventually(WAIT, || {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    });
    let mail = &mails[0];
    assert_eq!(mail["tls"], true, "STARTTLS before the message");
    assert_eq!(mail["login"], SMTP_USER);
    assert_eq!(mail["mail_from"], "alerts@example.com");
    assert_eq!(
        mail["rcpt_tos"],
        json!(["oncall@example.com", "ops@example.com"])
    );
    assert_eq!(mail["content_type"], "multipart/alternative");
    assert!(mail["subject"]
        .as_str()
        .unwrap()
        .starts_with("[opslog prod] Firing: Failed Salesforce syncs — 1 operation"));
    let parts = mail["parts"].as_array().unwrap();
    assert_eq!(parts[0]["type"], "text/plain");
    assert_eq!(parts[1]["type"], "text/html");
    for part in parts {
        let body = part["text"].as_str().unwrap();
        assert!(body.contains("salesforce: 1"), "{body}");
        assert!(body.contains("Open in opslog"), "{body}");
    }

    // Each is a delivery, listed and logged like a webhook's.
    let listed = eventually(WAIT, || {
        let (_, list, text) = served.call(
            "GET",
            &format!("{PROD}/deliveries?event=alert.triggered&status=delivered"),
            PROD_KEY,
            None,
        );
        (list["total"] == 3).then_some((list, text))
    });
    let mut notifiers: Vec<&str> = listed.0["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["notifier"].as_str().unwrap())
        .collect();
    notifiers.sort();
    assert_eq!(notifiers, ["email", "pagerduty", "slack"]);
    answers.push(listed.1);
    for delivery in listed.0["data"].as_array().unwrap() {
        let (_, _, text) = served.call(
            "GET",
            &format!("{PROD}/deliveries/{}", delivery["id"].as_str().unwrap()),
            PROD_KEY,
            None,
        );
        answers.push(text);
    }

    // Raising the threshold over the count resolves the rule: each notifier hears it once, and
    // PagerDuty's resolve carries the trigger's dedup key, so the incident closes.
    let raised = json!({"view": "failed_salesforce_syncs", "above": 5, "window": "1h", "notify": ["email", "pagerduty", "slack"]});
    let (status, _, text) = served.call(
        "PUT",
        &format!("{PROD}/settings"),
        ADMIN,
        Some(json!({"alerts": [raised]})),
    );
    assert_eq!(status, 200, "{text}");
    let events = pagerduty.wait_for(2, WAIT);
    let resolve = events[1].json();
    assert_eq!(
        resolve,
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": dedup_key})
    );
    let posted = slack.wait_for(2, WAIT);
    check_slack(&posted[1].body);
    assert!(posted[1].json()["text"]
        .as_str()
        .unwrap()
        .contains("Resolved: Failed Salesforce syncs"));
    let mails = eventually(WAIT, || {
        let m = smtp.messages();
        (m.len() == 2).then_some(m)
    });
    assert!(mails[1]["subject"]
        .as_str()
        .unwrap()
        .contains("Resolved: Failed Salesforce syncs"));

    // No secret in any answer, nor in the log at its most verbose (`RUST_LOG=trace`): the
    // HTTP client prints a request's whole URI at trace and every byte it sends as hex, so the
    // crates on the wire log nothing below a warning, whatever RUST_LOG says.
    let log = served.stop();
    assert!(
        log.contains("alert rule changed"),
        "the log is the daemon's"
    );
    assert!(
        log.contains("DEBUG") && log.contains("notification delivered"),
        "the log is at its most verbose, and has the deliveries"
    );
    for line in log.lines() {
        for wire in opslog::secrets::WIRE_CRATES {
            assert!(
                !line.contains(&format!(" {wire}::")) && !line.contains(&format!(" {wire}: ")),
                "a line of `{wire}` is in the log: {line}"
            );
        }
    }
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let auth_plain = b64(&format!("\0{SMTP_USER}\0{SMTP_PASSWORD}"));
    let auth_login = b64(SMTP_PASSWORD);
    for secret in [
        "SlackSecretPath0123",
        ROUTING_KEY,
        SMTP_PASSWORD,
        &auth_plain,
        &auth_login,
    ] {
        assert!(!log.contains(secret), "`{secret}` is in the log");
        for answer in &answers {
            assert!(
                !answer.contains(secret),
                "`{secret}` is in an answer: {answer}"
            );
        }
    }
}

/// prod: notifiers and rules through the API, rules counted every second, a short schedule.
fn counting_every_second(config: &mut Config) {
    config.alerts.every = HumanDuration(Duration::from_secs(1));
    config.environments.get_mut("prod").unwrap().webhooks = WebhooksConfig {
        retry_schedule: Some(vec![
            HumanDuration(Duration::ZERO),
            HumanDuration(Duration::from_millis(200)),
            HumanDuration(Duration::from_millis(200)),
        ]),
        timeout: Some(HumanDuration(Duration::from_secs(5))),
        ..Default::default()
    };
}

fn put_settings(d: &Daemon, body: Value) -> Reply {
    d.send("PUT", &format!("{PROD}/settings"), ADMIN, &body)
}

fn fail_a_sync(d: &Daemon) {
    let id = d.start_operation(
        "prod",
        PROD_KEY,
        &json!({"type": "sync", "integration": "github"}),
    );
    let reply = d.patch(
        &format!("{PROD}/operations/{id}"),
        PROD_KEY,
        &json!({"state": "failed"}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
}

/// Notifiers set through `PUT /settings`: bad input is a 400 naming the field and saves nothing;
/// a masked secret sent back keeps the stored one; a notifier a rule tells cannot be removed.
#[test]
fn notifiers_are_checked_masked_and_kept_through_the_api() {
    let d = Daemon::start_with(counting_every_second);
    let smtp = "smtp://alerts:hunter2-secret@127.0.0.1:2525";
    for (notifiers, field) in [
        (
            json!({"email": {"url": "smtp:/mail.example.com", "from": "a@example.com", "to": ["b@example.com"]}}),
            "notifiers.email.url",
        ),
        (
            json!({"email": {"url": "smtp://mail.example.com/inbox", "from": "a@example.com", "to": ["b@example.com"]}}),
            "notifiers.email.url",
        ),
        (
            json!({"email": {"url": smtp, "from": "nobody", "to": ["b@example.com"]}}),
            "notifiers.email.from",
        ),
        (
            json!({"email": {"url": smtp, "from": "a@example.com", "to": []}}),
            "notifiers.email.to",
        ),
        (
            json!({"email": {"url": smtp, "from": "a@example.com", "to": ["b@example.com"], "ca_file": "/nonexistent.pem"}}),
            "notifiers.email.ca_file",
        ),
        (
            json!({"slack": {"url": "http://hooks.example.com/services/x"}}),
            "notifiers.slack.url",
        ),
        (
            json!({"slack": {"url": "https://169.254.169.254/latest"}}),
            "notifiers.slack.url",
        ),
        (
            json!({"pagerduty": {"routing_key": "short"}}),
            "notifiers.pagerduty.routing_key",
        ),
        (
            json!({"pagerduty": {"routing_key": ROUTING_KEY, "severity": "meh"}}),
            "notifiers.pagerduty.severity",
        ),
        (
            json!({"teams": {"url": "https://example.com"}}),
            "notifiers.teams",
        ),
    ] {
        let reply = put_settings(&d, json!({"notifiers": notifiers}));
        assert_eq!(reply.status, 400, "{notifiers}: {}", reply.text);
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.text);
        assert!(!reply.text.contains("hunter2"), "{}", reply.text);
    }
    let reply = put_settings(
        &d,
        json!({"alerts": [{"signal": "sync_failures", "above": 0, "window": "1h", "notify": ["email"]}]}),
    );
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["error"]["field"], "alerts[0].notify[0]");
    let shown = d.get(&format!("{PROD}/settings"), ADMIN).body;
    assert_eq!(
        shown["notifiers"],
        json!({"slack": null, "pagerduty": null, "email": null, "read_only": []}),
        "nothing saved"
    );

    let slack = Receiver::start(|_, _| Answer::Status(200, "ok"));
    let slack_url = format!("{}{SLACK_PATH}", slack.url());
    let reply = put_settings(
        &d,
        json!({
            "notifiers": {"slack": {"url": slack_url}, "pagerduty": {"routing_key": ROUTING_KEY}},
            "alerts": [{"signal": "sync_failures", "above": 0, "window": "1h", "notify": ["webhook", "slack"]}]
        }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        !reply.text.contains("SlackSecretPath") && !reply.text.contains(ROUTING_KEY),
        "{}",
        reply.text
    );
    let n = reply.body["notifiers"].clone();
    assert_eq!(
        n["pagerduty"]["url"], "https://events.pagerduty.com/v2/enqueue",
        "the default"
    );
    assert_eq!(n["pagerduty"]["severity"], "error");

    // The masked values sent back (as the dashboard does) keep the secrets.
    let reply = put_settings(
        &d,
        json!({"notifiers": {"slack": n["slack"], "pagerduty": {"routing_key": n["pagerduty"]["routing_key"], "severity": "warning"}}}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    fail_a_sync(&d);
    let posted = slack.wait_for(1, WAIT);
    assert_eq!(
        posted[0].path,
        format!("/hook{SLACK_PATH}"),
        "the stored URL was kept"
    );
    check_slack(&posted[0].body);

    // A notifier a rule tells is not removed; once the rule stops telling it, it is.
    let reply = put_settings(&d, json!({"notifiers": {"slack": null}}));
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(reply.body["error"]["field"], "notifiers.slack");
    let reply = put_settings(
        &d,
        json!({"notifiers": {"slack": null}, "alerts": [{"signal": "sync_failures", "above": 0, "window": "1h"}]}),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["notifiers"]["slack"], Value::Null);
}

/// What each service answers decides what follows: Slack refusing the payload fails the
/// notification at once (no retries for a message it will never take); PagerDuty's 429 is tried
/// again on the schedule; email goes over TLS from the first byte to a server that wants a login.
#[test]
fn answers_decide_retries_and_email_goes_over_tls() {
    let slack = Receiver::start(|_, _| Answer::Status(400, "invalid_payload"));
    let pagerduty = Receiver::start(|_, index| {
        if index == 0 {
            Answer::Status(429, "slow down")
        } else {
            pagerduty_answer()
        }
    });
    let smtp = SmtpServer::start("tls", true);
    let d = Daemon::start_with(counting_every_second);
    let reply = put_settings(
        &d,
        json!({
            "notifiers": {
                "slack": {"url": format!("{}{SLACK_PATH}", slack.url())},
                "pagerduty": {"routing_key": ROUTING_KEY, "url": format!("{}/v2/enqueue", pagerduty.url())},
                "email": {"url": format!("smtps://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}", smtp.port), "from": "alerts@example.com", "to": ["oncall@example.com"], "ca_file": smtp.ca_file()}
            },
            "alerts": [{"signal": "sync_failures", "above": 0, "window": "1h", "notify": ["email", "pagerduty", "slack"]}]
        }),
    );
    assert_eq!(reply.status, 200, "{}", reply.text);
    fail_a_sync(&d);

    let deliveries = |query: &str| d.get(&format!("{PROD}/deliveries?{query}"), PROD_KEY).body;
    let failed = eventually(WAIT, || {
        let list = deliveries("status=failed");
        (list["total"] == 1).then_some(list)
    });
    let refused = &failed["data"][0];
    assert_eq!(refused["notifier"], "slack");
    assert_eq!(
        refused["attempts"], 1,
        "not retried: Slack will never take it"
    );
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid_payload"),
        "{refused}"
    );
    let delivered = eventually(WAIT, || {
        let list = deliveries("status=delivered");
        (list["total"] == 2).then_some(list)
    });
    let pd = delivered["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["notifier"] == "pagerduty")
        .unwrap();
    assert_eq!(pd["attempts"], 2, "429, then delivered");
    assert_eq!(pagerduty.requests().len(), 2);
    let mail = &smtp.messages()[0];
    assert_eq!(mail["tls"], true);
    assert_eq!(mail["login"], SMTP_USER);
    let id = pd["id"].as_str().unwrap();
    let detail = d.get(&format!("{PROD}/deliveries/{id}"), PROD_KEY).body;
    assert_eq!(detail["attempt_log"][0]["status"], 429);
    assert_eq!(detail["attempt_log"][1]["status"], 202);
    assert_eq!(detail["body"]["event_action"], "trigger");
    assert!(
        detail["body"].get("routing_key").is_none(),
        "the key is not kept with the event"
    );

    // The refused one is replayable: once Slack takes it, a retry delivers it.
    slack.set_behaviour(|_, _| Answer::Status(200, "ok"));
    let id = refused["id"].as_str().unwrap();
    let retried = d.post(&format!("{PROD}/deliveries/{id}/retry"), ADMIN, &json!({}));
    assert_eq!(retried.status, 202, "{}", retried.text);
    eventually(WAIT, || {
        (d.get(&format!("{PROD}/deliveries/{id}"), PROD_KEY).body["status"] == "delivered")
            .then_some(())
    });
    check_slack(&slack.requests().last().unwrap().body);
}
