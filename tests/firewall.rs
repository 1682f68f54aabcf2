//! Joining from a network that lets no UDP out (a school's or a ministry's firewall).
//!
//! `raum standalone` runs in a network namespace of the test's own, and a participant
//! ("Outside") in Chromium beside it; a second Chromium ("Inside") runs in another
//! namespace whose nftables output chain drops every UDP packet. The two namespaces are
//! joined by a veth pair on 198.18.0.0/30 (reserved for network tests); nothing is
//! routed off the machine and both are deleted at the end (raum_testkit::netns).
//!
//! Three firewalls, each stricter: no UDP (Inside's media must take the SFU's passive
//! ICE-TCP candidate); no UDP and TCP only to the web port and TURN's TCP port (its
//! media must be relayed by the built-in TURN server over TCP); no UDP and TCP only
//! to the web port and 443 (relayed over TURN over TLS). Each time both see and hear
//! each other and the selected candidate pair says which way the media went.

use std::path::Path;
use std::time::Duration;

use raum_testkit::browser;
use raum_testkit::netns::{CLIENT_IP, Pair, SERVER_IP, chromium_in, run};
use raum_testkit::web::{Standalone, meeting_yaml};
use serde_json::{Value, json};

/// Every UDP packet out of the namespace is dropped and counted, and TCP to ports
/// other than `tcp_ports` (all, if empty) is rejected.
fn firewall(tcp_ports: &[u16]) -> String {
    let tcp = if tcp_ports.is_empty() {
        String::new()
    } else {
        let ports: Vec<String> = tcp_ports.iter().map(u16::to_string).collect();
        format!(
            "    tcp dport != {{ {} }} counter reject with tcp reset\n",
            ports.join(", ")
        )
    };
    format!(
        "table inet raum_firewall {{\n  chain output {{\n    type filter hook output priority 0; policy accept;\n    meta l4proto udp counter drop\n{tcp}  }}\n}}\n"
    )
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The web port, TURN's TCP port and its TLS port in the server's namespace.
const WEB_PORT: u16 = 8080;
const TURN_PORT: u16 = 3478;
const TURN_TLS_PORT: u16 = 443;

fn side<'a>(v: &'a Value, who: &str) -> &'a Value {
    &v["received"][who]
}

