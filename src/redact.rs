//! Masking of personal data before it reaches a log line.

/// Masks a phone number for logs: `+14155555309` becomes `+1415***5309`. Numbers too short to
/// keep anything of are fully masked.
pub fn mask_phone(number: &str) -> String {
    let chars: Vec<char> = number.trim().chars().collect();
    if chars.len() < 9 {
        return "***".to_owned();
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
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
        assert_eq!(mask_phone("anonymous"), "anony***mous");
    }
}
