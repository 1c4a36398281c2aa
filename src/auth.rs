//! Who a bearer token belongs to: an admin (every environment) or one environment's API key.
//!
//! Tokens from the config are used as given. Where the config names none, one is generated on first
//! start, kept in the store's meta table and reported once so `serve` can print it. Tokens are
//! compared as SHA-256 digests in constant time, and never logged.

use std::collections::BTreeMap;

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Config;
use crate::store::{Store, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Environment(String),
}

impl Principal {
    /// Whether this principal may see `environment`'s data.
    pub fn may_access(&self, environment: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Environment(own) => own == environment,
        }
    }
}

/// A credential created on this start, to show the operator once.
#[derive(Clone, Debug)]
pub struct GeneratedSecret {
    /// `None` for the admin token, else the environment.
    pub environment: Option<String>,
    pub token: String,
}

pub struct Credentials {
    tokens: Vec<([u8; 32], Principal)>,
    /// The first admin token and one key per environment, for the start-up banner.
    pub admin_token: String,
    pub api_keys: BTreeMap<String, String>,
}

impl Credentials {
    /// Builds the token table from the config, generating and persisting what it leaves out.
    /// Returns what was generated now (empty on later starts). On error nothing was persisted.
    pub fn load_or_generate(
        config: &Config,
        store: &Store,
    ) -> Result<(Credentials, Vec<GeneratedSecret>), StoreError> {
        let mut generated = Vec::new();
        let mut tx = store.write()?;
        let mut stored_or_new = |meta_key: String,
                                 environment: Option<String>|
         -> Result<String, StoreError> {
            if let Some(bytes) = tx.meta(&meta_key)? {
                return String::from_utf8(bytes)
                    .map_err(|_| StoreError::Corrupt(format!("meta `{meta_key}` is not text")));
            }
            let prefix = environment.as_deref().unwrap_or("admin");
            let token = format!("opslog_{prefix}_{}", random_hex(24));
            tx.put_meta(&meta_key, token.as_bytes())?;
            generated.push(GeneratedSecret {
                environment,
                token: token.clone(),
            });
            Ok(token)
        };

        let mut tokens = Vec::new();
        let admin_tokens = if config.server.admin_tokens.is_empty() {
            vec![stored_or_new("generated_admin_token".into(), None)?]
        } else {
            config.server.admin_tokens.clone()
        };
        for token in &admin_tokens {
            tokens.push((digest(token), Principal::Admin));
        }
        let mut api_keys = BTreeMap::new();
        for (name, env) in &config.environments {
            let keys = if env.api_keys.is_empty() {
                vec![stored_or_new(
                    format!("generated_api_key:{name}"),
                    Some(name.clone()),
                )?]
            } else {
                env.api_keys.clone()
            };
            for key in &keys {
                tokens.push((digest(key), Principal::Environment(name.clone())));
            }
            api_keys.insert(name.clone(), keys[0].clone());
        }
        tx.commit()?;
        Ok((
            Credentials {
                tokens,
                admin_token: admin_tokens[0].clone(),
                api_keys,
            },
            generated,
        ))
    }

    /// The principal a bearer token belongs to. Compares against every known token without
    /// stopping early, so timing does not tell how close a guess was.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let presented = digest(token);
        let mut found = None;
        for (known, principal) in &self.tokens {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(principal.clone());
            }
        }
        found
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvironmentConfig;

    #[test]
    fn generated_tokens_persist_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut config = Config::default();
        config
            .environments
            .insert("dev".into(), EnvironmentConfig::default());
        config.environments.insert(
            "prod".into(),
            EnvironmentConfig {
                api_keys: vec!["prod-key-0123456789abcdef".into()],
                ..EnvironmentConfig::default()
            },
        );
        let (first, generated) = Credentials::load_or_generate(&config, &store).unwrap();
        assert_eq!(generated.len(), 2, "admin token and dev key");
        let (second, again) = Credentials::load_or_generate(&config, &store).unwrap();
        assert!(again.is_empty(), "generated once, then kept");
        assert_eq!(first.admin_token, second.admin_token);
        assert_eq!(
            second.authenticate(&first.admin_token),
            Some(Principal::Admin)
        );
        assert_eq!(
            second.authenticate(&first.api_keys["dev"]),
            Some(Principal::Environment("dev".into()))
        );
        assert_eq!(
            second.authenticate("prod-key-0123456789abcdef"),
            Some(Principal::Environment("prod".into()))
        );
        assert_eq!(second.authenticate("prod-key-0123456789abcdeX"), None);
        assert!(!Principal::Environment("dev".into()).may_access("prod"));
    }
}
