//! `/start` of the run's dead-man's switch: sent when the run starts (`mtn run`, the daemon)
//! and when a script names its ping URL with `monitor(#{ ping })`. The final signal is
//! `engine::monitor::finish`; the targets are kept in `ctx::monitor`.

use crate::ctx::RunCtx;
use crate::http::HttpClients;

/// Send `/start` if a ping URL is set and its start has not been sent. Never fails the run.
pub async fn start(ctx: &RunCtx) {
    let Some(url) = ctx.monitor.take_start() else {
        return;
    };
    // Not the run's own clients (`ctx.http()`): the operator chose these URLs, not the script,
    // so the script's host allow-list does not apply to their redirects.
    let clients = HttpClients::new();
    if let Err(e) = super::ping(ctx, &clients, &url, "start".into(), None).await {
        tracing::warn!(target: "mtn::monitor", "start ping not delivered (the run goes on): {}", e.message);
    }
}
