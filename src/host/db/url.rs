//! Database URLs: which engine a URL names, and its parts without leaking the password.

use std::path::PathBuf;

use crate::host::error::{HostError, HostResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    Mysql,
    Sqlite,
    Mongo,
}

impl Engine {
    pub fn of(url: &str) -> HostResult<Engine> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres") | Some("postgresql") => Ok(Engine::Postgres),
            Some("mysql") | Some("mariadb") => Ok(Engine::Mysql),
            Some("sqlite") | Some("sqlite3") => Ok(Engine::Sqlite),
            Some("mongodb") | Some("mongodb+srv") => Ok(Engine::Mongo),
            _ => Err(HostError::invalid(format!(
                "unsupported database URL {:?}: use postgres://, postgresql://, mysql://, mariadb://, sqlite://path or mongodb://",
                crate::redact::redact(url)
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
            percent_decode(s).map_err(|_| {
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

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
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
            sqlite_path("sqlite://example/app.db").unwrap(),
            PathBuf::from("example/app.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/a.db").unwrap(),
            PathBuf::from("/tmp/a.db")
        );
        assert_eq!(quote_ident("public.my\"t", '"'), "\"public\".\"my\"\"t\"");
    }
}
