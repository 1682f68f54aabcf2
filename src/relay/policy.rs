//! What the relay allows, decided before the TURN protocol engine sees a request: who
//! may allocate (a credential the SFU issued, not expired), where an allocation may
//! reach (only the SFU media address its credential names), and how much (allocations
//! per credential and in all, allocation attempts per client address, bytes per
//! second per allocation). Pure: the driver passes the time and applies the verdicts.
//!
//! The protocol engine (`turn-server-proto`) knows only static users and installs any
//! permission a user asks for; everything raum promises about the relay lives here.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::turn_credentials::{Accepted, Refused, TurnSecret};

/// STUN error codes the policy answers with (RFC 8489, RFC 8656).
pub mod code {
    /// An attribute the policy reads appears more than once.
    pub const BAD_REQUEST: u16 = 400;
    /// The credential is missing, malformed, expired or wrong.
    pub const UNAUTHORIZED: u16 = 401;
    /// The peer is not the credential's SFU, or the request is one raum never serves.
    pub const FORBIDDEN: u16 = 403;
    /// Only UDP relays (to an SFU's UDP media port) are offered.
    pub const UNSUPPORTED_TRANSPORT: u16 = 442;
    /// The credential holds as many allocations as it may.
    pub const ALLOCATION_QUOTA_REACHED: u16 = 486;
    /// The server holds as many allocations as it may.
    pub const INSUFFICIENT_CAPACITY: u16 = 508;
}

/// The TURN methods the policy tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Allocate.
    Allocate,
    /// Refresh.
    Refresh,
    /// CreatePermission.
    CreatePermission,
    /// ChannelBind.
    ChannelBind,
    /// Connect and ConnectionBind (RFC 6062, TCP relays).
    TcpRelay,
    /// Anything else (Binding; unknown methods the engine answers itself).
    Other,
}

/// A request as the policy sees it (control messages only: owning its few bytes costs
/// nothing that matters).
#[derive(Clone, Debug)]
pub struct Request {
    /// Which.
    pub method: Method,
    /// The USERNAME attribute, if any (the first request of a client has none).
    pub username: Option<String>,
    /// Every XOR-PEER-ADDRESS in it.
    pub peers: Vec<SocketAddr>,
    /// REQUESTED-TRANSPORT's protocol number, if present (17 UDP, 6 TCP).
    pub requested_transport: Option<u8>,
    /// Whether it names its user by USERHASH (RFC 8489) instead of USERNAME.
    pub userhash: bool,
    /// Whether USERNAME, USERHASH or REQUESTED-TRANSPORT appears more than once (the
    /// policy would read the first, the engine the last).
    pub repeated: bool,
}

/// What to do with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let the engine handle it; with a credential, make sure the engine knows that
    /// user (its password is the HMAC, recomputed here).
    Pass(Option<User>),
    /// Answer with this STUN error and a reason (which never names the input).
    Refuse(u16, &'static str),
    /// Drop it unanswered (a flood from one address).
    Drop,
}

/// A TURN user the engine must know to check a request's integrity.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The username (as the client sent it).
    pub username: String,
    /// Its password.
    pub password: String,
    /// Where its allocations may relay to.
    pub relay_to: SocketAddr,
    /// How long the credential is still valid: its allocations relay no longer.
    pub valid_for: Duration,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("User(..)")
    }
}

