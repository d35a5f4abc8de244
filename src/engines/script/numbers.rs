//! Phone numbers as callers say them, and as the agent reads them back.
//!
//! Callers say "five five five, one two three four", "oh" for zero, "double five", "fifty five",
//! "eight hundred", or the recogniser writes digits. [`spoken_digits`] turns all of that into the
//! digit string; [`read_back`] says a digit string the way a person confirms one ("five five five,
//! one two three four").

/// "zero" to "nine".
pub const DIGIT_WORDS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];
/// "ten" to "nineteen".
pub const TEEN_WORDS: [&str; 10] = [
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
/// "twenty" to "ninety".
pub const TENS_WORDS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// The digits said in `text`, in order; everything else is ignored.
pub fn spoken_digits(text: &str) -> String {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut digits = String::new();
    let mut repeat = 1;
    let mut index = 0;
    while index < words.len() {
        let word = words[index];
        index += 1;
        match word {
            "double" => {
                repeat = 2;
                continue;
            }
            "triple" => {
                repeat = 3;
                continue;
            }
            "hundred" if digits.chars().last().is_some() => {
                digits.push_str("00");
                continue;
            }
            _ => {}
        }
        let said = if word.bytes().all(|b| b.is_ascii_digit()) {
            word.to_owned()
        } else if let Some(d) = digit_of(word) {
            d.to_string()
        } else if let Some(t) = TEEN_WORDS.iter().position(|w| *w == word) {
            format!("1{t}")
        } else if let Some(t) = TENS_WORDS.iter().position(|w| *w == word) {
            // "fifty five" is 55; "fifty" alone is 50.
            let unit = words
                .get(index)
                .and_then(|next| digit_of(next))
                .filter(|&d| d > 0);
            if unit.is_some() {
                index += 1;
            }
            format!("{}{}", t + 2, unit.unwrap_or(0))
        } else {
            repeat = 1;
            continue;
        };
        for _ in 0..repeat {
            digits.push_str(&said);
        }
        repeat = 1;
    }
    digits
}

fn digit_of(word: &str) -> Option<usize> {
    match word {
        "oh" | "o" => Some(0),
        _ => DIGIT_WORDS.iter().position(|w| *w == word),
    }
}

/// Says `digits` in groups, as phone numbers are grouped: the last four, threes before them, and
/// what is left first. `5551234` → "five five five, one two three four"; eleven digits as 1, 3, 3, 4.
pub fn read_back(digits: &str) -> String {
    let words: Vec<&str> = digits
        .chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| DIGIT_WORDS[d as usize])
        .collect();
    let mut groups = Vec::new();
    let mut end = words.len();
    let mut size = 4;
    while end > 0 {
        let start = end.saturating_sub(size);
        groups.push(words[start..end].join(" "));
        end = start;
        size = 3;
    }
    groups.reverse();
    groups.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_words_and_digits() {
        assert_eq!(
            spoken_digits("five five five, one two three four"),
            "5551234"
        );
        assert_eq!(spoken_digits("It's 555 1234."), "5551234");
        assert_eq!(spoken_digits("oh two oh, seven nine four six"), "0207946");
        assert_eq!(
            spoken_digits("my number is four one five five five five zero one nine nine"),
            "4155550199"
        );
    }

    #[test]
    fn doubles_tens_and_hundreds() {
        assert_eq!(
            spoken_digits("double five five, one two triple four"),
            "55512444"
        );
        assert_eq!(
            spoken_digits("fifty five five, twelve thirty four"),
            "5551234"
        );
        assert_eq!(
            spoken_digits("eight hundred, five five five, twenty"),
            "80055520"
        );
    }

    #[test]
    fn nothing_numeric_gives_nothing() {
        assert_eq!(spoken_digits("I don't know it"), "");
        assert_eq!(spoken_digits("double trouble"), "");
    }

    #[test]
    fn read_back_groups_like_a_person() {
        assert_eq!(read_back("5551234"), "five five five, one two three four");
        assert_eq!(
            read_back("4155550199"),
            "four one five, five five five, zero one nine nine"
        );
        assert_eq!(
            read_back("14155550199"),
            "one, four one five, five five five, zero one nine nine"
        );
        assert_eq!(read_back("123"), "one two three");
    }
}
