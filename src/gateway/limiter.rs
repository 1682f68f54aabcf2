//! Rate limit for failed lookups, per client: guessing join tokens costs time. A
//! client that used up its misses is refused every lookup until its bucket refills,
//! hits included, so a guess that happens to hit is not told apart.
//!
//! IPv6 clients are limited per /64 (one subscriber's usual prefix), or changing the
//! low address bits would reset the bucket. The table lives in memory only and is
//! bounded: when full, clients whose bucket has refilled are forgotten (at most one
//! sweep a second), and clients that still find no room share one bucket.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by every client not in `buckets` while the table is full: an attacker
    /// who fills the table with fresh addresses gains no fresh buckets.
    overflow: Option<Bucket>,
    last_sweep: Option<Instant>,
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

impl State {
    /// Forgets clients whose bucket has refilled; at most once a second, so a full
    /// table does not cost a scan per miss.
    fn sweep(&mut self, now: Instant) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_sweep = Some(now);
        self.buckets.retain(|_, b| {
            b.refill(now);
            b.tokens < BURST
        });
        if let Some(b) = &mut self.overflow {
            b.refill(now);
            if b.tokens >= BURST {
                self.overflow = None;
            }
        }
    }

    /// The bucket of `ip`: its own, or the shared one when the table is full.
    fn bucket(&mut self, ip: IpAddr, now: Instant) -> &mut Bucket {
        let k = key(ip);
        if !self.buckets.contains_key(&k) && self.buckets.len() >= MAX_CLIENTS {
            self.sweep(now);
        }
        if self.buckets.contains_key(&k) || self.buckets.len() < MAX_CLIENTS {
            self.buckets.entry(k).or_insert(Bucket {
                tokens: BURST,
                last: now,
            })
        } else {
            self.overflow.get_or_insert(Bucket {
                tokens: BURST,
                last: now,
            })
        }
    }
}

impl MissLimiter {
    /// Whether `ip` may look a token up now.
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        let mut state = self.state.lock().expect("not poisoned");
        let k = key(ip);
        let full = state.buckets.len() >= MAX_CLIENTS;
        let state = &mut *state;
        let bucket = match (state.buckets.get_mut(&k), &mut state.overflow) {
            (Some(b), _) => b,
            (None, Some(b)) if full => b,
            (None, _) => return true,
        };
        bucket.refill(now);
        bucket.tokens >= 1.0
    }

    /// Counts a failed lookup by `ip`.
    pub fn miss(&self, ip: IpAddr, now: Instant) {
        let mut state = self.state.lock().expect("not poisoned");
        let b = state.bucket(ip, now);
        b.refill(now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// Clients tracked now.
    pub fn tracked(&self) -> usize {
        self.state.lock().expect("not poisoned").buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_full_table_puts_newcomers_into_one_shared_bucket() {
        let l = MissLimiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_CLIENTS as u32 {
            l.miss(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(l.tracked(), MAX_CLIENTS);
        // Ten fresh addresses use up the shared bucket between them.
        for i in 0..BURST as u32 {
            let ip = IpAddr::from((0xC000_0000u32 + i).to_be_bytes());
            assert!(l.allows(ip, t0));
            l.miss(ip, t0);
        }
        let next = IpAddr::from(0xC000_1000u32.to_be_bytes());
        assert!(!l.allows(next, t0), "no fresh bucket for a fresh address");
        assert_eq!(l.tracked(), MAX_CLIENTS, "bounded");
        // Once the tracked clients' buckets refilled, a sweep makes room again.
        let later = t0 + Duration::from_secs(60);
        l.miss(next, later);
        assert_eq!(l.tracked(), 1);
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
