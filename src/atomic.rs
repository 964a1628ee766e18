//! Writing files so that they are either complete under their final name or absent.
//!
//! Data goes to a temporary file in the same directory, is fsynced, then renamed over the final
//! name, and the directory is fsynced so the rename itself survives a crash. A value dropped
//! without `commit()` removes its temporary file; a process killed with SIGKILL may leave the
//! temporary file behind, but never a partial file under the final name.
//!
//! mtn often runs as root over folders that other users can write. So the temporary file is
//! never a predictable name that someone could plant a symlink at: it is `.NAME.mtn-<random>.tmp`,
//! created with `O_CREAT|O_EXCL|O_NOFOLLOW` (mode 0600) relative to an opened handle of the
//! folder, renamed with `renameat` inside that same folder, and its mode and owner are only ever
//! changed through the open descriptor, never through a path. The folder handle itself is
//! checked to be the folder the caller named (see [`open_dir_checked`]), so a folder on the way
//! swapped for a symlink after the path policy approved it makes the write fail instead of
//! landing elsewhere.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub struct AtomicFile {
    dir: OwnedFd,
    tmp_name: CString,
    dest_name: CString,
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<File>,
}

fn cstring(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::other("file name contains a NUL byte"))
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The name of a temporary file mtn creates next to `name`: hidden, unpredictable, and ending
/// in `.tmp` so listings of backups skip it.
pub fn temp_name(name: &OsStr) -> OsString {
    let mut n = OsString::from(".");
    n.push(name);
    n.push(format!(".mtn-{:016x}.tmp", rand::random::<u64>()));
    n
}

/// Whether `name` is one of mtn's temporary names (see [`temp_name`], [`TempDir`]).
pub fn is_temp_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".tmp") else {
        return false;
    };
    match stem.rsplit_once(".mtn-") {
        Some((head, tail)) => {
            head.starts_with('.')
                && !tail.is_empty()
                && tail.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Open `dir` as a directory handle and make sure it is the directory the path names: the last
/// component is opened with `O_NOFOLLOW`, and if the kernel's view of the opened folder differs
/// from the lexical path, every symlink on the way must belong to root or to us (a user who can
/// only write inside a root cannot plant one of those).
pub fn open_dir_checked(dir: &Path) -> io::Result<OwnedFd> {
    let abs = crate::policy::absolute(dir);
    let c = cstring(abs.as_os_str())?;
    // SAFETY: c is a valid C string; the descriptor is owned below.
    let fd = cvt(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: fd was just returned by open and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
        if real != abs && !symlinks_trusted(&abs) {
            return Err(io::Error::other(format!(
                "{} leads to {}: a folder on the way is a symlink owned by another user; refusing to write through it",
                abs.display(),
                real.display()
            )));
        }
    }
    Ok(fd)
}

/// Every symlink among the components of `path` is owned by root or by the effective user.
pub fn symlinks_trusted(path: &Path) -> bool {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut cur = PathBuf::new();
    for c in path.components() {
        cur.push(c);
        if let Ok(md) = std::fs::symlink_metadata(&cur) {
            if md.file_type().is_symlink() && md.uid() != 0 && md.uid() != me {
                return false;
            }
        }
    }
    true
}

impl AtomicFile {
    /// Start writing `dest` (created 0600; give it another mode with [`AtomicFile::set_mode`]).
    /// Its parent directory must exist.
    pub fn create(dest: &Path) -> io::Result<Self> {
        let dest = crate::policy::absolute(dest);
        let parent = dest.parent().unwrap_or(Path::new("/")).to_path_buf();
        let name = dest
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} names no file", dest.display())))?
            .to_os_string();
        let dir = open_dir_checked(&parent)?;
        let mut tries = 0;
        loop {
            let tmp_os = temp_name(&name);
            let tmp_name = cstring(&tmp_os)?;
            // SAFETY: valid descriptor and C string; the new descriptor is owned below.
            let fd = unsafe {
                libc::openat(
                    dir.as_raw_fd(),
                    tmp_name.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_NOFOLLOW
                        | libc::O_CLOEXEC,
                    0o600 as libc::c_uint,
                )
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                tries += 1;
                if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 {
                    continue;
                }
                return Err(e);
            }
            // SAFETY: fd was just returned by openat and is owned by nobody else.
            let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            return Ok(AtomicFile {
                dir,
                tmp_name,
                dest_name: cstring(&name)?,
                tmp: parent.join(&tmp_os),
                dest,
                file: Some(file),
            });
        }
    }

    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    pub fn file(&mut self) -> &mut File {
        // The Option is only taken by commit(), which consumes self.
        self.file.as_mut().expect("AtomicFile used after commit")
    }

    /// Set the permission bits of the file being written (through its descriptor).
    pub fn set_mode(&mut self, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        self.file()
            .set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
    }

    /// fsync the data, rename it into place, fsync the directory.
    pub fn commit(mut self) -> io::Result<()> {
        if let Some(f) = self.file.take() {
            if let Err(e) = f.sync_all() {
                self.remove_tmp();
                return Err(e);
            }
        }
        // SAFETY: valid descriptor and C strings. Both names are relative to the same folder
        // handle, so the rename cannot be redirected by a path swapped in meanwhile.
        let r = cvt(unsafe {
            libc::renameat(
                self.dir.as_raw_fd(),
                self.tmp_name.as_ptr(),
                self.dir.as_raw_fd(),
                self.dest_name.as_ptr(),
            )
        });
        if let Err(e) = r {
            self.remove_tmp();
            return Err(e);
        }
        // SAFETY: valid descriptor. Best effort, as in sync_dir.
        unsafe { libc::fsync(self.dir.as_raw_fd()) };
        Ok(())
    }

    fn remove_tmp(&self) {
        // SAFETY: valid descriptor and C string; unlinkat never follows a symlink.
        unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.tmp_name.as_ptr(), 0) };
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.remove_tmp();
        }
    }
}

