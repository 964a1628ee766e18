//! One SSH connection with an SFTP channel: host key check, authentication, error mapping and
//! the retry loop every operation runs in.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::StatusCode;
use tokio_util::sync::CancellationToken;

use super::stream::SftpStream;
use super::Remote;
use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};

/// The host key verdict, filled by the handler while the key exchange runs.
struct Checker {
    remote: Remote,
    refusal: Arc<Mutex<Option<HostError>>>,
}

impl client::Handler for Checker {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKey,
    ) -> Result<bool, Self::Error> {
        match check_host_key(&self.remote, key) {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut r) = self.refusal.lock() {
                    *r = Some(e);
                }
                Ok(false)
            }
        }
    }
}

/// Accept the server's key only when it is pinned or recorded; say which key it was otherwise.
fn check_host_key(remote: &Remote, key: &russh::keys::PublicKey) -> HostResult<()> {
    let fp = key.fingerprint(HashAlg::Sha256).to_string();
    let algo = key.algorithm().to_string();
    let at = remote.shown();
    if let Some(pin) = &remote.host_key {
        if pin.trim_end_matches('=') == fp.trim_end_matches('=') {
            return Ok(());
        }
        return Err(HostError::refused(format!(
            "host key of {at} is {algo} {fp}, not the pinned host_key {pin}; refusing to connect (the server was reinstalled, or something is in between)"
        )));
    }
    let files: Vec<PathBuf> = match &remote.known_hosts {
        Some(f) => vec![f.clone()],
        None => {
            let mut v = Vec::new();
            if let Some(home) = std::env::var_os("HOME") {
                v.push(PathBuf::from(home).join(".ssh/known_hosts"));
            }
            v.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
            v
        }
    };
    for f in &files {
        if remote.known_hosts.is_some() && !f.is_file() {
            return Err(HostError::not_found(format!(
                "known_hosts file {} does not exist",
                f.display()
            )));
        }
        match russh::keys::check_known_hosts_path(&remote.host, remote.port, key, f) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(russh::keys::Error::KeyChanged { line }) => {
                return Err(HostError::refused(format!(
                    "HOST KEY CHANGED for {at}: the server presents {algo} {fp}, but {} line {line} records another key; refusing to connect (someone may be intercepting the connection, or the server was reinstalled: check with its admin, then fix that line)",
                    f.display()
                )))
            }
            Err(e) => {
                return Err(HostError::invalid(format!(
                    "cannot read known_hosts file {}: {e}",
                    f.display()
                )))
            }
        }
    }
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let keyscan = if remote.port == 22 {
        format!("ssh-keyscan {}", remote.host)
    } else {
        format!("ssh-keyscan -p {} {}", remote.port, remote.host)
    };
    Err(HostError::refused(format!(
        "unknown host key for {at}: the server presents {algo} {fp}, which is not in {}; mtn never trusts a key on first use: confirm the fingerprint with the server's admin, then add it (`{keyscan} >> {}`) or pin it with host_key: \"{fp}\"",
        names.join(" or "),
        names.first().map(String::as_str).unwrap_or("~/.ssh/known_hosts")
    )))
}

/// An open connection: the SSH handle (kept alive) and the SFTP session on it.
pub struct Session {
    pub sftp: Arc<RawSftpSession>,
    /// Extensions the server announced (posix-rename@openssh.com, fsync@openssh.com, ...).
    pub extensions: Vec<String>,
    handle: Arc<Handle<Checker>>,
    remote: Remote,
    /// Cancelled when the main SFTP channel ends (see `stream::SftpStream`).
    pub closed: CancellationToken,
}

impl Session {
    pub fn has(&self, ext: &str) -> bool {
        self.extensions.iter().any(|e| e == ext)
    }

    /// Another SFTP session on this connection (its own channel; on OpenSSH its own
    /// sftp-server process, so its requests run beside this one's: see `ops::Flusher`).
    pub async fn open_session(&self) -> HostResult<Arc<RawSftpSession>> {
        let (sftp, _, _) = open_sftp(&self.handle, &self.remote).await?;
        Ok(Arc::new(sftp))
    }

