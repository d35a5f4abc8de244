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

/// Masks a phone number for logs, API responses and webhooks: `+14155550100` becomes
/// `+1******0100`: the `+` and the first digit (the country code's first, all of it for North
/// America), a star for each hidden character, and at most the last four digits. Shorter values
/// keep less, so that at least half of them is always hidden: 8 to 11 characters keep two at each
/// end, shorter ones nothing.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    let tail = match chars.len() {
        0..=7 => return "***".to_owned(),
        8..=11 => 2,
        _ => 4,
    };
    let hidden = chars.len() - 2 - tail;
    let head: String = chars[..2].iter().collect();
    let tail: String = chars[chars.len() - tail..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(hidden))
}

/// A raw phone number that formats masked ([`mask_phone`]), for the `Debug` of types holding
/// one: no `{:?}` of them can put the number in a log line.
pub struct MaskedPhone<'a>(pub &'a str);

impl std::fmt::Debug for MaskedPhone<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&mask_phone(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_digit_and_at_most_the_last_four() {
        assert_eq!(mask_phone("+14155550100"), "+1******0100");
        assert_eq!(mask_phone("+447700900123"), "+4*******0123");
        assert_eq!(mask_phone(" +14155550100 "), "+1******0100", "trimmed");
    }

    #[test]
    fn short_values_are_fully_masked() {
        assert_eq!(mask_phone("12345"), "***");
        assert_eq!(mask_phone(""), "***");
        assert_eq!(mask_phone("anonymous"), "an*****us");
        assert_eq!(mask_phone("+4930123456"), "+4*******56");
    }

    #[test]
    fn a_masked_phone_debugs_as_its_mask() {
        assert_eq!(format!("{:?}", MaskedPhone("+14155550100")), "+1******0100");
        assert_eq!(
            format!("{:?}", Some(MaskedPhone("+14155550100"))),
            "Some(+1******0100)"
        );
    }
}
