//! The planner's properties over random backup sets, and the same plan from a local folder
//! and from an object-store listing of the same names.

use super::*;
use chrono::{Datelike, Timelike};
use proptest::prelude::*;

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

fn name_of(i: usize, time: &NaiveDateTime) -> String {
    format!("db{i}_{}.sql.gz", time.format("%Y-%m-%d_%H%M%S"))
}

type KeyFn = fn(&NaiveDateTime) -> String;

fn backups_strategy() -> impl Strategy<Value = Vec<Backup>> {
    // Up to 60 backups spread over ~3 years, often several per hour/day.
    proptest::collection::vec(0i64..(3 * 365 * 24 * 60), 0..60).prop_map(|mins| {
        let base = t("2023-01-01 00:00:00");
        mins.into_iter()
            .enumerate()
            .map(|(i, m)| {
                let time = base + chrono::Duration::minutes(m);
                Backup {
                    name: name_of(i, &time),
                    time,
                }
            })
            .collect()
    })
}

fn count() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![Just(None), (0i64..8).prop_map(Some), Just(Some(-1))]
}

fn policy_strategy() -> impl Strategy<Value = Policy> {
    (
        (count(), count(), count(), count(), count(), count()),
        proptest::option::of((0i64..14, 0i64..40, 0i64..48)),
        0usize..4,
        proptest::option::of(0.0f64..100.0),
        proptest::option::of(0u64..(800 * 86400)),
    )
        .prop_map(|((l, h, d, w, m, y), within, newest, pct, fresh)| Policy {
            keep_last: l,
            keep_hourly: h,
            keep_daily: d,
            keep_weekly: w,
            keep_monthly: m,
            keep_yearly: y,
            keep_within: within.map(|(m, d, h)| CalendarDuration {
                years: 0,
                months: m,
                days: d,
                hours: h,
            }),
            keep_newest: Some(newest),
            max_delete_percent: pct,
            require_fresh: fresh.map(Duration::from_secs),
            ..Default::default()
        })
}

/// Newest first, as the planner orders them.
fn sorted(b: &[Backup]) -> Vec<Backup> {
    let mut s = b.to_vec();
    s.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
    s
}

