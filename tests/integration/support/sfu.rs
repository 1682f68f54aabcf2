//! A meeting's SFU pod played by a local `raum sfu` process: kwok runs no containers,
//! but it gives pods loopback IPs, so the process listens where the pod would. It runs
//! with the pod's own arguments and environment (as the container would get them),
//! changed only where a shared test machine needs it: the media port is any free one
//! on loopback and is advertised as it is (there is no NodePort path without
//! kube-proxy), and the node's IP (the downward API's value) is 127.0.0.1.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::Pod;

use super::cluster::scratch_dir;

/// A `raum sfu` process standing in for a pod's container; killed when dropped.
pub struct Sfu {
    child: Child,
    /// Its stderr (process logs).
    pub log: PathBuf,
}

impl Sfu {
    /// Starts `raum sfu` for `pod` (which must have its IP), with `RAUM_LOG=log_filter`.
    pub fn for_pod(pod: &Pod, log_filter: &str) -> Sfu {
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .expect("the pod has an IP");
        let container = &pod.spec.as_ref().expect("a pod spec").containers[0];
        let args: Vec<String> = container
            .args
            .clone()
            .expect("the container's arguments")
            .into_iter()
            .filter(|a| {
                !a.starts_with("--advertise-port=") && !a.starts_with("--advertise-tcp-port=")
            })
            .map(|a| {
                if let Some(port) = a.strip_prefix("--listen=0.0.0.0:") {
                    format!("--listen={ip}:{port}")
                } else if a.starts_with("--media-port=") {
                    "--media-port=0".to_owned()
                } else if a.starts_with("--media-tcp-port=") {
                    "--media-tcp-port=0".to_owned()
                } else {
                    a
                }
            })
            .chain(["--media-bind=127.0.0.1".to_owned()])
            .collect();
        let log = scratch_dir("raum-sfu-log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raum"));
        cmd.args(&args)
            .env_clear()
            .env("RAUM_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for var in container.env.iter().flatten() {
            let value = match (&var.value, &var.value_from) {
                (Some(v), _) => v.clone(),
                // status.hostIP: the node is this machine.
                (None, Some(from))
                    if from
                        .field_ref
                        .as_ref()
                        .is_some_and(|f| f.field_path == "status.hostIP") =>
                {
                    "127.0.0.1".to_owned()
                }
                other => panic!(
                    "{}: an environment source the test cannot play: {other:?}",
                    var.name
                ),
            };
            cmd.env(&var.name, value);
        }
        Sfu {
            child: cmd.spawn().expect("raum sfu starts"),
            log,
        }
    }

    /// Its log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
