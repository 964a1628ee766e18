//! The one database dispatch: a URL becomes a [`Db`] once — the engine chosen from its scheme
//! (or a libpq keyword string), its secret registered with the redactor, a missing password
//! resolved by the one convention in `password.rs` — and the operations are its methods.
//! "Not supported for this engine" is answered here and nowhere else ([`Db::unsupported`]).

use std::path::Path;
use std::time::Duration;

use rhai::{Dynamic, Map};
use serde_json::Value;

use super::batches::{self, OlderThan};
use super::export_sink::ExportPlan;
use super::mysql::MyDelete;
use super::options::*;
use super::password::{self, Lookup, Target};
use super::postgres::PgDelete;
use super::sqlite::SqliteDelete;
use super::url::{self as dburl, Engine, ServerUrl};
use super::{mongo, mysql, postgres, sqlite};
use crate::ctx::Ctx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::binding::{opts, to_dynamic};
pub use crate::host::container::db::Target as ContainerTarget;

/// Rows of any SQL engine, column name → JSON value.
pub type Rows = Vec<serde_json::Map<String, Value>>;

/// A database named by a URL, ready to use.
pub struct Db {
    pub engine: Engine,
    /// The URL the engine code connects with: normalized, password filled in. Never printed.
    pub url: String,
    /// The server URL's parts (PostgreSQL and MySQL/MariaDB).
    pub server: Option<ServerUrl>,
    /// Where the password came from, or where mtn looked: for authentication errors.
    pub lookup: Lookup,
    /// The container the URL named (`postgres://user@container:NAME/db`): `url` then points at
    /// the container's address, and SQL dumps and restores run the container's own tools
    /// (MongoDB's are native: the address is all they need).
    pub container: Option<ContainerTarget>,
}

/// The `password_file` option every database function takes, removed from the map before the
/// function's own options are decoded.
pub fn take_password_file(map: &Map) -> HostResult<(Map, Option<String>)> {
    let mut rest = map.clone();
    match rest.remove("password_file") {
        None => Ok((rest, None)),
        Some(v) if v.is_unit() => Ok((rest, None)),
        Some(v) => match v.into_string() {
            Ok(s) => Ok((rest, Some(s))),
            Err(t) => Err(HostError::invalid(format!(
                "option `password_file` must be a path (a string), got {t}"
            ))),
        },
    }
}

impl Db {
    /// Choose the backend for `raw` and resolve its password (see `password.rs` for the order).
    pub fn open(raw: &str, password_file: Option<&str>) -> HostResult<Db> {
        // Register what is secret before anything can fail and print the URL.
        crate::redact::register_url(raw);
        let normalized = match dburl::libpq_keywords(raw) {
            Some(url) => url?,
            None => raw.to_string(),
        };
        let engine = Engine::of(&normalized)?;
        let file = password_file.map(Path::new);
        match engine {
            Engine::Postgres | Engine::Mysql => {
                let mut server = ServerUrl::parse(&normalized)?;
                if server.user.is_none() {
                    // The tools' default: the login name (PostgreSQL: PGUSER first).
                    let pguser = (engine == Engine::Postgres)
                        .then(|| std::env::var("PGUSER").ok())
                        .flatten();
                    if let Some(u) = pguser.or_else(|| std::env::var("USER").ok()) {
                        server.set_user(&u);
                    }
                }
                let default_port = if engine == Engine::Postgres {
                    5432
                } else {
                    3306
                };
                let lookup = password::resolve(
                    engine,
                    server.password.as_deref(),
                    file,
                    &Target {
                        host: &server.host,
                        port: server.port.unwrap_or(default_port),
                        database: &server.database,
                        user: server.user.as_deref().unwrap_or_default(),
                    },
                )?;
                if server.password.is_none() {
                    if let Some(pw) = &lookup.password {
                        server.set_password(pw);
                    }
                }
                Ok(Db {
                    engine,
                    url: server.full(),
                    server: Some(server),
                    lookup,
                    container: None,
                })
            }
            Engine::Mongo => {
                mongo::conn::register_secret(&normalized);
                let (url, lookup) = mongo_password(&normalized, file)?;
                Ok(Db {
                    engine,
                    url,
                    server: None,
                    lookup,
                    container: None,
                })
            }
            Engine::Sqlite => {
                if let Some(f) = password_file {
                    return Err(HostError::invalid(format!(
                        "password_file {f}: SQLite databases have no password"
                    )));
                }
                Ok(Db {
                    engine,
                    url: normalized,
                    server: None,
                    lookup: Lookup::default(),
                    container: None,
                })
            }
        }
    }

