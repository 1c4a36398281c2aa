//! Secrets: how opslog makes them and how it shows them. Tokens, API keys, webhook secrets and
//! session ids are random hex from the thread's CSPRNG; wherever a secret is shown (config dumps,
//! settings views, logs) it is masked to its first four characters.
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
    fn a_masked_secret_keeps_four_characters() {
        assert_eq!(mask("whsec_abcdef"), "whse…(masked)");
        assert_eq!(mask("ab"), "ab…(masked)");
    }
}
