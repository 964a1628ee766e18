//! A target URL (`s3://bucket/prefix/`, `file:///path/`, `sftp://user@host/path/`) turned into an
//! object store (or an SFTP connection) and a key.
//!
//! Every function of this capability takes the same connection options, so they live here:
//! [`ConnOptions`] is flattened by hand into each function's options (serde's `flatten` does not
//! combine with `deny_unknown_fields`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::Deserialize;

use crate::error::{ErrorKind, HostError, HostResult};

/// Connection options shared by every storage function.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnOptions {
    /// S3 endpoint (`http://127.0.0.1:8333`, `https://s3.eu-central-003.backblazeb2.com`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`); default true when an endpoint is given.
    pub path_style: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Retries of one request on 5xx, timeouts and dropped connections (default 10).
    pub retries: Option<usize>,
    /// Give up retrying one request after this long (default "3m").
    #[serde(with = "crate::host::binding::serde_duration::option")]
    pub retry_timeout: Option<Duration>,
    /// Timeout of one HTTP request (default "5m"; parts are at most a few MiB).
    #[serde(with = "crate::host::binding::serde_duration::option")]
    pub request_timeout: Option<Duration>,
    /// SFTP: private key file (default: the ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa).
    pub ssh_key: Option<String>,
    /// SFTP: the key file's passphrase (use secret()).
    pub ssh_key_passphrase: Option<String>,
    /// SFTP: log in with this password instead of a key (use secret()).
    pub password: Option<String>,
    /// SFTP: the known_hosts file to check the server's key against (default ~/.ssh/known_hosts
    /// and /etc/ssh/ssh_known_hosts).
    pub known_hosts: Option<String>,
    /// SFTP: the server's pinned host key fingerprint, "SHA256:..." (instead of known_hosts).
    pub host_key: Option<String>,
    /// Azure: the storage account (default AZURE_STORAGE_ACCOUNT_NAME).
    pub account: Option<String>,
    /// Azure: the account's access key (use secret(); default AZURE_STORAGE_ACCOUNT_KEY).
    pub account_key: Option<String>,
    /// Azure: a SAS token instead of the key (use secret()).
    pub sas_token: Option<String>,
    /// Azure: a connection string (use secret(); default AZURE_STORAGE_CONNECTION_STRING).
    pub connection_string: Option<String>,
    /// Azure: talk to Azurite at AZURITE_BLOB_STORAGE_URL (default http://127.0.0.1:10000)
    /// with its well-known development account.
    pub use_emulator: Option<bool>,
    /// GCS: a service account JSON file (default GOOGLE_APPLICATION_CREDENTIALS).
    pub service_account: Option<String>,
    /// GCS: the service account JSON itself (use secret()).
    pub service_account_key: Option<String>,
}

/// The connection option names, so a function can split them from its own options.
pub const CONN_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "path_style",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "retries",
    "retry_timeout",
    "request_timeout",
    "ssh_key",
    "ssh_key_passphrase",
    "password",
    "known_hosts",
    "host_key",
    "account",
    "account_key",
    "sas_token",
    "connection_string",
    "use_emulator",
    "service_account",
    "service_account_key",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    S3,
    /// Azure Blob Storage (`az://container/prefix/`).
    Azure,
    /// Google Cloud Storage (`gs://bucket/prefix/`).
    Gcs,
    File,
    Sftp,
}

impl Backend {
    /// Stores that carry the sha256 in the object's own metadata (`x-amz-meta-sha256`,
    /// `x-ms-meta-sha256`, `x-goog-meta-sha256`) rather than in a sidecar file.
    pub fn keeps_metadata(self) -> bool {
        matches!(self, Backend::S3 | Backend::Azure | Backend::Gcs)
    }
}

/// A parsed target: the store, and the key (or key prefix) inside it.
#[derive(Debug, Clone)]
pub struct Target {
    pub store: Arc<dyn ObjectStore>,
    pub backend: Backend,
    /// `s3://bucket/` or `file:///`: prefix of every URL we show.
    pub base: String,
    /// Key inside the store, without a leading '/'; ends with '/' when the URL named a folder.
    pub key: String,
    /// Where errors say the request went (`http://127.0.0.1:8333 (bucket b)`, `/srv/backups`).
    pub endpoint: String,
    /// The host network requests go to (checked against the policy's allow_hosts).
    pub host: Option<String>,
    /// The connection of an `sftp://` target (whose `store` is then an unused placeholder).
    pub sftp: Option<Arc<super::sftp::Remote>>,
}

impl Target {
    pub fn is_prefix(&self) -> bool {
        self.key.is_empty() || self.key.ends_with('/')
    }

    /// The full URL of a key in this store.
    pub fn url_of(&self, key: &str) -> String {
        format!("{}{}", self.base, key)
    }

    pub fn url(&self) -> String {
        self.url_of(&self.key)
    }

