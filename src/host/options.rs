//! Which keys each host function's option map accepts, for the static check.
//!
//! The keys are read from the serde structs that decode the maps at run time ([`fields`] asks
//! the derived `Deserialize` for its field list), so the check and the run cannot disagree.
//! This file only says which struct decodes which parameter; a unit test (src/engine/tests.rs)
//! fails when a host function gains an option map that is not listed here.

use serde::de::{self, DeserializeOwned, Visitor};

/// The field names (with renames and aliases) a `#[derive(Deserialize)]` struct accepts, or
/// `None` for a type that does not decode as a plain struct (flattened, untagged, a map).
pub fn fields<T: DeserializeOwned>() -> Option<&'static [&'static str]> {
    match T::deserialize(Probe) {
        Err(ProbeError::Fields(f)) => Some(f),
        _ => None,
    }
}

/// A deserializer that answers nothing and records the field list of `deserialize_struct`.
struct Probe;

#[derive(Debug)]
enum ProbeError {
    Fields(&'static [&'static str]),
    Other,
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe")
    }
}
impl std::error::Error for ProbeError {}
impl de::Error for ProbeError {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        ProbeError::Other
    }
}

impl<'de> de::Deserializer<'de> for Probe {
    type Error = ProbeError;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Other)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError::Fields(fields))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The message for an unknown option key, the same at check time and at run time:
/// "backup::run: unknown option `kep` (did you mean `keep`?); allowed options: a, b".
pub fn unknown_option(function: &str, bad: &str, allowed: &[&str]) -> String {
    format!("{function}: {}", unknown_option_text(bad, allowed))
}

/// The same without the function name, for a host function's own options: the binding wrapper
/// names the function (src/host/binding.rs).
pub fn unknown_option_text(bad: &str, allowed: &[&str]) -> String {
    let hint = closest(bad, allowed)
        .map(|a| format!(" (did you mean `{a}`?)"))
        .unwrap_or_default();
    let allowed = if allowed.is_empty() {
        "none".to_string()
    } else {
        allowed.join(", ")
    };
    format!("unknown option `{bad}`{hint}; allowed options: {allowed}")
}

/// The allowed key most like `bad`, if one is close enough to be a likely typo.
pub fn closest<'a>(bad: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (strsim::jaro_winkler(bad, a), *a))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a)
}

type Fields = fn() -> Option<&'static [&'static str]>;

/// Keys removed from the map before decoding (closures, documents), so not in the struct.
const NO_EXTRA: &[&str] = &[];

/// The keys accepted by parameter `param` of host function `function`, or `None` when the map
/// is free-form (a query filter, a command, a checks map) or the function is not a host function.
/// Every database function also takes `password_file` (taken out of the map by
/// `host::db::backend::take_password_file` before the function's own struct decodes the rest).
const DB_PASSWORD_FILE: &str = "password_file";

