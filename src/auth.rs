//! Who a bearer token belongs to: an admin (every environment, every scope) or one environment's
//! API key with its scope (`ingest`, `read`, or both).
//!
//! Tokens from the config are used as given. Where the config names none, they are generated on
//! first start (the admin token; an ingest and a read key per environment), kept in the store's
//! meta table and reported once so `serve` can print them. The single `ingest+read` key a data
//! dir of the first release holds keeps working. Tokens are compared as SHA-256 digests in
//! constant time, and never logged.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ApiKey, Config};
use crate::scope::{KeyScope, Scope};
use crate::secrets::random_hex;
use crate::store::{Store, StoreError, WriteTx};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Every scope, every environment.
    Admin,
    /// An API key: its own environment only, within its scope.
    Environment { name: String, scope: KeyScope },
}

impl Principal {
    /// Whether this principal may see `environment`'s data at all.
    pub fn may_access(&self, environment: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Environment { name, .. } => name == environment,
        }
    }

    /// Whether this principal holds `needed`.
    pub fn allows(&self, needed: Scope) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Environment { scope, .. } => scope.allows(needed),
        }
    }
}

/// A credential created on this start, to show the operator once.
#[derive(Clone, Debug)]
pub struct GeneratedSecret {
    /// `None` for the admin token, else the environment and the key's scope.
    pub environment: Option<(String, KeyScope)>,
    pub token: String,
}

/// The generated keys of one environment, by the meta row that keeps each. The first release
/// generated one `ingest+read` key; it keeps working where it exists but is no longer made.
const GENERATED_KEYS: [(&str, KeyScope); 2] = [
    ("generated_ingest_key", KeyScope::Ingest),
    ("generated_read_key", KeyScope::Read),
];
const LEGACY_GENERATED_KEY: &str = "generated_api_key";

pub struct Credentials {
    tokens: Vec<([u8; 32], Principal)>,
    /// The first admin token and each environment's keys, for the start-up banner.
    pub admin_token: String,
    pub api_keys: BTreeMap<String, Vec<ApiKey>>,
}

impl Credentials {
    /// Builds the token table from the config, generating and persisting what it leaves out:
    /// the admin token, and an ingest and a read key per environment without `api_keys`.
    /// Returns what was generated now (empty on later starts). On error nothing was persisted.
    pub fn load_or_generate(
        config: &Config,
        store: &Store,
    ) -> Result<(Credentials, Vec<GeneratedSecret>), StoreError> {
        let mut generated = Vec::new();
        let mut tx = store.write()?;
        let mut stored_or_new = |meta_key: String,
                                 environment: Option<(String, KeyScope)>|
         -> Result<String, StoreError> {
            if let Some(token) = stored_text(&tx, &meta_key)? {
                return Ok(token);
            }
            let prefix = match &environment {
                None => "admin".to_owned(),
                Some((name, scope)) => format!("{name}_{scope}"),
            };
            let token = format!("opslog_{prefix}_{}", random_hex(24));
            tx.put_meta(&meta_key, token.as_bytes())?;
            generated.push(GeneratedSecret {
                environment,
                token: token.clone(),
            });
            Ok(token)
        };

        let admin_tokens = if config.server.admin_tokens.is_empty() {
            vec![stored_or_new("generated_admin_token".into(), None)?]
        } else {
            config.server.admin_tokens.clone()
        };
        let mut api_keys = BTreeMap::new();
        for (name, env) in &config.environments {
            let keys = if env.api_keys.is_empty() {
                let mut keys = Vec::new();
                for (meta, scope) in GENERATED_KEYS {
                    let environment = Some((name.clone(), scope));
                    let key = stored_or_new(format!("{meta}:{name}"), environment)?;
                    keys.push(ApiKey { key, scope });
                }
                keys
            } else {
                env.api_keys.clone()
            };
            api_keys.insert(name.clone(), keys);
        }
        let mut tokens = Vec::new();
        for token in &admin_tokens {
            tokens.push((digest(token), Principal::Admin));
        }
        for (name, keys) in &api_keys {
            // The one key an older release generated keeps its meaning (ingest+read).
            let legacy = if config.environments[name].api_keys.is_empty() {
                stored_text(&tx, &format!("{LEGACY_GENERATED_KEY}:{name}"))?.map(|key| ApiKey {
                    key,
                    scope: KeyScope::IngestRead,
                })
            } else {
                None
            };
            for ApiKey { key, scope } in keys.iter().chain(legacy.iter()) {
                let principal = Principal::Environment {
                    name: name.clone(),
                    scope: *scope,
                };
                tokens.push((digest(key), principal));
            }
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

fn stored_text(tx: &WriteTx, meta_key: &str) -> Result<Option<String>, StoreError> {
    tx.meta(meta_key)?
        .map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| StoreError::Corrupt(format!("meta `{meta_key}` is not text")))
        })
        .transpose()
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvironmentConfig;

