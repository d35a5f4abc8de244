//! Phone numbers in E.164, the only form we accept, store and send to Twilio.

use std::fmt;

use crate::redact::mask_phone;

/// A phone number in E.164 (`+` and 8 to 15 digits, the first not 0). Its `Debug` and `Display`
/// are masked, so it cannot reach a log whole by accident; [`E164::as_str`] gives the number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct E164(String);

/// Why a number is not E.164.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an E.164 phone number (expected + and 8 to 15 digits, such as +14155550100)")]
pub struct NotE164;

impl E164 {
    /// Checks `number`; surrounding whitespace is ignored, nothing else is reformatted.
    pub fn parse(number: &str) -> Result<Self, NotE164> {
        let number = number.trim();
        let digits = number.strip_prefix('+').ok_or(NotE164)?;
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        valid.then(|| Self(number.to_owned())).ok_or(NotE164)
    }

    /// The number itself, for Twilio and for sealed storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_phone(&self.0))
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_only() {
        assert_eq!(
            E164::parse(" +14155550100 ").unwrap().as_str(),
            "+14155550100"
        );
        assert!(E164::parse("+442071838750").is_ok());
        for bad in [
            "14155550100",
            "+1415555",
            "+1 415 555 0100",
            "+0123456789",
            "+1234567890123456",
            "+",
            "",
        ] {
            assert_eq!(E164::parse(bad), Err(NotE164), "{bad:?}");
        }
    }

    #[test]
    fn prints_masked() {
        let number = E164::parse("+14155550100").unwrap();
        assert!(!format!("{number} {number:?}").contains("5550100"));
    }
}
