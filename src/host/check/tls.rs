//! `tls_expiry`: connect, complete a TLS handshake and read the server certificate's dates.
//!
//! The point is to warn about certificates that are about to expire — or already have, or were
//! never trusted (self-signed, internal CA). A verifying client would refuse exactly those, so
//! this handshake uses `crate::tls::AcceptAnyCert`. That is safe only because nothing
//! is sent over the connection: it is closed as soon as the certificate has been read.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};

use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::binding::serde_duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsOptions {
    /// Connect and handshake timeout (default 10s).
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    /// Server name to send (SNI) when it differs from the host connected to.
    pub server_name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CertInfo {
    /// Whole days until expiry, rounded down (negative once expired).
    pub days_left: i64,
    pub seconds_left: i64,
    pub expired: bool,
    pub not_before: String,
    pub not_after: String,
    pub subject: String,
    pub issuer: String,
    /// DNS names in the subjectAltName extension.
    pub dns_names: Vec<String>,
    pub self_signed: bool,
    pub target: String,
}

/// Read the dates and names of a DER certificate.
pub fn parse_cert(der: &[u8], target: &str) -> HostResult<CertInfo> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| HostError::server(format!("{target}: unreadable certificate: {e}")))?;
    let not_after = cert.validity().not_after.timestamp();
    let not_before = cert.validity().not_before.timestamp();
    let now = chrono::Utc::now().timestamp();
    let seconds_left = not_after - now;
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        days_left: seconds_left.div_euclid(86_400),
        seconds_left,
        expired: seconds_left <= 0,
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_names,
        self_signed: cert.subject() == cert.issuer(),
        target: target.to_string(),
    })
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix.to_string())
}

/// Split "host:port", "host" (port 443), "[::1]:443" or "https://host:port/path".
pub fn parse_target(target: &str) -> HostResult<(String, u16)> {
    let t = target.trim();
    if t.contains("://") {
        let url = url::Url::parse(t)
            .map_err(|e| HostError::invalid(format!("invalid URL {t:?}: {e}")))?;
        let host = url
            .host_str()
            .ok_or_else(|| HostError::invalid(format!("URL {t:?} has no host")))?;
        let port = url.port_or_known_default().unwrap_or(443);
        return Ok((host.trim_matches(['[', ']']).to_string(), port));
    }
    if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| HostError::invalid(format!("invalid target {t:?}: missing ']'")))?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p, t)?,
            None => 443,
        };
        return Ok((host.to_string(), port));
    }
    match t.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Ok((host.to_string(), parse_port(port, t)?)),
        _ if t.is_empty() => Err(HostError::invalid("empty target: use \"host:port\"")),
        _ => Ok((t.to_string(), 443)),
    }
}

fn parse_port(p: &str, target: &str) -> HostResult<u16> {
    p.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| HostError::invalid(format!("invalid port {p:?} in {target:?}")))
}

pub async fn tls_expiry(ctx: &RunCtx, target: &str, opts: TlsOptions) -> HostResult<CertInfo> {
    let (host, port) = parse_target(target)?;
    ctx.policy.check_host(&host)?;
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(10));
    let sni = opts.server_name.clone().unwrap_or_else(|| host.clone());
    let name = ServerName::try_from(sni.clone())
        .map_err(|e| HostError::invalid(format!("invalid server name {sni:?}: {e}")))?;
    let provider = crate::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HostError::other(format!("TLS setup: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(crate::tls::AcceptAnyCert::new(provider))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let shown = format!("{host}:{port}");
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| HostError::io(format!("connecting to {shown}"), &e))?;
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| HostError::network(format!("TLS handshake with {shown}: {e}")))?;
        let (_, conn) = tls.get_ref();
        let der = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or_else(|| HostError::server(format!("{shown} sent no certificate")))?;
        Ok::<_, HostError>(der)
    };
    let der = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| {
            HostError::network(format!(
                "{shown}: no TLS handshake within {}",
                humantime::format_duration(timeout)
            ))
        })??;
    parse_cert(&der, &shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("example.com:8443").unwrap(),
            ("example.com".into(), 8443)
        );
        assert_eq!(
            parse_target("example.com").unwrap(),
            ("example.com".into(), 443)
        );
        assert_eq!(parse_target("[::1]:99").unwrap(), ("::1".into(), 99));
        assert_eq!(
            parse_target("https://a.b:444/x").unwrap(),
            ("a.b".into(), 444)
        );
        assert!(parse_target("a:0").is_err());
        assert!(parse_target("a:http").is_err());
    }
}
