//! What raum's integration tests share. A crate of its own, so each test binary uses
//! what it needs without `#[path]` includes or dead-code allowances.
//!
//! - [`cluster`]: the real control plane (tests/cluster/up), shared per test binary;
//! - [`wait`]: waiting for a condition, in async and in blocking tests;
//! - [`process`]: the raum binary, the repository, a child paused at a marker line;
//! - [`web`]: HTTP and signaling clients, `raum standalone` as a process;
//! - [`peer`]: a WebRTC participant on the async `webrtc` crate;
//! - [`browser`]: headless Chromium driven by playwright-core;
//! - [`loadgen`]: `raum loadtest` as synthetic participants sending real VP8;
//! - [`netns`]: two network namespaces joined by a veth pair;
//! - [`tools`]: helm and kubeconform.

pub mod browser;
pub mod cluster;
pub mod loadgen;
pub mod netns;
pub mod peer;
pub mod process;
pub mod tools;
pub mod wait;
pub mod web;
