//! Secrets: how opslog makes them and how it shows them. Tokens, API keys, webhook secrets and
//! session ids are random hex from the thread's CSPRNG; wherever a secret is shown (config dumps,
//! settings views, logs) it is masked to its first four characters. The crates that put bytes on
//! the wire never log below a warning ([`loggable`]), whatever `RUST_LOG` asks.
//!
//! Must not: import any other module of the crate; everything that handles secrets uses this.

use rand::Rng;

/// `bytes` random bytes as lowercase hex (twice as many characters).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// Shows enough of a secret to recognise it, never enough to use it.
pub fn mask(secret: &str) -> String {
    let shown: String = secret.chars().take(4).collect();
    format!("{shown}…(masked)")
}

/// The crates that carry requests and mail: the HTTP client (`ureq`, `ureq_proto`), TLS
/// (`rustls`, `webpki`), the SMTP client (`lettre`) and the HTTP server's (`hyper`, `hyper_util`,
/// `h2`). At debug and trace they log what they carry: `ureq` a request's whole URI (a Slack
/// incoming webhook's path is its secret), `ureq_proto` every byte sent as hex (a PagerDuty
/// routing key in a body, a signing header), `lettre` the SMTP dialogue (the `AUTH` line).
pub const WIRE_CRATES: &[&str] = &[
    "ureq",
    "ureq_proto",
    "rustls",
    "webpki",
    "lettre",
    "hyper",
    "hyper_util",
    "h2",
];

/// Whether a log line from `target` at `level` may be written: anything but a wire crate's
/// info, debug and trace (see [`WIRE_CRATES`]). The daemon's subscriber applies this after
/// `RUST_LOG`, so no directive (`RUST_LOG=trace`, `ureq::run=trace`) turns those on.
pub fn loggable(target: &str, level: &tracing::Level) -> bool {
    let krate = target.split("::").next().unwrap_or(target);
    *level <= tracing::Level::WARN || !WIRE_CRATES.contains(&krate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_is_fresh_hex_of_twice_the_bytes() {
        let (a, b) = (random_hex(24), random_hex(24));
        assert_eq!(a.len(), 48);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn wire_crates_log_only_warnings_and_errors() {
        use tracing::Level;
        for target in [
            "ureq",
            "ureq::run",
            "ureq_proto::util",
            "rustls::client::hs",
            "lettre",
        ] {
            assert!(!loggable(target, &Level::TRACE), "{target}");
            assert!(!loggable(target, &Level::DEBUG), "{target}");
            assert!(!loggable(target, &Level::INFO), "{target}");
            assert!(loggable(target, &Level::WARN), "{target}");
            assert!(loggable(target, &Level::ERROR), "{target}");
        }
        for target in [
            "opslog::dispatch::notifier",
            "tantivy::indexer",
            "ureqx",
            "log",
        ] {
            assert!(loggable(target, &Level::TRACE), "{target}");
        }
    }

    #[test]
    fn a_masked_secret_keeps_four_characters() {
        assert_eq!(mask("whsec_abcdef"), "whse…(masked)");
        assert_eq!(mask("ab"), "ab…(masked)");
    }
}
