//! What a third party sends to check a webhook URL before it sends events there, and the answer
//! it wants, per provider (README "Ingress"): Slack's `url_verification` challenge, Microsoft
//! Graph's `validationToken`, and the providers whose check is a GET or a challenge echoed back
//! (Dropbox, Meta's `hub.challenge`, Strava, Asana's `X-Hook-Secret`, monday.com, Smartsheet,
//! Twitch EventSub, Okta event hooks); a HEAD (Trello, Intercom) is a 200 for any provider. Such
//! a request is a handshake, not an event: it is answered here and not recorded.
//!
//! Also how a form-encoded body becomes the JSON payload that is stored and forwarded, as Nango
//! parses it (Slack's interactive `payload=<json>` field is the payload itself).
//!
//! Must not: do I/O. Pure functions of the request, unit-tested below.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// The longest challenge echoed back; a longer one is not a handshake this knows.
pub const MAX_CHALLENGE_BYTES: usize = 8 * 1024;

/// The parts of an ingress request a handshake is recognised by.
#[derive(Debug)]
pub struct Request<'a> {
    /// `GET`, `HEAD` or `POST`.
    pub method: &'a str,
    /// The query parameters, decoded.
    pub query: &'a BTreeMap<String, String>,
    /// Header values by lowercase name.
    pub headers: &'a BTreeMap<String, String>,
    /// The body parsed as JSON (a form body as `form_payload` makes it), if it is JSON.
    pub body: Option<&'a Value>,
}