    /// The one answer to "this engine cannot do that", with what to use instead.
    pub fn unsupported(&self, function: &str) -> HostError {
        let instead = match (self.engine, function) {
            (Engine::Mongo, "db_query" | "db_exec") => {
                "MongoDB has no SQL; use the mongo_* functions"
            }
            (Engine::Mongo, "vacuum") => "for MongoDB use mongo_compact",
            (Engine::Mongo, "db_stats") => "for MongoDB use mongo_stats",
            (Engine::Mongo, "delete_rows_older_than") => {
                "for MongoDB use mongo_delete_many with a date filter"
            }
            (Engine::Mongo, "export_table") => "for MongoDB use dump_db with `collections`",
            _ => "",
        };
        let msg = format!("{function} is not supported for {}", self.engine.name());
        HostError::invalid(if instead.is_empty() {
            msg
        } else {
            format!("{msg}: {instead}")
        })
    }

    /// Authentication failures say where the password came from, or where mtn looked.
    pub fn explain(&self, e: HostError) -> HostError {
        if e.kind != ErrorKind::Auth || self.lookup.looked.is_empty() {
            return e;
        }
        let mut e = e;
        e.message = format!("{} ({})", e.message, self.lookup.hint());
        e
    }

    pub fn dump(&self, ctx: &Ctx, map: &Map) -> HostResult<Dynamic> {
        if self.engine == Engine::Mongo {
            return mongo::dump_db(ctx, &self.url, map);
        }
        let o: DumpOptions = opts(map)?;
        let inside = self.container.as_ref();
        to_dynamic(&match self.engine {
            Engine::Postgres => ctx.block_on(postgres::dump(ctx, &self.url, o, inside))?,
            Engine::Mysql => ctx.block_on(mysql::dump(ctx, &self.url, o, inside))?,
            _ => sqlite::dump(ctx, &self.url, o)?,
        })
    }

    pub fn restore(&self, ctx: &Ctx, dump: &str, map: &Map) -> HostResult<Dynamic> {
        if self.engine == Engine::Mongo {
            return mongo::restore_db(ctx, dump, &self.url, map);
        }
        let o: RestoreOptions = opts(map)?;
        let path = Path::new(dump);
        if !path.exists() {
            return Err(HostError::not_found(format!("dump {dump} does not exist")));
        }
        let inside = self.container.as_ref();
        to_dynamic(&match self.engine {
            Engine::Postgres => ctx.block_on(postgres::restore(ctx, path, &self.url, o, inside))?,
            Engine::Mysql => ctx.block_on(mysql::restore(ctx, path, &self.url, o, inside))?,
            _ => sqlite::restore(ctx, path, &self.url, o)?,
        })
    }

    pub fn query(&self, ctx: &Ctx, sql: &str, params: &[Value]) -> HostResult<Rows> {
        match self.engine {
            Engine::Mongo => Err(self.unsupported("db_query")),
            _ => ctx.block_on(query(ctx, &self.url, sql, params)),
        }
    }

    pub fn exec(&self, ctx: &Ctx, sql: &str, params: &[Value]) -> HostResult<u64> {
        match self.engine {
            Engine::Postgres => ctx.block_on(postgres::exec(&self.url, sql, params, ctx.dry_run)),
            Engine::Mysql => ctx.block_on(mysql::exec(&self.url, sql, params, ctx.dry_run)),
            Engine::Sqlite => sqlite::exec(ctx, &self.url, sql, params, ctx.dry_run),
            Engine::Mongo => Err(self.unsupported("db_exec")),
        }
    }

    pub fn vacuum(&self, ctx: &Ctx, o: VacuumOptions) -> HostResult<VacuumReport> {
        match self.engine {
            Engine::Postgres => ctx.block_on(postgres::vacuum(ctx, &self.url, o)),
            Engine::Mysql => ctx.block_on(mysql::vacuum(ctx, &self.url, o)),
            Engine::Sqlite => sqlite::vacuum(ctx, &self.url, o),
            Engine::Mongo => Err(self.unsupported("vacuum")),
        }
    }

