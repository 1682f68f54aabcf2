//! Joining from a network that lets no UDP out (a school's or a ministry's firewall).
//!
//! `raum standalone` runs in a network namespace of the test's own, and a participant
//! ("Outside") in Chromium beside it; a second Chromium ("Inside") runs in another
//! namespace whose nftables output chain drops every UDP packet. The two namespaces are
//! joined by a veth pair on 198.18.0.0/30 (reserved for network tests); nothing is
//! routed off the machine and both are deleted at the end (raum_testkit::netns).
//!
//! Inside can only reach the SFU over TCP: its media must take the SFU's passive
//! ICE-TCP candidate, and both must see and hear each other.

use std::path::Path;
use std::time::Duration;

use raum_testkit::browser;
use raum_testkit::netns::{CLIENT_IP, Pair, SERVER_IP, run};
use raum_testkit::web::{Standalone, meeting_yaml};
use serde_json::{Value, json};

/// Every UDP packet out of the namespace is dropped and counted; TCP passes.
const NO_UDP_OUT: &str = "table inet raum_firewall {
  chain output {
    type filter hook output priority 0; policy accept;
    meta l4proto udp counter drop
  }
}
";

/// A script that runs Chromium in namespace `ns` (playwright-core starts it as its
/// browser; `ip netns exec` execs, so the pipe to it stays the same).
fn chromium_in(dir: &Path, ns: &str) -> String {
    let path = dir.join(format!("chromium-{ns}"));
    std::fs::write(
        &path,
        format!("#!/bin/sh\nexec ip netns exec {ns} /usr/bin/chromium \"$@\"\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// UDP packets the firewall dropped so far.
fn dropped_udp(ns: &str) -> u64 {
    let out = run(Pair::exec(ns, "nft").args(["list", "table", "inet", "raum_firewall"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "packets")
        .unwrap_or_else(|| panic!("a counter in {text}"));
    words[at + 1].parse().expect("a number")
}

fn side<'a>(v: &'a Value, who: &str) -> &'a Value {
    &v["received"][who]
}

#[test]
fn a_participant_whose_network_drops_udp_gets_media_over_ice_tcp() {
    let pair = Pair::new("fw");
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), NO_UDP_OUT).unwrap();
    run(Pair::exec(&pair.client, "nft").arg("-f").arg(rules.path()));

    let addr = format!("{SERVER_IP}:8080").parse().unwrap();
    let s = Standalone::start_in_netns(
        &pair.server,
        addr,
        &[("lesson.yaml", &meeting_yaml("lesson", "  title: Lesson\n"))],
        &[],
    );
    let token = Standalone::token("lesson");
    let url = format!("http://{addr}/j/{token}");
    let wrappers = tempfile::tempdir().unwrap();
    let v = browser::run(
        json!({
            "scenario": "firewalled",
            "url": url,
            "secureOrigin": s.origin(),
            "outside": chromium_in(wrappers.path(), &pair.server),
            "inside": chromium_in(wrappers.path(), &pair.client),
        }),
        Duration::from_secs(180),
    );

    for who in ["Inside", "Outside"] {
        assert_eq!(side(&v, who)["videos"], 1, "{who} sees the other: {v}");
        assert!(
            side(&v, who)["audioPackets"].as_u64().unwrap_or(0) > 0,
            "{who} hears the other: {v}"
        );
    }
    let selected = &v["insidePair"];
    assert_eq!(selected["state"], "succeeded", "{v}");
    assert_eq!(selected["local"]["protocol"], "tcp", "{v}");
    assert_eq!(selected["remote"]["protocol"], "tcp", "{v}");
    assert_eq!(
        selected["remote"]["candidateType"], "host",
        "the SFU's own: {v}"
    );
    // The firewall was really there: Inside's browser tried UDP (its own candidates'
    // checks, STUN) and lost it.
    let dropped = dropped_udp(&pair.client);
    assert!(dropped > 0, "the firewall dropped no UDP: {v}");

    // The SFU's process log names no participant's address.
    let log = s.log();
    assert!(
        !log.contains(CLIENT_IP),
        "the process log holds a client address:\n{log}"
    );
    eprintln!("firewalled call: {v}; {dropped} UDP packets dropped");
}
