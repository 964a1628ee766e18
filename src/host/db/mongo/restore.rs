//! `restore_db` for MongoDB: reads mongodump's layout (from mtn or from mongodump itself), as a
//! `.tar.gz`/`.tar.zst`/`.tar` archive or a directory, inserts in ordered batches and recreates indexes.
//!
//! Why ~700 lines: reading every variant of mongodump's layout (archive or folder, gzip or not,
//! old and new metadata) is one parser; splitting it would spread that contract over files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flate2::read::MultiGzDecoder;
use mongodb::bson::{doc, Bson, Document, RawDocumentBuf};
use mongodb::error::ErrorKind as MongoKind;
use mongodb::Database;
use serde::{Deserialize, Serialize};

use super::conn::{connect, map_err};
use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};
use crate::host::binding::serde_duration;

mod legacy;

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreOptions {
    /// Drop each restored collection first.
    pub drop: bool,
    /// Insert into collections that already hold documents (duplicate `_id`s are skipped).
    pub merge: bool,
    pub collections: Vec<String>,
    pub exclude_collections: Vec<String>,
    /// Which database of the dump to restore when it holds several.
    pub from_db: Option<String>,
    /// Recreate indexes from the metadata (default true).
    pub indexes: Option<bool>,
    /// Convert legacy (pre-3.4, `v: 1`) index keys such as `{a: true}` or `{a: 0}` the way
    /// `mongorestore --convertLegacyIndexes` does, with a warning naming each converted index
    /// (default true; false leaves them as they are, and a current server refuses them).
    pub convert_legacy_indexes: Option<bool>,
    pub batch_size: Option<usize>,
    #[serde(with = "serde_duration::option")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Serialize, Clone)]
pub struct RestoreReport {
    pub path: String,
    pub database: String,
    pub collections: u64,
    pub documents: u64,
    pub indexes: u64,
    /// Legacy indexes converted (`coll.name`), see `convert_legacy_indexes`.
    pub converted_indexes: Vec<String>,
    pub duplicates: u64,
    pub bytes: u64,
    pub duration_ms: u64,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Bson { gz: bool },
    Meta { gz: bool },
}

/// One file of the layout: which database folder and collection it belongs to.
#[derive(Debug, Clone)]
struct Item {
    db: String,
    coll: String,
    kind: FileKind,
    /// Location on disk (directory layouts only).
    path: Option<PathBuf>,
}

/// Recognise `<...>/<db>/<coll>.bson[.gz]` / `.metadata.json[.gz]`.
fn classify(rel: &Path) -> Option<(String, String, FileKind)> {
    let file = rel.file_name()?.to_str()?;
    let db = rel
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .map(unescape)
        .unwrap_or_default();
    let (stem, kind) = if let Some(s) = file.strip_suffix(".metadata.json.gz") {
        (s, FileKind::Meta { gz: true })
    } else if let Some(s) = file.strip_suffix(".metadata.json") {
        (s, FileKind::Meta { gz: false })
    } else if let Some(s) = file.strip_suffix(".bson.gz") {
        (s, FileKind::Bson { gz: true })
    } else if let Some(s) = file.strip_suffix(".bson") {
        (s, FileKind::Bson { gz: false })
    } else {
        return None;
    };
    // mongodump percent-escapes characters a file name cannot hold.
    let coll = percent_encoding::percent_decode_str(stem)
        .decode_utf8_lossy()
        .into_owned();
    // mongodump's extras (oplog.bson at the top level, system collections) are not data to restore.
    if coll.is_empty() || coll.starts_with("system.") || (db.is_empty() && coll == "oplog") {
        return None;
    }
    Some((db, coll, kind))
}

/// mongodump percent-escapes the characters a file name cannot hold.
fn unescape(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

enum Source {
    Archive { path: PathBuf, gz: bool },
    Dir(PathBuf),
}

fn open_source(dump: &Path) -> HostResult<Source> {
    let meta = std::fs::metadata(dump)
        .map_err(|e| HostError::io(format!("reading {}", dump.display()), &e))?;
    if meta.is_dir() {
        return Ok(Source::Dir(dump.to_path_buf()));
    }
    let mut magic = [0u8; 4];
    let n = File::open(dump)
        .and_then(|mut f| f.read(&mut magic))
        .map_err(|e| HostError::io(format!("reading {}", dump.display()), &e))?;
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        return Ok(Source::Archive {
            path: dump.to_path_buf(),
            gz: true,
        });
    }
    if n == 4 && u32::from_le_bytes(magic) == 0x8199_e26d {
        return Err(HostError::invalid(format!(
            "{} is a `mongodump --archive` file, which mtn does not read; dump with `mongodump --out DIR` (or mtn's dump_db) instead",
            dump.display()
        )));
    }
    Ok(Source::Archive {
        path: dump.to_path_buf(),
        gz: false,
    })
}

fn archive_reader(path: &Path, _gz: bool) -> HostResult<tar::Archive<Box<dyn Read>>> {
    let f =
        File::open(path).map_err(|e| HostError::io(format!("opening {}", path.display()), &e))?;
    // gzip, zstd or a plain tar, told by the first bytes (the name may say anything).
    let (_, r) = crate::host::codec::reader(BufReader::with_capacity(1 << 20, f))
        .map_err(|e| HostError::io(format!("reading {}", path.display()), &e))?;
    let r: Box<dyn Read> = r;
    Ok(tar::Archive::new(r))
}

/// Every recognised file of the dump, in the order it will be read.
fn scan(src: &Source) -> HostResult<Vec<Item>> {
    let mut items = Vec::new();
    match src {
        Source::Dir(root) => {
            walk(root, root, 0, &mut items)?;
            // Metadata before data, so collection options apply at creation.
            items.sort_by(|a, b| {
                (&a.db, &a.coll, matches!(a.kind, FileKind::Bson { .. })).cmp(&(
                    &b.db,
                    &b.coll,
                    matches!(b.kind, FileKind::Bson { .. }),
                ))
            });
        }
        Source::Archive { path, gz } => {
            let mut ar = archive_reader(path, *gz)?;
            let bad = |e: std::io::Error| {
                HostError::verification(format!(
                    "{} is not a readable tar archive: {e}",
                    path.display()
                ))
            };
            for entry in ar.entries().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                if entry.header().entry_type() != tar::EntryType::Regular {
                    continue;
                }
                let p = entry.path().map_err(bad)?.into_owned();
                if let Some((db, coll, kind)) = classify(&p) {
                    items.push(Item {
                        db,
                        coll,
                        kind,
                        path: None,
                    });
                }
            }
        }
    }
    Ok(items)
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<Item>) -> HostResult<()> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| HostError::io(format!("listing {}", dir.display()), &e))?;
    for e in rd {
        let e = e.map_err(|e| HostError::io(format!("listing {}", dir.display()), &e))?;
        let p = e.path();
        let ft = e
            .file_type()
            .map_err(|err| HostError::io(p.display(), &err))?;
        if ft.is_dir() && depth < 3 {
            walk(root, &p, depth + 1, out)?;
        } else if ft.is_file() {
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            if let Some((db, coll, kind)) = classify(&rel) {
                out.push(Item {
                    db,
                    coll,
                    kind,
                    path: Some(p),
                });
            }
        }
    }
    Ok(())
}

