//! The PagerDuty sink ([`PagerDutySink`]): an alert's Events API v2 event (`JobKind::PagerDuty`:
//! `trigger` or `resolve` with the rule's `dedup_key`, made when the rule crossed) with the
//! environment's `routing_key` added, POSTed to its events URL as they are set when sending.
//! PagerDuty answers 202; a 400 (a bad event, an unknown key) fails the notification at once,
//! 429 and 5xx are tried again on the environment's retry schedule.
//!
//! Must not: run on the async runtime, or record the routing key (the attempt's request headers
//! and URL never hold it; the body sent is not kept).

use super::notifier::{not_set_up, post_json, recorded, settings_of};
use super::sink::{not_sent, Sink, SinkDeps};
use super::webhook::WebhookSender;
use crate::model::job::{Job, JobKind};
use crate::model::Timestamp;
use crate::write::RecordedAttempt;

pub struct PagerDutySink {
    deps: SinkDeps,
    sender: WebhookSender,
}

impl PagerDutySink {
    pub fn new(deps: &SinkDeps) -> PagerDutySink {
        PagerDutySink {
            sender: WebhookSender::new(deps.settings.destinations().clone()),
            deps: deps.clone(),
        }
    }

    fn attempt_one(&self, job: &Job) -> RecordedAttempt {
        let JobKind::PagerDuty(event) = &job.kind else {
            return not_sent(job, job.kind.destination(), "not a PagerDuty event".into());
        };
        let settings = match settings_of(&self.deps, job, &event.url) {
            Ok(settings) => settings,
            Err(attempt) => return *attempt,
        };
        let Some(pagerduty) = &settings.notifiers.current.pagerduty else {
            return not_set_up(job, &event.url, "pagerduty");
        };
        let body = match serde_json::from_str::<serde_json::Value>(&event.body) {
            Ok(serde_json::Value::Object(mut fields)) => {
                fields.insert("routing_key".into(), pagerduty.routing_key.clone().into());
                serde_json::Value::Object(fields).to_string()
            }
            _ => {
                return not_sent(
                    job,
                    &event.url,
                    "the stored event is not a JSON object".into(),
                )
            }
        };
        let started_at = Timestamp::now();
        let (answered, headers) = post_json(
            &self.sender,
            pagerduty.events_url(),
            body,
            settings.webhooks.timeout,
            &[&pagerduty.routing_key],
        );
        recorded(
            &self.deps, &settings, job, event, started_at, answered, headers,
        )
    }
}

impl Sink for PagerDutySink {
    fn sends(&self, kind: &JobKind) -> bool {
        matches!(kind, JobKind::PagerDuty(_))
    }

    fn attempt(&self, jobs: &[Job]) -> Vec<RecordedAttempt> {
        jobs.iter().map(|job| self.attempt_one(job)).collect()
    }
}
