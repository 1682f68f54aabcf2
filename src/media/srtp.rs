//! SRTP and SRTCP (RFC 3711), in place and without allocation: the two profiles
//! browsers negotiate, `AEAD_AES_128_GCM` (RFC 7714) and `AES_CM_128_HMAC_SHA1_80`.
//!
//! A [`Context`] holds one direction's session keys (ours for what we send, the peer's
//! for what we receive). The per-stream state SRTP needs (the rollover counter and the
//! replay window, keyed by SSRC) lives with the caller's stream, which it has found by
//! SSRC anyway to route the packet, so protecting a packet costs no lookup here.
//! Buffers carry room behind the packet for the tag: [`MAX_OVERHEAD`] bytes.

use aes::Aes128;
use aes::cipher::{BlockEncrypt, InnerIvInit, KeyInit, StreamCipher};
use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;

/// The most bytes protection adds to an RTP or RTCP packet (GCM's tag plus the SRTCP
/// index).
pub const MAX_OVERHEAD: usize = 16 + 4;

/// The keying material a DTLS-SRTP exporter gives for both directions (RFC 5764 §4.2),
/// and how long it must be per profile.
pub const EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// An SRTP protection profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// AES-128 in Galois/Counter Mode with a 16-byte tag (RFC 7714).
    AeadAes128Gcm,
    /// AES-128 in counter mode with an 80-bit HMAC-SHA1 tag (RFC 3711).
    Aes128CmHmacSha1_80,
}

impl Profile {
    /// Master key length.
    pub const fn key_len(self) -> usize {
        16
    }

    /// Master salt length.
    pub const fn salt_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm => 12,
            Self::Aes128CmHmacSha1_80 => 14,
        }
    }

    /// Bytes of keying material for both directions.
    pub const fn keying_material_len(self) -> usize {
        2 * (self.key_len() + self.salt_len())
    }

    /// The tag's length on RTP (and RTCP) packets.
    pub const fn tag_len(self) -> usize {
        match self {
            Self::AeadAes128Gcm => 16,
            Self::Aes128CmHmacSha1_80 => 10,
        }
    }
}

/// Why a packet was not protected or unprotected. Carries no packet content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Shorter than a header plus its tag, or a header that does not parse.
    #[error("the packet is too short or malformed")]
    Malformed,
    /// The tag does not verify: not from the peer, or altered.
    #[error("the packet does not authenticate")]
    Auth,
    /// Seen before (or too old to tell): a replay.
    #[error("the packet was seen before")]
    Replay,
    /// No room behind the packet for its tag.
    #[error("the buffer has no room for the tag")]
    NoRoom,
}

/// How many packets below the highest one seen are still accepted (once each). A
/// keyframe is a burst of dozens of packets, and retransmissions of its losses arrive
/// behind whatever came meanwhile; libwebrtc uses the same window.
pub const REPLAY_WINDOW: u64 = 1024;

/// The state of one RTP stream (one SSRC) that SRTP needs: its rollover counter and,
/// for received streams, which recent packets were seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamState {
    started: bool,
    roc: u32,
    highest: u16,
    /// Bit (index mod [`REPLAY_WINDOW`]): the packet with that index, within the
    /// window below the highest, was seen.
    window: [u64; (REPLAY_WINDOW / 64) as usize],
}

impl StreamState {
    /// The rollover counter that `seq` most likely has (RFC 3711 Appendix A).
    fn guess_roc(&self, seq: u16) -> u32 {
        if !self.started {
            return 0;
        }
        let (s_l, seq) = (i32::from(self.highest), i32::from(seq));
        if s_l < 32768 {
            if seq - s_l > 32768 {
                self.roc.wrapping_sub(1)
            } else {
                self.roc
            }
        } else if s_l - 32768 > seq {
            self.roc.wrapping_add(1)
        } else {
            self.roc
        }
    }

    fn index(&self, seq: u16, roc: u32) -> u64 {
        (u64::from(roc) << 16) | u64::from(seq)
    }

