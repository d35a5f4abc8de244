//! The time as the emulator's state machines are told it, and dates as Twilio writes them.

use std::time::{Instant, SystemTime};

use actix_web::http::header::HttpDate;

/// One reading of both clocks: the monotonic one for deadlines, the wall one for dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// For deadlines and durations.
    pub instant: Instant,
    /// For dates in resources and callbacks.
    pub wall: SystemTime,
}

impl Now {
    /// The clocks now (the I/O layer's one read of them per event).
    pub fn read() -> Self {
        Self {
            instant: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

/// RFC 2822 in GMT, as Twilio dates its resources and callbacks: `Tue, 31 Aug 2010 20:36:28 +0000`.
pub fn rfc2822(time: SystemTime) -> String {
    // HTTP's date is the same format with the zone named `GMT` instead of numbered.
    let http = HttpDate::from(time).to_string();
    match http.strip_suffix(" GMT") {
        Some(date) => format!("{date} +0000"),
        None => http,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_rfc_2822_in_gmt() {
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_283_286_988);
        assert_eq!(rfc2822(time), "Tue, 31 Aug 2010 20:36:28 +0000");
    }
}
