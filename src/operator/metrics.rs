//! The operator's Prometheus metrics and its small HTTP server (`/metrics`,
//! `/healthz`, `/readyz`). Labels carry controller names, stages and phases only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::access_log::summary::Summary;
use crate::api::holds::Holds;
use crate::api::{Meeting, MeetingPhase, RetentionPolicy};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: &'static str,
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    namespace: String,
    policy: String,
}

type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

type HistogramFamily = Family<ControllerLabel, Histogram, fn() -> Histogram>;

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: HistogramFamily,
    meetings: Family<PhaseLabel, Gauge>,
    leader: Gauge,
    /// Meetings as the controllers see them, counted by phase at scrape time.
    stores: std::sync::Mutex<Vec<Store<Meeting>>>,
    retention: Retention,
}

/// What makes the retention promise observable, computed at scrape time from the
/// RetentionPolicies (their holds and the pruner's status) and the access log's
/// summary the gateway publishes.
#[derive(Default)]
struct Retention {
    policies: std::sync::Mutex<Vec<Store<RetentionPolicy>>>,
    summary: std::sync::Mutex<Option<Summary>>,
    oldest_unheld_age: Family<PolicyLabels, FloatGauge>,
    max_age: Family<PolicyLabels, FloatGauge>,
    kept_for_holds: Family<PolicyLabels, Gauge>,
    last_success: Family<PolicyLabels, FloatGauge>,
    last_run_failed: Family<PolicyLabels, Gauge>,
    holds_invalid: Family<PolicyLabels, Gauge>,
    oldest_age: Family<PolicyLabels, FloatGauge>,
    summary_age: Family<PolicyLabels, FloatGauge>,
    other_fields: Family<PolicyLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("raum");
        let reconciles = Family::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        let errors = Family::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by pipeline stage",
            errors.clone(),
        );
        let durations: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 2.0, 14)));
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            durations.clone(),
        );
        let meetings = Family::default();
        registry.register("meetings", "Meetings by phase", meetings.clone());
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica leads, 0 on standby",
            leader.clone(),
        );
        let retention = Retention::default();
        registry.register(
            "access_log_oldest_unheld_entry_age_seconds",
            "Age of the oldest access-log entry no hold of the policy covers (by day file; absent without a summary)",
            retention.oldest_unheld_age.clone(),
        );
        registry.register(
            "retention_max_age_seconds",
            "The policy's maxAge",
            retention.max_age.clone(),
        );
        registry.register(
            "retention_entries_kept_for_holds",
            "Expired entries the last pruning run kept because a hold covers them",
            retention.kept_for_holds.clone(),
        );
        registry.register(
            "retention_last_success_timestamp_seconds",
            "When the last successful pruning run finished (Unix time; the policy's creation while none has)",
            retention.last_success.clone(),
        );
        registry.register(
            "retention_last_run_failed",
            "1 if the latest pruning run failed",
            retention.last_run_failed.clone(),
        );
        registry.register(
            "retention_holds_invalid",
            "Hold annotations that do not parse (each holds everything)",
            retention.holds_invalid.clone(),
        );
        registry.register(
            "access_log_oldest_entry_age_seconds",
            "Age of the oldest access-log entry, held or not",
            retention.oldest_age.clone(),
        );
        registry.register(
            "access_log_summary_age_seconds",
            "How long ago the gateway last published the access log's summary (+Inf: none read)",
            retention.summary_age.clone(),
        );
        registry.register(
            "access_log_lines_with_other_fields",
            "Access-log lines the gateway found with other fields than time, ip and user_agent",
            retention.other_fields.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            durations,
            meetings,
            leader,
            stores: Default::default(),
            retention,
        }
    }
}

impl Metrics {
    /// Records one reconcile of `controller`; `failed_stage` names the stage that
    /// failed, if any.
    pub fn observe_reconcile(
        &self,
        controller: &'static str,
        took: Duration,
        failed_stage: Option<&'static str>,
    ) {
        let label = ControllerLabel { controller };
        self.reconciles.get_or_create(&label).inc();
        self.durations
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        if let Some(stage) = failed_stage {
            self.errors
                .get_or_create(&ErrorLabels { controller, stage })
                .inc();
        }
    }

    /// Sets whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Adds a controller's store, whose meetings are counted by phase.
    pub fn watch_meetings(&self, store: Store<Meeting>) {
        self.stores.lock().expect("not poisoned").push(store);
    }

    /// Adds a controller's store of RetentionPolicies.
    pub fn watch_policies(&self, store: Store<RetentionPolicy>) {
        self.retention
            .policies
            .lock()
            .expect("not poisoned")
            .push(store);
    }

