//! `dump_db` for MongoDB: every collection streamed into mongodump's layout
//! (`<db>/<coll>.bson[.gz]` + `<coll>.metadata.json`), as one `.tar.gz` or a directory.
//!
//! Why ~550 lines: the layout is mongodump's contract (file names, metadata fields, the index
//! key order) and is kept in one place next to the streaming that produces it.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mongodb::bson::{doc, spec::BinarySubtype, Bson, Document, RawDocumentBuf};
use mongodb::Database;
use serde::{Deserialize, Serialize};

use super::archive::TarGz;
use super::conn::{connect, map_err};
use crate::atomic::{sync_dir, write_sha256_sidecar, AtomicFile, HashingWriter};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::binding::serde_duration;
use crate::host::codec::Codec;
use crate::host::compress::{default_threads, ParallelGzWriter, DEFAULT_CHUNK};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DumpOptions {
    /// Folder the dump goes into (default `backups`).
    pub to: Option<PathBuf>,
    /// File or folder name (default `<db>_<YYYY-mm-dd_HHMMSS>.tar.gz`, or without `.tar.gz`).
    pub name: Option<String>,
    /// `archive` (default, one `.tar.gz`) or `directory`.
    pub format: Option<String>,
    /// `none` (default: `<coll>.bson`) or `gzip` (`<coll>.bson.gz`, like `mongodump --gzip`).
    pub compress: Option<String>,
    pub level: Option<u32>,
    pub threads: Option<usize>,
    pub collections: Vec<String>,
    pub exclude_collections: Vec<String>,
    pub batch_size: Option<u32>,
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
    /// Taken out of the map before decoding (it is a BSON filter, not plain JSON).
    #[serde(skip)]
    pub query: Option<Document>,
}

#[derive(Debug, Serialize)]
pub struct DumpReport {
    pub path: String,
    pub bytes: u64,
    pub raw_bytes: u64,
    pub sha256: Option<String>,
    pub duration_ms: u64,
    pub documents: u64,
    pub collections: u64,
    pub dry_run: bool,
    pub database: String,
    pub format: String,
}

#[derive(Debug, Clone)]
pub struct CollInfo {
    pub name: String,
    pub kind: String,
    pub options: Document,
    pub uuid: Option<String>,
}

