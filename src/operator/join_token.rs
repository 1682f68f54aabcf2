//! Join tokens: the opaque part of a meeting's URL.
//!
//! A token is HMAC-SHA256(key, "raum-join-v1:" + the Meeting's UID), base64url: 256
//! bits, unguessable without the key, and the same every time it is computed. So it
//! survives operator restarts, leader changes and a lost status without being stored
//! anywhere but in the key Secret. The UID, not the name, goes in: a meeting deleted
//! and created again under the same name gets a new URL.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use sha2::{Digest, Sha256};

/// The key in the Secret's data that holds the HMAC key.
pub const SECRET_KEY: &str = "key";
/// Bytes of a freshly generated key.
const KEY_LEN: usize = 32;

/// Derives join tokens from a secret key.
#[derive(Clone)]
pub struct TokenKey(Vec<u8>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// The key Secret could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed.
    #[error("cannot read or create Secret {namespace}/{name}: {source}")]
    Api {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The Secret exists but holds no usable key.
    #[error("Secret {namespace}/{name} has no data key {SECRET_KEY:?} of at least 16 bytes")]
    NoKey {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// The operating system's random source failed.
    #[error("cannot generate a key: {0}")]
    Random(getrandom::Error),
}

impl TokenKey {
    /// A key from raw bytes (for tests and standalone mode).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A new random key.
    pub fn generate() -> Result<Self, Error> {
        let mut key = vec![0; KEY_LEN];
        getrandom::fill(&mut key).map_err(Error::Random)?;
        Ok(Self(key))
    }

    /// The token for the meeting with this UID.
    pub fn token(&self, meeting_uid: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"raum-join-v1:");
        mac.update(meeting_uid.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Reads the key from the Secret `namespace/name`, creating the Secret with a
    /// random key if it does not exist. Two operators racing to create it both end up
    /// with the one that won.
    pub async fn load_or_create(
        client: kube::Client,
        namespace: &str,
        name: &str,
    ) -> Result<Self, Error> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let api_err = |source| Error::Api {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        };
        let secret = match api.get_opt(name).await.map_err(api_err)? {
            Some(s) => s,
            None => {
                let fresh = Self::generate()?;
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        labels: Some(
                            [(
                                "app.kubernetes.io/managed-by".to_owned(),
                                "raum-operator".to_owned(),
                            )]
                            .into(),
                        ),
                        ..Default::default()
                    },
                    data: Some([(SECRET_KEY.to_owned(), ByteString(fresh.0.clone()))].into()),
                    immutable: Some(true),
                    ..Default::default()
                };
                match api.create(&PostParams::default(), &secret).await {
                    Ok(s) => s,
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        api.get(name).await.map_err(api_err)?
                    }
                    Err(e) => return Err(api_err(e)),
                }
            }
        };
        match secret.data.as_ref().and_then(|d| d.get(SECRET_KEY)) {
            Some(ByteString(bytes)) if bytes.len() >= 16 => Ok(Self(bytes.clone())),
            _ => Err(Error::NoKey {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
        }
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
    fn generated_keys_differ() {
        let a = TokenKey::generate().unwrap();
        let b = TokenKey::generate().unwrap();
        assert_ne!(a.token("u"), b.token("u"));
    }

    #[test]
    fn matching_is_exact() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abd", "abc"));
        assert!(!tokens_match("ab", "abc"));
        assert!(!tokens_match("", "abc"));
    }
}
