//! Writing a `.tar.gz` (or `.tar.zst`) whose entries are compressed before their size is known.
//!
//! A tar entry needs its size in the header, so each collection is spooled to a temporary file
//! first. To keep the dump from paying for compression twice (and to overlap compression with
//! the network), the spool already holds gzip members of the entry's data: the archive is then
//! assembled as a multi-member gzip stream — a member for the tar header, the spooled members
//! copied byte for byte, a member for the padding — which `tar -xzf`, `gunzip` and every
//! multi-member gzip reader see as one ordinary `.tar.gz`. zstd frames concatenate the same way
//! (`zstd -d`, `tar --zstd`), so a `.tar.zst` is built alike with frames instead of members.

use std::io::{self, Read, Write};

use crate::host::codec::Codec;

/// Tar header block(s) for a regular file (a GNU long-name entry first when the path needs it).
pub fn tar_header(path: &str, size: u64, mtime: u64) -> io::Result<Vec<u8>> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime);
    let mut b = tar::Builder::new(Vec::new());
    // With an empty reader the builder writes the header blocks and no data: exactly the
    // bytes that precede the entry's content.
    b.append_data(&mut h, path, io::empty())?;
    let bytes = b.get_ref().clone();
    Ok(bytes)
}

fn padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// The archive being assembled: gzip members written to `out`, tracking the tar stream size.
pub struct TarGz<W: Write> {
    out: W,
    codec: Codec,
    /// Size of the uncompressed tar stream so far.
    pub raw_bytes: u64,
    mtime: u64,
}

impl<W: Write> TarGz<W> {
    pub fn new(out: W, codec: Codec, mtime: u64) -> Self {
        TarGz {
            out,
            codec,
            raw_bytes: 0,
            mtime,
        }
    }

    /// A small file (metadata): header, data and padding in one member.
    pub fn small_file(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        let mut block = tar_header(path, data.len() as u64, self.mtime)?;
        block.extend_from_slice(data);
        block.resize(block.len() + padding(data.len() as u64), 0);
        self.raw_bytes += block.len() as u64;
        self.out.write_all(&self.codec.member(&block)?)
    }

    /// An entry whose data of `size` bytes is already members (frames) of the codec in `members`.
    pub fn precompressed(
        &mut self,
        path: &str,
        size: u64,
        members: &mut impl Read,
    ) -> io::Result<()> {
        let header = tar_header(path, size, self.mtime)?;
        self.raw_bytes += header.len() as u64;
        self.out.write_all(&self.codec.member(&header)?)?;
        io::copy(members, &mut self.out)?;
        self.raw_bytes += size;
        let pad = padding(size);
        if pad > 0 {
            self.raw_bytes += pad as u64;
            self.out.write_all(&self.codec.member(&vec![0u8; pad])?)?;
        }
        Ok(())
    }

    /// The end-of-archive marker; returns the underlying writer and the tar stream's size.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let trailer = [0u8; 1024];
        self.raw_bytes += trailer.len() as u64;
        self.out.write_all(&self.codec.member(&trailer)?)?;
        self.out.flush()?;
        Ok((self.out, self.raw_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::compress::ParallelGzWriter;
    use flate2::read::MultiGzDecoder;

    #[test]
    fn archive_reads_back_with_tar_crate() {
        let long = format!("db/{}.bson", "c".repeat(150));
        let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut spool = ParallelGzWriter::with_options(Vec::new(), 6, 2, 65536);
        spool.write_all(&data).unwrap();
        let members = spool.finish().unwrap();

        let mut t = TarGz::new(Vec::new(), Codec::Gzip(6), 1_700_000_000);
        t.small_file("db/a.metadata.json", b"{}").unwrap();
        t.precompressed(&long, data.len() as u64, &mut &members[..])
            .unwrap();
        let (gz, raw) = t.finish().unwrap();

        let mut plain = Vec::new();
        MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain.len() as u64, raw);
        let mut ar = tar::Archive::new(&plain[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().to_string();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            seen.push((name, body));
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], ("db/a.metadata.json".to_string(), b"{}".to_vec()));
        assert_eq!(seen[1].0, long);
        assert_eq!(seen[1].1, data);
    }

    #[test]
    fn zstd_archive_reads_back() {
        let data = b"some bson".to_vec();
        let c = Codec::Zstd(3);
        let mut spool = c.writer(Vec::new(), 2).unwrap();
        spool.write_all(&data).unwrap();
        let frames = spool.finish().unwrap();
        let mut t = TarGz::new(Vec::new(), c, 1_700_000_000);
        t.precompressed("db/c.bson", data.len() as u64, &mut &frames[..])
            .unwrap();
        let (z, _) = t.finish().unwrap();
        let (_, r) = crate::host::codec::reader(&z[..]).unwrap();
        let mut ar = tar::Archive::new(r);
        let mut e = ar.entries().unwrap().next().unwrap().unwrap();
        let mut body = Vec::new();
        e.read_to_end(&mut body).unwrap();
        assert_eq!(body, data);
    }
}
