//! Making a restore's target database ready, the same for PostgreSQL and MySQL/MariaDB: created
//! when missing and `create: true`, refused when it holds anything unless `clean: true` (then
//! dropped and recreated); a dry run only looks. Each engine says how to look and change.

use super::options::RestoreOptions;
use super::url::ServerUrl;
use crate::error::{HostError, HostResult};

/// What an engine provides for the target database (the one `url` names).
pub(super) trait TargetDb {
    /// What [`TargetDb::objects`] counts, as the refusal says it ("tables").
    const OBJECTS: &'static str;
    async fn exists(&mut self) -> HostResult<bool>;
    /// The user's objects in the database now.
    async fn objects(&mut self) -> HostResult<i64>;
    async fn create(&mut self) -> HostResult<()>;
    async fn drop(&mut self) -> HostResult<()>;
}

pub(super) async fn prepare<T: TargetDb>(
    url: &ServerUrl,
    opts: &RestoreOptions,
    dry_run: bool,
    db: &mut T,
) -> HostResult<()> {
    if !db.exists().await? {
        if !opts.create {
            return Err(HostError::not_found(format!(
                "database {:?} does not exist on {} (pass create: true to create it)",
                url.database,
                url.endpoint()
            )));
        }
        if !dry_run {
            db.create().await?;
        }
        return Ok(());
    }
    let n = db.objects().await?;
    if n > 0 {
        if !opts.clean {
            return Err(HostError::refused(format!(
                "database {:?} on {} is not empty ({n} {}); pass clean: true to drop and recreate it",
                url.database,
                url.endpoint(),
                T::OBJECTS
            )));
        }
        if !dry_run {
            db.drop().await?;
            db.create().await?;
        }
    }
    Ok(())
}
