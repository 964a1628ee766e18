//! `verify_backup`: prove an artifact on disk is intact before trusting it — the sha256 sidecar
//! matches and a gzip stream decodes to its end (what `sha256sum -c` and `gzip -t` check).

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::atomic::HashingWriter;
use crate::engine::registry::Registrar;
use crate::host::binding::call;
use crate::host::error::{HostError, HostResult};

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
    pub error: String,
}

pub fn verify(path: &Path) -> HostResult<VerifyReport> {
    let shown = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| HostError::io(format!("verify_backup {shown}"), &e))?;
    if !meta.is_file() {
        return Err(HostError::invalid(format!(
            "verify_backup: {shown} is not a file"
        )));
    }
    let mut hasher = HashingWriter::new(io::sink());
    let is_gz = shown.ends_with(".gz") || shown.ends_with(".tgz");
    let mut gzip = "not gzip".to_string();
    let mut error = String::new();
    let f = File::open(path).map_err(|e| HostError::io(format!("verify_backup {shown}"), &e))?;
    if is_gz {
        // Hash the compressed bytes while decoding them: one read of the file does both checks.
        let tee = TeeReader {
            inner: BufReader::new(f),
            hasher: &mut hasher,
        };
        let mut dec = flate2::read::MultiGzDecoder::new(tee);
        match io::copy(&mut dec, &mut io::sink()) {
            Ok(_) => gzip = "ok".into(),
            Err(e) => {
                gzip = "corrupt".into();
                error = format!("gzip stream is corrupt: {e}");
            }
        }
        // Hash whatever the decoder did not consume (trailing bytes, or after corruption).
        let mut rest = dec.into_inner();
        io::copy(&mut rest, &mut io::sink())
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
    let ok = sidecar != "mismatch" && gzip != "corrupt";
    Ok(VerifyReport {
        path: shown,
        ok,
        bytes,
        sha256,
        sidecar,
        gzip,
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
    let ctx = r.ctx.clone();
    r.add(
        "verify_backup",
        &["path: &str"],
        "Map",
        "Check a backup file: its `.sha256` sidecar matches and a gzip stream decodes to the end (`sha256sum -c` + `gzip -t`).\n\nReturns `#{ path, ok, bytes, sha256, sidecar, gzip, error }`; `sidecar` is \"match\", \"mismatch\" or \"missing\", `gzip` is \"ok\", \"corrupt\" or \"not gzip\". A damaged file is a result (`ok: false`), not an error; a missing file is an error.\n\n```rhai\nlet d = dump_db(\"sqlite://example/app.db\", #{ to: \"backups/\" });\nlet v = verify_backup(d.path);\nassert(v.ok, v.error);\n```",
        move |path: &str| call(&ctx, "verify_backup", || verify(Path::new(path))),
    );
}
