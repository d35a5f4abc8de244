//! Word error rate, with the normalisation of `shared/ENGINES.md` (beside the repository): lower case, punctuation dropped,
//! hyphens as spaces, numbers of three or more digits spelled digit by digit, smaller ones as words.

use crate::engines::script::numbers::{DIGIT_WORDS, TEEN_WORDS, TENS_WORDS};

/// The words `text` is compared by.
pub fn normalise(text: &str) -> Vec<String> {
    let spaced: String = text
        .to_lowercase()
        .chars()
        .map(|c| match c {
            '-' | '/' => ' ',
            c if c.is_alphanumeric() || c == '\'' || c.is_whitespace() => c,
            _ => ' ',
        })
        .collect();
    let mut words = Vec::new();
    for word in spaced.split_whitespace() {
        let word = word.trim_matches('\'');
        if word.is_empty() {
            continue;
        }
        if word.chars().all(|c| c.is_ascii_digit()) {
            if word.len() >= 3 {
                words.extend(
                    word.chars()
                        .map(|d| DIGIT_WORDS[d as usize - '0' as usize].to_owned()),
                );
            } else {
                let n: usize = word.parse().expect("digits");
                match n {
                    0..10 => words.push(DIGIT_WORDS[n].to_owned()),
                    10..20 => words.push(TEEN_WORDS[n - 10].to_owned()),
                    _ if n.is_multiple_of(10) => words.push(TENS_WORDS[n / 10 - 2].to_owned()),
                    _ => {
                        words.push(TENS_WORDS[n / 10 - 2].to_owned());
                        words.push(DIGIT_WORDS[n % 10].to_owned());
                    }
                }
            }
        } else {
            words.push(word.to_owned());
        }
    }
    words
}

/// Word-level edit distance between `reference` and `hypothesis`.
pub fn errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut previous: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut current = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            let substitution = previous[j] + usize::from(r != h);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[hypothesis.len()]
}

#[test]
fn counts_edits_after_normalising() {
    let reference = normalise("Call me at 555-1234, please");
    assert_eq!(
        reference.join(" "),
        "call me at five five five one two three four please"
    );
    let hypothesis = normalise("call me on five five five one two three four");
    assert_eq!(errors(&reference, &hypothesis), 2);
    assert_eq!(normalise("I'm 42").join(" "), "i'm forty two");
}
