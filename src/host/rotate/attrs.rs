//! `create`: the mode and owner of the new, empty log (logrotate's `create mode owner group`).

use std::fs;
use std::os::unix::fs::MetadataExt;

use serde::Deserialize;

use crate::error::{HostError, HostResult};

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CreateOpt {
    On(bool),
    Mode(String),
    Full {
        mode: Option<String>,
        owner: Option<String>,
        group: Option<String>,
    },
}

fn lookup_user(name: &str) -> HostResult<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c = std::ffi::CString::new(name).map_err(|_| HostError::invalid("bad user name"))?;
    // SAFETY: c is a valid C string; the result is read before any other getpw* call.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(HostError::invalid(format!("create: unknown user {name:?}")));
    }
    Ok(unsafe { (*pw).pw_uid })
}

fn lookup_group(name: &str) -> HostResult<u32> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let c = std::ffi::CString::new(name).map_err(|_| HostError::invalid("bad group name"))?;
    // SAFETY: as above, for getgrnam.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(HostError::invalid(format!(
            "create: unknown group {name:?}"
        )));
    }
    Ok(unsafe { (*gr).gr_gid })
}

/// Mode, uid, gid for the new empty log, defaulting to the old log's (as logrotate's `create`
/// without arguments).
pub fn create_attrs(c: &CreateOpt, md: &fs::Metadata) -> HostResult<Option<(u32, u32, u32)>> {
    use crate::host::fs::ops::parse_mode;
    let old = (md.mode() & 0o7777, md.uid(), md.gid());
    Ok(match c {
        CreateOpt::On(false) => None,
        CreateOpt::On(true) => Some(old),
        CreateOpt::Mode(m) => Some((parse_mode(m)?, old.1, old.2)),
        CreateOpt::Full { mode, owner, group } => Some((
            mode.as_deref()
                .map(parse_mode)
                .transpose()?
                .unwrap_or(old.0),
            owner
                .as_deref()
                .map(lookup_user)
                .transpose()?
                .unwrap_or(old.1),
            group
                .as_deref()
                .map(lookup_group)
                .transpose()?
                .unwrap_or(old.2),
        )),
    })
}
