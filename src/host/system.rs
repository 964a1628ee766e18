//! `memory()`, `load_avg()`, `cpu_count()`: the machine's resources, read from /proc.

use serde::Serialize;

use crate::error::{HostError, HostResult};
use crate::host::registry::Registrar;
use crate::host_fn;

#[derive(Debug, Serialize, PartialEq)]
pub struct Memory {
    /// Bytes.
    pub total: u64,
    /// Memory available for new work without swapping (MemAvailable), bytes.
    pub available: u64,
    /// total - available, bytes.
    pub used: u64,
    pub used_percent: f64,
    pub swap_total: u64,
    pub swap_used: u64,
    pub swap_used_percent: f64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// The 1-minute load divided by the number of CPUs: above 1.0 means work is queueing.
    pub per_cpu: f64,
    pub cpus: i64,
}

fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / total as f64).round() / 10.0
    }
}

/// Parse /proc/meminfo text.
pub fn parse_meminfo(text: &str) -> HostResult<Memory> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kb * 1024)
        })
    };
    let total =
        field("MemTotal").ok_or_else(|| HostError::other("/proc/meminfo has no MemTotal line"))?;
    // Kernels before 3.14 have no MemAvailable: approximate it the way `free` did.
    let available = field("MemAvailable").unwrap_or_else(|| {
        field("MemFree").unwrap_or(0) + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0)
    });
    let available = available.min(total);
    let swap_total = field("SwapTotal").unwrap_or(0);
    let swap_used = swap_total.saturating_sub(field("SwapFree").unwrap_or(0));
    Ok(Memory {
        total,
        available,
        used: total - available,
        used_percent: percent(total - available, total),
        swap_total,
        swap_used,
        swap_used_percent: percent(swap_used, swap_total),
    })
}

pub fn memory() -> HostResult<Memory> {
    let text = std::fs::read_to_string("/proc/meminfo")
        .map_err(|e| HostError::io("reading /proc/meminfo", &e))?;
    parse_meminfo(&text)
}

pub fn cpu_count() -> i64 {
    // Honours CPU affinity and cgroup quotas, which /proc/cpuinfo does not.
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

pub fn parse_loadavg(text: &str, cpus: i64) -> HostResult<LoadAvg> {
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .map(|s| s.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| HostError::other(format!("unexpected /proc/loadavg: {text:?}")))?;
    if v.len() != 3 {
        return Err(HostError::other(format!(
            "unexpected /proc/loadavg: {text:?}"
        )));
    }
    Ok(LoadAvg {
        one: v[0],
        five: v[1],
        fifteen: v[2],
        per_cpu: (v[0] / cpus.max(1) as f64 * 100.0).round() / 100.0,
        cpus,
    })
}

pub fn load_avg() -> HostResult<LoadAvg> {
    let text = std::fs::read_to_string("/proc/loadavg")
        .map_err(|e| HostError::io("reading /proc/loadavg", &e))?;
    parse_loadavg(&text, cpu_count())
}

pub fn register(r: &mut Registrar) {
    r.category("system");
    host_fn!(r, "memory", "Memory use in bytes: `#{ total, available, used, used_percent, swap_total, swap_used, swap_used_percent }` (`used` = total - MemAvailable, as `free` shows it).\n\n```rhai\nlet m = memory();\nif m.used_percent > 90.0 { warn(`memory ${m.used_percent}% used`); }\n```", |ctx| -> "Map" { memory() });
    host_fn!(r, "load_avg", "Load averages: `#{ one, five, fifteen, per_cpu, cpus }`; `per_cpu` is the 1-minute load divided by the CPU count.\n\n```rhai\nlet l = load_avg();\nif l.per_cpu > 2.0 { warn(`load ${l.one} on ${l.cpus} CPUs`); }\n```", |ctx| -> "Map" { load_avg() });
    host_fn!(r, "cpu_count", "Number of CPUs this process may use (affinity and cgroup limits included).\n\n```rhai\nlet jobs = cpu_count();\n```", |ctx| -> "i64" { Ok(cpu_count()) });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo() {
        let text = "MemTotal:        1000 kB\nMemFree:  100 kB\nMemAvailable:    250 kB\nSwapTotal: 400 kB\nSwapFree: 300 kB\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.total, 1_024_000);
        assert_eq!(m.available, 256_000);
        assert_eq!(m.used, 768_000);
        assert_eq!(m.used_percent, 75.0);
        assert_eq!(m.swap_used, 102_400);
        assert_eq!(m.swap_used_percent, 25.0);
        assert!(parse_meminfo("nothing").is_err());
        assert!(memory().unwrap().total > 0);
    }

    #[test]
    fn loadavg() {
        let l = parse_loadavg("0.50 1.00 1.50 1/100 12345\n", 2).unwrap();
        assert_eq!((l.one, l.five, l.fifteen, l.per_cpu), (0.5, 1.0, 1.5, 0.25));
        assert!(parse_loadavg("x y z", 1).is_err());
        assert!(cpu_count() >= 1);
    }
}
