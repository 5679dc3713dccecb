//! Captions of many images and their scores: corpus BLEU-1..4 against every reference, and
//! for scenes the exact-match rate and the object-count accuracy.

use super::data::Part;
use crate::error::CliResult;
use nabla_core::{no_grad, Tensor};
use nabla_data::captions::{count_accuracy, exact_match_rate};
use nabla_data::text::{bleu, tokenize, Vocab};
use nabla_models::captioner::{BeamOptions, Captioner};

/// Images decoded per batch.
pub const DECODE_BATCH: usize = 100;

/// How captions are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// The most likely word at each step.
    Greedy,
    /// Beam search of this width; the best hypothesis.
    Beam(usize),
}

impl Decoder {
    /// `greedy` or `beam K`, for lines and tables.
    pub fn name(self) -> String {
        match self {
            Decoder::Greedy => "greedy".into(),
            Decoder::Beam(k) => format!("beam {k}"),
        }
    }
}

/// The captions of `images` `[N, C, H, W]` as strings.
pub fn caption(
    model: &Captioner,
    vocab: &Vocab,
    images: &Tensor,
    how: Decoder,
    max_len: usize,
) -> CliResult<Vec<String>> {
    let _g = no_grad();
    let ids = match how {
        Decoder::Greedy => model.greedy(images, max_len)?,
        // Finished hypotheses are ranked by mean log-probability per token, as Hugging Face's
        // `generate` does by default: with the plain sum, beam search favours short captions
        // and scored below greedy on the scenes (test BLEU-4 0.498 against 0.561 normalized).
        Decoder::Beam(k) => model
            .beam_with(
                images,
                &BeamOptions {
                    k,
                    max_len,
                    length_norm: true,
                },
            )?
            .into_iter()
            .map(|h| h.into_iter().next().map(|h| h.tokens).unwrap_or_default())
            .collect(),
    };
    Ok(ids.iter().map(|t| vocab.decode(t)).collect())
}

/// The captions of every image of `part`, in order.
pub fn caption_part(
    model: &Captioner,
    vocab: &Vocab,
    part: &Part,
    how: Decoder,
    max_len: usize,
) -> CliResult<Vec<String>> {
    let mut out = Vec::with_capacity(part.index.len());
    let shape = part.set.image_shape();
    for chunk in part.index.chunks(DECODE_BATCH) {
        let mut px = Vec::with_capacity(chunk.len() * shape.iter().product::<usize>());
        for &j in chunk {
            px.extend(part.set.image(j)?.0);
        }
        let x = Tensor::from_vec(px, &[chunk.len(), shape[0], shape[1], shape[2]])?;
        out.extend(caption(model, vocab, &x, how, max_len)?);
    }
    Ok(out)
}

/// The scores of a set of captions.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Corpus BLEU-1 .. BLEU-4.
    pub bleu: [f64; 4],
    /// Scenes: the share of captions equal to one of their references, token for token.
    pub exact: Option<f64>,
    /// Scenes: the share of captions whose every mentioned class count is right.
    pub counts: Option<f64>,
}

/// Score `candidates` of samples `which` of `part` (samples in the same order).
pub fn score(part: &Part, which: &[usize], candidates: &[String], scenes: bool) -> CliResult<Scores> {
    let cand: Vec<Vec<String>> = candidates.iter().map(|c| tokenize(c)).collect();
    let refs: Vec<Vec<Vec<String>>> = which
        .iter()
        .map(|&i| part.captions(i).iter().map(|r| tokenize(r)).collect())
        .collect();
    let b = bleu(&cand, &refs)?;
    let (mut exact, mut counts) = (None, None);
    if scenes {
        let raw: Vec<Vec<String>> = which.iter().map(|&i| part.captions(i).to_vec()).collect();
        exact = Some(exact_match_rate(candidates, &raw)?);
        let truth: Vec<Vec<usize>> = which
            .iter()
            .map(|&i| part.set.class_counts(part.index[i]).unwrap_or_default())
            .collect();
        counts = Some(count_accuracy(candidates, &truth, part.set.classes())?);
    }
    Ok(Scores {
        bleu: [b.bleu[0], b.bleu[1], b.bleu[2], b.bleu[3]],
        exact,
        counts,
    })
}

/// Widths of the eval table's columns: the decoder, each BLEU, exact match, count accuracy.
const WIDTHS: [usize; 7] = [10, 8, 8, 8, 8, 13, 16];

/// The header of `nabla caption eval`'s table (with the scene columns when `scenes`), its
/// labels right-aligned over [`table_row`]'s numbers.
pub fn table_header(scenes: bool) -> String {
    let labels = ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "exact match", "count accuracy"];
    let shown = if scenes { 6 } else { 4 };
    let mut s = format!("{:<w$}", "decoder", w = WIDTHS[0]);
    for (l, w) in labels.iter().zip(&WIDTHS[1..]).take(shown) {
        s += &format!("{l:>w$}");
    }
    s
}

/// One row of `nabla caption eval`'s table: `name`'s scores under [`table_header`].
pub fn table_row(name: &str, sc: &Scores) -> String {
    let mut s = format!("{name:<w$}", w = WIDTHS[0]);
    for (b, w) in sc.bleu.iter().zip(&WIDTHS[1..5]) {
        s += &format!("{b:>w$.3}");
    }
    if let Some((e, c)) = sc.exact.zip(sc.counts) {
        // The percent sign takes the last place of the column.
        s += &format!("{:>w$.1}%", 100.0 * e, w = WIDTHS[5] - 1);
        s += &format!("{:>w$.1}%", 100.0 * c, w = WIDTHS[6] - 1);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end offsets of the whitespace-separated fields of `line`, after joining the
    /// words of a label (`exact match`) that a single space separates.
    fn column_ends(line: &str) -> Vec<usize> {
        let b = line.as_bytes();
        (0..b.len())
            .filter(|&i| b[i] != b' ' && (i + 1 == b.len() || (b[i + 1] == b' ' && b.get(i + 2) == Some(&b' '))))
            .map(|i| i + 1)
            .collect()
    }

    #[test]
    fn header_and_rows_line_up() {
        let sc = Scores {
            bleu: [0.801, 0.7, 0.61, 0.552],
            exact: Some(0.215),
            counts: Some(1.0),
        };
        for (scenes, sc) in [
            (true, sc.clone()),
            (
                false,
                Scores {
                    exact: None,
                    counts: None,
                    ..sc
                },
            ),
        ] {
            let header = table_header(scenes);
            let heads = column_ends(&header);
            assert_eq!(heads.len(), if scenes { 7 } else { 5 }, "{header:?}");
            for name in ["greedy", "beam 3", "beam 12"] {
                let row = table_row(name, &sc);
                assert_eq!(row.len(), header.len(), "{header:?}\n{row:?}");
                // The number columns end where their labels end; the decoder starts both lines.
                assert_eq!(column_ends(&row)[1..], heads[1..], "{header:?}\n{row:?}");
                assert!(row.starts_with(name) && header.starts_with("decoder"));
            }
        }
        assert!(table_row("greedy", &sc).ends_with("21.5%          100.0%"));
    }
}
