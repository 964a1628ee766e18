//! `scan_secrets`: the "basic check for passwords in code" of a security audit, done with real
//! patterns instead of `grep -r password`. Findings show the location and the rule, never the
//! secret itself.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{HostError, HostResult};
use crate::host::registry::Registrar;
use crate::host_fn;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanOptions {
    /// Folder names never entered.
    pub skip_dirs: Vec<String>,
    /// Files larger than this are skipped (bytes).
    pub max_file_size: u64,
    /// Stop after this many findings.
    pub max_findings: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            skip_dirs: [
                "node_modules",
                ".git",
                "target",
                "vendor",
                ".venv",
                "venv",
                "__pycache__",
                "dist",
                "build",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            max_file_size: 1024 * 1024,
            max_findings: 1000,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub path: String,
    pub line: u64,
    pub rule: String,
}

fn rules() -> HostResult<Vec<(&'static str, Regex)>> {
    let raw: &[(&str, &str)] = &[
        (
            "private key",
            r"-----BEGIN (RSA |EC |DSA |OPENSSH |PGP )?PRIVATE KEY",
        ),
        ("AWS access key id", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
        ("Slack token", r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
        (
            "URL with password",
            r"[a-z][a-z0-9+.-]*://[^/\s:@'\x22]+:[^/\s@'\x22$]{3,}@",
        ),
        (
            "hard-coded password or secret",
            r#"(?i)\b(password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret)\b["']?\s*[:=]\s*["'][^"'\s$<>{}]{6,}["']"#,
        ),
    ];
    raw.iter()
        .map(|(n, r)| {
            Regex::new(r)
                .map(|re| (*n, re))
                .map_err(|e| HostError::other(format!("bad rule {n}: {e}")))
        })
        .collect()
}

pub fn scan(dir: &Path, o: &ScanOptions) -> HostResult<Vec<Finding>> {
    let rules = rules()?;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d)
            .map_err(|e| HostError::io(format!("scan_secrets {}", d.display()), &e))?;
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if ft.is_symlink() {
                continue; // never follow links out of the audited tree
            }
            if ft.is_dir() {
                if !o.skip_dirs.contains(&name) {
                    stack.push(path);
                }
                continue;
            }
            if !ft.is_file()
                || entry
                    .metadata()
                    .map(|m| m.len() > o.max_file_size)
                    .unwrap_or(true)
            {
                continue;
            }
            let Ok(f) = std::fs::File::open(&path) else {
                continue;
            };
            let mut head = [0u8; 512];
            let mut r = BufReader::new(f);
            let n = r.get_mut().read(&mut head).unwrap_or(0);
            if head[..n].contains(&0) {
                continue; // binary
            }
            let Ok(f) = std::fs::File::open(&path) else {
                continue;
            };
            for (i, line) in BufReader::new(f).lines().enumerate() {
                let Ok(line) = line else { break };
                for (rule, re) in &rules {
                    if re.is_match(&line) {
                        out.push(Finding {
                            path: path.display().to_string(),
                            line: i as u64 + 1,
                            rule: rule.to_string(),
                        });
                        if out.len() >= o.max_findings {
                            return Ok(out);
                        }
                        break;
                    }
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.path, a.line).cmp(&(&b.path, b.line)));
    Ok(out)
}

pub fn register(r: &mut Registrar) {
    r.category("files");
    let doc = "Look for likely hard-coded secrets in a source tree: private keys, AWS keys, tokens, URLs with passwords, `password = \"...\"`.\n\nReturns an array of `#{ path, line, rule }` — the secret itself is never shown. Symlinks are not followed; binary files, files over `max_file_size` (1 MiB) and folders in `skip_dirs` (node_modules, .git, target, vendor, venv, ...) are skipped.\n\n```rhai\nfor f in scan_secrets(\".\", #{ skip_dirs: [\"target\", \".git\", \"tests\"] }) { warn(`${f.path}:${f.line}: ${f.rule}`); }\n```";
    host_fn!(r, "scan_secrets", doc, |ctx, dir: &str; opts: ScanOptions| -> "Array" {
        scan(Path::new(dir), &opts)
    });
}