/// The relay's limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Allocations one credential may hold at once (a browser makes one per TURN URL
    /// it is given, and a few more across ICE restarts).
    pub allocations_per_credential: usize,
    /// Allocations the server holds at once.
    pub allocations: usize,
    /// Allocate requests one client address may make in a burst, then one per
    /// [`Limits::allocate_refill`].
    pub allocate_burst: u32,
    /// How often one more Allocate request is allowed per address.
    pub allocate_refill: Duration,
    /// Bytes per second one allocation may relay (each way, counted together).
    pub bytes_per_second: u64,
    /// Networks an SFU media address may be in (the nodes' or the load balancers'
    /// addresses). A credential naming an address outside them is refused, so even a
    /// leaked secret cannot turn the relay towards anything else. Empty: the
    /// credential alone decides, except for the [`NEVER_RELAYED`] ranges.
    pub sfu_networks: Vec<ipnet::IpNet>,
    /// The ports SFU media addresses may have (the cluster's NodePort range). `None`:
    /// any.
    pub sfu_ports: Option<(u16, u16)>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            allocations_per_credential: 6,
            allocations: 2000,
            allocate_burst: 20,
            allocate_refill: Duration::from_millis(500),
            // 8 Mbit/s: a participant's whole call (the class of 30 needs under 6).
            bytes_per_second: 1_000_000,
            sfu_networks: Vec::new(),
            sfu_ports: None,
        }
    }
}

/// Ranges a credential may never name, whoever signed it: loopback, link-local (the
/// cloud metadata address 169.254.169.254 among them), "this network", multicast and
/// reserved space, and the metadata addresses clouds put elsewhere (AWS's IPv6 one,
/// Alibaba's). Only an `--sfu-network` inside one of them opens it (a test's SFU on
/// loopback, standalone on 127.0.0.1): a wide one such as 0.0.0.0/0 does not.
pub const NEVER_RELAYED: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/3",
    "100.100.100.200/32",
    "::/128",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
    "fd00:ec2::254/128",
];

/// Token bucket of Allocate requests per client address (IPv6 per /64, as a host
/// there can pick any address in its prefix).
#[derive(Clone, Copy, Debug)]
struct Attempts {
    tokens: u32,
    at: Instant,
}

/// Bytes an allocation may still relay this second.
#[derive(Clone, Copy, Debug)]
struct Budget {
    /// The credential it was made with (quotas), by index into `credentials`;
    /// `None` once its client has gone ([`Policy::orphaned`]).
    username: Option<usize>,
    relay_to: SocketAddr,
    /// When its credential expires: nothing is relayed after.
    ends: Instant,
    window: Instant,
    bytes: u64,
}

/// The relay's policy and the state its quotas need.
pub struct Policy {
    secret: TurnSecret,
    limits: Limits,
    never: Vec<ipnet::IpNet>,
    attempts: HashMap<IpAddr, Attempts>,
    /// Allocations by relayed address.
    allocations: HashMap<SocketAddr, Budget>,
    /// Usernames with allocations, and how many each holds.
    credentials: slab::Slab<(String, usize)>,
    by_username: HashMap<String, usize>,
    /// Requests refused (metrics).
    pub refused: u64,
    /// Allocate requests dropped by the per-address limit.
    pub dropped: u64,
    /// Relayed datagrams dropped: to a peer that is not the allocation's SFU, or over
    /// its bandwidth.
    pub relay_dropped: u64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("allocations", &self.allocations.len())
            .finish_non_exhaustive()
    }
}

/// The key an address is limited by: IPv4 as it is, IPv6 by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => ip.to_canonical(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
    }
}

impl Policy {
    /// A policy checking credentials under `secret`, with `limits`.
    pub fn new(secret: TurnSecret, limits: Limits) -> Self {
        Self {
            secret,
            limits,
            never: NEVER_RELAYED
                .iter()
                .map(|n| n.parse().expect("a CIDR"))
                .collect(),
            attempts: HashMap::new(),
            allocations: HashMap::new(),
            credentials: slab::Slab::new(),
            by_username: HashMap::new(),
            refused: 0,
            dropped: 0,
            relay_dropped: 0,
        }
    }

    /// Allocations held now.
    pub fn allocations(&self) -> usize {
        self.allocations.len()
    }

    /// Decides about `req` from `client` at `now` (`unix` is the same instant in Unix
    /// seconds, for the credential's expiry).
    pub fn decide(&mut self, req: &Request, client: IpAddr, now: Instant, unix: u64) -> Verdict {
        let verdict = self.verdict(req, client, now, unix);
        match verdict {
            Verdict::Refuse(..) => self.refused += 1,
            Verdict::Drop => self.dropped += 1,
            Verdict::Pass(_) => {}
        }
        verdict
    }

