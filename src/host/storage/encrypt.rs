//! Client-side encryption with age (the format of the `age` CLI), streamed.
//!
//! The object's sha256 must be known before the upload starts (it travels in the object's
//! metadata), and age picks a random file key, so the ciphertext is written once to a private
//! temporary file, hashed on the way, and that file is uploaded. Memory stays flat; the disk
//! needs room for one encrypted copy (`encrypt.tmp_dir` picks where).

use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use crate::atomic::HashingWriter;
use crate::error::{HostError, HostResult};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptOptions {
    /// age public keys (`age1...`).
    pub recipients: Vec<String>,
    /// Folder for the temporary ciphertext (default: the system temp folder).
    pub tmp_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecryptOptions {
    /// An age identity file (`AGE-SECRET-KEY-1...` lines, as written by `age-keygen`).
    pub identity_file: PathBuf,
}

fn recipients(opts: &EncryptOptions) -> HostResult<Vec<age::x25519::Recipient>> {
    if opts.recipients.is_empty() {
        return Err(HostError::invalid(
            "encrypt: `recipients` is empty: give at least one age public key (age1...)",
        ));
    }
    opts.recipients
        .iter()
        .map(|r| {
            age::x25519::Recipient::from_str(r.trim()).map_err(|e| {
                HostError::invalid(format!(
                    "encrypt: {r:?} is not an age public key (age1...): {e}"
                ))
            })
        })
        .collect()
}

/// Check the options without encrypting anything (dry-run and early validation).
pub fn validate(opts: &EncryptOptions) -> HostResult<()> {
    recipients(opts).map(|_| ())
}

/// Encrypt `src` into a new temporary file. Returns the file, its size and its sha256.
pub fn encrypt_to_temp(
    src: &Path,
    opts: &EncryptOptions,
) -> HostResult<(tempfile::NamedTempFile, u64, String)> {
    let recips = recipients(opts)?;
    let dir = opts.tmp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::Builder::new()
        .prefix(".mtn-encrypt-")
        .suffix(".age")
        .tempfile_in(&dir)
        .map_err(|e| {
            HostError::io(
                format!("creating a temporary file in {}", dir.display()),
                &e,
            )
        })?;
    let out = tmp
        .reopen()
        .map_err(|e| HostError::io(format!("opening {}", tmp.path().display()), &e))?;
    let encryptor =
        age::Encryptor::with_recipients(recips.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| HostError::invalid(format!("encrypt: {e}")))?;
    let hashing = HashingWriter::new(io::BufWriter::with_capacity(1 << 20, out));
    let mut writer = encryptor
        .wrap_output(hashing)
        .map_err(|e| HostError::io("starting age encryption", &e))?;
    let mut input =
        File::open(src).map_err(|e| HostError::io(format!("opening {}", src.display()), &e))?;
    io::copy(&mut input, &mut writer)
        .map_err(|e| HostError::io(format!("encrypting {}", src.display()), &e))?;
    let hashing = writer
        .finish()
        .map_err(|e| HostError::io("finishing age encryption", &e))?;
    let (mut buf, bytes, sha) = hashing.finish();
    buf.flush()
        .map_err(|e| HostError::io(format!("writing {}", tmp.path().display()), &e))?;
    Ok((tmp, bytes, sha))
}

/// Decrypt the age file `src` into `dest`; returns the plaintext size.
pub fn decrypt_into(src: &Path, dest: &mut impl Write, opts: &DecryptOptions) -> HostResult<u64> {
    let idpath = &opts.identity_file;
    let ids = age::IdentityFile::from_file(idpath.to_string_lossy().to_string())
        .map_err(|e| {
            HostError::io(
                format!("reading age identity file {}", idpath.display()),
                &e,
            )
        })?
        .into_identities()
        .map_err(|e| HostError::invalid(format!("age identity file {}: {e}", idpath.display())))?;
    let input =
        File::open(src).map_err(|e| HostError::io(format!("opening {}", src.display()), &e))?;
    let decryptor = age::Decryptor::new(BufReader::with_capacity(1 << 20, input)).map_err(|e| {
        HostError::verification(format!("{} is not an age file: {e}", src.display()))
    })?;
    let mut reader = decryptor
        .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| {
            HostError::verification(format!(
                "cannot decrypt with the identities in {}: {e}",
                idpath.display()
            ))
        })?;
    io::copy(&mut reader, dest)
        .map_err(|e| HostError::verification(format!("decrypting {}: {e}", src.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn round_trip_and_bad_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let key = age::x25519::Identity::generate();
        let idfile = dir.path().join("key.txt");
        std::fs::write(&idfile, format!("{}\n", key.to_string().expose_secret())).unwrap();
        let src = dir.path().join("plain");
        std::fs::write(&src, b"hello age").unwrap();
        let opts = EncryptOptions {
            recipients: vec![key.to_public().to_string()],
            tmp_dir: Some(dir.path().to_path_buf()),
        };
        let (tmp, n, sha) = encrypt_to_temp(&src, &opts).unwrap();
        assert_eq!(n, std::fs::metadata(tmp.path()).unwrap().len());
        assert_eq!(sha, crate::atomic::sha256_file(tmp.path()).unwrap().1);
        let mut out = Vec::new();
        decrypt_into(
            tmp.path(),
            &mut out,
            &DecryptOptions {
                identity_file: idfile,
            },
        )
        .unwrap();
        assert_eq!(out, b"hello age");
        let bad = EncryptOptions {
            recipients: vec!["age1nope".into()],
            tmp_dir: None,
        };
        assert!(validate(&bad).unwrap_err().message.contains("age1nope"));
    }
}