/// A test certificate for the TURN server's TLS port (and its key), made by openssl.
fn certificate(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("turn.crt"), dir.join("turn.key"));
    run(std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={SERVER_IP}")])
        .args(["-addext", &format!("subjectAltName=IP:{SERVER_IP}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (cert.display().to_string(), key.display().to_string())
}

/// A HOME whose NSS database trusts `cert` (as a user who installed the TURN
/// server's certificate would have it).
fn home_trusting(dir: &Path, cert: &str) -> std::path::PathBuf {
    let db = dir.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let db = format!("sql:{}", db.display());
    run(std::process::Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
    run(std::process::Command::new("certutil").args([
        "-A",
        "-d",
        &db,
        "-t",
        "C,,",
        "-n",
        "raum-test-turn",
        "-i",
        cert,
    ]));
    dir.to_owned()
}

/// Runs the two browsers through `raum standalone` with Inside behind a firewall
/// that drops UDP and lets TCP out only to `tcp_ports` (any port, if empty), with the
/// built-in TURN relay if `turn`. Returns the scenario's result, the UDP packets the
/// firewall dropped and the standalone's process log.
fn call_through(tcp_ports: &[u16], with_turn: bool) -> (Value, u64, String) {
    // One call at a time: four Chromiums at once would measure the two cores.
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let pair = Pair::new("fw");
    Pair::nft(&pair.client, &firewall(tcp_ports));

    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(certs.path());
    let addr = format!("{SERVER_IP}:{WEB_PORT}").parse().unwrap();
    let turn = [
        format!("--turn-port={TURN_PORT}"),
        format!("--turn-tls-port={TURN_TLS_PORT}"),
        format!("--turn-tls-cert={cert}"),
        format!("--turn-tls-key={key}"),
    ];
    let turn: Vec<&str> = if with_turn {
        turn.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    let s = Standalone::start_in_netns(
        &pair.server,
        addr,
        &[("lesson.yaml", &meeting_yaml("lesson", "  title: Lesson\n"))],
        &turn,
    );
    let token = Standalone::token("lesson");
    let url = format!("http://{addr}/j/{token}");
    let wrappers = tempfile::tempdir().unwrap();
    let home = home_trusting(wrappers.path(), &cert);
    // On failure, the standalone's log says what the relay and the room saw.
    let v = std::panic::catch_unwind(|| {
        browser::run(
            json!({
                "scenario": "firewalled",
                "url": url,
                "secureOrigin": s.origin(),
                "outside": chromium_in(wrappers.path(), &pair.server, &home),
                "inside": chromium_in(wrappers.path(), &pair.client, &home),
            }),
            Duration::from_secs(180),
        )
    });
    let v = v.unwrap_or_else(|e| {
        eprintln!("raum standalone's log:\n{}", s.log());
        std::panic::resume_unwind(e)
    });
    let dropped = Pair::nft_packets(&pair.client, "raum_firewall");
    (v, dropped, s.log())
}

/// Both see and hear each other, the firewall was there (Inside tried UDP and lost
/// it), and the SFU's process log names no participant's address.
fn assert_call(v: &Value, dropped: u64, log: &str) {
    for who in ["Inside", "Outside"] {
        assert_eq!(side(v, who)["videos"], 1, "{who} sees the other: {v}");
        assert!(
            side(v, who)["audioPackets"].as_u64().unwrap_or(0) > 0,
            "{who} hears the other: {v}"
        );
    }
    assert_eq!(v["insidePair"]["state"], "succeeded", "{v}");
    assert!(dropped > 0, "the firewall dropped no UDP: {v}");
    assert!(
        !log.contains(CLIENT_IP),
        "the process log holds a client address:\n{log}"
    );
    // Nor a TURN username, nor anything of the TURN engine's own logging.
    assert!(!log.contains("username"), "{log}");
    assert!(!log.contains("turn_server_proto"), "{log}");
}

#[test]
fn a_participant_whose_network_drops_udp_gets_media_over_ice_tcp() {
    // Without TURN: with it, Chromium may pick a relay over TCP as well (seen once),
    // and this case is about the SFU's own TCP candidate.
    let (v, dropped, log) = call_through(&[], false);
    assert_call(&v, dropped, &log);
    let selected = &v["insidePair"];
    assert_eq!(selected["local"]["protocol"], "tcp", "{v}");
    assert_eq!(selected["remote"]["protocol"], "tcp", "{v}");
    assert_eq!(
        selected["remote"]["candidateType"], "host",
        "the SFU's own: {v}"
    );
    eprintln!("ICE-TCP: {v}; {dropped} UDP packets dropped");
}

#[test]
fn a_network_that_allows_only_the_web_and_turn_over_tcp_gets_relayed_media() {
    let (v, dropped, log) = call_through(&[WEB_PORT, TURN_PORT], true);
    assert_call(&v, dropped, &log);
    let selected = &v["insidePair"];
    assert_eq!(selected["local"]["candidateType"], "relay", "{v}");
    assert_eq!(selected["local"]["relayProtocol"], "tcp", "{v}");
    eprintln!("TURN over TCP: {v}; {dropped} UDP packets dropped");
}

#[test]
fn a_network_that_allows_only_443_gets_media_relayed_over_tls() {
    let (v, dropped, log) = call_through(&[WEB_PORT, TURN_TLS_PORT], true);
    assert_call(&v, dropped, &log);
    let selected = &v["insidePair"];
    assert_eq!(selected["local"]["candidateType"], "relay", "{v}");
    assert_eq!(selected["local"]["relayProtocol"], "tls", "{v}");
    eprintln!("TURN over TLS: {v}; {dropped} UDP packets dropped");
}
