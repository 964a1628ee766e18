//! One password convention for every database function: a URL without a password gets one the
//! way the engine's own tools would find it, plus mtn's `password_file` option and
//! `DB_PASSWORD` / `DB_PASSWORD_FILE`. The order (first hit wins, documented in
//! docs/databases.md):
//!
//! 1. the password in the URL;
//! 2. the `password_file` option of the call;
//! 3. `DB_PASSWORD`, then the file named by `DB_PASSWORD_FILE` (mtn's own, for every engine);
//! 4. the engine's own: PostgreSQL `PGPASSWORD`, then `PGPASSFILE` or `~/.pgpass` (the line that
//!    matches host, port, database and user); MySQL/MariaDB `MYSQL_PWD`, then `~/.my.cnf`
//!    `[client]` `password`.
//!
//! Where mtn looked is kept, so an authentication failure can say it ([`Lookup::hint`]).

use std::path::{Path, PathBuf};

use super::url::Engine;
use crate::error::{HostError, HostResult};

/// What the lookup found and where it looked.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    pub password: Option<String>,
    /// Where the password came from ("PGPASSWORD", "/home/u/.pgpass line 3", ...).
    pub source: Option<String>,
    /// Every place consulted, in order.
    pub looked: Vec<String>,
}

impl Lookup {
    /// A sentence for authentication errors: where the password came from, or where mtn looked.
    pub fn hint(&self) -> String {
        match &self.source {
            Some(s) => format!("the password came from {s}"),
            None => format!(
                "no password found; mtn looked in {}",
                self.looked.join(", ")
            ),
        }
    }
}

/// Who is connecting where: what a password file line is matched against.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub user: &'a str,
}

/// Resolve the password for a server URL that has none (`in_url` is the URL's own password).
pub fn resolve(
    engine: Engine,
    in_url: Option<&str>,
    password_file: Option<&Path>,
    target: &Target,
) -> HostResult<Lookup> {
    let mut l = Lookup::default();
    l.looked.push("the URL".into());
    if let Some(pw) = in_url.filter(|p| !p.is_empty()) {
        found(&mut l, pw.to_string(), "the URL".into());
        return Ok(l);
    }
    if let Some(f) = password_file {
        let place = format!("password_file {}", f.display());
        l.looked.push(place.clone());
        found(&mut l, read_secret_file(f, "password_file")?, place);
        return Ok(l);
    }
    l.looked.push("DB_PASSWORD".into());
    if let Some(pw) = env("DB_PASSWORD") {
        found(&mut l, pw, "DB_PASSWORD".into());
        return Ok(l);
    }
    l.looked.push("DB_PASSWORD_FILE".into());
    if let Some(f) = env("DB_PASSWORD_FILE").map(PathBuf::from) {
        let place = format!("DB_PASSWORD_FILE {}", f.display());
        found(&mut l, read_secret_file(&f, "DB_PASSWORD_FILE")?, place);
        return Ok(l);
    }
    match engine {
        Engine::Postgres => {
            l.looked.push("PGPASSWORD".into());
            if let Some(pw) = env("PGPASSWORD") {
                found(&mut l, pw, "PGPASSWORD".into());
                return Ok(l);
            }
            let file = env("PGPASSFILE")
                .map(PathBuf::from)
                .or_else(|| home().map(|h| h.join(".pgpass")));
            if let Some(file) = file {
                l.looked.push(file.display().to_string());
                if let Some((pw, line)) = pgpass(&file, target)? {
                    found(&mut l, pw, format!("{} line {line}", file.display()));
                }
            }
        }
        Engine::Mysql => {
            l.looked.push("MYSQL_PWD".into());
            if let Some(pw) = env("MYSQL_PWD") {
                found(&mut l, pw, "MYSQL_PWD".into());
                return Ok(l);
            }
            if let Some(file) = home().map(|h| h.join(".my.cnf")) {
                l.looked.push(format!("{} [client]", file.display()));
                if let Some(pw) = my_cnf(&file)? {
                    found(&mut l, pw, format!("{} [client]", file.display()));
                }
            }
        }
        Engine::Sqlite | Engine::Mongo => {}
    }
    Ok(l)
}

