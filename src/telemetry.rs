//! Process logging through `tracing`, to stderr.
//!
//! Process logs must never hold participants' data (IP addresses, user agents, display
//! names, chat text, join tokens): only the access log holds time, browser and IP.
//! Callers log counts, phases and object names, never request details. The WebRTC
//! stack logs participants' addresses (candidate pairs, every packet's source at debug
//! level), and the WebSocket library logs every message at trace level (a `join` holds a
//! name and the token, a `chat` its text), so their targets are dropped before any
//! filter a person can set.

use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::prelude::*;

/// The error of a library whose message may carry personal data (the WebRTC stack
/// quotes SDP, candidates and participants' addresses in its errors). It keeps what
/// failed and the type of the cause, never the cause's text, so logging it, printing
/// it or debugging it cannot leak what the message held.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Redacted {
    what: &'static str,
    cause: &'static str,
}

impl Redacted {
    /// `what` failed because of `cause`, whose text is dropped here.
    pub fn new<E>(what: &'static str, cause: E) -> Self {
        drop(cause);
        Self {
            what,
            cause: std::any::type_name::<E>(),
        }
    }

    /// A closure for `map_err`.
    pub fn of<E>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |cause| Self::new(what, cause)
    }
}

impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed ({}; details withheld)", self.what, self.cause)
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Redacted {}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Crates whose logs are never written, whatever `RAUM_LOG` says.
const SILENCED: &[&str] = &[
    "rtc",
    "webrtc",
    "sansio",
    "tungstenite",
    "tokio_tungstenite",
    // Its send-error warning names the destination (a participant's address). raum
    // builds it without its logging features as well; this keeps it so if a feature
    // comes back through another crate.
    "quinn_udp",
    // The TURN engine logs client addresses and usernames at info and debug; raum's
    // relay counts instead. (turn_client_proto is the tests' TURN client.)
    "turn_server_proto",
    "turn_client_proto",
    "turn_types",
    "stun_proto",
    "stun_types",
];

/// Whether events of `target` are dropped: the `SILENCED` crates, their modules and
/// their sub-crates (`rtc_ice`, `rtc_dtls`, ...).
pub fn silenced(target: &str) -> bool {
    SILENCED.iter().any(|c| {
        target
            .strip_prefix(c)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::") || rest.starts_with('_'))
    })
}

/// Installs the global subscriber. The filter comes from `RAUM_LOG` (same syntax as
/// `RUST_LOG`), defaulting to `info`; [`silenced`] targets are dropped regardless.
pub fn init(format: LogFormat) {
    let env = EnvFilter::try_from_env("RAUM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(
            layer
                .with_filter(env)
                .with_filter(filter_fn(|meta| !silenced(meta.target()))),
        )
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_error_never_prints_its_cause() {
        let cause = std::io::Error::other("candidate 203.0.113.7:5000 refused");
        let r = Redacted::new("setting the remote description", cause);
        for text in [r.to_string(), format!("{r:?}")] {
            assert!(!text.contains("203.0.113.7"), "{text}");
            assert!(
                text.contains("setting the remote description failed"),
                "{text}"
            );
            assert!(text.contains("io::error::Error"), "{text}");
        }
    }

    #[test]
    fn the_webrtc_stack_is_silenced_and_nothing_else() {
        for t in [
            "rtc",
            "rtc::peer_connection::handler::ice",
            "rtc_ice::agent",
            "rtc_dtls",
            "webrtc::peer_connection",
            "sansio",
            "tungstenite::protocol",
            "tokio_tungstenite",
            "quinn_udp",
            "quinn_udp::imp",
            "turn_server_proto::server",
            "stun_proto::agent",
            "turn_types",
        ] {
            assert!(silenced(t), "{t}");
        }
        for t in [
            "raum",
            "raum::sfu::room",
            "kube_runtime::controller",
            "rtcp_like_but_not",
            "hyper",
        ] {
            assert!(!silenced(t), "{t}");
        }
        assert!(!silenced("raum::sfu"));
        assert!(
            !silenced("rtcx"),
            "another crate that merely starts with rtc"
        );
    }
}
