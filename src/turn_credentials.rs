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

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The longest username accepted: an expiry (20 digits), a participant id (at most
/// 32 bytes), an IPv6 socket address (at most 47 bytes) and two colons.
pub const MAX_USERNAME: usize = 101;
/// The longest participant id.
pub const MAX_PARTICIPANT: usize = 32;
/// The farthest expiry accepted, from now: a credential is handed out for one
/// meeting and "a little longer", never for days.
pub const MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// A secret shared by whoever hands out credentials and the TURN server.
#[derive(Clone)]
pub struct TurnSecret(hmac::Key);

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
    /// Not `<expiry>:<participant>:<address>`, too long, or with characters a
    /// participant id has not.
    #[error("the TURN username is malformed")]
    Malformed,
    /// Its expiry has passed.
    #[error("the TURN credential has expired")]
    Expired,
    /// Its expiry is further away than any credential raum hands out.
    #[error("the TURN credential's expiry is too far away")]
    TooLong,
}

/// A participant id: letters, digits, `-` and `_`, at most [`MAX_PARTICIPANT`] bytes.
fn valid_participant(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= MAX_PARTICIPANT
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl TurnSecret {
    /// A secret from raw bytes (read from a Secret or a file).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, bytes))
    }

    fn password(&self, username: &str) -> String {
        STANDARD.encode(hmac::sign(&self.0, username.as_bytes()).as_ref())
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
        let username = format!("{expires}:{participant}:{relay_to}");
        let password = self.password(&username);
        Credential { username, password }
    }

    /// Checks a username a TURN client sent at `now` (Unix seconds) and gives the
    /// password it must have proven (the caller checks MESSAGE-INTEGRITY with it).
    pub fn accept(&self, username: &str, now: u64) -> Result<Accepted, Refused> {
        if username.len() > MAX_USERNAME {
            return Err(Refused::Malformed);
        }
        let mut parts = username.splitn(3, ':');
        let (Some(expiry), Some(participant), Some(relay_to)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(Refused::Malformed);
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
        Ok(Accepted {
            relay_to,
            expires,
            password: self.password(username),
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
    fn nothing_secret_is_printed() {
        let s = TurnSecret::from_bytes(b"do not print me");
        let c = s.issue("p1", sfu(), NOW + 60);
        let a = s.accept(&c.username, NOW).unwrap();
        let text = format!("{s:?} {c:?} {a:?}");
        assert!(!text.contains("print") && !text.contains(&c.password) && !text.contains("p1"));
        assert!(!text.contains("203.0.113.10"));
    }
}
