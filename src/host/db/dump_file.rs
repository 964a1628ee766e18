//! The shared write path of every dump: pick the destination, stream bytes through the chosen
//! compressor (host/codec.rs) into `<final>.tmp`, check the result, then fsync, rename and write the `.sha256` sidecar.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::atomic::{AtomicFile, HashingWriter};
use crate::ctx::RunCtx;
use crate::error::{ErrorKind, HostError, HostResult};
use crate::host::codec::{Codec, Encoder};
use crate::host::compress::default_threads;
use crate::units::human;

/// What `dump_db` returns.
#[derive(Debug, Clone, Serialize)]
pub struct DumpReport {
    pub path: String,
    /// Bytes of the file written (compressed).
    pub bytes: u64,
    /// Bytes the database tool produced (before compression).
    pub raw_bytes: u64,
    pub sha256: String,
    pub duration_ms: u64,
    pub dry_run: bool,
    pub format: String,
}

/// `compress`: "gzip", "gzip:9", "zstd", "zstd:19", "none", a gzip level 0-9, or false.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CompressOpt {
    Flag(bool),
    Level(i64),
    Text(String),
}

/// Decoded compression setting: `None` = write raw; gzip level 6 when nothing is said.
pub fn codec_of(c: &Option<CompressOpt>) -> HostResult<Option<Codec>> {
    match c {
        None | Some(CompressOpt::Flag(true)) => Ok(Some(Codec::Gzip(6))),
        Some(CompressOpt::Flag(false)) => Ok(None),
        Some(CompressOpt::Level(0)) => Ok(None),
        Some(CompressOpt::Level(l)) if (1..=9).contains(l) => Ok(Some(Codec::Gzip(*l as u32))),
        Some(CompressOpt::Text(t)) => Codec::parse(t),
        Some(CompressOpt::Level(l)) => Err(HostError::invalid(format!(
            "compress: level {l} is out of range (0-9; \"zstd:N\" for a zstd level)"
        ))),
    }
}

pub use crate::units::{parse_size, SizeOpt};

/// Where a dump goes: `to` is a file, or a directory (existing, or ending in `/`) that gets
/// `<name>_<YYYY-mm-dd_HHMMSS><ext>`; no `to` means `./backups/`.
pub fn destination(to: Option<&str>, name: &str, ext: &str) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y-%m-%d_%H%M%S");
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.is_empty() {
        "db".to_string()
    } else {
        safe
    };
    let file = format!("{safe}_{stamp}{ext}");
    match to {
        None => PathBuf::from("backups").join(file),
        Some(t) if t.ends_with('/') || Path::new(t).is_dir() => Path::new(t).join(file),
        Some(t) => PathBuf::from(t),
    }
}

/// Sanity checks on a finished (not yet committed) dump.
#[derive(Debug, Clone, Default)]
pub struct Sanity {
    pub min_size: Option<u64>,
    /// Fail if the dump is smaller than this fraction of the previous one in the same folder.
    pub max_shrink: Option<f64>,
}

