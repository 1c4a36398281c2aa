//! Failed dashboard logins, limited per client address: the first `FREE_FAILURES` failures cost
//! nothing; after that, each failure locks the address out for a delay that doubles, up to
//! `MAX_DELAY`. While locked out, every login from that address is a 429 with `Retry-After`
//! (even one with the right token, or guessing could go on). A success forgets the address.
//!
//! Addresses are counted one by one for IPv4 and per /64 for IPv6 (one host usually holds a whole
//! /64). Other addresses are never affected: one client's failures never block another's login.
//! Time is a parameter (`now`), so the policy is tested without waiting.
//!
//! Must not: grow without bound (at most `MAX_TRACKED` addresses), or trust forwarded-for headers
//! (anyone can send them); behind a reverse proxy every client shares the proxy's address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before the first delay.
pub const FREE_FAILURES: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// An address with no failure for this long starts again from zero.
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
const MAX_TRACKED: usize = 10_000;

#[derive(Default)]
pub struct LoginLimit {
    by_client: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

impl LoginLimit {
    /// `Err(wait)` while `client` is locked out at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let map = self.by_client.lock().expect("login limit lock");
        match map.get(&key(client)).and_then(|f| f.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `client` at `now`; answers the lockout it starts, if any.
    pub fn failed(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.by_client.lock().expect("login limit lock");
        let key = key(client);
        if !map.contains_key(&key) && map.len() >= MAX_TRACKED {
            map.retain(|_, f| now.saturating_duration_since(f.last) < FORGET_AFTER);
            if map.len() >= MAX_TRACKED {
                if let Some(oldest) = map.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        let entry = map.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if now.saturating_duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        let delay = delay_after(entry.count)?;
        entry.locked_until = Some(now + delay);
        Some(delay)
    }

    /// A successful login: the address starts again from zero.
    pub fn succeeded(&self, client: IpAddr) {
        self.by_client
            .lock()
            .expect("login limit lock")
            .remove(&key(client));
    }
}

/// The lockout after the `count`th failure in a row: none for the first `FREE_FAILURES`, then
/// 1s, 2s, 4s, ... up to `MAX_DELAY`.
pub fn delay_after(count: u32) -> Option<Duration> {
    let over = count.checked_sub(FREE_FAILURES + 1)?;
    let factor = 1u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
    Some(FIRST_DELAY.saturating_mul(factor).min(MAX_DELAY))
}

/// What failures are counted against: the IPv4 address, or the /64 of an IPv6 one.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn delays_double_after_the_free_failures_and_are_capped() {
        assert_eq!(delay_after(1), None);
        assert_eq!(delay_after(FREE_FAILURES), None);
        assert_eq!(delay_after(FREE_FAILURES + 1), Some(Duration::from_secs(1)));
        assert_eq!(delay_after(FREE_FAILURES + 2), Some(Duration::from_secs(2)));
        assert_eq!(delay_after(FREE_FAILURES + 4), Some(Duration::from_secs(8)));
        assert_eq!(delay_after(FREE_FAILURES + 40), Some(MAX_DELAY));
        assert_eq!(delay_after(u32::MAX), Some(MAX_DELAY));
    }

    #[test]
    fn one_address_is_locked_out_and_others_are_not() {
        let limit = LoginLimit::default();
        let t0 = Instant::now();
        let attacker = ip("203.0.113.9");
        for i in 0..FREE_FAILURES {
            assert_eq!(limit.check(attacker, t0), Ok(()), "failure {i} is free");
            assert_eq!(limit.failed(attacker, t0), None);
        }
        assert_eq!(limit.failed(attacker, t0), Some(Duration::from_secs(1)));
        assert_eq!(limit.check(attacker, t0), Err(Duration::from_secs(1)));
        assert_eq!(limit.check(ip("203.0.113.10"), t0), Ok(()), "a neighbour");
        assert!(limit.check(ip("::ffff:203.0.113.9"), t0).is_err());
        // After the wait, one more failure locks for twice as long.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limit.check(attacker, t1), Ok(()));
        assert_eq!(limit.failed(attacker, t1), Some(Duration::from_secs(2)));
        assert!(limit
            .check(attacker, t1 + Duration::from_millis(1999))
            .is_err());
        // A success (possible once the lockout ends) starts again from zero.
        limit.succeeded(attacker);
        assert_eq!(limit.check(attacker, t1), Ok(()));
        assert_eq!(limit.failed(attacker, t1), None);
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_hour() {
        let limit = LoginLimit::default();
        let t0 = Instant::now();
        let client = ip("198.51.100.1");
        for _ in 0..FREE_FAILURES {
            limit.failed(client, t0);
        }
        let later = t0 + FORGET_AFTER;
        assert_eq!(limit.failed(client, later), None, "counting starts over");
    }

    #[test]
    fn ipv6_counts_per_64_and_memory_is_bounded() {
        let limit = LoginLimit::default();
        let t0 = Instant::now();
        for i in 0..=FREE_FAILURES {
            limit.failed(ip(&format!("2001:db8:1:2::{i:x}")), t0);
        }
        assert!(limit.check(ip("2001:db8:1:2::ffff"), t0).is_err());
        assert_eq!(limit.check(ip("2001:db8:1:3::1"), t0), Ok(()));

        for i in 0..(MAX_TRACKED as u32 + 100) {
            limit.failed(
                IpAddr::V4(i.into()),
                t0 + Duration::from_millis(u64::from(i)),
            );
        }
        assert!(limit.by_client.lock().unwrap().len() <= MAX_TRACKED);
    }
}
