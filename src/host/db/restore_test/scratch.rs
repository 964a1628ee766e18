//! The per-engine part of the restore drill: where the scratch database lives, how it is
//! created, restored into, asked for a check's value, and dropped.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::{to_json, RestoreTestOptions};
use crate::ctx::Ctx;
use crate::error::{HostError, HostResult};
use crate::host::db::options::RestoreOptions;
use crate::host::db::url::{Engine, ServerUrl};
use crate::host::db::{mongo, mysql, postgres, sqlite, Db};

/// Where the scratch database lives. Dropped when it goes out of scope, on the runtime, without
/// racing the run's cancellation token (which may already have fired).
enum Place {
    /// A database on the PostgreSQL or MySQL/MariaDB server of the URL.
    Server { engine: Engine, server: ServerUrl },
    /// A file in a private temporary folder (SQLite).
    File { dir: tempfile::TempDir },
    /// A database on the MongoDB deployment of the URL (created by the restore itself).
    Mongo {
        url: String,
        timeout: Option<Duration>,
    },
}

pub(super) struct Scratch {
    ctx: Ctx,
    name: String,
    place: Place,
    /// False until something exists that must be dropped.
    pub(super) live: bool,
    /// The container whose own tools restore into the scratch database.
    container: Option<crate::host::db::backend::ContainerTarget>,
}

impl Scratch {
    /// Create the scratch database (in a dry run: only prove the server is reachable).
    pub(super) fn create(
        ctx: &Ctx,
        db: &Db,
        name: &str,
        o: &RestoreTestOptions,
    ) -> HostResult<Scratch> {
        let dry = ctx.dry_run;
        let (engine, url) = (db.engine, db.url.as_str());
        let place = match (engine, &db.server) {
            (Engine::Postgres | Engine::Mysql, Some(server)) => {
                let server = server.clone();
                let (s, n) = (server.clone(), name.to_string());
                ctx.block_on(async move {
                    if engine == Engine::Postgres {
                        let admin = postgres::admin_connect(&s).await?;
                        if dry {
                            return Ok(());
                        }
                        postgres::create_database(&admin, &n).await
                    } else if dry {
                        mysql::database_exists(&s, "mysql").await.map(|_| ())
                    } else {
                        mysql::create_database(&s, &n).await
                    }
                })?;
                Place::Server { engine, server }
            }
            (Engine::Sqlite, _) => Place::File {
                dir: tempfile::Builder::new()
                    .prefix("mtn-restore-test-")
                    .tempdir()
                    .map_err(|e| HostError::io("creating a scratch folder", &e))?,
            },
            (Engine::Mongo, _) => {
                let scratch_url = mongo::conn::with_database(url, name)?;
                let n = name.to_string();
                let (base, exists) = ctx.block_on(async move {
                    let c = mongo::conn::connect(url, o.timeout).await?;
                    let names = c
                        .client
                        .list_database_names()
                        .await
                        .map_err(|e| mongo::conn::map_err(e, "listing databases", &c.shown))?;
                    Ok((c.db.name().to_string(), names.contains(&n)))
                })?;
                if base == name {
                    return Err(HostError::invalid(format!(
                        "the scratch database must differ from {base}, the URL's database"
                    )));
                }
                if exists {
                    return Err(HostError::refused(format!(
                        "scratch database {name} already exists; refusing to restore into (and then drop) it"
                    )));
                }
                Place::Mongo {
                    url: scratch_url,
                    timeout: o.timeout,
                }
            }
            (_, None) => return Err(HostError::other("no server URL")),
        };
        let scratch = Scratch {
            ctx: ctx.clone(),
            name: name.to_string(),
            place,
            live: !dry,
            container: db.container.clone(),
        };
        crate::redact::register_url(&scratch.url());
        Ok(scratch)
    }

    pub(super) fn url(&self) -> String {
        match &self.place {
            Place::Server { server, .. } => server.with_database(&self.name).full(),
            Place::File { dir } => format!("sqlite://{}", dir.path().join(&self.name).display()),
            Place::Mongo { url, .. } => url.clone(),
        }
    }

