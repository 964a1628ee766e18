//! The one place compression formats are chosen, written and recognised: gzip (parallel
//! members, see compress.rs) and zstd (libzstd's own multi-threaded compressor, `zstd -T0`).
//!
//! Readers pick the decoder from the first bytes of the data, never from a file name: a dump
//! renamed by hand, or a `.gz` that is really zstd, still reads. Both formats concatenate: a
//! sequence of gzip members, or of zstd frames, decodes as one stream (the MongoDB archive
//! relies on it).

use std::io::{self, BufRead, Read, Write};

use crate::error::{HostError, HostResult};
use crate::host::compress::{compress_member, ParallelGzWriter, DEFAULT_CHUNK};

/// A compression setting: format and level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Level 1-9 (0 = stored members, used for wrapping).
    Gzip(u32),
    /// Level 1-22.
    Zstd(i32),
}

/// zstd's own default level (`zstd` with no `-N`).
pub const ZSTD_DEFAULT: i32 = 3;
pub const GZIP_DEFAULT: u32 = 6;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// What the first bytes of some data say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Gzip,
    Zstd,
    Plain,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Plain => "none",
        }
    }
}

pub fn detect(head: &[u8]) -> Format {
    if head.starts_with(&GZIP_MAGIC) {
        Format::Gzip
    } else if head.starts_with(&ZSTD_MAGIC) {
        Format::Zstd
    } else {
        Format::Plain
    }
}

impl Codec {
    /// The file name suffix: `.gz` or `.zst` (what gzip and zstd themselves append).
    pub fn ext(self) -> &'static str {
        match self {
            Codec::Gzip(_) => ".gz",
            Codec::Zstd(_) => ".zst",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::Gzip(_) => "gzip",
            Codec::Zstd(_) => "zstd",
        }
    }

    /// `format` ("gzip" | "gz" | "zstd" | "zst") at `level` (the format's default when None).
    pub fn new(format: &str, level: Option<i64>) -> HostResult<Codec> {
        match format.trim().to_ascii_lowercase().as_str() {
            "gzip" | "gz" => {
                let l = level.unwrap_or(GZIP_DEFAULT as i64);
                if !(1..=9).contains(&l) {
                    return Err(HostError::invalid(format!(
                        "gzip level must be 1 to 9, got {l}"
                    )));
                }
                Ok(Codec::Gzip(l as u32))
            }
            "zstd" | "zst" => {
                let l = level.unwrap_or(ZSTD_DEFAULT as i64);
                if !(1..=22).contains(&l) {
                    return Err(HostError::invalid(format!(
                        "zstd level must be 1 to 22, got {l}"
                    )));
                }
                Ok(Codec::Zstd(l as i32))
            }
            other => Err(HostError::invalid(format!(
                "compression {other:?} is not known (use \"gzip\" or \"zstd\")"
            ))),
        }
    }

    /// A setting as scripts write it: "gzip", "gzip:9", "zstd", "zstd:19". `Ok(None)` for
    /// "none"/"no"/"off".
    pub fn parse(text: &str) -> HostResult<Option<Codec>> {
        let t = text.trim().to_ascii_lowercase();
        if matches!(t.as_str(), "none" | "no" | "off" | "") {
            return Ok(None);
        }
        let (format, level) = match t.split_once(':') {
            Some((f, l)) => match l.trim().parse::<i64>() {
                Ok(l) => (f, Some(l)),
                Err(_) => {
                    return Err(HostError::invalid(format!(
                        "compress: {t:?} is not a valid setting (the level after ':' is a number)"
                    )))
                }
            },
            None => (t.as_str(), None),
        };
        Codec::new(format, level).map(Some).map_err(|e| {
            HostError::invalid(format!(
                "compress: {t:?}: {} (use \"gzip\", \"gzip:1\"..\"gzip:9\", \"zstd\", \"zstd:1\"..\"zstd:22\" or \"none\")",
                e.message
            ))
        })
    }

    /// A streaming compressor into `inner` using up to `threads` threads.
    pub fn writer<W: Write>(self, inner: W, threads: usize) -> io::Result<Encoder<W>> {
        match self {
            Codec::Gzip(level) => Ok(Encoder::Gz(ParallelGzWriter::with_options(
                inner,
                level,
                threads,
                DEFAULT_CHUNK,
            ))),
            Codec::Zstd(level) => {
                let mut z = zstd::stream::write::Encoder::new(inner, level)?;
                // Workers compress while the caller keeps reading its source (zstd -T<n>);
                // a frame checksum lets `zstd -t` and verify_backup prove the content.
                z.multithread(threads.max(1) as u32)?;
                z.include_checksum(true)?;
                Ok(Encoder::Zstd(z, 0))
            }
        }
    }

    /// One complete, independently decodable piece (gzip member, zstd frame) holding `data`.
    pub fn member(self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Codec::Gzip(level) => compress_member(data, level),
            Codec::Zstd(level) => {
                let mut z = zstd::stream::write::Encoder::new(Vec::new(), level)?;
                z.include_checksum(true)?;
                z.write_all(data)?;
                z.finish()
            }
        }
    }
}

