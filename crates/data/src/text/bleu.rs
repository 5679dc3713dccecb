//! Corpus BLEU (Papineni et al., 2002), several references per candidate, no smoothing.
//!
//! For n = 1..=4, the modified precision p_n is the sum over the corpus of each candidate's
//! n-gram counts clipped to the most times the n-gram appears in any one of its references,
//! over the sum of the candidates' n-gram counts. The brevity penalty uses c, the total
//! candidate length, and r, the effective reference length: per candidate the length of the
//! reference closest to the candidate's, ties to the shorter (as NLTK's `corpus_bleu` and the
//! COCO caption tools do); BP = 1 when c > r, else exp(1 - r/c) (0 when c = 0). BLEU-N is
//! BP · exp(Σ_{n≤N} log(p_n) / N), uniform weights; a zero p_n (for n ≤ N) makes BLEU-N 0.
//!
//! Checked against both tools on 40 random corpora: equal to pycocoevalcap's `BleuScorer`
//! (option "closest") within 1e-10 (it adds 1e-15 and 1e-9 to each precision's numerator and
//! denominator, so where BLEU is 0 here it gives up to ~3e-5); equal to NLTK's `corpus_bleu`
//! within 1e-16 when no candidate is shorter than 4 tokens. With shorter ones NLTK differs:
//! its denominator is max(1, the candidate's n-gram count), so a candidate with no n-gram
//! still adds 1 to p_n's denominator, which the paper (and the COCO tools) do not.
//! Scores are over [`tokenize`]'s tokens. pycocoevalcap's PTB tokenizer keeps hyphenated words
//! whole ("t-shirt" is one token there, two here), so on the same results/references files
//! (`crate::captions::write_coco_caption_results`) its numbers differ slightly (on 200 test
//! scenes with a half-wrong fake model: BLEU-4 0.822 there, 0.829 here; fed our tokens, it
//! agrees within 1e-12).

use super::tokenize;
use crate::{DataError, Result};
use std::collections::HashMap;

/// Corpus BLEU-1..4 and what they are made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Bleu {
    /// BLEU-1, BLEU-2, BLEU-3, BLEU-4.
    pub bleu: [f64; 4],
    /// The modified n-gram precisions p_1..p_4 (0 where there is no candidate n-gram).
    pub precisions: [f64; 4],
    /// Clipped n-gram matches summed over the corpus, n = 1..4.
    pub matches: [usize; 4],
    /// Candidate n-grams summed over the corpus, n = 1..4.
    pub totals: [usize; 4],
    /// The brevity penalty.
    pub brevity_penalty: f64,
    /// c: the candidates' total length in tokens.
    pub candidate_len: usize,
    /// r: the effective reference length.
    pub reference_len: usize,
}

