# Run: python3 -m venv v && v/bin/pip install cronsim && v/bin/python gen_dst_table.py > dst_table.txt
# Generates src/cron/testdata/dst_table.txt with cronsim (an independent model of
# Debian cron, incl. its DST rules). The Rust test reads only the checked-in table.
from datetime import datetime, timezone
from zoneinfo import ZoneInfo
from cronsim import CronSim
import cronsim
exprs = ["30 2 * * *", "30 2,14 * * *", "0 1-3 * * *", "15 2 * * *", "45 1 * * *", "30 1 * * *",
         "0,30 2 * * *", "0 2 * * *", "0 3 * * *", "0 * * * *", "*/30 * * * *", "*/15 2 * * *",
         "30 * * * *", "0 0 */2 * 1", "0 0 1,15 * 1", "0 0 1-7 * 1", "0 12 * * mon-fri",
         "@daily", "@hourly", "5 4 * * sun", "0 22 * * 1-5", "0 0 29 2 *", "0 9 1 jan,jul *",
         "10-20/5 2 * * *", "0 0 * * 7"]
starts = {
  "Europe/Berlin": ["2026-03-28T12:00:00+01:00", "2026-03-29T01:59:00+01:00", "2026-10-24T12:00:00+02:00",
                    "2026-10-25T02:40:00+02:00", "2026-01-01T00:00:00+01:00"],
  "America/New_York": ["2026-03-07T12:00:00-05:00", "2026-10-31T12:00:00-04:00", "2026-11-01T01:40:00-04:00"],
  "Australia/Lord_Howe": ["2026-04-04T12:00:00+11:00", "2026-04-05T01:40:00+11:00", "2026-10-03T12:00:00+10:30"],
}
out = ["# cron DST/day-rule table: time zone | expression | start | next 6 fire times.",
       "# Generated with cronsim (a model of Debian cron) by gen_dst_table.py beside this file.",
       "# Starts inside the second pass of a fall-back overlap are left out (cronsim answers those",
       "# with a time before the start); the test checks them by hand. The test does not need cronsim."]
for tz, ss in starts.items():
    z = ZoneInfo(tz)
    for s in ss:
        start = datetime.fromisoformat(s).astimezone(z)
        for e in exprs:
            it = CronSim(e if not e.startswith("@") else {"@daily": "0 0 * * *", "@hourly": "0 * * * *"}[e], start)
            times = [next(it).isoformat() for _ in range(6)]
            out.append(f"{tz} | {e} | {start.isoformat()} | {' '.join(times)}")
print("\n".join(out))
