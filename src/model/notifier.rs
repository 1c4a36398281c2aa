//! Notifiers: where alert rules reach people besides the signed webhooks — a Slack incoming
//! webhook, a PagerDuty Events API v2 integration, an SMTP server. One struct per notifier
//! serves the config file (`[environments.<env>.notifiers.<kind>]`), `PUT /settings` and the
//! `notifiers` settings row in redb. Their checks are `config::notifiers`'; sending is
//! `dispatch`'s.
//!
//! Must not: depend on anything above `model`, or let a secret (the Slack URL's path, the
//! routing key, the SMTP password) reach `Debug` output: these types print it masked.

use std::fmt;

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::secrets::mask;

/// PagerDuty's Events API v2 endpoint, where `pagerduty.url` points unless set.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A Slack incoming webhook (`https://hooks.slack.com/services/…`): a secret URL.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackNotifier {
    /// The incoming webhook URL; its path is the secret (shown masked: sending the masked value
    /// back keeps the stored one).
    #[schema(min_length = 1, max_length = 2048)]
    pub url: String,
}

/// The urgency PagerDuty gives the events (`payload.severity`).
/// The declaration order is part of the stored settings format: append, never reorder.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Encode,
    Decode,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PagerDutySeverity {
    Critical,
    #[default]
    Error,
    Warning,
    Info,
}

impl PagerDutySeverity {
    pub const ALL: [PagerDutySeverity; 4] = [
        PagerDutySeverity::Critical,
        PagerDutySeverity::Error,
        PagerDutySeverity::Warning,
        PagerDutySeverity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PagerDutySeverity::Critical => "critical",
            PagerDutySeverity::Error => "error",
            PagerDutySeverity::Warning => "warning",
            PagerDutySeverity::Info => "info",
        }
    }
}

/// A PagerDuty service's Events API v2 integration: `trigger` when a rule fires, `resolve`
/// with the same `dedup_key` when it resolves, so incidents close by themselves.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyNotifier {
    /// The integration key of the service (shown masked).
    #[schema(min_length = 8, max_length = 128)]
    pub routing_key: String,
    /// Where events are posted; default `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `payload.severity` of the events: critical, error (default), warning or info.
    #[serde(default)]
    pub severity: PagerDutySeverity,
}

impl PagerDutyNotifier {
    pub fn events_url(&self) -> &str {
        self.url.as_deref().unwrap_or(PAGERDUTY_EVENTS_URL)
    }
}

/// Email over SMTP: plain text and HTML parts with the same content, to every address of `to`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Encode, Decode, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailNotifier {
    /// `smtp://[user[:password]@]host[:port]` (STARTTLS required; port 587 by default;
    /// `?tls=none` for a plain connection), or `smtps://…` (TLS from the start; port 465).
    /// The password is shown masked.
    #[schema(min_length = 1, max_length = 2048)]
    pub url: String,
    /// The sender, `alerts@example.com` or `opslog <alerts@example.com>`.
    #[schema(min_length = 3, max_length = 320)]
    pub from: String,
    /// The recipients (1 to 20).
    #[schema(min_items = 1, max_items = 20)]
    pub to: Vec<String>,
    /// A PEM file of certificates to trust besides the public roots (a private CA's, or the
    /// server's own self-signed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// An SMTP URL taken apart: where to connect, how, and as whom.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "(masked)"))
            .finish()
    }
}

/// How an SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain, then STARTTLS before anything else (refused if the server lacks it).
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp://…?tls=none`: never encrypted (a relay on the same host or network).
    None,
}

impl SmtpUrl {
    /// Parses `text`; the error says what is wrong and what is expected.
    pub fn parse(text: &str) -> Result<SmtpUrl, String> {
        const EXPECTED: &str = "write smtp://user:password@host:587 (STARTTLS), smtps://user:password@host:465 (TLS) or smtp://host:25?tls=none (plain)";
        let url = url::Url::parse(text.trim())
            .map_err(|e| format!("is not an SMTP URL ({e}); {EXPECTED}"))?;
        let (mut security, default_port) = match url.scheme() {
            "smtp" => (SmtpSecurity::StartTls, 587),
            "smtps" => (SmtpSecurity::Tls, 465),
            other => return Err(format!("has scheme `{other}`; {EXPECTED}")),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(format!("has no host; {EXPECTED}")),
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            return Err(format!("has a path or fragment; {EXPECTED}"));
        }
        for (name, value) in url.query_pairs() {
            match (name.as_ref(), value.as_ref()) {
                ("tls", "none") if security == SmtpSecurity::StartTls => {
                    security = SmtpSecurity::None
                }
                ("tls", "starttls") if security == SmtpSecurity::StartTls => {}
                _ => {
                    return Err(format!(
                        "has `{name}={value}`; the only option is tls=none (or tls=starttls, the default) on smtp://"
                    ))
                }
            }
        }
        let decode = |s: &str| {
            urlencoding::decode(s)
                .map(|d| d.into_owned())
                .map_err(|_| "has a user or password that is not UTF-8 once decoded".to_owned())
        };
        let user = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?;
        if password.is_some() && user.is_none() {
            return Err(format!("has a password without a user; {EXPECTED}"));
        }
        Ok(SmtpUrl {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            user,
            password,
        })
    }
}