    fn bit(&self, i: u64) -> bool {
        let b = i % REPLAY_WINDOW;
        self.window[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    fn set_bit(&mut self, i: u64, on: bool) {
        let b = i % REPLAY_WINDOW;
        let word = &mut self.window[(b / 64) as usize];
        if on {
            *word |= 1 << (b % 64);
        } else {
            *word &= !(1 << (b % 64));
        }
    }

    /// Whether the packet at (`roc`, `seq`) is a replay, without noting it.
    fn is_replay(&self, seq: u16, roc: u32) -> bool {
        if !self.started {
            return false;
        }
        let top = self.index(self.highest, self.roc);
        let i = self.index(seq, roc);
        if i > top {
            return false;
        }
        top - i >= REPLAY_WINDOW || self.bit(i)
    }

    /// Notes the packet at (`roc`, `seq`) as seen (sent or received).
    fn note(&mut self, seq: u16, roc: u32) {
        let i = self.index(seq, roc);
        if !self.started {
            *self = Self {
                started: true,
                roc,
                highest: seq,
                ..Self::default()
            };
            self.set_bit(i, true);
            return;
        }
        let top = self.index(self.highest, self.roc);
        if i > top {
            // The indices skipped on the way up have not been seen.
            if i - top >= REPLAY_WINDOW {
                self.window = Default::default();
            } else {
                for skipped in top + 1..i {
                    self.set_bit(skipped, false);
                }
            }
            self.set_bit(i, true);
            self.highest = seq;
            self.roc = roc;
        } else if top - i < REPLAY_WINDOW {
            self.set_bit(i, true);
        }
    }

    /// The rollover counter of the highest packet seen.
    pub fn roc(&self) -> u32 {
        self.roc
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per participant and direction, made once at the handshake and never moved on the media path"
)]
enum Cipher {
    Gcm {
        rtp: LessSafeKey,
        rtcp: LessSafeKey,
        rtp_salt: [u8; 12],
        rtcp_salt: [u8; 12],
    },
    Cm {
        rtp: Aes128,
        rtcp: Aes128,
        rtp_auth: hmac::Key,
        rtcp_auth: hmac::Key,
        rtp_salt: [u8; 14],
        rtcp_salt: [u8; 14],
    },
}

/// One direction's SRTP and SRTCP session keys.
pub struct Context {
    profile: Profile,
    cipher: Cipher,
    /// The next SRTCP index we send with.
    srtcp_index: u32,
    /// Received SRTCP replay windows, by sender SSRC (a peer uses a handful).
    srtcp_seen: Vec<(u32, StreamState)>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        write!(f, "srtp::Context({:?})", self.profile)
    }
}

/// The AES-CM key derivation of RFC 3711 §4.3 (also RFC 7714 §11's for GCM): the
/// master salt, left-aligned in a block with `label` XORed into byte 7, encrypted in
/// counter mode under the master key.
fn derive(master_key: &Aes128, master_salt: &[u8], label: u8, out: &mut [u8]) {
    for (counter, chunk) in (0u16..).zip(out.chunks_mut(16)) {
        let mut block = [0u8; 16];
        block[..master_salt.len()].copy_from_slice(master_salt);
        block[7] ^= label;
        block[14..].copy_from_slice(&counter.to_be_bytes());
        let mut b = aes::Block::from(block);
        master_key.encrypt_block(&mut b);
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn gcm_key(master: &Aes128, salt: &[u8], label: u8) -> LessSafeKey {
    let mut key = [0u8; 16];
    derive(master, salt, label, &mut key);
    LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).expect("a 16-byte key"))
}

/// Where an RTP packet's payload starts: after the fixed header, the CSRCs and the
/// header extension; `None` if the header is not all there.
pub fn rtp_header_len(packet: &[u8]) -> Option<usize> {
    if packet.len() < 12 || packet[0] >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(packet[0] & 0x0f);
    if packet[0] & 0x10 != 0 {
        let ext = packet.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    (len <= packet.len()).then_some(len)
}

impl Context {
    /// The context for `master_key` and `master_salt` under `profile`. Panics if their
    /// lengths are not the profile's (they come from the DTLS exporter, sized by
    /// [`Profile::keying_material_len`]).
    pub fn new(profile: Profile, master_key: &[u8], master_salt: &[u8]) -> Self {
        assert_eq!(master_key.len(), profile.key_len());
        assert_eq!(master_salt.len(), profile.salt_len());
        let master = Aes128::new(master_key.into());
        let cipher = match profile {
            Profile::AeadAes128Gcm => {
                let mut rtp_salt = [0u8; 12];
                let mut rtcp_salt = [0u8; 12];
                derive(&master, master_salt, 0x02, &mut rtp_salt);
                derive(&master, master_salt, 0x05, &mut rtcp_salt);
                Cipher::Gcm {
                    rtp: gcm_key(&master, master_salt, 0x00),
                    rtcp: gcm_key(&master, master_salt, 0x03),
                    rtp_salt,
                    rtcp_salt,
                }
            }
            Profile::Aes128CmHmacSha1_80 => {
                let mut keys = [[0u8; 16]; 2];
                derive(&master, master_salt, 0x00, &mut keys[0]);
                derive(&master, master_salt, 0x03, &mut keys[1]);
                let mut auth = [[0u8; 20]; 2];
                derive(&master, master_salt, 0x01, &mut auth[0]);
                derive(&master, master_salt, 0x04, &mut auth[1]);
                let mut rtp_salt = [0u8; 14];
                let mut rtcp_salt = [0u8; 14];
                derive(&master, master_salt, 0x02, &mut rtp_salt);
                derive(&master, master_salt, 0x05, &mut rtcp_salt);
                let hmac_key =
                    |k: &[u8; 20]| hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, k);
                Cipher::Cm {
                    rtp: Aes128::new(&keys[0].into()),
                    rtcp: Aes128::new(&keys[1].into()),
                    rtp_auth: hmac_key(&auth[0]),
                    rtcp_auth: hmac_key(&auth[1]),
                    rtp_salt,
                    rtcp_salt,
                }
            }
        };
        Self {
            profile,
            cipher,
            srtcp_index: 0,
            srtcp_seen: Vec::new(),
        }
    }

    /// The two directions' contexts from DTLS-SRTP keying material (client key, server
    /// key, client salt, server salt): `(ours, theirs)` for the side that was the DTLS
    /// client if `we_are_client`, else the other way round.
    pub fn pair_from_keying_material(
        profile: Profile,
        material: &[u8],
        we_are_client: bool,
    ) -> (Context, Context) {
        let (k, s) = (profile.key_len(), profile.salt_len());
        assert_eq!(material.len(), profile.keying_material_len());
        let client_key = &material[..k];
        let server_key = &material[k..2 * k];
        let client_salt = &material[2 * k..2 * k + s];
        let server_salt = &material[2 * k + s..];
        let client = Context::new(profile, client_key, client_salt);
        let server = Context::new(profile, server_key, server_salt);
        if we_are_client {
            (client, server)
        } else {
            (server, client)
        }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Protects the RTP packet `buf[..len]` of the stream with `state` in place,
    /// appending its tag; returns the protected length. `buf` must have
    /// [`Profile::tag_len`] bytes of room after `len`.
    pub fn protect_rtp(
        &mut self,
        buf: &mut [u8],
        len: usize,
        state: &mut StreamState,
    ) -> Result<usize, Error> {
        let header = rtp_header_len(&buf[..len]).ok_or(Error::Malformed)?;
        let out = len + self.profile.tag_len();
        if buf.len() < out {
            return Err(Error::NoRoom);
        }
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = [buf[8], buf[9], buf[10], buf[11]];
        let roc = state.guess_roc(seq);
        match &mut self.cipher {
            Cipher::Gcm { rtp, rtp_salt, .. } => {
                let nonce = gcm_rtp_nonce(rtp_salt, ssrc, roc, seq);
                let (aad, rest) = buf.split_at_mut(header);
                let tag = rtp
                    .seal_in_place_separate_tag(nonce, Aad::from(&*aad), &mut rest[..len - header])
                    .map_err(|_| Error::Malformed)?;
                buf[len..out].copy_from_slice(tag.as_ref());
            }
            Cipher::Cm {
                rtp,
                rtp_auth,
                rtp_salt,
                ..
            } => {
                let iv = cm_iv(rtp_salt, ssrc, roc, seq);
                let mut ctr = keystream(rtp, iv);
                ctr.apply_keystream(&mut buf[header..len]);
                let mut mac = hmac::Context::with_key(rtp_auth);
                mac.update(&buf[..len]);
                mac.update(&roc.to_be_bytes());
                buf[len..out].copy_from_slice(&mac.sign().as_ref()[..10]);
            }
        }
        state.note(seq, roc);
        Ok(out)
    }

    /// Authenticates and decrypts the SRTP packet `buf` of the stream with `state` in
    /// place; returns the plain packet's length. A replay or a packet that does not
    /// authenticate is refused and leaves `state` as it was.
    pub fn unprotect_rtp(
        &mut self,
        buf: &mut [u8],
        state: &mut StreamState,
    ) -> Result<usize, Error> {
        let tag_len = self.profile.tag_len();
        let header = rtp_header_len(buf).ok_or(Error::Malformed)?;
        if buf.len() < header + tag_len {
            return Err(Error::Malformed);
        }
        let len = buf.len() - tag_len;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = [buf[8], buf[9], buf[10], buf[11]];
        let roc = state.guess_roc(seq);
        if state.is_replay(seq, roc) {
            return Err(Error::Replay);
        }
        match &mut self.cipher {
            Cipher::Gcm { rtp, rtp_salt, .. } => {
                let nonce = gcm_rtp_nonce(rtp_salt, ssrc, roc, seq);
                let (aad, rest) = buf.split_at_mut(header);
                rtp.open_in_place(nonce, Aad::from(&*aad), rest)
                    .map_err(|_| Error::Auth)?;
            }
            Cipher::Cm {
                rtp,
                rtp_auth,
                rtp_salt,
                ..
            } => {
                let mut mac = hmac::Context::with_key(rtp_auth);
                mac.update(&buf[..len]);
                mac.update(&roc.to_be_bytes());
                let want = mac.sign();
                if !ring_eq(&want.as_ref()[..10], &buf[len..]) {
                    return Err(Error::Auth);
                }
                let iv = cm_iv(rtp_salt, ssrc, roc, seq);
                let mut ctr = keystream(rtp, iv);
                ctr.apply_keystream(&mut buf[header..len]);
            }
        }
        state.note(seq, roc);
        Ok(len)
    }

    /// Protects the RTCP compound `buf[..len]` in place (encrypted, with the next
    /// SRTCP index); returns the protected length. `buf` needs [`MAX_OVERHEAD`] bytes of
    /// room after `len`.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, Error> {
        if len < 8 {
            return Err(Error::Malformed);
        }
        let out = len + 4 + self.profile.tag_len();
        if buf.len() < out {
            return Err(Error::NoRoom);
        }
        let index = self.srtcp_index & 0x7fff_ffff;
        self.srtcp_index = self.srtcp_index.wrapping_add(1);
        let e_index = (index | 0x8000_0000).to_be_bytes();
        let ssrc = [buf[4], buf[5], buf[6], buf[7]];
        match &mut self.cipher {
            Cipher::Gcm {
                rtcp, rtcp_salt, ..
            } => {
                let nonce = gcm_rtcp_nonce(rtcp_salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&e_index);
                let tag = rtcp
                    .seal_in_place_separate_tag(nonce, Aad::from(aad), &mut buf[8..len])
                    .map_err(|_| Error::Malformed)?;
                buf[len..len + 16].copy_from_slice(tag.as_ref());
                buf[len + 16..out].copy_from_slice(&e_index);
            }
            Cipher::Cm {
                rtcp,
                rtcp_auth,
                rtcp_salt,
                ..
            } => {
                let iv = cm_iv(rtcp_salt, ssrc, index >> 16, index as u16);
                let mut ctr = keystream(rtcp, iv);
                ctr.apply_keystream(&mut buf[8..len]);
                buf[len..len + 4].copy_from_slice(&e_index);
                let mut mac = hmac::Context::with_key(rtcp_auth);
                mac.update(&buf[..len + 4]);
                buf[len + 4..out].copy_from_slice(&mac.sign().as_ref()[..10]);
            }
        }
        Ok(out)
    }

    /// Authenticates and decrypts the SRTCP packet `buf` in place; returns the plain
    /// compound's length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let tag_len = self.profile.tag_len();
        if buf.len() < 8 + 4 + tag_len {
            return Err(Error::Malformed);
        }
        let ssrc = [buf[4], buf[5], buf[6], buf[7]];
        let ssrc_n = u32::from_be_bytes(ssrc);
        let (len, e_index) = match self.profile {
            // header | payload | tag | E+index
            Profile::AeadAes128Gcm => {
                let e = buf.len() - 4;
                (e - tag_len, [buf[e], buf[e + 1], buf[e + 2], buf[e + 3]])
            }
            // header | payload | E+index | tag
            Profile::Aes128CmHmacSha1_80 => {
                let e = buf.len() - tag_len - 4;
                (e, [buf[e], buf[e + 1], buf[e + 2], buf[e + 3]])
            }
        };
        let word = u32::from_be_bytes(e_index);
        let encrypted = word & 0x8000_0000 != 0;
        let index = word & 0x7fff_ffff;
        let (roc, seq) = (index >> 16, index as u16);
        // Looked up, not created: only a packet that authenticates may take a slot.
        let slot = self.srtcp_seen.iter().position(|(s, _)| *s == ssrc_n);
        if slot.is_some_and(|i| self.srtcp_seen[i].1.is_replay(seq, roc)) {
            return Err(Error::Replay);
        }
        match &mut self.cipher {
            Cipher::Gcm {
                rtcp, rtcp_salt, ..
            } => {
                let nonce = gcm_rtcp_nonce(rtcp_salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&e_index);
                if encrypted {
                    rtcp.open_in_place(nonce, Aad::from(aad), &mut buf[8..len + tag_len])
                        .map_err(|_| Error::Auth)?;
                } else {
                    // Authenticated only: the whole packet is AAD (RFC 7714 §9.2).
                    return Err(Error::Auth);
                }
            }
            Cipher::Cm {
                rtcp,
                rtcp_auth,
                rtcp_salt,
                ..
            } => {
                let mut mac = hmac::Context::with_key(rtcp_auth);
                mac.update(&buf[..len + 4]);
                if !ring_eq(&mac.sign().as_ref()[..10], &buf[len + 4..]) {
                    return Err(Error::Auth);
                }
                if encrypted {
                    let iv = cm_iv(rtcp_salt, ssrc, roc, seq);
                    let mut ctr = keystream(rtcp, iv);
                    ctr.apply_keystream(&mut buf[8..len]);
                }
            }
        }
        let slot = match slot {
            Some(i) => i,
            None => {
                if self.srtcp_seen.len() >= 64 {
                    // A peer uses a handful of SSRCs; beyond that, forget the oldest.
                    self.srtcp_seen.remove(0);
                }
                self.srtcp_seen.push((ssrc_n, StreamState::default()));
                self.srtcp_seen.len() - 1
            }
        };
        self.srtcp_seen[slot].1.note(seq, roc);
        Ok(len)
    }
}

