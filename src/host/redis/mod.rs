//! Redis: `redis_ping(url)` and `redis_info(url)` (INFO as typed maps, with the numbers people
//! compute by hand: hit rate, memory % of maxmemory, age of the last save). Through the `redis`
//! crate; the URL's password is registered with the redactor before anything can fail.

pub mod info;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::binding::serde_duration;
use crate::host::registry::Registrar;
use crate::host_fn;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedisOptions {
    /// Connect and answer within this long (default 10s).
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Serialize)]
pub struct PingReport {
    pub ok: bool,
    pub latency_ms: f64,
}

fn redis_error(url: &str, e: redis::RedisError) -> HostError {
    let shown = crate::redact::redact(url);
    let text = crate::redact::redact(&e.to_string());
    let kind = if e.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("NOAUTH")
        || text.contains("WRONGPASS")
    {
        ErrorKind::Auth
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_timeout() {
        ErrorKind::Network
    } else {
        ErrorKind::Server
    };
    HostError::new(kind, format!("Redis at {shown}: {text}"))
}

/// Connect (bounded by `timeout`) and run one command.
async fn command<T: redis::FromRedisValue>(
    url: &str,
    cmd: &redis::Cmd,
    timeout: Duration,
) -> HostResult<T> {
    crate::redact::register_url(url);
    let shown = crate::redact::redact(url);
    let client = redis::Client::open(url).map_err(|e| {
        HostError::invalid(format!(
            "invalid Redis URL {shown}: {} (use redis://[:password@]host[:port][/db] or redis+unix:///path)",
            crate::redact::redact(&e.to_string())
        ))
    })?;
    let work = async {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| redis_error(url, e))?;
        cmd.query_async::<T>(&mut conn)
            .await
            .map_err(|e| redis_error(url, e))
    };
    tokio::time::timeout(timeout, work).await.map_err(|_| {
        HostError::new(
            ErrorKind::Timeout,
            format!(
                "Redis at {shown} did not answer within {}",
                humantime::format_duration(timeout)
            ),
        )
        .with_retryable(true)
    })?
}

pub async fn ping(url: &str, o: RedisOptions) -> HostResult<PingReport> {
    let started = Instant::now();
    let pong: String = command(
        url,
        &redis::cmd("PING"),
        o.timeout.unwrap_or(Duration::from_secs(10)),
    )
    .await?;
    Ok(PingReport {
        ok: pong == "PONG",
        latency_ms: (started.elapsed().as_secs_f64() * 10_000.0).round() / 10.0,
    })
}

pub async fn redis_info(url: &str, o: RedisOptions) -> HostResult<info::RedisInfo> {
    let text: String = command(
        url,
        redis::cmd("INFO").arg("everything"),
        o.timeout.unwrap_or(Duration::from_secs(10)),
    )
    .await?;
    Ok(info::parse(&text, chrono::Utc::now().timestamp()))
}

pub fn register(r: &mut Registrar) {
    r.category("redis");
    let pdoc = "PING a Redis server: `#{ ok, latency_ms }`; an unreachable server or a wrong password is an error (kinds `network`, `auth`, `timeout`). Options: `timeout` (default \"10s\"). The URL's password is masked everywhere.\n\n```rhai\nlet p = redis_ping(\"redis://127.0.0.1:6379\");\nlog(`redis answers in ${p.latency_ms} ms`);\n```";
    host_fn!(r, "redis_ping", pdoc, |ctx, url: &str; opts: RedisOptions| -> "Map" {
        ctx.block_on(ping(url, opts))
    });
    let idoc = "Redis INFO as typed maps: `#{ version, uptime_secs, memory: #{ used_bytes, rss_bytes, peak_bytes, max_bytes, used_percent, policy, fragmentation_ratio }, clients: #{ connected, blocked, max }, stats: #{ hits, misses, hit_rate, evicted_keys, expired_keys, ops_per_sec, commands, connections, rejected_connections }, persistence: #{ loading, rdb_changes_since_last_save, rdb_last_save_time, last_save_age_secs, rdb_last_bgsave_ok, aof_enabled, aof_last_write_ok, ok }, keyspace: #{ db0: #{ keys, expires } }, sections }`. `hit_rate` is hits/(hits+misses) in percent (`()` before any lookup); `used_percent` is of maxmemory (`()` when unlimited); `sections` holds every INFO field, numbers as numbers. Options: `timeout`.\n\n```rhai\nlet i = redis_info(\"redis://127.0.0.1:6379\");\nif i.stats.evicted_keys > 0 { warn(`redis evicted ${i.stats.evicted_keys} keys`); }\n```";
    host_fn!(r, "redis_info", idoc, |ctx, url: &str; opts: RedisOptions| -> "Map" {
        ctx.block_on(redis_info(url, opts))
    });
}
