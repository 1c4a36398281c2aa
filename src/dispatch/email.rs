//! The email sink ([`EmailSink`]): an alert's email (`JobKind::Email`: subject, plain text and
//! HTML, made when the rule crossed) sent with lettre over the environment's SMTP server as it
//! is set when sending: STARTTLS required (`smtp://`), TLS from the start (`smtps://`) or plain
//! (`?tls=none`), with its login if it has one, certificates checked against the public roots and
//! `ca_file`. The server's name is resolved here and every address checked against the
//! destination policy; lettre then connects to the checked address (the name stays the TLS
//! server name), so a name cannot move into a refused range between the check and the connection.
//! A transient SMTP reply (4xx) or no answer is tried again on the environment's retry schedule;
//! a permanent one (5xx) fails the email at once.
//!
//! Must not: run on the async runtime, or record the password.

use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::notifier::{not_set_up, recorded, settings_of, Answered};
use super::sink::{not_sent, Sink, SinkDeps};
use crate::config::notifiers::{mailbox, trusted_certificates};
use crate::model::job::{Job, JobKind};
use crate::model::notifier::{EmailNotifier, SmtpSecurity, SmtpUrl};
use crate::model::{Headers, Timestamp};
use crate::outbox::notify::EmailContent;
use crate::outbox::policy::NotifierAnswer;
use crate::write::RecordedAttempt;

pub struct EmailSink {
    deps: SinkDeps,
}

impl EmailSink {
    pub fn new(deps: &SinkDeps) -> EmailSink {
        EmailSink { deps: deps.clone() }
    }

    fn attempt_one(&self, job: &Job) -> RecordedAttempt {
        let JobKind::Email(mail) = &job.kind else {
            return not_sent(job, job.kind.destination(), "not an email".into());
        };
        let settings = match settings_of(&self.deps, job, &mail.url) {
            Ok(settings) => settings,
            Err(attempt) => return *attempt,
        };
        let Some(email) = &settings.notifiers.current.email else {
            return not_set_up(job, &mail.url, "email");
        };
        let content: EmailContent = match serde_json::from_str(&mail.body) {
            Ok(content) => content,
            Err(e) => {
                return not_sent(
                    job,
                    &mail.url,
                    format!("the stored email does not read: {e}"),
                )
            }
        };
        let started_at = Timestamp::now();
        let started = Instant::now();
        let answered = match self.send(email, &content, settings.webhooks.timeout) {
            Ok(code) => Answered {
                answer: NotifierAnswer::Delivered,
                status: Some(code),
                error: None,
                excerpt: None,
                duration: started.elapsed(),
            },
            Err(failed) => Answered {
                answer: failed.answer,
                status: failed.code,
                error: Some(failed.reason),
                excerpt: None,
                duration: started.elapsed(),
            },
        };
        let headers: Headers = [
            ("from".to_owned(), email.from.clone()),
            ("to".to_owned(), email.to.join(", ")),
            ("subject".to_owned(), content.subject.clone()),
        ]
        .into();
        recorded(
            &self.deps, &settings, job, mail, started_at, answered, headers,
        )
    }

    /// Sends `content` to every recipient; answers the server's reply code.
    fn send(
        &self,
        email: &EmailNotifier,
        content: &EmailContent,
        timeout: Duration,
    ) -> Result<u16, Failed> {
        let refused = |reason: String| Failed {
            answer: NotifierAnswer::Refused(reason.clone()),
            code: None,
            reason,
        };
        let smtp = SmtpUrl::parse(&email.url)
            .map_err(|m| refused(format!("`notifiers.email.url` {m}")))?;
        let message = message(email, content).map_err(refused)?;
        let address = (smtp.host.as_str(), smtp.port)
            .to_socket_addrs()
            .map_err(|e| Failed::retry(format!("cannot resolve {}: {e}", smtp.host)))?
            .map(|address| {
                self.deps
                    .settings
                    .destinations()
                    .check_address(address.ip())
                    .map(|()| address)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|r| refused(format!("destination refused before connecting: {r}")))?
            .into_iter()
            .next()
            .ok_or_else(|| Failed::retry(format!("{} resolves to no address", smtp.host)))?;
        let mut tls = TlsParameters::builder(smtp.host.clone());
        if let Some(path) = &email.ca_file {
            tls = tls.add_root_certificate(trusted_certificates(path).map_err(refused)?);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| refused(format!("TLS cannot be set up: {e}")))?;
        let mut transport = SmtpTransport::builder_dangerous(address.ip().to_string())
            .port(address.port())
            .timeout(Some(timeout))
            .tls(match smtp.security {
                SmtpSecurity::StartTls => Tls::Required(tls),
                SmtpSecurity::Tls => Tls::Wrapper(tls),
                SmtpSecurity::None => Tls::None,
            });
        if let Some(user) = &smtp.user {
            transport = transport.credentials(Credentials::new(
                user.clone(),
                smtp.password.clone().unwrap_or_default(),
            ));
        }
        let response = transport.build().send(&message).map_err(|e| {
            let code = e.status().and_then(|c| c.to_string().parse().ok());
            let reason = format!("SMTP: {e}");
            Failed {
                answer: if e.is_permanent() {
                    NotifierAnswer::Refused(reason.clone())
                } else {
                    NotifierAnswer::Retryable { retry_after: None }
                },
                code,
                reason,
            }
        })?;
        Ok(response.code().to_string().parse().unwrap_or(250))
    }
}

/// Why an email was not sent, and whether trying again may help.
struct Failed {
    answer: NotifierAnswer,
    code: Option<u16>,
    reason: String,
}

impl Failed {
    fn retry(reason: String) -> Failed {
        Failed {
            answer: NotifierAnswer::Retryable { retry_after: None },
            code: None,
            reason,
        }
    }
}

/// The message: from, to every recipient, the subject, and the text and HTML parts.
fn message(email: &EmailNotifier, content: &EmailContent) -> Result<Message, String> {
    let from: Mailbox = mailbox("notifiers.email.from", &email.from).map_err(|e| e.to_string())?;
    let mut builder = Message::builder()
        .from(from)
        .subject(content.subject.clone());
    for (i, to) in email.to.iter().enumerate() {
        builder = builder
            .to(mailbox(&format!("notifiers.email.to[{i}]"), to).map_err(|e| e.to_string())?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            content.text.clone(),
            content.html.clone(),
        ))
        .map_err(|e| format!("the email cannot be built: {e}"))
}

impl Sink for EmailSink {
    fn sends(&self, kind: &JobKind) -> bool {
        matches!(kind, JobKind::Email(_))
    }

    fn attempt(&self, jobs: &[Job]) -> Vec<RecordedAttempt> {
        jobs.iter().map(|job| self.attempt_one(job)).collect()
    }
}
