//! Process-wide secret redaction.
//!
//! Every secret mtn learns (values returned by `secret()`, passwords inside URLs given to host
//! functions) is registered here, and every log line, error message and report passes through
//! [`redact`] before it leaves the process. It is global rather than per run because a secret
//! seen by one daemon job must not leak through another job's log either.

use std::sync::{OnceLock, RwLock};

const MASK: &str = "***";

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Remember a secret so that it is masked everywhere from now on.
/// Very short values are ignored: masking every "a" in the logs would hide more than it protects.
pub fn register(secret: &str) {
    if secret.len() < 3 {
        return;
    }
    let mut list = secrets().write().unwrap_or_else(|e| e.into_inner());
    if !list.iter().any(|s| s == secret) {
        list.push(secret.to_string());
        // Longest first, so a secret that contains another is masked whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
    // Also mask the percent-encoded form, as it appears inside URLs.
    let encoded = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
    if encoded != secret && !list.contains(&encoded) {
        list.push(encoded);
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Register the password of a URL (if it has one) and return the URL with it masked.
pub fn register_url(raw: &str) -> String {
    if let Ok(parsed) = url::Url::parse(raw) {
        if let Some(pw) = parsed.password() {
            register(pw);
            if let Ok(decoded) = urlencoding_decode(pw) {
                register(&decoded);
            }
        }
    }
    redact(raw)
}

fn urlencoding_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

/// Mask every registered secret in `text`, and the password part of any URL in it.
pub fn redact(text: &str) -> String {
    let list = secrets().read().unwrap_or_else(|e| e.into_inner());
    let mut out = std::borrow::Cow::Borrowed(text);
    for s in list.iter() {
        if out.contains(s.as_str()) {
            out = std::borrow::Cow::Owned(out.replace(s.as_str(), MASK));
        }
    }
    mask_url_passwords(&out)
}

/// `scheme://user:password@host` → `scheme://user:***@host`, for URLs whose password was never
/// registered (e.g. one that appears only inside a server's error message).
fn mask_url_passwords(text: &str) -> String {
    if !text.contains("://") {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(idx) = rest.find("://") {
        let (head, tail) = rest.split_at(idx + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or end of text.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_registered_and_url_passwords() {
        register("hunter2-secret");
        assert_eq!(redact("token=hunter2-secret!"), "token=***!");
        assert_eq!(
            redact("connect postgres://bob:pw@db:5432/app failed"),
            "connect postgres://bob:***@db:5432/app failed"
        );
        assert_eq!(redact("s3://bucket/key"), "s3://bucket/key");
        assert_eq!(redact("mailto user@host"), "mailto user@host");
        assert_eq!(
            redact("smtp://u:pw@host:25?to=a@b.c"),
            "smtp://u:***@host:25?to=a@b.c"
        );
    }

    #[test]
    fn registers_url_password() {
        let shown = register_url("mysql://root:s3cr%40t@localhost/db");
        assert!(!shown.contains("s3cr"));
        assert_eq!(
            redact("the password s3cr@t leaked"),
            "the password *** leaked"
        );
    }
}
