//! Sizes and durations in option values and configs, one parser each for every function
//! (`rotate`'s `size`, `dump_db`'s `min_size`, ...) and every config key, so "10M" and "30d"
//! mean the same everywhere.
//!
//! The rule: a bare number is bytes; the single letters `k`, `M`, `G`, `T` (either case) are
//! powers of 1024, as logrotate names them (`size 10M` = 10,485,760 bytes); the two-letter SI
//! units `KB`, `MB`, `GB`, `TB` are powers of 1000 (`"10MB"` = 10,000,000) and the IEC units
//! `KiB`, `MiB`, `GiB`, `TiB` powers of 1024. Fractions are allowed (`"1.5GiB"`). A duration is
//! a number of seconds or humantime's text ([`parse_duration`]).

use serde::Deserialize;

use crate::error::{HostError, HostResult};

/// A size given as bytes or text ("10MB", "1.5 GiB", "500k").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeOpt {
    Bytes(u64),
    Text(String),
}

impl SizeOpt {
    pub fn bytes(&self) -> HostResult<u64> {
        match self {
            SizeOpt::Bytes(b) => Ok(*b),
            SizeOpt::Text(t) => parse_size(t),
        }
    }
}

pub fn parse_size(text: &str) -> HostResult<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        HostError::invalid(format!(
            "invalid size {text:?} (use bytes, or e.g. \"100k\", \"10M\", \"10MB\", \"1GiB\")"
        ))
    })?;
    let binary = |p: i32| 1024f64.powi(p);
    let decimal = |p: i32| 1000f64.powi(p);
    let mult = match unit.trim() {
        "" | "b" | "B" => 1.0,
        // logrotate's single letters: powers of 1024.
        "k" | "K" => binary(1),
        "m" | "M" => binary(2),
        "g" | "G" => binary(3),
        "t" | "T" => binary(4),
        other => match other.to_ascii_lowercase().as_str() {
            "kb" => decimal(1),
            "mb" => decimal(2),
            "gb" => decimal(3),
            "tb" => decimal(4),
            "kib" => binary(1),
            "mib" => binary(2),
            "gib" => binary(3),
            "tib" => binary(4),
            _ => {
                return Err(HostError::invalid(format!(
                    "invalid size unit {other:?} in {text:?} (use k, M, G (1024-based, as logrotate), KB, MB, GB (1000-based) or KiB, MiB, GiB)"
                )))
            }
        },
    };
    Ok((n * mult) as u64)
}

/// A size for people: `82.3 MB`, `512 B`, `1.2 GB` — the SI units `parse_size` reads back as
/// powers of 1000, so a size copied from a message into an option means the same bytes.
/// Messages use this; reports keep exact bytes.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Parse "30d", "12h", "90m", "1h30m", "500ms", "2 weeks" into a Duration.
pub fn parse_duration(text: &str) -> HostResult<std::time::Duration> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(t).map_err(|e| {
        HostError::invalid(format!(
            "invalid duration {text:?}: {e} (use e.g. \"30s\", \"5m\", \"12h\", \"30d\", \"1h30m\")"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::{human, parse_duration, parse_size};

    #[test]
    fn human_sizes_read_back_as_the_same_unit() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1000), "1.0 kB");
        assert_eq!(human(82_345_678), "82.3 MB");
        assert_eq!(human(999_960), "1.0 MB");
        assert_eq!(human(u64::MAX), "18.4 EB");
        // What a message says is what an option means (within the rounding).
        let shown = human(82_345_678);
        let back = parse_size(&shown.replace(' ', "")).unwrap();
        assert!((back as i64 - 82_345_678i64).abs() < 50_000, "{back}");
    }

    #[test]
    fn one_rule_for_every_function() {
        assert_eq!(parse_size("10M").unwrap(), 10_485_760);
        assert_eq!(parse_size("10m").unwrap(), 10_485_760);
        assert_eq!(parse_size("100k").unwrap(), 102_400);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("10 mb").unwrap(), 10_000_000);
        assert_eq!(parse_size("1 KiB").unwrap(), 1024);
        assert_eq!(parse_size("1.5GiB").unwrap(), 1_610_612_736);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86400);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert!(parse_duration("5 parsecs").is_err());
    }
}