    /// The next reply of the requests in flight — or, when the connection ends first, at once
    /// rather than after `request_timeout` (russh-sftp keeps waiting for replies that can no
    /// longer come), the answer russh-sftp itself gives a request whose reply is lost, so
    /// `sftp_err` words and classifies both cases alike (retryable).
    pub async fn reply<F, T>(&self, pending: &mut FuturesOrdered<F>) -> Option<Result<T, SftpError>>
    where
        F: Future<Output = Result<T, SftpError>>,
    {
        tokio::select! {
            biased;
            r = pending.next() => r,
            () = self.closed.cancelled() => Some(Err(SftpError::UnexpectedBehavior(REPLY_SENDER_DROPPED.into()))),
        }
    }

    pub async fn close(self) {
        let _ = self.sftp.close_session();
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// The ciphers offered, best first. russh (like OpenSSH) puts chacha20-poly1305 first, which
/// suits CPUs without AES instructions; with them ring's AES-GCM runs in hardware and costs a
/// fraction of chacha20-poly1305 per byte on both ends (docs/benchmarks.md, SFTP), so it leads.
fn ciphers() -> &'static [russh::cipher::Name] {
    use russh::cipher::CHACHA20_POLY1305 as CHACHA;
    use russh::cipher::{Name, AES_128_CTR, AES_128_GCM, AES_192_CTR, AES_256_CTR, AES_256_GCM};
    const AES_FIRST: &[Name] = &[
        AES_256_GCM,
        AES_128_GCM,
        CHACHA,
        AES_256_CTR,
        AES_192_CTR,
        AES_128_CTR,
    ];
    const CHACHA_FIRST: &[Name] = &[
        CHACHA,
        AES_256_GCM,
        AES_128_GCM,
        AES_256_CTR,
        AES_192_CTR,
        AES_128_CTR,
    ];
    if aes_in_hardware() {
        AES_FIRST
    } else {
        CHACHA_FIRST
    }
}

fn aes_in_hardware() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

pub async fn connect(remote: &Remote) -> HostResult<Session> {
    let at = remote.shown();
    let config = Arc::new(client::Config {
        // Big enough that downloads are not window-bound on a fast link.
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        inactivity_timeout: Some(remote.request_timeout.max(Duration::from_secs(30))),
        keepalive_interval: Some(Duration::from_secs(15)),
        nodelay: true,
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(ciphers()),
            ..Default::default()
        },
        ..Default::default()
    });
    let refusal = Arc::new(Mutex::new(None));
    let checker = Checker {
        remote: remote.clone(),
        refusal: refusal.clone(),
    };
    let addr = (remote.host.as_str(), remote.port);
    let connecting = client::connect(config, addr, checker);
    let mut handle = match tokio::time::timeout(Duration::from_secs(20), connecting).await {
        Err(_) => {
            return Err(
                HostError::network(format!("connecting to {at} timed out after 20 s"))
                    .with_retryable(true),
            )
        }
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            if let Some(r) = refusal.lock().ok().and_then(|mut r| r.take()) {
                return Err(r);
            }
            return Err(ssh_err(&format!("connecting to {at}"), e));
        }
    };
    authenticate(remote, &mut handle).await?;
    let handle = Arc::new(handle);
    let (sftp, extensions, closed) = open_sftp(&handle, remote).await?;
    Ok(Session {
        sftp: Arc::new(sftp),
        extensions,
        handle,
        remote: remote.clone(),
        closed,
    })
}

/// An SFTP session on a new channel of the connection: (the session, the extensions announced,
/// the token cancelled when the channel ends).
async fn open_sftp(
    handle: &Arc<Handle<Checker>>,
    remote: &Remote,
) -> HostResult<(RawSftpSession, Vec<String>, CancellationToken)> {
    let at = remote.shown();
    let channel = handle
        .channel_open_session()
        .await
        .map_err(|e| ssh_err(&format!("opening a channel on {at}"), e))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| ssh_err(&format!("starting the sftp subsystem on {at}"), e))?;
    let cfg = russh_sftp::client::Config {
        request_timeout_secs: remote.request_timeout.as_secs().max(1),
        max_packet_len: 512 * 1024,
        ..Default::default()
    };
    let id = channel.id();
    let closed = CancellationToken::new();
    let stream = SftpStream::new(channel.into_stream(), handle.clone(), id, closed.clone());
    let sftp = RawSftpSession::new_with_config(stream, cfg);
    let version = sftp
        .init()
        .await
        .map_err(|e| sftp_err(&format!("starting sftp on {at}"), e))?;
    Ok((sftp, version.extensions.keys().cloned().collect(), closed))
}