    /// The object_store path of a key. Keys are kept verbatim; a key object_store cannot
    /// represent (empty segments, `..`) is an input error rather than a silently changed name.
    pub fn path(&self, key: &str) -> HostResult<ObjPath> {
        ObjPath::parse(key.trim_end_matches('/')).map_err(|e| {
            HostError::invalid(format!("invalid object key {key:?} in {}: {e}", self.base))
        })
    }

    /// The local file behind a key of a `file://` target.
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        (self.backend == Backend::File).then(|| PathBuf::from(format!("/{key}")))
    }

    /// Turn an object_store error into a host error that names the operation and the endpoint.
    pub fn error(&self, op: &str, key: &str, err: object_store::Error) -> HostError {
        let kind = match &err {
            object_store::Error::NotFound { .. } => ErrorKind::NotFound,
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => ErrorKind::PermissionDenied,
            object_store::Error::NotImplemented { .. } => ErrorKind::InvalidInput,
            _ => classify_text(&err.to_string()),
        };
        let text = err.to_string();
        let hint = if text.contains("SignatureDoesNotMatch") || text.contains("InvalidAccessKeyId")
        {
            " (the access key or secret key is wrong for this endpoint)"
        } else if text.contains("AuthenticationFailed") || text.contains("AuthorizationFailure") {
            " (the account key, SAS token or connection string is wrong for this account)"
        } else {
            ""
        };
        let msg = format!(
            "{op} {} failed at {}{hint}: {}",
            self.url_of(key),
            self.endpoint,
            crate::redact::redact(&text)
        );
        HostError::new(kind, msg)
    }
}

fn classify_text(text: &str) -> ErrorKind {
    let t = text.to_ascii_lowercase();
    if t.contains("signaturedoesnotmatch")
        || t.contains("invalidaccesskeyid")
        || t.contains("authenticationfailed")
        || t.contains("authorizationfailure")
        || t.contains("401 unauthorized")
        || t.contains("accessdenied")
        || t.contains("403 forbidden")
    {
        ErrorKind::PermissionDenied
    } else if t.contains("nosuchbucket") || t.contains("containernotfound") {
        ErrorKind::NotFound
    } else if t.contains("error sending request")
        || t.contains("connection")
        || t.contains("timed out")
        || t.contains("timeout")
        || t.contains("retry")
    {
        ErrorKind::Network
    } else {
        ErrorKind::Server
    }
}

/// Parse a target. A plain path (`./backups`, `/srv/backups/`) means a local folder or file.
pub fn parse(raw: &str, conn: &ConnOptions) -> HostResult<Target> {
    if let Some(rest) = raw.strip_prefix("s3://") {
        return parse_s3(raw, rest, conn);
    }
    for scheme in ["az://", "azure://"] {
        if let Some(rest) = raw.strip_prefix(scheme) {
            return super::cloud::parse_azure(raw, rest, conn);
        }
    }
    if let Some(rest) = raw.strip_prefix("gs://") {
        return super::cloud::parse_gcs(raw, rest, conn);
    }
    if raw.starts_with("sftp://") {
        let (remote, key, base) = super::sftp::parse(raw, conn)?;
        return Ok(Target {
            store: Arc::new(object_store::memory::InMemory::new()),
            backend: Backend::Sftp,
            base,
            endpoint: remote.shown(),
            host: Some(remote.host.clone()),
            key,
            sftp: Some(Arc::new(remote)),
        });
    }
    if let Some(rest) = raw.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(HostError::invalid(format!(
                "invalid target {raw:?}: a file URL needs an absolute path (file:///srv/backups/)"
            )));
        }
        return file_target(rest);
    }
    if raw.contains("://") {
        let scheme = raw.split("://").next().unwrap_or_default();
        return Err(HostError::invalid(format!(
            "unsupported target scheme {scheme:?} in {}: use s3://bucket/prefix/, az://container/prefix/, gs://bucket/prefix/, sftp://user@host/path/ or file:///path/",
            crate::redact::redact(raw)
        )));
    }
    if raw.is_empty() {
        return Err(HostError::invalid("empty target"));
    }
    let abs = std::path::absolute(raw)
        .map_err(|e| HostError::io(format!("resolving target path {raw}"), &e))?;
    let mut s = abs.to_string_lossy().to_string();
    if raw.ends_with('/') && !s.ends_with('/') {
        s.push('/');
    }
    file_target(&s)
}

fn file_target(abs: &str) -> HostResult<Target> {
    let key = abs.trim_start_matches('/').to_string();
    Ok(Target {
        store: Arc::new(LocalFileSystem::new()),
        backend: Backend::File,
        base: "file:///".to_string(),
        endpoint: abs.to_string(),
        host: None,
        key,
        sftp: None,
    })
}

/// Retries with exponential backoff (200 ms doubling to 15 s), the same for every object store.
pub(super) fn retry_config(conn: &ConnOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: conn.retries.unwrap_or(10),
        retry_timeout: conn.retry_timeout.unwrap_or(Duration::from_secs(180)),
    }
}

