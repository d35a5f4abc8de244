//! Reading variables: each accessor names the variable in its error.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::ConfigError;

/// Variables looked up through a function (the environment, or a map in tests).
pub(crate) struct Vars<'a, F: Fn(&str) -> Option<String>>(pub &'a F);

/// The longest duration any variable takes: a month. Times are computed as `now + duration`, which
/// must not overflow however long the setting.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    /// A variable's value, trimmed; unset and empty are the same.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// An error naming `variable`.
    pub fn invalid(&self, variable: &'static str, message: String) -> ConfigError {
        ConfigError { variable, message }
    }

    /// A value parsed with `FromStr`.
    pub fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: &str,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        value
            .parse()
            .map_err(|_| self.invalid(name, format!("{value:?} (expected {expected})")))
    }

    /// A number within `range`.
    pub fn bounded<T>(
        &self,
        name: &'static str,
        default: &str,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        let expected = format!("a number from {} to {}", range.start(), range.end());
        let value: T = self.parse(name, default, &expected)?;
        if !range.contains(&value) {
            return Err(self.invalid(name, format!("{value} (expected {expected})")));
        }
        Ok(value)
    }

    /// A whole number of milliseconds within `range` (for the `*_MS` variables).
    pub fn millis(
        &self,
        name: &'static str,
        default: &str,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.bounded(name, default, range)
            .map(Duration::from_millis)
    }

    /// An `on`/`off` switch, `default` when unset.
    pub fn switch(&self, name: &'static str, default: &str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref().unwrap_or(default) {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(self.invalid(name, format!("{other:?} (expected on or off)"))),
        }
    }

    /// A duration with units (`15s`), not zero.
    pub fn duration(&self, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        match humantime::parse_duration(&value) {
            Ok(duration) if !duration.is_zero() && duration <= MAX_DURATION => Ok(duration),
            _ => Err(self.invalid(
                name,
                format!("{value:?} (expected a duration such as 15s or 500ms, at most 30d)"),
            )),
        }
    }
}
