//! Captioning as a task of the training engine: each step takes a batch of images and, for
//! each, one of its reference captions (picked from the seed, the step and the image, so a
//! resumed run picks the same ones), and minimizes the teacher-forced cross-entropy;
//! validation decodes greedily and scores corpus BLEU-1..4 (BLEU-4 selects
//! `best.safetensors`), plus the teacher-forced loss on each image's first reference.

use super::data::Part;
use super::pictures;
use super::score::{caption, score, Decoder};
use super::settings::{CaptionSettings, EXTRA_KEY, VOCAB_KEY};
use crate::error::{CliError, CliResult};
use nabla_core::Tensor;
use nabla_data::text::{tokenize, Vocab};
use nabla_data::Batch;
use nabla_models::captioner::Captioner;
use nabla_nn::optim::{Adam, AdamOptions};
use nabla_nn::{Mode, Module};
use nabla_train::{Direction, Optim, Record, Result, StepOutput};
use std::collections::BTreeMap;
use std::path::Path;

/// Test images drawn in `captions.png`.
pub const SHOWN: usize = 8;

/// Word ids of each reference of each image (no `<start>`/`<end>`, at most `max_len`).
pub fn encode_all(part: &Part, vocab: &Vocab, max_len: usize) -> Vec<Vec<Vec<usize>>> {
    (0..part.index.len())
        .map(|i| {
            part.captions(i)
                .iter()
                .map(|c| {
                    let t = tokenize(c);
                    vocab.encode(&t[..t.len().min(max_len)])
                })
                .collect()
        })
        .collect()
}

/// A 64-bit mix (SplitMix64's finalizer) of the seed, the step and the image.
fn pick(seed: u64, step: u64, image: usize, n: usize) -> usize {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (image as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % n as u64) as usize
}

/// Sums of a validation (or test) pass.
#[derive(Default)]
struct ValSums {
    which: Vec<usize>,
    captions: Vec<String>,
    loss: f64,
    words: f64,
}

/// The Show and Tell model trained on one [`Part`], scored on another.
pub struct CaptionTask {
    model: Captioner,
    params: Vec<Tensor>,
    settings: CaptionSettings,
    vocab: Vocab,
    train: Vec<Vec<Vec<usize>>>,
    /// The part validation steps score (switch with [`CaptionTask::score_on`] to test).
    scored: Part,
    scored_ids: Vec<Vec<Vec<usize>>>,
    scenes: bool,
    val: ValSums,
    shown: (Tensor, Vec<Vec<String>>),
    banner: String,
}

impl CaptionTask {
    /// The task of `settings` training `model` on `train`, validating on `val`; `shown`
    /// test images (with their references) go into `captions.png`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: Captioner,
        settings: CaptionSettings,
        vocab: Vocab,
        train: &Part,
        val: Part,
        scenes: bool,
        shown: &Part,
        banner: String,
    ) -> CliResult<CaptionTask> {
        let n = SHOWN.min(shown.index.len());
        let shown_refs = (0..n).map(|i| shown.captions(i).to_vec()).collect();
        Ok(CaptionTask {
            params: model.trainable_parameters(),
            train: encode_all(train, &vocab, settings.max_len),
            scored_ids: encode_all(&val, &vocab, settings.max_len),
            scored: val,
            model,
            vocab,
            scenes,
            val: ValSums::default(),
            shown: (shown.images(n)?, shown_refs),
            banner,
            settings,
        })
    }

    /// Score validation steps on `part` from now on (the test split after training).
    pub fn score_on(&mut self, part: Part) {
        self.scored_ids = encode_all(&part, &self.vocab, self.settings.max_len);
        self.scored = part;
    }

    /// The model.
    pub fn model(&self) -> &Captioner {
        &self.model
    }

    fn captions_of(
        ids: &[Vec<Vec<usize>>],
        b: &Batch,
        choose: impl Fn(usize, usize) -> usize,
    ) -> CliResult<Vec<Vec<usize>>> {
        b.indices
            .iter()
            .map(|&i| {
                let refs = ids
                    .get(i)
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| CliError::new(format!("caption: image {i} has no reference caption")))?;
                Ok(refs[choose(i, refs.len())].clone())
            })
            .collect()
    }
}

