//! `newest(location, #{ pattern })`: the newest backup directly in a folder or under a remote
//! prefix. Scripts used to find it three ways (list + sort by mtime, list_remote + a max loop,
//! a depth filter for sub-folders); this is the one way, for every storage backend.

use serde::{Deserialize, Serialize};

use super::remote::{self, ListOptions, RemoteObject};
use super::target::Target;
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NewestOptions {
    /// Glob over the file name (default "*").
    pub pattern: Option<String>,
}

/// Files that are never a backup: checksum sidecars, mtn's and other tools' temporary files,
/// hidden files.
fn is_backup_name(name: &str) -> bool {
    !(name.is_empty()
        || name.starts_with('.')
        || name.ends_with(".sha256")
        || name.ends_with(".tmp")
        || name.ends_with(".part"))
}

/// `list_remote`'s entry, plus the local path when the location is a folder on this machine
/// (what `restore_test` and `upload` take).
#[derive(Debug, Clone, Serialize)]
pub struct Newest {
    #[serde(flatten)]
    pub object: RemoteObject,
    pub path: Option<String>,
}

pub async fn newest(target: &Target, opts: &NewestOptions, ctx: &RunCtx) -> HostResult<Newest> {
    let pattern = opts.pattern.clone().unwrap_or_else(|| "*".to_string());
    let glob = globset::Glob::new(&pattern)
        .map_err(|e| HostError::invalid(format!("invalid pattern {pattern:?}: {e}")))?
        .compile_matcher();
    // The location names a folder: its objects, not a key prefix of its siblings.
    let mut folder = target.clone();
    if !folder.key.is_empty() && !folder.key.ends_with('/') {
        folder.key.push('/');
    }
    let objects = remote::list(&folder, &ListOptions::default(), ctx).await?;
    let best = objects
        .into_iter()
        .filter(|o| {
            let name = o.key.strip_prefix(folder.key.as_str()).unwrap_or(&o.key);
            // Directly in the folder: files in sub-folders are other things (a directory dump).
            !name.contains('/') && is_backup_name(name) && glob.is_match(name)
        })
        // RFC 3339 UTC strings of one format compare as times; the name breaks ties.
        .max_by(|a, b| (&a.modified, &a.key).cmp(&(&b.modified, &b.key)));
    let object = best.ok_or_else(|| {
        HostError::not_found(format!(
            "no backup matching {pattern:?} in {}",
            folder.url()
        ))
    })?;
    let path = folder
        .local_path(&object.key)
        .map(|p| p.display().to_string());
    Ok(Newest { object, path })
}

#[cfg(test)]
mod tests {
    use super::is_backup_name;

    #[test]
    fn sidecars_temporaries_and_hidden_files_are_not_backups() {
        assert!(is_backup_name("app-2026-11-29.sql.gz"));
        assert!(!is_backup_name("app-2026-11-29.sql.gz.sha256"));
        assert!(!is_backup_name(".app.sql.gz.mtn-1a2b.tmp"));
        assert!(!is_backup_name("x.tmp"));
        assert!(!is_backup_name(".hidden"));
    }
}