    #[test]
    fn generated_tokens_persist_and_authenticate_with_their_scope() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // A data dir of the first release: one generated ingest+read key for `dev`.
        let mut tx = store.write().unwrap();
        tx.put_meta("generated_api_key:dev", b"opslog_dev_0123456789abcdef")
            .unwrap();
        tx.commit().unwrap();
        let mut config = Config::default();
        config
            .environments
            .insert("dev".into(), EnvironmentConfig::default());
        config.environments.insert(
            "prod".into(),
            EnvironmentConfig {
                api_keys: vec![
                    "prod-key-0123456789abcdef".into(),
                    ApiKey {
                        key: "prod-ingest-0123456789abcdef".into(),
                        scope: KeyScope::Ingest,
                    },
                ],
                ..EnvironmentConfig::default()
            },
        );
        let (first, generated) = Credentials::load_or_generate(&config, &store).unwrap();
        let scopes: Vec<_> = generated.iter().map(|g| g.environment.clone()).collect();
        assert_eq!(
            scopes,
            [
                None,
                Some(("dev".into(), KeyScope::Ingest)),
                Some(("dev".into(), KeyScope::Read)),
            ]
        );
        let (second, again) = Credentials::load_or_generate(&config, &store).unwrap();
        assert!(again.is_empty(), "generated once, then kept");
        assert_eq!(first.admin_token, second.admin_token);
        assert_eq!(
            second.authenticate(&first.admin_token),
            Some(Principal::Admin)
        );
        let dev = |scope| {
            Some(Principal::Environment {
                name: "dev".into(),
                scope,
            })
        };
        let key = |scope| {
            let keys = &first.api_keys["dev"];
            keys.iter().find(|k| k.scope == scope).unwrap().key.as_str()
        };
        let ingest = key(KeyScope::Ingest);
        assert!(ingest.starts_with("opslog_dev_ingest_"), "{ingest}");
        assert_eq!(second.authenticate(ingest), dev(KeyScope::Ingest));
        let read = key(KeyScope::Read);
        assert_eq!(second.authenticate(read), dev(KeyScope::Read));
        assert_eq!(
            second.authenticate("opslog_dev_0123456789abcdef"),
            dev(KeyScope::IngestRead),
            "the first release's key keeps working as it did"
        );
        let prod = |scope| {
            Some(Principal::Environment {
                name: "prod".into(),
                scope,
            })
        };
        assert_eq!(
            second.authenticate("prod-key-0123456789abcdef"),
            prod(KeyScope::IngestRead)
        );
        assert_eq!(
            second.authenticate("prod-ingest-0123456789abcdef"),
            prod(KeyScope::Ingest)
        );
        assert_eq!(second.authenticate("prod-key-0123456789abcdeX"), None);
        let dev_reader = dev(KeyScope::Read).unwrap();
        assert!(!dev_reader.may_access("prod"));
        assert!(dev_reader.allows(Scope::Read) && !dev_reader.allows(Scope::Ingest));
        assert!(!dev_reader.allows(Scope::Admin) && Principal::Admin.allows(Scope::Admin));
    }
}
