//! Text for captioning: the tokenizer, the vocabulary, corpus BLEU and pretrained word vectors.
//!
//! ```
//! use nabla_data::text::{bleu, tokenize, Vocab};
//! assert_eq!(tokenize("Two shirts, next to an ankle-boot."), ["two", "shirts", "next", "to", "an", "ankle", "boot"]);
//! let vocab = Vocab::build(["a bag above a shirt", "a bag"], 1);
//! let ids = vocab.encode_caption("A bag above a coat", 20);
//! assert_eq!(ids[0], Vocab::START);
//! assert_eq!(vocab.decode(&ids), "a bag above a"); // "coat" is unknown: <unk>, skipped
//! let cand = [tokenize("a bag above a shirt")];
//! let refs = [vec![tokenize("a bag above a shirt")]];
//! assert_eq!(bleu(&cand, &refs)?.bleu[3], 1.0);
//! # Ok::<(), nabla_data::DataError>(())
//! ```
//!
//! The tokenizer's rule ([`tokenize`]): the text is lower-cased (Unicode's `to_lowercase`), and
//! a token is a maximal run of alphanumeric characters (letters or digits, Unicode's
//! `is_alphanumeric`); everything else (spaces, punctuation, symbols) separates tokens and is
//! dropped. So `"T-shirt"` gives `["t", "shirt"]`, `"don't"` gives `["don", "t"]`, `"3 bags"`
//! gives `["3", "bags"]` and `"<unk>"` gives `["unk"]`.

mod bleu;
mod vectors;
mod vocab;

pub use bleu::{bleu, bleu_sentences, Bleu};
pub use vectors::{VectorFormat, VocabVectors, WordVectors, MAX_DIM};
pub use vocab::{Vocab, VOCAB_FORMAT};

/// Lower-case `text` and split it into runs of letters and digits; everything else is dropped.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        if ch.is_alphanumeric() {
            cur.extend(ch.to_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenize_lowercases_and_drops_punctuation() {
        assert_eq!(
            tokenize("  A T-shirt, ABOVE two Bags!\tDon't 3rd 42 "),
            ["a", "t", "shirt", "above", "two", "bags", "don", "t", "3rd", "42"]
        );
        assert!(tokenize("").is_empty());
        assert!(tokenize(" ,.;!? ").is_empty());
        assert_eq!(tokenize("Éclair"), ["éclair"]);
        assert_eq!(tokenize("<unk>"), ["unk"]);
    }
}
