//! Containers through the Docker Engine API (Podman's compatible socket works the same way):
//! list, inspect, stats, logs with matching, restart, and allow-listed exec. Databases inside
//! containers (`postgres://user@container:NAME/db`) are in `db.rs`; the exec plumbing that makes
//! a container's program look like a local child process is in `process.rs`.

pub mod api;
pub mod db;
pub mod exec;
pub mod list;
pub mod logs;
pub mod process;
pub mod restart;
pub mod stats;

use rhai::Array;

use crate::error::HostResult;
use crate::host::registry::Registrar;
use crate::host_fn;

fn args_of(args: &Array) -> HostResult<Vec<String>> {
    args.iter()
        .enumerate()
        .map(|(i, a)| crate::host::exec::arg_string(i, a))
        .collect()
}

pub fn register(r: &mut Registrar) {
    r.category("container");

    let doc = "Containers on the Docker engine (`DOCKER_HOST` or /var/run/docker.sock; Podman's socket too), stopped ones included: `[#{ name, id, image, state, running, health, failing_streak, health_output, restart_count, restart_policy, started_at, finished_at, uptime_secs, exit_code, oom_killed, ip, networks, ports, compose_service, labels }]`, sorted by name. Options: `all` (default true), `name` (substring).\n\n```rhai\nfor c in containers() {\n    if !c.running || c.health == \"unhealthy\" || c.restart_count > 3 {\n        warn(`${c.name}: ${c.state} ${c.health} restarts=${c.restart_count}`);\n    }\n}\n```";
    host_fn!(r, "containers", doc, |ctx; opts: list::ListOptions| -> "Array" {
        ctx.block_on(list::containers(opts))
    });

    host_fn!(r, "container", "One container's details (like `docker inspect`): the map `containers()` lists. A missing container is an error of kind `not_found`.\n\n```rhai\nlet c = container(\"website\");\nlog(`restarts: ${c.restart_count}, up ${c.uptime_secs}s`);\n```", |ctx, name: &str| -> "Map" {
        ctx.block_on(list::container(name))
    });

    host_fn!(r, "container_stats", "One sample of `docker stats --no-stream` for a running container (takes about a second): `#{ name, cpu_percent, online_cpus, memory_bytes, memory_limit_bytes, memory_percent, net_rx_bytes, net_tx_bytes, block_read_bytes, block_write_bytes, pids }`. CPU % is of one CPU, as docker shows it; memory excludes the page cache.\n\n```rhai\nlet s = container_stats(\"website\");\nif s.memory_percent > 90.0 { warn(`website uses ${s.memory_percent}% of its memory limit`); }\n```", |ctx, name: &str| -> "Map" {
        ctx.block_on(stats::container_stats(name))
    });

    let doc = "A container's log (`docker logs`), filtered: `#{ container, lines, total, matched, stdout_matched, stderr_matched, truncated, next_since }`. Options: `since` (a duration like \"1h\", epoch seconds — e.g. the previous scan's `next_since` — or an RFC 3339 time), `tail` (last N lines), `stdout`/`stderr` (default both), `pattern` (substring, or `/regex/`, `/regex/i`; `\"match\"` works too, quoted: it is a Rhai keyword), `max_lines` (kept, default 1000, newest kept; `matched` counts all), `timestamps`. Lines are redacted.\n\n```rhai\nlet r = container_logs(\"web\", #{ tail: 100, pattern: \"ERROR\" });\nif r.matched > 0 { warn(`${r.matched} errors in the last 100 lines`); }\nlet slow = container_logs(\"web\", #{ since: \"1h\", pattern: \"/took [0-9]{4,}ms/\" });\n```";
    host_fn!(r, "container_logs", doc, |ctx, name: &str; opts: logs::LogsOptions| -> "Map" {
        ctx.block_on(logs::container_logs(name, opts))
    });

    let doc = "Restart a container (`docker restart`). Destructive: skipped in a dry run, and the policy must allow it: `--allow-exec NAME:@restart` (or `NAME:*`). Options: `timeout` (the engine's wait before it kills, default \"10s\"). Returns `#{ container, restarted, running, duration_ms, dry_run }`.\n\n```rhai\nif container(\"website\").health == \"unhealthy\" { restart_container(\"website\"); }\n```";
    host_fn!(r, "restart_container", doc, |ctx, name: &str; opts: restart::RestartOptions| -> "Map" {
        let c2 = ctx.clone();
        ctx.block_on(async move { restart::restart_container(&c2, name, opts).await })
    });

    let doc = (
        "Run a program inside a running container (`docker exec`, no shell): `#{ code, ok, stdout, stderr, duration_ms, truncated, dry_run }`. The exec allow-list must name container and program: `--allow-exec website:python` (or `website:*`). A non-zero exit is a result; a stopped or missing container is an error of kind `not_found`. A dry run skips it unless `readonly: true`.\n\n```rhai\nlet r = container_exec(\"website\", \"python\", [\"manage.py\", \"clearsessions\"]);\nif !r.ok { warn(r.stderr); }\n```",
        "Run a program inside a container with options: `timeout` (default \"10m\"; the program is killed), `env` (map), `user`, `cwd`, `stdin` (text), `check` (non-zero exit is an error), `max_output` (bytes kept per stream, default 1 MiB), `readonly` (also run in a dry run).\n\n```rhai\nlet r = container_exec(\"redis_cache\", \"redis-cli\", [\"INFO\", \"memory\"], #{ readonly: true, timeout: \"10s\" });\n```",
    );
    host_fn!(r, "container_exec", doc, |ctx, name: &str, program: &str, args: Array; opts: exec::ContainerExecOptions| -> "Map" {
        let args = args_of(&args)?;
        let c2 = ctx.clone();
        ctx.block_on(async move { exec::container_exec(&c2, name, program, args, opts).await })
    });
}
