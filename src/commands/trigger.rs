//! `mtn trigger JOB`: ask the running daemon to run a job now.

use std::time::Duration;

use super::client::{client_ctx, client_runtime};
use crate::cli::DaemonPaths;
use crate::exit;

pub fn run(paths: &DaemonPaths, job: &str) -> exit::Result {
    let c = client_ctx(paths)?;
    let rt = client_runtime()?;
    let url = format!("http://{}/trigger/{job}", c.addr);
    let token = c
        .token()
        .map_err(|e| format!("{e}; is the daemon running with this config and state dir?"))?;
    let res = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(&url)
            .bearer_auth(&token)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        let code = r.status();
        let bytes = r.bytes().await?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok::<_, reqwest::Error>((code, body))
    });
    match res {
        Ok((code, body)) if code.is_success() => {
            let result = body
                .get("result")
                .and_then(|v| v.as_str())
                .unwrap_or("started");
            println!("job {job}: {result}");
            Ok(exit::OK)
        }
        Ok((_, body)) => {
            let msg = body
                .get("error")
                .and_then(|v| v.as_str())
                .unwrap_or("refused");
            Err(exit::CommandError::failed(msg))
        }
        Err(e) => Err(format!(
            "cannot reach the daemon at {} (is `mtn daemon` running?): {e}",
            c.addr
        )
        .into()),
    }
}
