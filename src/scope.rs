//! What a credential may do. Every endpoint needs one [`Scope`]; an environment API key holds a
//! [`KeyScope`] (ingest, read, or both: what a plain-string key in the config means, and what
//! every environment key could do before scopes existed); the admin token holds them all.
//!
//! Must not: know about HTTP or the store; `auth` decides who a token is, handlers name the
//! scope they need, and this module only says whether one covers the other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Create and update operations, append messages: what integration code does.
    Ingest,
    /// List, search, facets, insights, deliveries and exports, the NDJSON export.
    Read,
    /// Settings, secrets, destinations, retries and replays, import, backup; every environment.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one environment API key may do in its environment. Never `admin`: that is the admin
/// token's alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyScope {
    #[serde(rename = "ingest")]
    Ingest,
    #[serde(rename = "read")]
    Read,
    /// Both: a key written as a plain string, and the key an older release generated.
    #[serde(rename = "ingest+read")]
    IngestRead,
}

impl KeyScope {
    pub fn allows(self, needed: Scope) -> bool {
        matches!(
            (self, needed),
            (KeyScope::Ingest | KeyScope::IngestRead, Scope::Ingest)
                | (KeyScope::Read | KeyScope::IngestRead, Scope::Read)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Ingest => "ingest",
            KeyScope::Read => "read",
            KeyScope::IngestRead => "ingest+read",
        }
    }
}

impl fmt::Display for KeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_reach_admin_and_both_covers_ingest_and_read() {
        let table = [
            (KeyScope::Ingest, [true, false, false]),
            (KeyScope::Read, [false, true, false]),
            (KeyScope::IngestRead, [true, true, false]),
        ];
        for (key, expected) in table {
            let got = Scope::ALL.map(|s| key.allows(s));
            assert_eq!(got, expected, "{key}");
        }
    }
}
