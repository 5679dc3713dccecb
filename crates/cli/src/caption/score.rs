//! Captions of many images and their scores: corpus BLEU-1..4 against every reference, and
//! for scenes the exact-match rate and the object-count accuracy.

use super::data::Part;
use crate::error::CliResult;
use nabla_core::{no_grad, Tensor};
use nabla_data::captions::{count_accuracy, exact_match_rate};
use nabla_data::text::{bleu, tokenize, Vocab};
use nabla_models::captioner::Captioner;

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
        Decoder::Beam(k) => model
            .beam(images, k, max_len)?
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