    fn verdict(&mut self, req: &Request, client: IpAddr, now: Instant, unix: u64) -> Verdict {
        if req.repeated {
            return Verdict::Refuse(code::BAD_REQUEST, "an attribute appears twice");
        }
        if req.method == Method::TcpRelay {
            return Verdict::Refuse(code::FORBIDDEN, "only UDP relays to the SFU");
        }
        if req.method == Method::Allocate && !self.attempt(client, now) {
            return Verdict::Drop;
        }
        // A hashed username cannot be read, so neither its expiry nor its SFU could be
        // checked, and the engine would accept it for any user it once knew. Browsers
        // send USERNAME.
        if req.userhash {
            return Verdict::Refuse(code::UNAUTHORIZED, "send USERNAME, not USERHASH");
        }
        let Some(username) = req.username.as_deref() else {
            // The first Allocate has no credential: the engine answers 401 with its
            // realm and nonce. Other requests without one it refuses itself.
            return Verdict::Pass(None);
        };
        let accepted = match self.secret.accept(username, unix) {
            Ok(a) => a,
            Err(Refused::Expired) => {
                return Verdict::Refuse(code::UNAUTHORIZED, "the credential has expired");
            }
            Err(Refused::Malformed | Refused::TooLong) => {
                return Verdict::Refuse(code::UNAUTHORIZED, "the credential is not raum's");
            }
        };
        let Accepted {
            relay_to,
            password,
            expires,
            keyed,
        } = accepted;
        // A meeting key is held in a meeting's namespace; what it signs is fenced by
        // the SFU networks, so without them it is not accepted at all.
        if keyed && self.limits.sfu_networks.is_empty() {
            return Verdict::Refuse(
                code::FORBIDDEN,
                "meeting keys need the relay's --sfu-network",
            );
        }
        if let Some((low, high)) = self.limits.sfu_ports
            && !(low..=high).contains(&relay_to.port())
        {
            return Verdict::Refuse(code::FORBIDDEN, "the credential names no SFU port");
        }
        let ip = relay_to.ip().to_canonical();
        let networks = &self.limits.sfu_networks;
        if let Some(never) = self.never.iter().find(|r| r.contains(&ip)) {
            if !networks
                .iter()
                .any(|n| never.contains(n) && n.contains(&ip))
            {
                return Verdict::Refuse(
                    code::FORBIDDEN,
                    "the credential names an address the relay never reaches",
                );
            }
        } else if !networks.is_empty() && !networks.iter().any(|n| n.contains(&ip)) {
            return Verdict::Refuse(code::FORBIDDEN, "the credential names no SFU network");
        }
        match req.method {
            Method::Allocate => {
                if req.requested_transport.is_some_and(|p| p != 17) {
                    return Verdict::Refuse(code::UNSUPPORTED_TRANSPORT, "only UDP relays");
                }
                let held = self
                    .by_username
                    .get(username)
                    .map_or(0, |&k| self.credentials[k].1);
                if held >= self.limits.allocations_per_credential {
                    return Verdict::Refuse(
                        code::ALLOCATION_QUOTA_REACHED,
                        "the credential holds its allocations",
                    );
                }
                if self.allocations.len() >= self.limits.allocations {
                    return Verdict::Refuse(code::INSUFFICIENT_CAPACITY, "the relay is full");
                }
            }
            Method::CreatePermission => {
                if req.peers.is_empty() || req.peers.iter().any(|p| p.ip() != relay_to.ip()) {
                    return Verdict::Refuse(code::FORBIDDEN, "the relay reaches the SFU only");
                }
            }
            Method::ChannelBind => {
                if req.peers.is_empty() || req.peers.iter().any(|p| *p != relay_to) {
                    return Verdict::Refuse(code::FORBIDDEN, "the relay reaches the SFU only");
                }
            }
            Method::Refresh | Method::Other | Method::TcpRelay => {}
        }
        Verdict::Pass(Some(User {
            username: username.to_owned(),
            password,
            relay_to,
            valid_for: Duration::from_secs(expires.saturating_sub(unix)),
        }))
    }

