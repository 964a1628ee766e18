//! Rotated file names, as logrotate writes them: numbered (`app.log.3`, `app.log.3.gz`) and
//! dated (`app.log-20261122`, `app.log-20261122.gz`), and which files a pattern matches are
//! logs rather than rotations of another match.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::ctx::RunCtx;
use crate::error::{HostError, HostResult};

pub fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// `name` as a numbered rotation of `base`: `base.N` or `base.N.gz` → (N, gz).
pub fn numbered(base: &str, name: &str) -> Option<(u64, bool)> {
    let rest = name.strip_prefix(base)?.strip_prefix('.')?;
    let (digits, gz) = match rest.strip_suffix(".gz") {
        Some(d) => (d, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, gz))
}

/// A `dateformat`: the names it produces, and their dates for sorting (logrotate sorts dated
/// rotations by the date it reads back with strptime, not by name: `-%d-%m-%Y` sorts by day
/// of month otherwise).
pub struct DateFmt {
    /// The suffix alone, anchored at the end: `-(\d{4})(\d{2})(\d{2})(\.gz)?$`.
    suffix: regex::Regex,
    /// The strftime code of each capture group, in order.
    codes: Vec<char>,
}

impl DateFmt {
    pub fn new(fmt: &str) -> HostResult<DateFmt> {
        if fmt.contains(['/', '\0']) {
            return Err(HostError::invalid(format!(
                "dateformat {fmt:?} contains a path separator; it may only add to the file name"
            )));
        }
        let mut re = String::new();
        let mut codes = Vec::new();
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                re.push_str(&regex::escape(&c.to_string()));
                continue;
            }
            match chars.next() {
                Some(c @ 'Y') => {
                    re.push_str(r"(\d{4})");
                    codes.push(c);
                }
                Some(c @ ('m' | 'd' | 'H' | 'M' | 'S' | 'y' | 'V')) => {
                    re.push_str(r"(\d{2})");
                    codes.push(c);
                }
                Some(c @ 's') => {
                    re.push_str(r"(\d+)");
                    codes.push(c);
                }
                Some('%') => re.push('%'),
                other => {
                    return Err(HostError::invalid(format!(
                        "dateformat {fmt:?}: %{} is not supported (use %Y %m %d %H %M %S %s)",
                        other.map(String::from).unwrap_or_default()
                    )))
                }
            }
        }
        re.push_str(r"(\.gz)?$");
        let suffix = regex::Regex::new(&re)
            .map_err(|e| HostError::invalid(format!("dateformat {fmt:?}: {e}")))?;
        Ok(DateFmt { suffix, codes })
    }

    /// Is `name` a dated rotation of `base`?
    pub fn is_rotation_of(&self, base: &str, name: &str) -> bool {
        name.strip_prefix(base)
            .is_some_and(|rest| self.suffix.find(rest).is_some_and(|m| m.start() == 0))
    }

    /// Where a dated suffix starts in `name`, if it ends with one (for telling logs from
    /// rotations among the matches of a wildcard).
    pub fn suffix_start(&self, name: &str) -> Option<usize> {
        self.suffix.find(name).map(|m| m.start()).filter(|&s| s > 0)
    }

    /// The date in a rotation's name, as a sortable key (year, month, day, hour, minute,
    /// second); `%s` counts as seconds. Unreadable fields count as 0, as in a zeroed `struct tm`.
    pub fn sort_key(&self, base: &str, name: &str) -> [i64; 7] {
        let mut k = [0i64; 7];
        let Some(caps) = name
            .strip_prefix(base)
            .and_then(|r| self.suffix.captures(r))
        else {
            return k;
        };
        for (i, code) in self.codes.iter().enumerate() {
            let v: i64 = caps
                .get(i + 1)
                .and_then(|m| m.as_str().parse().ok())
                .unwrap_or(0);
            match code {
                'Y' => k[0] = v,
                // strptime's %y: 69–99 are 1969–1999, 00–68 are 2000–2068.
                'y' => k[0] = if v >= 69 { 1900 + v } else { 2000 + v },
                'm' => k[1] = v,
                'd' => k[2] = v,
                'H' => k[3] = v,
                'M' => k[4] = v,
                'S' => k[5] = v,
                's' => k[6] = v,
                _ => {}
            }
        }
        k
    }
}

/// One read of a folder, sorted, so each log finds its rotations by a binary search instead of
/// a scan per log (a folder of thousands of logs made that quadratic).
#[derive(Default)]
pub struct Listing {
    names: Vec<String>,
}

impl Listing {
    pub fn read(dir: &Path) -> io::Result<Listing> {
        let mut names: Vec<String> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        Ok(Listing { names })
    }