/// Password, key file, or (neither given) the agent and the default key files — in that order.
async fn authenticate(remote: &Remote, handle: &mut Handle<Checker>) -> HostResult<()> {
    let at = remote.shown();
    let user = remote.user.clone();
    let mut tried: Vec<String> = Vec::new();
    let failed = |tried: &[String]| {
        HostError::new(
            ErrorKind::PermissionDenied,
            format!(
                "authentication as {user} on {at} failed (tried: {}); check the user, the key the server's authorized_keys lists, or the password",
                tried.join(", ")
            ),
        )
    };
    let ok = |r: russh::client::AuthResult| r.success();
    if let Some(pw) = &remote.password {
        tried.push("password".into());
        let r = handle
            .authenticate_password(user.clone(), pw.clone())
            .await
            .map_err(|e| ssh_err(&format!("authenticating on {at}"), e))?;
        return if ok(r) { Ok(()) } else { Err(failed(&tried)) };
    }
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    let mut keys: Vec<(PathBuf, bool)> = Vec::new();
    match &remote.key_file {
        Some(k) => keys.push((k.clone(), true)),
        None => {
            if let Some(sock) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
                if agent_auth(handle, &user, &sock, rsa_hash, &mut tried).await? {
                    return Ok(());
                }
            }
            if let Some(home) = std::env::var_os("HOME") {
                for n in ["id_ed25519", "id_ecdsa", "id_rsa"] {
                    let p = PathBuf::from(&home).join(".ssh").join(n);
                    if p.is_file() {
                        keys.push((p, false));
                    }
                }
            }
        }
    }
    for (path, explicit) in keys {
        let key = match russh::keys::load_secret_key(&path, remote.key_passphrase.as_deref()) {
            Ok(k) => k,
            Err(e) if explicit => return Err(key_error(&path, remote, e)),
            Err(_) => continue,
        };
        tried.push(format!("key {}", path.display()));
        let with_alg = PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash);
        let r = handle
            .authenticate_publickey(user.clone(), with_alg)
            .await
            .map_err(|e| ssh_err(&format!("authenticating on {at}"), e))?;
        if ok(r) {
            return Ok(());
        }
    }
    if tried.is_empty() {
        return Err(HostError::new(
            ErrorKind::PermissionDenied,
            format!(
                "no way to log in as {user} on {at}: give ssh_key (a key file), password: secret(\"NAME\"), or run an ssh-agent (SSH_AUTH_SOCK)"
            ),
        ));
    }
    Err(failed(&tried))
}

async fn agent_auth(
    handle: &mut Handle<Checker>,
    user: &str,
    sock: &std::ffi::OsStr,
    rsa_hash: Option<HashAlg>,
    tried: &mut Vec<String>,
) -> HostResult<bool> {
    let Ok(mut agent) = russh::keys::agent::client::AgentClient::connect_uds(Path::new(sock)).await
    else {
        return Ok(false);
    };
    let ids = agent.request_identities().await.unwrap_or_default();
    for key in ids {
        tried.push(format!("agent key {}", key.comment()));
        let hash = if key.algorithm().is_rsa() {
            rsa_hash
        } else {
            None
        };
        match handle
            .authenticate_publickey_with(user.to_string(), key, hash, &mut agent)
            .await
        {
            Ok(r) if r.success() => return Ok(true),
            _ => {}
        }
    }
    Ok(false)
}

fn key_error(path: &Path, remote: &Remote, e: russh::keys::Error) -> HostError {
    let text = e.to_string();
    let msg = if matches!(e, russh::keys::Error::KeyIsEncrypted) {
        format!(
            "ssh_key {} is encrypted: give its passphrase as ssh_key_passphrase: secret(\"NAME\")",
            path.display()
        )
    } else if remote.key_passphrase.is_some() && text.to_ascii_lowercase().contains("decrypt") {
        format!(
            "ssh_key {} could not be decrypted: the passphrase is wrong",
            path.display()
        )
    } else {
        format!(
            "cannot load ssh_key {}: {}",
            path.display(),
            crate::redact::redact(&text)
        )
    };
    HostError::invalid(msg)
}

