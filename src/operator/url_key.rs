//! Keys the operator derives from, each kept in a Secret of the operator's namespace
//! and created with a random key on first start: the one join tokens derive from, and
//! the TURN server's secret that meeting keys derive from.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::names;
use crate::token::{MIN_KEY_LEN, TokenKey};
use crate::turn_credentials::TurnSecret;

/// The key in the Secret's data that holds the HMAC key.
pub const SECRET_KEY: &str = "key";

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
    #[error(
        "Secret {namespace}/{name} has no data key {SECRET_KEY:?} of at least {MIN_KEY_LEN} bytes"
    )]
    NoKey {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// The TURN secret is not text (it is handed to `raum turn` in an environment
    /// variable).
    #[error("Secret {namespace}/{name}: the TURN secret in {SECRET_KEY:?} is not UTF-8 text")]
    NotText {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// The operating system's random source failed.
    #[error("cannot generate a key: {0}")]
    Random(getrandom::Error),
}

/// Reads the join-token key from the Secret `namespace/name`, creating the Secret with
/// a random key if it does not exist. Two operators racing to create it both end up
/// with the one that won.
pub async fn load_or_create(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<TokenKey, Error> {
    let bytes = load_or_create_with(client, namespace, name, || {
        TokenKey::generate().map(|k| k.as_bytes().to_vec())
    })
    .await?;
    Ok(TokenKey::from_bytes(bytes))
}

/// Reads the TURN server's secret from the Secret `namespace/name` (the chart's TURN
/// Deployment reads the same one), creating it with 32 random bytes as hex text if it
/// does not exist.
pub async fn load_or_create_turn(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<TurnSecret, Error> {
    let bytes = load_or_create_with(client, namespace, name, || {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(key
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes())
    })
    .await?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(Error::NotText {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(TurnSecret::from_bytes(&bytes))
}

async fn load_or_create_with(
    client: kube::Client,
    namespace: &str,
    name: &str,
    generate: impl FnOnce() -> Result<Vec<u8>, getrandom::Error>,
) -> Result<Vec<u8>, Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let api_err = |source| Error::Api {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let secret = match api.get_opt(name).await.map_err(api_err)? {
        Some(s) => s,
        None => {
            let fresh = generate().map_err(Error::Random)?;
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(names::managed_labels()),
                    ..Default::default()
                },
                data: Some([(SECRET_KEY.to_owned(), ByteString(fresh))].into()),
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
        Some(ByteString(bytes)) if bytes.len() >= MIN_KEY_LEN => Ok(bytes.clone()),
        _ => Err(Error::NoKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
    }
}