    /// Names that start with `prefix`.
    pub fn starting_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a String> {
        let from = self.names.partition_point(|n| n.as_str() < prefix);
        self.names[from..]
            .iter()
            .take_while(move |n| n.starts_with(prefix))
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Expand `pattern` (wildcards in the file name only) to the logs to rotate. Files that are
/// rotated versions of another match (`app.log.1`, `app.log-20261122.gz`) are left out: rotating
/// them again, as logrotate does with a bare `*`, only multiplies suffixes.
pub fn expand(ctx: &RunCtx, pattern: &str, date: &DateFmt) -> HostResult<Vec<PathBuf>> {
    let p = Path::new(pattern);
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| HostError::invalid(format!("{pattern:?} names no file")))?;
    let parent = p
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if has_glob(&parent.to_string_lossy()) {
        return Err(HostError::invalid(format!(
            "wildcards are allowed in the file name only, not in {}",
            parent.display()
        )));
    }
    if !has_glob(&name) {
        return Ok(vec![ctx.policy.check_write(p)?]);
    }
    let m = crate::host::fs::ops::glob(&name)?;
    let listing = Listing::read(parent)
        .map_err(|e| HostError::io(format!("listing {}", parent.display()), &e))?;
    let names: Vec<&String> = listing
        .names()
        .iter()
        .filter(|n| m.is_match(n.as_str()) && !n.ends_with(".tmp"))
        .collect();
    let set: HashSet<&str> = names.iter().map(|n| n.as_str()).collect();
    let mut keep = Vec::new();
    for n in names {
        let stem = n.strip_suffix(".gz").unwrap_or(n);
        let is_numbered = stem.rsplit_once('.').is_some_and(|(b, d)| {
            !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()) && set.contains(b)
        });
        let is_dated = date.suffix_start(n).is_some_and(|s| set.contains(&n[..s]));
        if !(is_numbered || is_dated) {
            keep.push(ctx.policy.check_write(&parent.join(n))?);
        }
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("app.log", "app.log.1"), Some((1, false)));
        assert_eq!(numbered("app.log", "app.log.12.gz"), Some((12, true)));
        assert_eq!(numbered("app.log", "app.log.0"), Some((0, false)));
        for n in [
            "app.log",
            "app.log.",
            "app.log.gz",
            "app.log.1x",
            "app.log.-1",
            "app.log.1.gz.gz",
            "app.logx.1",
            "app.log-20261129",
        ] {
            assert_eq!(numbered("app.log", n), None, "{n}");
        }
    }

    #[test]
    fn dated_names_follow_the_format() {
        let d = DateFmt::new("-%Y%m%d").unwrap();
        assert!(d.is_rotation_of("app.log", "app.log-20261129"));
        assert!(d.is_rotation_of("app.log", "app.log-20261129.gz"));
        assert!(!d.is_rotation_of("app.log", "app.log-2026112"));
        assert!(!d.is_rotation_of("app.log", "app.log-20261129.1"));
        assert!(!d.is_rotation_of("app.log", "app.log.1"));
        assert!(!d.is_rotation_of("other.log", "app.log-20261129"));
        let d = DateFmt::new(".%Y-%m-%d-%H").unwrap();
        assert!(d.is_rotation_of("t.log", "t.log.2026-11-29-08"));
        let d = DateFmt::new("-%s").unwrap();
        assert!(d.is_rotation_of("t.log", "t.log-1764403200.gz"));
        // No separator in front of the date (logrotate test 0066).
        let d = DateFmt::new("%Y-%m-%d").unwrap();
        assert!(d.is_rotation_of("t.log", "t.log2026-11-28"));
        assert_eq!(d.suffix_start("t.log2026-11-28"), Some(5));
    }

    #[test]
    fn dateformat_refusals() {
        assert!(DateFmt::new("-%Y/%m").is_err());
        assert!(DateFmt::new("-%Q").is_err());
        assert!(DateFmt::new("-%").is_err());
        assert!(DateFmt::new("-100%%-%Y").is_ok());
    }

    #[test]
    fn dates_sort_by_date_not_by_name() {
        // logrotate test 0056: -%d-%m-%Y must sort by year, then month, then day.
        let d = DateFmt::new("-%d-%m-%Y").unwrap();
        let mut v = vec![
            "t.log-01-12-2026",
            "t.log-30-11-2026",
            "t.log-15-01-2025.gz",
        ];
        v.sort_by_key(|n| d.sort_key("t.log", n));
        assert_eq!(
            v,
            [
                "t.log-15-01-2025.gz",
                "t.log-30-11-2026",
                "t.log-01-12-2026"
            ]
        );
        let y = DateFmt::new("-%y%m%d").unwrap();
        assert!(y.sort_key("a", "a-991231") < y.sort_key("a", "a-000101"));
    }

    #[test]
    fn listing_prefix_search() {
        let l = Listing {
            names: vec![
                "a.log".into(),
                "a.log.1".into(),
                "a.log.2.gz".into(),
                "a.logx".into(),
                "b.log".into(),
            ],
        };
        let v: Vec<&String> = l.starting_with("a.log.").collect();
        assert_eq!(v, ["a.log.1", "a.log.2.gz"]);
        assert_eq!(l.starting_with("c").count(), 0);
    }
}