impl nabla_train::Task for CaptionTask {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        vec![("", &self.model as &dyn Module)]
    }

    fn configure_optimizers(&mut self) -> Result<Vec<Optim>> {
        let o = AdamOptions {
            lr: self.settings.lr,
            ..Default::default()
        };
        let adam = Adam::new(self.params.clone(), o).map_err(CliError::from)?;
        Ok(vec![Optim::constant(Box::new(adam))])
    }

    fn training_step(&mut self, b: &Batch, step: u64, optims: &mut [Optim]) -> Result<StepOutput> {
        let rows = b.inputs.shape()[0] as u64;
        let seed = self.settings.seed;
        let caps = Self::captions_of(&self.train, b, |i, n| pick(seed, step, i, n))?;
        let loss = self.model.loss(&b.inputs, &caps, Mode::Train).map_err(CliError::from)?;
        let lv = loss.item().map_err(CliError::from)?;
        if !lv.is_finite() {
            // Not stepped: the engine stops on this value and keeps the last checkpoint.
            return Ok(StepOutput::new(rows).sum("loss", lv));
        }
        let mut grads = loss.backward().map_err(CliError::from)?;
        optims[0].step(&mut grads, &self.params)?;
        Ok(StepOutput::new(rows).sum("loss", lv * rows as f64))
    }

    fn validation_step(&mut self, b: &Batch) -> Result<()> {
        let caps = Self::captions_of(&self.scored_ids, b, |_, _| 0)?;
        let words: usize = caps.iter().map(|c| c.len() + 1).sum();
        let loss = self.model.loss(&b.inputs, &caps, Mode::Eval).map_err(CliError::from)?;
        self.val.loss += loss.item().map_err(CliError::from)? * words as f64;
        self.val.words += words as f64;
        let got = caption(
            &self.model,
            &self.vocab,
            &b.inputs,
            Decoder::Greedy,
            self.settings.max_len,
        )?;
        self.val.which.extend_from_slice(&b.indices);
        self.val.captions.extend(got);
        Ok(())
    }

    fn validation_end(&mut self) -> Result<Vec<(String, f64)>> {
        let v = std::mem::take(&mut self.val);
        if v.captions.is_empty() {
            return Ok(vec![]);
        }
        let s = score(&self.scored, &v.which, &v.captions, self.scenes)?;
        let mut out = vec![("loss".to_string(), v.loss / v.words.max(1.0))];
        for (n, b) in s.bleu.iter().enumerate() {
            out.push((format!("bleu{}", n + 1), *b));
        }
        if let (Some(e), Some(c)) = (s.exact, s.counts) {
            out.push(("exact".into(), e));
            out.push(("counts".into(), c));
        }
        Ok(out)
    }

    fn best(&self) -> (&'static str, Direction) {
        ("val_bleu4", Direction::Max)
    }

    fn show(&self, name: &str, value: f64) -> String {
        match name {
            n if n.starts_with("bleu") => format!("{value:.3}"),
            "exact" | "counts" => format!("{:.1}%", 100.0 * value),
            _ => format!("{value:.4}"),
        }
    }

    fn epoch_end(&mut self, dir: &Path, history: &[Record]) -> Result<()> {
        let epoch = history.last().map_or(0, |r| r.epoch);
        let max_len = self.settings.max_len;
        let (x, refs) = &self.shown;
        if refs.is_empty() {
            return Ok(());
        }
        let greedy = caption(&self.model, &self.vocab, x, Decoder::Greedy, max_len)?;
        let beam = caption(&self.model, &self.vocab, x, Decoder::Beam(3), max_len)?;
        let title = format!("captions of test images, epoch {epoch}");
        pictures::captions_png(&dir.join("captions.png"), x, &greedy, &beam, refs, &title)?;
        Ok(pictures::curves(dir, history)?)
    }

    fn checkpoint_extra(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (EXTRA_KEY.to_string(), self.settings.to_json()),
            (VOCAB_KEY.to_string(), self.vocab.to_metadata()),
        ])
    }

    fn start_message(&self) -> Option<String> {
        Some(self.banner.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    #[test]
    fn references_are_picked_evenly_and_reproducibly() {
        let mut seen = [0usize; 5];
        for step in 0..1000 {
            seen[pick(3, step, 17, 5)] += 1;
        }
        assert!(seen.iter().all(|&n| (150..250).contains(&n)), "{seen:?}");
        assert_eq!(pick(3, 7, 17, 5), pick(3, 7, 17, 5));
    }
}
