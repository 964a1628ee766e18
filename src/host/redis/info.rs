//! Parsing Redis INFO text into typed maps.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize, Default)]
pub struct Memory {
    pub used_bytes: u64,
    pub rss_bytes: u64,
    pub peak_bytes: u64,
    /// maxmemory; 0 means no limit.
    pub max_bytes: u64,
    /// used_bytes of max_bytes in percent; `None` without a limit.
    pub used_percent: Option<f64>,
    pub policy: String,
    pub fragmentation_ratio: f64,
}

#[derive(Debug, Serialize, Default)]
pub struct Clients {
    pub connected: u64,
    pub blocked: u64,
    /// maxclients (Redis 7+ reports it in INFO clients).
    pub max: Option<u64>,
}

#[derive(Debug, Serialize, Default)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    /// hits / (hits + misses) in percent; `None` before any lookup.
    pub hit_rate: Option<f64>,
    pub evicted_keys: u64,
    pub expired_keys: u64,
    pub ops_per_sec: u64,
    pub commands: u64,
    pub connections: u64,
    pub rejected_connections: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct Persistence {
    pub loading: bool,
    pub rdb_changes_since_last_save: u64,
    /// Seconds since the epoch of the last successful RDB save.
    pub rdb_last_save_time: i64,
    pub last_save_age_secs: i64,
    pub rdb_last_bgsave_ok: bool,
    pub aof_enabled: bool,
    pub aof_last_write_ok: bool,
    /// The last RDB save and (when enabled) the last AOF write succeeded.
    pub ok: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct Keyspace {
    pub keys: u64,
    pub expires: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct RedisInfo {
    pub version: String,
    pub uptime_secs: u64,
    pub role: String,
    pub memory: Memory,
    pub clients: Clients,
    pub stats: Stats,
    pub persistence: Persistence,
    pub keyspace: BTreeMap<String, Keyspace>,
    /// Every section as INFO gives it (lower-case names), numbers as numbers.
    pub sections: BTreeMap<String, BTreeMap<String, Value>>,
}

fn typed(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        if f.is_finite() {
            return Value::from(f);
        }
    }
    Value::from(v)
}

pub fn parse(text: &str, now: i64) -> RedisInfo {
    let mut sections: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    let mut raw: BTreeMap<String, String> = BTreeMap::new();
    let mut current = String::from("default");
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('#') {
            current = name.trim().to_ascii_lowercase();
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        raw.insert(k.to_string(), v.to_string());
        sections
            .entry(current.clone())
            .or_default()
            .insert(k.to_string(), typed(v));
    }
    let u = |k: &str| raw.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let i = |k: &str| raw.get(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
    let s = |k: &str| raw.get(k).cloned().unwrap_or_default();
    let (hits, misses) = (u("keyspace_hits"), u("keyspace_misses"));
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let (used, max) = (u("used_memory"), u("maxmemory"));
    let mut keyspace = BTreeMap::new();
    for (k, v) in &raw {
        if k.starts_with("db") && k[2..].chars().all(|c| c.is_ascii_digit()) {
            let mut ks = Keyspace::default();
            for part in v.split(',') {
                match part.split_once('=') {
                    Some(("keys", n)) => ks.keys = n.parse().unwrap_or(0),
                    Some(("expires", n)) => ks.expires = n.parse().unwrap_or(0),
                    _ => {}
                }
            }
            keyspace.insert(k.clone(), ks);
        }
    }
    let bgsave_ok = s("rdb_last_bgsave_status") != "err";
    let aof_enabled = u("aof_enabled") == 1;
    let aof_ok = s("aof_last_write_status") != "err";
    let last_save = i("rdb_last_save_time");
    RedisInfo {
        version: s("redis_version"),
        uptime_secs: u("uptime_in_seconds"),
        role: s("role"),
        memory: Memory {
            used_bytes: used,
            rss_bytes: u("used_memory_rss"),
            peak_bytes: u("used_memory_peak"),
            max_bytes: max,
            used_percent: (max > 0).then(|| round2(used as f64 / max as f64 * 100.0)),
            policy: s("maxmemory_policy"),
            fragmentation_ratio: raw
                .get("mem_fragmentation_ratio")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
        },
        clients: Clients {
            connected: u("connected_clients"),
            blocked: u("blocked_clients"),
            max: raw.get("maxclients").and_then(|v| v.parse().ok()),
        },
        stats: Stats {
            hits,
            misses,
            hit_rate: (hits + misses > 0)
                .then(|| round2(hits as f64 / (hits + misses) as f64 * 100.0)),
            evicted_keys: u("evicted_keys"),
            expired_keys: u("expired_keys"),
            ops_per_sec: u("instantaneous_ops_per_sec"),
            commands: u("total_commands_processed"),
            connections: u("total_connections_received"),
            rejected_connections: u("rejected_connections"),
        },
        persistence: Persistence {
            loading: u("loading") == 1,
            rdb_changes_since_last_save: u("rdb_changes_since_last_save"),
            rdb_last_save_time: last_save,
            last_save_age_secs: if last_save > 0 {
                (now - last_save).max(0)
            } else {
                0
            },
            rdb_last_bgsave_ok: bgsave_ok,
            aof_enabled,
            aof_last_write_ok: aof_ok,
            ok: bgsave_ok && (!aof_enabled || aof_ok),
        },
        keyspace,
        sections,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info() {
        let text = "# Server\r\nredis_version:7.0.15\r\nuptime_in_seconds:100\r\n\r\n# Memory\r\nused_memory:500\r\nmaxmemory:1000\r\nmaxmemory_policy:allkeys-lru\r\nmem_fragmentation_ratio:1.50\r\n# Stats\r\nkeyspace_hits:3\r\nkeyspace_misses:1\r\nevicted_keys:2\r\n# Persistence\r\nrdb_last_save_time:900\r\nrdb_last_bgsave_status:ok\r\naof_enabled:0\r\n# Keyspace\r\ndb0:keys=5,expires=1,avg_ttl=0\r\n";
        let i = parse(text, 1000);
        assert_eq!(i.version, "7.0.15");
        assert_eq!(i.memory.used_percent, Some(50.0));
        assert_eq!(i.memory.fragmentation_ratio, 1.5);
        assert_eq!(i.stats.hit_rate, Some(75.0));
        assert_eq!(i.stats.evicted_keys, 2);
        assert_eq!(i.persistence.last_save_age_secs, 100);
        assert!(i.persistence.ok);
        assert_eq!(i.keyspace["db0"].keys, 5);
        assert_eq!(i.sections["memory"]["used_memory"], serde_json::json!(500));
        assert_eq!(
            i.sections["server"]["redis_version"],
            serde_json::json!("7.0.15")
        );
        let empty = parse("", 0);
        assert_eq!(empty.stats.hit_rate, None);
        assert_eq!(empty.memory.used_percent, None);
    }
}
