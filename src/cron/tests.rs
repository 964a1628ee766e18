//! The schedule table (expressions × time zones × instants around DST changes, expected
//! times from an independent model of Debian cron, checked in), plus cron(5)'s day rule and
//! the cases that model gets wrong, checked by hand against cron(8)'s documented rules.

use super::*;

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn next_in(expr: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
    let tz = JobTz::Named(tz.parse().unwrap());
    next_n(expr, &tz, at(from).to_utc(), n)
        .unwrap()
        .iter()
        .map(|t| t.to_rfc3339())
        .collect()
}

/// Rows where cronsim contradicts cron(8) ("jobs which are specified with wildcards are run
/// based on the new time immediately"): around Lord Howe's 30-minute fall-back, cronsim steps
/// whole hours in UTC and so skips wall-clock times that do occur. The expected times here
/// follow the wall clock, checked by hand: on 5 April 2026 01:30–01:59 happens twice (+11:00,
/// then +10:30) and 02:00 onwards once (+10:30).
const CORRECTIONS: &[(&str, &str, &str, &str)] = &[
    (
        "Australia/Lord_Howe",
        "*/15 2 * * *",
        "2026-04-04T12:00:00+11:00",
        "2026-04-05T02:00:00+10:30 2026-04-05T02:15:00+10:30 2026-04-05T02:30:00+10:30 2026-04-05T02:45:00+10:30 2026-04-06T02:00:00+10:30 2026-04-06T02:15:00+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "*/15 2 * * *",
        "2026-04-05T01:40:00+11:00",
        "2026-04-05T02:00:00+10:30 2026-04-05T02:15:00+10:30 2026-04-05T02:30:00+10:30 2026-04-05T02:45:00+10:30 2026-04-06T02:00:00+10:30 2026-04-06T02:15:00+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "30 * * * *",
        "2026-04-05T01:40:00+11:00",
        "2026-04-05T01:30:00+10:30 2026-04-05T02:30:00+10:30 2026-04-05T03:30:00+10:30 2026-04-05T04:30:00+10:30 2026-04-05T05:30:00+10:30 2026-04-05T06:30:00+10:30",
    ),
];

#[test]
fn agrees_with_the_dst_table() {
    let (mut rows, mut bad, mut corrected) = (0, Vec::new(), 0);
    for line in include_str!("testdata/dst_table.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(" | ").collect();
        let (tz, expr, start) = (cols[0], cols[1], cols[2]);
        let times = match CORRECTIONS
            .iter()
            .find(|c| (c.0, c.1, at(c.2)) == (tz, expr, at(start)))
        {
            Some(c) => {
                corrected += 1;
                c.3
            }
            None => cols[3],
        };
        let want: Vec<String> = times.split(' ').map(|t| at(t).to_rfc3339()).collect();
        rows += 1;
        let got = next_in(expr, tz, start, want.len());
        if got != want {
            bad.push(format!(
                "{tz} {expr:?} after {start}:\n  cron {want:?}\n  mtn  {got:?}"
            ));
        }
    }
    eprintln!(
        "cron table: {} of {rows} rows agree ({corrected} of them corrected from cronsim by cron(8)'s rule)",
        rows - bad.len()
    );
    assert!(rows >= 200, "{rows}");
    assert_eq!(corrected, CORRECTIONS.len());
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Starting inside the second pass of a fall-back overlap: a fixed-time job already ran in
/// the first pass and does not run again; a wildcard job follows the wall clock.
#[test]
fn second_pass_of_an_overlap() {
    let from = "2026-10-25T02:10:00+01:00";
    assert_eq!(
        next_in("30 2 * * *", "Europe/Berlin", from, 2),
        ["2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00"]
    );
    assert_eq!(
        next_in("0 1-3 * * *", "Europe/Berlin", from, 2),
        ["2026-10-25T03:00:00+01:00", "2026-10-26T01:00:00+01:00"]
    );
    assert_eq!(
        next_in("30 * * * *", "Europe/Berlin", from, 2),
        ["2026-10-25T02:30:00+01:00", "2026-10-25T03:30:00+01:00"]
    );
}

/// The two cases, spelled out.
#[test]
fn lists_and_ranges_are_fixed_time() {
    // Spring: 02:30 does not exist on 29 March; the job runs once right after the jump.
    assert_eq!(
        next_in(
            "30 2,14 * * *",
            "Europe/Berlin",
            "2026-03-29T00:00:00+01:00",
            2
        ),
        ["2026-03-29T03:00:00+02:00", "2026-03-29T14:30:00+02:00"]
    );
    // Autumn: 02:30 happens twice on 25 October; the job runs once.
    assert_eq!(
        next_in(
            "30 2,14 * * *",
            "Europe/Berlin",
            "2026-10-25T00:00:00+02:00",
            2
        ),
        ["2026-10-25T02:30:00+02:00", "2026-10-25T14:30:00+01:00"]
    );
}

#[test]
fn day_of_month_and_week() {
    let s = |e: &str| e.parse::<Schedule>().unwrap();
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    // Both restricted: either matches. 2026-03-02 is a Monday, 2026-03-15 a Sunday.
    assert!(s("0 0 1,15 * 1").day_matches(d(2026, 3, 2)));
    assert!(s("0 0 1,15 * 1").day_matches(d(2026, 3, 15)));
    assert!(!s("0 0 1,15 * 1").day_matches(d(2026, 3, 3)));
    // A field starting with `*` counts as unrestricted: both must match.
    assert!(!s("0 0 */2 * 1").day_matches(d(2026, 3, 2)));
    assert!(s("0 0 */2 * 1").day_matches(d(2026, 3, 9)));
    assert!(!s("0 0 */2 * 1").day_matches(d(2026, 3, 11)));
    assert!(s("0 0 * * 7").day_matches(d(2026, 3, 15)));
    assert!(s("0 0 * * sun").day_matches(d(2026, 3, 15)));
    assert!(s("0 0 * * 5-7").day_matches(d(2026, 3, 15)));
    // Upper-case names containing L, W or H are names, not Quartz extensions.
    assert!(s("0 0 * JUL WED").day_matches(d(2026, 7, 1)));
    assert!(s("0 0 * * THU-SAT").day_matches(d(2026, 3, 14)));
}

#[test]
fn refusals_name_the_field() {
    let e = |x: &str| x.parse::<Schedule>().unwrap_err();
    assert!(e("61 * * * *").contains("minute field: 61 is out of range 0-59"));
    assert!(e("0 0 L * *").contains("day of month"));
    assert!(e("5/10 * * * *").contains("\"5-59/10\""));
    assert!(e("0 0 * * 1#2").contains("day of week"));
    assert!(e("0 5-2 * * *").contains("backwards"));
    assert!(e("*/0 * * * *").contains("step"));
    assert!(e("* * *").contains("3 fields"));
    assert!(e("@reboot").contains("nickname"));
    assert!(e("0 0 * foo *").contains("month field"));
    // Never matching: no fire time, not a hang.
    assert_eq!(
        next_in("0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z", 1).len(),
        0
    );
}

#[test]
fn seconds_field_and_local_zone() {
    assert_eq!(
        next_in("*/20 * * * * *", "UTC", "2026-01-01T00:00:05Z", 3),
        [
            "2026-01-01T00:00:20+00:00",
            "2026-01-01T00:00:40+00:00",
            "2026-01-01T00:01:00+00:00"
        ]
    );
    let local = next_n("0 * * * *", &JobTz::Local, chrono::Utc::now(), 3).unwrap();
    assert_eq!(local.len(), 3);
    assert!(local[0] < local[1] && local[1] < local[2]);
}
