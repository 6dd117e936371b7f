//! Cron schedules: five fields (minute, hour, day of month, month, day of week) as cron(8)
//! reads them, or a nickname (`@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`,
//! `@yearly`, `@annually`), in a time zone. Pure: no clock, no IO but the zone's rules.
//!
//! Each field is `*`, a value, a range `a-b`, a step `*/n` or `a-b/n`, or a list of those
//! separated by commas; months and days may be named (`jan`, `mon`), and Sunday is 0 or 7.
//! As in Vixie cron, when both day fields are restricted a day matches either.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule, in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether each day field names fewer than every day (cron's "either" rule).
    days_restricted: bool,
    weekdays_restricted: bool,
    zone: TimeZone,
}

/// Why a schedule does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a schedule has five fields (minute hour day month weekday) or is @hourly, @daily, …: `{0}`")]
    Shape(String),
    #[error("the {field} field `{text}` does not read: {why}")]
    Field { field: &'static str, text: String, why: String },
    #[error("`{0}` is not a time zone this machine knows (use an IANA name: Europe/Paris)")]
    Zone(String),
}

struct Field {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY: Field = Field { name: "day-of-month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
// 7 is Sunday too; folded onto 0 after parsing.
const WEEKDAY: Field =
    Field { name: "day-of-week", min: 0, max: 7, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

impl Field {
    fn value(&self, text: &str) -> Result<u8, String> {
        let lower = text.to_ascii_lowercase();
        if let Some(at) = self.names.iter().position(|name| *name == lower) {
            return Ok(self.min + u8::try_from(at).unwrap_or(0));
        }
        let value: u8 = text.parse().map_err(|_| format!("`{text}` is not a number"))?;
        if value < self.min || value > self.max {
            return Err(format!("{value} is outside {}-{}", self.min, self.max));
        }
        Ok(value)
    }

    /// The set of values `text` names, as bits.
    fn parse(&self, text: &str) -> Result<u64, ScheduleError> {
        let refuse = |why: String| ScheduleError::Field { field: self.name, text: text.to_owned(), why };
        let mut bits = 0u64;
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((range, step)) => {
                    let step: u8 = step.parse().map_err(|_| refuse(format!("the step `{step}` is not a number")))?;
                    if step == 0 {
                        return Err(refuse("a step of 0".into()));
                    }
                    (range, step)
                }
                None => (part, 1),
            };
            let (low, high) = match range {
                "*" => (self.min, self.max),
                range => match range.split_once('-') {
                    Some((low, high)) => (self.value(low).map_err(refuse)?, self.value(high).map_err(refuse)?),
                    None if step > 1 => (self.value(range).map_err(refuse)?, self.max),
                    None => {
                        let value = self.value(range).map_err(refuse)?;
                        (value, value)
                    }
                },
            };
            if low > high {
                return Err(refuse(format!("the range {low}-{high} runs backwards")));
            }
            for value in (low..=high).step_by(usize::from(step)) {
                bits |= 1 << value;
            }
        }
        Ok(bits)
    }

    fn all(&self) -> u64 {
        (self.min..=self.max).fold(0, |bits, value| bits | 1 << value)
    }
}

fn has(bits: u64, value: i8) -> bool {
    u32::try_from(value).is_ok_and(|value| value < 64 && bits & (1 << value) != 0)
}

impl Schedule {
    /// Reads `text` in the time zone `zone` (an IANA name, or `UTC`).
    ///
    /// # Errors
    /// A schedule without five fields or a known nickname, a field that does not read
    /// (saying which and why), or a zone the system's tz database lacks.
    pub fn parse(text: &str, zone: &str) -> Result<Self, ScheduleError> {
        let zone = match zone {
            "UTC" | "Etc/UTC" | "" => TimeZone::UTC,
            name => TimeZone::get(name).map_err(|_| ScheduleError::Zone(name.to_owned()))?,
        };
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minutes, hours, days, months, weekdays] = fields[..] else {
            return Err(ScheduleError::Shape(text.to_owned()));
        };
        let mut weekday_bits = WEEKDAY.parse(weekdays)?;
        if weekday_bits & (1 << 7) != 0 {
            weekday_bits = (weekday_bits | 1) & !(1 << 7);
        }
        let day_bits = DAY.parse(days)?;
        Ok(Self {
            minutes: MINUTE.parse(minutes)?,
            hours: HOUR.parse(hours)?,
            days: day_bits,
            months: MONTH.parse(months)?,
            weekdays: weekday_bits,
            days_restricted: day_bits != DAY.all(),
            weekdays_restricted: weekday_bits != WEEKDAY.all() & !(1 << 7),
            zone,
        })
    }

