//! Cron schedules as cronie / Vixie cron (Debian's `cron`) reads and fires them: crontab(5)
//! fields, names and steps; the day-of-month / day-of-week OR rule, where a field starting
//! with `*` counts as unrestricted; and cron(8)'s daylight-saving rules: a "fixed-time" job
//! (minute and hour fields not starting with `*`) whose time falls into a spring-forward gap
//! runs once right after the jump and runs once in a fall-back overlap, while a wildcard job
//! follows the wall clock (skipped in the gap, run in both passes of the overlap).
//!
//! An optional leading sixth field gives seconds (an mtn extension for sub-minute jobs).

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime,
    Offset, TimeZone, Timelike,
};

/// A parsed schedule: one bit set per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    dom: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0 (7 is folded onto 0).
    dow: u8,
    dom_star: bool,
    dow_star: bool,
    /// Minute and hour fields do not start with `*`: cron's fixed-time job (DST rules).
    fixed: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Field {
    name: &'static str,
    low: u32,
    high: u32,
    names: &'static [&'static str],
    /// The first name's number (jan = 1, sun = 0).
    names_from: u32,
}

const SECOND: Field = Field {
    name: "second",
    low: 0,
    high: 59,
    names: &[],
    names_from: 0,
};
const MINUTE: Field = Field {
    name: "minute",
    low: 0,
    high: 59,
    names: &[],
    names_from: 0,
};
const HOUR: Field = Field {
    name: "hour",
    low: 0,
    high: 23,
    names: &[],
    names_from: 0,
};
const DOM: Field = Field {
    name: "day of month",
    low: 1,
    high: 31,
    names: &[],
    names_from: 0,
};
const MONTH: Field = Field {
    name: "month",
    low: 1,
    high: 12,
    names: &MONTHS,
    names_from: 1,
};
const DOW: Field = Field {
    name: "day of week",
    low: 0,
    high: 7,
    names: &DAYS,
    names_from: 0,
};

fn number(f: &Field, s: &str) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = f.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + f.names_from);
    }
    let n: u32 = s.parse().map_err(|_| {
        let names = if f.names.is_empty() {
            String::new()
        } else {
            format!(" or a name ({})", f.names.join(", "))
        };
        format!(
            "{} field: {s:?} is not a number from {} to {}{names}",
            f.name, f.low, f.high
        )
    })?;
    if n < f.low || n > f.high {
        return Err(format!(
            "{} field: {n} is out of range {}-{}",
            f.name, f.low, f.high
        ));
    }
    Ok(n)
}

/// One field: a comma list of `*`, `N`, `A-B`, each range optionally `/STEP`.
fn field(f: &Field, text: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().ok().filter(|s| *s > 0).ok_or_else(|| {
                    format!("{} field: step {s:?} must be a positive number", f.name)
                })?;
                (r, Some(step))
            }
            None => (part, None),
        };
        let (a, b) = if range == "*" {
            (f.low, f.high)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (number(f, a)?, number(f, b)?);
            if a > b {
                return Err(format!(
                    "{} field: range {range:?} runs backwards (cron does not wrap around)",
                    f.name
                ));
            }
            (a, b)
        } else {
            let n = number(f, range).map_err(|e| {
                if range.contains(['L', 'W', '#', '?', 'H']) {
                    format!(
                        "{} field: {range:?} uses a Quartz/non-cron extension (L, W, #, ?, H) that cron(5) does not have",
                        f.name
                    )
                } else {
                    e
                }
            })?;
            if step.is_some() {
                // Debian's cron rejects "N/STEP"; say what it would mean.
                return Err(format!(
                    "{} field: {part:?}: cron takes a step only after `*` or a range; write \"{n}-{}/{}\"",
                    f.name,
                    f.high,
                    step.unwrap_or(1)
                ));
            }
            (n, n)
        };
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step.unwrap_or(1);
        }
    }
    Ok(bits)
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(expr: &str) -> Result<Schedule, String> {
        let expanded = match expr.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(format!(
                    "{other:?}: unknown nickname (use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"
                ))
            }
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let (sec, rest) = match fields.len() {
            5 => ("0", &fields[..]),
            6 => (fields[0], &fields[1..]),
            n => {
                return Err(format!(
                    "{n} fields: use 5 cron fields (minute hour day-of-month month day-of-week), 6 with a leading seconds field, or @hourly/@daily/@weekly/@monthly/@yearly"
                ))
            }
        };
        let dow = field(&DOW, rest[4])?;
        Ok(Schedule {
            seconds: field(&SECOND, sec)?,
            minutes: field(&MINUTE, rest[0])?,
            hours: field(&HOUR, rest[1])? as u32,
            dom: field(&DOM, rest[2])? as u32,
            months: field(&MONTH, rest[3])? as u16,
            dow: ((dow | (dow >> 7)) & 0x7f) as u8,
            dom_star: rest[2].starts_with('*'),
            dow_star: rest[4].starts_with('*'),
            fixed: !rest[0].starts_with('*') && !rest[1].starts_with('*'),
        })
    }
}

