//! What an alert tells people, per notifier, made when the rule crosses its threshold and kept in
//! the job (so a retry sends the same words): a Slack message (`text` and Block Kit `blocks`), a
//! PagerDuty Events API v2 event (`trigger` or `resolve`, one `dedup_key` per rule so the
//! incident closes itself), an email (subject, plain text and HTML with the same content). Each
//! says the rule, the count against the threshold, the window, the top integrations and a link
//! that opens the view over the window.
//!
//! Must not: do I/O, or hold a secret: the Slack URL, the routing key and the SMTP login are the
//! environment's settings, added when sending.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::model::alert::Observation;
use crate::model::notifier::PagerDutySeverity;
use crate::model::EventType;

/// Slack's limits: a header's text, a section's text, a field's text, a button's URL.
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_SECTION_CHARS: usize = 3000;
const SLACK_FIELD_CHARS: usize = 2000;
const SLACK_URL_CHARS: usize = 3000;
/// PagerDuty's limits: `payload.summary` and `dedup_key`.
const PAGERDUTY_SUMMARY_CHARS: usize = 1024;
const PAGERDUTY_DEDUP_CHARS: usize = 255;

/// The words every notifier shares.
struct Words<'a> {
    firing: bool,
    environment: &'a str,
    observed: &'a Observation,
    window: String,
}

impl<'a> Words<'a> {
    fn new(kind: EventType, environment: &'a str, observed: &'a Observation) -> Words<'a> {
        Words {
            firing: kind == EventType::AlertTriggered,
            environment,
            observed,
            window: serde_json::to_value(observed.rule.window)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        }
    }

    /// `Firing: Grant failures` or `Resolved: Grant failures`.
    fn headline(&self) -> String {
        let state = if self.firing { "Firing" } else { "Resolved" };
        format!("{state}: {}", self.observed.view_name)
    }

    /// `3 operations in the last 1h, above the threshold of 1`.
    fn count(&self) -> String {
        let o = self.observed;
        let noun = match (o.counts, o.count) {
            ("messages", 1) => "message",
            ("messages", _) => "messages",
            (_, 1) => "operation",
            _ => "operations",
        };
        let against = if self.firing {
            format!("above the threshold of {}", o.rule.above)
        } else {
            format!("back at or under the threshold of {}", o.rule.above)
        };
        format!("{} {noun} in the last {}, {against}", o.count, self.window)
    }

    fn scope(&self) -> String {
        match &self.observed.rule.integration {
            Some(i) => format!("integration {i}"),
            None => "every integration".to_owned(),
        }
    }

    fn summary(&self) -> String {
        format!(
            "[opslog {}] {} — {} ({})",
            self.environment,
            self.headline(),
            self.count(),
            self.scope()
        )
    }

    fn span(&self) -> String {
        format!("{} to {}", self.observed.from, self.observed.to)
    }
}

/// The Slack message of an alert event (`kind`): `text` (for notifications and clients without
/// blocks) and Block Kit `blocks` with the same content.
pub fn slack_message(kind: EventType, environment: &str, observed: &Observation) -> String {
    let w = Words::new(kind, environment, observed);
    let icon = if w.firing { "🔴" } else { "✅" };
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {"type": "plain_text", "text": cut(&format!("{icon} {}", w.headline()), SLACK_HEADER_CHARS), "emoji": true},
        }),
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&format!("*{}*", escape_mrkdwn(&w.count())), SLACK_SECTION_CHARS)},
            "fields": [
                {"type": "mrkdwn", "text": cut(&format!("*Environment*\n{}", escape_mrkdwn(environment)), SLACK_FIELD_CHARS)},
                {"type": "mrkdwn", "text": cut(&format!("*Counts*\n{}", escape_mrkdwn(&w.scope())), SLACK_FIELD_CHARS)},
                {"type": "mrkdwn", "text": cut(&format!("*Window*\n{}", w.span()), SLACK_FIELD_CHARS)},
                {"type": "mrkdwn", "text": cut(&format!("*View*\n{}", escape_mrkdwn(observed.rule.view_id())), SLACK_FIELD_CHARS)},
            ],
        }),
    ];
    if !observed.top_integrations.is_empty() {
        let lines: Vec<String> = observed
            .top_integrations
            .iter()
            .map(|(integration, count)| format!("• {}: {count}", escape_mrkdwn(integration)))
            .collect();
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&format!("*Top integrations*\n{}", lines.join("\n")), SLACK_SECTION_CHARS)},
        }));
    }
    if observed.link.chars().count() <= SLACK_URL_CHARS {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in opslog"},
                "url": observed.link,
                "action_id": "open_in_opslog",
            }],
        }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": cut(&format!("Alert rule `{}` · opslog", escape_mrkdwn(&observed.rule.key())), SLACK_SECTION_CHARS)}],
    }));
    json!({
        "text": cut(&format!("{icon} {}", w.summary()), SLACK_SECTION_CHARS),
        "blocks": blocks,
    })
    .to_string()
}

