//! Calling hours: the daily window, in the callee's own time zone, in which outbound calls may be
//! placed (TCPA-style rules allow 8 am to 9 pm local time). Sans-I/O: told the time.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// A daily window of local time, such as `08:00-21:00`; it may wrap past midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallingHours {
    start: Time,
    end: Time,
}

/// Why a window does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a window of local time (expected HH:MM-HH:MM, such as 08:00-21:00)")]
pub struct BadWindow(pub String);

impl CallingHours {
    /// Reads `HH:MM-HH:MM`; the start is inside the window, the end is not.
    pub fn parse(window: &str) -> Result<Self, BadWindow> {
        let bad = || BadWindow(window.to_owned());
        let (start, end) = window.trim().split_once('-').ok_or_else(bad)?;
        let time = |text: &str| -> Result<Time, BadWindow> {
            let (hour, minute) = text.trim().split_once(':').ok_or_else(bad)?;
            let hour: i8 = hour.parse().map_err(|_| bad())?;
            let minute: i8 = minute.parse().map_err(|_| bad())?;
            Time::new(hour, minute, 0, 0).map_err(|_| bad())
        };
        let (start, end) = (time(start)?, time(end)?);
        if start == end {
            return Err(bad());
        }
        Ok(Self { start, end })
    }

    /// Whether `time` of day is inside the window.
    fn contains(&self, time: Time) -> bool {
        if self.start < self.end {
            self.start <= time && time < self.end
        } else {
            time >= self.start || time < self.end
        }
    }

    /// The earliest instant at or after `now` inside the window, in the time zone `zone`.
    pub fn next_allowed(&self, now: Timestamp, zone: &TimeZone) -> Timestamp {
        let local = now.to_zoned(zone.clone());
        if self.contains(local.time()) {
            return now;
        }
        // Outside the window: it opens next at `start`, today or tomorrow.
        let today = self.opening(&local, 0);
        if today.timestamp() > now {
            return today.timestamp();
        }
        self.opening(&local, 1).timestamp()
    }

    /// The window's opening on the day `days` after `local`'s. Where a clock change skips that
    /// time, the clock time shifted forward by the gap (later, never earlier: still compliant).
    fn opening(&self, local: &Zoned, days: i64) -> Zoned {
        let date = local
            .date()
            .checked_add(jiff::Span::new().days(days))
            .unwrap_or(local.date());
        date.to_datetime(self.start)
            .to_zoned(local.time_zone().clone())
            .unwrap_or_else(|_| local.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn windows_parse_and_bad_ones_are_refused() {
        assert!(CallingHours::parse("08:00-21:00").is_ok());
        assert!(CallingHours::parse(" 22:30 - 06:00 ").is_ok());
        for bad in [
            "8-21",
            "08:00",
            "25:00-21:00",
            "08:00-08:00",
            "08:61-21:00",
            "",
        ] {
            assert!(CallingHours::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inside_the_window_is_now_and_outside_waits_for_the_next_opening() {
        let hours = CallingHours::parse("08:00-21:00").unwrap();
        let new_york = TimeZone::get("America/New_York").unwrap();
        // 15:00 UTC is 10:00 in New York in January (UTC-5).
        let now = at("2026-01-15T15:00:00Z");
        assert_eq!(hours.next_allowed(now, &new_york), now);
        // 03:00 UTC is 22:00 the evening before: tomorrow 08:00 local, 13:00 UTC.
        assert_eq!(
            hours.next_allowed(at("2026-01-16T03:00:00Z"), &new_york),
            at("2026-01-16T13:00:00Z")
        );
        // 11:00 UTC is 06:00 local: the same day's 08:00.
        assert_eq!(
            hours.next_allowed(at("2026-01-15T11:00:00Z"), &new_york),
            at("2026-01-15T13:00:00Z")
        );
        // The end is outside: 21:00 local waits.
        assert_eq!(
            hours.next_allowed(at("2026-01-16T02:00:00Z"), &new_york),
            at("2026-01-16T13:00:00Z")
        );
        // Summer time (UTC-4): 08:00 local is 12:00 UTC.
        assert_eq!(
            hours.next_allowed(at("2026-07-15T05:00:00Z"), &new_york),
            at("2026-07-15T12:00:00Z")
        );
    }

    #[test]
    fn a_window_may_wrap_past_midnight() {
        let night = CallingHours::parse("22:00-06:00").unwrap();
        let utc = TimeZone::UTC;
        let late = at("2026-03-01T23:30:00Z");
        assert_eq!(night.next_allowed(late, &utc), late);
        let early = at("2026-03-02T05:59:00Z");
        assert_eq!(night.next_allowed(early, &utc), early);
        assert_eq!(
            night.next_allowed(at("2026-03-02T12:00:00Z"), &utc),
            at("2026-03-02T22:00:00Z")
        );
    }

    #[test]
    fn an_opening_skipped_by_a_clock_change_moves_forward_by_the_gap() {
        // In New York clocks jump from 02:00 to 03:00 on 2026-03-08: a 02:30 opening that day is
        // 03:30 EDT, 07:30 UTC.
        let hours = CallingHours::parse("02:30-21:00").unwrap();
        let new_york = TimeZone::get("America/New_York").unwrap();
        assert_eq!(
            hours.next_allowed(at("2026-03-08T06:00:00Z"), &new_york),
            at("2026-03-08T07:30:00Z")
        );
    }
}
