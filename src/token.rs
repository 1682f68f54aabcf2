//! Join tokens: the opaque part of a meeting's URL, and the digest an SFU checks them
//! against. Pure functions only; where the key comes from (a Secret, a file) is the
//! business of the subsystem that holds it.
//!
//! A token is HMAC-SHA256(key, "raum-join-v1:" + the meeting's UID), base64url: 256
//! bits, unguessable without the key, and the same every time it is computed. So it
//! survives operator restarts, leader changes and a lost status without being stored
//! anywhere but with the key. The UID, not the name, goes in: a meeting deleted and
//! created again under the same name gets a new URL.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Bytes of a freshly generated key.
pub const KEY_LEN: usize = 32;
/// The shortest key accepted from storage.
pub const MIN_KEY_LEN: usize = 16;

/// Derives join tokens from a secret key.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from raw bytes (read from a Secret or a key file).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A new random key of [`KEY_LEN`] bytes.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = vec![0; KEY_LEN];
        getrandom::fill(&mut key)?;
        Ok(Self(key))
    }

    /// The key's bytes, for storing it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The token for the meeting with this UID.
    pub fn token(&self, meeting_uid: &str) -> String {
        self.derive(b"raum-join-v1:", meeting_uid)
    }

    /// The token of the meeting's host link: derived like [`TokenKey::token`] under
    /// another label, so it is just as stable and nothing else needs storing, and
    /// neither token says anything about the other.
    pub fn host_token(&self, meeting_uid: &str) -> String {
        self.derive(b"raum-host-v1:", meeting_uid)
    }

    fn derive(&self, label: &[u8], meeting_uid: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label);
        mac.update(meeting_uid.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// The SHA-256 of a join token, hex: SFUs check tokens against it, so the pod spec
/// (readable by anyone who may read pods) does not hold the token itself.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `s` has the shape of a [`token_digest`]: 64 hex digits.
pub fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Compares a presented token with the expected one in constant time, so the time a
/// check takes says nothing about how much of a guess was right.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    let (a, b) = (presented.as_bytes(), expected.as_bytes());
    // Length is not secret (every token has the same length); content is.
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a presented token is the one whose digest is `expected_sha256`: the
/// presented token's digest compared in constant time.
pub fn token_ok(presented: &str, expected_sha256: &str) -> bool {
    tokens_match(
        &token_digest(presented),
        &expected_sha256.to_ascii_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_uid_and_key_and_long_enough() {
        let k = TokenKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec());
        let t = k.token("uid-1");
        assert_eq!(t, k.token("uid-1"));
        assert_ne!(t, k.token("uid-2"));
        assert_eq!(t.len(), 43, "256 bits in base64url");
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let other = TokenKey::from_bytes(b"fedcba9876543210fedcba9876543210".to_vec());
        assert_ne!(t, other.token("uid-1"));
        // A fixed vector, so a change of derivation (which would change every URL in
        // every deployment) cannot slip through.
        // Computed independently: python3 hmac.new(key, b"raum-join-v1:uid-1", sha256).
        assert_eq!(t, "Z6YVnmZtvt1olspWcNNGcyE_r75RL9_kpOx0raPyn_8");
    }

    #[test]
    fn host_tokens_are_stable_and_unlike_join_tokens() {
        let k = TokenKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec());
        let h = k.host_token("uid-1");
        assert_eq!(h, k.host_token("uid-1"));
        assert_ne!(h, k.token("uid-1"));
        assert_ne!(h, k.host_token("uid-2"));
        assert_eq!(h.len(), k.token("uid-1").len());
        // A join token already printed keeps its value (URLs in calendars stay valid).
        assert_eq!(
            k.token("uid-1"),
            TokenKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()).token("uid-1")
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = TokenKey::generate().unwrap();
        let b = TokenKey::generate().unwrap();
        assert_ne!(a.token("u"), b.token("u"));
        assert_eq!(a.as_bytes().len(), KEY_LEN);
    }

    #[test]
    fn matching_is_exact() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", "abc"));
    }

    #[test]
    fn tokens_are_checked_by_digest() {
        let digest = token_digest("s3cret");
        assert!(is_digest(&digest));
        assert!(token_ok("s3cret", &digest));
        assert!(token_ok("s3cret", &digest.to_ascii_uppercase()));
        assert!(!token_ok("s3creT", &digest));
        assert!(!token_ok("", &digest));
        assert!(!is_digest("abc"));
        assert!(!is_digest(&"g".repeat(64)));
    }
}
