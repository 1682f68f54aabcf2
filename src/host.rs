//! Facts about the machine this process runs on.

/// The host name (in a pod: the pod's name), if it can be read.
pub fn name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// CPU time this process has used so far (user and system), from /proc/self/stat.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command's closing parenthesis; utime and stime are the
    // 14th and 15th of the line, the 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on (the kernel's ABI).
    Some(ticks as f64 / 100.0)
}

/// The CPU limit of this process's cgroup in cores (a pod's `limits.cpu`), if there
/// is one: cgroup v2's cpu.max, else v1's cpu.cfs_quota_us / cpu.cfs_period_us.
pub fn cpu_limit_cores() -> Option<f64> {
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cpu.max").ok();
    let (quota, period) = match v2 {
        Some(text) => {
            let mut parts = text.split_whitespace();
            (parts.next()?.to_owned(), parts.next()?.to_owned())
        }
        None => (
            std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").ok()?,
            std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_period_us").ok()?,
        ),
    };
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then_some(quota / period)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_used_some_cpu() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(super::cpu_seconds().unwrap() > 0.0);
    }
}