/// russh errors: dropped or refused connections are worth retrying, the rest are not.
pub fn ssh_err(what: &str, e: russh::Error) -> HostError {
    let retry = matches!(
        e,
        russh::Error::IO(_)
            | russh::Error::Disconnect
            | russh::Error::ConnectionTimeout
            | russh::Error::KeepaliveTimeout
            | russh::Error::InactivityTimeout
            | russh::Error::SendError
            | russh::Error::Elapsed(_)
            | russh::Error::HUP
            | russh::Error::ChannelOpenFailure(_)
    );
    let kind = if retry {
        ErrorKind::Network
    } else {
        ErrorKind::Server
    };
    HostError::new(
        kind,
        format!("{what}: {}", crate::redact::redact(&e.to_string())),
    )
    .with_retryable(retry)
}

/// What russh-sftp answers a request whose reply can no longer come: the session reading the
/// replies ended (the connection dropped) and took the request's sender with it. `Session::reply`
/// answers the same when it sees the channel end first.
const REPLY_SENDER_DROPPED: &str = "sender dropped";

/// SFTP status codes map onto mtn's kinds; timeouts and a closed channel are worth retrying.
pub fn sftp_err(what: &str, e: SftpError) -> HostError {
    if matches!(&e, SftpError::UnexpectedBehavior(m) if m == REPLY_SENDER_DROPPED) {
        // A dropped connection, not a misbehaving server: retryable, and said plainly.
        return HostError::network(format!("{what}: the connection to the server was lost"))
            .with_retryable(true);
    }
    let (kind, retry) = match &e {
        SftpError::Status(s) => match s.status_code {
            StatusCode::NoSuchFile => (ErrorKind::NotFound, false),
            StatusCode::PermissionDenied => (ErrorKind::PermissionDenied, false),
            StatusCode::NoConnection | StatusCode::ConnectionLost => (ErrorKind::Network, true),
            _ => (ErrorKind::Server, false),
        },
        SftpError::IO(_) | SftpError::Timeout => (ErrorKind::Network, true),
        _ => (ErrorKind::Server, false),
    };
    HostError::new(
        kind,
        format!("{what}: {}", crate::redact::redact(&e.to_string())),
    )
    .with_retryable(retry)
}

/// The retry budget of one operation: exponential backoff (0.2 s doubling to 15 s) while errors
/// are retryable and `retries` / `retry_timeout` allow.
pub struct Backoff<'a> {
    remote: &'a Remote,
    started: Instant,
    delay: Duration,
    attempt: usize,
}

impl<'a> Backoff<'a> {
    pub fn new(remote: &'a Remote) -> Self {
        Backoff {
            remote,
            started: Instant::now(),
            delay: Duration::from_millis(200),
            attempt: 0,
        }
    }

    /// After a failure: Ok once it is worth another attempt (having slept), else the error.
    pub async fn after(&mut self, e: HostError) -> HostResult<()> {
        let r = self.remote;
        if e.retryable
            && self.attempt < r.retries
            && self.started.elapsed() + self.delay < r.retry_timeout
        {
            self.attempt += 1;
            tracing::warn!(target: "mtn::storage", attempt = self.attempt, error = %crate::redact::redact(&e.message), "sftp: retrying after a transient error");
            tokio::time::sleep(self.delay).await;
            self.delay = (self.delay * 2).min(Duration::from_secs(15));
            return Ok(());
        }
        if e.retryable && self.attempt > 0 {
            return Err(e.context(format!("after {} attempts", self.attempt + 1)));
        }
        Err(e)
    }
}

/// Run `op` on a fresh connection, again after a retryable error while the [`Backoff`] allows.
/// Cancellation ends it.
pub async fn with_retry<T, F, Fut>(remote: &Remote, ctx: &RunCtx, mut op: F) -> HostResult<T>
where
    F: FnMut(Session) -> Fut,
    Fut: Future<Output = HostResult<T>>,
{
    let mut backoff = Backoff::new(remote);
    loop {
        ctx.check_cancelled()?;
        let res = match connect(remote).await {
            Ok(s) => op(s).await,
            Err(e) => Err(e),
        };
        match res {
            Ok(v) => return Ok(v),
            Err(e) => backoff.after(e).await?,
        }
    }
}