/// A private (0700) temporary folder next to `dest`, for tools that write a folder of files
/// themselves (`pg_dump -Fd`, directory dumps). The tool writes to [`TempDir::inner`], then
/// [`TempDir::commit`] renames that to `dest`. Dropped without commit, everything is removed.
pub struct TempDir {
    dir: tempfile::TempDir,
    inner: PathBuf,
    dest: PathBuf,
}

impl TempDir {
    pub fn create(dest: &Path) -> io::Result<Self> {
        let dest = crate::policy::absolute(dest);
        let parent = dest.parent().unwrap_or(Path::new("/")).to_path_buf();
        // The folder must be the one named (no symlink swapped in on the way).
        drop(open_dir_checked(&parent)?);
        let mut prefix = OsString::from(".");
        prefix.push(dest.file_name().unwrap_or_default());
        prefix.push(".mtn-");
        // mkdir with a random name never follows a link; tempfile makes it 0700.
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .tempdir_in(&parent)?;
        let inner = dir.path().join("data");
        Ok(TempDir { dir, inner, dest })
    }

    /// Where the tool writes: a path inside the private folder that does not exist yet.
    pub fn inner(&self) -> &Path {
        &self.inner
    }

    /// fsync the folder, rename it into place, fsync the parent.
    pub fn commit(self) -> io::Result<()> {
        if let Ok(f) = File::open(&self.inner) {
            let _ = f.sync_all();
        }
        std::fs::rename(&self.inner, &self.dest)?;
        sync_dir(&self.dest);
        drop(self.dir);
        Ok(())
    }
}

/// The final name a temporary name of mtn's was made for (`.NAME.mtn-x.tmp` → `NAME`).
pub fn temp_target(temp: &str) -> Option<&str> {
    if !is_temp_name(temp) {
        return None;
    }
    let stem = temp.strip_suffix(".tmp")?;
    let (head, _) = stem.rsplit_once(".mtn-")?;
    head.strip_prefix('.')
}

/// Remove mtn's leftover temporary files and folders in `dir` (left by a run killed with
/// SIGKILL) whose final name satisfies `wanted`. Only names mtn makes ([`is_temp_name`]) are
/// touched, never through a symlink. Returns how many were removed.
pub fn remove_stale_temps(dir: &Path, wanted: impl Fn(&str) -> bool) -> io::Result<usize> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for e in rd.flatten() {
        let fname = e.file_name().to_string_lossy().to_string();
        if !temp_target(&fname).is_some_and(&wanted) {
            continue;
        }
        let p = e.path();
        if std::fs::symlink_metadata(&p)?.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
        n += 1;
    }
    Ok(n)
}

