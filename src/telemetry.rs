//! Process logging through `tracing`, to stderr.
//!
//! Process logs must never hold participants' data (IP addresses, user agents, display
//! names, chat text, join tokens): only the access log holds time, browser and IP.
//! Callers log counts, phases and object names, never request details.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. The filter comes from `RAUM_LOG` (same syntax as
/// `RUST_LOG`), defaulting to `info`.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("RAUM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
