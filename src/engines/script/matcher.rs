//! Intent matching that tolerates recognition errors, with no network and no model.
//!
//! Text is normalised (lower case, punctuation and fillers dropped, synonyms mapped to one word),
//! then compared with each intent's example phrases. Each word counts by how informative it is
//! (words in many examples, like "you", count less) and by how close its nearest counterpart is
//! (Jaro-Winkler, so "prizes" still finds "prices"). An example scores by how many of its words the
//! caller said and, less, by how much of what the caller said it explains. An intent's score is its
//! best example's.

use std::collections::{HashMap, HashSet};

/// Words that carry no meaning for matching.
const FILLERS: &[&str] = &[
    "um", "uh", "er", "erm", "hmm", "like", "so", "well", "please", "the", "a", "an", "just",
];

/// Two words at least this similar (Jaro-Winkler) count as the same word, scaled by similarity.
const WORD_SIMILARITY: f64 = 0.88;

/// Part of a score that stands on the example's words being said alone; the rest needs the
/// caller's words to be explained by the example too.
const RECALL_SHARE: f64 = 0.8;

/// Weight of a caller's word no example uses: about that of a word two intents share.
const UNKNOWN_WORD_WEIGHT: f64 = 1.0;

/// Splits text into normalised words, without synonyms (for yes/no and names).
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace('\'', "")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !FILLERS.contains(w))
        .map(str::to_owned)
        .collect()
}

/// Matches caller text against intents' examples.
#[derive(Debug, Clone)]
pub struct Matcher {
    synonyms: HashMap<String, String>,
    /// Per intent, its examples as canonical words.
    examples: Vec<Vec<Vec<String>>>,
    /// How informative each canonical word is.
    weights: HashMap<String, f64>,
}

impl Matcher {
    /// A matcher for intents given as lists of example phrases, with `synonyms` (word → canonical).
    pub fn new(intents: &[Vec<String>], synonyms: HashMap<String, String>) -> Self {
        let mut matcher = Self {
            synonyms,
            examples: Vec::new(),
            weights: HashMap::new(),
        };
        matcher.examples = intents
            .iter()
            .map(|examples| examples.iter().map(|e| matcher.canonical(e)).collect())
            .collect();
        // Inverse document frequency over intents: a word every intent uses tells nothing.
        let mut intents_with: HashMap<&str, usize> = HashMap::new();
        for examples in &matcher.examples {
            let distinct: HashSet<&str> = examples.iter().flatten().map(String::as_str).collect();
            for word in distinct {
                *intents_with.entry(word).or_default() += 1;
            }
        }
        let total = matcher.examples.len().max(1) as f64;
        matcher.weights = intents_with
            .into_iter()
            .map(|(word, n)| (word.to_owned(), (1.0 + total / n as f64).ln()))
            .collect();
        matcher
    }

    /// Normalised words with synonyms replaced by their canonical word.
    pub fn canonical(&self, text: &str) -> Vec<String> {
        words(text)
            .into_iter()
            .map(|w| self.synonyms.get(&w).cloned().unwrap_or(w))
            .collect()
    }

    /// The best-matching intent (its index) and its score in 0..=1, if any intent scores at all.
    pub fn best(&self, text: &str) -> Option<(usize, f64)> {
        let said = self.canonical(text);
        if said.is_empty() {
            return None;
        }
        self.examples
            .iter()
            .enumerate()
            .map(|(intent, examples)| {
                let score = examples
                    .iter()
                    .map(|e| self.score(&said, e))
                    .fold(0.0, f64::max);
                (intent, score)
            })
            .filter(|&(_, score)| score > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// How well `example` explains what was `said`: mostly the weighted share of the example's
    /// words the caller said (or nearly said), partly the share of the caller's words the example
    /// accounts for, so that "what are you prizes" prefers "what are your prices" over "what are
    /// you", which leaves "prizes" unexplained.
    fn score(&self, said: &[String], example: &[String]) -> f64 {
        let recall = self.covered(example, said);
        let precision = self.covered(said, example);
        // Multiplied, not added: explaining a short utterance of common words is no match.
        recall * (RECALL_SHARE + (1.0 - RECALL_SHARE) * precision)
    }

    /// Weighted share of `words` that have a near match in `among`.
    fn covered(&self, words: &[String], among: &[String]) -> f64 {
        let (mut found, mut total) = (0.0, 0.0);
        for word in words {
            let weight = self
                .weights
                .get(word)
                .copied()
                .unwrap_or(UNKNOWN_WORD_WEIGHT);
            total += weight;
            let closest = among
                .iter()
                .map(|other| strsim::jaro_winkler(other, word))
                .fold(0.0, f64::max);
            if closest >= WORD_SIMILARITY {
                found += weight * closest;
            }
        }
        if total == 0.0 {
            0.0
        } else {
            found / total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> Matcher {
        let intents = vec![
            vec!["who are you".to_owned(), "are you a robot".to_owned()],
            vec![
                "what are your prices".to_owned(),
                "how much does it cost".to_owned(),
            ],
            vec!["when are you open".to_owned()],
        ];
        let synonyms = [
            ("cost", "price"),
            ("prices", "price"),
            ("prizes", "price"),
            ("machine", "robot"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        Matcher::new(&intents, synonyms)
    }

    #[test]
    fn exact_and_paraphrased_phrases_match() {
        let m = matcher();
        assert_eq!(m.best("What are your prices?").map(|b| b.0), Some(1));
        assert_eq!(
            m.best("um, how much does a cleaning cost").map(|b| b.0),
            Some(1)
        );
        assert_eq!(m.best("Are you a machine?").map(|b| b.0), Some(0));
        assert_eq!(m.best("when are you open tomorrow").map(|b| b.0), Some(2));
    }

    #[test]
    fn recognition_errors_still_match() {
        let m = matcher();
        let (intent, score) = m.best("what are you prizes").unwrap();
        assert_eq!(intent, 1);
        assert!(score > 0.6, "{score}");
        assert_eq!(m.best("wen are you opn").map(|b| b.0), Some(2));
    }

    #[test]
    fn common_words_alone_score_low() {
        let m = matcher();
        let (_, score) = m.best("are you").unwrap();
        assert!(score < 0.6, "{score}");
        assert_eq!(m.best(""), None);
    }
}
