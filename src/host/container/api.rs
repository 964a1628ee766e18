//! The Docker Engine API client (bollard) and its errors in mtn's kinds.
//!
//! The engine is found like the docker CLI finds it: `DOCKER_HOST` (unix:// or tcp://), else
//! /var/run/docker.sock; Podman's Docker-compatible socket works the same way. The API version is
//! negotiated per connection, so an older engine (Debian's 20.10 speaks 1.41) is spoken to in its
//! own version.

use bollard::errors::Error as ApiError;
use bollard::models::ContainerInspectResponse;
use bollard::Docker;

use crate::error::{ErrorKind, HostError, HostResult};

/// Where the engine is, for messages.
pub fn engine_address() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into())
}

/// A connection to the engine, version negotiated.
pub async fn client() -> HostResult<Docker> {
    let docker = Docker::connect_with_defaults().map_err(|e| match e {
        // No socket at the address: no engine here (or not started) — like a refused connection.
        ApiError::SocketNotFoundError(_) => api_error(e, "connecting to the Docker engine"),
        e => HostError::invalid(format!(
            "cannot use the Docker engine address {}: {e}",
            engine_address()
        )),
    })?;
    docker
        .negotiate_version()
        .await
        .map_err(|e| api_error(e, "connecting to the Docker engine"))
}

/// An engine error in mtn's kinds: 404 is `not_found`, a refused or missing socket `network`.
pub fn api_error(e: ApiError, context: &str) -> HostError {
    match e {
        ApiError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let kind = match status_code {
                404 => ErrorKind::NotFound,
                401 | 403 => ErrorKind::PermissionDenied,
                409 => ErrorKind::Refused,
                400 => ErrorKind::InvalidInput,
                _ => ErrorKind::Server,
            };
            HostError::new(kind, format!("{context}: {message}"))
        }
        ApiError::IOError { err } => HostError::new(
            ErrorKind::Network,
            format!(
                "{context}: cannot reach the Docker engine at {} ({err}); is it running, and is DOCKER_HOST right?",
                engine_address()
            ),
        ),
        ApiError::SocketNotFoundError(path) => HostError::new(
            ErrorKind::Network,
            format!(
                "{context}: no Docker engine socket at {path}; is the engine running, and is DOCKER_HOST right?"
            ),
        ),
        other => {
            let text = other.to_string();
            let lower = text.to_ascii_lowercase();
            let kind = if lower.contains("connect")
                || lower.contains("no such file")
                || lower.contains("refused")
            {
                ErrorKind::Network
            } else {
                ErrorKind::Server
            };
            let hint = if kind == ErrorKind::Network {
                "; is the engine running, and is DOCKER_HOST right?"
            } else {
                ""
            };
            HostError::new(
                kind,
                format!("{context} ({}): {text}{hint}", engine_address()),
            )
        }
    }
}

/// A container name or id as the engine accepts it: no slashes, spaces or control characters
/// (a name is part of the request path).
pub fn check_name(name: &str) -> HostResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(HostError::invalid(format!(
            "{name:?} is not a container name or id (letters, digits, `_`, `.`, `-`)"
        )))
    }
}

/// Inspect a container; a missing one is `not_found` naming it.
pub async fn inspect(docker: &Docker, name: &str) -> HostResult<ContainerInspectResponse> {
    check_name(name)?;
    docker
        .inspect_container(name, None)
        .await
        .map_err(|e| match e {
            ApiError::DockerResponseServerError {
                status_code: 404, ..
            } => HostError::not_found(format!(
                "no container named {name:?} on the Docker engine at {}",
                engine_address()
            )),
            e => api_error(e, &format!("inspecting container {name}")),
        })
}

/// Inspect a container that must be running (exec, database tools): a stopped one is
/// `not_found` too, saying its state.
pub async fn inspect_running(docker: &Docker, name: &str) -> HostResult<ContainerInspectResponse> {
    let info = inspect(docker, name).await?;
    let state = info.state.as_ref();
    if state.and_then(|s| s.running) != Some(true) || state.and_then(|s| s.paused) == Some(true) {
        let status = state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into());
        return Err(HostError::not_found(format!(
            "container {name:?} is not running (state: {status})"
        )));
    }
    Ok(info)
}

/// The container's address on its first network that has one (sorted by network name, so the
/// choice is stable); `None` for host networking.
pub fn address(info: &ContainerInspectResponse) -> Option<String> {
    let nets = info.network_settings.as_ref()?.networks.as_ref()?;
    let mut names: Vec<&String> = nets.keys().collect();
    names.sort();
    names.into_iter().find_map(|n| {
        nets.get(n)
            .and_then(|e| e.ip_address.clone())
            .filter(|ip| !ip.is_empty())
    })
}

/// `/name` → `name`.
pub fn clean_name(name: &str) -> String {
    name.trim_start_matches('/').to_string()
}

/// Seconds since an RFC 3339 time the engine reported (`0001-01-01...` means never).
pub fn seconds_since(ts: Option<&str>) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(ts?).ok()?;
    if t.timestamp() <= 0 {
        return None;
    }
    Some(
        (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
            .num_seconds()
            .max(0),
    )
}
