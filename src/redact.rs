//! Masking of personal data before it reaches a log line, and secrets that never print.

/// A secret setting (auth token, key, database URL with a password): `Debug` prints
/// `<redacted>`; [`Secret::expose`] is the only way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Masks a phone number for logs: `+14155555309` becomes `+1415***5309` (country and area code,
/// last four). Shorter values keep less, so that at least half of them is always hidden: 8 to 11
/// characters keep two at each end, shorter ones nothing.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let (head, tail) = match chars.len() {
        0..=7 => return "***".to_owned(),
        8..=11 => (2, 2),
        _ => (5, 4),
    };
    let head: String = chars[..head].iter().collect();
    let tail: String = chars[chars.len() - tail..].iter().collect();
    format!("{head}***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_country_area_and_last_four() {
        assert_eq!(mask_phone("+14155555309"), "+1415***5309");
        assert_eq!(mask_phone("+447700900123"), "+4477***0123");
    }

    #[test]
    fn short_values_are_fully_masked() {
        assert_eq!(mask_phone("12345"), "***");
        assert_eq!(mask_phone(""), "***");
        assert_eq!(mask_phone("anonymous"), "an***us");
        assert_eq!(mask_phone("+4930123456"), "+4***56");
    }
}
