//! CPU time and memory of a process, from `/proc/PID/stat` and `/proc/PID/status`.

use std::time::Duration;

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ): 100 on every Linux we run on.
const USER_HZ: u64 = 100;

/// A snapshot of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcSample {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Resident set size in bytes.
    pub rss: u64,
}

/// Parse utime + stime from the text of `/proc/PID/stat`. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// Parse VmRSS (kB) from the text of `/proc/PID/status`, in bytes.
pub fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu: parse_stat_cpu(&stat)?,
        rss: parse_status_rss(&status)?,
    })
}

/// The processes of one server together (Node and its mediasoup workers): CPU summed,
/// RSS summed, and each alone. None if any of them is gone.
pub fn sample_all(pids: &[u32]) -> Option<(ProcSample, Vec<ProcSample>)> {
    if pids.is_empty() {
        return None;
    }
    let each: Vec<ProcSample> = pids.iter().map(|p| sample(*p)).collect::<Option<_>>()?;
    let total = ProcSample {
        cpu: each.iter().map(|s| s.cpu).sum(),
        rss: each.iter().map(|s| s.rss).sum(),
    };
    Some((total, each))
}

/// CPU time of this process (the harness itself).
pub fn own() -> Option<ProcSample> {
    sample(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let stat = "1234 (sb worker) (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 130 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_stat_cpu(stat), Some(Duration::from_millis(3_800)));
        assert_eq!(parse_stat_cpu("garbage"), None);
        assert_eq!(parse_stat_cpu("1 (x) S 1"), None);
    }

    #[test]
    fn parses_rss() {
        let status = "Name:\tswitchboard\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";
        assert_eq!(parse_status_rss(status), Some(20_480 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn reads_itself() {
        let s = own().expect("/proc of this process");
        assert!(s.rss > 0);
    }
}
