//! Azure Blob Storage (`az://container/prefix/`, also `azure://`) and Google Cloud Storage
//! (`gs://bucket/prefix/`) targets: object_store's `azure` and `gcp` stores behind the same
//! functions, retries and checks as S3 (target.rs). Settings come from the options first, then
//! the providers' usual environment variables (which object_store's `from_env` reads).

use std::sync::Arc;

use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::GoogleCloudStorageBuilder;

use super::target::{
    build_error, check_endpoint, client_options, env_first, retry_config, Backend, ConnOptions,
    Target,
};
use crate::error::{HostError, HostResult};

/// Azurite's well-known development account (public, documented by Microsoft).
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Options that belong to another kind of target: refused rather than silently ignored.
fn refuse_foreign(raw: &str, conn: &ConnOptions, allowed: &[&str]) -> HostResult<()> {
    let given = [
        ("region", conn.region.is_some()),
        ("path_style", conn.path_style.is_some()),
        ("access_key_id", conn.access_key_id.is_some()),
        ("secret_access_key", conn.secret_access_key.is_some()),
        ("session_token", conn.session_token.is_some()),
        ("ssh_key", conn.ssh_key.is_some()),
        ("ssh_key_passphrase", conn.ssh_key_passphrase.is_some()),
        ("password", conn.password.is_some()),
        ("known_hosts", conn.known_hosts.is_some()),
        ("host_key", conn.host_key.is_some()),
        ("account", conn.account.is_some()),
        ("account_key", conn.account_key.is_some()),
        ("sas_token", conn.sas_token.is_some()),
        ("connection_string", conn.connection_string.is_some()),
        ("use_emulator", conn.use_emulator.is_some()),
        ("service_account", conn.service_account.is_some()),
        ("service_account_key", conn.service_account_key.is_some()),
    ];
    let foreign: Vec<&str> = given
        .iter()
        .filter(|(k, set)| *set && !allowed.contains(k))
        .map(|(k, _)| *k)
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(HostError::invalid(format!(
        "option {} does not apply to {} (its options: endpoint, {}, retries, retry_timeout, request_timeout)",
        foreign.join(", "),
        crate::redact::redact(raw),
        allowed.join(", ")
    )))
}

/// `container/prefix` → (container, key prefix).
fn split_bucket<'a>(
    raw: &str,
    rest: &'a str,
    what: &str,
    form: &str,
) -> HostResult<(&'a str, &'a str)> {
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains('@') {
        return Err(HostError::invalid(format!(
            "invalid target {}: no {what} (use {form})",
            crate::redact::redact(raw)
        )));
    }
    Ok((bucket, key))
}

/// The fields of an Azure connection string (`AccountName=...;AccountKey=...;BlobEndpoint=...`).
#[derive(Debug, Default, PartialEq)]
struct ConnString {
    account: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    endpoint: Option<String>,
    emulator: bool,
}

fn parse_connection_string(text: &str) -> HostResult<ConnString> {
    let mut c = ConnString::default();
    let (mut protocol, mut suffix) = ("https".to_string(), None);
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(HostError::invalid(
                "invalid Azure connection string: expected Key=Value pairs separated by ';'",
            ));
        };
        match k.to_ascii_lowercase().as_str() {
            "accountname" => c.account = Some(v.to_string()),
            "accountkey" => c.key = Some(v.to_string()),
            "sharedaccesssignature" => c.sas = Some(v.to_string()),
            "blobendpoint" => c.endpoint = Some(v.trim_end_matches('/').to_string()),
            "defaultendpointsprotocol" => protocol = v.to_string(),
            "endpointsuffix" => suffix = Some(v.to_string()),
            "usedevelopmentstorage" => c.emulator = v.eq_ignore_ascii_case("true"),
            // Queue, table and file endpoints do not concern blobs.
            _ => {}
        }
    }
    if c.endpoint.is_none() && !c.emulator {
        if let (Some(a), Some(s)) = (&c.account, &suffix) {
            c.endpoint = Some(format!("{protocol}://{a}.blob.{s}"));
        }
    }
    Ok(c)
}