/// HTTP client settings of every object store (`with_client_options` replaces them all).
pub(super) fn client_options(conn: &ConnOptions, allow_http: bool) -> ClientOptions {
    // Every store's reqwest client takes its TLS from the process-wide provider.
    crate::tls::install_default_provider();
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_timeout(conn.request_timeout.unwrap_or(Duration::from_secs(300)))
        .with_connect_timeout(Duration::from_secs(10))
}

/// The error of a builder that refused its settings, with secrets masked.
pub(super) fn build_error(raw: &str, e: object_store::Error) -> HostError {
    HostError::invalid(format!(
        "cannot use target {}: {}",
        crate::redact::redact(raw),
        crate::redact::redact(&e.to_string())
    ))
}

/// An endpoint URL without its trailing '/', which must be http:// or https://.
pub(super) fn check_endpoint(ep: &str, what: &str) -> HostResult<String> {
    let ep = ep.trim_end_matches('/').to_string();
    if !(ep.starts_with("http://") || ep.starts_with("https://")) {
        return Err(HostError::invalid(format!(
            "invalid {what} endpoint {ep:?}: it must start with http:// or https://"
        )));
    }
    Ok(ep)
}

pub(super) fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn parse_s3(raw: &str, rest: &str, conn: &ConnOptions) -> HostResult<Target> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(HostError::invalid(format!(
            "invalid target {raw:?}: no bucket (use s3://bucket/prefix/)"
        )));
    }
    // Options win, then AWS_* variables, then the shared ~/.aws files (which object_store skips).
    let profile = super::profile::load();
    let region = conn
        .region
        .clone()
        .or_else(|| env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
        .or_else(|| profile.region.clone())
        .unwrap_or_else(|| "us-east-1".to_string());
    let endpoint = conn
        .endpoint
        .clone()
        .or_else(|| env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]))
        .or_else(|| profile.endpoint_url.clone());
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(&region);
    let shown_endpoint = match &endpoint {
        Some(ep) => {
            let ep = check_endpoint(ep, "S3")?;
            b = b
                .with_endpoint(&ep)
                .with_virtual_hosted_style_request(!conn.path_style.unwrap_or(true));
            ep
        }
        None => {
            b = b.with_virtual_hosted_style_request(!conn.path_style.unwrap_or(false));
            format!("https://s3.{region}.amazonaws.com")
        }
    };
    if conn.access_key_id.is_none() && env_first(&["AWS_ACCESS_KEY_ID"]).is_none() {
        if let (Some(k), Some(s)) = (&profile.access_key_id, &profile.secret_access_key) {
            crate::redact::register(s);
            b = b.with_access_key_id(k).with_secret_access_key(s);
            if let Some(t) = &profile.session_token {
                crate::redact::register(t);
                b = b.with_token(t);
            }
        }
    }
    if let Some(k) = &conn.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(s) = &conn.secret_access_key {
        crate::redact::register(s);
        b = b.with_secret_access_key(s);
    }
    if let Some(t) = &conn.session_token {
        crate::redact::register(t);
        b = b.with_token(t);
    }
    // Secrets from the environment are masked too, whatever path they take into a message.
    for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Ok(v) = std::env::var(var) {
            crate::redact::register(&v);
        }
    }
    // with_client_options replaces every client setting, so allow_http belongs in there.
    let allow_http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    let (retry, client) = (retry_config(conn), client_options(conn, allow_http));
    let store = b
        .with_retry(retry)
        .with_client_options(client)
        .build()
        .map_err(|e| build_error(raw, e))?;
    Ok(Target {
        store: Arc::new(store),
        backend: Backend::S3,
        base: format!("s3://{bucket}/"),
        host: url::Url::parse(&shown_endpoint)
            .ok()
            .and_then(|u| u.host_str().map(|h| h.to_string())),
        endpoint: format!("{shown_endpoint} (bucket {bucket})"),
        key: key.to_string(),
        sftp: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let conn = ConnOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            ..Default::default()
        };
        let t = parse("s3://b/daily/", &conn).unwrap();
        assert_eq!((t.base.as_str(), t.key.as_str()), ("s3://b/", "daily/"));
        assert!(t.is_prefix());
        assert!(t.endpoint.contains("127.0.0.1:9"));
        let f = parse("file:///srv/x/a.gz", &conn).unwrap();
        assert_eq!(f.key, "srv/x/a.gz");
        assert_eq!(
            f.local_path("srv/x/a.gz").unwrap(),
            PathBuf::from("/srv/x/a.gz")
        );
        let t = parse("sftp://u@h:2222/p/", &conn).unwrap();
        assert_eq!(
            (t.base.as_str(), t.key.as_str()),
            ("sftp://u@h:2222/", "p/")
        );
        assert_eq!(t.backend, Backend::Sftp);
        assert!(parse("ftp://u@h/p", &conn).is_err());
        assert!(parse("s3:///x", &conn).is_err());
        assert!(parse("file://rel/x", &conn).is_err());
    }
}
