//! The key join tokens derive from, kept in a Secret of the operator's namespace
//! (created with a random key on first start).

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::names;
use crate::token::{MIN_KEY_LEN, TokenKey};

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
    /// The operating system's random source failed.
    #[error("cannot generate a key: {0}")]
    Random(getrandom::Error),
}

/// Reads the key from the Secret `namespace/name`, creating the Secret with a random
/// key if it does not exist. Two operators racing to create it both end up with the
/// one that won.
pub async fn load_or_create(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<TokenKey, Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let api_err = |source| Error::Api {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let secret = match api.get_opt(name).await.map_err(api_err)? {
        Some(s) => s,
        None => {
            let fresh = TokenKey::generate().map_err(Error::Random)?;
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    labels: Some(names::managed_labels()),
                    ..Default::default()
                },
                data: Some([(SECRET_KEY.to_owned(), ByteString(fresh.as_bytes().to_vec()))].into()),
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
        Some(ByteString(bytes)) if bytes.len() >= MIN_KEY_LEN => {
            Ok(TokenKey::from_bytes(bytes.clone()))
        }
        _ => Err(Error::NoKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
    }
}