    /// The access log's latest summary, as the gateway published it.
    pub fn set_access_log_summary(&self, summary: Option<Summary>) {
        *self.retention.summary.lock().expect("not poisoned") = summary;
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        self.retention.refresh(jiff::Timestamp::now());
        let phases = [
            MeetingPhase::Scheduled,
            MeetingPhase::Starting,
            MeetingPhase::Running,
            MeetingPhase::Ended,
            MeetingPhase::Failed,
        ];
        let mut counts = [0i64; 5];
        for store in self.stores.lock().expect("not poisoned").iter() {
            for m in store.state() {
                if let Some(phase) = m.status.as_ref().and_then(|s| s.phase) {
                    counts[phases
                        .iter()
                        .position(|p| *p == phase)
                        .expect("every phase listed")] += 1;
                }
            }
        }
        for (phase, n) in phases.iter().zip(counts) {
            self.meetings
                .get_or_create(&PhaseLabel {
                    phase: phase.as_str(),
                })
                .set(n);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

impl Retention {
    fn refresh(&self, now: jiff::Timestamp) {
        let secs = |d: jiff::SignedDuration| d.as_secs_f64().max(0.0);
        let summary = self.summary.lock().expect("not poisoned").clone();
        // Only the leader has policies: a standby exports none of these (alerts take
        // the max over replicas), and a deleted policy's series go.
        for family in [
            &self.oldest_unheld_age,
            &self.max_age,
            &self.last_success,
            &self.oldest_age,
            &self.summary_age,
        ] {
            family.clear();
        }
        for family in [
            &self.kept_for_holds,
            &self.last_run_failed,
            &self.holds_invalid,
            &self.other_fields,
        ] {
            family.clear();
        }
        for store in self.policies.lock().expect("not poisoned").iter() {
            for rp in store.state() {
                let labels = PolicyLabels {
                    namespace: rp.metadata.namespace.clone().unwrap_or_default(),
                    policy: rp.metadata.name.clone().unwrap_or_default(),
                };
                let holds = Holds::from_annotations(
                    rp.metadata
                        .annotations
                        .as_ref()
                        .unwrap_or(&Default::default()),
                );
                self.holds_invalid
                    .get_or_create(&labels)
                    .set(holds.invalid.len() as i64);
                if let Ok(max_age) = rp.spec.max_age() {
                    self.max_age
                        .get_or_create(&labels)
                        .set(max_age.duration().as_secs_f64());
                }
                if let Some(run) = rp.status.as_ref().and_then(|st| st.last_run.as_ref()) {
                    self.kept_for_holds
                        .get_or_create(&labels)
                        .set(run.entries_kept_for_holds as i64);
                    let failed = run.outcome.as_deref().is_some_and(|o| o != "Succeeded");
                    self.last_run_failed
                        .get_or_create(&labels)
                        .set(i64::from(failed));
                }
                // A policy that never pruned successfully counts from its creation,
                // so a missed first run is overdue as any other.
                let success = rp
                    .status
                    .as_ref()
                    .and_then(|st| st.last_success.as_ref())
                    .or(rp.metadata.creation_timestamp.as_ref());
                if let Some(t) = success {
                    self.last_success
                        .get_or_create(&labels)
                        .set(t.0.as_second() as f64);
                }
                // Without a summary the age is +Inf (the "summary missing" alert) and
                // nothing about the log is claimed.
                self.summary_age.get_or_create(&labels).set(
                    summary
                        .as_ref()
                        .and_then(|s| s.updated)
                        .map_or(f64::INFINITY, |t| secs(now.duration_since(t))),
                );
                if let Some(s) = &summary {
                    self.oldest_age
                        .get_or_create(&labels)
                        .set(s.oldest().map_or(0.0, |t| secs(now.duration_since(t))));
                    self.other_fields
                        .get_or_create(&labels)
                        .set(s.lines_with_other_fields as i64);
                    // Spans are inclusive; `contain` takes a half-open one.
                    let oldest = s.oldest_unheld(|from, to| {
                        holds.contain(from, to + jiff::SignedDuration::from_millis(1))
                    });
                    self.oldest_unheld_age
                        .get_or_create(&labels)
                        .set(oldest.map_or(0.0, |t| secs(now.duration_since(t))));
                }
            }
        }
    }
}

/// Whether the process is ready to serve (set once the controllers or the standby
/// loop run).
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    ready: Readiness,
}

/// Binds the HTTP server; returns the bound address and the future that serves until
/// `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let app = Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { metrics, ready });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((bound, async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }))
}

async fn render_metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.ready.0.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_reconciles_errors_and_phases() {
        let m = Metrics::default();
        m.observe_reconcile("meeting", Duration::from_millis(3), None);
        m.observe_reconcile("meeting", Duration::from_millis(5), Some("apply"));
        m.set_leader(true);
        let text = m.render();
        assert!(
            text.contains(r#"raum_reconciles_total{controller="meeting"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"raum_reconcile_errors_total{controller="meeting",stage="apply"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"raum_reconcile_duration_seconds_count{controller="meeting"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"raum_meetings{phase="Running"} 0"#),
            "{text}"
        );
        assert!(text.contains("raum_leader 1"), "{text}");
    }
}
