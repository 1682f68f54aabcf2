//! One UDP port for every participant of a meeting: which peer connection a datagram
//! belongs to.
//!
//! webrtc 0.21 has no UDP mux (it is a todo in its setting engine) and its async layer
//! binds a socket per peer connection, so the SFU drives the sans-IO `rtc` core itself
//! and routes datagrams here. On first contact a participant's browser sends STUN
//! binding requests whose USERNAME is `<our ufrag>:<their ufrag>`; the ufrag names the
//! peer connection, and the sender's address is remembered. Everything else (DTLS,
//! SRTP, SRTCP) is routed by that remembered address. The peer connection itself checks
//! each STUN request's MESSAGE-INTEGRITY with the ICE password, so a datagram routed
//! here on a guessed ufrag is still refused there.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

use rtc::stun::attributes::ATTR_USERNAME;
use rtc::stun::message::{Message, is_stun_message};
use rtc::stun::textattrs::TextAttribute;

/// Routes datagrams to peers identified by `K`.
#[derive(Debug)]
pub struct Demux<K> {
    by_ufrag: HashMap<String, K>,
    by_addr: HashMap<SocketAddr, K>,
}

impl<K> Default for Demux<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> Demux<K> {
    /// Registers a peer by the local ICE username fragment its answer carries.
    pub fn register(&mut self, ufrag: &str, peer: K) {
        self.by_ufrag.insert(ufrag.to_owned(), peer);
    }

    /// Forgets a peer and every address it was seen from.
    pub fn remove(&mut self, peer: K) {
        self.by_ufrag.retain(|_, p| *p != peer);
        self.by_addr.retain(|_, p| *p != peer);
    }

    /// The peer a datagram from `from` belongs to, if any. STUN messages are routed by
    /// their USERNAME (and teach the demux the sender's address); other datagrams by
    /// the sender's address.
    pub fn route(&mut self, datagram: &[u8], from: SocketAddr) -> Option<K> {
        if is_stun_message(datagram)
            && let Some(peer) = self.peer_by_username(datagram)
        {
            // A participant's address can change (a network switch); the newest
            // address it proves with a STUN request wins.
            self.by_addr.insert(from, peer);
            return Some(peer);
        }
        self.by_addr.get(&from).copied()
    }

    fn peer_by_username(&self, datagram: &[u8]) -> Option<K> {
        let mut m = Message::new();
        m.unmarshal_binary(datagram).ok()?;
        let user = TextAttribute::get_from_as(&m, ATTR_USERNAME).ok()?;
        let local = user.text.split(':').next()?;
        self.by_ufrag.get(local).copied()
    }

    /// How many addresses are known (for metrics and tests).
    pub fn addresses(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::message::{BINDING_REQUEST, Setter};

    fn binding_request(username: &str) -> Vec<u8> {
        let mut m = Message::new();
        let user = TextAttribute::new(ATTR_USERNAME, username.to_owned());
        let setters: Vec<Box<dyn Setter>> = vec![Box::new(BINDING_REQUEST), Box::new(user)];
        m.build(&setters).unwrap();
        m.raw
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_contact_by_ufrag_then_by_address() {
        let mut d = Demux::default();
        d.register("sfuA", 1u32);
        d.register("sfuB", 2u32);
        // Media before any STUN from that address goes nowhere.
        assert_eq!(
            d.route(b"\x80\x60dtls-or-rtp", addr("198.51.100.1:5000")),
            None
        );
        assert_eq!(
            d.route(&binding_request("sfuB:browser1"), addr("198.51.100.1:5000")),
            Some(2)
        );
        assert_eq!(
            d.route(&binding_request("sfuA:browser2"), addr("198.51.100.2:6000")),
            Some(1)
        );
        assert_eq!(d.route(b"\x80\x60rtp", addr("198.51.100.1:5000")), Some(2));
        assert_eq!(
            d.route(b"\x16\xfe\xfddtls", addr("198.51.100.2:6000")),
            Some(1)
        );
        assert_eq!(d.addresses(), 2);
    }

    #[test]
    fn unknown_ufrags_and_garbage_are_dropped() {
        let mut d = Demux::default();
        d.register("sfuA", 1u32);
        assert_eq!(
            d.route(&binding_request("nobody:x"), addr("203.0.113.9:1")),
            None
        );
        assert_eq!(
            d.route(&binding_request("sfuA"), addr("203.0.113.9:2")),
            Some(1),
            "no remote part is fine"
        );
        assert_eq!(d.route(&[], addr("203.0.113.9:3")), None);
        assert_eq!(d.route(&[0u8; 20], addr("203.0.113.9:4")), None);
        assert_eq!(d.addresses(), 1);
    }

    #[test]
    fn a_new_address_proven_by_stun_takes_over_and_removal_forgets_all() {
        let mut d = Demux::default();
        d.register("sfuA", 7u32);
        d.route(&binding_request("sfuA:b"), addr("198.51.100.1:5000"));
        d.route(&binding_request("sfuA:b"), addr("198.51.100.1:5001"));
        assert_eq!(d.route(b"\x80rtp", addr("198.51.100.1:5001")), Some(7));
        d.remove(7);
        assert_eq!(d.route(b"\x80rtp", addr("198.51.100.1:5001")), None);
        assert_eq!(
            d.route(&binding_request("sfuA:b"), addr("198.51.100.1:5001")),
            None
        );
        assert_eq!(d.addresses(), 0);
    }
}
