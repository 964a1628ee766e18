//! Directory handles that never follow symlinks.
//!
//! Every directory is opened relative to its parent's descriptor with `O_NOFOLLOW`, and files
//! are examined and unlinked with `fstatat`/`unlinkat` relative to that descriptor. A symlink
//! swapped in for a directory between listing and deleting therefore makes the open fail instead
//! of leading the walk out of the root, and no path is ever re-resolved from `/`.

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

pub struct Entry {
    pub name: CString,
    pub kind: Kind,
}

pub struct Dir {
    fd: OwnedFd,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::other("file name contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub fn kind_of_mode(mode: libc::mode_t) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

impl Dir {
    /// Open `path` as a directory; fails if its last component is a symlink.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Dir { fd: f.into() })
    }

    /// Open a child directory of this one without following a symlink.
    pub fn open_child(&self, name: &CStr) -> io::Result<Dir> {
        // SAFETY: name is a valid C string; the returned descriptor is owned below.
        let fd = check(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fd was just returned by openat and is not owned elsewhere.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Open a descendant by its relative components, each without following symlinks.
    pub fn open_rel(&self, rel: &Path) -> io::Result<Dir> {
        let mut cur = Dir {
            fd: self.fd.try_clone()?,
        };
        for c in rel.components() {
            cur = cur.open_child(&cstr(c.as_os_str())?)?;
        }
        Ok(cur)
    }

    /// Every entry except `.` and `..`, with its type (from `d_type`, or `lstat` when the file
    /// system does not report it).
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        // fdopendir takes ownership of the descriptor it is given, so hand it a duplicate.
        let dup = check(unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
        // SAFETY: dup is a fresh descriptor for a directory.
        let dirp = unsafe { libc::fdopendir(dup) };
        if dirp.is_null() {
            let e = io::Error::last_os_error();
            unsafe { libc::close(dup) };
            return Err(e);
        }
        // The duplicate shares the file offset with the original; start from the beginning.
        unsafe { libc::rewinddir(dirp) };
        let mut out = Vec::new();
        let result = loop {
            // readdir signals errors only through errno, so clear it first.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: dirp is a valid DIR* until closedir below.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                let errno = unsafe { *libc::__errno_location() };
                break if errno == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(errno))
                };
            }
            // SAFETY: d_name is a NUL-terminated string inside the dirent.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let kind = match unsafe { (*ent).d_type } {
                libc::DT_REG => Kind::File,
                libc::DT_DIR => Kind::Dir,
                libc::DT_LNK => Kind::Symlink,
                libc::DT_UNKNOWN => match self.lstat(name) {
                    Ok(st) => kind_of_mode(st.st_mode),
                    Err(_) => Kind::Other,
                },
                _ => Kind::Other,
            };
            out.push(Entry {
                name: name.to_owned(),
                kind,
            });
        };
        unsafe { libc::closedir(dirp) };
        result.map(|_| out)
    }

    /// `lstat` of a child.
    pub fn lstat(&self, name: &CStr) -> io::Result<libc::stat> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: st is written by fstatat on success.
        check(unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })?;
        Ok(unsafe { st.assume_init() })
    }

    /// Remove a child file or symlink (never what a symlink points to).
    pub fn unlink(&self, name: &CStr) -> io::Result<()> {
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) }).map(|_| ())
    }

    /// Remove an empty child directory.
    pub fn rmdir(&self, name: &CStr) -> io::Result<()> {
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })
            .map(|_| ())
    }
}

/// Modification time of a stat result as Unix seconds with fraction.
pub fn mtime_of(st: &libc::stat) -> f64 {
    st.st_mtime as f64 + st.st_mtime_nsec as f64 / 1e9
}

pub fn name_os(name: &CStr) -> &OsStr {
    OsStr::from_bytes(name.to_bytes())
}

/// Run `f` over `items` on `threads` threads, each item exactly once.
pub fn par_for_each<T: Sync>(items: &[T], threads: usize, f: impl Fn(&T) + Sync) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let threads = threads.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                match items.get(i) {
                    Some(item) => f(item),
                    None => break,
                }
            });
        }
    });
}

/// Threads for file-system work: unlinks and stats block in the kernel, so more threads than
/// cores keep the disk queue full.
pub fn io_threads() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cores * 2).clamp(2, 16)
}
