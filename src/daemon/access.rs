//! Who may use the daemon's HTTP endpoints.
//!
//! - State-changing requests (`POST /trigger/{job}`) need `Authorization: Bearer <token>`. The
//!   token is the content of `token_file` from the config, else of `<state_dir>/trigger.token`,
//!   which the daemon creates (0600, 256 random bits) on first start; `mtn trigger` reads the
//!   same file, so only users who can read it (the daemon's user, root) can trigger.
//! - A state-changing request a browser marks as cross-origin (`Sec-Fetch-Site`, or an `Origin`
//!   that is not the address asked for) is refused even with a token: a web page open in the
//!   operator's browser cannot reach the daemon on its behalf.
//! - On a loopback address the read-only endpoints (`/`, `/healthz`, `/metrics`, `/status`)
//!   stay open; on any other address everything but `/healthz` needs the token, and the daemon
//!   refuses to start without TLS unless the config says `insecure_listen = true`.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// The token file's name in the state dir.
pub const TOKEN_FILE: &str = "trigger.token";

pub struct Access {
    token: String,
    /// Read-only endpoints need no token (the daemon listens on loopback only).
    open_reads: bool,
}

impl Access {
    pub fn new(token: String, open_reads: bool) -> Arc<Access> {
        Arc::new(Access { token, open_reads })
    }
}

/// Where the token is: the configured file, else `<state_dir>/trigger.token`.
pub fn token_path(configured: Option<&Path>, state_dir: &Path) -> PathBuf {
    configured
        .map(Path::to_path_buf)
        .unwrap_or_else(|| state_dir.join(TOKEN_FILE))
}

/// The daemon's token: read the configured file (which must exist), or read or create
/// `<state_dir>/trigger.token`. Created exclusively with mode 0600, so nobody can plant it.
pub fn load_or_create(configured: Option<&Path>, state_dir: &Path) -> Result<String, String> {
    let path = token_path(configured, state_dir);
    if configured.is_none() && !path.exists() {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| format!("cannot create the trigger token {}: {e}", path.display()))?;
        f.write_all(format!("{token}\n").as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| format!("cannot write the trigger token {}: {e}", path.display()))?;
        return Ok(token);
    }
    if let Ok(meta) = std::fs::metadata(&path) {
        if meta.mode() & 0o077 != 0 {
            tracing::warn!(target: "mtn::daemon", "the trigger token {} is readable by other users (mode {:o}); chmod 600 it", path.display(), meta.mode() & 0o777);
        }
    }
    read(&path)
}

/// Read a token file (for the daemon and `mtn trigger`).
pub fn read(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (run as the daemon's user or root)"
        } else {
            ""
        };
        format!(
            "cannot read the trigger token {}: {e}{hint}",
            path.display()
        )
    })?;
    let token = text.trim().to_string();
    if token.is_empty() {
        return Err(format!("the trigger token {} is empty", path.display()));
    }
    Ok(token)
}

/// Middleware: the rules in the module comment.
pub async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    if !reads && cross_origin(req.headers()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross-origin requests are refused (a web page cannot trigger jobs)",
        );
    }
    let needs_token = !reads || (!access.open_reads && req.uri().path() != "/healthz");
    if needs_token {
        match bearer(req.headers()) {
            None => {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "this endpoint needs `Authorization: Bearer <token>` (the daemon's trigger.token; `mtn trigger` sends it)",
                )
            }
            Some(t) if !same(t.as_bytes(), access.token.as_bytes()) => {
                return refuse(StatusCode::FORBIDDEN, "wrong token")
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

fn refuse(code: StatusCode, msg: &str) -> Response {
    (code, Json(serde_json::json!({ "error": msg }))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// True when a browser says the request comes from another site, or its `Origin` is not the
/// host the request was sent to. Non-browser clients (curl, `mtn trigger`) send neither header.
fn cross_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str().unwrap_or(""), "same-origin" | "none") {
            return true;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host != Some(host) || host.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(None, dir.path()).unwrap();
        assert_eq!(a.len(), 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(None, dir.path()).unwrap(), a);
    }

    #[test]
    fn planted_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::os::unix::fs::symlink(&target, dir.path().join(TOKEN_FILE)).unwrap();
        // A dangling link "exists" as far as create_new is concerned: refused, victim untouched.
        assert!(load_or_create(None, dir.path()).is_err());
        assert!(!target.exists());
    }

    #[test]
    fn origin_rules() {
        let mut h = HeaderMap::new();
        assert!(!cross_origin(&h));
        h.insert(header::HOST, "127.0.0.1:9860".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:9860".parse().unwrap());
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(cross_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_origin(&h));
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(!cross_origin(&h));
    }
}
