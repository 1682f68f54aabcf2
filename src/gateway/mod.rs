//! `raum gateway` (in progress): serves join URLs and the web client, proxies signaling
//! to each meeting's SFU and writes the shared access log. So far: which address an
//! access comes from ([`client_ip`]); the access-log writer is `crate::access_log::writer`.

pub mod client_ip;
