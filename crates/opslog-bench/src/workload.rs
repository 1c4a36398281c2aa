//! The benchmark workload: a deterministic, seeded stream of operations with their messages.
//!
//! Each client of a run has its own stream (seed, client index), so any number of concurrent
//! clients produce the same data on every run and for every store under test. The mix imitates an
//! integration platform: syncs, actions, proxies and webhooks over 16+ integrations and thousands
//! of connections (both skewed: a few are hot), each with 1-40 messages — HTTP request lines,
//! user logs, validation warnings and errors from external APIs.
//!
//! Must not: touch the network or the disk; it only generates values.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

pub const INTEGRATIONS: &[&str] = &[
    "github",
    "salesforce",
    "hubspot",
    "stripe",
    "slack",
    "notion",
    "jira",
    "zendesk",
    "shopify",
    "intercom",
    "asana",
    "linear",
    "gitlab",
    "quickbooks",
    "xero",
    "google-drive",
    "zoom",
    "airtable",
];
/// Distinct connection ids; `conn-0` is the hottest.
pub const CONNECTIONS: u32 = 5_000;
pub const SCRIPTS: &[&str] = &["records", "contacts", "issues", "invoices", "users"];
/// Texts of external API errors; the phrase query searches the second.
pub const API_ERRORS: &[&str] = &[
    "rate limit exceeded (429), retrying in 30s",
    "invalid_grant: refresh token expired or revoked",
    "upstream timeout after 30000ms",
    "503 service unavailable from upstream",
    "502 bad gateway from upstream",
];
/// Every `RARE_EVERY`th message of a stream carries a token found nowhere else.
pub const RARE_EVERY: u64 = 100;

/// The token of the `n`th rare message of client `client`: one tokenizer token, unique in the run.
pub fn rare_token(client: usize, n: u64) -> String {
    format!("unique{client}n{n}")
}