/// Which of the dump's databases to restore.
fn choose_db(items: &[Item], from: Option<&str>, dump: &Path) -> HostResult<String> {
    let dbs: BTreeSet<&str> = items.iter().map(|i| i.db.as_str()).collect();
    if let Some(f) = from {
        if dbs.contains(f) {
            return Ok(f.to_string());
        }
        return Err(HostError::not_found(format!(
            "{} holds no database {f:?} (it holds: {})",
            dump.display(),
            dbs.iter().copied().collect::<Vec<_>>().join(", ")
        )));
    }
    let user: Vec<&str> = dbs
        .iter()
        .copied()
        .filter(|d| !matches!(*d, "admin" | "config" | "local"))
        .collect();
    match user.as_slice() {
        [one] => Ok(one.to_string()),
        [] if dbs.len() == 1 => Ok(dbs.iter().next().map(|s| s.to_string()).unwrap_or_default()),
        [] => Err(HostError::verification(format!(
            "{} contains no .bson or .metadata.json files in mongodump's layout",
            dump.display()
        ))),
        many => Err(HostError::invalid(format!(
            "{} holds several databases ({}): choose one with `from_db`",
            dump.display(),
            many.join(", ")
        ))),
    }
}

#[derive(Default)]
struct Meta {
    options: Document,
    indexes: Vec<Document>,
    kind: String,
}