pub fn parse_azure(raw: &str, rest: &str, conn: &ConnOptions) -> HostResult<Target> {
    refuse_foreign(
        raw,
        conn,
        &[
            "account",
            "account_key",
            "sas_token",
            "connection_string",
            "use_emulator",
        ],
    )?;
    let (container, key) = split_bucket(raw, rest, "container", "az://container/prefix/")?;
    for var in [
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_STORAGE_CLIENT_SECRET",
        "AZURE_CLIENT_SECRET",
        "AZURE_STORAGE_CONNECTION_STRING",
    ] {
        if let Ok(v) = std::env::var(var) {
            crate::redact::register(&v);
        }
    }
    let mut b = MicrosoftAzureBuilder::from_env().with_container_name(container);
    // A connection string (option, else the variable az and the SDKs read) fills what it has.
    let cs_text = conn
        .connection_string
        .clone()
        .or_else(|| env_first(&["AZURE_STORAGE_CONNECTION_STRING"]));
    let mut endpoint = None;
    let mut emulator = false;
    if let Some(text) = &cs_text {
        crate::redact::register(text);
        let cs = parse_connection_string(text)?;
        for s in [&cs.key, &cs.sas].into_iter().flatten() {
            crate::redact::register(s);
        }
        emulator = cs.emulator;
        if let Some(a) = cs.account {
            b = b.with_account(a);
        }
        if let Some(k) = cs.key {
            b = b.with_access_key(k);
        }
        if let Some(s) = cs.sas {
            b = b.with_config(AzureConfigKey::SasKey, s);
        }
        endpoint = cs.endpoint;
    }
    if let Some(a) = &conn.account {
        b = b.with_account(a);
    }
    if let Some(k) = &conn.account_key {
        crate::redact::register(k);
        b = b.with_access_key(k);
    }
    if let Some(s) = &conn.sas_token {
        crate::redact::register(s);
        b = b.with_config(AzureConfigKey::SasKey, s.trim_start_matches('?'));
    }
    if let Some(e) = &conn.endpoint {
        endpoint = Some(e.trim_end_matches('/').to_string());
    }
    if let Some(u) = conn.use_emulator {
        emulator = u;
    }
    let shown = if emulator && endpoint.is_none() {
        b = b.with_use_emulator(true);
        let url = env_first(&["AZURITE_BLOB_STORAGE_URL"])
            .unwrap_or_else(|| "http://127.0.0.1:10000".into());
        format!("{}/{EMULATOR_ACCOUNT}", url.trim_end_matches('/'))
    } else if let Some(ep) = &endpoint {
        let ep = &check_endpoint(ep, "Azure")?;
        // An emulator endpoint names the account in its path (http://host:10000/devstoreaccount1);
        // without an account given, take it from there.
        if emulator && conn.account.is_none() && cs_text.is_none() {
            b = b.with_account(EMULATOR_ACCOUNT);
        }
        if emulator && conn.account_key.is_none() && cs_text.is_none() {
            b = b.with_access_key(EMULATOR_KEY);
        }
        b = b.with_endpoint(ep.clone());
        ep.clone()
    } else {
        let account = conn
            .account
            .clone()
            .or_else(|| env_first(&["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT"]))
            .ok_or_else(|| {
                HostError::invalid(format!(
                    "no Azure storage account for {}: pass `account` (or a connection_string), or set AZURE_STORAGE_ACCOUNT_NAME or AZURE_STORAGE_CONNECTION_STRING",
                    crate::redact::redact(raw)
                ))
            })?;
        format!("https://{account}.blob.core.windows.net")
    };
    let store = b
        .with_retry(retry_config(conn))
        .with_client_options(client_options(conn, shown.starts_with("http://")))
        .build()
        .map_err(|e| build_error(raw, e))?;
    let base = format!("az://{container}/");
    Ok(cloud_target(
        Arc::new(store),
        Backend::Azure,
        base,
        &shown,
        &format!("container {container}"),
        key,
    ))
}