    fn day_matches(&self, at: DateTime) -> bool {
        let day = has(self.days, at.day());
        let weekday = has(self.weekdays, at.weekday().to_sunday_zero_offset());
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            (true, false) => day,
            (false, true) => weekday,
            (false, false) => true,
        }
    }

    /// The first time after `after` that the schedule names; `None` when it names none in
    /// the next eight years (`0 0 30 2 *`). A time a daylight-saving change skips runs at
    /// the same wall-clock distance after the change; one it repeats runs once.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(self.zone.clone()).datetime();
        let mut at = start.with().second(0).subsec_nanosecond(0).build().ok()?.checked_add(1.minute()).ok()?;
        let limit = start.checked_add(8.years()).ok()?;
        while at < limit {
            if !has(self.months, at.month()) {
                at = at.first_of_month().checked_add(1.month()).ok()?.start_of_day();
            } else if !self.day_matches(at) {
                at = at.date().tomorrow().ok()?.to_datetime(jiff::civil::Time::midnight());
            } else if !has(self.hours, at.hour()) {
                at = at.with().minute(0).build().ok()?.checked_add(1.hour()).ok()?;
            } else if !has(self.minutes, at.minute()) {
                at = at.checked_add(1.minute()).ok()?;
            } else {
                let zoned = self.zone.to_ambiguous_zoned(at).compatible().ok()?;
                if zoned.timestamp() > after {
                    return Some(zoned.timestamp());
                }
                at = at.checked_add(1.minute()).ok()?;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(schedule: &str, zone: &str, after: &str) -> Option<String> {
        let schedule = Schedule::parse(schedule, zone).unwrap();
        schedule.next_after(after.parse().unwrap()).map(|t| t.to_string())
    }

    #[test]
    fn next_times_of_common_schedules() {
        let cases = [
            ("* * * * *", "2026-12-06T12:00:30Z", "2026-12-06T12:01:00Z"),
            ("* * * * *", "2026-12-06T12:00:00Z", "2026-12-06T12:01:00Z"),
            ("*/15 * * * *", "2026-12-06T12:01:00Z", "2026-12-06T12:15:00Z"),
            ("@hourly", "2026-12-06T12:00:00Z", "2026-12-06T13:00:00Z"),
            ("@daily", "2026-12-06T12:00:00Z", "2026-12-07T00:00:00Z"),
            ("30 2 * * 1-5", "2026-12-05T00:00:00Z", "2026-12-07T02:30:00Z"), // Saturday → Monday
            ("0 9 * * mon,wed", "2026-12-07T09:00:00Z", "2026-12-09T09:00:00Z"),
            ("0 0 1 */3 *", "2026-12-06T00:00:00Z", "2027-01-01T00:00:00Z"),
            ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("0 12 13 * 5", "2026-12-06T00:00:00Z", "2026-12-11T12:00:00Z"), // the 13th or a Friday
            ("0 0 * * 7", "2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z"),   // 7 is Sunday
            ("5-10/5 * * * *", "2026-12-06T12:06:00Z", "2026-12-06T12:10:00Z"),
            ("@yearly", "2026-12-06T00:00:00Z", "2027-01-01T00:00:00Z"),
        ];
        for (schedule, after, want) in cases {
            assert_eq!(next(schedule, "UTC", after).as_deref(), Some(want), "{schedule} after {after}");
        }
        assert_eq!(next("0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z"), None, "February has no 30th");
    }

    #[test]
    fn schedules_in_a_time_zone_follow_its_clock_changes() {
        // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
        assert_eq!(next("0 9 * * *", "Europe/Paris", "2026-12-06T12:00:00Z").as_deref(), Some("2026-12-07T08:00:00Z"));
        assert_eq!(next("0 9 * * *", "Europe/Paris", "2026-07-06T12:00:00Z").as_deref(), Some("2026-07-07T07:00:00Z"));
        // 02:30 does not happen on 29 March 2026 in Paris: it runs as the clock says 03:30.
        assert_eq!(next("30 2 * * *", "Europe/Paris", "2026-03-28T12:00:00Z").as_deref(), Some("2026-03-29T01:30:00Z"));
        // 02:30 happens twice on 25 October 2026: it runs once, at the first.
        let first = next("30 2 * * *", "Europe/Paris", "2026-10-24T12:00:00Z").unwrap();
        assert_eq!(first, "2026-10-25T00:30:00Z");
        assert_eq!(next("30 2 * * *", "Europe/Paris", &first).as_deref(), Some("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let refused = |schedule: &str, zone: &str| Schedule::parse(schedule, zone).unwrap_err().to_string();
        assert!(refused("* * * *", "UTC").contains("five fields"));
        assert!(refused("@often", "UTC").contains("five fields"));
        assert!(refused("60 * * * *", "UTC").contains("minute field `60`"));
        assert!(refused("* 24 * * *", "UTC").contains("outside 0-23"));
        assert!(refused("* * 0 * *", "UTC").contains("day-of-month"));
        assert!(refused("* * * foo *", "UTC").contains("month field"));
        assert!(refused("*/0 * * * *", "UTC").contains("step of 0"));
        assert!(refused("10-5 * * * *", "UTC").contains("backwards"));
        assert!(refused("* * * * *", "Mars/Olympus").contains("time zone"));
    }
}
