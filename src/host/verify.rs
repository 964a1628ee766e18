//! `verify_backup`: prove an artifact on disk is intact before trusting it — the sha256 sidecar
//! matches and a gzip or zstd stream decodes to its end (what `sha256sum -c`, `gzip -t` and
//! `zstd -t` check). The compression is told by the file's first bytes, not its name.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::atomic::HashingWriter;
use crate::error::{HostError, HostResult};
use crate::host::codec::{self, Format};
use crate::host::registry::Registrar;
use crate::host_fn;

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub path: String,
    pub ok: bool,
    pub bytes: u64,
    pub sha256: String,
    /// "match", "mismatch" or "missing" (no `.sha256` sidecar).
    pub sidecar: String,
    /// "ok", "corrupt" or "not gzip".
    pub gzip: String,
    /// "ok", "corrupt" or "not zstd".
    pub zstd: String,
    /// What was actually checked ("sha256", "gzip", "format"). `ok` is false when this is empty:
    /// a file nothing could be checked for is not called intact.
    pub checked: Vec<String>,
    pub error: String,
}

/// The format a backup's first bytes announce, when mtn can tell. Only formats with a magic
/// number are named; a plain SQL dump has none.
fn format_of(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"PGDMP") {
        Some("pg_dump archive")
    } else if head.starts_with(b"SQLite format 3\0") {
        Some("SQLite database")
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if head.len() > 262 && &head[257..262] == b"ustar" {
        Some("tar")
    } else {
        None
    }
}

/// The format a file name promises (`.dump` for pg_dump custom, `.db`/`.sqlite` for SQLite).
fn promised_format(name: &str) -> Option<&'static str> {
    if name.ends_with(".dump") {
        Some("pg_dump archive")
    } else if name.ends_with(".db") || name.ends_with(".sqlite") || name.ends_with(".sqlite3") {
        Some("SQLite database")
    } else if name.ends_with(".tar") {
        Some("tar")
    } else {
        None
    }
}

pub fn verify(path: &Path) -> HostResult<VerifyReport> {
    let shown = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| HostError::io(format!("verify_backup {shown}"), &e))?;
    if !meta.is_file() {
        return Err(HostError::invalid(format!("{shown} is not a file")));
    }
    let mut hasher = HashingWriter::new(io::sink());
    let mut gzip = "not gzip".to_string();
    let mut zstd = "not zstd".to_string();
    let mut error = String::new();
    let mut head = [0u8; 512];
    let head_len = {
        let mut f =
            File::open(path).map_err(|e| HostError::io(format!("verify_backup {shown}"), &e))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(HostError::io(format!("verify_backup {shown}"), &e)),
            }
        }
        n
    };
    let f = File::open(path).map_err(|e| HostError::io(format!("verify_backup {shown}"), &e))?;
    let packed = codec::detect(&head[..head_len]);
    let named_packed = [".gz", ".tgz", ".zst"].iter().any(|e| shown.ends_with(e));
    if packed == Format::Plain && named_packed && head_len > 0 {
        // The name promises compressed data, the bytes are neither format.
        if shown.ends_with(".zst") {
            zstd = "corrupt".into();
        } else {
            gzip = "corrupt".into();
        }
        error = format!(
            "{shown} is neither gzip nor zstd (its first bytes are not a known magic number)"
        );
    }
    if packed != Format::Plain {
        // Hash the compressed bytes while decoding them: one read of the file does both checks.
        let mut tee = TeeReader {
            inner: BufReader::new(f),
            hasher: &mut hasher,
        };
        let state = if packed == Format::Gzip {
            &mut gzip
        } else {
            &mut zstd
        };
        let decoded = codec::reader(BufReader::new(&mut tee))
            .and_then(|(_, mut dec)| io::copy(&mut dec, &mut io::sink()));
        match decoded {
            Ok(_) => *state = "ok".into(),
            Err(e) => {
                *state = "corrupt".into();
                error = format!("{} stream is corrupt: {e}", packed.name());
            }
        }
        // Hash whatever the decoder did not consume (trailing bytes, or after corruption).
        io::copy(&mut tee, &mut io::sink())
            .map_err(|e| HostError::io(format!("verify_backup {shown}"), &e))?;
    } else {
        let mut r = BufReader::new(f);
        io::copy(&mut r, &mut hasher)
            .map_err(|e| HostError::io(format!("verify_backup {shown}"), &e))?;
    }
    let (_, bytes, sha256) = hasher.finish();
    let mut side = path.as_os_str().to_owned();
    side.push(".sha256");
    let sidecar = match std::fs::read_to_string(&side) {
        Ok(text) => {
            let expected = text
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if expected == sha256 {
                "match".to_string()
            } else {
                if error.is_empty() {
                    error = format!("sha256 {sha256} does not match the sidecar's {expected}");
                }
                "mismatch".to_string()
            }
        }
        Err(_) => "missing".to_string(),
    };
    let mut checked = Vec::new();
    if sidecar != "missing" {
        checked.push("sha256".to_string());
    }
    if gzip != "not gzip" {
        checked.push("gzip".to_string());
    }
    if zstd != "not zstd" {
        checked.push("zstd".to_string());
    }
    let found = format_of(&head[..head_len]);
    let mut format_bad = false;
    if let Some(want) = promised_format(&shown) {
        checked.push("format".to_string());
        if found != Some(want) {
            format_bad = true;
            if error.is_empty() {
                error = format!(
                    "{shown} is not a {want}{}",
                    if bytes == 0 { " (it is empty)" } else { "" }
                );
            }
        }
    }
    if bytes == 0 && error.is_empty() {
        error = "the file is empty".into();
    }
    if checked.is_empty() && error.is_empty() {
        error =
            "nothing could be checked: no .sha256 sidecar, neither gzip nor zstd, and no format mtn recognises"
                .into();
    }
    let ok = !checked.is_empty()
        && bytes > 0
        && sidecar != "mismatch"
        && gzip != "corrupt"
        && zstd != "corrupt"
        && !format_bad;
    Ok(VerifyReport {
        path: shown,
        ok,
        bytes,
        sha256,
        sidecar,
        gzip,
        zstd,
        checked,
        error,
    })
}

struct TeeReader<'a, R: Read> {
    inner: R,
    hasher: &'a mut HashingWriter<io::Sink>,
}

impl<R: Read> Read for TeeReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        io::Write::write_all(self.hasher, &buf[..n])?;
        Ok(n)
    }
}

pub fn register(r: &mut Registrar) {
    r.category("files");
    host_fn!(r, "verify_backup", "Check a backup file: its `.sha256` sidecar matches and a gzip or zstd stream decodes to the end (`sha256sum -c` + `gzip -t` / `zstd -t`; the format is told by the first bytes, not the name).\n\nReturns `#{ path, ok, bytes, sha256, sidecar, gzip, zstd, checked, error }`; `sidecar` is \"match\", \"mismatch\" or \"missing\", `gzip` is \"ok\", \"corrupt\" or \"not gzip\" (likewise `zstd`), `checked` lists what was verified (\"sha256\", \"gzip\", \"zstd\", \"format\": a `.dump` must be a pg_dump archive, a `.db` an SQLite file). `ok` is false for an empty file and when nothing could be checked. A damaged file is a result (`ok: false`), not an error; a missing file is an error.\n\n```rhai\nlet d = dump_db(\"sqlite://examples/app.db\", #{ to: \"backups/\" });\nlet v = verify_backup(d.path);\nassert(v.ok, v.error);\n```", |ctx, path: &str| -> "Map" {
        verify(Path::new(path))
    });
}