/// RFC 7714 §8.1: (00 00 || SSRC || ROC || SEQ) XOR salt.
fn gcm_rtp_nonce(salt: &[u8; 12], ssrc: [u8; 4], roc: u32, seq: u16) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc);
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for (v, s) in iv.iter_mut().zip(salt) {
        *v ^= s;
    }
    Nonce::assume_unique_for_key(iv)
}

/// RFC 7714 §9.1: (00 00 || SSRC || 00 00 || 0 || SRTCP index) XOR salt.
fn gcm_rtcp_nonce(salt: &[u8; 12], ssrc: [u8; 4], index: u32) -> Nonce {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc);
    iv[8..12].copy_from_slice(&index.to_be_bytes());
    for (v, s) in iv.iter_mut().zip(salt) {
        *v ^= s;
    }
    Nonce::assume_unique_for_key(iv)
}

/// RFC 3711 §4.1.1: (salt << 16) XOR (SSRC << 64) XOR (index << 16).
fn cm_iv(salt: &[u8; 14], ssrc: [u8; 4], roc: u32, seq: u16) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (v, s) in iv[4..8].iter_mut().zip(ssrc) {
        *v ^= s;
    }
    for (v, s) in iv[8..12].iter_mut().zip(roc.to_be_bytes()) {
        *v ^= s;
    }
    for (v, s) in iv[12..14].iter_mut().zip(seq.to_be_bytes()) {
        *v ^= s;
    }
    iv
}

