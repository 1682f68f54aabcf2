//! Rate limit for failed lookups, per client: guessing join tokens costs time. A
//! client that used up its misses is refused every lookup until its bucket refills,
//! hits included, so a guess that happens to hit is not told apart.
//!
//! IPv6 clients are limited per /64 (one subscriber's usual prefix), or changing the
//! low address bits would reset the bucket. The table lives in memory only and is
//! bounded: when full, clients whose bucket has refilled are forgotten first.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

/// Misses allowed in a burst.
pub const BURST: f64 = 10.0;
/// Misses regained per second.
pub const RATE: f64 = 0.2;
/// Most clients tracked at once.
const MAX_CLIENTS: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        self.last = now;
    }
}

/// The per-client miss buckets.
#[derive(Debug, Default)]
pub struct MissLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl MissLimiter {
    /// Whether `ip` may look a token up now.
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().expect("not poisoned");
        match buckets.get_mut(&key(ip)) {
            Some(b) => {
                b.refill(now);
                b.tokens >= 1.0
            }
            None => true,
        }
    }

    /// Counts a failed lookup by `ip`.
    pub fn miss(&self, ip: IpAddr, now: Instant) {
        let mut buckets = self.buckets.lock().expect("not poisoned");
        if buckets.len() >= MAX_CLIENTS {
            buckets.retain(|_, b| {
                b.refill(now);
                b.tokens < BURST
            });
            if buckets.len() >= MAX_CLIENTS {
                // Every tracked client is still limited: forget an arbitrary one
                // rather than grow without bound.
                if let Some(k) = buckets.keys().next().copied() {
                    buckets.remove(&k);
                }
            }
        }
        let b = buckets.entry(key(ip)).or_insert(Bucket {
            tokens: BURST,
            last: now,
        });
        b.refill(now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().expect("not poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_client_is_refused_after_its_burst_and_admitted_again_later() {
        let l = MissLimiter::default();
        let a: IpAddr = "203.0.113.7".parse().unwrap();
        let b: IpAddr = "203.0.113.8".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..BURST as u32 {
            assert!(l.allows(a, t0));
            l.miss(a, t0);
        }
        assert!(!l.allows(a, t0), "burst used up");
        assert!(l.allows(b, t0), "others are not affected");
        assert!(!l.allows(a, t0 + Duration::from_secs(4)));
        assert!(
            l.allows(a, t0 + Duration::from_secs(5)),
            "one miss regained"
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let l = MissLimiter::default();
        let t0 = Instant::now();
        for i in 0..BURST as u32 {
            l.miss(format!("2001:db8:1:2::{i:x}").parse().unwrap(), t0);
        }
        assert!(!l.allows("2001:db8:1:2:ffff::1".parse().unwrap(), t0));
        assert!(l.allows("2001:db8:1:3::1".parse().unwrap(), t0));
        assert_eq!(l.tracked(), 1);
    }
}