    /// Takes one Allocate attempt from `client`'s bucket; false when it is empty.
    fn attempt(&mut self, client: IpAddr, now: Instant) -> bool {
        let burst = self.limits.allocate_burst;
        let refill = self.limits.allocate_refill.max(Duration::from_millis(1));
        let a = self.attempts.entry(client_key(client)).or_insert(Attempts {
            tokens: burst,
            at: now,
        });
        let earned = (now.saturating_duration_since(a.at).as_nanos() / refill.as_nanos()) as u32;
        if earned > 0 {
            a.tokens = (a.tokens.saturating_add(earned)).min(burst);
            a.at = now;
        }
        if a.tokens == 0 {
            return false;
        }
        a.tokens -= 1;
        true
    }

    /// Forgets buckets that are full again (so the map holds only recent clients).
    pub fn sweep(&mut self, now: Instant) {
        let full = self.limits.allocate_refill * self.limits.allocate_burst;
        self.attempts
            .retain(|_, a| now.saturating_duration_since(a.at) < full);
    }

    /// An allocation was made at `relayed` for `user`.
    pub fn allocated(&mut self, relayed: SocketAddr, user: &User, now: Instant) {
        let key = match self.by_username.get(&user.username) {
            Some(&k) => k,
            None => {
                let k = self.credentials.insert((user.username.clone(), 0));
                self.by_username.insert(user.username.clone(), k);
                k
            }
        };
        self.credentials[key].1 += 1;
        self.allocations.insert(
            relayed,
            Budget {
                username: Some(key),
                relay_to: user.relay_to,
                ends: now + user.valid_for,
                window: now,
                bytes: 0,
            },
        );
    }

    /// The allocation at `relayed` ended.
    pub fn released(&mut self, relayed: SocketAddr) {
        if let Some(b) = self.allocations.remove(&relayed) {
            self.uncount(b.username);
        }
    }

    /// The client of the allocation at `relayed` has gone (its TCP connection
    /// closed) before the allocation ended: from `now` it relays nothing and no longer
    /// counts against its credential, so the participant can allocate again at once.
    /// It counts against the server's total until [`Policy::released`], since its
    /// socket stays bound until then (a new allocation must not get its port while the
    /// engine still knows it).
    pub fn orphaned(&mut self, relayed: SocketAddr, now: Instant) {
        if let Some(b) = self.allocations.get_mut(&relayed) {
            b.ends = now;
            let key = b.username.take();
            self.uncount(key);
        }
    }

    fn uncount(&mut self, key: Option<usize>) {
        let Some(key) = key else { return };
        let c = &mut self.credentials[key];
        c.1 -= 1;
        if c.1 == 0 {
            let (name, _) = self.credentials.remove(key);
            self.by_username.remove(&name);
        }
    }

