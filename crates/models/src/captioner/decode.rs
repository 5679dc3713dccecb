//! Decoding: greedy and beam search, one LSTM step at a time from the image feature.
//!
//! Both never emit `<pad>` or `<start>` (their scores are set to −∞ before choosing), stop a
//! caption at `<end>` (not included in the result) and give at most `max_len` words.
//!
//! Beam search keeps the `k` best hypotheses by summed log-probability; a hypothesis that
//! picks `<end>` is set aside as finished and the beam shrinks by one (so `k` finished
//! hypotheses end the search: without length normalization no live hypothesis can beat
//! them, its sum only falls); hypotheses still live after `max_len` words are finished as
//! they are. Length normalization (rank finished hypotheses by the mean log-probability per
//! token, `<end>` counted) is off by default: on short template-like captions the plain sum
//! is what the paper uses and what beam = greedy at k = 1 needs. Ties go to the lower
//! hypothesis, then the lower token id, as greedy's first maximum does.

use super::Captioner;
use nabla_core::{no_grad, Tensor};
use nabla_nn::{Error, Mode, Module, Result};

/// One caption found by beam search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Word ids, without `<start>` and `<end>`.
    pub tokens: Vec<usize>,
    /// Summed log-probability of the words and, when it ended, of `<end>`.
    pub log_prob: f64,
    /// Whether it chose `<end>` (else it reached `max_len`).
    pub finished: bool,
}

impl Hypothesis {
    /// The score the final ranking uses: the sum, or the mean per token when `normalize`.
    pub fn score(&self, normalize: bool) -> f64 {
        if normalize {
            self.log_prob / (self.tokens.len() + usize::from(self.finished)).max(1) as f64
        } else {
            self.log_prob
        }
    }
}

/// How beam search runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamOptions {
    /// Beam width (at least 1).
    pub k: usize,
    /// Most words per caption (at least 1).
    pub max_len: usize,
    /// Rank finished hypotheses by mean log-probability per token (default off).
    pub length_norm: bool,
}

fn check_len(max_len: usize) -> Result<()> {
    if max_len == 0 {
        return Err(Error::Config(
            "captioner: max_len is 0; a caption needs at least one word".into(),
        ));
    }
    Ok(())
}

impl Captioner {
    /// The LSTM state after reading the image features of `images` (no `<start>` yet).
    fn start_state(&self, images: &Tensor) -> Result<(Tensor, Tensor)> {
        let v = self.image_features(images, Mode::Eval)?;
        if let Some(state) = self.initial_state(&v, Mode::Eval)? {
            return Ok(state);
        }
        let (_, state) = self.lstm.forward_with(&v.unsqueeze(0)?, None, None, Mode::Eval)?;
        Ok(state)
    }

    /// One step: feed `tokens` (one per row) from `state`; log-probabilities `[rows, V]`
    /// (row-major, `<pad>` and `<start>` at −∞) and the new state.
    fn step(&self, tokens: &[usize], state: (&Tensor, &Tensor)) -> Result<(Vec<f32>, (Tensor, Tensor))> {
        let n = tokens.len();
        let x = self.embed.lookup(tokens, &[1, n])?;
        let (y, state) = self.lstm.forward_with(&x, Some(state), None, Mode::Eval)?;
        let y = y.reshape([n, self.cfg.hidden_size])?;
        let logits = self.fc.forward_named("fc", &y, Mode::Eval)?;
        let mut lp = logits.log_softmax(1)?.to_vec_f32();
        let v = self.cfg.vocab_size;
        for r in 0..n {
            lp[r * v + self.cfg.pad] = f32::NEG_INFINITY;
            lp[r * v + self.cfg.start] = f32::NEG_INFINITY;
        }
        Ok((lp, state))
    }