#[derive(Debug, Clone, Serialize)]
pub struct OperationSpec {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub state: &'static str,
    pub integration: &'static str,
    pub connection_id: String,
    pub script: &'static str,
    #[serde(skip)]
    pub messages: Vec<MessageSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestSpec {
    pub method: &'static str,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResponseSpec {
    pub status: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageSpec {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub level: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<RequestSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u32>,
    /// The rare token this message carries, if any (for visibility probes).
    #[serde(skip)]
    pub rare: Option<String>,
}

impl MessageSpec {
    /// The text a search engine should find this message by: what opslog indexes for it.
    pub fn search_text(&self) -> String {
        let mut text = self.message.clone().unwrap_or_default();
        if let Some(r) = &self.request {
            text.push('\n');
            text.push_str(r.method);
            text.push(' ');
            text.push_str(&r.url);
        }
        if let Some(r) = &self.response {
            text.push('\n');
            text.push_str(&r.status.to_string());
        }
        text
    }
}

/// One client's stream of operations, ending once `quota` messages were produced.
pub struct ClientStream {
    rng: StdRng,
    client: usize,
    left: u64,
    produced: u64,
    rare: u64,
}

impl ClientStream {
    pub fn new(seed: u64, client: usize, quota: u64) -> ClientStream {
        ClientStream {
            rng: StdRng::seed_from_u64(seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            client,
            left: quota,
            produced: 0,
            rare: 0,
        }
    }

    fn skewed(&mut self, n: usize, power: i32) -> usize {
        ((self.rng.random::<f64>().powi(power) * n as f64) as usize).min(n - 1)
    }

    fn message(&mut self, integration: &str) -> MessageSpec {
        self.produced += 1;
        let rng = &mut self.rng;
        let page = rng.random_range(1..500);
        if self.produced % RARE_EVERY == RARE_EVERY / 3 {
            let token = rare_token(self.client, self.rare);
            self.rare += 1;
            return MessageSpec {
                kind: "log",
                level: "error",
                message: Some(format!("rare failure in {integration} sync: {token}")),
                request: None,
                response: None,
                duration_ms: None,
                rare: Some(token),
            };
        }
        match rng.random_range(0..100) {
            0..=54 => {
                let status =
                    [200, 200, 200, 200, 201, 204, 404, 429, 500, 502][rng.random_range(0..10)];
                let method = ["GET", "GET", "POST", "PATCH", "DELETE"][rng.random_range(0..5)];
                let resource =
                    ["contacts", "deals", "issues", "invoices", "users"][rng.random_range(0..5)];
                MessageSpec {
                    kind: "http",
                    level: if status >= 400 { "error" } else { "info" },
                    message: None,
                    request: Some(RequestSpec {
                        method,
                        url: format!("https://api.{integration}.com/v2/{resource}?page={page}"),
                    }),
                    response: Some(ResponseSpec { status }),
                    duration_ms: Some(rng.random_range(20..900)),
                    rare: None,
                }
            }
            55..=79 => MessageSpec {
                kind: "log",
                level: "info",
                message: Some(format!(
                    "fetched {} records from {integration} page {page} cursor {:x}",
                    rng.random_range(1..500),
                    rng.random::<u32>()
                )),
                request: None,
                response: None,
                duration_ms: None,
                rare: None,
            },
            80..=89 => {
                let field = ["email", "title", "owner", "amount"][rng.random_range(0..4)];
                MessageSpec {
                    kind: "log",
                    level: "warn",
                    message: Some(format!(
                        "record {} failed validation: missing field `{field}`",
                        rng.random::<u16>()
                    )),
                    request: None,
                    response: None,
                    duration_ms: None,
                    rare: None,
                }
            }
            _ => MessageSpec {
                kind: "log",
                level: "error",
                message: Some(API_ERRORS[rng.random_range(0..API_ERRORS.len())].to_owned()),
                request: None,
                response: None,
                duration_ms: None,
                rare: None,
            },
        }
    }
}

impl Iterator for ClientStream {
    type Item = OperationSpec;

    fn next(&mut self) -> Option<OperationSpec> {
        if self.left == 0 {
            return None;
        }
        let integration = INTEGRATIONS[self.skewed(INTEGRATIONS.len(), 2)];
        let connection = self.skewed(CONNECTIONS as usize, 3);
        let kind =
            ["sync", "sync", "sync", "action", "proxy", "webhook"][self.rng.random_range(0..6)];
        let script = SCRIPTS[self.rng.random_range(0..SCRIPTS.len())];
        let count = self.rng.random_range(1..=40u64).min(self.left);
        self.left -= count;
        let messages: Vec<MessageSpec> = (0..count).map(|_| self.message(integration)).collect();
        let failed = messages
            .iter()
            .any(|m| m.level == "error" && m.kind == "log")
            && self.rng.random_range(0..3) == 0;
        Some(OperationSpec {
            kind,
            state: if failed { "failed" } else { "success" },
            integration,
            connection_id: format!("conn-{connection}"),
            script,
            messages,
        })
    }
}

/// Parses `1M`, `10M`, `250k`, `20000`: a count with an optional k/M/G suffix.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, factor) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        Some((i, 'g' | 'G')) => (&t[..i], 1_000_000_000),
        _ => (t, 1),
    };
    let value: f64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{text}` is not a count like 1M, 250k or 20000"))?;
    if value.is_nan() || value <= 0.0 || value * factor as f64 > 1e12 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok((value * factor as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_suffixes() {
        assert_eq!(parse_count("1M"), Ok(1_000_000));
        assert_eq!(parse_count("10M"), Ok(10_000_000));
        assert_eq!(parse_count("250k"), Ok(250_000));
        assert_eq!(parse_count("1.5k"), Ok(1_500));
        assert_eq!(parse_count("20000"), Ok(20_000));
        assert!(parse_count("lots").is_err());
        assert!(parse_count("0").is_err());
    }

    #[test]
    fn streams_are_deterministic_and_exact() {
        let a: Vec<_> = ClientStream::new(7, 3, 5_000)
            .flat_map(|op| op.messages)
            .map(|m| m.search_text())
            .collect();
        let b: Vec<_> = ClientStream::new(7, 3, 5_000)
            .flat_map(|op| op.messages)
            .map(|m| m.search_text())
            .collect();
        assert_eq!(a.len(), 5_000);
        assert_eq!(a, b);
        let other: Vec<_> = ClientStream::new(7, 4, 5_000)
            .flat_map(|op| op.messages)
            .map(|m| m.search_text())
            .collect();
        assert_ne!(a, other);
        assert_eq!(a.iter().filter(|t| t.contains("unique3n")).count(), 50);
    }

    #[test]
    fn operations_have_1_to_40_messages_over_many_integrations_and_connections() {
        let ops: Vec<_> = ClientStream::new(1, 0, 200_000).collect();
        assert!(ops.iter().all(|o| (1..=40).contains(&o.messages.len())));
        let integrations: std::collections::HashSet<_> =
            ops.iter().map(|o| o.integration).collect();
        assert!(integrations.len() >= 16);
        let connections: std::collections::HashSet<_> =
            ops.iter().map(|o| o.connection_id.as_str()).collect();
        assert!(connections.len() > 1_000, "{}", connections.len());
    }
}
