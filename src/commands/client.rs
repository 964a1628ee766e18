//! What the client commands (`mtn jobs`, `history`, `trigger`) share: the config, the state dir
//! and the address of the running daemon.

use crate::cli::DaemonPaths;
use crate::config::Config;
use crate::daemon::access;
use crate::daemon::jobs::Settings;

/// The config and state dir named on the command line, and where their daemon listens.
pub struct ClientCtx {
    pub cfg: Config,
    pub settings: Settings,
    pub addr: String,
}

pub fn client_ctx(paths: &DaemonPaths) -> Result<ClientCtx, String> {
    let config = crate::policy::absolute(&paths.config);
    let cfg = Config::load_checked(&config)?;
    let settings = Settings::from_config(&cfg, &config, paths.state_dir.as_deref());
    let from_file = std::fs::read_to_string(settings.state_dir.join("daemon.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("listen").and_then(|l| l.as_str()).map(String::from));
    let addr = from_file
        .or_else(|| cfg.listen.clone())
        .unwrap_or_else(|| crate::daemon::DEFAULT_LISTEN.to_string());
    // A daemon listening on every address is reached on this machine through loopback.
    let addr = match addr.strip_prefix("0.0.0.0:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None => match addr.strip_prefix("[::]:") {
            Some(port) => format!("[::1]:{port}"),
            None => addr,
        },
    };
    Ok(ClientCtx {
        cfg,
        settings,
        addr,
    })
}

impl ClientCtx {
    /// The daemon's access token (needed when it listens beyond loopback).
    pub fn token(&self) -> Result<String, String> {
        let token_file = self
            .cfg
            .token_file
            .as_ref()
            .map(|f| self.settings.base.join(f));
        access::read(&access::token_path(
            token_file.as_deref(),
            &self.settings.state_dir,
        ))
    }
}

pub fn client_runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))
}