    /// Greedy captions of `images` `[N, C, H, W]`: at each step the most likely word.
    pub fn greedy(&self, images: &Tensor, max_len: usize) -> Result<Vec<Vec<usize>>> {
        check_len(max_len)?;
        let _g = no_grad();
        let (mut h, mut c) = self.start_state(images)?;
        let n = images.shape()[0];
        let v = self.cfg.vocab_size;
        let mut out = vec![Vec::new(); n];
        let mut done = vec![false; n];
        let mut last = vec![self.cfg.start; n];
        for _ in 0..max_len {
            let (lp, (h2, c2)) = self.step(&last, (&h, &c))?;
            (h, c) = (h2, c2);
            for r in 0..n {
                if done[r] {
                    continue;
                }
                let row = &lp[r * v..(r + 1) * v];
                let best = (0..v).fold(0, |b, w| if row[w] > row[b] { w } else { b });
                if best == self.cfg.end {
                    done[r] = true;
                } else {
                    out[r].push(best);
                }
                last[r] = best;
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        Ok(out)
    }

    /// The best `k` captions of each image of `images` `[N, C, H, W]` by summed
    /// log-probability (see the module doc), best first.
    pub fn beam(&self, images: &Tensor, k: usize, max_len: usize) -> Result<Vec<Vec<Hypothesis>>> {
        self.beam_with(
            images,
            &BeamOptions {
                k,
                max_len,
                length_norm: false,
            },
        )
    }

    /// [`Captioner::beam`] with all the options.
    pub fn beam_with(&self, images: &Tensor, opts: &BeamOptions) -> Result<Vec<Vec<Hypothesis>>> {
        if opts.k == 0 {
            return Err(Error::Config(
                "captioner: beam width is 0; it must be at least 1".into(),
            ));
        }
        check_len(opts.max_len)?;
        self.check_images(images)?;
        let _g = no_grad();
        (0..images.shape()[0])
            .map(|i| self.beam_one(&images.narrow(0, i, 1)?, opts))
            .collect()
    }

    fn beam_one(&self, image: &Tensor, opts: &BeamOptions) -> Result<Vec<Hypothesis>> {
        let v = self.cfg.vocab_size;
        let (mut h, mut c) = self.start_state(image)?;
        let mut live = vec![Hypothesis {
            tokens: vec![],
            log_prob: 0.0,
            finished: false,
        }];
        let mut finished: Vec<Hypothesis> = Vec::new();
        for step in 0..opts.max_len {
            let last: Vec<usize> = live
                .iter()
                .map(|hyp| hyp.tokens.last().copied().unwrap_or(self.cfg.start))
                .collect();
            let (lp, (h2, c2)) = self.step(&last, (&h, &c))?;
            let mut cands: Vec<(f64, usize, usize)> = Vec::with_capacity(live.len() * v);
            for (r, hyp) in live.iter().enumerate() {
                for w in 0..v {
                    let s = lp[r * v + w];
                    if s > f32::NEG_INFINITY {
                        cands.push((hyp.log_prob + f64::from(s), r, w));
                    }
                }
            }
            // Stable: equal scores keep (hypothesis, word) order.
            cands.sort_by(|a, b| b.0.total_cmp(&a.0));
            cands.truncate(opts.k - finished.len());
            let mut next = Vec::new();
            let mut parents = Vec::new();
            for (s, r, w) in cands {
                let mut tokens = live[r].tokens.clone();
                if w == self.cfg.end {
                    finished.push(Hypothesis {
                        tokens,
                        log_prob: s,
                        finished: true,
                    });
                } else {
                    tokens.push(w);
                    next.push(Hypothesis {
                        tokens,
                        log_prob: s,
                        finished: false,
                    });
                    parents.push(r);
                }
            }
            if next.is_empty() || step + 1 == opts.max_len {
                finished.extend(next);
                break;
            }
            h = h2.index_select(1, &parents)?;
            c = c2.index_select(1, &parents)?;
            live = next;
        }
        let norm = opts.length_norm;
        finished.sort_by(|a, b| b.score(norm).total_cmp(&a.score(norm)));
        finished.truncate(opts.k);
        Ok(finished)
    }
}