/// The answer a handshake wants.
#[derive(Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// `text/plain; charset=utf-8` or `application/json`; none for an empty body.
    pub content_type: Option<&'static str>,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    fn text(challenge: &str) -> Answer {
        Answer {
            status: 200,
            content_type: Some("text/plain; charset=utf-8"),
            headers: Vec::new(),
            body: challenge.to_owned(),
        }
    }

    fn json(body: Value) -> Answer {
        Answer {
            status: 200,
            content_type: Some("application/json"),
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    fn empty() -> Answer {
        Answer {
            status: 200,
            content_type: None,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// Providers whose handshake is known, by the provider keys Nango gives them: a provider
/// matches its family when it is one of these names or starts with one followed by `-` or `_`
/// (`microsoft-teams`, `sharepoint-online`, `slack-prod`).
const SLACK: &[&str] = &["slack"];
const MICROSOFT_GRAPH: &[&str] = &[
    "microsoft",
    "outlook",
    "one-drive",
    "onedrive",
    "sharepoint",
    "teams",
];
const DROPBOX: &[&str] = &["dropbox"];
const META: &[&str] = &["facebook", "instagram", "whatsapp", "messenger", "meta"];
const STRAVA: &[&str] = &["strava"];
const ASANA: &[&str] = &["asana"];
const MONDAY: &[&str] = &["monday"];
const SMARTSHEET: &[&str] = &["smartsheet"];
const TWITCH: &[&str] = &["twitch"];
const OKTA: &[&str] = &["okta"];

fn is(provider: &str, family: &[&str]) -> bool {
    let provider = provider.to_ascii_lowercase();
    family.iter().any(|name| {
        provider == *name
            || provider
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['-', '_']))
    })
}

/// The answer `request` wants when it is `provider`'s URL check; `None` when it is an event.
pub fn answer(provider: &str, request: &Request) -> Option<Answer> {
    if request.method == "HEAD" {
        return Some(Answer::empty());
    }
    let query = |name: &str| request.query.get(name).filter(|v| short(v));
    let header = |name: &str| request.headers.get(name).filter(|v| short(v));
    let body = |name: &str| {
        request
            .body
            .and_then(|b| b.get(name))
            .and_then(Value::as_str)
            .filter(|v| short(v))
    };
    let get = request.method == "GET";
    let post = request.method == "POST";
    if is(provider, SLACK) && post && body("type") == Some("url_verification") {
        return body("challenge").map(Answer::text);
    }
    if is(provider, MICROSOFT_GRAPH) {
        if let Some(token) = query("validationToken") {
            return Some(Answer::text(token));
        }
    }
    if is(provider, DROPBOX) && get {
        return query("challenge")
            .map(|c| Answer::text(c).with_header("x-content-type-options", "nosniff"));
    }
    if (is(provider, META) || is(provider, STRAVA)) && get {
        let challenge = query("hub.challenge")?;
        return Some(if is(provider, STRAVA) {
            Answer::json(json!({ "hub.challenge": challenge }))
        } else {
            Answer::text(challenge)
        });
    }
    if is(provider, ASANA) && post {
        return header("x-hook-secret")
            .map(|secret| Answer::empty().with_header("x-hook-secret", secret));
    }
    if is(provider, MONDAY) && post {
        let only_challenge = request
            .body
            .and_then(Value::as_object)
            .is_some_and(|fields| fields.len() == 1);
        if only_challenge {
            return body("challenge").map(|c| Answer::json(json!({ "challenge": c })));
        }
    }
    if is(provider, SMARTSHEET) && post {
        return header("smartsheet-hook-challenge").map(|c| {
            Answer::json(json!({ "smartsheetHookResponse": c }))
                .with_header("smartsheet-hook-response", c)
        });
    }
    if is(provider, TWITCH)
        && post
        && header("twitch-eventsub-message-type").map(String::as_str)
            == Some("webhook_callback_verification")
    {
        return body("challenge").map(Answer::text);
    }
    if is(provider, OKTA) && get {
        return header("x-okta-verification-challenge")
            .map(|c| Answer::json(json!({ "verification": c })));
    }
    None
}

fn short(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_CHALLENGE_BYTES
}

/// A form-encoded body (`application/x-www-form-urlencoded`) as the JSON payload Nango makes of
/// it: one string per field, repeated fields as an array; for Slack, whose interactive requests
/// carry their JSON in a `payload` field, that JSON. `None` when the bytes are not a form.
pub fn form_payload(provider: &str, bytes: &[u8]) -> Option<Value> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(bytes).ok()?;
    let mut fields = Map::new();
    for (name, value) in pairs {
        match fields.get_mut(&name) {
            None => {
                fields.insert(name, Value::String(value));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            Some(first) => {
                let first = first.take();
                fields.insert(name, Value::Array(vec![first, Value::String(value)]));
            }
        }
    }
    if is(provider, SLACK) {
        let inner = fields
            .get("payload")
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .filter(Value::is_object);
        if let Some(inner) = inner {
            return Some(inner);
        }
    }
    Some(Value::Object(fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(
        provider: &str,
        method: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Option<Answer> {
        let query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        answer(
            provider,
            &Request {
                method,
                query: &query,
                headers: &headers,
                body: body.as_ref(),
            },
        )
    }

    #[test]
    fn each_provider_gets_its_answer() {
        let slack = json!({"token": "t", "challenge": "3eZbrw1aB", "type": "url_verification"});
        let a = ask("slack-prod", "POST", &[], &[], Some(slack.clone())).unwrap();
        assert_eq!((a.status, a.body.as_str()), (200, "3eZbrw1aB"));
        assert_eq!(a.content_type, Some("text/plain; charset=utf-8"));
        assert_eq!(
            ask("github", "POST", &[], &[], Some(slack)),
            None,
            "only Slack's"
        );

        let a = ask(
            "microsoft-teams",
            "POST",
            &[("validationToken", "Validation: Token")],
            &[],
            None,
        )
        .unwrap();
        assert_eq!(a.body, "Validation: Token");
        assert_eq!(
            ask("microsoft", "POST", &[], &[], Some(json!({"value": []}))),
            None
        );

        let a = ask("dropbox", "GET", &[("challenge", "abc")], &[], None).unwrap();
        assert_eq!(a.body, "abc");
        assert_eq!(
            a.headers,
            [("x-content-type-options", "nosniff".to_owned())]
        );

        let meta = [
            ("hub.mode", "subscribe"),
            ("hub.challenge", "1158201444"),
            ("hub.verify_token", "v"),
        ];
        assert_eq!(
            ask("whatsapp", "GET", &meta, &[], None).unwrap().body,
            "1158201444"
        );
        assert_eq!(
            ask("strava", "GET", &meta, &[], None).unwrap().body,
            r#"{"hub.challenge":"1158201444"}"#
        );

        let a = ask("asana", "POST", &[], &[("x-hook-secret", "s3cr3t")], None).unwrap();
        assert_eq!(
            (a.body.as_str(), a.headers.clone()),
            ("", vec![("x-hook-secret", "s3cr3t".to_owned())])
        );

        let a = ask("monday", "POST", &[], &[], Some(json!({"challenge": "c1"}))).unwrap();
        assert_eq!(a.body, r#"{"challenge":"c1"}"#);
        assert_eq!(
            ask(
                "monday",
                "POST",
                &[],
                &[],
                Some(json!({"challenge": "c1", "event": {}}))
            ),
            None,
            "an event that happens to carry a challenge key is an event"
        );

        let a = ask(
            "smartsheet",
            "POST",
            &[],
            &[("smartsheet-hook-challenge", "d5e")],
            Some(json!({"challenge": "d5e", "webhookId": 1})),
        )
        .unwrap();
        assert_eq!(a.body, r#"{"smartsheetHookResponse":"d5e"}"#);
        assert_eq!(a.headers, [("smartsheet-hook-response", "d5e".to_owned())]);

        let twitch = [(
            "twitch-eventsub-message-type",
            "webhook_callback_verification",
        )];
        assert_eq!(
            ask(
                "twitch",
                "POST",
                &[],
                &twitch,
                Some(json!({"challenge": "pogchamp"}))
            )
            .unwrap()
            .body,
            "pogchamp"
        );
        assert_eq!(
            ask("twitch", "POST", &[], &[], Some(json!({"challenge": "x"}))),
            None
        );

        let a = ask(
            "okta",
            "GET",
            &[],
            &[("x-okta-verification-challenge", "v1")],
            None,
        )
        .unwrap();
        assert_eq!(a.body, r#"{"verification":"v1"}"#);

        assert_eq!(ask("anything", "HEAD", &[], &[], None).unwrap().status, 200);
        assert_eq!(
            ask(
                "slacker",
                "POST",
                &[],
                &[],
                Some(json!({"type": "url_verification", "challenge": "x"}))
            ),
            None,
            "a prefix is a family only before - or _"
        );
        let long = "x".repeat(MAX_CHALLENGE_BYTES + 1);
        assert_eq!(
            ask("dropbox", "GET", &[("challenge", &long)], &[], None),
            None
        );
    }

    #[test]
    fn forms_become_json() {
        assert_eq!(
            form_payload("twilio", b"From=%2B15551234&Body=hi+there&Media=a&Media=b").unwrap(),
            json!({"From": "+15551234", "Body": "hi there", "Media": ["a", "b"]})
        );
        let interactive = format!(
            "payload={}",
            urlencoding::encode(r#"{"type":"block_actions","team":{"id":"T1"}}"#)
        );
        assert_eq!(
            form_payload("slack", interactive.as_bytes()).unwrap(),
            json!({"type": "block_actions", "team": {"id": "T1"}})
        );
        assert_eq!(
            form_payload("slack", b"command=%2Fdeploy&team_id=T1").unwrap(),
            json!({"command": "/deploy", "team_id": "T1"}),
            "a slash command has no payload field"
        );
    }
}
