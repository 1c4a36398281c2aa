//! Opaque page cursors: a position (after/before an id) sealed with an HMAC over the position and
//! the query it belongs to, so a forged cursor, or one from another query or environment, is a
//! 404 (no such page) instead of a wrong page. The key is generated once and kept in the store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ApiError;
use crate::index::Bound;
use crate::store::{Store, StoreError};

const VERSION: u8 = 1;
const MAC_LEN: usize = 12;
/// A cursor's bytes: version, direction, id, MAC.
const BYTES: usize = 2 + 16 + MAC_LEN;
/// Its length as unpadded base64url text (`BYTES` is a multiple of 3: no partial last character).
pub const TEXT_LEN: usize = BYTES / 3 * 4;
const META_KEY: &str = "cursor_key";

pub struct CursorKey([u8; 32]);

impl CursorKey {
    pub fn load_or_generate(store: &Store) -> Result<CursorKey, StoreError> {
        let mut tx = store.write()?;
        let key = match tx.meta(META_KEY)? {
            Some(bytes) if bytes.len() == 32 => bytes.try_into().expect("32 bytes"),
            _ => {
                let key: [u8; 32] = rand::random();
                tx.put_meta(META_KEY, &key)?;
                key
            }
        };
        tx.commit()?;
        Ok(CursorKey(key))
    }

    /// A key from known bytes (fuzzing and tests; the daemon generates its own).
    pub(crate) fn from_bytes(key: [u8; 32]) -> CursorKey {
        CursorKey(key)
    }

    fn mac(&self, body: &[u8], scope: &str) -> [u8; MAC_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(body);
        mac.update(scope.as_bytes());
        let full = mac.finalize().into_bytes();
        full[..MAC_LEN].try_into().expect("MAC_LEN bytes")
    }

    /// A cursor continuing past `bound` in the query described by `scope`.
    pub fn encode(&self, scope: &str, bound: Bound) -> String {
        let (direction, id) = match bound {
            Bound::After(id) => (0u8, id),
            Bound::Before(id) => (1u8, id),
        };
        let mut bytes = vec![VERSION, direction];
        bytes.extend_from_slice(&id.to_be_bytes());
        let mac = self.mac(&bytes, scope);
        bytes.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A cursor that is not of the documented form is a 400; one of that form that this server
    /// did not give out for this query (another query's, another server's, altered) names no
    /// page here: a 404.
    pub fn decode(&self, scope: &str, text: &str) -> Result<Bound, ApiError> {
        let well_formed = text.len() == TEXT_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(ApiError::bad_request(
                "invalid_cursor",
                format!("`cursor` must be a `next_cursor` of an earlier page ({TEXT_LEN} characters A-Z, a-z, 0-9, - or _)"),
            )
            .with_field("cursor"));
        }
        let not_found = || {
            ApiError::not_found(
                "cursor_not_found",
                "`cursor` is not a `next_cursor` of this query; start again without a cursor",
            )
            .with_field("cursor")
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| not_found())?;
        if bytes.len() != BYTES || bytes[0] != VERSION {
            return Err(not_found());
        }
        let (body, mac) = bytes.split_at(2 + 16);
        let expected = self.mac(body, scope);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], mac)) {
            return Err(not_found());
        }
        let id = u128::from_be_bytes(body[2..].try_into().expect("16 bytes"));
        match body[1] {
            0 => Ok(Bound::After(id)),
            1 => Ok(Bound::Before(id)),
            _ => Err(not_found()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_only_in_their_own_query() {
        let key = CursorKey([7; 32]);
        for bound in [Bound::After(42), Bound::Before(u128::MAX - 1)] {
            let text = key.encode("ops|prod|q=x", bound);
            assert_eq!(key.decode("ops|prod|q=x", &text).unwrap(), bound);
            assert_eq!(
                key.decode("ops|dev|q=x", &text).unwrap_err().code,
                "cursor_not_found",
                "foreign cursor"
            );
        }
        let other_key = CursorKey([8; 32]);
        let forged = other_key.encode("ops|prod|q=x", Bound::After(1));
        assert!(key.decode("ops|prod|q=x", &forged).is_err());
        for garbage in ["", "!!!", "AAAA", "after.01ARZ3NDEKTSV4RRFFQ69G5FAV"] {
            assert!(key.decode("s", garbage).is_err(), "{garbage}");
        }
    }
}
