//! Database URLs: which engine a URL names, and its parts without leaking the password.

use std::path::PathBuf;

use crate::error::{HostError, HostResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mysql,
    Sqlite,
    Mongo,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::Mysql => "MySQL/MariaDB",
            Engine::Sqlite => "SQLite",
            Engine::Mongo => "MongoDB",
        }
    }

    pub fn of(url: &str) -> HostResult<Engine> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres") | Some("postgresql") => Ok(Engine::Postgres),
            Some("mysql") | Some("mariadb") => Ok(Engine::Mysql),
            Some("sqlite") | Some("sqlite3") => Ok(Engine::Sqlite),
            Some("mongodb") | Some("mongodb+srv") => Ok(Engine::Mongo),
            _ => Err(HostError::invalid(format!(
                "unsupported database URL {:?}: use postgres://, postgresql://, mysql://, mariadb://, sqlite://path, mongodb:// or a libpq keyword string (host=... dbname=...)",
                mask_keyword_password(&crate::redact::redact(url))
            ))),
        }
    }
}

/// A server URL (PostgreSQL or MySQL) split into what the tools need.
#[derive(Debug, Clone)]
pub struct ServerUrl {
    pub url: url::Url,
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: String,
}

impl ServerUrl {
    pub fn parse(raw: &str) -> HostResult<ServerUrl> {
        crate::redact::register_url(raw);
        let url = url::Url::parse(raw).map_err(|e| {
            HostError::invalid(format!(
                "invalid database URL {:?}: {e}",
                crate::redact::redact(raw)
            ))
        })?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|d| d.into_owned())
                .map_err(|_| {
                    HostError::invalid("database URL: user or password is not valid UTF-8")
                })
        };
        let password = match url.password() {
            Some(p) => {
                let p = decode(p)?;
                crate::redact::register(&p);
                Some(p)
            }
            None => None,
        };
        let user = if url.username().is_empty() {
            None
        } else {
            Some(decode(url.username())?)
        };
        let database = decode(url.path().trim_start_matches('/'))?;
        Ok(ServerUrl {
            host: url.host_str().unwrap_or("localhost").to_string(),
            port: url.port(),
            user,
            password,
            database,
            url,
        })
    }

    /// The URL with another database name (scratch databases, maintenance connections).
    pub fn with_database(&self, db: &str) -> ServerUrl {
        let mut s = self.clone();
        s.url.set_path(&format!("/{db}"));
        s.database = db.to_string();
        s
    }

    /// Fill in a password found outside the URL (see `password.rs`).
    pub fn set_password(&mut self, password: &str) {
        crate::redact::register(password);
        let _ = self.url.set_password(Some(password));
        self.password = Some(password.to_string());
        crate::redact::register_url(self.url.as_str());
    }

    /// Fill in the user the engine's tools would use when the URL names none.
    pub fn set_user(&mut self, user: &str) {
        let _ = self.url.set_username(user);
        self.user = Some(user.to_string());
    }

    /// The URL as a string, password included (only for our own connections, never printed).
    pub fn full(&self) -> String {
        self.url.to_string()
    }

    /// The URL without its password: safe on a command line and in logs.
    pub fn without_password(&self) -> String {
        let mut u = self.url.clone();
        let _ = u.set_password(None);
        u.to_string()
    }

    pub fn query_param(&self, key: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// Host and port for messages.
    pub fn endpoint(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Mask the value of every `password=` keyword (libpq keyword/value strings, ODBC-style
/// strings) so a string mtn cannot parse never shows its secret in a message.
pub fn mask_keyword_password(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find("password") {
        let start = i + found;
        let mut j = start + "password".len();
        let rest = &text[j..];
        let eq = rest.len() - rest.trim_start().len();
        if !rest.trim_start().starts_with('=') {
            out.push_str(&text[i..j]);
            i = j;
            continue;
        }
        j += eq + 1;
        j += text[j..].len() - text[j..].trim_start().len();
        out.push_str(&text[i..j]);
        out.push_str("***");
        // The value: quoted ('...' with \' escapes) or up to the next space or `;`.
        let bytes = text.as_bytes();
        if bytes.get(j) == Some(&b'\'') {
            j += 1;
            while j < bytes.len() && bytes[j] != b'\'' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            j = (j + 1).min(bytes.len());
        } else {
            while j < bytes.len() && !bytes[j].is_ascii_whitespace() && bytes[j] != b';' {
                j += 1;
            }
        }
        i = j;
    }
    out.push_str(&text[i..]);
    out
}

/// libpq's keyword/value connection string (`host=h port=5432 user=u password='p w' dbname=d`)
/// as the equivalent postgres:// URL, so it goes the one URL path. `None` when `raw` is not
/// one. The password is registered as a secret before anything can fail.
pub fn libpq_keywords(raw: &str) -> Option<HostResult<String>> {
    let t = raw.trim_start();
    let key_len = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    if raw.contains("://") || key_len == 0 || !t[key_len..].trim_start().starts_with('=') {
        return None;
    }
    Some(parse_keywords(raw).and_then(|pairs| keywords_to_url(raw, &pairs)))
}

fn parse_keywords(raw: &str) -> HostResult<Vec<(String, String)>> {
    let shown = || mask_keyword_password(raw);
    let mut pairs = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if key.is_empty() || chars.next() != Some('=') {
            return Err(HostError::invalid(format!(
                "invalid connection string {:?}: expected keyword=value pairs",
                shown()
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(HostError::invalid(format!(
                            "invalid connection string {:?}: unterminated quoted value of {key}",
                            shown()
                        )))
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if key == "password" {
            crate::redact::register(&value);
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn keywords_to_url(raw: &str, pairs: &[(String, String)]) -> HostResult<String> {
    let mut url = url::Url::parse("postgres://localhost")
        .map_err(|e| HostError::other(format!("building a URL: {e}")))?;
    let mut query: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        let bad = |why: &str| {
            HostError::invalid(format!(
                "connection string {:?}: {k}: {why}",
                mask_keyword_password(raw)
            ))
        };
        match k.as_str() {
            "host" if v.starts_with('/') => query.push(("host".into(), v.clone())),
            "host" => url.set_host(Some(v)).map_err(|e| bad(&e.to_string()))?,
            "port" => {
                let p: u16 = v.parse().map_err(|_| bad("not a port number"))?;
                url.set_port(Some(p)).map_err(|_| bad("not a port number"))?;
            }
            "dbname" => url.set_path(&format!("/{}", v.replace('/', "%2F"))),
            "user" => url.set_username(v).map_err(|_| bad("cannot be used"))?,
            "password" => url.set_password(Some(v)).map_err(|_| bad("cannot be used"))?,
            "hostaddr" | "sslmode" | "sslrootcert" | "connect_timeout" | "application_name"
            | "options" | "keepalives" | "keepalives_idle" | "target_session_attrs"
            | "channel_binding" => query.push((k.clone(), v.clone())),
            _ => {
                return Err(bad(
                    "not a keyword mtn understands (use host, hostaddr, port, dbname, user, password, sslmode, sslrootcert, connect_timeout, application_name, options)",
                ))
            }
        }
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    let text = url.to_string();
    crate::redact::register_url(&text);
    Ok(text)
}

/// `sqlite://relative/path`, `sqlite:///absolute/path` or `sqlite:path` → the file path.
pub fn sqlite_path(raw: &str) -> HostResult<PathBuf> {
    let rest = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("sqlite3://"))
        .or_else(|| raw.strip_prefix("sqlite:"))
        .ok_or_else(|| HostError::invalid(format!("not a sqlite URL: {raw:?}")))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err(HostError::invalid(format!(
            "sqlite URL {raw:?} names no file: use sqlite://path/to/app.db or sqlite:///abs/path.db"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Quote an SQL identifier, `schema.table` as two parts. `quote` is `"` or `` ` ``.
pub fn quote_ident(name: &str, quote: char) -> String {
    name.split('.')
        .map(|part| {
            let doubled = part.replace(quote, &format!("{quote}{quote}"));
            format!("{quote}{doubled}{quote}")
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_and_parts() {
        assert_eq!(Engine::of("postgresql://x/y").unwrap(), Engine::Postgres);
        assert_eq!(Engine::of("mariadb://x/y").unwrap(), Engine::Mysql);
        assert_eq!(Engine::of("mongodb+srv://x/y").unwrap(), Engine::Mongo);
        assert!(Engine::of("redis://x").is_err());
        let u =
            ServerUrl::parse("postgres://bob:p%40ss@db.example:6543/app?sslmode=require").unwrap();
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.database, "app");
        assert_eq!(u.port, Some(6543));
        assert!(!u.without_password().contains("p%40ss"));
        assert_eq!(u.with_database("other").database, "other");
        assert_eq!(
            sqlite_path("sqlite://examples/app.db").unwrap(),
            PathBuf::from("examples/app.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert_eq!(quote_ident("public.my\"t", '"'), "\"public\".\"my\"\"t\"");
    }

    #[test]
    fn libpq_keyword_strings() {
        let u = libpq_keywords(
            "host=db.example port=6543 user=bob password='p w\\'x' dbname=app sslmode=require",
        )
        .unwrap()
        .unwrap();
        let s = ServerUrl::parse(&u).unwrap();
        assert_eq!(s.host, "db.example");
        assert_eq!(s.port, Some(6543));
        assert_eq!(s.user.as_deref(), Some("bob"));
        assert_eq!(s.password.as_deref(), Some("p w'x"));
        assert_eq!(s.database, "app");
        assert_eq!(s.query_param("sslmode").as_deref(), Some("require"));
        assert!(libpq_keywords("postgres://x/y").is_none());
        assert!(libpq_keywords("sqlite:app.db").is_none());
        let err = libpq_keywords("host=h password=Hidden-1 dbnme=d")
            .unwrap()
            .unwrap_err();
        assert!(
            err.message.contains("dbnme") && !err.message.contains("Hidden-1"),
            "{}",
            err.message
        );
    }

    #[test]
    fn masks_keyword_passwords() {
        assert_eq!(
            mask_keyword_password("host=h Password = 'a b' dbname=d"),
            "host=h Password = *** dbname=d"
        );
        assert_eq!(
            mask_keyword_password("Server=x;Password=abc;Db=y"),
            "Server=x;Password=***;Db=y"
        );
        assert_eq!(mask_keyword_password("no secrets here"), "no secrets here");
    }
}