/// The PagerDuty `dedup_key` of a rule: the same for its `trigger` and its `resolve`, so
/// resolving closes the incident firing opened.
pub fn dedup_key(environment: &str, rule_key: &str) -> String {
    let key = format!("opslog/{environment}/{rule_key}");
    if key.chars().count() <= PAGERDUTY_DEDUP_CHARS {
        return key;
    }
    // Too long for PagerDuty: a digest stays stable and distinct.
    format!(
        "opslog/{environment}/{}",
        hex::encode(Sha256::digest(rule_key.as_bytes()))
    )
}

/// The PagerDuty Events API v2 event of an alert event (`kind`), without `routing_key` (the
/// sink adds the environment's when sending): `trigger` with a payload when firing, `resolve`
/// with the same `dedup_key` when resolving.
pub fn pagerduty_event(
    kind: EventType,
    environment: &str,
    observed: &Observation,
    severity: PagerDutySeverity,
) -> String {
    let w = Words::new(kind, environment, observed);
    let dedup_key = dedup_key(environment, &observed.rule.key());
    if !w.firing {
        return json!({"event_action": "resolve", "dedup_key": dedup_key}).to_string();
    }
    let rule = &observed.rule;
    let top: Vec<Value> = observed
        .top_integrations
        .iter()
        .map(|(integration, count)| json!({"integration": integration, "count": count}))
        .collect();
    let mut payload = json!({
        "summary": cut(&w.summary(), PAGERDUTY_SUMMARY_CHARS),
        "source": format!("opslog/{environment}"),
        "severity": severity.as_str(),
        "timestamp": observed.to,
        "group": environment,
        "class": rule.view_id(),
        "custom_details": {
            "rule": rule.key(),
            "view": rule.view_id(),
            "title": observed.view_name,
            "counts": observed.counts,
            "count": observed.count,
            "above": rule.above,
            "window": w.window,
            "from": observed.from,
            "to": observed.to,
            "integration": rule.integration,
            "top_integrations": top,
        },
    });
    if let Some(integration) = &rule.integration {
        payload["component"] = json!(integration);
    }
    json!({
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": payload,
        "client": "opslog",
        "client_url": observed.link,
        "links": [{"href": observed.link, "text": "Open in opslog"}],
    })
    .to_string()
}

/// An alert's email, as the job keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailContent {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The email of an alert event (`kind`): the same content as plain text and as HTML.
pub fn email(kind: EventType, environment: &str, observed: &Observation) -> EmailContent {
    let w = Words::new(kind, environment, observed);
    let subject = format!("[opslog {environment}] {} — {}", w.headline(), w.count());
    let top_text: String = observed
        .top_integrations
        .iter()
        .map(|(integration, count)| format!("  {integration}: {count}\n"))
        .collect();
    let mut text = format!(
        "{}\n\n{} ({}), environment {environment}.\nWindow: {}\n",
        w.headline(),
        w.count(),
        w.scope(),
        w.span()
    );
    if !top_text.is_empty() {
        text.push_str(&format!("\nTop integrations:\n{top_text}"));
    }
    text.push_str(&format!(
        "\nOpen in opslog: {}\n\nAlert rule {} · opslog\n",
        observed.link,
        observed.rule.key()
    ));
    let top_html: String = observed
        .top_integrations
        .iter()
        .map(|(integration, count)| format!("<li>{}: {count}</li>", escape_html(integration)))
        .collect();
    let mut html = format!(
        "<!doctype html><html><body><h2>{}</h2><p><strong>{}</strong> ({}), environment {}.<br>Window: {}</p>",
        escape_html(&w.headline()),
        escape_html(&w.count()),
        escape_html(&w.scope()),
        escape_html(environment),
        escape_html(&w.span()),
    );
    if !top_html.is_empty() {
        html.push_str(&format!("<p>Top integrations:</p><ul>{top_html}</ul>"));
    }
    html.push_str(&format!(
        "<p><a href=\"{}\">Open in opslog</a></p><p style=\"color:#6b7385\">Alert rule {} · opslog</p></body></html>",
        escape_html(&observed.link),
        escape_html(&observed.rule.key()),
    ));
    EmailContent {
        subject,
        text,
        html,
    }
}

