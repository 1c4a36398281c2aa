//! The Slack sink ([`SlackSink`]): an alert's message (`JobKind::Slack`: `text` and Block Kit
//! `blocks`, made when the rule crossed) POSTed to the environment's incoming webhook as it is
//! set when sending. Slack answers 200 `ok`; a 4xx (`invalid_payload`, `no_service`, …) fails
//! the notification at once, 429 and 5xx are tried again on the environment's retry schedule.
//!
//! Must not: run on the async runtime, or show the webhook URL (a secret) in an attempt or a log.

use super::notifier::{not_set_up, post_json, recorded, settings_of};
use super::sink::{not_sent, Sink, SinkDeps};
use super::webhook::WebhookSender;
use crate::model::job::{Job, JobKind};
use crate::model::Timestamp;
use crate::write::RecordedAttempt;

pub struct SlackSink {
    deps: SinkDeps,
    sender: WebhookSender,
}

impl SlackSink {
    pub fn new(deps: &SinkDeps) -> SlackSink {
        SlackSink {
            sender: WebhookSender::new(deps.settings.destinations().clone()),
            deps: deps.clone(),
        }
    }

    fn attempt_one(&self, job: &Job) -> RecordedAttempt {
        let JobKind::Slack(message) = &job.kind else {
            return not_sent(job, job.kind.destination(), "not a Slack message".into());
        };
        let settings = match settings_of(&self.deps, job, &message.url) {
            Ok(settings) => settings,
            Err(attempt) => return *attempt,
        };
        let Some(slack) = &settings.notifiers.current.slack else {
            return not_set_up(job, &message.url, "slack");
        };
        let started_at = Timestamp::now();
        // The URL is the secret (its path), whole or as the path a client error may print.
        let path = url::Url::parse(&slack.url)
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let (answered, headers) = post_json(
            &self.sender,
            &slack.url,
            message.body.clone(),
            settings.webhooks.timeout,
            &[&slack.url, path.trim_start_matches('/')],
        );
        recorded(
            &self.deps, &settings, job, message, started_at, answered, headers,
        )
    }
}

impl Sink for SlackSink {
    fn sends(&self, kind: &JobKind) -> bool {
        matches!(kind, JobKind::Slack(_))
    }

    fn attempt(&self, jobs: &[Job]) -> Vec<RecordedAttempt> {
        jobs.iter().map(|job| self.attempt_one(job)).collect()
    }
}