fn found(l: &mut Lookup, password: String, source: String) {
    crate::redact::register(&password);
    l.password = Some(password);
    l.source = Some(source);
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn home() -> Option<PathBuf> {
    env("HOME").map(PathBuf::from)
}

/// A file holding one secret; the trailing newline is not part of it.
fn read_secret_file(path: &Path, what: &str) -> HostResult<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        HostError::io(
            format!("reading the password file {} ({what})", path.display()),
            &e,
        )
    })?;
    let pw = text.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() {
        return Err(HostError::invalid(format!(
            "the password file {} ({what}) is empty",
            path.display()
        )));
    }
    Ok(pw)
}

/// A file that only its owner may read, as libpq demands of a password file; `None` when it
/// does not exist.
fn read_private(path: &Path) -> HostResult<Option<String>> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(HostError::io(format!("reading {}", path.display()), &e)),
    };
    if meta.mode() & 0o077 != 0 {
        // libpq ignores such a file with a warning; do the same, and say so.
        tracing::warn!(target: "mtn::db", file = %path.display(), "password file ignored: it is readable by group or others (chmod 0600 it)");
        return Ok(None);
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| HostError::io(format!("reading {}", path.display()), &e))
}

/// The first `hostname:port:database:username:password` line of a pgpass file that matches
/// (`*` matches anything, `\:` and `\\` are escapes); returns the password and the line number.
pub fn pgpass(path: &Path, t: &Target) -> HostResult<Option<(String, usize)>> {
    let Some(text) = read_private(path)? else {
        return Ok(None);
    };
    let port = t.port.to_string();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() < 5 {
            continue;
        }
        let host_ok = fields[0] == "*"
            || fields[0] == t.host
            || (fields[0] == "localhost" && (t.host.starts_with('/') || t.host.is_empty()));
        let ok = |f: &str, v: &str| f == "*" || f == v;
        if host_ok && ok(&fields[1], &port) && ok(&fields[2], t.database) && ok(&fields[3], t.user)
        {
            return Ok(Some((fields[4].clone(), i + 1)));
        }
    }
    Ok(None)
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            // The password is the last field: colons after the fifth are part of it.
            ':' if out.len() < 4 => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

/// `password` in the `[client]` group of a MySQL option file (quotes removed).
pub fn my_cnf(path: &Path) -> HostResult<Option<String>> {
    let Some(text) = read_private(path)? else {
        return Ok(None);
    };
    let mut in_client = false;
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(group) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_client = group.trim().eq_ignore_ascii_case("client");
            continue;
        }
        if !in_client {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim().replace('-', "_") == "password" {
            let v = v.trim();
            let unquoted = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                .unwrap_or(v);
            // The last setting wins, as in the tools.
            found = Some(unquoted.replace("\\\"", "\"").replace("\\\\", "\\"));
        }
    }
    Ok(found.filter(|p| !p.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private_file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        f
    }

    #[test]
    fn pgpass_matches_like_libpq() {
        let f = private_file(
            "# comment\nother:5432:*:*:nope\ndb.example:5432:app:bob:s3\\:cr\\\\et\n*:*:*:alice:a:b:c\n",
        );
        let t = |host, db, user| Target {
            host,
            port: 5432,
            database: db,
            user,
        };
        let got = pgpass(f.path(), &t("db.example", "app", "bob")).unwrap();
        assert_eq!(got, Some(("s3:cr\\et".into(), 3)));
        let got = pgpass(f.path(), &t("x", "y", "alice")).unwrap();
        assert_eq!(got, Some(("a:b:c".into(), 4)));
        assert_eq!(pgpass(f.path(), &t("x", "y", "carol")).unwrap(), None);
        // Group-readable files are ignored, as libpq does.
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(pgpass(f.path(), &t("x", "y", "alice")).unwrap(), None);
    }

    #[test]
    fn my_cnf_client_group() {
        let f = private_file(
            "[mysqld]\npassword=server\n[client]\nuser=bob\npassword = \"p w\"\n[mysql]\npassword=other\n",
        );
        assert_eq!(my_cnf(f.path()).unwrap(), Some("p w".into()));
        let f = private_file("[client]\nhost=x\n");
        assert_eq!(my_cnf(f.path()).unwrap(), None);
    }

    #[test]
    fn hint_names_the_places() {
        let l = Lookup {
            looked: vec!["the URL".into(), "PGPASSWORD".into()],
            ..Default::default()
        };
        assert_eq!(
            l.hint(),
            "no password found; mtn looked in the URL, PGPASSWORD"
        );
    }
}