/// Collections of `db` as listCollections reports them (system collections left out).
pub async fn list_collections(db: &Database, shown: &str) -> HostResult<Vec<CollInfo>> {
    let what = format!("listing collections of {}", db.name());
    let mut cur = db
        .run_cursor_command(doc! { "listCollections": 1 })
        .await
        .map_err(|e| map_err(e, &what, shown))?;
    let mut out = Vec::new();
    while cur.advance().await.map_err(|e| map_err(e, &what, shown))? {
        let d: Document = cur
            .deserialize_current()
            .map_err(|e| map_err(e, &what, shown))?;
        let name = d.get_str("name").unwrap_or_default().to_string();
        if name.is_empty() || name.starts_with("system.") {
            continue;
        }
        let uuid = d
            .get_document("info")
            .ok()
            .and_then(|i| i.get("uuid"))
            .and_then(|u| match u {
                Bson::Binary(b) if b.subtype == BinarySubtype::Uuid => Some(hex::encode(&b.bytes)),
                _ => None,
            });
        out.push(CollInfo {
            name,
            kind: d.get_str("type").unwrap_or("collection").to_string(),
            options: d.get_document("options").cloned().unwrap_or_default(),
            uuid,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub async fn list_indexes(db: &Database, coll: &str, shown: &str) -> HostResult<Vec<Document>> {
    let what = format!("listing indexes of {}.{coll}", db.name());
    let mut cur = db
        .run_cursor_command(doc! { "listIndexes": coll })
        .await
        .map_err(|e| map_err(e, &what, shown))?;
    let mut out = Vec::new();
    while cur.advance().await.map_err(|e| map_err(e, &what, shown))? {
        out.push(
            cur.deserialize_current()
                .map_err(|e| map_err(e, &what, shown))?,
        );
    }
    Ok(out)
}

/// mongodump's `<coll>.metadata.json`: canonical Extended JSON, mongodump's field names and order.
pub fn metadata_json(info: &CollInfo, indexes: &[Document]) -> String {
    let mut m = serde_json::Map::new();
    m.insert(
        "options".into(),
        Bson::Document(info.options.clone()).into_canonical_extjson(),
    );
    m.insert(
        "indexes".into(),
        serde_json::Value::Array(
            indexes
                .iter()
                .map(|i| Bson::Document(i.clone()).into_canonical_extjson())
                .collect(),
        ),
    );
    if let Some(u) = &info.uuid {
        m.insert("uuid".into(), u.clone().into());
    }
    m.insert("collectionName".into(), info.name.clone().into());
    m.insert("type".into(), info.kind.clone().into());
    serde_json::Value::Object(m).to_string()
}

/// mongodump escapes characters that cannot appear in file names.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            '\\' => out.push_str("%5C"),
            '\0' => out.push_str("%00"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Archive,
    Directory,
}

/// Select collections by `collections` / `exclude_collections`; an unknown name is an error.
pub fn select<'a>(
    all: &'a [CollInfo],
    include: &[String],
    exclude: &[String],
    db: &str,
) -> HostResult<Vec<&'a CollInfo>> {
    for name in include.iter().chain(exclude) {
        if !all.iter().any(|c| &c.name == name) {
            let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
            return Err(HostError::not_found(format!(
                "collection {name:?} does not exist in {db} (collections: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )));
        }
    }
    Ok(all
        .iter()
        .filter(|c| include.is_empty() || include.contains(&c.name))
        .filter(|c| !exclude.contains(&c.name))
        .collect())
}

/// `compress` and `level` decoded: (gzip each .bson, the archive's zstd codec).
/// "gzip" compresses each .bson (mongodump --gzip); "zstd" compresses the whole archive as
/// .tar.zst instead of .tar.gz (mongorestore reads no zstd, so only the archive has it).
fn compression(compress: Option<&str>, level: Option<u32>) -> HostResult<(bool, Option<Codec>)> {
    let compress = compress.unwrap_or("none").trim().to_ascii_lowercase();
    match compress.as_str() {
        "none" | "" => Ok((false, None)),
        "gzip" | "gz" => Ok((true, None)),
        z if z.starts_with("zstd") => {
            let parsed = Codec::parse(z).map_err(|e| e.context("dump_db"))?;
            let level = match (parsed, level) {
                (_, Some(l)) => l as i32,
                (Some(Codec::Zstd(l)), None) if z.contains(':') => l,
                _ => ZSTD_ARCHIVE_DEFAULT,
            };
            let codec = Codec::new("zstd", Some(level as i64)).map_err(|e| e.context("dump_db"))?;
            Ok((false, Some(codec)))
        }
        other => Err(HostError::invalid(format!(
            "unknown compress {other:?} (use \"none\", \"gzip\", \"zstd\" or \"zstd:N\")"
        ))),
    }
}

/// The archive's zstd level when none is given: 1, not zstd's 3. The dump runs beside the cursor
/// scan it cannot outpace; on 2 cores, with the server on the same machine, level 3 spent more
/// than twice the compression CPU of level 1 for an archive 18% smaller (1 M documents: 10.4 vs
/// 12.7 MB) and held the dump to 0.73x of the scan (docs/benchmarks.md). "zstd:3" or `level`
/// still choose any level.
const ZSTD_ARCHIVE_DEFAULT: i32 = 1;

pub fn dump(ctx: &RunCtx, url: &str, opts: DumpOptions) -> HostResult<DumpReport> {
    ctx.block_on(dump_async(ctx, url, opts))
}

async fn dump_async(ctx: &RunCtx, url: &str, opts: DumpOptions) -> HostResult<DumpReport> {
    let started = Instant::now();
    let format = match opts.format.as_deref().unwrap_or("archive") {
        "archive" | "tar.gz" | "tgz" | "tar.zst" => Format::Archive,
        "directory" | "dir" => Format::Directory,
        other => {
            return Err(HostError::invalid(format!(
                "unknown format {other:?} (use \"archive\" or \"directory\")"
            )))
        }
    };
    let (gzip_files, zstd) = compression(opts.compress.as_deref(), opts.level)?;
    let level = if zstd.is_some() {
        6
    } else {
        opts.level.unwrap_or(6)
    };
    if level > 9 {
        return Err(HostError::invalid("level must be 0..9 for gzip"));
    }
    let codec = zstd.unwrap_or(Codec::Gzip(level));
    if zstd.is_some() && !matches!(format, Format::Archive) {
        return Err(HostError::invalid(
            "compress: \"zstd\" is for the archive format (.tar.zst); mongorestore reads no zstd .bson files, use \"gzip\" for a directory",
        ));
    }
    let threads = opts.threads.unwrap_or_else(default_threads).max(1);

    let conn = connect(url, opts.timeout).await?;
    let db_name = conn.db.name().to_string();
    let all = list_collections(&conn.db, &conn.shown).await?;
    let chosen = select(&all, &opts.collections, &opts.exclude_collections, &db_name)?;

    let stamp = chrono::Local::now().format("%Y-%m-%d_%H%M%S");
    let name = opts.name.clone().unwrap_or_else(|| match format {
        Format::Archive => format!("{db_name}_{stamp}.tar{}", codec.ext()),
        Format::Directory => format!("{db_name}_{stamp}"),
    });
    if name.is_empty() || name.contains('/') {
        return Err(HostError::invalid(format!(
            "name {name:?} must be a plain file name (put the folder in `to`)"
        )));
    }
    let to = opts.to.clone().unwrap_or_else(|| PathBuf::from("backups"));
    let dest = ctx.policy.check_write(&to.join(&name))?;
    if dest.exists() {
        return Err(HostError::invalid(format!(
            "{} already exists; a dump never overwrites another",
            dest.display()
        )));
    }
    let format_name = match format {
        Format::Archive => "archive",
        Format::Directory => "directory",
    };

    if ctx.dry_run {
        let mut documents = 0;
        for c in chosen.iter().filter(|c| c.kind != "view") {
            documents += conn
                .db
                .collection::<Document>(&c.name)
                .estimated_document_count()
                .await
                .map_err(|e| map_err(e, "counting documents", &conn.shown))?;
        }
        return Ok(DumpReport {
            path: dest.display().to_string(),
            bytes: 0,
            raw_bytes: 0,
            sha256: None,
            duration_ms: started.elapsed().as_millis() as u64,
            documents,
            collections: chosen.len() as u64,
            dry_run: true,
            database: db_name,
            format: format_name.into(),
        });
    }

    let parent = dest.parent().map(Path::to_path_buf).unwrap_or_default();
    crate::atomic::create_private_dirs(&parent)
        .map_err(|e| HostError::io(format!("creating {}", parent.display()), &e))?;

    let job = Job {
        db: &conn.db,
        shown: &conn.shown,
        db_name: &db_name,
        query: opts.query.clone().unwrap_or_default(),
        batch: opts.batch_size.unwrap_or(1000),
        level,
        codec,
        threads,
        gzip_files,
        ctx,
    };
    let (bytes, raw_bytes, sha256, documents) = match format {
        Format::Archive => job.archive(&chosen, &dest, &parent).await?,
        Format::Directory => job.directory(&chosen, &dest).await?,
    };
    tracing::info!(target: "mtn::db", database = %db_name, documents, bytes, path = %dest.display(), "mongodb dump written: {}", crate::units::human(bytes));
    Ok(DumpReport {
        path: dest.display().to_string(),
        bytes,
        raw_bytes,
        sha256,
        duration_ms: started.elapsed().as_millis() as u64,
        documents,
        collections: chosen.len() as u64,
        dry_run: false,
        database: db_name,
        format: format_name.into(),
    })
}

struct Job<'a> {
    db: &'a Database,
    shown: &'a str,
    db_name: &'a str,
    query: Document,
    batch: u32,
    level: u32,
    /// The archive's compression.
    codec: Codec,
    threads: usize,
    gzip_files: bool,
    ctx: &'a RunCtx,
}

/// Bytes of documents handed to the writer at once.
const GATHER: usize = 256 * 1024;

fn io_err(what: &str) -> impl Fn(std::io::Error) -> HostError + '_ {
    move |e| HostError::io(what, &e)
}

impl Job<'_> {
    /// Stream one collection's documents, bytes exactly as the server sent them. Documents are
    /// gathered into [`GATHER`]-byte writes: one compressor call per ~90-byte document is a
    /// million calls per million documents, each taking zstd's multi-threaded stream's locks.
    async fn stream(&self, coll: &str, out: &mut impl Write) -> HostResult<u64> {
        let what = format!("dumping {}.{coll}", self.db_name);
        let mut cursor = self
            .db
            .collection::<RawDocumentBuf>(coll)
            .find(self.query.clone())
            .batch_size(self.batch)
            .await
            .map_err(|e| map_err(e, &what, self.shown))?;
        let mut out = BufWriter::with_capacity(GATHER, out);
        let mut n = 0u64;
        // An error mid-scan (collection dropped, cursor killed, connection lost) fails the
        // dump: a shorter .bson would look like a good backup.
        while cursor.advance().await.map_err(|e| {
            map_err(
                e,
                &format!("{what} (after {n} documents; nothing was written under the final name)"),
                self.shown,
            )
        })? {
            out.write_all(cursor.current().as_bytes())
                .map_err(io_err("writing"))?;
            n += 1;
            if n.is_multiple_of(65536) {
                self.ctx.check_cancelled()?;
            }
        }
        // into_inner writes what is gathered without flushing `out` (a compressor's flush would
        // end a block early).
        out.into_inner()
            .map_err(|e| HostError::io("writing", e.error()))?;
        Ok(n)
    }

    fn bson_name(&self, coll: &str) -> String {
        format!(
            "{}.bson{}",
            escape_name(coll),
            if self.gzip_files { ".gz" } else { "" }
        )
    }

    async fn archive(
        &self,
        chosen: &[&CollInfo],
        dest: &Path,
        parent: &Path,
    ) -> HostResult<(u64, u64, Option<String>, u64)> {
        let file = AtomicFile::create(dest).map_err(io_err("creating the archive"))?;
        let hashing = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let mtime = chrono::Utc::now().timestamp().max(0) as u64;
        let mut tar = TarGz::new(hashing, self.codec, mtime);
        let spool_dir = tempfile::Builder::new()
            .prefix(".mtn-mongodump-spool")
            .tempdir_in(parent)
            .map_err(io_err("creating the spool folder"))?;
        let dir = escape_name(self.db_name);
        let mut documents = 0;
        for info in chosen {
            let indexes = if info.kind == "view" {
                Vec::new()
            } else {
                list_indexes(self.db, &info.name, self.shown).await?
            };
            let meta = metadata_json(info, &indexes);
            tar.small_file(
                &format!("{dir}/{}.metadata.json", escape_name(&info.name)),
                meta.as_bytes(),
            )
            .map_err(io_err("writing the archive"))?;
            if info.kind == "view" {
                continue;
            }
            // The spool holds gzip members of the entry's data (see archive.rs); with
            // per-file gzip the entry's data is itself gzip, and the members are stored ones.
            let spool_path = spool_dir.path().join("collection.spool");
            let spool = spool_file(&spool_path)?;
            let (mut spool, size) = if self.gzip_files {
                // Per-file gzip: spool the .bson.gz first (its size is the entry's size), then
                // wrap it in stored (level 0) members.
                let mut inner = ParallelGzWriter::with_options(
                    BufWriter::with_capacity(1 << 20, spool),
                    self.level,
                    self.threads,
                    DEFAULT_CHUNK,
                );
                documents += self.stream(&info.name, &mut inner).await?;
                let mut f = inner
                    .finish()
                    .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                    .map_err(io_err("writing the spool file"))?;
                let gz_len = f.stream_position().map_err(io_err("spool"))?;
                f.seek(SeekFrom::Start(0)).map_err(io_err("spool"))?;
                let wrapped_path = spool_dir.path().join("collection.stored");
                let mut stored = ParallelGzWriter::with_options(
                    BufWriter::with_capacity(1 << 20, spool_file(&wrapped_path)?),
                    0,
                    1,
                    DEFAULT_CHUNK,
                );
                std::io::copy(&mut f, &mut stored).map_err(io_err("spool"))?;
                let mut w = stored
                    .finish()
                    .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                    .map_err(io_err("writing the spool file"))?;
                w.seek(SeekFrom::Start(0)).map_err(io_err("spool"))?;
                (w, gz_len)
            } else {
                let mut gz = self
                    .codec
                    .writer(BufWriter::with_capacity(1 << 20, spool), self.threads)
                    .map_err(io_err("starting the compressor"))?;
                documents += self.stream(&info.name, &mut gz).await?;
                let raw = gz.raw_bytes();
                let mut f = gz
                    .finish()
                    .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                    .map_err(io_err("writing the spool file"))?;
                f.seek(SeekFrom::Start(0)).map_err(io_err("spool"))?;
                (f, raw)
            };
            tar.precompressed(
                &format!("{dir}/{}", self.bson_name(&info.name)),
                size,
                &mut spool,
            )
            .map_err(io_err("writing the archive"))?;
            drop(spool);
            let _ = std::fs::remove_file(&spool_path);
            self.ctx.check_cancelled()?;
        }
        let (hashing, raw_bytes) = tar.finish().map_err(io_err("writing the archive"))?;
        let (buffered, bytes, sha) = hashing.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| HostError::io("writing the archive", e.error()))?;
        file.commit().map_err(io_err("committing the archive"))?;
        write_sha256_sidecar(dest, &sha).map_err(io_err("writing the .sha256 sidecar"))?;
        Ok((bytes, raw_bytes, Some(sha), documents))
    }

    async fn directory(
        &self,
        chosen: &[&CollInfo],
        dest: &Path,
    ) -> HostResult<(u64, u64, Option<String>, u64)> {
        // A private 0700 folder with a random name, removed unless committed.
        let staging =
            crate::atomic::TempDir::create(dest).map_err(io_err("creating a temporary folder"))?;
        let tmp = staging.inner().to_path_buf();
        let dbdir = tmp.join(escape_name(self.db_name));
        std::fs::create_dir_all(&dbdir).map_err(io_err("creating the dump folder"))?;
        let (mut bytes, mut raw_bytes, mut documents) = (0u64, 0u64, 0u64);
        for info in chosen {
            let indexes = if info.kind == "view" {
                Vec::new()
            } else {
                list_indexes(self.db, &info.name, self.shown).await?
            };
            let meta = metadata_json(info, &indexes);
            let meta_path = dbdir.join(format!("{}.metadata.json", escape_name(&info.name)));
            write_synced(&meta_path, meta.as_bytes())?;
            bytes += meta.len() as u64;
            raw_bytes += meta.len() as u64;
            if info.kind == "view" {
                continue;
            }
            let path = dbdir.join(self.bson_name(&info.name));
            let file = File::create(&path).map_err(io_err("creating a .bson file"))?;
            let file = if self.gzip_files {
                let mut gz = ParallelGzWriter::with_options(
                    BufWriter::with_capacity(1 << 20, file),
                    self.level,
                    self.threads,
                    DEFAULT_CHUNK,
                );
                documents += self.stream(&info.name, &mut gz).await?;
                raw_bytes += gz.raw_bytes();
                gz.finish()
                    .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                    .map_err(io_err("writing a .bson.gz file"))?
            } else {
                let mut w = CountingWriter(BufWriter::with_capacity(1 << 20, file), 0);
                documents += self.stream(&info.name, &mut w).await?;
                raw_bytes += w.1;
                w.0.into_inner()
                    .map_err(|e| HostError::io("writing a .bson file", e.error()))?
            };
            file.sync_all().map_err(io_err("syncing a .bson file"))?;
            bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
        }
        sync_dir(&dbdir.join("x"));
        staging
            .commit()
            .map_err(io_err("renaming the dump folder into place"))?;
        Ok((bytes, raw_bytes, None, documents))
    }
}

/// Counts bytes on their way to a file (no hashing: a directory dump has no single checksum).
struct CountingWriter<W: Write>(W, u64);

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A spool file is written, then read back: it needs both.
fn spool_file(path: &Path) -> HostResult<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_err("creating a spool file"))
}

fn write_synced(path: &Path, data: &[u8]) -> HostResult<()> {
    let mut f = File::create(path).map_err(io_err("creating a metadata file"))?;
    f.write_all(data)
        .map_err(io_err("writing a metadata file"))?;
    f.sync_all().map_err(io_err("syncing a metadata file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_archive_defaults_to_level_1_and_keeps_a_chosen_level() {
        let z = |c: &str, l: Option<u32>| compression(Some(c), l).unwrap().1;
        assert_eq!(z("zstd", None), Some(Codec::Zstd(1)));
        assert_eq!(z(" ZSTD ", None), Some(Codec::Zstd(1)));
        assert_eq!(z("zstd:3", None), Some(Codec::Zstd(3)));
        assert_eq!(z("zstd", Some(7)), Some(Codec::Zstd(7)));
        assert_eq!(compression(Some("gzip"), None).unwrap(), (true, None));
        assert_eq!(compression(None, None).unwrap(), (false, None));
        assert!(compression(Some("zstd:30"), None).is_err());
        assert!(compression(Some("lz4"), None).is_err());
    }
}
