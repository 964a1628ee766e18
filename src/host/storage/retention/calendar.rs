//! restic's `keep_within` duration: `2y5m7d3h`, with `m` = months, and years, months and
//! days counted on the calendar (restic's `internal/data/duration.go`).

use std::fmt;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Deserializer};

/// Years, months, days and hours, as restic's `Duration`. All zero means "not set".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CalendarDuration {
    pub years: i64,
    pub months: i64,
    pub days: i64,
    pub hours: i64,
}

impl CalendarDuration {
    pub fn is_zero(&self) -> bool {
        *self == CalendarDuration::default()
    }

    /// Parse restic's syntax. Units must come in restic's order y, m, d, h, each at most
    /// once: `1h30m` is refused because restic reads it as one hour and 30 *months* while a
    /// reader may well mean 90 minutes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let hint = "restic's duration syntax: numbers with the units y (years), m (months), d (days), h (hours) in that order, e.g. \"1y6m\", \"30d\", \"36h\"";
        let s = text.trim();
        if s.is_empty() {
            return Err(format!("empty duration; use {hint}"));
        }
        let mut d = CalendarDuration::default();
        let mut rest = s;
        let mut last_rank = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!(
                    "{text:?}: expected a number at {rest:?}; use {hint}"
                ));
            }
            let num: i64 = rest[..digits]
                .parse()
                .map_err(|_| format!("{text:?}: number {:?} is too large", &rest[..digits]))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let (rank, slot) = match unit {
                "y" => (1, &mut d.years),
                "m" => (2, &mut d.months),
                "d" => (3, &mut d.days),
                "h" => (4, &mut d.hours),
                "" => return Err(format!("{text:?}: no unit after {num}; use {hint}")),
                "min" | "mins" | "minute" | "minutes" | "s" | "sec" | "secs" | "w" | "week"
                | "weeks" | "month" | "months" | "year" | "years" | "day" | "days" => {
                    return Err(format!(
                        "{text:?}: unit {unit:?} is not part of {hint}; \"m\" means months there, minutes and seconds are not supported"
                    ))
                }
                _ => return Err(format!("{text:?}: unknown unit {unit:?}; use {hint}")),
            };
            if rank <= last_rank {
                return Err(if unit == "m" {
                    format!(
                        "{text:?} is ambiguous: restic reads \"m\" as months (so this would add {num} months), a reader may mean {num} minutes; write the units in the order y, m, d, h (minutes are not supported)"
                    )
                } else {
                    format!("{text:?}: unit {unit:?} repeated or out of order; use {hint}")
                });
            }
            last_rank = rank;
            *slot = num;
        }
        Ok(d)
    }

    /// `t` minus this duration, as Go's `t.AddDate(-y, -m, -d).Add(-h hours)`: months that
    /// run past a month's end overflow into the next one (31 March − 1m = 3 March). `None`
    /// when the result is before the calendar's start (the window then covers everything).
    pub fn before(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let months = i64::from(t.year()) * 12 + i64::from(t.month0())
            - self.years.checked_mul(12)?
            - self.months;
        let year = i32::try_from(months.div_euclid(12)).ok()?;
        let first = NaiveDate::from_ymd_opt(year, months.rem_euclid(12) as u32 + 1, 1)?;
        let day_offset = i64::from(t.day0()) - self.days;
        let date = first.checked_add_signed(Duration::try_days(day_offset)?)?;
        date.and_time(t.time())
            .checked_sub_signed(Duration::try_hours(self.hours)?)
    }
}

impl fmt::Display for CalendarDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, unit) in [
            (self.years, "y"),
            (self.months, "m"),
            (self.days, "d"),
            (self.hours, "h"),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for CalendarDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) => CalendarDuration::parse(&t).map_err(serde::de::Error::custom),
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "{n}: write the window as a string in restic's syntax, e.g. \"30d\" or \"1y6m\" (m = months)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn parses_restic_syntax() {
        let d = |y, m, d, h| CalendarDuration {
            years: y,
            months: m,
            days: d,
            hours: h,
        };
        assert_eq!(CalendarDuration::parse("1m").unwrap(), d(0, 1, 0, 0));
        assert_eq!(CalendarDuration::parse("2y5m7d3h").unwrap(), d(2, 5, 7, 3));
        assert_eq!(
            CalendarDuration::parse(" 13d23h ").unwrap(),
            d(0, 0, 13, 23)
        );
        assert_eq!(CalendarDuration::parse("9999y").unwrap(), d(9999, 0, 0, 0));
        assert_eq!(d(1, 2, 3, 3).to_string(), "1y2m3d3h");
        let amb = CalendarDuration::parse("1h30m").unwrap_err();
        assert!(amb.contains("months") && amb.contains("minutes"), "{amb}");
        assert!(CalendarDuration::parse("30min")
            .unwrap_err()
            .contains("minutes"));
        assert!(CalendarDuration::parse("2w").unwrap_err().contains("\"w\""));
        assert!(CalendarDuration::parse("5")
            .unwrap_err()
            .contains("no unit"));
        assert!(CalendarDuration::parse("-1d").is_err());
        assert!(CalendarDuration::parse("").is_err());
        // restic's own test's "1y1d1m" is out of order: refused here (a deliberate difference).
        assert!(CalendarDuration::parse("1y1d1m").is_err());
    }

    #[test]
    fn subtracts_on_the_calendar_like_go_adddate() {
        let p = |s| CalendarDuration::parse(s).unwrap();
        assert_eq!(
            p("1m").before(t("2016-03-31 10:00:00")),
            Some(t("2016-03-02 10:00:00"))
        );
        assert_eq!(
            p("1y").before(t("2016-02-29 00:00:00")),
            Some(t("2015-03-01 00:00:00"))
        );
        assert_eq!(
            p("1y2m3d3h").before(t("2016-01-18 12:02:03")),
            Some(t("2014-11-15 09:02:03"))
        );
        assert_eq!(
            p("2d").before(t("2016-03-01 01:00:00")),
            Some(t("2016-02-28 01:00:00"))
        );
        assert_eq!(p("999999y").before(t("2016-03-01 01:00:00")), None);
    }
}