fn parse_metadata(text: &str, name: &str) -> HostResult<Meta> {
    let bad =
        |why: String| HostError::verification(format!("{name}.metadata.json is not valid: {why}"));
    // serde_json keeps key order here (bson enables preserve_order), so compound index keys
    // come back in their original order.
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let doc = match Bson::try_from(json).map_err(|e| bad(e.to_string()))? {
        Bson::Document(d) => d,
        _ => return Err(bad("not a JSON object".into())),
    };
    let indexes = match doc.get("indexes") {
        Some(Bson::Array(a)) => a.iter().filter_map(|i| i.as_document().cloned()).collect(),
        _ => Vec::new(),
    };
    Ok(Meta {
        options: doc.get_document("options").cloned().unwrap_or_default(),
        indexes,
        kind: doc.get_str("type").unwrap_or("collection").to_string(),
    })
}

const MAX_DOC: usize = 16 * 1024 * 1024 + 16 * 1024;

/// The next document of a concatenated-BSON stream, or None at a clean end.
fn next_doc(r: &mut impl Read, file: &str, index: u64) -> HostResult<Option<RawDocumentBuf>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r
            .read(&mut len[got..])
            .map_err(|e| HostError::io(format!("reading {file}"), &e))?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(HostError::verification(format!(
                "{file} is truncated inside document {index}"
            )));
        }
        got += n;
    }
    let size = i32::from_le_bytes(len);
    if size < 5 || size as usize > MAX_DOC {
        return Err(HostError::verification(format!(
            "{file}: document {index} has an impossible length {size} (not a BSON file, or corrupt)"
        )));
    }
    let mut buf = vec![0u8; size as usize];
    buf[..4].copy_from_slice(&len);
    r.read_exact(&mut buf[4..]).map_err(|_| {
        HostError::verification(format!("{file} is truncated inside document {index}"))
    })?;
    RawDocumentBuf::from_bytes(buf)
        .map_err(|e| {
            HostError::verification(format!("{file}: document {index} is not valid BSON: {e}"))
        })
        .map(Some)
}

pub fn restore(
    ctx: &RunCtx,
    dump: &str,
    url: &str,
    opts: RestoreOptions,
) -> HostResult<RestoreReport> {
    ctx.block_on(restore_async(ctx, dump, url, opts))
}