/// Open `path` for reading without following a symlink at its last component, and only if it
/// is a regular file (a FIFO would block, a device is never a backup source).
pub fn open_regular(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::other(format!(
                    "{} is a symlink; it is not followed",
                    path.display()
                ))
            } else {
                e
            }
        })?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    Ok(f)
}

/// The error a long copy returns when its run was stopped (timeout, signal).
pub fn cancelled() -> io::Error {
    io::Error::other("stopped: the run was cancelled")
}

/// `io::copy` that checks `stop` between 1 MiB chunks, so a timeout or a signal ends a long
/// copy within milliseconds instead of when the file ends.
pub fn copy_until(
    r: &mut impl io::Read,
    w: &mut impl Write,
    stop: &(dyn Fn() -> bool + Sync),
) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        if stop() {
            return Err(cancelled());
        }
        let got = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..got])?;
        n += got as u64;
    }
}

/// Create `dir` and its missing parents as private folders (0700, whatever the umask): they
/// hold dumps, exports, state and history. Existing folders keep their mode.
pub fn create_private_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The process umask, read from /proc (setting and restoring it would race with other threads).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// fsync a file's directory so a rename or unlink in it is durable. Best effort: some file
/// systems refuse to open directories for syncing.
pub fn sync_dir(path: &Path) {
    if let Some(parent) = path.parent() {
        let dir = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Write `data` to `dest` atomically.
pub fn write_atomic(dest: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest)?;
    f.write_all(data)?;
    f.commit()
}

/// Write the `sha256sum`-compatible sidecar `<dest>.sha256` ("<hex>  <file name>\n").
pub fn write_sha256_sidecar(dest: &Path, sha256_hex: &str) -> io::Result<PathBuf> {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    let file_name = name.to_string_lossy().to_string();
    name.push(".sha256");
    let sidecar = dest.with_file_name(name);
    write_atomic(&sidecar, format!("{sha256_hex}  {file_name}\n").as_bytes())?;
    Ok(sidecar)
}

/// A writer that counts and hashes what passes through it.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
    /// Returns the inner writer, the byte count and the hex sha256.
    pub fn finish(self) -> (W, u64, String) {
        (self.inner, self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> io::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let mut w = HashingWriter::new(io::sink());
    io::copy(&mut f, &mut w)?;
    let (_, n, h) = w.finish();
    Ok((n, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.txt");
        {
            let mut f = AtomicFile::create(&dest).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert!(!dest.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut f = AtomicFile::create(&dest).unwrap();
        f.write_all(b"whole").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"whole");
        let side = write_sha256_sidecar(&dest, "ab").unwrap();
        assert_eq!(std::fs::read_to_string(side).unwrap(), "ab  a.txt\n");
    }

    #[test]
    fn a_symlink_at_the_final_name_is_replaced_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let dest = dir.path().join("out");
        std::os::unix::fs::symlink(&victim, &dest).unwrap();
        write_atomic(&dest, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let md = std::fs::symlink_metadata(&dest).unwrap();
        assert!(md.is_file());
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn temp_names_are_unpredictable_and_recognised() {
        let a = temp_name(OsStr::new("db.sql.gz"));
        let b = temp_name(OsStr::new("db.sql.gz"));
        assert_ne!(a, b);
        assert!(is_temp_name(&a.to_string_lossy()));
        assert!(!is_temp_name("db.sql.gz"));
        assert!(!is_temp_name("db.sql.gz.tmp"));
    }

    #[test]
    fn stale_temps_are_removed_but_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("db.gz");
        std::fs::write(&keep, b"x").unwrap();
        let stale = dir.path().join(temp_name(OsStr::new("db.gz")));
        std::fs::write(&stale, b"half").unwrap();
        let t = TempDir::create(&dir.path().join("dump")).unwrap();
        std::fs::create_dir(t.inner()).unwrap();
        std::mem::forget(t);
        assert_eq!(remove_stale_temps(dir.path(), |n| n == "db.gz").unwrap(), 1);
        assert_eq!(remove_stale_temps(dir.path(), |n| n == "dump").unwrap(), 1);
        assert!(keep.exists() && !stale.exists());
    }
}
