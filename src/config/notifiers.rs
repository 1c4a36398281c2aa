//! The bounds of a `notifiers` section, shared by the config file
//! (`[environments.<env>.notifiers.*]`) and `PUT /settings`: URLs as webhooks take them (and where
//! the destination policy lets them point), an SMTP URL that says how to connect, mailboxes that
//! parse, a CA file that holds certificates.
//!
//! Must not: depend on anything above `model`, or put a secret in a message (URLs are shown
//! masked).

use std::str::FromStr;

use lettre::message::Mailbox;

use super::webhooks::{check_destination, check_url};
use crate::destination::DestinationPolicy;
use crate::model::notifier::{
    mask_secret_path, mask_smtp_url, EmailNotifier, Notifiers, PagerDutyNotifier, SlackNotifier,
    SmtpUrl,
};
use crate::model::settings::SettingsError;

/// The most recipients of one email notifier.
pub const MAX_RECIPIENTS: usize = 20;

/// Checks every notifier set in `notifiers`; fields are named `notifiers.<kind>.<field>`.
pub fn check_notifiers(
    notifiers: &Notifiers,
    destinations: &DestinationPolicy,
) -> Result<(), SettingsError> {
    if let Some(slack) = &notifiers.slack {
        check_slack(slack, destinations)?;
    }
    if let Some(pagerduty) = &notifiers.pagerduty {
        check_pagerduty(pagerduty, destinations)?;
    }
    if let Some(email) = &notifiers.email {
        check_email(email, destinations)?;
    }
    Ok(())
}

/// A URL as webhook URLs are checked, the message naming it masked by `masked`.
fn check_http_url(
    field: &str,
    url: &str,
    masked: &str,
    destinations: &DestinationPolicy,
) -> Result<(), SettingsError> {
    check_url(url, false).map_err(|m| SettingsError::invalid(field, m.replace(url, masked)))?;
    check_destination(field, url, destinations)
}

fn check_slack(
    slack: &SlackNotifier,
    destinations: &DestinationPolicy,
) -> Result<(), SettingsError> {
    let field = "notifiers.slack.url";
    check_http_url(
        field,
        &slack.url,
        &mask_secret_path(&slack.url),
        destinations,
    )
}

fn check_pagerduty(
    pagerduty: &PagerDutyNotifier,
    destinations: &DestinationPolicy,
) -> Result<(), SettingsError> {
    let key = &pagerduty.routing_key;
    if !(8..=128).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SettingsError::invalid(
            "notifiers.pagerduty.routing_key",
            "must be the integration key of a PagerDuty service's Events API v2 integration (8-128 letters and digits, usually 32)",
        ));
    }
    let url = pagerduty.events_url();
    check_http_url("notifiers.pagerduty.url", url, url, destinations)
}

fn check_email(
    email: &EmailNotifier,
    destinations: &DestinationPolicy,
) -> Result<(), SettingsError> {
    let field = "notifiers.email.url";
    let masked = mask_smtp_url(&email.url);
    if email.url.len() > 2048 {
        return Err(SettingsError::invalid(
            field,
            "is longer than 2048 characters",
        ));
    }
    let smtp = SmtpUrl::parse(&email.url)
        .map_err(|m| SettingsError::invalid(field, format!("`{masked}` {m}")))?;
    destinations
        .check_host(&smtp.host)
        .map_err(|refused| SettingsError::DestinationRefused {
            field: field.to_owned(),
            refused,
        })?;
    mailbox("notifiers.email.from", &email.from)?;
    if email.to.is_empty() || email.to.len() > MAX_RECIPIENTS {
        return Err(SettingsError::invalid(
            "notifiers.email.to",
            format!("must list 1 to {MAX_RECIPIENTS} addresses"),
        ));
    }
    for (i, to) in email.to.iter().enumerate() {
        mailbox(&format!("notifiers.email.to[{i}]"), to)?;
    }
    if let Some(path) = &email.ca_file {
        trusted_certificates(path)
            .map_err(|m| SettingsError::invalid("notifiers.email.ca_file", m))?;
    }
    Ok(())
}

