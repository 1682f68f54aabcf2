//! Publishing the access log's summary ([`crate::access_log::summary`]) into a
//! ConfigMap, where the operator's metrics and `kubectl raum` read it: how old the
//! oldest entry is and whether only the three fields were written, without anyone
//! reading the log. It names no address, agent or participant.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tracing::warn;

use crate::access_log::summary::{KEY, Summarizer, Summary};

/// Where the summary goes: `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The ConfigMap's namespace (the gateway's own).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not NAMESPACE/NAME"))?;
        let dns = |x: &str| {
            !x.is_empty()
                && x.len() <= 253
                && x.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        };
        if !dns(namespace) || !dns(name) {
            return Err(format!(
                "{s:?} is not NAMESPACE/NAME (lowercase letters, digits, - and .)"
            ));
        }
        Ok(Target {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// A summary interval: more than nothing.
pub fn interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("the interval must be longer than 0s".into());
    }
    Ok(d)
}

/// Takes a summary of `dir` every `every` and writes it into `target` (server-side
/// apply) with `public_url`, until the task is dropped. Failures are logged and tried
/// again.
pub async fn run(
    client: kube::Client,
    target: Target,
    dir: PathBuf,
    every: Duration,
    public_url: String,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &target.namespace);
    let mut summarizer = Some(Summarizer::default());
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (s, taken) = {
            let mut s = summarizer.take().expect("put back after each summary");
            let dir = dir.clone();
            match tokio::task::spawn_blocking(move || {
                let taken = s.take(&dir, jiff::Timestamp::now());
                (s, taken)
            })
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "the access-log summary panicked");
                    (
                        Summarizer::default(),
                        Err(std::io::Error::other("panicked")),
                    )
                }
            }
        };
        summarizer = Some(s);
        let summary = match taken {
            Ok(summary) => Summary {
                public_url: Some(public_url.clone()),
                ..summary
            },
            Err(e) => {
                warn!(error = %e, "cannot read the access-log directory for its summary");
                continue;
            }
        };
        if let Err(e) = publish(&api, &target.name, &summary).await {
            warn!(error = %e, configmap = %target.name, "cannot publish the access-log summary");
        }
    }
}

async fn publish(api: &Api<ConfigMap>, name: &str, summary: &Summary) -> Result<(), kube::Error> {
    let cm = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        // Its data only: the chart made it and owns the rest.
        "metadata": {"name": name},
        "data": {KEY: serde_json::to_string(summary).expect("a summary serializes")},
    });
    api.patch(
        name,
        &PatchParams::apply("raum-gateway").force(),
        &Patch::Apply(&cm),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_namespace_slash_name() {
        assert_eq!(
            "raum-system/raum-access-log-summary".parse::<Target>(),
            Ok(Target {
                namespace: "raum-system".into(),
                name: "raum-access-log-summary".into()
            })
        );
        for bad in ["", "raum-system", "/x", "x/", "Raum/x", "a/b/c", "a b/c"] {
            assert!(bad.parse::<Target>().is_err(), "{bad:?}");
        }
    }
}