    /// Restore `dump` into the scratch database; returns the engine's restore report.
    pub(super) async fn restore(&self, dump: &Path, o: &RestoreTestOptions) -> HostResult<Value> {
        let ctx = &self.ctx;
        let url = self.url();
        let sql_opts = RestoreOptions {
            create: true,
            clean: false,
            jobs: o.jobs,
            no_owner: o.no_owner,
        };
        let report = match &self.place {
            Place::Server {
                engine: Engine::Postgres,
                ..
            } => to_json(
                &postgres::restore(ctx, dump, &url, sql_opts, self.container.as_ref()).await?,
            ),
            Place::Server { .. } => {
                to_json(&mysql::restore(ctx, dump, &url, sql_opts, self.container.as_ref()).await?)
            }
            Place::File { .. } if ctx.dry_run => Value::Null,
            Place::File { .. } => {
                // Straight into the private scratch file (not through restore_db's policy
                // check: the scratch folder is mtn's own, not a user path).
                let started = std::time::Instant::now();
                let target = crate::host::db::url::sqlite_path(&url)?;
                sqlite::restore_into(ctx, dump, &target)?;
                to_json(&crate::host::db::options::RestoreReport::new(
                    &target.display().to_string(),
                    "sqlite",
                    dump,
                    started,
                    false,
                ))
            }
            Place::Mongo { timeout, .. } => {
                let mopts = mongo::restore::RestoreOptions {
                    collections: o.collections.clone(),
                    exclude_collections: o.exclude_collections.clone(),
                    from_db: o.from_db.clone(),
                    timeout: *timeout,
                    ..Default::default()
                };
                let dump = dump.to_string_lossy();
                to_json(&mongo::restore::restore_async(ctx, &dump, &url, mopts).await?)
            }
        };
        Ok(report)
    }

    /// The value a check names: SQL → the first column of the first row; MongoDB → the number
    /// of documents in the collection.
    pub(super) async fn evaluate(&self, check: &str) -> HostResult<Value> {
        let url = self.url();
        match &self.place {
            Place::Mongo { .. } => Ok(Value::from(
                mongo::ops::count(&url, check, Default::default()).await?,
            )),
            _ => Ok(crate::host::db::query(&self.ctx, &url, check, &[])
                .await?
                .first()
                .and_then(|r| r.values().next().cloned())
                .unwrap_or(Value::Null)),
        }
    }

    pub(super) fn drop_now(&mut self) -> HostResult<()> {
        if !self.live {
            return Ok(());
        }
        self.live = false;
        let name = self.name.clone();
        let fut = async {
            match &self.place {
                Place::File { .. } => Ok(()),
                Place::Server {
                    engine: Engine::Postgres,
                    server,
                } => {
                    let admin = postgres::admin_connect(server).await?;
                    postgres::drop_database(&admin, &name).await
                }
                Place::Server { server, .. } => mysql::drop_database(server, &name).await,
                Place::Mongo { url, timeout } => {
                    let c = mongo::conn::connect(url, *timeout).await?;
                    c.db.drop().await.map_err(|e| {
                        mongo::conn::map_err(e, "dropping the scratch database", &c.shown)
                    })
                }
            }
        };
        let res = match &self.place {
            // Removing the folder now (not when the TempDir goes) to see the error.
            Place::File { dir } => std::fs::remove_dir_all(dir.path())
                .map_err(|e| HostError::io("removing the scratch SQLite database", &e)),
            _ => self.ctx.handle.block_on(async {
                tokio::time::timeout(Duration::from_secs(60), fut)
                    .await
                    .unwrap_or_else(|_| {
                        Err(HostError::network(
                            "timed out dropping the scratch database",
                        ))
                    })
            }),
        };
        match &res {
            Ok(()) => {
                tracing::info!(target: "mtn::db", database = %self.name, "scratch database dropped")
            }
            Err(e) => {
                tracing::error!(target: "mtn::db", database = %self.name, error = %crate::redact::redact(&e.message), "could not drop the scratch database")
            }
        }
        res
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self.drop_now();
    }
}
