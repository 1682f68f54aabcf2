//! The RetentionPolicy controller: one CronJob per policy that runs `raum prune`, its
//! narrowly scoped ServiceAccount, and the holds in force shown in the status.

pub mod objects;
pub mod status;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::json;
use tracing::{debug, warn};

use super::backoff::Failures;
use super::metrics::Metrics;
use super::names::OPERATOR as FIELD_MANAGER;
use crate::api::RetentionPolicy;
use crate::api::holds::Holds;

/// Look at every policy at least this often, to repair drift of the owned objects.
const RESYNC: Duration = Duration::from_secs(600);

/// Shared state of all reconciles.
pub struct Context {
    /// API client.
    pub client: kube::Client,
    /// The raum image the pruning pods run.
    pub image: String,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Reconciles that failed in a row, per policy.
    pub failures: std::sync::Mutex<Failures>,
}

/// A reconcile failed; the controller retries with backoff per policy. (An invalid
/// policy is the API server's to refuse; holds that do not parse are a condition of a
/// reconcile that succeeds.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy lacks metadata the API server always sets.
    #[error("RetentionPolicy has no {0}")]
    MissingMetadata(&'static str),
    /// Applying an owned object failed.
    #[error("cannot apply {kind} {name}: {source}")]
    Apply {
        /// The kind.
        kind: String,
        /// The name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// The pipeline stage that failed, for the error metric.
    pub fn stage(&self) -> &'static str {
        match self {
            Self::MissingMetadata(_) => "read",
            Self::Apply { .. } => "apply",
            Self::Status(_) => "status",
        }
    }
}

/// Reconciles one RetentionPolicy.
pub async fn reconcile(rp: Arc<RetentionPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&rp, &ctx).await;
    ctx.metrics.observe_reconcile(
        "retentionpolicy",
        started.elapsed(),
        result.as_ref().err().map(Error::stage),
    );
    let uid = rp.uid().unwrap_or_default();
    match &result {
        Ok(_) => ctx.failures().succeeded(&uid),
        Err(e) => {
            // Shown on the object once per failure, not on every retry.
            let message = e.to_string();
            if ctx.failures().is_new(&uid, &message) {
                let note = Event {
                    type_: EventType::Warning,
                    reason: "ReconcileFailed".into(),
                    note: Some(message),
                    action: "Reconcile".into(),
                    secondary: None,
                };
                if let Err(e) = ctx.recorder.publish(&note, &rp.object_ref(&())).await {
                    debug!(error = %e, "cannot publish event");
                }
            }
        }
    }
    result
}

/// What to do after a failed reconcile: try again after a backoff that doubles with
/// each failure of this policy in a row (1 s up to 5 min).
pub fn error_policy(rp: Arc<RetentionPolicy>, err: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.failures().failed(&rp.uid().unwrap_or_default());
    warn!(policy = %rp.name_any(), namespace = %rp.namespace().unwrap_or_default(), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

impl Context {
    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().expect("not poisoned")
    }
}

async fn apply<K>(ctx: &Context, ns: &str, obj: &K) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: K::kind(&()).into_owned(),
        name,
        source,
    })?;
    Ok(())
}

async fn reconcile_inner(rp: &RetentionPolicy, ctx: &Context) -> Result<Action, Error> {
    if rp.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rp.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let now = Timestamp::now();
    let holds = Holds::from_annotations(
        rp.metadata
            .annotations
            .as_ref()
            .unwrap_or(&Default::default()),
    );

    // The pruning pods' identity first, so the first Job never runs without it.
    apply::<ServiceAccount>(ctx, &ns, &objects::service_account(rp)).await?;
    apply::<Role>(ctx, &ns, &objects::role(rp)).await?;
    apply::<RoleBinding>(ctx, &ns, &objects::role_binding(rp)).await?;
    let cron_job = objects::cron_job(rp, &ctx.image);
    apply::<CronJob>(ctx, &ns, &cron_job).await?;

    let previous = rp.status.as_ref();
    let st = status::compute(
        &holds,
        previous,
        cron_job.metadata.name.as_deref().unwrap_or_default(),
        rp.metadata.generation,
        now,
    );
    publish(ctx, rp, previous, &st).await;

    let unchanged = previous.is_some_and(|p| {
        let mut mine = p.clone();
        mine.last_run = None;
        mine == st
    });
    if !unchanged {
        let api: Api<RetentionPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({
            "apiVersion": RetentionPolicy::api_version(&()),
            "kind": RetentionPolicy::kind(&()),
            "status": st,
        });
        api.patch_status(
            &rp.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
        .map_err(Error::Status)?;
    }
    Ok(Action::requeue(RESYNC))
}

/// A Warning when holds stop parsing; a Normal event when the set of holds changes.
async fn publish(
    ctx: &Context,
    rp: &RetentionPolicy,
    previous: Option<&crate::api::RetentionPolicyStatus>,
    st: &crate::api::RetentionPolicyStatus,
) {
    let valid = |s: &crate::api::RetentionPolicyStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == status::HOLDS_VALID)
            .map(|c| (c.status.clone(), c.message.clone()))
    };
    let mut events = Vec::new();
    if let Some((now_status, message)) = valid(st)
        && now_status == "False"
        && previous.and_then(valid).map(|(s, _)| s) != Some("False".into())
    {
        events.push(Event {
            type_: EventType::Warning,
            reason: "InvalidHold".into(),
            note: Some(message),
            action: "ReadHolds".into(),
            secondary: None,
        });
    }
    let ids = |s: &crate::api::RetentionPolicyStatus| {
        s.holds
            .iter()
            .map(|h| (h.id.clone(), h.window.clone()))
            .collect::<Vec<_>>()
    };
    if previous.is_some_and(|p| ids(p) != ids(st)) || (previous.is_none() && !st.holds.is_empty()) {
        let list: Vec<String> = st.holds.iter().map(|h| h.id.clone()).collect();
        events.push(Event {
            type_: EventType::Normal,
            reason: "HoldsChanged".into(),
            note: Some(if list.is_empty() {
                "no holds in force".to_owned()
            } else {
                format!("holds in force: {}", list.join(", "))
            }),
            action: "ReadHolds".into(),
            secondary: None,
        });
    }
    let reference = rp.object_ref(&());
    for ev in events {
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            debug!(error = %e, reason = %ev.reason, "cannot publish event");
        }
    }
}
