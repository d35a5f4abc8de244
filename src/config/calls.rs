//! Call management settings: placing, scheduling, transferring and keeping calls.

use std::time::Duration;

use jiff::tz::TimeZone;

use super::vars::Vars;
use super::ConfigError;
use crate::calls::hours::CallingHours;
use crate::calls::number::E164;

/// How calls are placed, scheduled, transferred and kept.
#[derive(Debug, Clone)]
pub struct CallManagementSettings {
    /// The caller id of outbound calls when a request names none (`TWILIO_FROM`).
    pub default_from: Option<E164>,
    /// Where the agent's transfers go (`TRANSFER_TO`); an agent file may name its own.
    pub transfer_to: Option<E164>,
    /// The local hours outbound calls may be placed in (`CALLING_HOURS`); `None`: any time.
    pub calling_hours: Option<CallingHours>,
    /// The callee's time zone when a request names none (`DEFAULT_TIMEZONE`).
    pub default_timezone: TimeZone,
    /// A scheduled call due while the server was down is still placed if at most this late
    /// (`SCHEDULE_GRACE`); later ones are marked `missed`.
    pub schedule_grace: Duration,
    /// Transcripts, extractions and metadata are erased this long after the call ended
    /// (`RETENTION_DAYS`); `None`: kept.
    pub retention: Option<Duration>,
    /// Largest `metadata` a call may carry, in bytes of JSON (`CALL_METADATA_MAX_BYTES`).
    pub metadata_max_bytes: usize,
}

impl CallManagementSettings {
    /// `TWILIO_FROM`, `TRANSFER_TO`, `CALLING_HOURS`, `DEFAULT_TIMEZONE`, `SCHEDULE_GRACE`,
    /// `RETENTION_DAYS`, `CALL_METADATA_MAX_BYTES`.
    pub(super) fn from_vars<F: Fn(&str) -> Option<String>>(
        vars: &Vars<'_, F>,
    ) -> Result<Self, ConfigError> {
        let number = |name: &'static str| -> Result<Option<E164>, ConfigError> {
            vars.get(name)
                .map(|value| E164::parse(&value).map_err(|e| vars.invalid(name, e.to_string())))
                .transpose()
        };
        let calling_hours = match vars.get("CALLING_HOURS").as_deref() {
            None | Some("off") => None,
            Some(window) => Some(
                CallingHours::parse(window)
                    .map_err(|e| vars.invalid("CALLING_HOURS", e.to_string()))?,
            ),
        };
        let zone = vars
            .get("DEFAULT_TIMEZONE")
            .unwrap_or_else(|| "UTC".to_owned());
        let default_timezone = TimeZone::get(&zone).map_err(|_| {
            vars.invalid(
                "DEFAULT_TIMEZONE",
                format!("{zone:?} (expected an IANA time zone such as America/New_York)"),
            )
        })?;
        let days: u64 = vars.bounded("RETENTION_DAYS", "30", 0..=36_500)?;
        Ok(Self {
            default_from: number("TWILIO_FROM")?,
            transfer_to: number("TRANSFER_TO")?,
            calling_hours,
            default_timezone,
            schedule_grace: vars.duration("SCHEDULE_GRACE", "15m")?,
            retention: (days > 0).then(|| Duration::from_secs(days * 86_400)),
            metadata_max_bytes: vars.bounded("CALL_METADATA_MAX_BYTES", "4096", 2..=65_536)?,
        })
    }
}
