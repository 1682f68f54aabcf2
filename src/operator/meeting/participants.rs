//! How many are in each running meeting: a task of its own that asks each running SFU
//! (`GET /status` on its signaling endpoint) every [`EVERY`] and writes a changed count
//! into `status.participants`, under a field manager of its own so the reconcile's
//! status and the count never overwrite each other. A meeting that is not running has
//! no count.

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::sync::watch;
use tracing::debug;

use super::super::sfu_status::SfuStatusClient;
use crate::api::{Meeting, MeetingPhase};

/// The field manager of `status.participants`.
pub const FIELD_MANAGER: &str = "raum-operator-participants";
/// How often running meetings are asked.
pub const EVERY: Duration = Duration::from_secs(15);
/// How many SFUs are asked at once.
const AT_ONCE: usize = 16;

/// What the count of `m` should be now: `Some` only while it runs, from its SFU's
/// answer, or the count it has when the SFU does not answer (`None` from `answer`).
pub fn desired(m: &Meeting, answer: Option<u32>) -> Option<u32> {
    let status = m.status.as_ref()?;
    if status.phase != Some(MeetingPhase::Running) || status.signaling.is_none() {
        return None;
    }
    answer.or(status.participants)
}

/// Polls until `stop` turns true.
pub async fn run(
    client: kube::Client,
    stores: Vec<Store<Meeting>>,
    sfu: SfuStatusClient,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let meetings: Vec<_> = stores.iter().flat_map(|s| s.state()).collect();
        futures::stream::iter(meetings)
            .for_each_concurrent(AT_ONCE, |m| {
                let (client, sfu) = (client.clone(), sfu.clone());
                async move { refresh(&client, &sfu, &m).await }
            })
            .await;
    }
}

async fn refresh(client: &kube::Client, sfu: &SfuStatusClient, m: &Meeting) {
    let Some(status) = m.status.as_ref() else {
        return;
    };
    let answer = match status.signaling.as_deref().map(str::parse) {
        Some(Ok(addr)) if status.phase == Some(MeetingPhase::Running) => {
            sfu.participants(addr).await
        }
        _ => None,
    };
    let want = desired(m, answer);
    if want == status.participants {
        return;
    }
    let api: Api<Meeting> = Api::namespaced(client.clone(), &m.namespace().unwrap_or_default());
    // Applying without the field gives it up (and removes it: nobody else owns it).
    let body = match want {
        Some(n) => json!({"participants": n}),
        None => json!({}),
    };
    let patch = json!({
        "apiVersion": Meeting::api_version(&()),
        "kind": Meeting::kind(&()),
        "status": body,
    });
    if let Err(e) = api
        .patch_status(
            &m.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
    {
        debug!(meeting = %m.name_any(), error = %e, "cannot write the participant count");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MeetingStatus;

    fn meeting(phase: MeetingPhase, signaling: Option<&str>, count: Option<u32>) -> Meeting {
        let mut m = Meeting::new("m", serde_yaml::from_str("title: t").unwrap());
        m.status = Some(MeetingStatus {
            phase: Some(phase),
            signaling: signaling.map(str::to_owned),
            participants: count,
            ..Default::default()
        });
        m
    }

    #[test]
    fn only_running_meetings_have_a_count() {
        let running = meeting(MeetingPhase::Running, Some("127.1.0.4:8080"), Some(3));
        assert_eq!(desired(&running, Some(5)), Some(5));
        assert_eq!(
            desired(&running, None),
            Some(3),
            "kept while the SFU is silent"
        );
        let ended = meeting(MeetingPhase::Ended, None, Some(3));
        assert_eq!(desired(&ended, None), None, "removed once it is over");
        let starting = meeting(MeetingPhase::Starting, None, None);
        assert_eq!(desired(&starting, Some(1)), None);
        let m = Meeting::new("m", serde_yaml::from_str("title: t").unwrap());
        assert_eq!(desired(&m, Some(1)), None);
    }
}
