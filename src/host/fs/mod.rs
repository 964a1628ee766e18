//! File functions: retention (`delete_older_than`), listing and stats, disk usage, atomic
//! reads/writes/copies, one-way directory mirroring and permission audits.

pub mod dir;
pub mod ops;
pub mod retention;
pub mod sync;

use rhai::{Dynamic, Map};

use crate::engine::registry::Registrar;
use crate::host::binding::{call, opts, RhaiResult};

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
    let ctx = r.ctx.clone();
    r.add(
        "delete_older_than",
        &["dir: &str", "age: ?"],
        "Map",
        DOT,
        move |d: &str, age: Dynamic| -> RhaiResult {
            call(&ctx, "delete_older_than", || {
                retention::delete_older_than(
                    &ctx,
                    d,
                    crate::host::binding::age_arg(&age)?,
                    &Default::default(),
                )
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "delete_older_than",
        &["dir: &str", "age: ?", "opts: Map"],
        "Map",
        DOT,
        move |d: &str, age: Dynamic, o: Map| -> RhaiResult {
            call(&ctx, "delete_older_than", || {
                let o: retention::DeleteOpts = opts("delete_older_than", &o)?;
                retention::delete_older_than(&ctx, d, crate::host::binding::age_arg(&age)?, &o)
            })
        },
    );

    const LIST: &str = "Entries of a directory as maps `#{ path, name, kind, size, mtime, mode, uid, gid, target }`.\n\n\
Symlinks are listed, not followed. Options: `pattern` (glob), `recursive` (false), `dirs` (true: include \
directories), `sort` (\"name\", \"mtime\" oldest first, \"size\"), `reverse` (false).\n\n\
```rhai\nfor f in list(\".\", #{ pattern: \"*.rhai\", sort: \"mtime\" }) { log(`${f.name} ${f.size}`); }\n```";
    let ctx = r.ctx.clone();
    r.add(
        "list",
        &["dir: &str"],
        "Array",
        LIST,
        move |d: &str| -> RhaiResult {
            call(&ctx, "list", || ops::list(&ctx, d, &Default::default()))
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "list",
        &["dir: &str", "opts: Map"],
        "Array",
        LIST,
        move |d: &str, o: Map| -> RhaiResult {
            call(&ctx, "list", || ops::list(&ctx, d, &opts("list", &o)?))
        },
    );

    let ctx = r.ctx.clone();
    r.add("stat", &["path: &str"], "Map",
        "Facts about a path, not following a symlink: `#{ path, name, kind, size, mtime, mode, uid, gid, target }`.\n\n\
Fails with kind `not_found` when it does not exist (see `exists`).\n\n```rhai\nlet s = stat(\".\");\nlog(`${s.kind} ${s.mode}`);\n```",
        move |p: &str| -> RhaiResult { call(&ctx, "stat", || ops::stat(p)) });
    r.add("exists", &["path: &str"], "bool",
        "True when `path` exists (a dangling symlink counts: it is there).\n\n```rhai\nif !exists(\"./backups\") { log(\"no backups yet\"); }\n```",
        |p: &str| std::fs::symlink_metadata(p).is_ok());

    let ctx = r.ctx.clone();
    r.add("dir_size", &["dir: &str"], "Map",
        "Total size of a tree, not following symlinks: `#{ path, bytes, disk_bytes, files, dirs }` (`disk_bytes` is what `du` counts).\n\n\
```rhai\nlet s = dir_size(\".\");\nlog(`${s.files} files, ${s.bytes} bytes`);\n```",
        move |d: &str| -> RhaiResult { call(&ctx, "dir_size", || ops::dir_size(&ctx, d)) });

    let ctx = r.ctx.clone();
    r.add("disk_usage", &["path: &str"], "Map",
        "Usage of the file system holding `path`, as `df` shows it: `#{ path, total, used, free, percent, inodes_total, inodes_free, inodes_percent }`.\n\n\
`free` is what unprivileged users may still use (df's Avail); `percent` is used/(used+free) rounded up, like df.\n\n\
```rhai\nlet du = disk_usage(\".\");\nif du.percent > 90 { warn(`disk ${du.percent}% full`); }\n```",
        move |p: &str| -> RhaiResult { call(&ctx, "disk_usage", || ops::disk_usage(p)) });

    let ctx = r.ctx.clone();
    r.add(
        "read_file",
        &["path: &str"],
        "String",
        "The contents of a UTF-8 text file.\n\n```rhai\nlet text = read_file(\"mtn.toml\");\n```",
        move |p: &str| -> RhaiResult { call(&ctx, "read_file", || ops::read_file(&ctx, p)) },
    );

    const WRITE: &str = "Write text to a file atomically (temporary file, fsync, rename): readers see the old or the new content, never half.\n\n\
Honours the policy and dry-run. Options: `mode` (octal string like \"0600\"; default: keep an existing file's mode). \
Returns `#{ path, bytes, dry_run }`.\n\n```rhai\nwrite_file(\"./last-run.txt\", now().iso);\n```";
    let ctx = r.ctx.clone();
    r.add(
        "write_file",
        &["path: &str", "content: &str"],
        "Map",
        WRITE,
        move |p: &str, c: &str| -> RhaiResult {
            call(&ctx, "write_file", || {
                ops::write_file(&ctx, p, c.as_bytes(), &Default::default())
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "write_file",
        &["path: &str", "content: &str", "opts: Map"],
        "Map",
        WRITE,
        move |p: &str, c: &str, o: Map| -> RhaiResult {
            call(&ctx, "write_file", || {
                ops::write_file(&ctx, p, c.as_bytes(), &opts("write_file", &o)?)
            })
        },
    );

    const RM: &str = "Remove a file or a symlink (never the symlink's target, never a directory).\n\n\
Honours the policy and dry-run. Options: `missing_ok` (false). Returns `#{ path, removed, bytes_freed, dry_run }`.\n\n\
```rhai\nremove_file(\"./tmp.lock\", #{ missing_ok: true });\n```";
    let ctx = r.ctx.clone();
    r.add(
        "remove_file",
        &["path: &str"],
        "Map",
        RM,
        move |p: &str| -> RhaiResult {
            call(&ctx, "remove_file", || {
                ops::remove_file(&ctx, p, &Default::default())
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "remove_file",
        &["path: &str", "opts: Map"],
        "Map",
        RM,
        move |p: &str, o: Map| -> RhaiResult {
            call(&ctx, "remove_file", || {
                ops::remove_file(&ctx, p, &opts("remove_file", &o)?)
            })
        },
    );

    const CP: &str = "Copy a file atomically; into `dst/` when `dst` is a directory.\n\n\
Honours the policy and dry-run. Options: `overwrite` (true), `preserve` (true: keep mode and mtime). \
Returns `#{ from, to, bytes, dry_run }`.\n\n```rhai\ncopy(\"mtn.toml\", \"./mtn.toml.bak\");\n```";
    let ctx = r.ctx.clone();
    r.add(
        "copy",
        &["src: &str", "dst: &str"],
        "Map",
        CP,
        move |s: &str, d: &str| -> RhaiResult {
            call(&ctx, "copy", || ops::copy(&ctx, s, d, &Default::default()))
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "copy",
        &["src: &str", "dst: &str", "opts: Map"],
        "Map",
        CP,
        move |s: &str, d: &str, o: Map| -> RhaiResult {
            call(&ctx, "copy", || ops::copy(&ctx, s, d, &opts("copy", &o)?))
        },
    );

    const SYNC: &str = "Mirror the contents of `src` into `dst` like `rsync -a src/ dst/`.\n\n\
New or changed files (size or mtime differ) are copied via a temporary name; modes, mtimes and (as root) \
owners are preserved; symlinks are copied as symlinks, never followed. Options: `delete` (false: remove \
what is in `dst` but not in `src`). Returns `#{ src, dst, copied, bytes_copied, deleted, dirs_created, symlinks, unchanged, skipped, dry_run }`.\n\n\
```rhai\nlet r = sync_dir(\"./uploads\", \"./mirror\", #{ delete: true });\nlog(`${r.copied.len()} files copied`);\n```";
    let ctx = r.ctx.clone();
    r.add(
        "sync_dir",
        &["src: &str", "dst: &str"],
        "Map",
        SYNC,
        move |s: &str, d: &str| -> RhaiResult {
            call(&ctx, "sync_dir", || {
                sync::sync_dir(&ctx, s, d, &Default::default())
            })
        },
    );
    let ctx = r.ctx.clone();
    r.add(
        "sync_dir",
        &["src: &str", "dst: &str", "opts: Map"],
        "Map",
        SYNC,
        move |s: &str, d: &str, o: Map| -> RhaiResult {
            call(&ctx, "sync_dir", || {
                sync::sync_dir(&ctx, s, d, &opts("sync_dir", &o)?)
            })
        },
    );

    let ctx = r.ctx.clone();
    r.add("find_world_writable", &["dir: &str"], "Array",
        "Paths under `dir` (and `dir` itself) that any user may write, not following symlinks; sticky directories like /tmp are left out.\n\n\
```rhai\nlet bad = find_world_writable(\".\");\nif bad.len() > 0 { warn(`world-writable: ${bad}`); }\n```",
        move |d: &str| -> RhaiResult { call(&ctx, "find_world_writable", || ops::find_world_writable(&ctx, d)) });
    let ctx = r.ctx.clone();
    r.add("file_mode", &["path: &str"], "String",
        "Permission bits of a file in octal (\"0600\"), following a symlink to the file it protects.\n\n\
```rhai\nif exists(\".env\") && file_mode(\".env\") != \"0600\" { warn(\".env is readable by others\"); }\n```",
        move |p: &str| -> RhaiResult { call(&ctx, "file_mode", || ops::file_mode(p)) });
}
