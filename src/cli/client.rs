//! A blocking client for the daemon's read API: builds URLs, sends the token, and turns an error
//! answer (`{"error":{"code","message","field"}}`) into a `CliError` that says what to fix.

use std::time::Duration;

use serde_json::Value;

use super::args::ConnectArgs;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no token: pass --token or set OPSLOG_TOKEN (an API key of the environment or an admin token)")]
    NoToken,
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach opslog at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{message} (HTTP {status} {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// Exit status: 2 for what the user must change in the command, 3 for a refused token,
    /// 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NoToken | CliError::Usage(_) => 2,
            // Unknown, or without the scope the command needs (a read key for queries).
            CliError::Api {
                status: 401 | 403, ..
            } => 3,
            CliError::Api { status, .. } if (400..500).contains(status) => 2,
            _ => 1,
        }
    }
}

pub struct ApiClient {
    agent: ureq::Agent,
    base: String,
    token: String,
}

impl ApiClient {
    pub fn new(connect: &ConnectArgs) -> Result<ApiClient, CliError> {
        let token = connect
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or(CliError::NoToken)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let base = format!(
            "{}/v1/environments/{}",
            connect.url.trim_end_matches('/'),
            urlencoding::encode(&connect.env)
        );
        Ok(ApiClient { agent, base, token })
    }

    /// The URL of `path` (relative to the environment) with `query`.
    fn url(&self, path: &str, query: &[(&str, String)]) -> String {
        let mut url = format!("{}{path}", self.base);
        if !query.is_empty() {
            let encoded: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
                .finish();
            url.push('?');
            url.push_str(&encoded);
        }
        url
    }

    /// GETs `path` (relative to the environment) with `query` and returns the JSON answer.
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        let url = self.url(path, query);
        let response = self
            .agent
            .get(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header(
                "user-agent",
                concat!("opslog-cli/", env!("CARGO_PKG_VERSION")),
            )
            .call()
            .map_err(|e| CliError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| CliError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let body: Value = serde_json::from_str(&text).map_err(|e| CliError::BadAnswer {
            url: url.clone(),
            reason: format!("HTTP {status}, not JSON ({e})"),
        })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(api_error(status, &body, &text))
    }

    /// Sends `method` to `path` (relative to the environment) with an
    /// optional `(content type, bytes)` body, and returns the body of a 2xx answer as a stream.
    /// No overall time limit: exports and imports may be large; only a silent server times out.
    pub fn stream(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<ureq::Body, CliError> {
        let url = self.url(path, query);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .build()
            .into();
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", format!("Bearer {}", self.token))
            .header(
                "user-agent",
                concat!("opslog-cli/", env!("CARGO_PKG_VERSION")),
            );
        let unreachable = |e: ureq::Error| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        };
        let response = match body {
            Some((content_type, bytes)) => agent.run(
                request
                    .header("content-type", content_type)
                    .body(bytes)
                    .expect("a valid request"),
            ),
            None => agent.run(request.body(()).expect("a valid request")),
        }
        .map_err(unreachable)?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let text = body
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(unreachable)?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(api_error(status, &json, &text))
    }

    /// Follows `next_cursor` until `limit` items are collected or the list ends.
    pub fn list(
        &self,
        path: &str,
        query: &[(&str, String)],
        limit: usize,
    ) -> Result<(Vec<Value>, u64), CliError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut total = 0;
        while items.len() < limit {
            let mut q = query.to_vec();
            q.push(("limit", (limit - items.len()).min(500).to_string()));
            if let Some(c) = cursor.take() {
                q.push(("cursor", c));
            }
            let page = self.get(path, &q)?;
            total = page["total"].as_u64().unwrap_or(0);
            items.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        items.truncate(limit);
        Ok((items, total))
    }
}

/// The `CliError` of an error answer `{"error":{"code","message"}}`.
fn api_error(status: u16, body: &Value, text: &str) -> CliError {
    let error = &body["error"];
    CliError::Api {
        status,
        code: error["code"].as_str().unwrap_or("error").to_owned(),
        message: error["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}: {text}")),
    }
}

/// `--since`: a duration back from now (`1h`, `15m`) or an RFC 3339 time, as RFC 3339.
pub fn since_to_rfc3339(since: &str, now_ms: i64) -> Result<String, CliError> {
    use opslog::model::Timestamp;
    if let Ok(t) = Timestamp::parse(since) {
        return Ok(t.to_string());
    }
    let duration = humantime::parse_duration(since).map_err(|e| {
        CliError::Usage(format!(
            "--since `{since}`: neither a duration like `1h` or `30m` nor an RFC 3339 time ({e})"
        ))
    })?;
    let back = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
    Ok(Timestamp(now_ms.saturating_sub(back)).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_times() {
        let now = 1_800_000_000_000;
        assert_eq!(
            since_to_rfc3339("1h", now).unwrap(),
            opslog::model::Timestamp(now - 3_600_000).to_string()
        );
        assert_eq!(
            since_to_rfc3339("2026-01-02T03:04:05+01:00", now).unwrap(),
            "2026-01-02T02:04:05.000Z"
        );
        let err = since_to_rfc3339("yesterday", now).unwrap_err();
        assert!(err.to_string().contains("--since `yesterday`"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn refused_tokens_have_their_own_exit_code() {
        let api = |status| CliError::Api {
            status,
            code: "x".into(),
            message: "m".into(),
        };
        assert_eq!(api(401).exit_code(), 3);
        assert_eq!(api(403).exit_code(), 3);
        assert_eq!(api(400).exit_code(), 2);
        assert_eq!(api(500).exit_code(), 1);
    }
}