fn has(bits: u64, v: u32) -> bool {
    bits & (1 << v) != 0
}

impl Schedule {
    /// Whether cron would run this job on `date` (cron(5): when both day fields are
    /// restricted, either may match; a field starting with `*` makes both required).
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = has(self.dom.into(), date.day());
        let dow = has(self.dow.into(), date.weekday().num_days_from_sunday());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first local wall-clock time at or after `t` that the fields match (no time zone).
    fn next_naive(&self, t: NaiveDateTime, limit: NaiveDateTime) -> Option<NaiveDateTime> {
        let mut t = t.with_nanosecond(0)?;
        while t <= limit {
            let date = t.date();
            if !has(self.months.into(), date.month()) {
                let (y, m) = if date.month() == 12 {
                    (date.year() + 1, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                t = NaiveDate::from_ymd_opt(y, m, 1)?.and_time(NaiveTime::MIN);
            } else if !self.day_matches(date) {
                t = date.succ_opt()?.and_time(NaiveTime::MIN);
            } else if !has(self.hours.into(), t.hour()) {
                t = date.and_hms_opt(t.hour(), 0, 0)? + Duration::hours(1);
            } else if !has(self.minutes, t.minute()) {
                t = date.and_hms_opt(t.hour(), t.minute(), 0)? + Duration::minutes(1);
            } else if !has(self.seconds, t.second()) {
                t += Duration::seconds(1);
            } else {
                return Some(t);
            }
        }
        None
    }

    /// The instants at which cron runs the job for the wall-clock time `c`: one normally,
    /// both passes of a fall-back overlap for a wildcard job (the first for a fixed-time one),
    /// and for a time inside a spring-forward gap the jump itself (fixed-time jobs only).
    fn instants<Z: TimeZone>(&self, tz: &Z, c: NaiveDateTime) -> Vec<DateTime<Z>> {
        match tz.from_local_datetime(&c) {
            LocalResult::Single(t) => vec![t],
            LocalResult::Ambiguous(first, _) if self.fixed => vec![first],
            LocalResult::Ambiguous(first, second) => vec![first, second],
            LocalResult::None if self.fixed => {
                // The first wall-clock minute that exists after the gap is the jump.
                let mut m = c.with_second(0).unwrap_or(c);
                for _ in 0..(24 * 60) {
                    m += Duration::minutes(1);
                    if let Some(t) = tz.from_local_datetime(&m).earliest() {
                        return vec![t];
                    }
                }
                vec![]
            }
            LocalResult::None => vec![],
        }
    }

    /// The first fire time strictly after `t`, in `t`'s zone; `None` when the fields never
    /// match within 10 years (e.g. "0 0 30 2 *").
    pub fn next_after<Z: TimeZone>(&self, t: &DateTime<Z>) -> Option<DateTime<Z>> {
        let tz = t.timezone();
        let local = t.naive_local();
        // Inside the first pass of a fall-back overlap, wall-clock times just before `t`
        // come round again: start that much earlier.
        let later = t.clone() + Duration::hours(3);
        let shrink = t.offset().fix().local_minus_utc() - later.offset().fix().local_minus_utc();
        let mut c = local - Duration::seconds(i64::from(shrink.max(0)));
        let limit = local + Duration::days(3660);
        let mut best: Option<DateTime<Z>> = None;
        loop {
            c = self.next_naive(c, limit)?;
            let found = self.instants(&tz, c);
            for i in &found {
                if i > t && best.as_ref().is_none_or(|b| i < b) {
                    best = Some(i.clone());
                }
            }
            // Earliest instants grow with the wall-clock time: once one is past `t`, no
            // later wall-clock time can fire sooner.
            if found.first().is_some_and(|i| i > t) {
                return best;
            }
            c += Duration::seconds(1);
        }
    }
}

/// The next `n` fire times of `expr` in time zone `tz` after `from`, for `mtn jobs --next`
/// and `mtn check`, as local times of the job's zone.
pub fn next_n(
    expr: &str,
    tz: &JobTz,
    from: DateTime<chrono::Utc>,
    n: usize,
) -> Result<Vec<DateTime<FixedOffset>>, String> {
    let s: Schedule = expr.parse()?;
    Ok(match tz {
        JobTz::Local => s.times_after(from.with_timezone(&chrono::Local), n),
        JobTz::Named(z) => s.times_after(from.with_timezone(z), n),
    })
}

impl Schedule {
    fn times_after<Z: TimeZone>(&self, mut t: DateTime<Z>, n: usize) -> Vec<DateTime<FixedOffset>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some(next) = self.next_after(&t) else {
                break;
            };
            out.push(next.fixed_offset());
            t = next;
        }
        out
    }
}

/// A job's schedule time zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JobTz {
    Local,
    Named(chrono_tz::Tz),
}

#[cfg(test)]
mod tests;
