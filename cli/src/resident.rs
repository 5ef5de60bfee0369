//! How much memory this process holds, as the kernel counts it.
//!
//! `/proc/self/status` (Linux) reports `VmRSS`, the resident set: pages of
//! this process in RAM right now (its heap, stacks, and the parts of the
//! binary and of mapped files it touched), and `VmHWM`, the most it has
//! ever held (the "high-water mark", loading included). Elsewhere these are
//! unknown and reported as `None`.

/// Resident bytes now and at the peak so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Resident {
    pub rss_bytes: u64,
    pub peak_bytes: u64,
}

/// Reads both figures, or `None` where `/proc/self/status` is missing.
pub fn resident() -> Option<Resident> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(Resident { rss_bytes: field_kib(&status, "VmRSS:")? * 1024, peak_bytes: field_kib(&status, "VmHWM:")? * 1024 })
}

/// The number in a `Name:   1234 kB` line.
fn field_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_status_lines() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(field_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(field_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(field_kib(status, "VmSwap:"), None);
        if cfg!(target_os = "linux") {
            let r = resident().unwrap();
            assert!(r.rss_bytes > 0 && r.peak_bytes >= r.rss_bytes);
        }
    }
}
