//! Property-based tests (issue 19's lasting suite): generated input never panics mtn's parsers,
//! and masking never lets a generated secret through. Bounded here (PROPTEST_CASES, default 256
//! per property); `benches/fuzz.sh` runs the same properties much longer.

use std::path::{Component, Path, PathBuf};

use mtn::host::binding::opts;
use mtn::host::db::dump_file::parse_size;
use mtn::host::db::mongo::convert::{bson_to_dynamic, dynamic_to_bson, Mode};
use mtn::policy::{normalize, Policy};
use mtn::units::parse_duration;
use proptest::prelude::*;
use rhai::{Dynamic, Map};

proptest! {
    #[test]
    fn durations_never_panic_and_numbers_with_units_are_exact(text in ".{0,40}", n in 0u64..1_000_000, unit in 0usize..5) {
        let _ = parse_duration(&text);
        let (suffix, secs) = [("s", 1u64), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)][unit];
        let d = parse_duration(&format!("{n}{suffix}")).unwrap();
        prop_assert_eq!(d.as_secs(), n * secs);
        prop_assert_eq!(parse_duration(&n.to_string()).unwrap().as_secs(), n);
    }

    #[test]
    fn sizes_never_panic_and_binary_units_are_exact(text in ".{0,40}", n in 0u64..1_000_000, unit in 0usize..4) {
        let _ = parse_size(&text);
        let (suffix, mult) = [("", 1u64), ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)][unit];
        prop_assert_eq!(parse_size(&format!("{n}{suffix}")).unwrap(), n * mult);
    }

    #[test]
    fn masking_never_lets_a_registered_secret_through(secret in "[!-~]{6,24}", before in ".{0,30}", after in ".{0,30}") {
        mtn::redact::register(&secret);
        let line = format!("{before}{secret}{after}");
        let shown = mtn::redact::redact(&line);
        prop_assert!(!shown.contains(&secret), "{shown:?} shows {secret:?}");
    }

    #[test]
    fn url_passwords_never_appear_in_parse_errors_or_shown_urls(
        password in "[A-Za-z0-9]{8,20}",
        junk in "[ -~]{0,12}",
        scheme in prop::sample::select(vec!["postgres", "mysql", "mariadb", "mongodb", "bogus"]),
    ) {
        let raw = format!("{scheme}://app:{password}@db.example{junk}/app");
        match mtn::host::db::url::ServerUrl::parse(&raw) {
            Ok(u) => {
                prop_assert!(!u.without_password().contains(&password));
            }
            Err(e) => prop_assert!(!e.message.contains(&password), "{}", e.message),
        }
        let shown = mtn::redact::redact(&raw);
        prop_assert!(!shown.contains(&password), "{shown}");
    }

    #[test]
    fn normalized_paths_have_no_dot_components(parts in prop::collection::vec(prop::sample::select(vec!["a", "b", "..", ".", "c d", "..."]), 0..12)) {
        let p: PathBuf = std::iter::once("/").chain(parts.iter().copied()).collect();
        let n = normalize(&p);
        prop_assert!(n.is_absolute());
        prop_assert!(n.components().all(|c| !matches!(c, Component::ParentDir | Component::CurDir)), "{}", n.display());
    }

    #[test]
    fn the_policy_never_allows_a_path_outside_its_roots(parts in prop::collection::vec(prop::sample::select(vec!["x", "..", ".", "y", "../.."]), 0..10)) {
        let root = std::env::temp_dir().join("mtn-prop-root");
        let policy = Policy::with_roots(vec![root.clone()]);
        let candidate = parts.iter().fold(root.clone(), |p, s| p.join(s));
        if let Ok(ok) = policy.check_write(&candidate) {
            let real_root = mtn::policy::absolute(&root);
            prop_assert!(ok.starts_with(&real_root) || ok.starts_with(root.canonicalize().unwrap_or(real_root.clone())), "{} allowed outside {}", ok.display(), root.display());
        }
    }

    #[test]
    fn option_decoding_names_an_unknown_key_and_never_panics(key in "[a-z_]{1,12}", value in any::<i64>()) {
        let mut m = Map::new();
        m.insert(key.as_str().into(), Dynamic::from_int(value));
        let r: Result<mtn::host::compress::CompressOpts, _> = opts(&m);
        let known = ["compression", "level", "keep", "force", "threads"];
        if let Err(e) = r {
            if !known.contains(&key.as_str()) {
                prop_assert!(e.message.contains(&key), "{}", e.message);
            }
        }
    }

    #[test]
    fn cron_lines_never_panic_and_next_times_are_increasing(
        fields in prop::collection::vec(prop::sample::select(vec!["*", "*/2", "0", "5", "1-5", "1,15", "7", "59", "60", "L", "?", "mon", "jan", "*/0", "3-1", ""]), 0..7),
        junk in "[ -~]{0,20}",
        from in 0i64..4_000_000_000,
    ) {
        let line = fields.join(" ");
        let start = chrono::DateTime::from_timestamp(from, 0).unwrap();
        let tz = mtn::cron::JobTz::Named(chrono_tz::Europe::Berlin);
        let _ = mtn::cron::next_n(&junk, &tz, start, 3);
        if let Ok(times) = mtn::cron::next_n(&line, &tz, start, 4) {
            for w in times.windows(2) {
                prop_assert!(w[0] < w[1], "{line}: {times:?}");
            }
            if let Some(first) = times.first() {
                prop_assert!(*first > start, "{line}: {first} not after {start}");
            }
        }
    }

    #[test]
    fn rhai_bson_round_trips_scalars(i in any::<i64>(), f in any::<f64>().prop_filter("finite", |f| f.is_finite()), s in ".{0,20}", b in any::<bool>()) {
        for v in [Dynamic::from_int(i), Dynamic::from_float(f), Dynamic::from(s.clone()), Dynamic::from_bool(b), Dynamic::UNIT] {
            let bson = dynamic_to_bson(&v, "x").unwrap();
            let back = bson_to_dynamic(&bson, Mode::Relaxed);
            prop_assert_eq!(back.to_string(), v.to_string());
        }
    }

    #[test]
    fn rhai_bson_conversion_never_panics_on_extended_json_lookalikes(key in prop::sample::select(vec!["$date", "$oid", "$numberLong", "$binary", "$regularExpression", "$timestamp", "$x"]), inner in ".{0,16}") {
        let mut m = Map::new();
        m.insert(key.into(), Dynamic::from(inner));
        let _ = dynamic_to_bson(&Dynamic::from_map(m), "x");
    }
}

#[test]
fn the_root_itself_and_dot_dot_escapes_are_decided_as_expected() {
    let root = Path::new("/srv/backups");
    let p = Policy::with_roots(vec![root.to_path_buf()]);
    assert!(p.check_write(&root.join("a/../b")).is_ok());
    assert!(p.check_write(&root.join("../etc-ish")).is_err());
}