impl Sanity {
    pub fn check(&self, dest: &Path, bytes: u64) -> HostResult<()> {
        if let Some(min) = self.min_size {
            if bytes < min {
                return Err(HostError::verification(format!(
                    "dump is {}, under min_size {}: refusing to keep a suspiciously small backup",
                    human(bytes),
                    human(min)
                )));
            }
        }
        if let Some(frac) = self.max_shrink {
            if let Some((prev, prev_bytes)) = previous_dump(dest) {
                let floor = (prev_bytes as f64 * frac) as u64;
                if bytes < floor {
                    return Err(HostError::verification(format!(
                        "dump is {}, less than {frac} of the previous dump {} ({}): refusing to keep a suspiciously small backup (max_shrink)",
                        human(bytes),
                        prev.display(),
                        human(prev_bytes)
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The compound extension of a dump file name: `.sql.gz`, `.dump`, `.db.gz`.
fn compound_ext(name: &str) -> &str {
    match name.find('.') {
        Some(i) => &name[i..],
        None => "",
    }
}

/// The newest other dump in `dest`'s folder with the same extension (and the same name prefix
/// when names follow `<db>_<stamp>`).
pub fn previous_dump(dest: &Path) -> Option<(PathBuf, u64)> {
    let dir = dest.parent()?;
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = dest.file_name()?.to_string_lossy().to_string();
    let ext = compound_ext(&name).to_string();
    let prefix = name.rsplitn(3, '_').nth(2).map(|p| format!("{p}_"));
    let mut best: Option<(SystemTime, PathBuf, u64)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let n = entry.file_name().to_string_lossy().to_string();
        if n == name || compound_ext(&n) != ext || n.ends_with(".tmp") || n.ends_with(".sha256") {
            continue;
        }
        if let Some(p) = &prefix {
            if !n.starts_with(p.as_str()) {
                continue;
            }
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let m = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(t, _, _)| m > *t) {
            best = Some((m, entry.path(), meta.len()));
        }
    }
    best.map(|(_, p, b)| (p, b))
}

/// A dump being written: raw bytes in, (optionally) compressed, hashed, into `<final>.tmp`.
pub struct DumpWriter {
    sink: Sink,
    started: Instant,
    tail: Vec<u8>,
    progress: crate::progress::Progress,
}

enum Sink {
    Packed(Encoder<HashingWriter<AtomicFile>>),
    Raw(HashingWriter<AtomicFile>, u64),
}

/// A written dump, not yet under its final name.
pub struct Finished {
    file: AtomicFile,
    pub bytes: u64,
    pub raw_bytes: u64,
    pub sha256: String,
    /// The last bytes of the raw stream (pg_dump's "dump complete" trailer).
    pub tail: Vec<u8>,
    started: Instant,
}

const TAIL: usize = 256;

impl DumpWriter {
    pub fn create(dest: &Path, codec: Option<Codec>, threads: Option<usize>) -> HostResult<Self> {
        if let Some(parent) = dest.parent() {
            if !parent.as_os_str().is_empty() {
                crate::atomic::create_private_dirs(parent)
                    .map_err(|e| HostError::io(format!("creating {}", parent.display()), &e))?;
            }
        }
        let file = AtomicFile::create(dest).map_err(|e| {
            HostError::io(
                format!("creating a temporary file next to {}", dest.display()),
                &e,
            )
        })?;
        let hashed = HashingWriter::new(file);
        let sink = match codec {
            Some(c) => Sink::Packed(
                c.writer(hashed, threads.unwrap_or_else(default_threads))
                    .map_err(|e| {
                        HostError::io(format!("starting {} for {}", c.name(), dest.display()), &e)
                    })?,
            ),
            None => Sink::Raw(hashed, 0),
        };
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        Ok(DumpWriter {
            sink,
            started: Instant::now(),
            tail: Vec::with_capacity(TAIL * 2),
            progress: crate::progress::Progress::start(&format!("dumping {name}"), None),
        })
    }

    /// Copy everything from `src` (a pipe from the dump tool) into the dump.
    pub fn copy_from(&mut self, mut src: impl Read) -> io::Result<()> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.write_all(&buf[..n])?;
        }
    }

    pub fn finish(self) -> io::Result<Finished> {
        let (hashed, raw) = match self.sink {
            Sink::Packed(enc) => {
                let raw = enc.raw_bytes();
                (enc.finish()?, raw)
            }
            Sink::Raw(h, raw) => (h, raw),
        };
        let (mut file, bytes, sha256) = hashed.finish();
        file.flush()?;
        Ok(Finished {
            file,
            bytes,
            raw_bytes: raw,
            sha256,
            tail: self.tail,
            started: self.started,
        })
    }
}

impl Write for DumpWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.sink {
            Sink::Packed(enc) => enc.write(buf)?,
            Sink::Raw(h, raw) => {
                let n = h.write(buf)?;
                *raw += n as u64;
                n
            }
        };
        self.progress.inc(n as u64);
        self.tail.extend_from_slice(&buf[..n]);
        if self.tail.len() > TAIL * 2 {
            let cut = self.tail.len() - TAIL;
            self.tail.drain(..cut);
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Finished {
    pub fn tmp_path(&self) -> &Path {
        self.file.tmp_path()
    }

    /// Check sizes, commit under the final name, write the sidecar.
    pub fn commit(self, sanity: &Sanity, format: &str) -> HostResult<DumpReport> {
        let dest = self.file.dest().to_path_buf();
        sanity.check(&dest, self.bytes)?;
        self.file
            .commit()
            .map_err(|e| HostError::io(format!("committing {}", dest.display()), &e))?;
        crate::atomic::write_sha256_sidecar(&dest, &self.sha256)
            .map_err(|e| HostError::io(format!("writing {}.sha256", dest.display()), &e))?;
        Ok(DumpReport {
            path: dest.display().to_string(),
            bytes: self.bytes,
            raw_bytes: self.raw_bytes,
            sha256: self.sha256,
            duration_ms: self.started.elapsed().as_millis() as u64,
            dry_run: false,
            format: format.to_string(),
        })
    }
}

/// The report of a dry run: everything decided, nothing written.
pub fn dry_run_report(dest: &Path, format: &str) -> DumpReport {
    DumpReport {
        path: dest.display().to_string(),
        bytes: 0,
        raw_bytes: 0,
        sha256: String::new(),
        duration_ms: 0,
        dry_run: true,
        format: format.to_string(),
    }
}

/// Resolve and authorize a destination for writing.
pub fn authorize(ctx: &RunCtx, dest: &Path) -> HostResult<PathBuf> {
    ctx.policy.check_write(dest)
}

/// Open a dump for reading, decompressed by what its first bytes say (gzip, zstd or plain).
pub fn open_dump(path: &Path) -> HostResult<Box<dyn Read + Send>> {
    open_dump_with(path, crate::progress::Progress::off())
}

/// [`open_dump`], moving `progress` by the bytes read from the file (compressed, so the bar's
/// total is the file's size).
pub fn open_dump_with(
    path: &Path,
    progress: crate::progress::Progress,
) -> HostResult<Box<dyn Read + Send>> {
    let f = File::open(path)
        .map_err(|e| HostError::io(format!("opening dump {}", path.display()), &e))?;
    let f = crate::progress::Reader::new(f, progress);
    let (_, r) = crate::host::codec::reader(io::BufReader::with_capacity(256 * 1024, f))
        .map_err(|e| HostError::io(format!("reading {}", path.display()), &e))?;
    Ok(Box::new(io::BufReader::with_capacity(256 * 1024, r)))
}

/// Stream a tool's stdout into a new dump at `dest` (compressed when `codec` is set, temporary
/// name until committed) on a blocking thread.
pub fn write_from(
    out: File,
    dest: PathBuf,
    codec: Option<Codec>,
    threads: Option<usize>,
) -> tokio::task::JoinHandle<HostResult<Finished>> {
    tokio::task::spawn_blocking(move || {
        let io = |e: io::Error| {
            HostError::io(
                format!("writing the temporary file of {}", dest.display()),
                &e,
            )
        };
        let mut w = DumpWriter::create(&dest, codec, threads)?;
        w.copy_from(out).map_err(io)?;
        w.finish().map_err(io)
    })
}

/// Stream a dump (decompressed when needed) into a tool's stdin on a blocking thread. A tool that
/// stops reading (psql's ON_ERROR_STOP) is not an error here: its exit status and stderr say why.
pub fn feed(dump: &Path, mut stdin: File) -> tokio::task::JoinHandle<HostResult<()>> {
    let dump = dump.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let size = std::fs::metadata(&dump).map(|m| m.len()).ok();
        let name = dump.file_name().unwrap_or_default().to_string_lossy();
        let progress = crate::progress::Progress::start(&format!("restoring {name}"), size);
        let mut r = open_dump_with(&dump, progress)?;
        match io::copy(&mut r, &mut stdin) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(HostError::io(
                format!("reading dump {}", dump.display()),
                &e,
            )),
        }
    })
}

/// The first bytes of a dump after decompression, to tell formats apart.
pub fn sniff(path: &Path) -> HostResult<Vec<u8>> {
    let mut r = open_dump(path)?;
    let mut buf = vec![0u8; 16];
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                return Err(HostError::new(
                    ErrorKind::Verification,
                    format!("dump {} is not readable: {e}", path.display()),
                ))
            }
        }
    }
    buf.truncate(got);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_levels() {
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("1 KiB").unwrap(), 1024);
        assert!(parse_size("3 parsecs").is_err());
        assert_eq!(codec_of(&None).unwrap(), Some(Codec::Gzip(6)));
        assert_eq!(
            codec_of(&Some(CompressOpt::Text("gzip:9".into()))).unwrap(),
            Some(Codec::Gzip(9))
        );
        assert_eq!(
            codec_of(&Some(CompressOpt::Text("zstd:19".into()))).unwrap(),
            Some(Codec::Zstd(19))
        );
        assert_eq!(
            codec_of(&Some(CompressOpt::Text("none".into()))).unwrap(),
            None
        );
        assert!(codec_of(&Some(CompressOpt::Level(12))).is_err());
    }

    #[test]
    fn previous_dump_and_shrink() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("app_2024-01-01_000000.sql.gz"),
            vec![0u8; 1000],
        )
        .unwrap();
        std::fs::write(
            dir.path().join("other_2024-01-02_000000.sql.gz"),
            vec![0u8; 10],
        )
        .unwrap();
        let dest = dir.path().join("app_2024-01-03_000000.sql.gz");
        let (p, b) = previous_dump(&dest).unwrap();
        assert!(p.ends_with("app_2024-01-01_000000.sql.gz"));
        assert_eq!(b, 1000);
        let s = Sanity {
            min_size: Some(100),
            max_shrink: Some(0.5),
        };
        assert!(s.check(&dest, 600).is_ok());
        assert!(s.check(&dest, 400).is_err());
        assert!(s.check(&dest, 50).is_err());
    }

    #[test]
    fn writes_gzip_and_commits() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.sql.gz");
        let mut w = DumpWriter::create(&dest, Some(Codec::Gzip(6)), Some(2)).unwrap();
        w.copy_from(&b"hello world\n"[..]).unwrap();
        let f = w.finish().unwrap();
        assert!(!dest.exists());
        let r = f.commit(&Sanity::default(), "plain").unwrap();
        assert_eq!(r.raw_bytes, 12);
        let mut out = String::new();
        open_dump(&dest).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world\n");
        assert!(dir.path().join("x.sql.gz.sha256").exists());
    }

    #[test]
    fn writes_zstd_and_reads_it_back_by_content() {
        let dir = tempfile::tempdir().unwrap();
        // The name says gzip; the reader goes by the bytes.
        let dest = dir.path().join("x.sql.gz");
        let mut w = DumpWriter::create(&dest, Some(Codec::Zstd(3)), Some(2)).unwrap();
        w.copy_from(&b"hello zstd\n"[..]).unwrap();
        w.finish()
            .unwrap()
            .commit(&Sanity::default(), "plain")
            .unwrap();
        let mut out = String::new();
        open_dump(&dest).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello zstd\n");
    }
}