/// A compressor being written to.
pub enum Encoder<W: Write> {
    Gz(ParallelGzWriter<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>, u64),
}

impl<W: Write> Encoder<W> {
    /// Uncompressed bytes written so far.
    pub fn raw_bytes(&self) -> u64 {
        match self {
            Encoder::Gz(g) => g.raw_bytes(),
            Encoder::Zstd(_, n) => *n,
        }
    }

    /// Compress what is left, end the stream and return the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gz(g) => g.finish(),
            Encoder::Zstd(z, _) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gz(g) => g.write(buf),
            Encoder::Zstd(z, raw) => {
                let n = z.write(buf)?;
                *raw += n as u64;
                Ok(n)
            }
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        // Neither format gains from an early flush (it only makes smaller blocks); `finish`
        // writes everything.
        Ok(())
    }
}

/// The decoder `r`'s first bytes call for (plain data passes through).
pub fn reader<'a, R: BufRead + Send + 'a>(
    mut r: R,
) -> io::Result<(Format, Box<dyn Read + Send + 'a>)> {
    let format = detect(r.fill_buf()?);
    let boxed: Box<dyn Read + Send + 'a> = match format {
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        Format::Plain => Box::new(r),
    };
    Ok((format, boxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Codec, data: &[u8]) -> Vec<u8> {
        let mut w = c.writer(Vec::new(), 2).unwrap();
        w.write_all(data).unwrap();
        assert_eq!(w.raw_bytes(), data.len() as u64);
        let out = w.finish().unwrap();
        let (f, mut r) = reader(&out[..]).unwrap();
        assert_eq!(f.name(), c.name());
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        back
    }

    #[test]
    fn both_formats_roundtrip_and_are_detected() {
        let big: Vec<u8> = (0..1_000_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for c in [Codec::Gzip(6), Codec::Zstd(3), Codec::Zstd(19)] {
            assert_eq!(roundtrip(c, b""), b"");
            assert_eq!(roundtrip(c, b"hello"), b"hello");
            assert_eq!(roundtrip(c, &big), big);
        }
        let (f, _) = reader(&b"plain text"[..]).unwrap();
        assert_eq!(f, Format::Plain);
    }

    #[test]
    fn frames_concatenate() {
        let c = Codec::Zstd(3);
        let mut joined = c.member(b"abc").unwrap();
        joined.extend(c.member(b"def").unwrap());
        let (_, mut r) = reader(&joined[..]).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "abcdef");
    }

    #[test]
    fn settings() {
        assert_eq!(Codec::parse("zstd").unwrap(), Some(Codec::Zstd(3)));
        assert_eq!(Codec::parse("zstd:19").unwrap(), Some(Codec::Zstd(19)));
        assert_eq!(Codec::parse("GZIP:9").unwrap(), Some(Codec::Gzip(9)));
        assert_eq!(Codec::parse("none").unwrap(), None);
        assert!(Codec::parse("zstd:23").is_err());
        assert!(Codec::parse("gzip:0").is_err());
        assert!(Codec::parse("lz4").is_err());
        assert!(Codec::parse("zstd:x").is_err());
    }
}
