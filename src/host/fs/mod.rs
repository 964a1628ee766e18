//! File functions: retention (`delete_older_than`), listing and stats, disk usage, atomic
//! reads/writes/copies, one-way directory mirroring and permission audits.

pub mod dir;
pub mod ops;
pub mod retention;
pub mod sync;

use rhai::Dynamic;

use crate::host::binding::age_arg;
use crate::host::registry::Registrar;
use crate::host_fn;

pub fn register(r: &mut Registrar) {
    r.category("files");

    const DOT: &str = "Delete files in `dir` modified more than `age` ago (\"30d\", \"12h\", \"90m\").\n\n\
Age is exact: \"30d\" means more than 30×24 hours ago (find's `-mtime +30` rounds to whole days).\n\
Symlinks are never followed or deleted and the walk never leaves `dir`.\n\
Options: `pattern` (glob on the file name, or on the relative path when it contains `/`), \
`recursive` (false), `keep_at_least` (1: the newest N matching files survive whatever their age), \
`max_delete` (refuse, deleting nothing, when more would go), `remove_empty_dirs` (false; with `recursive`).\n\
Returns `#{ dir, deleted, bytes_freed, kept, removed_dirs, errors, dry_run }`. A file that cannot be \
deleted is reported, the rest are still deleted, then the call fails (kind `io`).\n\n\
```rhai\nlet r = delete_older_than(\"./backups\", \"30d\", #{ pattern: \"*.sql.gz\", keep_at_least: 7, max_delete: 100 });\nlog(`freed ${r.bytes_freed} bytes`);\n```";
    host_fn!(r, "delete_older_than", DOT, |ctx, dir: &str, age: Dynamic; opts: retention::DeleteOpts| -> "Map" {
        retention::delete_older_than(&ctx, dir, age_arg(&age)?, &opts)
    });

    const LIST: &str = "Entries of a directory as maps `#{ path, name, kind, size, mtime, mode, uid, gid, target }`.\n\n\
Symlinks are listed, not followed. Options: `pattern` (glob), `recursive` (false), `dirs` (true: include \
directories), `sort` (\"name\", \"mtime\" oldest first, \"size\"), `reverse` (false).\n\n\
```rhai\nfor f in list(\".\", #{ pattern: \"*.rhai\", sort: \"mtime\" }) { log(`${f.name} ${f.size}`); }\n```";
    host_fn!(r, "list", LIST, |ctx, dir: &str; opts: ops::ListOpts| -> "Array" {
        ops::list(&ctx, dir, &opts)
    });

    host_fn!(r, "stat", "Facts about a path, not following a symlink: `#{ path, name, kind, size, mtime, mode, uid, gid, target }`.\n\n\
    Fails with kind `not_found` when it does not exist (see `exists`).\n\n```rhai\nlet s = stat(\".\");\nlog(`${s.kind} ${s.mode}`);\n```", |ctx, path: &str| -> "Map" {
        ops::stat(path)
    });
    host_fn!(r, "exists", "True when `path` exists (a dangling symlink counts: it is there).\n\n```rhai\nif !exists(\"./backups\") { log(\"no backups yet\"); }\n```", |ctx, path: &str| -> "bool" {
        Ok(std::fs::symlink_metadata(path).is_ok())
    });
    host_fn!(r, "dir_size", "Total size of a tree, not following symlinks: `#{ path, bytes, disk_bytes, files, dirs }` (`disk_bytes` is what `du` counts).\n\n\
    ```rhai\nlet s = dir_size(\".\");\nlog(`${s.files} files, ${s.bytes} bytes`);\n```", |ctx, dir: &str| -> "Map" {
        ops::dir_size(&ctx, dir)
    });
    host_fn!(r, "disk_usage", "Usage of the file system holding `path`, as `df` shows it: `#{ path, total, used, free, percent, inodes_total, inodes_free, inodes_percent }`.\n\n\
    `free` is what unprivileged users may still use (df's Avail); `percent` is used/(used+free) rounded up, like df.\n\n\
    ```rhai\nlet du = disk_usage(\".\");\nif du.percent > 90 { warn(`disk ${du.percent}% full`); }\n```", |ctx, path: &str| -> "Map" {
        ops::disk_usage(path)
    });
    host_fn!(r, "read_file", "The contents of a UTF-8 text file.\n\n```rhai\nlet text = read_file(\"mtn.toml\");\n```", |ctx, path: &str| -> "String" {
        ops::read_file(&ctx, path)
    });

    const WRITE: &str = "Write text to a file atomically (temporary file, fsync, rename): readers see the old or the new content, never half.\n\n\
Honours the policy and dry-run. Options: `mode` (octal string like \"0600\"; default: keep an existing file's mode). \
Returns `#{ path, bytes, dry_run }`.\n\n```rhai\nwrite_file(\"./last-run.txt\", now().iso);\n```";
    host_fn!(r, "write_file", WRITE, |ctx, path: &str, content: &str; opts: ops::WriteOpts| -> "Map" {
        ops::write_file(&ctx, path, content.as_bytes(), &opts)
    });

    const RM: &str = "Remove a file or a symlink (never the symlink's target, never a directory).\n\n\
Honours the policy and dry-run. Options: `missing_ok` (false). Returns `#{ path, removed, bytes_freed, dry_run }`.\n\n\
```rhai\nremove_file(\"./tmp.lock\", #{ missing_ok: true });\n```";
    host_fn!(r, "remove_file", RM, |ctx, path: &str; opts: ops::RemoveOpts| -> "Map" {
        ops::remove_file(&ctx, path, &opts)
    });

    const CP: &str = "Copy a file atomically; into `dst/` when `dst` is a directory.\n\n\
Honours the policy and dry-run. Options: `overwrite` (true), `preserve` (true: keep mode and mtime). \
Returns `#{ from, to, bytes, dry_run }`.\n\n```rhai\ncopy(\"mtn.toml\", \"./mtn.toml.bak\");\n```";
    host_fn!(r, "copy", CP, |ctx, src: &str, dst: &str; opts: ops::CopyOpts| -> "Map" {
        ops::copy(&ctx, src, dst, &opts)
    });

    const SYNC: &str = "Mirror the contents of `src` into `dst` like `rsync -a src/ dst/`.\n\n\
New or changed files (size or mtime differ) are copied via a temporary name; modes, mtimes and (as root) \
owners are preserved; symlinks are copied as symlinks, never followed. Options: `delete` (false: remove \
what is in `dst` but not in `src`). Returns `#{ src, dst, copied, bytes_copied, deleted, dirs_created, symlinks, unchanged, skipped, dry_run }`.\n\n\
```rhai\nlet r = sync_dir(\"./uploads\", \"./mirror\", #{ delete: true });\nlog(`${r.copied.len()} files copied`);\n```";
    host_fn!(r, "sync_dir", SYNC, |ctx, src: &str, dst: &str; opts: sync::SyncOpts| -> "Map" {
        sync::sync_dir(&ctx, src, dst, &opts)
    });

    host_fn!(r, "find_world_writable", "Paths under `dir` (and `dir` itself) that any user may write, not following symlinks; sticky directories like /tmp are left out.\n\n\
    ```rhai\nlet bad = find_world_writable(\".\");\nif bad.len() > 0 { warn(`world-writable: ${bad}`); }\n```", |ctx, dir: &str| -> "Array" {
        ops::find_world_writable(&ctx, dir)
    });
    host_fn!(r, "file_mode", "Permission bits of a file in octal (\"0600\"), following a symlink to the file it protects.\n\n\
    ```rhai\nif exists(\".env\") && file_mode(\".env\") != \"0600\" { warn(\".env is readable by others\"); }\n```", |ctx, path: &str| -> "String" {
        ops::file_mode(path)
    });
}
