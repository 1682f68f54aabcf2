//! Facts about the machine this process runs on.

/// The host name (in a pod: the pod's name), if it can be read.
pub fn name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