pub async fn restore_async(
    ctx: &RunCtx,
    dump: &str,
    url: &str,
    opts: RestoreOptions,
) -> HostResult<RestoreReport> {
    let started = Instant::now();
    if opts.drop && opts.merge {
        return Err(HostError::invalid(
            "`drop` and `merge` exclude each other (drop replaces, merge adds)",
        ));
    }
    let dump_path = PathBuf::from(dump);
    let src = open_source(&dump_path)?;
    let items = scan(&src)?;
    let from_db = choose_db(&items, opts.from_db.as_deref(), &dump_path)?;
    let wanted = |c: &str| {
        (opts.collections.is_empty() || opts.collections.iter().any(|x| x == c))
            && !opts.exclude_collections.iter().any(|x| x == c)
    };
    let in_dump: BTreeSet<String> = items
        .iter()
        .filter(|i| i.db == from_db)
        .map(|i| i.coll.clone())
        .collect();
    for name in &opts.collections {
        if !in_dump.contains(name) {
            return Err(HostError::not_found(format!(
                "collection {name:?} is not in the dump (it has: {})",
                in_dump.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let selected: BTreeSet<String> = in_dump.into_iter().filter(|c| wanted(c)).collect();

    let conn = connect(url, opts.timeout).await?;
    let db = conn.db.clone();
    let shown = conn.shown.clone();
    let existing: BTreeSet<String> = db
        .list_collection_names()
        .await
        .map_err(|e| map_err(e, &format!("listing collections of {}", db.name()), &shown))?
        .into_iter()
        .collect();

    // Refuse before touching anything: a half-merged database is worse than no restore.
    if !opts.drop && !opts.merge {
        let mut busy = Vec::new();
        for c in selected.iter().filter(|c| existing.contains(*c)) {
            let one = db
                .collection::<Document>(c)
                .find_one(doc! {})
                .projection(doc! { "_id": 1 })
                .await
                .map_err(|e| map_err(e, &format!("checking {}.{c}", db.name()), &shown))?;
            if one.is_some() {
                busy.push(c.clone());
            }
        }
        if !busy.is_empty() {
            return Err(HostError::refused(format!(
                "target collection(s) {} in {} already hold documents; pass `drop: true` to replace them or `merge: true` to add to them",
                busy.join(", "),
                db.name()
            )));
        }
    }

    let mut st = State {
        ctx,
        db: &db,
        shown: &shown,
        opts: &opts,
        existing,
        metas: BTreeMap::new(),
        report: RestoreReport {
            path: dump.to_string(),
            database: db.name().to_string(),
            collections: selected.len() as u64,
            documents: 0,
            indexes: 0,
            converted_indexes: Vec::new(),
            duplicates: 0,
            bytes: 0,
            duration_ms: 0,
            dry_run: ctx.dry_run,
        },
    };

    if opts.drop && !ctx.dry_run {
        for c in &selected {
            if st.existing.remove(c) {
                db.collection::<Document>(c)
                    .drop()
                    .await
                    .map_err(|e| map_err(e, &format!("dropping {}.{c}", db.name()), &shown))?;
            }
        }
    }

    match &src {
        Source::Dir(_) => {
            for item in items
                .iter()
                .filter(|i| i.db == from_db && selected.contains(&i.coll))
            {
                let path = item.path.clone().unwrap_or_default();
                let f = File::open(&path)
                    .map_err(|e| HostError::io(format!("opening {}", path.display()), &e))?;
                st.file(item, BufReader::with_capacity(1 << 20, f)).await?;
            }
        }
        Source::Archive { path, gz } => {
            let mut ar = archive_reader(path, *gz)?;
            let bad = |e: std::io::Error| {
                HostError::verification(format!("reading {}: {e}", path.display()))
            };
            for entry in ar.entries().map_err(bad)? {
                let entry = entry.map_err(bad)?;
                if entry.header().entry_type() != tar::EntryType::Regular {
                    continue;
                }
                let p = entry.path().map_err(bad)?.into_owned();
                let Some((edb, coll, kind)) = classify(&p) else {
                    continue;
                };
                if edb != from_db || !selected.contains(&coll) {
                    continue;
                }
                let item = Item {
                    db: edb,
                    coll,
                    kind,
                    path: None,
                };
                st.file(&item, entry).await?;
            }
        }
    }

    if opts.indexes.unwrap_or(true) {
        st.create_indexes().await?;
    }
    st.report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(target: "mtn::db", database = %st.report.database, documents = st.report.documents, "mongodb restore done");
    Ok(st.report)
}

struct State<'a> {
    ctx: &'a RunCtx,
    db: &'a Database,
    shown: &'a str,
    opts: &'a RestoreOptions,
    existing: BTreeSet<String>,
    metas: BTreeMap<String, Meta>,
    report: RestoreReport,
}

impl State<'_> {
    async fn file(&mut self, item: &Item, r: impl Read) -> HostResult<()> {
        match item.kind {
            FileKind::Meta { gz } => {
                let mut text = String::new();
                let res = if gz {
                    MultiGzDecoder::new(r).read_to_string(&mut text)
                } else {
                    BufReader::new(r).read_to_string(&mut text)
                };
                res.map_err(|e| HostError::io(format!("reading {}.metadata.json", item.coll), &e))?;
                let meta = parse_metadata(&text, &item.coll)?;
                self.create(&item.coll, &meta).await?;
                self.metas.insert(item.coll.clone(), meta);
                Ok(())
            }
            FileKind::Bson { gz } => {
                if gz {
                    self.insert(
                        &item.coll,
                        BufReader::with_capacity(1 << 20, MultiGzDecoder::new(r)),
                    )
                    .await
                } else {
                    self.insert(&item.coll, r).await
                }
            }
        }
    }

    /// Create the collection (or view) with its options, when it does not exist yet.
    async fn create(&mut self, coll: &str, meta: &Meta) -> HostResult<()> {
        if self.ctx.dry_run || self.existing.contains(coll) {
            return Ok(());
        }
        let mut cmd = doc! { "create": coll };
        for (k, v) in meta.options.iter() {
            cmd.insert(k.clone(), v.clone());
        }
        self.db.run_command(cmd).await.map_err(|e| {
            map_err(
                e,
                &format!("creating {}.{coll}", self.db.name()),
                self.shown,
            )
        })?;
        self.existing.insert(coll.to_string());
        Ok(())
    }

    async fn insert(&mut self, coll: &str, mut r: impl Read) -> HostResult<()> {
        let file = format!("{coll}.bson");
        let max_docs = self.opts.batch_size.unwrap_or(1000).max(1);
        let target = self.db.collection::<RawDocumentBuf>(coll);
        let mut batch: Vec<RawDocumentBuf> = Vec::with_capacity(max_docs);
        let mut batch_bytes = 0usize;
        let mut index = 0u64;
        loop {
            let doc = next_doc(&mut r, &file, index)?;
            let end = doc.is_none();
            if let Some(d) = doc {
                index += 1;
                self.report.bytes += d.as_bytes().len() as u64;
                batch_bytes += d.as_bytes().len();
                batch.push(d);
            }
            if !batch.is_empty() && (end || batch.len() >= max_docs || batch_bytes >= 8 << 20) {
                self.flush(&target, &mut batch).await?;
                batch_bytes = 0;
                self.ctx.check_cancelled()?;
            }
            if end {
                break;
            }
        }
        if index == 0 && !self.ctx.dry_run && !self.existing.contains(coll) {
            // An empty collection is still part of the dump.
            self.create(
                coll,
                &Meta {
                    kind: "collection".into(),
                    ..Default::default()
                },
            )
            .await?;
        }
        self.existing.insert(coll.to_string());
        Ok(())
    }

    async fn flush(
        &mut self,
        target: &mongodb::Collection<RawDocumentBuf>,
        batch: &mut Vec<RawDocumentBuf>,
    ) -> HostResult<()> {
        let n = batch.len() as u64;
        if self.ctx.dry_run {
            self.report.documents += n;
            batch.clear();
            return Ok(());
        }
        let what = format!("inserting into {}.{}", self.db.name(), target.name());
        let res = target
            .insert_many(batch.iter())
            .ordered(!self.opts.merge)
            .await;
        batch.clear();
        match res {
            Ok(r) => {
                self.report.documents += r.inserted_ids.len() as u64;
                Ok(())
            }
            Err(e) => {
                if self.opts.merge {
                    if let MongoKind::InsertMany(ime) = &*e.kind {
                        let errs = ime.write_errors.as_deref().unwrap_or_default();
                        if ime.write_concern_error.is_none() && errs.iter().all(|w| w.code == 11000)
                        {
                            self.report.duplicates += errs.len() as u64;
                            self.report.documents += n - errs.len() as u64;
                            return Ok(());
                        }
                    }
                }
                Err(map_err(e, &what, self.shown))
            }
        }
    }

    async fn create_indexes(&mut self) -> HostResult<()> {
        for (coll, meta) in &self.metas {
            let mut specs: Vec<Document> = meta
                .indexes
                .iter()
                .filter(|i| i.get_str("name").ok() != Some("_id_"))
                .map(|i| {
                    let mut i = i.clone();
                    i.remove("ns"); // old mongodump metadata; newer servers refuse it
                    i
                })
                .collect();
            if self.opts.convert_legacy_indexes.unwrap_or(true) {
                for (name, what) in legacy::convert_all(&mut specs) {
                    tracing::warn!(target: "mtn::db", "restore_db: legacy index {coll}.{name} converted as mongorestore --convertLegacyIndexes does: {what}");
                    self.ctx.set_warned();
                    self.report.converted_indexes.push(format!("{coll}.{name}"));
                }
            }
            if specs.is_empty() || meta.kind == "view" {
                continue;
            }
            self.report.indexes += specs.len() as u64;
            if self.ctx.dry_run {
                continue;
            }
            self.db
                .run_command(doc! { "createIndexes": coll, "indexes": specs })
                .await
                .map_err(|e| {
                    map_err(
                        e,
                        &format!("creating indexes on {}.{coll}", self.db.name()),
                        self.shown,
                    )
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_layout_names() {
        assert_eq!(
            classify(Path::new("x/app/users.bson.gz")),
            Some(("app".into(), "users".into(), FileKind::Bson { gz: true }))
        );
        assert_eq!(
            classify(Path::new("app/a%2Fb.metadata.json")),
            Some(("app".into(), "a/b".into(), FileKind::Meta { gz: false }))
        );
        assert_eq!(classify(Path::new("oplog.bson")), None);
        assert_eq!(classify(Path::new("app/system.views.bson")), None);
        assert_eq!(classify(Path::new("app/prelude.json")), None);
    }

    #[test]
    fn metadata_keeps_index_key_order() {
        let m = parse_metadata(
            r#"{"options":{},"indexes":[{"v":{"$numberInt":"2"},"key":{"z":{"$numberInt":"1"},"a":{"$numberInt":"-1"}},"name":"z_1_a_-1"}],"uuid":"00","collectionName":"c","type":"collection"}"#,
            "c",
        )
        .unwrap();
        let key = m.indexes[0].get_document("key").unwrap();
        assert_eq!(key.keys().collect::<Vec<_>>(), vec!["z", "a"]);
        assert_eq!(key.get("a"), Some(&Bson::Int32(-1)));
    }

    #[test]
    fn reads_concatenated_bson_and_rejects_garbage() {
        let a = RawDocumentBuf::from_document(&doc! {"a": 1}).unwrap();
        let mut bytes = a.as_bytes().to_vec();
        bytes.extend_from_slice(a.as_bytes());
        let mut r = &bytes[..];
        assert!(next_doc(&mut r, "f", 0).unwrap().is_some());
        assert!(next_doc(&mut r, "f", 1).unwrap().is_some());
        assert!(next_doc(&mut r, "f", 2).unwrap().is_none());
        let mut g = &b"garbage!"[..];
        assert!(next_doc(&mut g, "f", 0).is_err());
        let mut t = &bytes[..7];
        assert!(next_doc(&mut t, "f", 0)
            .unwrap_err()
            .message
            .contains("truncated"));
    }
}
