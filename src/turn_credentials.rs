//! TURN credentials in the TURN REST API scheme (draft-uberti-behave-turn-rest-00, the
//! scheme coturn calls `use-auth-secret`): short-lived and per participant, with no
//! password stored anywhere. Whoever admits a participant (the SFU, at `welcome`)
//! and the TURN server share a secret; the username says until when, for whom and
//! to which SFU media address the relay may carry, and the password is the HMAC of
//! the username under the secret, so the TURN server recomputes it from the username
//! alone and a credential cannot be bent to another meeting's SFU. Pure functions
//! only, like [`crate::token`]: where the secret comes from is the holder's business.
//!
//! Username: `<expiry, Unix seconds>:<participant>:<SFU media address>`, for example
//! `1800003600:k3Jd9a:203.0.113.10:31000` (`[2001:db8::1]:31000` for IPv6). The
//! participant part is an opaque id the issuer picks (no name): it makes each
//! participant's credential its own, so quotas count per participant. Password:
//! base64 (standard, padded) of HMAC-SHA1(secret, username): SHA-1 because browsers'
//! and coturn's REST credentials use it (its HMAC is not weakened by SHA-1's
//! collisions), and the password is only ever the key of TURN's long-term-credential
//! MESSAGE-INTEGRITY.
//!
//! Meeting keys: on Kubernetes the TURN server's secret never leaves raum's own
//! namespace. Each meeting's SFU gets a key of its own instead, derived from the
//! secret and a key id (the Meeting's UID): [`TurnSecret::meeting_key`], the lower-case
//! hex of HMAC-SHA256(secret, `raum-turn-meeting-key:` + key id). An SFU holding a
//! meeting key writes the key id into the username, `<expiry>:<key id>:<participant>:
//! <SFU media address>`, and signs with the meeting key; the TURN server derives the
//! same key from the id. So reading one meeting's key (a Secret in that meeting's
//! namespace) gives neither the secret nor another meeting's key.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The longest username accepted: an expiry (20 digits), a key id (at most 40 bytes),
/// a participant id (at most 32 bytes), an IPv6 socket address (at most 47 bytes) and
/// three colons.
pub const MAX_USERNAME: usize = 142;
/// The longest participant id.
pub const MAX_PARTICIPANT: usize = 32;
/// The longest meeting key id (a Kubernetes UID has 36 bytes).
pub const MAX_KEY_ID: usize = 40;
/// What a meeting key is derived under, before the key id.
const MEETING_KEY_CONTEXT: &[u8] = b"raum-turn-meeting-key:";
/// The farthest expiry accepted, from now: a credential is handed out for one
/// meeting and "a little longer", never for days.
pub const MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// A secret shared by whoever hands out credentials and the TURN server: the TURN
/// server's own secret, or a meeting key derived from it together with its key id.
#[derive(Clone)]
pub struct TurnSecret {
    /// Signs usernames (HMAC-SHA1).
    sign: hmac::Key,
    /// Derives meeting keys (HMAC-SHA256 under the same bytes).
    derive: hmac::Key,
    /// Set for a meeting key: the id written into every username it issues.
    key_id: Option<String>,
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(..)")
    }
}

/// What a participant gives its browser as an `iceServers` entry's username and
/// credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// `<expiry>:<participant>:<relay to>`.
    pub username: String,
    /// The HMAC of the username, base64.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    // Never print the password (nor the username).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

/// A username the TURN server accepted: where it may relay to, until when, and the
/// password to check the request's integrity with.
#[derive(Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The one SFU media address the credential's allocations may reach.
    pub relay_to: SocketAddr,
    /// Its expiry, Unix seconds.
    pub expires: u64,
    /// The password that username has.
    pub password: String,
    /// Signed with a meeting key (the username names a key id).
    pub keyed: bool,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Why a username is refused. The messages name the problem, never the input
/// (usernames stay out of logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not `<expiry>:[<key id>:]<participant>:<address>`, too long, or with
    /// characters an id has not.
    #[error("the TURN username is malformed")]
    Malformed,
    /// Its expiry has passed.
    #[error("the TURN credential has expired")]
    Expired,
    /// Its expiry is further away than any credential raum hands out.
    #[error("the TURN credential's expiry is too far away")]
    TooLong,
}

