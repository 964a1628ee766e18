//! `--env-file FILE`: environment variables in systemd's EnvironmentFile format, so a crontab
//! line or a container command can name a 0600 file of secrets instead of spelling them out.
//!
//! Format (as systemd.exec(5) reads it): `NAME=value` per line; blank lines and lines starting
//! with `#` or `;` are ignored; a value in single quotes is literal, in double quotes `\"`, `\\`,
//! `\n` and `\t` are escapes; a backslash at the end of a line continues it; whitespace around an
//! unquoted value is dropped.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Parse the file into `(name, value)` pairs. Errors name the file and line.
pub fn parse(text: &str, path: &Path) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, raw)) = lines.next() {
        let at = |what: &str| format!("{}:{}: {what}", path.display(), i + 1);
        let mut line = raw.trim_start().to_string();
        // A trailing backslash joins the next line (outside quotes, as systemd does).
        while line.ends_with('\\') && !line.ends_with("\\\\") {
            line.pop();
            match lines.next() {
                Some((_, next)) => line.push_str(next),
                None => break,
            }
        }
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(at("expected NAME=value"));
        };
        let name = name.trim();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(at(&format!(
                "{name:?} is not a variable name (letters, digits and _, not starting with a digit)"
            )));
        }
        out.push((name.to_string(), unquote(value.trim()).map_err(|e| at(&e))?));
    }
    Ok(out)
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(q) = v.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        return Ok(v.to_string());
    };
    let mut out = String::new();
    let mut chars = v[1..].chars();
    loop {
        match chars.next() {
            None => return Err(format!("unterminated {q} quote")),
            Some(c) if c == q => break,
            Some('\\') if q == '"' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(c) => out.push(c),
                None => return Err("unterminated \" quote".into()),
            },
            Some(c) => out.push(c),
        }
    }
    if !chars.as_str().trim().is_empty() {
        return Err(format!("text after the closing {q} quote"));
    }
    Ok(out)
}

/// Read the file and set its variables in this process (before any thread starts). A file that
/// other users can read is allowed but warned about: it usually holds secrets.
pub fn load(path: &Path) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("--env-file {}: {e}", path.display()))?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--env-file {}: {e}", path.display()))?;
    let vars = parse(&text, path).map_err(|e| format!("--env-file {e}"))?;
    if meta.mode() & 0o004 != 0 {
        eprintln!(
            "warning: --env-file {} is readable by every user (chmod 600 it if it holds secrets)",
            path.display()
        );
    }
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_format() {
        let text = "# comment\n; also\n\nA=1\n  B = two words  \nC='lit $x \\n'\nD=\"q \\\"x\\\" \\n\"\nE=long\\\nline\nexport=ok\n";
        let v = parse(text, Path::new("f")).unwrap();
        let get = |k: &str| v.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("lit $x \\n"));
        assert_eq!(get("D"), Some("q \"x\" \n"));
        assert_eq!(get("E"), Some("longline"));
        assert_eq!(get("export"), Some("ok"));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse("A=1\nnot a var\n", Path::new("/etc/mtn/env")).unwrap_err();
        assert!(e.starts_with("/etc/mtn/env:2:"), "{e}");
        let e = parse("1X=1\n", Path::new("f")).unwrap_err();
        assert!(e.contains("not a variable name"), "{e}");
        let e = parse("A=\"open\n", Path::new("f")).unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
    }
}
