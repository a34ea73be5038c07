//! The machine a run was measured on, and what processes use (from `/proc`).

use crate::results::Meta;

/// The CPU model of the first processor in `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| parse_cpu_model(&text))
        .unwrap_or_else(|| "unknown".into())
}

fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// Logical CPUs available to this process (what `nproc` prints).
pub fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Total memory in MiB, from `/proc/meminfo`.
pub fn mem_total_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    status_kib(&text, "MemTotal:").map(|kib| kib / 1024)
}

/// A `Key:   123 kB` field of `/proc/<pid>/status` or `/proc/meminfo`, in KiB.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident set size (`VmRSS`) and its peak (`VmHWM`) of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((status_kib(&text, "VmRSS:")?, status_kib(&text, "VmHWM:")?))
}

/// CPU time (user + system) used so far by process `pid` (`self` for this one), in seconds.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu(&text)
}

fn parse_stat_cpu(stat: &str) -> Option<f64> {
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some((utime + stime) / 100.0)
}

/// Busy and total jiffies of all CPUs so far (`/proc/stat`), to compute how many cores were
/// busy over an interval.
pub fn cpu_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    parse_cpu_jiffies(&text)
}

fn parse_cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    // idle and iowait
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The id of the first process whose command line contains `needle`.
pub fn find_pid(needle: &str) -> Option<u32> {
    find_pid_all(&[needle])
}

/// The id of the first process whose command line contains every one of `needles`.
pub fn find_pid_all(needles: &[&str]) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        needles.iter().all(|n| cmdline.contains(n)).then_some(pid)
    })
}

/// The cargo profile this binary was built with: the name of the directory it sits in under
/// the target dir (`production` for measurements; `release` is tuned for compile time).
pub fn profile() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let dir = exe.parent()?.file_name()?.to_str()?.to_owned();
            // `cargo test` binaries sit one level deeper, in `<profile>/deps`.
            if dir == "deps" {
                Some(exe.parent()?.parent()?.file_name()?.to_str()?.to_owned())
            } else {
                Some(dir)
            }
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The machine description every run records.
pub fn describe() -> Vec<Meta> {
    let mut meta = vec![
        Meta {
            key: "cpu_model".into(),
            value: cpu_model(),
        },
        Meta {
            key: "nproc".into(),
            value: nproc().to_string(),
        },
        Meta {
            key: "profile".into(),
            value: profile(),
        },
    ];
    if let Some(mib) = mem_total_mib() {
        meta.push(Meta {
            key: "mem_total_mib".into(),
            value: mib.to_string(),
        });
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        meta.push(Meta {
            key: "loadavg_at_end".into(),
            value: load
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        meta.push(Meta {
            key: "kernel".into(),
            value: kernel.trim().into(),
        });
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Example CPU @ 2.0GHz\n";
        assert_eq!(
            parse_cpu_model(cpuinfo).as_deref(),
            Some("Example CPU @ 2.0GHz")
        );
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM:"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap:"), None);
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat_cpu(stat), Some(3.0));
        assert_eq!(parse_stat_cpu("garbage"), None);
        let proc_stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_cpu_jiffies(proc_stat), Some((150, 1000)));
        assert_eq!(parse_cpu_jiffies("intr 1\n"), None);
        assert_eq!(find_pid("\u{1}no such command line\u{1}"), None);
    }
}