pub fn allowed_keys(function: &str, param: &str) -> Option<Vec<&'static str>> {
    use crate::host::{
        audit, check, compress, container, db, exec, fs, notify, redis, rotate, state, storage,
    };
    let (structs, extra): (&[Fields], &[&str]) = match (function, param) {
        ("scan_secrets", "opts") => (&[fields::<audit::ScanOptions>], NO_EXTRA),
        ("http_check", "opts") => (&[fields::<check::http::CheckOptions>], NO_EXTRA),
        ("http_check_all", "opts") => (&[fields::<check::http::CheckOptions>], &["concurrency"]),
        ("http_request", "opts") => (&[fields::<check::http::RequestOptions>], NO_EXTRA),
        ("tls_expiry", "opts") => (&[fields::<check::tls::TlsOptions>], NO_EXTRA),
        ("compress", "opts") => (&[fields::<compress::CompressOpts>], NO_EXTRA),
        ("decompress", "opts") => (&[fields::<compress::DecompressOpts>], NO_EXTRA),
        ("retry", "options") => (&[fields::<crate::host::core::RetryOptions>], NO_EXTRA),
        // One name for every engine: the keys of the SQL and the MongoDB structs together.
        ("dump_db", "opts") => (
            &[
                fields::<db::options::DumpOptions>,
                fields::<db::mongo::dump::DumpOptions>,
            ],
            &["query", DB_PASSWORD_FILE],
        ),
        ("restore_db", "opts") => (
            &[
                fields::<db::options::RestoreOptions>,
                fields::<db::mongo::restore::RestoreOptions>,
            ],
            &[DB_PASSWORD_FILE],
        ),
        ("restore_test", "opts") => (
            &[fields::<db::restore_test::RestoreTestOptions>],
            &[DB_PASSWORD_FILE],
        ),
        ("vacuum", "opts") => (&[fields::<db::options::VacuumOptions>], &[DB_PASSWORD_FILE]),
        ("db_stats", "opts") => (&[fields::<db::options::StatsOptions>], &[DB_PASSWORD_FILE]),
        ("delete_rows_older_than", "opts") => {
            (&[fields::<db::options::DeleteOptions>], &[DB_PASSWORD_FILE])
        }
        ("export_table", "opts") => (&[fields::<db::options::ExportOptions>], &[DB_PASSWORD_FILE]),
        ("mongo_find", "options") => (
            &[fields::<db::mongo::ops::FindOptions>],
            &["sort", "projection"],
        ),
        ("exec", "opts") => (&[fields::<exec::ExecOptions>], NO_EXTRA),
        ("containers", "opts") => (&[fields::<container::list::ListOptions>], NO_EXTRA),
        ("container_logs", "opts") => (&[fields::<container::logs::LogsOptions>], NO_EXTRA),
        ("restart_container", "opts") => {
            (&[fields::<container::restart::RestartOptions>], NO_EXTRA)
        }
        ("container_exec", "opts") => {
            (&[fields::<container::exec::ContainerExecOptions>], NO_EXTRA)
        }
        ("redis_ping" | "redis_info", "opts") => (&[fields::<redis::RedisOptions>], NO_EXTRA),
        ("delete_older_than", "opts") => (&[fields::<fs::retention::DeleteOpts>], NO_EXTRA),
        ("list", "opts") => (&[fields::<fs::ops::ListOpts>], NO_EXTRA),
        ("write_file", "opts") => (&[fields::<fs::ops::WriteOpts>], NO_EXTRA),
        ("remove_file", "opts") => (&[fields::<fs::ops::RemoveOpts>], NO_EXTRA),
        ("copy", "opts") => (&[fields::<fs::ops::CopyOpts>], NO_EXTRA),
        ("sync_dir", "opts") => (&[fields::<fs::sync::SyncOpts>], NO_EXTRA),
        ("notify", "opts") => (&[fields::<notify::NotifyOptions>], NO_EXTRA),
        ("monitor", "opts") => (&[fields::<crate::ctx::monitor::MonitorOptions>], NO_EXTRA),
        ("rotate", "opts") => (&[fields::<rotate::RotateOpts>], &["postrotate"]),
        ("track", "opts") => (&[fields::<state::TrackOptions>], NO_EXTRA),
        ("upload", "opts") => (
            &[
                fields::<storage::upload::UploadOptions>,
                fields::<storage::target::ConnOptions>,
            ],
            NO_EXTRA,
        ),
        ("download", "opts") => (
            &[
                fields::<storage::download::DownloadOptions>,
                fields::<storage::target::ConnOptions>,
            ],
            NO_EXTRA,
        ),
        ("list_remote", "opts") => (
            &[
                fields::<storage::remote::ListOptions>,
                fields::<storage::target::ConnOptions>,
            ],
            NO_EXTRA,
        ),
        ("newest", "opts") => (
            &[
                fields::<storage::newest::NewestOptions>,
                fields::<storage::target::ConnOptions>,
            ],
            NO_EXTRA,
        ),
        ("delete_remote", "opts") => (&[fields::<storage::target::ConnOptions>], NO_EXTRA),
        ("snapshot_dir", "opts") => (
            &[
                fields::<storage::restic::snapshot::SnapshotOptions>,
                fields::<storage::restic::run::RepoOptions>,
            ],
            &["policy"],
        ),
        ("restore_snapshot", "opts") => (
            &[
                fields::<storage::restic::restore::RestoreOptions>,
                fields::<storage::restic::run::RepoOptions>,
            ],
            NO_EXTRA,
        ),
        ("retention", "policy") => (&[fields::<storage::retention::Policy>], NO_EXTRA),
        ("retention", "opts") => (
            &[
                fields::<storage::remote::RetentionOptions>,
                fields::<storage::target::ConnOptions>,
            ],
            NO_EXTRA,
        ),
        _ => return None,
    };
    // In the structs' own order (as the run-time message lists them), then the extra keys.
    let mut keys: Vec<&'static str> = Vec::new();
    for f in structs {
        // A struct that cannot be probed is not checked statically (the run still checks it).
        keys.extend(f()?.iter().copied());
    }
    keys.extend(extra.iter().copied());
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(*k));
    Some(keys)
}

/// The keys a map held by option `key` accepts, for options that are maps themselves
/// (snapshot_dir's `policy` is retention's policy map).
pub fn nested_keys(function: &str, param: &str, key: &str) -> Option<Vec<&'static str>> {
    match (function, param, key) {
        ("snapshot_dir", "opts", "policy") => {
            fields::<crate::host::storage::retention::Policy>().map(|f| f.to_vec())
        }
        _ => None,
    }
}

/// Maps not checked statically: their keys are data (a query filter, a command), or they are
/// decoded by a struct local to the binding (still checked at run time).
pub const FREE_FORM: &[(&str, &str)] = &[
    ("mongo_count", "filter"),
    ("mongo_find", "filter"),
    ("mongo_delete_many", "filter"),
    ("mongo_command", "command"),
    ("mongo_delete_many", "options"),
    ("mongo_compact", "options"),
    ("check_options", "opts"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        keep: u32,
        #[serde(rename = "to")]
        target: String,
    }

    #[test]
    fn fields_come_from_the_struct() {
        assert_eq!(fields::<Sample>(), Some(&["keep", "to"][..]));
        assert_eq!(fields::<std::collections::BTreeMap<String, u32>>(), None);
    }

    #[test]
    fn unknown_option_names_closest_and_allowed() {
        assert_eq!(
            unknown_option("backup::run", "kep", &["dir", "keep"]),
            "backup::run: unknown option `kep` (did you mean `keep`?); allowed options: dir, keep"
        );
    }
}