/// `alerts@example.com` or `Name <alerts@example.com>`.
pub fn mailbox(field: &str, text: &str) -> Result<Mailbox, SettingsError> {
    Mailbox::from_str(text.trim()).map_err(|e| {
        SettingsError::invalid(
            field,
            format!("`{text}` is not an email address ({e}); write alerts@example.com or `opslog <alerts@example.com>`"),
        )
    })
}

/// The certificates of the PEM file at `path`; the error says why there are none.
pub fn trusted_certificates(
    path: &str,
) -> Result<lettre::transport::smtp::client::Certificate, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "`{path}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    lettre::transport::smtp::client::Certificate::from_pem(&pem)
        .map_err(|e| format!("`{path}` holds a certificate that does not parse: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::notifier::PagerDutySeverity;

    fn all_set() -> Notifiers {
        Notifiers {
            slack: Some(SlackNotifier {
                url: "https://hooks.slack.com/services/T000/B000/XXXX".into(),
            }),
            pagerduty: Some(PagerDutyNotifier {
                routing_key: "R0123456789abcdef0123456789abcde".into(),
                url: None,
                severity: PagerDutySeverity::Error,
            }),
            email: Some(EmailNotifier {
                url: "smtp://alerts:hunter2@mail.example.com".into(),
                from: "opslog <alerts@example.com>".into(),
                to: vec!["oncall@example.com".into()],
                ca_file: None,
            }),
        }
    }

    /// A change that spoils one field.
    type Spoil = Box<dyn Fn(&mut Notifiers)>;

    #[test]
    fn each_field_is_checked_and_named_without_its_secret() {
        let policy = DestinationPolicy::default();
        check_notifiers(&all_set(), &policy).unwrap();
        let cases: Vec<(Spoil, &str)> = vec![
            (
                Box::new(|n| {
                    n.slack.as_mut().unwrap().url =
                        "http://hooks.example.com/services/SECRETPATH".into()
                }),
                "notifiers.slack.url",
            ),
            (
                Box::new(|n| {
                    n.slack.as_mut().unwrap().url =
                        "https://169.254.169.254/services/SECRETPATH".into()
                }),
                "notifiers.slack.url",
            ),
            (
                Box::new(|n| n.pagerduty.as_mut().unwrap().routing_key = "short".into()),
                "notifiers.pagerduty.routing_key",
            ),
            (
                Box::new(|n| {
                    n.pagerduty.as_mut().unwrap().url = Some("ftp://events.example.com".into())
                }),
                "notifiers.pagerduty.url",
            ),
            (
                Box::new(|n| {
                    n.email.as_mut().unwrap().url =
                        "smtp://alerts:hunter2@mail.example.com/x".into()
                }),
                "notifiers.email.url",
            ),
            (
                Box::new(|n| {
                    n.email.as_mut().unwrap().url = "smtp://alerts:hunter2@10.0.0.5".into()
                }),
                "notifiers.email.url",
            ),
            (
                Box::new(|n| n.email.as_mut().unwrap().from = "not an address".into()),
                "notifiers.email.from",
            ),
            (
                Box::new(|n| n.email.as_mut().unwrap().to = vec![]),
                "notifiers.email.to",
            ),
            (
                Box::new(|n| n.email.as_mut().unwrap().to.push("@nowhere".into())),
                "notifiers.email.to[1]",
            ),
            (
                Box::new(|n| {
                    n.email.as_mut().unwrap().ca_file = Some("/nonexistent/ca.pem".into())
                }),
                "notifiers.email.ca_file",
            ),
        ];
        for (change, field) in cases {
            let mut notifiers = all_set();
            change(&mut notifiers);
            let err = check_notifiers(&notifiers, &policy).unwrap_err();
            assert_eq!(err.field(), field, "{err}");
            let text = err.to_string();
            assert!(
                !text.contains("SECRETPATH") && !text.contains("hunter2"),
                "{text}"
            );
        }
    }
}
