//! The AWS shared configuration files (`~/.aws/credentials`, `~/.aws/config`), which object_store
//! does not read: the profile named by `AWS_PROFILE` (default "default") supplies credentials,
//! region and endpoint when neither options nor `AWS_*` environment variables do — so a machine
//! set up for `aws s3 cp` works with mtn unchanged.

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Profile {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The active profile, or an empty one when the files are absent.
pub fn load() -> Profile {
    let name = std::env::var("AWS_PROFILE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "default".into());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let file = |var: &str, rel: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(rel)))
    };
    let creds = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| section(&t, &name))
        .unwrap_or_default();
    // In ~/.aws/config a named profile is `[profile NAME]`; the default one is `[default]`.
    let config_section = if name == "default" {
        name.clone()
    } else {
        format!("profile {name}")
    };
    let config = file("AWS_CONFIG_FILE", ".aws/config")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| section(&t, &config_section))
        .unwrap_or_default();
    let get = |k: &str| creds.get(k).or_else(|| config.get(k)).cloned();
    Profile {
        access_key_id: get("aws_access_key_id"),
        secret_access_key: get("aws_secret_access_key"),
        session_token: get("aws_session_token"),
        region: get("region"),
        endpoint_url: get("endpoint_url"),
    }
}

/// `key = value` pairs of one `[section]` of an INI file.
fn section(text: &str, name: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = h.trim() == name;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_section_only() {
        let t = "[default]\naws_access_key_id = A\n# note\n[other]\naws_access_key_id=B\nregion = eu-west-1\n";
        assert_eq!(
            section(t, "default")
                .get("aws_access_key_id")
                .map(String::as_str),
            Some("A")
        );
        let o = section(t, "other");
        assert_eq!(o.get("aws_access_key_id").map(String::as_str), Some("B"));
        assert_eq!(o.get("region").map(String::as_str), Some("eu-west-1"));
        assert!(section(t, "missing").is_empty());
    }
}