/// The n-grams of `s` and how often each appears.
fn ngrams<'a>(s: &'a [&'a str], n: usize) -> HashMap<&'a [&'a str], usize> {
    let mut m = HashMap::new();
    if s.len() >= n {
        for g in s.windows(n) {
            *m.entry(g).or_insert(0) += 1;
        }
    }
    m
}

/// Corpus BLEU of tokenized candidates against their tokenized references (`references[i]`
/// are candidate i's, at least one each).
pub fn bleu<C: AsRef<str>, R: AsRef<str>>(candidates: &[Vec<C>], references: &[Vec<Vec<R>>]) -> Result<Bleu> {
    if candidates.len() != references.len() {
        return Err(DataError::invalid(
            "bleu",
            format!(
                "{} candidates but {} reference lists",
                candidates.len(),
                references.len()
            ),
        ));
    }
    let (mut matches, mut totals) = ([0usize; 4], [0usize; 4]);
    let (mut c, mut r) = (0usize, 0usize);
    for (i, (cand, refs)) in candidates.iter().zip(references).enumerate() {
        if refs.is_empty() {
            return Err(DataError::invalid("bleu", format!("candidate {i} has no references")));
        }
        let cand: Vec<&str> = cand.iter().map(AsRef::as_ref).collect();
        let refs: Vec<Vec<&str>> = refs.iter().map(|s| s.iter().map(AsRef::as_ref).collect()).collect();
        c += cand.len();
        // The closest reference length; on a tie the shorter one.
        r += refs
            .iter()
            .map(|s| s.len())
            .min_by_key(|&l| (l.abs_diff(cand.len()), l))
            .unwrap_or(0);
        for n in 1..=4 {
            let mut most: HashMap<&[&str], usize> = HashMap::new();
            for s in &refs {
                for (g, k) in ngrams(s, n) {
                    let e = most.entry(g).or_insert(0);
                    *e = (*e).max(k);
                }
            }
            for (g, k) in ngrams(&cand, n) {
                totals[n - 1] += k;
                matches[n - 1] += k.min(most.get(g).copied().unwrap_or(0));
            }
        }
    }
    let precisions = std::array::from_fn(|n| {
        if totals[n] == 0 {
            0.0
        } else {
            matches[n] as f64 / totals[n] as f64
        }
    });
    let bp = if c == 0 {
        0.0
    } else if c > r {
        1.0
    } else {
        (1.0 - r as f64 / c as f64).exp()
    };
    let bleu = std::array::from_fn(|k| {
        let used = &precisions[..=k];
        if bp == 0.0 || used.contains(&0.0) {
            0.0
        } else {
            bp * (used.iter().map(|p| p.ln()).sum::<f64>() / (k + 1) as f64).exp()
        }
    });
    Ok(Bleu {
        bleu,
        precisions,
        matches,
        totals,
        brevity_penalty: bp,
        candidate_len: c,
        reference_len: r,
    })
}

/// [`bleu`] of raw sentences, each tokenized with [`tokenize`].
pub fn bleu_sentences<C: AsRef<str>, R: AsRef<str>>(candidates: &[C], references: &[Vec<R>]) -> Result<Bleu> {
    let cands: Vec<Vec<String>> = candidates.iter().map(|c| tokenize(c.as_ref())).collect();
    let refs: Vec<Vec<Vec<String>>> = references
        .iter()
        .map(|rs| rs.iter().map(|r| tokenize(r.as_ref())).collect())
        .collect();
    bleu(&cands, &refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn paper_modified_unigram_precision() {
        // Papineni et al. §2.1: "the the the the the the the" scores 2/7 ("the" appears at
        // most twice in one reference).
        let b = bleu_sentences(
            &["the the the the the the the"],
            &[vec!["The cat is on the mat.", "There is a cat on the mat."]],
        )
        .unwrap();
        assert_eq!((b.matches[0], b.totals[0]), (2, 7));
        assert!(close(b.precisions[0], 2.0 / 7.0));
        // The closest reference has 7 tokens (the second): c = r = 7, so BP = exp(0) = 1.
        assert_eq!((b.candidate_len, b.reference_len, b.brevity_penalty), (7, 7, 1.0));
        assert!(close(b.bleu[0], 2.0 / 7.0));
        assert_eq!(b.bleu[1], 0.0, "no bigram of the candidate is in a reference");
    }

    const REFS: [&str; 3] = [
        "It is a guide to action that ensures that the military will forever heed Party commands.",
        "It is the guiding principle which guarantees the military forces always being under the command of the Party.",
        "It is the practical guide for the army always to heed the directions of the party.",
    ];

    #[test]
    fn paper_candidates_one_and_two() {
        // §2.1: candidate 1 has modified unigram precision 17/18 and bigram 10/17; candidate 2
        // 8/14 and 1/13.
        let c1 = "It is a guide to action which ensures that the military always obeys the commands of the party.";
        let c2 = "It is to insure the troops forever hearing the activity guidebook that party direct.";
        let refs = vec![REFS.to_vec()];
        let b1 = bleu_sentences(&[c1], &refs).unwrap();
        assert_eq!(b1.matches[..2], [17, 10]);
        assert_eq!(b1.totals[..2], [18, 17]);
        let b2 = bleu_sentences(&[c2], &refs).unwrap();
        assert_eq!(b2.matches[..2], [8, 1]);
        assert_eq!(b2.totals[..2], [14, 13]);
        // Corpus-level: the counts add up, they are not averaged per sentence.
        let both = bleu_sentences(&[c1, c2], &[REFS.to_vec(), REFS.to_vec()]).unwrap();
        assert_eq!(both.matches[..2], [25, 11]);
        assert_eq!(both.totals[..2], [32, 30]);
        assert!(both.bleu[3] > 0.0 && both.bleu[3] < b1.bleu[3]);
    }

    #[test]
    fn perfect_match_is_one() {
        let b = bleu_sentences(
            &["a bag above two shirts", "a coat"],
            &[vec!["a sneaker", "a bag above two shirts"], vec!["a coat"]],
        )
        .unwrap();
        assert_eq!(b.bleu, [1.0; 4]);
        // "a coat" has no trigram and adds nothing to p3's denominator (NLTK would add 1).
        assert_eq!((b.totals[2], b.matches[2], b.bleu[3]), (3, 3, 1.0));
    }

    #[test]
    fn short_candidate_gets_the_brevity_penalty() {
        // c = 2; references of 5 and 6 tokens, the closest is 5, so r = 5 and
        // BP = exp(1 - 5/2) = exp(-1.5) = 0.22313016014842982. p1 = 2/2, p2 = 1/1, so
        // BLEU-1 = BLEU-2 = BP; there is no trigram, so BLEU-3 = BLEU-4 = 0.
        let b = bleu_sentences(&["a bag"], &[vec!["a bag above a shirt", "a bag next to a shirt"]]).unwrap();
        assert_eq!((b.candidate_len, b.reference_len), (2, 5));
        assert!(close(b.brevity_penalty, 0.22313016014842982));
        assert!(close(b.bleu[0], 0.22313016014842982) && close(b.bleu[1], 0.22313016014842982));
        assert_eq!(b.bleu[2..], [0.0, 0.0]);
    }

    #[test]
    fn reference_length_ties_go_to_the_shorter() {
        // c = 4, references of 3 and 5 tokens are equally close: r = 3 < c, so BP = 1
        // (with the longer one it would be exp(1 - 5/4)).
        let b = bleu_sentences(&["a b c d"], &[vec!["a b c", "a b c d e"]]).unwrap();
        assert_eq!((b.reference_len, b.brevity_penalty), (3, 1.0));
        // p1 = 4/4, p2 = 3/3, p3 = 2/2, p4 = 1/1.
        assert_eq!(b.bleu, [1.0; 4]);
    }

    #[test]
    fn no_four_gram_match_gives_zero() {
        // Candidate 4-grams "a bag above a", "bag above a coat"; the reference has neither.
        // p1 = 4/5, p2 = 2/4, p3 = 1/3 (c = r = 5, BP = 1).
        let b = bleu_sentences(&["a bag above a coat"], &[vec!["a bag above the coat"]]).unwrap();
        assert_eq!((b.matches, b.totals), ([4, 2, 1, 0], [5, 4, 3, 2]));
        assert_eq!(b.bleu[3], 0.0);
        assert!(close(b.bleu[2], (0.8f64 * 0.5 / 3.0).powf(1.0 / 3.0)));
        assert!(close(b.bleu[1], (0.8f64 * 0.5).sqrt()));
        assert!(close(b.bleu[0], 0.8));
    }

    #[test]
    fn bad_input() {
        let e = bleu_sentences(&["a"], &Vec::<Vec<&str>>::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 candidates but 0 reference lists"), "{e}");
        let e = bleu_sentences(&["a", "b"], &[vec!["a"], vec![]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("candidate 1 has no references"), "{e}");
        let b = bleu_sentences(&[""], &[vec!["a bag"]]).unwrap();
        assert_eq!((b.brevity_penalty, b.bleu), (0.0, [0.0; 4]));
    }
}