/// The target of an Azure or GCS store: URLs shown as `base` + key, errors naming `shown`.
fn cloud_target(
    store: Arc<dyn object_store::ObjectStore>,
    backend: Backend,
    base: String,
    shown: &str,
    label: &str,
    key: &str,
) -> Target {
    Target {
        store,
        backend,
        base,
        host: url::Url::parse(shown)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string)),
        endpoint: format!("{shown} ({label})"),
        key: key.to_string(),
        sftp: None,
    }
}

pub fn parse_gcs(raw: &str, rest: &str, conn: &ConnOptions) -> HostResult<Target> {
    refuse_foreign(raw, conn, &["service_account", "service_account_key"])?;
    let (bucket, key) = split_bucket(raw, rest, "bucket", "gs://bucket/prefix/")?;
    if let Ok(v) = std::env::var("GOOGLE_SERVICE_ACCOUNT_KEY") {
        register_service_account(&v);
    }
    let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
    if let Some(p) = &conn.service_account {
        b = b.with_service_account_path(p);
    }
    if let Some(k) = &conn.service_account_key {
        register_service_account(k);
        b = b.with_service_account_key(k);
    }
    let shown = match &conn.endpoint {
        Some(ep) => {
            let ep = check_endpoint(ep, "GCS")?;
            b = b.with_base_url(&ep);
            ep
        }
        None => "https://storage.googleapis.com".to_string(),
    };
    let store = b
        .with_retry(retry_config(conn))
        .with_client_options(client_options(conn, shown.starts_with("http://")))
        .build()
        .map_err(|e| build_error(raw, e))?;
    let base = format!("gs://{bucket}/");
    Ok(cloud_target(
        Arc::new(store),
        Backend::Gcs,
        base,
        &shown,
        &format!("bucket {bucket}"),
        key,
    ))
}

/// A service account JSON is a secret as a whole, and so is its private key on its own.
fn register_service_account(json: &str) {
    crate::redact::register(json);
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(json) {
        if let Some(k) = v.get("private_key").and_then(|k| k.as_str()) {
            crate::redact::register(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings() {
        let c = parse_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://x/",
        )
        .unwrap();
        assert_eq!(c.account.as_deref(), Some("devstoreaccount1"));
        assert_eq!(c.key.as_deref(), Some("a2V5"));
        assert_eq!(
            c.endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        let c = parse_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=k;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(
            c.endpoint.as_deref(),
            Some("https://acme.blob.core.windows.net")
        );
        assert!(
            parse_connection_string("UseDevelopmentStorage=true")
                .unwrap()
                .emulator
        );
        assert!(parse_connection_string("garbage").is_err());
    }

    #[test]
    fn parses_azure_and_gcs_targets() {
        let conn = ConnOptions {
            endpoint: Some("http://127.0.0.1:9/devstoreaccount1".into()),
            account: Some("devstoreaccount1".into()),
            account_key: Some("a2V5a2V5a2V5".into()),
            ..Default::default()
        };
        let t = super::super::target::parse("az://c/daily/", &conn).unwrap();
        assert_eq!((t.base.as_str(), t.key.as_str()), ("az://c/", "daily/"));
        assert_eq!(t.backend, Backend::Azure);
        assert_eq!(t.host.as_deref(), Some("127.0.0.1"));
        let t = super::super::target::parse("azure://c/x.gz", &conn).unwrap();
        assert_eq!(t.url(), "az://c/x.gz");
        let bad = ConnOptions {
            region: Some("eu".into()),
            ..conn.clone()
        };
        let e = super::super::target::parse("az://c/", &bad).unwrap_err();
        assert!(e.message.contains("region does not apply"), "{}", e.message);
        assert!(super::super::target::parse("az:///x", &conn).is_err());
        let g = ConnOptions {
            endpoint: Some("http://127.0.0.1:9".into()),
            service_account_key: Some(
                r#"{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": ""}"#.into(),
            ),
            ..Default::default()
        };
        let t = super::super::target::parse("gs://b/p/", &g).unwrap();
        assert_eq!((t.base.as_str(), t.backend), ("gs://b/", Backend::Gcs));
    }
}