/// The names a bucket rule must keep, computed independently of the planner: the newest
/// backup of each of the `count` newest distinct buckets, and the oldest backup when the
/// count is not used up (restic ≥ 0.16).
fn expected_bucket_keeps(
    s: &[Backup],
    count: Option<i64>,
    key: fn(&NaiveDateTime) -> String,
) -> Vec<String> {
    let c = match count {
        None | Some(0) => return vec![],
        Some(-1) => usize::MAX,
        Some(c) => c as usize,
    };
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for b in s {
        let k = key(&b.time);
        if !seen.contains(&k) {
            if seen.len() == c {
                break;
            }
            seen.push(k);
            out.push(b.name.clone());
        }
    }
    if seen.len() < c {
        if let Some(oldest) = s.last() {
            out.push(oldest.name.clone());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn planner_properties(backups in backups_strategy(), policy in policy_strategy(), age_h in 0i64..2000) {
        let s = sorted(&backups);
        let now = s.first().map(|b| b.time).unwrap_or(t("2026-01-01 00:00:00")) + chrono::Duration::hours(age_h);
        let res = plan(&backups, &policy, now);
        if validate(&policy).is_err() {
            prop_assert!(res.is_err());
            return Ok(());
        }
        let p = res.unwrap();
        let kept: Vec<&str> = p.kept.iter().map(|k| k.name.as_str()).collect();
        let deleted: Vec<&str> = p.deleted.iter().map(|d| d.name.as_str()).collect();

        // Every backup is either kept or deleted, never both.
        prop_assert_eq!(kept.len() + deleted.len(), backups.len());
        for k in &kept { prop_assert!(!deleted.contains(k)); }

        // Never deletes the newest N.
        for b in s.iter().take(policy.keep_newest.unwrap_or(1)) {
            prop_assert!(kept.contains(&b.name.as_str()), "newest {} deleted", b.name);
        }
        // keep_last.
        let last = match policy.keep_last { Some(-1) => usize::MAX, Some(n) if n > 0 => n as usize, _ => 0 };
        for b in s.iter().take(last) { prop_assert!(kept.contains(&b.name.as_str())); }
        // Every bucket rule.
        let rules: [(Option<i64>, KeyFn); 5] = [
            (policy.keep_hourly, |t| format!("{} {}", t.date(), t.hour())),
            (policy.keep_daily, |t| t.date().to_string()),
            (policy.keep_weekly, |t| { let w = t.iso_week(); format!("{}-{}", w.year(), w.week()) }),
            (policy.keep_monthly, |t| format!("{}-{}", t.year(), t.month())),
            (policy.keep_yearly, |t| t.year().to_string()),
        ];
        for (c, key) in rules {
            for name in expected_bucket_keeps(&s, c, key) {
                prop_assert!(kept.contains(&name.as_str()), "bucket rule dropped {}", name);
            }
        }
        // keep_within, from the newest backup: strictly newer than (newest - window) is kept;
        // with no count rule, nothing at or before the cut is kept by it.
        if let (Some(d), Some(newest)) = (policy.keep_within.filter(|d| !d.is_zero()), s.first()) {
            let cut = d.before(newest.time).unwrap();
            for b in &s { if b.time > cut { prop_assert!(kept.contains(&b.name.as_str())); } }
            let only_within = [policy.keep_last, policy.keep_hourly, policy.keep_daily, policy.keep_weekly, policy.keep_monthly, policy.keep_yearly].iter().all(|c| c.unwrap_or(0) == 0);
            if only_within {
                for (i, b) in s.iter().enumerate() {
                    if b.time <= cut && i >= policy.keep_newest.unwrap_or(1) {
                        prop_assert!(!kept.contains(&b.name.as_str()), "{} at or before the cut kept", b.name);
                    }
                }
            }
        }
        // Every decision carries its reason.
        for k in &p.kept { prop_assert!(!k.reasons.is_empty()); }
        for d in &p.deleted { prop_assert!(!d.reason.is_empty()); }

        // Floors: refused exactly when one is crossed.
        let pct = policy.max_delete_percent.unwrap_or(50.0);
        let too_many = !backups.is_empty() && deleted.len() as f64 * 100.0 > pct * backups.len() as f64;
        let stale = match policy.require_fresh {
            None => false,
            Some(f) => s.first().is_none_or(|n| n.time < now - chrono::Duration::from_std(f).unwrap()),
        };
        prop_assert_eq!(p.refused.is_some(), too_many || stale, "refused={:?}", p.refused);
    }
}

#[test]
fn names_give_times() {
    assert_eq!(
        time_from_name("db_2026-03-01_021500.sql.gz"),
        Some(t("2026-03-01 02:15:00"))
    );
    assert_eq!(
        time_from_name("db_20260301_021500.sql.gz"),
        Some(t("2026-03-01 02:15:00"))
    );
    assert_eq!(
        time_from_name("site-20260301.tar.gz"),
        Some(t("2026-03-01 00:00:00"))
    );
    assert_eq!(
        time_from_name("app_2026-03-01.dump"),
        Some(t("2026-03-01 00:00:00"))
    );
    assert_eq!(time_from_name("v1234567890.tar"), None);
    assert_eq!(time_from_name("db_2026-13-45.sql"), None);
}

#[test]
fn reasons_are_specific() {
    let b: Vec<Backup> = [
        "2026-03-03 10:00:00",
        "2026-03-03 09:00:00",
        "2026-03-02 10:00:00",
        "2026-03-01 10:00:00",
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| Backup {
        name: format!("b{i}"),
        time: t(s),
    })
    .collect();
    let p = plan(
        &b,
        &Policy {
            keep_daily: Some(2),
            ..Default::default()
        },
        t("2026-03-03 11:00:00"),
    )
    .unwrap();
    let kept: Vec<_> = p
        .kept
        .iter()
        .map(|k| (k.name.as_str(), k.reasons.join(",")))
        .collect();
    assert_eq!(
        kept,
        vec![
            (
                "b0",
                "keep_newest 1 (safety floor),keep_daily 2026-03-03".to_string()
            ),
            ("b2", "keep_daily 2026-03-02".to_string()),
        ]
    );
    assert_eq!(
        p.deleted[0].reason,
        "keep_daily: 2026-03-03 is kept by a newer backup"
    );
    assert_eq!(p.deleted[1].reason, "keep_daily: all 2 kept");
    assert!(p.refused.is_none());
    // Stale backups: refused.
    let p = plan(
        &b,
        &Policy {
            keep_daily: Some(2),
            require_fresh: Some(Duration::from_secs(86400)),
            ..Default::default()
        },
        t("2026-03-09 00:00:00"),
    )
    .unwrap();
    assert!(p.refused.unwrap().contains("require_fresh"));
    // Deleting 3 of 4 is past the 50% floor.
    let p = plan(
        &b,
        &Policy {
            keep_last: Some(1),
            ..Default::default()
        },
        t("2026-03-03 11:00:00"),
    )
    .unwrap();
    assert!(p.refused.unwrap().contains("max_delete_percent"));
    assert!(plan(&b, &Policy::default(), t("2026-03-03 11:00:00")).is_err());
}

/// The same names in a local folder and in an object store (object_store's in-memory store,
/// standing in for S3 here; the integration tests repeat this against SeaweedFS) give the
/// same plan, folders included.
#[test]
fn same_plan_local_and_remote_listing() {
    use object_store::{memory::InMemory, path::Path as OPath, ObjectStoreExt, PutPayload};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng_state = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(InMemory::new());
        let base = t("2025-01-01 00:00:00");
        let n = (next() % 40) as usize;
        for i in 0..n {
            let time = base + chrono::Duration::minutes((next() % (400 * 24 * 60)) as i64);
            let name = name_of(i, &time);
            let folder = next() % 4 == 0;
            rt.block_on(async {
                if folder {
                    std::fs::create_dir(dir.path().join(&name)).unwrap();
                    std::fs::write(dir.path().join(&name).join("a.bson"), b"x").unwrap();
                    store
                        .put(
                            &OPath::from(format!("pre/{name}/a.bson")),
                            PutPayload::from_static(b"x"),
                        )
                        .await
                        .unwrap();
                    store
                        .put(
                            &OPath::from(format!("pre/{name}/b.bson")),
                            PutPayload::from_static(b"x"),
                        )
                        .await
                        .unwrap();
                } else {
                    std::fs::write(dir.path().join(&name), b"x").unwrap();
                    std::fs::write(dir.path().join(format!("{name}.sha256")), b"x").unwrap();
                    store
                        .put(
                            &OPath::from(format!("pre/{name}")),
                            PutPayload::from_static(b"x"),
                        )
                        .await
                        .unwrap();
                    store
                        .put(
                            &OPath::from(format!("pre/{name}.sha256")),
                            PutPayload::from_static(b"x"),
                        )
                        .await
                        .unwrap();
                }
            });
        }
        let target = super::super::target::Target {
            store: store.clone(),
            backend: super::super::target::Backend::S3,
            base: "s3://b/".into(),
            key: "pre/".into(),
            endpoint: "memory".into(),
            host: None,
            sftp: None,
        };
        let local = super::super::remote::list_local_folder(dir.path()).unwrap();
        let remote = rt
            .block_on(super::super::remote::list_remote_prefix(&target))
            .unwrap();
        let glob = globset::Glob::new("db*").unwrap().compile_matcher();
        let (lb, _) = select(&local.entries, &glob, TimeFrom::Name);
        let (rb, _) = select(&remote.entries, &glob, TimeFrom::Name);
        assert_eq!(lb.len(), n, "round {round}");
        let policy = Policy {
            keep_daily: Some(5),
            keep_weekly: Some(3),
            keep_monthly: Some(2),
            max_delete_percent: Some(100.0),
            ..Default::default()
        };
        let now = t("2026-06-01 00:00:00");
        assert_eq!(
            plan(&lb, &policy, now).unwrap(),
            plan(&rb, &policy, now).unwrap(),
            "round {round}"
        );
    }
}

/// Issue 19 item 8: one backup named for 2099 beside six real ones 5–10 days old.
fn with_a_future_backup(now: NaiveDateTime) -> Vec<Backup> {
    let mut v: Vec<Backup> = (5..=10)
        .map(|d| {
            let time = now - chrono::Duration::days(d);
            Backup {
                name: name_of(d as usize, &time),
                time,
            }
        })
        .collect();
    v.push(Backup {
        name: "db_2099-01-01_000000.sql.gz".into(),
        time: t("2099-01-01 00:00:00"),
    });
    v
}

#[test]
fn a_future_dated_backup_takes_no_keep_slot_and_does_not_count_as_fresh() {
    let now = t("2026-11-29 06:00:00");
    let backups = with_a_future_backup(now);
    // require_fresh looks at the newest real backup (5 days old): nothing is deleted.
    let p = plan(
        &backups,
        &Policy {
            keep_last: Some(4),
            require_fresh: Some(std::time::Duration::from_secs(2 * 86400)),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    assert!(p.refused.is_some(), "{p:?}");
    // Without require_fresh, keep_last 4 keeps four real backups; the future one is kept apart.
    let p = plan(
        &backups,
        &Policy {
            keep_last: Some(4),
            max_delete_percent: Some(100.0),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    assert!(p.refused.is_none(), "{p:?}");
    assert_eq!(p.kept.len(), 5, "{p:?}");
    assert_eq!(p.deleted.len(), 2, "{p:?}");
    assert!(p.kept[0].name.contains("2099") && p.kept[0].reasons[0].contains("future"));
    assert!(p.deleted.iter().all(|d| !d.name.contains("2099")));
    // A backup a minute ahead (clocks a little apart) is an ordinary backup.
    let mut near = with_a_future_backup(now);
    near.pop();
    near.push(Backup {
        name: "db_soon.sql.gz".into(),
        time: now + chrono::Duration::minutes(1),
    });
    let p = plan(
        &near,
        &Policy {
            keep_last: Some(1),
            max_delete_percent: Some(100.0),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    assert_eq!(p.kept.len(), 1);
    assert_eq!(p.kept[0].name, "db_soon.sql.gz");
}