/// At most `max` characters of `text`, marked with … when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Slack's mrkdwn control characters as their entities.
fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn observed(count: u64) -> Observation {
        Observation {
            rule: serde_json::from_value(json!({
                "view": "grant_failures", "above": 1, "window": "1h", "notify": ["slack"]
            }))
            .unwrap(),
            view_name: "Grant <failures> & co".into(),
            counts: "operations",
            count,
            from: Timestamp(0),
            to: Timestamp(3_600_000),
            link: "http://127.0.0.1:7400/?env=prod&page=logs&view=grant_failures".into(),
            top_integrations: vec![("salesforce".into(), 2), ("git<hub>".into(), 1)],
        }
    }

    #[test]
    fn slack_messages_have_text_and_blocks_with_the_count_and_the_link() {
        let body: Value = serde_json::from_str(&slack_message(
            EventType::AlertTriggered,
            "prod",
            &observed(3),
        ))
        .unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("Firing: Grant <failures> & co"), "{text}");
        assert!(text.contains("3 operations in the last 1h, above the threshold of 1"));
        let blocks = body["blocks"].as_array().unwrap();
        assert_eq!(blocks[0]["type"], "header");
        assert!(blocks[1]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("*3 operations"));
        let top = blocks[2]["text"]["text"].as_str().unwrap();
        assert!(
            top.contains("• salesforce: 2") && top.contains("git&lt;hub&gt;: 1"),
            "{top}"
        );
        assert_eq!(
            blocks[3]["elements"][0]["url"],
            "http://127.0.0.1:7400/?env=prod&page=logs&view=grant_failures"
        );
        let resolved: Value = serde_json::from_str(&slack_message(
            EventType::AlertResolved,
            "prod",
            &observed(0),
        ))
        .unwrap();
        assert!(resolved["text"].as_str().unwrap().contains("Resolved"));
        let long = Observation {
            view_name: "x".repeat(400),
            ..observed(3)
        };
        let body: Value =
            serde_json::from_str(&slack_message(EventType::AlertTriggered, "prod", &long)).unwrap();
        assert_eq!(
            body["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            SLACK_HEADER_CHARS
        );
    }

    #[test]
    fn pagerduty_triggers_and_resolves_with_one_dedup_key() {
        let trigger: Value = serde_json::from_str(&pagerduty_event(
            EventType::AlertTriggered,
            "prod",
            &observed(3),
            PagerDutySeverity::Critical,
        ))
        .unwrap();
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["dedup_key"], "opslog/prod/grant_failures");
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(trigger["payload"]["source"], "opslog/prod");
        assert!(trigger["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("[opslog prod] Firing: Grant <failures> & co — 3 operations"));
        assert!(trigger.get("routing_key").is_none(), "added when sent");
        let resolve: Value = serde_json::from_str(&pagerduty_event(
            EventType::AlertResolved,
            "prod",
            &observed(0),
            PagerDutySeverity::Critical,
        ))
        .unwrap();
        assert_eq!(
            resolve,
            json!({"event_action": "resolve", "dedup_key": "opslog/prod/grant_failures"})
        );
        let long = dedup_key("prod", &format!("v/{}", "i".repeat(300)));
        assert!(long.len() <= PAGERDUTY_DEDUP_CHARS && long.starts_with("opslog/prod/"));
        assert_eq!(long, dedup_key("prod", &format!("v/{}", "i".repeat(300))));
    }

    #[test]
    fn emails_say_the_same_in_text_and_html() {
        let mail = email(EventType::AlertTriggered, "prod", &observed(3));
        assert_eq!(
            mail.subject,
            "[opslog prod] Firing: Grant <failures> & co — 3 operations in the last 1h, above the threshold of 1"
        );
        for part in [&mail.text, &mail.html] {
            assert!(part.contains("salesforce: 2"), "{part}");
            assert!(part.contains("every integration"), "{part}");
        }
        assert!(mail.text.contains("Open in opslog: http://127.0.0.1:7400/"));
        assert!(mail.html.contains("Grant &lt;failures&gt; &amp; co"));
        assert!(mail.html.contains("git&lt;hub&gt;: 1"));
        assert!(!mail.html.contains("<failures>"));
    }
}
