//! Outbox claim fairness (issue #8): a receiver that never answers in time, with more due
//! deliveries queued ahead than one claim pass reads, must not starve a healthy receiver whose
//! deliveries were queued after them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use opslog::config::{Config, HumanDuration, WebhooksConfig};
use serde_json::{json, Value};

use crate::receiver::*;
use crate::support::*;

/// More than one claim pass reads (1,000 rows) from the front of the due order.
const BLOCKED_BACKLOG: usize = 1_500;
const HEALTHY_DELIVERIES: usize = 5;

fn webhooks(url: &str, timeout: Duration, schedule: &[&str]) -> WebhooksConfig {
    WebhooksConfig {
        url: Some(url.to_owned()),
        retry_schedule: Some(
            schedule
                .iter()
                .map(|d| HumanDuration(humantime::parse_duration(d).unwrap()))
                .collect(),
        ),
        timeout: Some(HumanDuration(timeout)),
        ..Default::default()
    }
}

/// A sync created already successful: one `sync.completed` plus one `sync.records` per model.
fn ended_sync(d: &Daemon, env: &str, key: &str, models: usize) {
    let records: Vec<Value> = (0..models)
        .map(|i| json!({"model": format!("Model{i}"), "added": 1}))
        .collect();
    d.start_operation(
        env,
        key,
        &json!({"type": "sync", "integration": "github", "connection_id": "acme",
                "script": "issues", "state": "success", "records": records}),
    );
}

#[test]
fn a_blocked_receiver_with_a_long_backlog_does_not_starve_a_healthy_one() {
    // The blocked receiver holds every request past the (short) webhook timeout; each attempt
    // is retried an hour later, so without fair claiming its backlog would take
    // (1,500 - 1,000) / 4 attempts × 1 s ≈ 2 minutes to move out of the way.
    let blocked = Receiver::start(|_, _| Answer::Slow(Duration::from_secs(60), 200));
    let healthy = Receiver::ok();
    let d = Daemon::start_with(|config: &mut Config| {
        config.environments.get_mut("prod").unwrap().webhooks =
            webhooks(&blocked.url(), Duration::from_secs(1), &["0s", "1h"]);
        config.environments.get_mut("dev").unwrap().webhooks =
            webhooks(&healthy.url(), Duration::from_secs(5), &["0s", "1s"]);
    });
    ended_sync(&d, "prod", PROD_KEY, BLOCKED_BACKLOG - 1);
    blocked.wait_for(1, Duration::from_secs(30));
    let pending = d.get(
        "/v1/environments/prod/deliveries?status=pending&limit=1",
        PROD_KEY,
    );
    assert_eq!(pending.status, 200, "{}", pending.text);
    assert!(
        pending.body["total"].as_u64().unwrap() > 1_000,
        "the blocked backlog is longer than one claim pass: {}",
        pending.body["total"]
    );

    for _ in 0..HEALTHY_DELIVERIES {
        ended_sync(&d, "dev", DEV_KEY, 0);
    }
    // Far shorter than the starvation, long enough for a loaded 2-core machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut requests = healthy.requests();
    while requests.len() < HEALTHY_DELIVERIES && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        requests = healthy.requests();
    }
    assert_eq!(
        requests.len(),
        HEALTHY_DELIVERIES,
        "the healthy receiver got {} of {HEALTHY_DELIVERIES} deliveries in 30 s while the blocked \
         one got {} attempts",
        requests.len(),
        blocked.requests().len()
    );
    let ids: BTreeSet<&str> = requests.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), HEALTHY_DELIVERIES, "one request per delivery");
    for request in &requests {
        let body = request.json();
        assert_eq!(body["environment"], "dev", "{body}");
        assert_eq!(body["type"], "sync.completed", "{body}");
    }
}
