//! TURN credentials in the TURN REST API scheme (draft-uberti-behave-turn-rest-00, the
//! scheme coturn calls `use-auth-secret`): short-lived and per participant, with no
//! password stored anywhere. Whoever admits a participant (the SFU, at `welcome`)
//! and the TURN server share a secret; the username says until when and for which
//! meeting, the password is the HMAC of the username under the secret, so the TURN
//! server recomputes it from the username alone. Pure functions only, like
//! [`crate::token`]: where the secret comes from is the holder's business.
//!
//! Username: `<expiry, Unix seconds>:<meeting>`. Password: base64 (standard, padded)
//! of HMAC-SHA1(secret, username): SHA-1 because browsers' and coturn's REST
//! credentials use it (its HMAC is not weakened by SHA-1's collisions), and the
//! password is only ever the key of TURN's long-term-credential MESSAGE-INTEGRITY.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The longest username accepted: an expiry, a colon and a meeting id of at most 100
/// bytes (raum's meeting ids are DNS labels and UIDs).
pub const MAX_USERNAME: usize = 120;
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
    /// `<expiry>:<meeting>`.
    pub username: String,
    /// The HMAC of the username, base64.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    // Never print the password (nor the username: it names a meeting).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential(..)")
    }
}

/// A username the TURN server accepted: the meeting it is for, until when, and the
/// password to check the request's integrity with.
#[derive(Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The meeting the credential was issued for.
    pub meeting: String,
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

/// Why a username is refused. The messages name the problem, never the input (a
/// username names a meeting, which must not reach logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not `<expiry>:<meeting>`, too long, or with characters a meeting id has not.
    #[error("the TURN username is malformed")]
    Malformed,
    /// Its expiry has passed.
    #[error("the TURN credential has expired")]
    Expired,
    /// Its expiry is further away than any credential raum hands out.
    #[error("the TURN credential's expiry is too far away")]
    TooLong,
}

/// A meeting id as raum writes them: DNS-label and UID characters, at most 100 bytes.
fn valid_meeting(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 100
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

impl TurnSecret {
    /// A secret from raw bytes (read from a Secret or a file).
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, bytes))
    }

    fn password(&self, username: &str) -> String {
        STANDARD.encode(hmac::sign(&self.0, username.as_bytes()).as_ref())
    }

    /// A credential for `meeting` that expires at `expires` (Unix seconds). The
    /// caller picks the expiry: the meeting's end and a little longer.
    ///
    /// # Panics
    ///
    /// If `meeting` is not a meeting id (empty, over 100 bytes, or with characters
    /// other than letters, digits, `-`, `.` and `_`): raum's ids never are.
    pub fn issue(&self, meeting: &str, expires: u64) -> Credential {
        assert!(valid_meeting(meeting), "not a meeting id");
        let username = format!("{expires}:{meeting}");
        let password = self.password(&username);
        Credential { username, password }
    }

    /// Checks a username a TURN client sent at `now` (Unix seconds) and gives the
    /// password it must have proven (the caller checks MESSAGE-INTEGRITY with it).
    pub fn accept(&self, username: &str, now: u64) -> Result<Accepted, Refused> {
        if username.len() > MAX_USERNAME {
            return Err(Refused::Malformed);
        }
        let (expiry, meeting) = username.split_once(':').ok_or(Refused::Malformed)?;
        // Digits only: no sign, no spaces, no leading `+` that `parse` would take.
        if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Refused::Malformed);
        }
        let expires: u64 = expiry.parse().map_err(|_| Refused::Malformed)?;
        if !valid_meeting(meeting) {
            return Err(Refused::Malformed);
        }
        if expires <= now {
            return Err(Refused::Expired);
        }
        if expires - now > MAX_LIFETIME_SECS {
            return Err(Refused::TooLong);
        }
        Ok(Accepted {
            meeting: meeting.to_owned(),
            expires,
            password: self.password(username),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn an_issued_credential_is_accepted_until_it_expires_for_its_meeting() {
        let s = TurnSecret::from_bytes(b"a shared secret of some length");
        let c = s.issue("standalone-class", NOW + 3600);
        assert_eq!(c.username, format!("{}:standalone-class", NOW + 3600));
        let a = s.accept(&c.username, NOW).unwrap();
        assert_eq!(a.meeting, "standalone-class");
        assert_eq!(a.expires, NOW + 3600);
        assert_eq!(a.password, c.password, "the server recomputes the password");
        assert_eq!(s.accept(&c.username, NOW + 3600), Err(Refused::Expired));
        assert_eq!(s.accept(&c.username, NOW + 4000), Err(Refused::Expired));
    }

    #[test]
    fn the_password_is_coturns_rest_password() {
        // coturn's use-auth-secret: base64(HMAC-SHA1(secret, username)); the value
        // here was computed independently (Python: base64.b64encode(hmac.new(
        // b"north", b"1800003600:m1", hashlib.sha1).digest())).
        let s = TurnSecret::from_bytes(b"north");
        let c = s.issue("m1", 1_800_003_600);
        assert_eq!(c.password, "7lRXLbEzT8dXfhZBGe46Xt5uxVI=");
    }

    #[test]
    fn another_secret_or_another_meeting_gives_another_password() {
        let a = TurnSecret::from_bytes(b"one secret");
        let b = TurnSecret::from_bytes(b"another secret");
        let c = a.issue("m1", NOW + 60);
        // The server with another secret accepts the username (it is well formed) but
        // expects another password: the client's MESSAGE-INTEGRITY will not match.
        assert_ne!(b.accept(&c.username, NOW).unwrap().password, c.password);
        // Changing the meeting in the username changes the password too.
        let forged = c.username.replace(":m1", ":m2");
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
            "m1",
            "1800000600",
            "1800000600:",
            ":m1",
            "+1800000600:m1",
            "-1:m1",
            " 1800000600:m1",
            "18000006OO:m1",
            "99999999999999999999999:m1",
            "1800000600:m1:extra",
            "1800000600:m 1",
            "1800000600:m1\n",
            "1800000600:mé",
            &format!("1800000600:{}", "m".repeat(101)),
            &format!("1800000600:{}", "m".repeat(500)),
        ] {
            assert_eq!(s.accept(bad, NOW), Err(Refused::Malformed), "{bad:?}");
        }
        assert_eq!(
            s.accept(&format!("{}:m1", NOW + MAX_LIFETIME_SECS + 1), NOW),
            Err(Refused::TooLong)
        );
        assert!(
            s.accept(&format!("{}:m1", NOW + MAX_LIFETIME_SECS), NOW)
                .is_ok()
        );
        // The refusal never carries the input.
        assert!(!Refused::Malformed.to_string().contains("m1"));
    }

    #[test]
    fn nothing_secret_is_printed() {
        let s = TurnSecret::from_bytes(b"do not print me");
        let c = s.issue("m1", NOW + 60);
        let text = format!("{s:?} {c:?}");
        assert!(!text.contains("print") && !text.contains(&c.password) && !text.contains("m1"));
    }
}