    /// Whether `bytes` may be relayed between the allocation at `relayed` and `peer`
    /// at `now`: the peer must be the credential's SFU, and the allocation within its
    /// bandwidth. Counted when not.
    pub fn relay(
        &mut self,
        relayed: SocketAddr,
        peer: SocketAddr,
        bytes: usize,
        now: Instant,
    ) -> bool {
        let ok = match self.allocations.get_mut(&relayed) {
            Some(b) if b.relay_to == peer && now < b.ends => {
                if now.saturating_duration_since(b.window) >= Duration::from_secs(1) {
                    b.window = now;
                    b.bytes = 0;
                }
                b.bytes += bytes as u64;
                b.bytes <= self.limits.bytes_per_second
            }
            _ => false,
        };
        if !ok {
            self.relay_dropped += 1;
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIX: u64 = 1_800_000_000;

    fn sfu() -> SocketAddr {
        "198.18.0.1:40000".parse().unwrap()
    }

    fn client() -> IpAddr {
        "198.18.0.2".parse().unwrap()
    }

    fn policy() -> (Policy, String) {
        let secret = TurnSecret::from_bytes(b"secret");
        let c = secret.issue("p1", sfu(), UNIX + 600);
        (Policy::new(secret, Limits::default()), c.username)
    }

    fn req(method: Method, username: Option<&str>, peers: &[SocketAddr]) -> Request {
        Request {
            method,
            username: username.map(str::to_owned),
            peers: peers.to_vec(),
            requested_transport: Some(17),
            userhash: false,
            repeated: false,
        }
    }

    #[test]
    fn a_credential_reaches_its_sfu_and_nothing_else() {
        let (mut p, user) = policy();
        let now = Instant::now();
        let u = Some(user.as_str());
        assert!(matches!(
            p.decide(&req(Method::Allocate, u, &[]), client(), now, UNIX),
            Verdict::Pass(Some(User { relay_to, .. })) if relay_to == sfu()
        ));
        // A permission for the SFU's address (any port: permissions are per IP).
        let sfu_other_port: SocketAddr = "198.18.0.1:9".parse().unwrap();
        assert!(matches!(
            p.decide(
                &req(Method::CreatePermission, u, &[sfu_other_port]),
                client(),
                now,
                UNIX
            ),
            Verdict::Pass(Some(_))
        ));
        for elsewhere in [
            "127.0.0.1:40000",
            "169.254.169.254:80",
            "10.96.0.1:443",
            "[::1]:40000",
            "198.18.0.3:40000",
            "0.0.0.0:40000",
        ] {
            let peer: SocketAddr = elsewhere.parse().unwrap();
            assert_eq!(
                p.decide(
                    &req(Method::CreatePermission, u, &[peer]),
                    client(),
                    now,
                    UNIX
                ),
                Verdict::Refuse(code::FORBIDDEN, "the relay reaches the SFU only"),
                "{elsewhere}"
            );
            // One bad address among good ones spoils the request.
            assert!(matches!(
                p.decide(
                    &req(Method::CreatePermission, u, &[sfu(), peer]),
                    client(),
                    now,
                    UNIX
                ),
                Verdict::Refuse(code::FORBIDDEN, _)
            ));
        }
        // A channel is to one port: the SFU's media port.
        assert!(matches!(
            p.decide(&req(Method::ChannelBind, u, &[sfu()]), client(), now, UNIX),
            Verdict::Pass(Some(_))
        ));
        assert!(matches!(
            p.decide(
                &req(Method::ChannelBind, u, &[sfu_other_port]),
                client(),
                now,
                UNIX
            ),
            Verdict::Refuse(code::FORBIDDEN, _)
        ));
        assert!(matches!(
            p.decide(&req(Method::CreatePermission, u, &[]), client(), now, UNIX),
            Verdict::Refuse(code::FORBIDDEN, _)
        ));
        assert!(matches!(
            p.decide(&req(Method::TcpRelay, u, &[sfu()]), client(), now, UNIX),
            Verdict::Refuse(code::FORBIDDEN, _)
        ));
    }

    #[test]
    fn expired_foreign_and_malformed_credentials_are_refused() {
        let (mut p, user) = policy();
        let now = Instant::now();
        let later = UNIX + 601;
        assert_eq!(
            p.decide(
                &req(Method::Refresh, Some(&user), &[]),
                client(),
                now,
                later
            ),
            Verdict::Refuse(code::UNAUTHORIZED, "the credential has expired")
        );
        for bad in ["admin", "1800000600:p1", "", "1800000600:p1:localhost:1"] {
            assert!(matches!(
                p.decide(&req(Method::Allocate, Some(bad), &[]), client(), now, UNIX),
                Verdict::Refuse(code::UNAUTHORIZED, _)
            ));
        }
        // Another secret's credential is well formed: it passes here with the
        // password this secret gives it, and the engine's integrity check fails.
        let other = TurnSecret::from_bytes(b"other").issue("p1", sfu(), UNIX + 600);
        match p.decide(
            &req(Method::Allocate, Some(&other.username), &[]),
            client(),
            now,
            UNIX,
        ) {
            Verdict::Pass(Some(u)) => assert_ne!(u.password, other.password),
            v => panic!("{v:?}"),
        }
        let hashed = Request {
            userhash: true,
            ..req(Method::Refresh, None, &[])
        };
        assert!(matches!(
            p.decide(&hashed, client(), now, UNIX),
            Verdict::Refuse(code::UNAUTHORIZED, _)
        ));
        let twice = Request {
            repeated: true,
            ..req(Method::Allocate, Some(&user), &[])
        };
        assert!(matches!(
            p.decide(&twice, client(), now, UNIX),
            Verdict::Refuse(code::BAD_REQUEST, _)
        ));
        assert_eq!(p.refused, 7);
    }

    #[test]
    fn quotas_per_credential_per_server_and_per_address() {
        let (mut p, user) = policy();
        let now = Instant::now();
        let pass = |p: &mut Policy, now| match p.decide(
            &req(Method::Allocate, Some(&user), &[]),
            client(),
            now,
            UNIX,
        ) {
            Verdict::Pass(Some(u)) => u,
            v => panic!("{v:?}"),
        };
        for i in 0..6 {
            let u = pass(&mut p, now);
            p.allocated(
                format!("198.18.0.1:{}", 50000 + i).parse().unwrap(),
                &u,
                now,
            );
        }
        assert_eq!(
            p.decide(
                &req(Method::Allocate, Some(&user), &[]),
                client(),
                now,
                UNIX
            ),
            Verdict::Refuse(
                code::ALLOCATION_QUOTA_REACHED,
                "the credential holds its allocations"
            )
        );
        p.released("198.18.0.1:50000".parse().unwrap());
        let u = pass(&mut p, now);
        p.allocated("198.18.0.1:50000".parse().unwrap(), &u, now);
        // An allocation whose TCP connection closed leaves its credential's quota at
        // once and relays nothing more, but still counts against the server's total
        // until the engine lets it go; released then, it is not uncounted twice.
        let orphan: SocketAddr = "198.18.0.1:50001".parse().unwrap();
        assert!(p.relay(orphan, sfu(), 100, now));
        p.orphaned(orphan, now);
        assert!(
            !p.relay(orphan, sfu(), 100, now),
            "an orphan relays nothing"
        );
        assert_eq!(p.allocations(), 6);
        let u = pass(&mut p, now);
        p.allocated("198.18.0.1:50100".parse().unwrap(), &u, now);
        assert_eq!(p.allocations(), 7);
        p.released(orphan);
        p.orphaned(orphan, now);
        assert_eq!(p.allocations(), 6);
        assert!(matches!(
            p.decide(
                &req(Method::Allocate, Some(&user), &[]),
                client(),
                now,
                UNIX
            ),
            Verdict::Refuse(code::ALLOCATION_QUOTA_REACHED, _)
        ));
        // TCP relays are not offered.
        let tcp = Request {
            requested_transport: Some(6),
            ..req(Method::Allocate, Some(&user), &[])
        };
        assert!(matches!(
            p.decide(&tcp, client(), now, UNIX),
            Verdict::Refuse(code::UNSUPPORTED_TRANSPORT, _)
        ));

        // One address: 20 attempts at once, then one per 500 ms.
        let (mut p, _) = policy();
        let flood: Vec<Verdict> = (0..1000)
            .map(|_| p.decide(&req(Method::Allocate, None, &[]), client(), now, UNIX))
            .collect();
        assert_eq!(
            flood.iter().filter(|v| **v == Verdict::Pass(None)).count(),
            20
        );
        assert_eq!(p.dropped, 980);
        let soon = now + Duration::from_millis(1100);
        assert_eq!(
            p.decide(&req(Method::Allocate, None, &[]), client(), soon, UNIX),
            Verdict::Pass(None)
        );
        assert_eq!(
            p.decide(&req(Method::Allocate, None, &[]), client(), soon, UNIX),
            Verdict::Pass(None)
        );
        assert_eq!(
            p.decide(&req(Method::Allocate, None, &[]), client(), soon, UNIX),
            Verdict::Drop
        );
        // Another host of the same IPv6 /64 shares the bucket; another address does not.
        let (mut p, _) = policy();
        for i in 0..20u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, i]);
            assert_eq!(
                p.decide(&req(Method::Allocate, None, &[]), ip, now, UNIX),
                Verdict::Pass(None)
            );
        }
        // IPv4 clients of a dual-stack listener (::ffff:a.b.c.d) each have their own.
        let mapped =
            |last: u8| IpAddr::from(std::net::Ipv4Addr::new(198, 18, 0, last).to_ipv6_mapped());
        for _ in 0..20 {
            assert_eq!(
                p.decide(&req(Method::Allocate, None, &[]), mapped(7), now, UNIX),
                Verdict::Pass(None)
            );
        }
        assert_eq!(
            p.decide(&req(Method::Allocate, None, &[]), mapped(7), now, UNIX),
            Verdict::Drop
        );
        assert_eq!(
            p.decide(&req(Method::Allocate, None, &[]), mapped(8), now, UNIX),
            Verdict::Pass(None)
        );
        let same_prefix = IpAddr::from([0x2001, 0xdb8, 0, 1, 9, 9, 9, 9]);
        assert_eq!(
            p.decide(&req(Method::Allocate, None, &[]), same_prefix, now, UNIX),
            Verdict::Drop
        );
        assert_eq!(
            p.decide(&req(Method::Allocate, None, &[]), client(), now, UNIX),
            Verdict::Pass(None)
        );
        p.sweep(now + Duration::from_secs(60));
        assert!(p.attempts.is_empty(), "full buckets are forgotten");
    }

    #[test]
    fn loopback_link_local_and_metadata_addresses_are_never_relayed_to() {
        let secret = TurnSecret::from_bytes(b"secret");
        let now = Instant::now();
        let allocate = |p: &mut Policy, to: &str| {
            let user = secret.issue("p1", to.parse().unwrap(), UNIX + 600).username;
            p.decide(
                &req(Method::Allocate, Some(&user), &[]),
                client(),
                now,
                UNIX,
            )
        };
        let never = Verdict::Refuse(
            code::FORBIDDEN,
            "the credential names an address the relay never reaches",
        );
        let wide = Limits {
            sfu_networks: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            ..Limits::default()
        };
        for limits in [Limits::default(), wide] {
            let mut p = Policy::new(secret.clone(), limits);
            for to in [
                "127.0.0.1:6443",
                "127.1.2.3:50000",
                "169.254.169.254:80",
                "0.0.0.0:50000",
                "224.0.0.1:50000",
                "255.255.255.255:50000",
                "100.100.100.200:80",
                "[::1]:50000",
                "[::ffff:127.0.0.1]:50000",
                "[::ffff:169.254.169.254]:80",
                "[fe80::1]:50000",
                "[fd00:ec2::254]:80",
                "[ff02::1]:50000",
            ] {
                assert_eq!(allocate(&mut p, to), never, "{to}");
            }
            assert!(matches!(
                allocate(&mut p, "198.18.0.1:40000"),
                Verdict::Pass(Some(_))
            ));
        }
        // A network inside loopback opens loopback (a test's SFU, standalone's demo).
        let mut p = Policy::new(
            secret.clone(),
            Limits {
                sfu_networks: vec!["127.0.0.1/32".parse().unwrap()],
                ..Limits::default()
            },
        );
        assert!(matches!(
            allocate(&mut p, "127.0.0.1:50000"),
            Verdict::Pass(Some(_))
        ));
        assert_eq!(allocate(&mut p, "127.0.0.2:50000"), never);
    }

    #[test]
    fn meeting_keys_need_sfu_networks_and_ports_are_fenced_too() {
        let secret = TurnSecret::from_bytes(b"secret");
        let now = Instant::now();
        let keyed = TurnSecret::for_meeting(secret.meeting_key("uid-1").as_bytes(), "uid-1");
        let allocate = |p: &mut Policy, user: &str| {
            p.decide(&req(Method::Allocate, Some(user), &[]), client(), now, UNIX)
        };
        let user = keyed.issue("p1", sfu(), UNIX + 600).username;
        let mut open = Policy::new(secret.clone(), Limits::default());
        assert_eq!(
            allocate(&mut open, &user),
            Verdict::Refuse(
                code::FORBIDDEN,
                "meeting keys need the relay's --sfu-network"
            )
        );
        let mut fenced = Policy::new(
            secret.clone(),
            Limits {
                sfu_networks: vec!["198.18.0.0/24".parse().unwrap()],
                sfu_ports: Some((30000, 32767)),
                ..Limits::default()
            },
        );
        let inside = keyed
            .issue("p1", "198.18.0.1:31000".parse().unwrap(), UNIX + 600)
            .username;
        assert!(matches!(
            allocate(&mut fenced, &inside),
            Verdict::Pass(Some(_))
        ));
        for port in [22, 4789, 6443, 10250, 32768] {
            let to = SocketAddr::new("198.18.0.1".parse().unwrap(), port);
            let user = keyed.issue("p1", to, UNIX + 600).username;
            assert_eq!(
                allocate(&mut fenced, &user),
                Verdict::Refuse(code::FORBIDDEN, "the credential names no SFU port"),
                "{port}"
            );
        }
    }

    #[test]
    fn a_credential_outside_the_sfu_networks_is_refused_even_with_the_secret() {
        let secret = TurnSecret::from_bytes(b"secret");
        let limits = Limits {
            sfu_networks: vec!["198.18.0.0/24".parse().unwrap()],
            ..Limits::default()
        };
        let mut p = Policy::new(secret.clone(), limits);
        let now = Instant::now();
        let inside = secret.issue("p1", sfu(), UNIX + 600).username;
        assert!(matches!(
            p.decide(
                &req(Method::Allocate, Some(&inside), &[]),
                client(),
                now,
                UNIX
            ),
            Verdict::Pass(Some(_))
        ));
        for elsewhere in ["10.0.0.1:50000", "203.0.113.9:443"] {
            let forged = secret
                .issue("p1", elsewhere.parse().unwrap(), UNIX + 600)
                .username;
            assert_eq!(
                p.decide(
                    &req(Method::Allocate, Some(&forged), &[]),
                    client(),
                    now,
                    UNIX
                ),
                Verdict::Refuse(code::FORBIDDEN, "the credential names no SFU network"),
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn relayed_data_goes_to_the_sfu_within_its_bandwidth() {
        let (mut p, user) = policy();
        let now = Instant::now();
        let Verdict::Pass(Some(u)) = p.decide(
            &req(Method::Allocate, Some(&user), &[]),
            client(),
            now,
            UNIX,
        ) else {
            panic!()
        };
        let relayed: SocketAddr = "198.18.0.1:50001".parse().unwrap();
        p.allocated(relayed, &u, now);
        assert!(p.relay(relayed, sfu(), 1200, now));
        assert!(
            !p.relay(relayed, "198.18.0.1:40001".parse().unwrap(), 1200, now),
            "another port"
        );
        assert!(
            !p.relay("198.18.0.1:1".parse().unwrap(), sfu(), 1200, now),
            "no allocation"
        );
        // 1 MB a second: the rest of this second is refused, the next is fine.
        let mut sent = 1200u64;
        while p.relay(relayed, sfu(), 1200, now) {
            sent += 1200;
        }
        assert!(sent <= 1_000_000 && sent > 990_000, "{sent}");
        assert!(p.relay(relayed, sfu(), 1200, now + Duration::from_secs(1)));
        // Nothing after the credential expires (600 s from its issue).
        assert!(p.relay(relayed, sfu(), 1, now + Duration::from_secs(599)));
        assert!(!p.relay(relayed, sfu(), 1, now + Duration::from_secs(600)));
        p.released(relayed);
        assert!(!p.relay(relayed, sfu(), 1, now + Duration::from_secs(1)));
        assert_eq!(p.allocations(), 0);
        assert!(p.by_username.is_empty() && p.credentials.is_empty());
    }
}
