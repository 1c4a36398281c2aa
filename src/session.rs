//! Dashboard login sessions: a random id handed to the browser in an HttpOnly cookie, and its
//! expiry and principal kept here, in memory: the admin, or a viewer signed in with an
//! environment key that holds the `read` scope (who sees that environment only, within the key's
//! scope).
//!
//! Only a SHA-256 digest of each id is kept, so a memory dump does not yield usable cookies. The
//! table is in memory by design: a restart logs everyone out, which is acceptable for an admin
//! dashboard and keeps session state out of the store. Time is a parameter (`now`), so expiry is
//! tested without waiting.
//!
//! Must not: log session ids, or give a session more than the principal it was created for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::auth::Principal;

/// The cookie that carries the session id.
pub const COOKIE_NAME: &str = "opslog_session";

/// More live sessions than this evicts the one closest to expiry, bounding memory even if a
/// script logs in in a loop.
const MAX_SESSIONS: usize = 10_000;

pub struct Sessions {
    ttl: Duration,
    live: Mutex<HashMap<[u8; 32], (Instant, Principal)>>,
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            live: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Creates a session of `principal` that expires `ttl` after `now`; returns the id for the
    /// cookie.
    pub fn create(&self, now: Instant, principal: Principal) -> String {
        let id = crate::secrets::random_hex(32);
        let mut live = self.live.lock().expect("sessions lock");
        live.retain(|_, (expires_at, _)| *expires_at > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live.iter().min_by_key(|(_, e)| e.0).map(|(k, _)| *k) {
                live.remove(&oldest);
            }
        }
        live.insert(digest(&id), (now + self.ttl, principal));
        id
    }

    /// Who `id`'s session stands for, if it is still valid at `now`. An expired one is forgotten.
    pub fn principal(&self, id: &str, now: Instant) -> Option<Principal> {
        let key = digest(id);
        let mut live = self.live.lock().expect("sessions lock");
        match live.get(&key) {
            Some((expires_at, principal)) if *expires_at > now => Some(principal.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Whether `id` names a session still valid at `now`.
    pub fn is_valid(&self, id: &str, now: Instant) -> bool {
        self.principal(id, now).is_some()
    }

    /// Ends a session (logout). Unknown ids are ignored: logging out twice is fine.
    pub fn revoke(&self, id: &str) {
        self.live.lock().expect("sessions lock").remove(&digest(id));
    }
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The value of cookie `name` in a `Cookie` header, if present.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v.trim())
    })
}

/// The `Set-Cookie` value that stores `id` for `ttl`.
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        ttl.as_secs()
    )
}

/// The `Set-Cookie` value that makes the browser drop the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_revoke() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let id = sessions.create(t0, Principal::Admin);
        assert_eq!(id.len(), 64);
        assert!(sessions.is_valid(&id, t0 + Duration::from_secs(59)));
        assert!(!sessions.is_valid(&id, t0 + Duration::from_secs(60)));
        assert!(
            !sessions.is_valid(&id, t0),
            "an expired session is forgotten"
        );
        let viewer = Principal::Environment {
            name: "prod".into(),
            scope: crate::scope::KeyScope::Read,
        };
        let other = sessions.create(t0, viewer.clone());
        assert_eq!(
            sessions.principal(&other, t0),
            Some(viewer),
            "a viewer stays a viewer"
        );
        assert!(!sessions.is_valid("not-a-session", t0));
        sessions.revoke(&other);
        assert!(!sessions.is_valid(&other, t0));
    }

    #[test]
    fn cookies() {
        assert_eq!(
            cookie_value("a=1; opslog_session=abc ; b=2", COOKIE_NAME),
            Some("abc")
        );
        assert_eq!(cookie_value("xopslog_session=abc", COOKIE_NAME), None);
        let set = set_cookie("abc", Duration::from_secs(3600), true);
        assert_eq!(
            set,
            "opslog_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600; Secure"
        );
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
