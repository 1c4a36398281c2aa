//! The bounds of a webhooks section and its defaults, shared by the `[webhooks]` tables of the
//! config file and by `PUT /settings` (which checks the merged result the same way).
//!
//! Must not: depend on anything above `model`.

use std::time::Duration;

use base64::Engine;

use super::WebhooksConfig;
use crate::destination::DestinationPolicy;
use crate::model::settings::SettingsError;
use crate::secrets::mask;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);
/// `0s,5s,5m,30m,2h,5h,10h,10h`: eight attempts over about a day.
pub const DEFAULT_SCHEDULE_SECS: &[u64] = &[0, 5, 300, 1800, 7200, 18000, 36000, 36000];
pub const MAX_SCHEDULE_LEN: usize = 30;
pub const MAX_SCHEDULE_STEP: Duration = Duration::from_secs(7 * 24 * 3600);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(300);
pub const MAX_URL_LEN: usize = 2048;
pub const SECRET_PREFIX: &str = "whsec_";

pub fn default_schedule() -> Vec<Duration> {
    DEFAULT_SCHEDULE_SECS
        .iter()
        .map(|s| Duration::from_secs(*s))
        .collect()
}

/// Checks a `[webhooks]` table (or the merged result of an API change). Fields are named
/// `webhooks.<key>`.
pub fn check_webhooks_config(
    config: &WebhooksConfig,
    destinations: &DestinationPolicy,
) -> Result<(), SettingsError> {
    let insecure = config.allow_insecure_http.unwrap_or(false);
    for (field, url) in [
        ("webhooks.url", &config.url),
        ("webhooks.secondary_url", &config.secondary_url),
    ] {
        if let Some(url) = url {
            check_url(url, insecure).map_err(|m| SettingsError::invalid(field, m))?;
            check_destination(field, url, destinations)?;
        }
    }
    for (i, route) in config.routes.iter().flatten().enumerate() {
        let field = format!("webhooks.routes[{i}]");
        route.check(&field)?;
        let url_field = format!("{field}.url");
        check_url(&route.url, insecure).map_err(|m| SettingsError::invalid(&url_field, m))?;
        check_destination(&url_field, &route.url, destinations)?;
    }
    if config
        .routes
        .as_ref()
        .is_some_and(|r| r.len() > crate::model::settings::MAX_ROUTES)
    {
        return Err(SettingsError::invalid(
            "webhooks.routes",
            format!("at most {} routes", crate::model::settings::MAX_ROUTES),
        ));
    }
    if let Some(secret) = &config.secret {
        check_secret(secret).map_err(|m| SettingsError::invalid("webhooks.secret", m))?;
    }
    if let Some(timeout) = config.timeout {
        if timeout.0.is_zero() || timeout.0 > MAX_TIMEOUT {
            return Err(SettingsError::invalid(
                "webhooks.timeout",
                format!(
                    "is {}; it must be longer than 0s and at most 5m",
                    humantime::format_duration(timeout.0)
                ),
            ));
        }
    }
    if let Some(schedule) = &config.retry_schedule {
        if schedule.is_empty() || schedule.len() > MAX_SCHEDULE_LEN {
            return Err(SettingsError::invalid(
                "webhooks.retry_schedule",
                format!("must list 1 to {MAX_SCHEDULE_LEN} delays, one per attempt (the first is usually \"0s\")"),
            ));
        }
        if let Some((i, step)) = schedule
            .iter()
            .enumerate()
            .find(|(_, d)| d.0 > MAX_SCHEDULE_STEP)
        {
            return Err(SettingsError::invalid(
                &format!("webhooks.retry_schedule[{i}]"),
                format!(
                    "is {}; a delay may be at most 7d",
                    humantime::format_duration(step.0)
                ),
            ));
        }
    }
    if let Some(grace) = config.rotation_grace {
        if grace.0 > MAX_SCHEDULE_STEP {
            return Err(SettingsError::invalid(
                "webhooks.rotation_grace",
                "may be at most 7d",
            ));
        }
    }
    Ok(())
}

pub fn check_destination(
    field: &str,
    url: &str,
    destinations: &DestinationPolicy,
) -> Result<(), SettingsError> {
    destinations
        .check_url(url)
        .map_err(|refused| SettingsError::DestinationRefused {
            field: field.to_owned(),
            refused,
        })
}

/// A webhook URL must be absolute http(s) with a host; plain http only to a loopback host
/// unless `allow_insecure_http`. The message says what is wrong.
pub fn check_url(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("is longer than {MAX_URL_LEN} characters"));
    }
    if url.contains('#') {
        return Err(format!(
            "`{url}` has a fragment (#...), which is never sent; remove it"
        ));
    }
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a valid URL ({e})"))?;
    let scheme = uri.scheme_str().ok_or_else(|| {
        format!("`{url}` is not an absolute URL; write it like https://backend.example.com/hooks")
    })?;
    let Some(authority) = uri.authority() else {
        return Err(format!("`{url}` has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "`{url}` carries credentials (user@host); authenticate with the signature instead"
        ));
    }
    let host = uri.host().unwrap_or("");
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if allow_insecure_http || is_loopback_host(host) => Ok(()),
        "http" => Err(format!(
            "`{url}` uses plain http to a non-loopback host; use https, or set allow_insecure_http = true"
        )),
        other => Err(format!(
            "`{url}` uses the scheme `{other}`; only http and https are allowed"
        )),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A secret is `whsec_` followed by base64 of 24 to 64 random bytes, or an existing Nango
/// signing key (any other 16 to 256 visible ASCII characters, e.g. a UUID), kept so receivers
/// written for Nango verify with the key they already have.
pub fn check_secret(secret: &str) -> Result<(), String> {
    let Some(key) = secret.strip_prefix(SECRET_PREFIX) else {
        let visible = secret.bytes().all(|b| b.is_ascii_graphic());
        if visible && (MIN_NANGO_KEY_LEN..=MAX_NANGO_KEY_LEN).contains(&secret.len()) {
            return Ok(());
        }
        return Err(format!(
            "must be `{SECRET_PREFIX}` and base64, or a Nango signing key of {MIN_NANGO_KEY_LEN} to {MAX_NANGO_KEY_LEN} visible ASCII characters (found `{}`)",
            mask(secret)
        ));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|e| format!("the part after `{SECRET_PREFIX}` is not base64 ({e})"))?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(format!(
            "decodes to {} bytes; use 24 to 64 random bytes",
            bytes.len()
        ));
    }
    Ok(())
}

/// The bounds of a secret that is not `whsec_` (an existing Nango signing key).
pub const MIN_NANGO_KEY_LEN: usize = 16;
pub const MAX_NANGO_KEY_LEN: usize = 256;
