//! Clearing up after an interrupted run, before a log is rotated again.
//!
//! Compression writes `X.gz` through a temporary name and unlinks `X` only after the rename,
//! so a crash can leave a partial temporary file (no unique data: removed) or, for an instant,
//! both `X` and a complete `X.gz`. Then `X` is removed — but only when `X.gz` really holds `X`'s
//! bytes: an `X.gz` put there by something else is moved aside to `X.gz-YYYYMMDDHH.backup`,
//! logrotate's own name for it (test 0072), and `X` is compressed as usual.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::names::{numbered, with_suffix, Listing};
use super::steps::{exists, Rotator};

/// Does the gzip file `gz` decompress to exactly the bytes of `plain`? Both are opened without
/// following links or blocking on a pipe; anything unreadable counts as "no".
fn gz_holds(plain: &Path, gz: &Path) -> io::Result<bool> {
    let mut a = io::BufReader::new(crate::atomic::open_regular(plain)?);
    let mut b =
        flate2::read::MultiGzDecoder::new(io::BufReader::new(crate::atomic::open_regular(gz)?));
    let (mut x, mut y) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let n = a.read(&mut x)?;
        let mut got = 0;
        while got < n {
            match b.read(&mut y[got..n]) {
                Ok(0) => return Ok(false),
                Ok(m) => got += m,
                Err(_) => return Ok(false),
            }
        }
        if x[..n] != y[..n] {
            return Ok(false);
        }
        if n == 0 {
            // plain is at its end: gz must be too.
            return Ok(matches!(b.read(&mut y[..1]), Ok(0)));
        }
    }
}

impl Rotator<'_> {
    pub(super) fn recover(&mut self, dir: &Path, base: &str) -> io::Result<()> {
        if self.ctx.dry_run {
            return Ok(());
        }
        crate::atomic::remove_stale_temps(dir, |target| {
            target.ends_with(".gz") && target.starts_with(base) && target.len() > base.len()
        })?;
        if !self.listings.contains_key(dir) {
            let l = Listing::read(dir)?;
            self.listings.insert(dir.to_path_buf(), l);
        }
        let date = &self.date;
        let dateext = self.opts.dateext;
        let plain: Vec<PathBuf> = self.listings[dir]
            .starting_with(base)
            .filter(|n| {
                let rotation = if dateext {
                    date.is_rotation_of(base, n)
                } else {
                    numbered(base, n).is_some()
                };
                rotation && !n.ends_with(".gz") && exists(&dir.join(format!("{n}.gz")))
            })
            .map(|n| dir.join(n))
            .collect();
        for p in plain {
            let gz = with_suffix(&p, ".gz");
            let (Ok(pm), Ok(gm)) = (fs::symlink_metadata(&p), fs::symlink_metadata(&gz)) else {
                continue;
            };
            if !pm.is_file() || !gm.is_file() {
                continue;
            }
            if gz_holds(&p, &gz)? {
                fs::remove_file(&p)?;
                tracing::warn!(target: "mtn::rotate", "removed {} left by an interrupted compression ({} holds it)", p.display(), gz.display());
            } else {
                let backup = with_suffix(&gz, &self.now.format("-%Y%m%d%H.backup").to_string());
                fs::rename(&gz, &backup)?;
                tracing::warn!(target: "mtn::rotate", "{} does not hold {}: moved aside to {} (as logrotate does)", gz.display(), p.display(), backup.display());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gz_holds_only_the_same_bytes() {
        let d = tempfile::tempdir().unwrap();
        let (p, g) = (d.path().join("a.1"), d.path().join("a.1.gz"));
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&p, &big).unwrap();
        fs::write(&g, gz(&big)).unwrap();
        assert!(gz_holds(&p, &g).unwrap());
        fs::write(&g, gz(&big[..big.len() - 1])).unwrap();
        assert!(!gz_holds(&p, &g).unwrap());
        let mut longer = big.clone();
        longer.push(1);
        fs::write(&g, gz(&longer)).unwrap();
        assert!(!gz_holds(&p, &g).unwrap());
        fs::write(&g, "unexpected\n").unwrap();
        assert!(!gz_holds(&p, &g).unwrap());
    }
}