    pub fn stats(&self, ctx: &Ctx, o: StatsOptions) -> HostResult<DbStats> {
        match self.engine {
            Engine::Postgres => ctx.block_on(postgres::stats(&self.url, o)),
            Engine::Mysql => ctx.block_on(mysql::stats(&self.url, o)),
            Engine::Sqlite => sqlite::stats(ctx, &self.url, o),
            Engine::Mongo => Err(self.unsupported("db_stats")),
        }
    }

    pub fn delete_older(
        &self,
        ctx: &Ctx,
        table: &str,
        column: &str,
        age: Duration,
        o: DeleteOptions,
    ) -> HostResult<DeleteReport> {
        let (url, rows) = (&self.url, OlderThan { table, column, age });
        ctx.block_on(async {
            match self.engine {
                Engine::Postgres => {
                    batches::run(ctx, &rows, &o, &mut PgDelete::open(url, &rows).await?).await
                }
                Engine::Mysql => {
                    batches::run(ctx, &rows, &o, &mut MyDelete::open(url, &rows).await?).await
                }
                Engine::Sqlite => {
                    batches::run(ctx, &rows, &o, &mut SqliteDelete::open(ctx, url, &rows)?).await
                }
                Engine::Mongo => Err(self.unsupported("delete_rows_older_than")),
            }
        })
    }

    pub fn export(
        &self,
        ctx: &Ctx,
        table: &str,
        to: &str,
        o: ExportOptions,
    ) -> HostResult<ExportReport> {
        if self.engine == Engine::Mongo {
            return Err(self.unsupported("export_table"));
        }
        let plan = ExportPlan::new(ctx, table, to, &o)?;
        match self.engine {
            Engine::Postgres => ctx.block_on(postgres::export(ctx, &self.url, plan)),
            Engine::Mysql => ctx.block_on(mysql::export(ctx, &self.url, plan)),
            _ => sqlite::export(ctx, &self.url, plan),
        }
    }
}

/// Rows of an SQL engine for a URL that needs no lookup (a scratch database's URL).
pub async fn query(ctx: &Ctx, url: &str, sql: &str, params: &[Value]) -> HostResult<Rows> {
    match Engine::of(url)? {
        Engine::Postgres => postgres::query(url, sql, params).await,
        Engine::Mysql => mysql::query(url, sql, params).await,
        Engine::Sqlite => sqlite::query(ctx, url, sql, params),
        Engine::Mongo => Err(HostError::invalid(
            "MongoDB has no SQL; use the mongo_* functions",
        )),
    }
}

/// A MongoDB URL with a user but no password gets one from `password_file`, `DB_PASSWORD` or
/// `DB_PASSWORD_FILE` (MongoDB's own tools have no password file). Seed lists (`h1,h2`) are
/// not valid for `url::Url`, so the user info is edited as text.
fn mongo_password(url: &str, file: Option<&Path>) -> HostResult<(String, Lookup)> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok((url.to_string(), Lookup::default()));
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, hosts)) = authority.rsplit_once('@') else {
        return Ok((url.to_string(), Lookup::default()));
    };
    let in_url = userinfo.split_once(':').map(|(_, p)| p);
    let target = Target {
        host: hosts,
        port: 27017,
        database: "",
        user: userinfo.split(':').next().unwrap_or_default(),
    };
    let lookup = password::resolve(Engine::Mongo, in_url, file, &target)?;
    let filled = match (&lookup.password, in_url) {
        (Some(pw), None) => {
            let encoded: String = url::form_urlencoded::byte_serialize(pw.as_bytes()).collect();
            crate::redact::register(&encoded);
            format!("{scheme}://{userinfo}:{encoded}@{hosts}{tail}")
        }
        _ => url.to_string(),
    };
    Ok((filled, lookup))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_is_answered_in_one_place() {
        let db = Db::open("mongodb://127.0.0.1/app", None).unwrap();
        let e = db.unsupported("vacuum");
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert_eq!(
            e.message,
            "vacuum is not supported for MongoDB: for MongoDB use mongo_compact"
        );
    }

    #[test]
    fn keyword_strings_become_postgres_urls() {
        let db = Db::open(
            "host=127.0.0.1 port=1 user=u password=Kw-Secret-9 dbname=d",
            None,
        )
        .unwrap();
        assert_eq!(db.engine, Engine::Postgres);
        assert_eq!(db.lookup.source.as_deref(), Some("the URL"));
        assert_eq!(crate::redact::redact("x Kw-Secret-9 y"), "x *** y");
    }

    #[test]
    fn sqlite_has_no_password() {
        assert!(Db::open("sqlite://a.db", Some("/x")).is_err());
    }
}
