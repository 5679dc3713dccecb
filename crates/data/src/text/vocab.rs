//! The vocabulary: words ↔ indices, with the four special tokens first.

use super::tokenize;
use crate::{DataError, Result};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The `format` tag of [`Vocab::to_metadata`]'s JSON.
pub const VOCAB_FORMAT: &str = "nabla-vocab-1";

/// The special tokens, at indices 0..4.
const SPECIALS: [&str; 4] = ["<pad>", "<start>", "<end>", "<unk>"];

/// Words and their indices: `<pad>`=0, `<start>`=1, `<end>`=2, `<unk>`=3, then the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, usize>,
    min_count: usize,
}

impl Vocab {
    /// The padding index.
    pub const PAD: usize = 0;
    /// The index that starts every encoded caption.
    pub const START: usize = 1;
    /// The index that ends every encoded caption.
    pub const END: usize = 2;
    /// The index of words outside the vocabulary.
    pub const UNK: usize = 3;

    /// The vocabulary of raw captions (tokenized with [`tokenize`]): see [`Vocab::from_tokens`].
    pub fn build<I, S>(captions: I, min_count: usize) -> Vocab
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for c in captions {
            for t in tokenize(c.as_ref()) {
                *counts.entry(t).or_insert(0) += 1;
            }
        }
        Vocab::from_counts(counts, min_count)
    }

    /// The vocabulary of tokenized sentences: the specials, then every word seen at least
    /// `min_count` times (0 counts as 1), by descending count, ties in alphabetical (byte)
    /// order, so the same captions always give the same indices.
    pub fn from_tokens<S: AsRef<[String]>>(sentences: &[S], min_count: usize) -> Vocab {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for s in sentences {
            for t in s.as_ref() {
                *counts.entry(t.clone()).or_insert(0) += 1;
            }
        }
        Vocab::from_counts(counts, min_count)
    }

    fn from_counts(counts: HashMap<String, usize>, min_count: usize) -> Vocab {
        let min_count = min_count.max(1);
        let mut kept: Vec<(String, usize)> = counts
            .into_iter()
            .filter(|(w, n)| *n >= min_count && !SPECIALS.contains(&w.as_str()))
            .collect();
        kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let words = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(kept.into_iter().map(|(w, _)| w));
        Vocab::from_list(words.collect(), min_count)
    }

    fn from_list(words: Vec<String>, min_count: usize) -> Vocab {
        let index = words.iter().enumerate().map(|(i, w)| (w.clone(), i)).collect();
        Vocab {
            words,
            index,
            min_count,
        }
    }

    /// The number of entries, specials included (at least 4).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Always false: the specials are always there.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The `min_count` the vocabulary was built with.
    pub fn min_count(&self) -> usize {
        self.min_count
    }

    /// The entry at `i` (None outside `0..len()`).
    pub fn word(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }

    /// Every entry in index order, specials first.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The index of `w` (None for a word outside the vocabulary).
    pub fn index(&self, w: &str) -> Option<usize> {
        self.index.get(w).copied()
    }

    /// Indices of tokens; a token outside the vocabulary becomes [`Vocab::UNK`].
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<usize> {
        tokens
            .iter()
            .map(|t| self.index(t.as_ref()).unwrap_or(Vocab::UNK))
            .collect()
    }

    /// `<start>`, the first `max_len` tokens of the raw caption (tokenized), `<end>`: at most
    /// `max_len + 2` indices, never padded.
    pub fn encode_caption(&self, caption: &str, max_len: usize) -> Vec<usize> {
        let tokens = tokenize(caption);
        let kept = &tokens[..tokens.len().min(max_len)];
        let mut out = Vec::with_capacity(kept.len() + 2);
        out.push(Vocab::START);
        out.extend(self.encode(kept));
        out.push(Vocab::END);
        out
    }

    /// The words of `ids` joined by single spaces, up to the first `<end>`; the specials
    /// (`<pad>`, `<start>`, `<unk>`) and indices outside the vocabulary are skipped.
    pub fn decode(&self, ids: &[usize]) -> String {
        let mut out = String::new();
        for &i in ids {
            if i == Vocab::END {
                break;
            }
            if i < SPECIALS.len() || i >= self.words.len() {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&self.words[i]);
        }
        out
    }

    /// The vocabulary as one JSON string for a checkpoint's metadata:
    /// `{"format": "nabla-vocab-1", "min_count": N, "words": [... every entry, specials first]}`.
    pub fn to_metadata(&self) -> String {
        json!({"format": VOCAB_FORMAT, "min_count": self.min_count, "words": self.words}).to_string()
    }

    /// Read [`Vocab::to_metadata`]'s JSON back; anything else (another format tag, missing or
    /// misplaced specials, a repeated or empty word) is an error saying what is wrong.
    pub fn from_metadata(text: &str) -> Result<Vocab> {
        let bad = |msg: String| DataError::invalid("vocabulary", msg);
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let format = v.get("format").and_then(Value::as_str);
        if format != Some(VOCAB_FORMAT) {
            return Err(bad(format!("format is {format:?}, expected {VOCAB_FORMAT:?}")));
        }
        let min_count = v
            .get("min_count")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no min_count (a non-negative integer)".into()))? as usize;
        let list = v
            .get("words")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no words list".into()))?;
        let mut words = Vec::with_capacity(list.len());
        for (i, w) in list.iter().enumerate() {
            let w = w.as_str().ok_or_else(|| bad(format!("words[{i}] is not a string")))?;
            if w.is_empty() {
                return Err(bad(format!("words[{i}] is empty")));
            }
            words.push(w.to_string());
        }
        if words.len() < SPECIALS.len() || words[..4] != SPECIALS {
            return Err(bad(format!("the words must start with {SPECIALS:?}")));
        }
        let vocab = Vocab::from_list(words, min_count);
        if vocab.index.len() != vocab.words.len() {
            return Err(bad("a word appears twice".into()));
        }
        Ok(vocab)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocab {
        // counts: a 4, bag 2, shirt 2, above 1, coat 1
        Vocab::build(["A bag above a shirt.", "a coat, a bag", "shirt"], 1)
    }

    #[test]
    fn order_is_specials_then_count_then_alphabet() {
        let v = vocab();
        assert_eq!(
            v.words(),
            ["<pad>", "<start>", "<end>", "<unk>", "a", "bag", "shirt", "above", "coat"]
        );
        assert_eq!((v.len(), v.index("bag"), v.index("dress")), (9, Some(5), None));
        assert_eq!(v.word(8), Some("coat"));
        assert_eq!(v.word(9), None);
        let v2 = Vocab::build(["A bag above a shirt.", "a coat, a bag", "shirt"], 2);
        assert_eq!(v2.words()[4..], ["a", "bag", "shirt"]);
        assert_eq!(v2.min_count(), 2);
    }

    #[test]
    fn encode_and_decode() {
        let v = vocab();
        assert_eq!(v.encode(&["a", "dress", "coat"]), [4, Vocab::UNK, 8]);
        assert_eq!(v.encode_caption("A dress above a coat!", 20), [1, 4, 3, 7, 4, 8, 2]);
        assert_eq!(v.encode_caption("A dress above a coat!", 2), [1, 4, 3, 2]);
        assert_eq!(v.encode_caption("", 5), [1, 2]);
        assert_eq!(v.decode(&[1, 4, 3, 7, 0, 4, 99, 8, 2, 5, 5]), "a above a coat");
        assert_eq!(v.decode(&[2, 4]), "");
    }

    #[test]
    fn metadata_round_trip_and_corruption() {
        let v = vocab();
        let text = v.to_metadata();
        assert_eq!(Vocab::from_metadata(&text).unwrap(), v);
        let cases = [
            ("not json", "not valid JSON"),
            (r#"{"format":"nabla-vocab-2","min_count":1,"words":[]}"#, "format"),
            (r#"{"format":"nabla-vocab-1","words":[]}"#, "min_count"),
            (r#"{"format":"nabla-vocab-1","min_count":1}"#, "no words"),
            (
                r#"{"format":"nabla-vocab-1","min_count":1,"words":["<pad>","<start>","<end>"]}"#,
                "start with",
            ),
            (
                r#"{"format":"nabla-vocab-1","min_count":1,"words":["<pad>","<start>","<end>","<unk>",3]}"#,
                "words[4]",
            ),
            (
                r#"{"format":"nabla-vocab-1","min_count":1,"words":["<pad>","<start>","<end>","<unk>",""]}"#,
                "empty",
            ),
            (
                r#"{"format":"nabla-vocab-1","min_count":1,"words":["<pad>","<start>","<end>","<unk>","a","a"]}"#,
                "twice",
            ),
        ];
        for (text, want) in cases {
            let e = Vocab::from_metadata(text).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("vocabulary"), "{text}: {e}");
        }
    }
}
