//! The gateway's Prometheus metrics. Labels carry routes and outcomes only: never a
//! token, address or meeting.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::access_log::writer::Counters;

/// Which route answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Route {
    /// `GET /j/<token>`.
    join,
    /// `GET /j/<token>/state`.
    state,
    /// `GET /j/<token>/ws`.
    ws,
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// The meeting is open.
    open,
    /// Not started yet.
    waiting,
    /// Over.
    ended,
    /// Full.
    full,
    /// No such meeting.
    not_found,
    /// Refused: too many misses from this client.
    rate_limited,
    /// Refused: the list of meetings is not loaded yet (just started).
    unavailable,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    route: Route,
    outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Direction {
    direction: &'static str,
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    lookups: Family<Labels, Counter>,
    sessions: Gauge,
    upstream_failures: Counter,
    messages: Family<Direction, Counter>,
    meetings: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("raum_gateway");
        let lookups = Family::default();
        registry.register(
            "lookups",
            "Requests for a join token, by route and what they found",
            lookups.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "sessions",
            "Participants' signaling connections open now",
            sessions.clone(),
        );
        let upstream_failures = Counter::default();
        registry.register(
            "upstream_failures",
            "Signaling connections the meeting's SFU did not accept",
            upstream_failures.clone(),
        );
        let messages = Family::default();
        registry.register(
            "signaling_messages",
            "Signaling messages relayed, by direction",
            messages.clone(),
        );
        let meetings = Gauge::default();
        registry.register("meetings", "Meetings the gateway knows", meetings.clone());
        Self {
            registry,
            lookups,
            sessions,
            upstream_failures,
            messages,
            meetings,
        }
    }
}

impl Metrics {
    /// Counts one lookup.
    pub fn lookup(&self, route: Route, outcome: Outcome) {
        self.lookups.get_or_create(&Labels { route, outcome }).inc();
    }

    /// A signaling connection opened; the guard counts it closed when dropped.
    pub fn session(&self) -> SessionGuard<'_> {
        self.sessions.inc();
        SessionGuard(&self.sessions)
    }

    /// The SFU refused or could not be reached.
    pub fn upstream_failure(&self) {
        self.upstream_failures.inc();
    }

    /// Counts `n` relayed messages towards the SFU (`up`) or the browser (`down`).
    pub fn relayed(&self, direction: &'static str, n: u64) {
        self.messages
            .get_or_create(&Direction { direction })
            .inc_by(n);
    }

    /// Sets the number of known meetings.
    pub fn set_meetings(&self, n: usize) {
        self.meetings.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The text exposition, with the access-log writer's counters.
    pub fn render(&self, log: &Counters) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP raum_gateway_access_log_{name} {help}\n\
                 # TYPE raum_gateway_access_log_{name} {kind}\n\
                 raum_gateway_access_log_{name} {value}\n"
            ));
        };
        metric(
            "written_total",
            "counter",
            "Access-log entries written and synced",
            log.written.load(Ordering::Relaxed),
        );
        metric(
            "pending",
            "gauge",
            "Access-log entries waiting to be written",
            log.pending.load(Ordering::Relaxed),
        );
        metric(
            "dropped_total",
            "counter",
            "Access-log entries dropped because the buffer was full",
            log.dropped.load(Ordering::Relaxed),
        );
        metric(
            "write_errors_total",
            "counter",
            "Failed attempts to write the access log",
            log.write_errors.load(Ordering::Relaxed),
        );
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// Counts a signaling connection as open while it lives.
pub struct SessionGuard<'a>(&'a Gauge);

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