/// An id of letters, digits, `-` and `_`, at most `max` bytes.
fn valid_id(p: &str, max: usize) -> bool {
    !p.is_empty()
        && p.len() <= max
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A participant id: letters, digits, `-` and `_`, at most [`MAX_PARTICIPANT`] bytes.
fn valid_participant(p: &str) -> bool {
    valid_id(p, MAX_PARTICIPANT)
}

/// Whether `id` can be a meeting key id: letters, digits, `-` and `_`, at most
/// [`MAX_KEY_ID`] bytes (a Kubernetes UID is one).
pub fn valid_key_id(id: &str) -> bool {
    valid_id(id, MAX_KEY_ID)
}

impl TurnSecret {
    /// A secret from raw bytes (read from a Secret or a file).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self {
            sign: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, bytes),
            derive: hmac::Key::new(hmac::HMAC_SHA256, bytes),
            key_id: None,
        }
    }

    /// A meeting key (as [`TurnSecret::meeting_key`] gives it) and its id: what an
    /// SFU issues credentials with on Kubernetes.
    ///
    /// # Panics
    ///
    /// If `key_id` is not one ([`valid_key_id`]): callers check it first.
    pub fn for_meeting(meeting_key: &[u8], key_id: &str) -> Self {
        assert!(valid_key_id(key_id), "not a key id");
        Self {
            key_id: Some(key_id.to_owned()),
            ..Self::from_bytes(meeting_key)
        }
    }

    /// The meeting key for `key_id` under this secret, as text (64 hex digits): what
    /// the operator writes into a meeting's Secret and the TURN server derives again.
    pub fn meeting_key(&self, key_id: &str) -> String {
        let mut input = MEETING_KEY_CONTEXT.to_vec();
        input.extend_from_slice(key_id.as_bytes());
        hmac::sign(&self.derive, &input)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn password(&self, username: &str) -> String {
        STANDARD.encode(hmac::sign(&self.sign, username.as_bytes()).as_ref())
    }

    /// A credential for `participant` to relay to `relay_to` (the SFU's advertised
    /// media address) that expires at `expires` (Unix seconds). The caller picks the
    /// expiry: the meeting's end and a little longer.
    ///
    /// # Panics
    ///
    /// If `participant` is not an id (empty, over [`MAX_PARTICIPANT`] bytes, or with
    /// characters other than letters, digits, `-` and `_`): the issuer's never are.
    pub fn issue(&self, participant: &str, relay_to: SocketAddr, expires: u64) -> Credential {
        assert!(valid_participant(participant), "not a participant id");
        let username = match &self.key_id {
            None => format!("{expires}:{participant}:{relay_to}"),
            Some(key_id) => format!("{expires}:{key_id}:{participant}:{relay_to}"),
        };
        let password = self.password(&username);
        Credential { username, password }
    }

    /// Checks a username a TURN client sent at `now` (Unix seconds) and gives the
    /// password it must have proven (the caller checks MESSAGE-INTEGRITY with it). A
    /// username with a key id is checked under that meeting's key.
    pub fn accept(&self, username: &str, now: u64) -> Result<Accepted, Refused> {
        if username.len() > MAX_USERNAME {
            return Err(Refused::Malformed);
        }
        let mut parts = username.splitn(3, ':');
        let (Some(expiry), Some(first), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Malformed);
        };
        // Three fields or four: an address has a `.` or a `[` before its port, an id
        // has neither, so `rest` is either the address or `<participant>:<address>`.
        let (key_id, participant, relay_to) = if rest.parse::<SocketAddr>().is_ok() {
            (None, first, rest)
        } else {
            let Some((participant, relay_to)) = rest.split_once(':') else {
                return Err(Refused::Malformed);
            };
            if !valid_key_id(first) {
                return Err(Refused::Malformed);
            }
            (Some(first), participant, relay_to)
        };
        // Digits only: no sign, no spaces, no leading `+` that `parse` would take.
        if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Refused::Malformed);
        }
        let expires: u64 = expiry.parse().map_err(|_| Refused::Malformed)?;
        if !valid_participant(participant) {
            return Err(Refused::Malformed);
        }
        // Exactly as `SocketAddr` writes it: the username is compared byte for byte
        // through the HMAC, so there is one spelling per address.
        let relay_to: SocketAddr = relay_to.parse().map_err(|_| Refused::Malformed)?;
        if !username.ends_with(&format!(":{relay_to}")) || relay_to.port() == 0 {
            return Err(Refused::Malformed);
        }
        if expires <= now {
            return Err(Refused::Expired);
        }
        if expires - now > MAX_LIFETIME_SECS {
            return Err(Refused::TooLong);
        }
        let password = match key_id {
            None => self.password(username),
            Some(id) => TurnSecret::from_bytes(self.meeting_key(id).as_bytes()).password(username),
        };
        Ok(Accepted {
            relay_to,
            expires,
            password,
            keyed: key_id.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn sfu() -> SocketAddr {
        "203.0.113.10:31000".parse().unwrap()
    }

    #[test]
    fn an_issued_credential_is_accepted_until_it_expires_for_its_sfu() {
        let s = TurnSecret::from_bytes(b"a shared secret of some length");
        let c = s.issue("k3Jd9a", sfu(), NOW + 3600);
        assert_eq!(
            c.username,
            format!("{}:k3Jd9a:203.0.113.10:31000", NOW + 3600)
        );
        let a = s.accept(&c.username, NOW).unwrap();
        assert_eq!(a.relay_to, sfu());
        assert_eq!(a.expires, NOW + 3600);
        assert_eq!(a.password, c.password, "the server recomputes the password");
        assert_eq!(s.accept(&c.username, NOW + 3600), Err(Refused::Expired));
        assert_eq!(s.accept(&c.username, NOW + 4000), Err(Refused::Expired));
        let v6: SocketAddr = "[2001:db8::1]:50000".parse().unwrap();
        let c = s.issue("p", v6, NOW + 60);
        assert_eq!(s.accept(&c.username, NOW).unwrap().relay_to, v6);
    }

    #[test]
    fn the_password_is_coturns_rest_password() {
        // coturn's use-auth-secret: base64(HMAC-SHA1(secret, username)); the value
        // here was computed independently (Python: base64.b64encode(hmac.new(
        // b"north", b"1800003600:p1:192.0.2.7:50000", hashlib.sha1).digest())).
        let s = TurnSecret::from_bytes(b"north");
        let c = s.issue("p1", "192.0.2.7:50000".parse().unwrap(), 1_800_003_600);
        assert_eq!(c.password, PYTHON_VECTOR);
    }

    /// See `the_password_is_coturns_rest_password`.
    const PYTHON_VECTOR: &str = "t+05FFHFns+kcuQ4eQP+QsH0jJo=";

    #[test]
    fn another_secret_another_sfu_or_another_expiry_gives_another_password() {
        let a = TurnSecret::from_bytes(b"one secret");
        let b = TurnSecret::from_bytes(b"another secret");
        let c = a.issue("p1", sfu(), NOW + 60);
        // The server with another secret accepts the username (it is well formed) but
        // expects another password: the client's MESSAGE-INTEGRITY will not match.
        assert_ne!(b.accept(&c.username, NOW).unwrap().password, c.password);
        // Pointing the username at another meeting's SFU changes the password too.
        let forged = c.username.replace(":31000", ":31001");
        assert_eq!(a.accept(&forged, NOW).unwrap().relay_to.port(), 31001);
        assert_ne!(a.accept(&forged, NOW).unwrap().password, c.password);
        // And the expiry.
        let later = c
            .username
            .replace(&(NOW + 60).to_string(), &(NOW + 600).to_string());
        assert_ne!(a.accept(&later, NOW).unwrap().password, c.password);
    }

    #[test]
    fn malformed_usernames_are_refused_with_a_reason() {
        let s = TurnSecret::from_bytes(b"k");
        for bad in [
            "",
            ":",
            "::",
            "p1",
            "1800000600",
            "1800000600:p1",
            "1800000600:p1:",
            "1800000600::192.0.2.7:50000",
            ":p1:192.0.2.7:50000",
            "+1800000600:p1:192.0.2.7:50000",
            "-1:p1:192.0.2.7:50000",
            " 1800000600:p1:192.0.2.7:50000",
            "18000006OO:p1:192.0.2.7:50000",
            "99999999999999999999999:p1:192.0.2.7:50000",
            "1800000600:p1:192.0.2.7",
            "1800000600:p1:192.0.2.7:0",
            "1800000600:p1:192.0.2.7:50000:1",
            "1800000600:p1:sfu.example:50000",
            "1800000600:p1:2001:db8::1:50000",
            "1800000600:p1:[2001:0db8::1]:50000",
            "1800000600:p1:192.0.2.7:050000",
            "1800000600:p 1:192.0.2.7:50000",
            "1800000600:p.1:192.0.2.7:50000",
            "1800000600:p1:192.0.2.7:50000\n",
            "1800000600:pé:192.0.2.7:50000",
            &format!("1800000600:{}:192.0.2.7:50000", "p".repeat(33)),
            &format!("1800000600:{}:192.0.2.7:50000", "p".repeat(500)),
        ] {
            assert_eq!(s.accept(bad, NOW), Err(Refused::Malformed), "{bad:?}");
        }
        let at = |secs: u64| format!("{secs}:p1:192.0.2.7:50000");
        assert_eq!(
            s.accept(&at(NOW + MAX_LIFETIME_SECS + 1), NOW),
            Err(Refused::TooLong)
        );
        assert!(s.accept(&at(NOW + MAX_LIFETIME_SECS), NOW).is_ok());
        // The refusal never carries the input.
        assert!(!Refused::Malformed.to_string().contains("p1"));
    }

    #[test]
    fn a_meeting_key_issues_credentials_the_turn_servers_secret_accepts() {
        let server = TurnSecret::from_bytes(b"the TURN server's own secret");
        let uid = "0b6f7a52-9d1e-4c3a-8f21-5e6d7c8b9a01";
        let key = server.meeting_key(uid);
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(key, server.meeting_key("another-meeting"));
        let sfu_side = TurnSecret::for_meeting(key.as_bytes(), uid);
        let c = sfu_side.issue("p1", sfu(), NOW + 60);
        assert_eq!(
            c.username,
            format!("{}:{uid}:p1:203.0.113.10:31000", NOW + 60)
        );
        let a = server.accept(&c.username, NOW).unwrap();
        assert_eq!(
            (a.relay_to, a.password.as_str()),
            (sfu(), c.password.as_str())
        );
        // The same meeting key under another id, or another meeting's key under this
        // id, signs credentials the server does not accept.
        let renamed = c.username.replace(uid, "another-meeting");
        assert_ne!(server.accept(&renamed, NOW).unwrap().password, c.password);
        let other = TurnSecret::for_meeting(server.meeting_key("x").as_bytes(), uid);
        assert_ne!(other.issue("p1", sfu(), NOW + 60).password, c.password);
        // Nor does the meeting key stand in for the server's secret: a three-field
        // username signed with it is checked under the secret.
        let plain = TurnSecret::from_bytes(key.as_bytes()).issue("p1", sfu(), NOW + 60);
        assert_ne!(
            server.accept(&plain.username, NOW).unwrap().password,
            plain.password
        );
        // IPv6 works with a key id too.
        let v6: SocketAddr = "[2001:db8::1]:50000".parse().unwrap();
        let c = sfu_side.issue("p1", v6, NOW + 60);
        assert_eq!(server.accept(&c.username, NOW).unwrap().relay_to, v6);
    }

    #[test]
    fn malformed_key_ids_are_refused() {
        let s = TurnSecret::from_bytes(b"k");
        for bad in [
            "1800000600:k.1:p1:192.0.2.7:50000",
            "1800000600::p1:192.0.2.7:50000",
            "1800000600:k1::192.0.2.7:50000",
            "1800000600:k1:p1:p2:192.0.2.7:50000",
            "1800000600:k1:p1:192.0.2.7",
            "1800000600:k 1:p1:192.0.2.7:50000",
            &format!("1800000600:{}:p1:192.0.2.7:50000", "k".repeat(41)),
        ] {
            assert_eq!(s.accept(bad, NOW), Err(Refused::Malformed), "{bad:?}");
        }
        assert!(s.accept("1800000600:k-1_A:p1:192.0.2.7:50000", NOW).is_ok());
    }

    #[test]
    fn nothing_secret_is_printed() {
        let s = TurnSecret::from_bytes(b"do not print me");
        let c = s.issue("p1", sfu(), NOW + 60);
        let a = s.accept(&c.username, NOW).unwrap();
        let text = format!("{s:?} {c:?} {a:?}");
        assert!(!text.contains("print") && !text.contains(&c.password) && !text.contains("p1"));
        assert!(!text.contains("203.0.113.10"));
    }
}