/// `url` with the password hidden (the rest as written).
pub fn mask_smtp_url(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("(masked)"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => mask(url),
    }
}

/// `url` with its path and query hidden, where a Slack webhook keeps its secret.
pub fn mask_secret_path(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(parsed) => {
            let rest = &url.trim()[parsed[..url::Position::BeforePath].len()..];
            let rest = rest.trim_start_matches('/');
            format!("{}/{}", &parsed[..url::Position::BeforePath], mask(rest))
        }
        Err(_) => mask(url),
    }
}

impl fmt::Debug for SlackNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackNotifier")
            .field("url", &mask_secret_path(&self.url))
            .finish()
    }
}

impl fmt::Debug for PagerDutyNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDutyNotifier")
            .field("routing_key", &mask(&self.routing_key))
            .field("url", &self.url)
            .field("severity", &self.severity)
            .finish()
    }
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("url", &mask_smtp_url(&self.url))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The notifiers of one environment: the `notifiers` settings row (what `PUT /settings` set),
/// or the config file's `[environments.<env>.notifiers]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(deny_unknown_fields, default)]
pub struct Notifiers {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackNotifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerDutyNotifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailNotifier>,
}

impl Notifiers {
    /// The names of the notifiers set (`slack`, `pagerduty`, `email`).
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.slack.is_some() {
            names.push("slack");
        }
        if self.pagerduty.is_some() {
            names.push("pagerduty");
        }
        if self.email.is_some() {
            names.push("email");
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_say_how_to_connect_and_refuse_what_they_cannot_mean() {
        let url = SmtpUrl::parse("smtp://alerts%40example.com:p%40ss@mail.example.com").unwrap();
        assert_eq!(url.host, "mail.example.com");
        assert_eq!(url.port, 587);
        assert_eq!(url.security, SmtpSecurity::StartTls);
        assert_eq!(url.user.as_deref(), Some("alerts@example.com"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert!(!format!("{url:?}").contains("p@ss"), "masked in Debug");
        let tls = SmtpUrl::parse("smtps://[::1]:2465").unwrap();
        assert_eq!(
            (tls.host.as_str(), tls.port, tls.security),
            ("::1", 2465, SmtpSecurity::Tls)
        );
        let plain = SmtpUrl::parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!(plain.security, SmtpSecurity::None);
        for bad in [
            "mail.example.com",
            "http://mail.example.com",
            "smtp://",
            "smtp://mail.example.com/inbox",
            "smtps://mail.example.com?tls=none",
            "smtp://mail.example.com?ssl=1",
            "smtp://:secret@mail.example.com",
            "smtp://mail.example.com:99999",
        ] {
            assert!(SmtpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_are_masked_in_views_and_debug_output() {
        assert_eq!(
            mask_smtp_url("smtp://alerts:hunter2@mail.example.com:587"),
            "smtp://alerts:(masked)@mail.example.com:587"
        );
        assert_eq!(
            mask_smtp_url("smtp://mail.example.com"),
            "smtp://mail.example.com"
        );
        let slack = "https://hooks.slack.com/services/T000/B000/XXXXXXXX";
        let masked = mask_secret_path(slack);
        assert_eq!(masked, "https://hooks.slack.com/serv…(masked)");
        let notifiers = Notifiers {
            slack: Some(SlackNotifier { url: slack.into() }),
            pagerduty: Some(PagerDutyNotifier {
                routing_key: "R0123456789abcdef0123456789abcde".into(),
                url: None,
                severity: PagerDutySeverity::Critical,
            }),
            email: Some(EmailNotifier {
                url: "smtps://a:hunter2@mail.example.com".into(),
                from: "opslog <alerts@example.com>".into(),
                to: vec!["oncall@example.com".into()],
                ca_file: None,
            }),
        };
        let debug = format!("{notifiers:?}");
        for secret in ["XXXXXXXX", "456789abcdef", "hunter2"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(notifiers.names(), ["slack", "pagerduty", "email"]);
        assert_eq!(
            notifiers.pagerduty.unwrap().events_url(),
            PAGERDUTY_EVENTS_URL
        );
    }
}
