//! The shared access log: the one record the privacy notice allows (time, browser,
//! IP), written by gateways and pruned by [`prune`].
//!
//! One JSON object per line with exactly the keys `time`, `ip`, `user_agent`, one file
//! per UTC day and writer, `access-YYYY-MM-DD.<instance>.jsonl` ([`entry`]).

pub mod entry;
pub mod prune;
pub mod summary;
pub mod writer;
