//! The harness itself: whatever way a test binary ends, the control plane it started
//! is gone afterwards, processes and directory alike.

use std::path::Path;
use std::time::Duration;

use raum_testkit::wait::eventually_blocking as wait_until;

use crate::support::cluster::{scratch_dir, supervise};

/// The PIDs `up` recorded for its components.
fn component_pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// Alive means: the process exists and is not a zombie waiting to be reaped.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap().split_whitespace().next();
            state != Some("Z")
        }
        Err(_) => false,
    }
}

#[test]
fn closing_the_supervisor_pipe_stops_every_component_and_removes_the_directory() {
    let dir = scratch_dir("raum-harness-pipe");
    let (mut child, _stdout, kubeconfig) = supervise(&dir).unwrap();
    assert!(kubeconfig.starts_with(&dir));
    let pids = component_pids(&dir);
    assert_eq!(
        pids.len(),
        5,
        "etcd, apiserver, controller-manager, scheduler, kwok"
    );
    assert!(pids.iter().all(|&p| alive(p)));

    // What the kernel does when the test binary ends, however it ends.
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    for pid in pids {
        assert!(!alive(pid), "component {pid} outlived its supervisor");
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn killing_the_supervisor_takes_the_components_with_it() {
    let dir = scratch_dir("raum-harness-kill");
    let (mut child, _stdout, _) = supervise(&dir).unwrap();
    let pids = component_pids(&dir);
    // Something to kill: otherwise "all gone" below would hold having checked nothing.
    assert_eq!(pids.len(), 5, "{pids:?}");
    assert!(pids.iter().all(|&p| alive(p)), "{pids:?}");
    child.kill().unwrap(); // SIGKILL: no trap runs, the parent-death signal must do it.
    child.wait().unwrap();
    wait_until(
        "the components to die with their supervisor",
        Duration::from_secs(10),
        || pids.iter().all(|&p| !alive(p)),
    );
    // Nobody was left to remove the directory: that is the one thing a SIGKILL of the
    // supervisor itself costs. (A killed *test binary* only closes the pipe.)
    std::fs::remove_dir_all(&dir).unwrap();
}