/// AES-128 in counter mode from `iv`, reusing the expanded key.
fn keystream(cipher: &Aes128, iv: [u8; 16]) -> ctr::Ctr128BE<Aes128> {
    ctr::Ctr128BE::from_core(ctr::CtrCore::inner_iv_init(cipher.clone(), &iv.into()))
}

/// Compares tags in constant time.
fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn the_key_derivation_matches_rfc_3711_appendix_b3() {
        let master = Aes128::new(hex("E1F97A0D3E018BE0D64FA32C06DE4139").as_slice().into());
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut key = [0u8; 16];
        derive(&master, &salt, 0x00, &mut key);
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut session_salt = [0u8; 14];
        derive(&master, &salt, 0x02, &mut session_salt);
        assert_eq!(session_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&master, &salt, 0x01, &mut auth);
        assert_eq!(
            auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }

    /// A synthetic RTP packet: header with one extension word, then a payload.
    fn packet(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x90, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&1234u32.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]);
        p.extend_from_slice(payload);
        p
    }

    /// Both profiles against the `rtc` crate's SRTP (an independent implementation
    /// that interoperates with browsers), in both directions.
    #[test]
    fn packets_interoperate_with_the_rtc_crates_srtp() {
        use rtc::srtp::context::Context as Theirs;
        use rtc::srtp::protection_profile::ProtectionProfile;
        let provider = rtc::crypto::default_provider().expect("a crypto provider");
        for (ours, theirs) in [
            (Profile::AeadAes128Gcm, ProtectionProfile::AeadAes128Gcm),
            (
                Profile::Aes128CmHmacSha1_80,
                ProtectionProfile::Aes128CmHmacSha1_80,
            ),
        ] {
            let key: Vec<u8> = (0..16).collect();
            let salt: Vec<u8> = (100..100 + ours.salt_len() as u8).collect();
            let mut tx = Context::new(ours, &key, &salt);
            let mut rx = Context::new(ours, &key, &salt);
            let mut their_tx =
                Theirs::new(&key, &salt, theirs, None, None, provider.crypto()).unwrap();
            let mut their_rx =
                Theirs::new(&key, &salt, theirs, None, None, provider.crypto()).unwrap();
            let (mut send, mut recv) = (StreamState::default(), StreamState::default());
            for seq in [65530u16, 65531, 65535, 0, 1, 2] {
                let plain = packet(seq, 0x1234_5678, b"hello, this is media");
                let mut buf = plain.clone();
                buf.resize(plain.len() + MAX_OVERHEAD, 0);
                let n = tx.protect_rtp(&mut buf, plain.len(), &mut send).unwrap();
                let decrypted = their_rx.decrypt_rtp(&buf[..n]).unwrap();
                assert_eq!(&decrypted[..], &plain[..], "{ours:?} seq {seq}");
                let theirs_enc = their_tx.encrypt_rtp(&plain).unwrap();
                assert_eq!(&theirs_enc[..], &buf[..n], "{ours:?}: same ciphertext");
                let mut mine = theirs_enc.to_vec();
                let m = rx.unprotect_rtp(&mut mine, &mut recv).unwrap();
                assert_eq!(&mine[..m], &plain[..]);
            }
            assert_eq!(send.roc(), 1, "the counter rolled over");
            // RTCP: a receiver report.
            let rr = [0x80u8, 201, 0, 1, 0xca, 0xfe, 0xba, 0xbe];
            let mut buf = rr.to_vec();
            buf.resize(rr.len() + MAX_OVERHEAD, 0);
            let n = tx.protect_rtcp(&mut buf, rr.len()).unwrap();
            assert_eq!(&their_rx.decrypt_rtcp(&buf[..n]).unwrap()[..], &rr[..]);
            let mut theirs = their_tx.encrypt_rtcp(&rr).unwrap().to_vec();
            let m = rx.unprotect_rtcp(&mut theirs).unwrap();
            assert_eq!(&theirs[..m], &rr[..]);
        }
    }

    #[test]
    fn replays_forgeries_and_short_packets_are_refused() {
        for profile in [Profile::AeadAes128Gcm, Profile::Aes128CmHmacSha1_80] {
            let key = [7u8; 16];
            let salt = vec![9u8; profile.salt_len()];
            let mut tx = Context::new(profile, &key, &salt);
            let mut rx = Context::new(profile, &key, &salt);
            let (mut s, mut r) = (StreamState::default(), StreamState::default());
            let protect = |tx: &mut Context, s: &mut StreamState, seq| {
                let plain = packet(seq, 1, &[1, 2, 3, 4]);
                let mut buf = plain.clone();
                buf.resize(plain.len() + MAX_OVERHEAD, 0);
                let n = tx.protect_rtp(&mut buf, plain.len(), s).unwrap();
                buf.truncate(n);
                buf
            };
            let p10 = protect(&mut tx, &mut s, 10);
            let p12 = protect(&mut tx, &mut s, 12);
            let p11 = protect(&mut tx, &mut s, 11);
            assert!(rx.unprotect_rtp(&mut p10.clone(), &mut r).is_ok());
            assert!(rx.unprotect_rtp(&mut p12.clone(), &mut r).is_ok());
            assert!(
                rx.unprotect_rtp(&mut p11.clone(), &mut r).is_ok(),
                "reordered is fine"
            );
            assert_eq!(
                rx.unprotect_rtp(&mut p11.clone(), &mut r),
                Err(Error::Replay)
            );
            let mut forged = p12.clone();
            let last = forged.len() - 1;
            forged[last] ^= 1;
            let before = r;
            // A forgery of a new index does not move the window.
            let mut forged13 = protect(&mut tx, &mut s, 13);
            forged13[20] ^= 0x40;
            assert_eq!(rx.unprotect_rtp(&mut forged13, &mut r), Err(Error::Auth));
            assert_eq!(r, before);
            assert_eq!(rx.unprotect_rtp(&mut forged, &mut r), Err(Error::Replay));
            for short in [&p10[..5], &p10[..21]] {
                assert!(rx.unprotect_rtp(&mut short.to_vec(), &mut r).is_err());
            }
            assert_eq!(
                rx.unprotect_rtcp(&mut [0x80, 201, 0, 1]),
                Err(Error::Malformed)
            );
            // Another key does not authenticate.
            let mut other = Context::new(profile, &[8u8; 16], &salt);
            let mut fresh = StreamState::default();
            assert_eq!(
                other.unprotect_rtp(&mut p10.clone(), &mut fresh),
                Err(Error::Auth)
            );
        }
    }

    #[test]
    fn the_replay_window_takes_late_packets_once_up_to_its_size_behind() {
        let mut w = StreamState::default();
        w.note(100, 0);
        w.note(100 + 1500, 0);
        // Everything skipped on the way up is new; the window reaches 1024 back.
        let top = 1600u16;
        for back in [1u16, 500, 1023] {
            assert!(!w.is_replay(top - back, 0), "{back} behind");
            w.note(top - back, 0);
            assert!(w.is_replay(top - back, 0), "{back} behind, twice");
        }
        assert!(w.is_replay(top - 1024, 0), "beyond the window");
        assert!(w.is_replay(100, 0), "long ago");
        // Across the rollover, and after a jump larger than the window.
        let mut w = StreamState::default();
        w.note(65_530, 0);
        w.note(3, 1);
        assert!(!w.is_replay(65_531, 0));
        assert!(w.is_replay(65_530, 0));
        w.note(3 + 2000, 1);
        assert!(!w.is_replay(3 + 1990, 1));
        assert!(w.is_replay(3, 1), "out of the window after the jump");
    }

    #[test]
    fn header_lengths_cover_csrcs_and_extensions() {
        assert_eq!(rtp_header_len(&packet(1, 2, b"xy")), Some(20));
        let mut csrc = vec![0x82, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        csrc.extend_from_slice(&[0; 8]);
        assert_eq!(rtp_header_len(&csrc), Some(20));
        assert_eq!(rtp_header_len(&csrc[..19]), None);
        assert_eq!(rtp_header_len(&[0x40; 12]), None, "version 1");
        let mut ext = vec![0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0, 9];
        ext.extend_from_slice(&[0; 8]);
        assert_eq!(
            rtp_header_len(&ext),
            None,
            "extension longer than the packet"
        );
    }
}
