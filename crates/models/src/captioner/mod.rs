//! Show and Tell (Vinyals et al., 2015): a CNN reads the image, a linear layer maps its
//! features to the embedding size, and that vector enters the LSTM ([`Inject`]): as its
//! *first input* ([`Inject::First`], the paper's way; h0 and c0 are zeros), or as its
//! initial state ([`Inject::State`]: h0 = tanh(`init_h`(v)), c0 = tanh(`init_c`(v)) for every
//! layer, as Show, Attend and Tell starts its LSTM); then come the word embeddings of
//! `<start> w1 … wn`, and at each step a linear layer over the LSTM output scores the next
//! word. Training uses teacher forcing: cross-entropy of `w1 … wn <end>` given the true
//! previous words, `<pad>` positions ignored.
//!
//! Children and their PyTorch-like names: `encoder.*` (the CNN, see [`encoder`]),
//! `project.weight`/`.bias` (features → embedding), `init_h.*`/`init_c.*` ([`Inject::State`]
//! only), `embed.weight`, `lstm.weight_ih_l0` (…, one set per layer), `fc.weight`/`.bias`
//! (hidden → vocabulary).
//!
//! The LSTM's forget gates start open (`bias_ih` 1 and `bias_hh` 0 on the forget-gate rows,
//! Jozefowicz et al. 2015; PyTorch's uniform draw elsewhere): with PyTorch's draw alone f ≈ 0.5,
//! so the image, read once before `<start>`, fades by half a step and the decoder learns to
//! ignore it (measured on the scenes: greedy captions independent of the image for epochs).
//!
//! Decoding ([`Captioner::greedy`], [`Captioner::beam`], in `decode.rs`) steps the same
//! LSTM one token at a time (a one-step sequence with the carried `(h, c)`: what an
//! `LSTMCell` computes, with the layer's own weights and names).
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! use nabla_models::captioner::{Captioner, CaptionerConfig};
//! let cfg = CaptionerConfig { vocab_size: 12, image_size: [32, 32], embed_size: 8, hidden_size: 16, ..Default::default() };
//! let model = Captioner::new(&cfg)?;
//! let images = Tensor::zeros(&[2, 1, 32, 32], DType::F32);
//! let loss = model.loss(&images, &[vec![4, 5, 6], vec![7]], nabla_nn::Mode::Train)?;
//! assert!(loss.item()? > 0.0);
//! let words = model.greedy(&images, 5)?;
//! assert!(words.iter().all(|w| w.len() <= 5));
//! # Ok::<(), nabla_nn::Error>(())
//! ```

mod decode;
pub mod encoder;
#[cfg(test)]
mod tests;

pub use decode::{BeamOptions, Hypothesis};
pub use encoder::{build_encoder, EncoderKind};

use nabla_core::{no_grad, Generator, Tensor};
use nabla_nn::loss::{cross_entropy, CrossEntropyOptions, Reduction};
use nabla_nn::{Children, Embedding, Error, Linear, Mode, Module, Result, RnnOptions, LSTM};

/// How the image enters the LSTM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// As the first input step, before `<start>` (Show and Tell).
    First,
    /// As the initial `(h0, c0)`, through `init_h` and `init_c` and a tanh.
    State,
}

impl Inject {
    /// The kind named `name` (`first`, `state`).
    pub fn named(name: &str) -> Result<Inject> {
        match name {
            "first" => Ok(Inject::First),
            "state" => Ok(Inject::State),
            _ => Err(Error::Config(format!(
                "captioner: unknown image injection {name:?}; choose first or state"
            ))),
        }
    }

    /// The name [`Inject::named`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Inject::First => "first",
            Inject::State => "state",
        }
    }
}

/// What to build.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionerConfig {
    /// Words in the vocabulary, the special tokens included.
    pub vocab_size: usize,
    /// Width of the word embeddings (and of the projected image feature).
    pub embed_size: usize,
    /// The LSTM's hidden size.
    pub hidden_size: usize,
    /// Stacked LSTM layers.
    pub num_layers: usize,
    /// Which CNN reads the image.
    pub encoder: EncoderKind,
    /// How the image enters the LSTM.
    pub inject: Inject,
    /// Image channels.
    pub in_channels: usize,
    /// Image `[H, W]`.
    pub image_size: [usize; 2],
    /// The `<pad>` token (ignored by the loss, zero embedding).
    pub pad: usize,
    /// The `<start>` token.
    pub start: usize,
    /// The `<end>` token.
    pub end: usize,
    /// Seed of the initialization.
    pub seed: u64,
}

impl Default for CaptionerConfig {
    /// The small encoder on 64×64 grey images, embeddings 64, hidden 128, one layer, and the
    /// special tokens `<pad>` 0, `<start>` 1, `<end>` 2 (vocabulary size still to be set).
    fn default() -> Self {
        CaptionerConfig {
            vocab_size: 0,
            embed_size: 64,
            hidden_size: 128,
            num_layers: 1,
            encoder: EncoderKind::Small,
            inject: Inject::First,
            in_channels: 1,
            image_size: [64, 64],
            pad: 0,
            start: 1,
            end: 2,
            seed: 0,
        }
    }
}

impl CaptionerConfig {
    /// Refuse sizes that cannot make a model, naming the field.
    pub fn validate(&self) -> Result<()> {
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("embed_size", self.embed_size),
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
            ("in_channels", self.in_channels),
        ];
        if let Some((what, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(Error::Config(format!("captioner: {what} is 0; it must be at least 1")));
        }
        for (what, t) in [("pad", self.pad), ("start", self.start), ("end", self.end)] {
            if t >= self.vocab_size {
                return Err(Error::Config(format!(
                    "captioner: the {what} token {t} is outside the vocabulary of {}",
                    self.vocab_size
                )));
            }
        }
        Ok(())
    }
}

/// Set the forget-gate rows `H..2H` of every `bias_ih_l*` to 1 and of every `bias_hh_l*` to 0.
fn open_forget_gates(lstm: &LSTM, hidden: usize) -> Result<()> {
    let mut changed = Vec::new();
    for (name, t) in lstm.state_dict() {
        let value = if name.starts_with("bias_ih") {
            1.0
        } else if name.starts_with("bias_hh") {
            0.0
        } else {
            continue;
        };
        let mut v = t.to_vec_f64();
        v[hidden..2 * hidden].fill(value);
        changed.push((name, Tensor::from_vec(v, t.shape())?.to_dtype(t.dtype())?));
    }
    lstm.load_state_dict(&changed, false)?;
    Ok(())
}

/// The Show and Tell captioner.
pub struct Captioner {
    /// The CNN: images → `[N, F]`.
    pub encoder: Box<dyn Module>,
    /// Features → embedding size.
    pub project: Linear,
    /// [`Inject::State`]: the projected features → h0 and c0 (`[layers·hidden]` each).
    pub init: Option<(Linear, Linear)>,
    /// Word embeddings `[vocab, embed]`.
    pub embed: Embedding,
    /// The decoder.
    pub lstm: LSTM,
    /// LSTM output → next-word scores.
    pub fc: Linear,
    cfg: CaptionerConfig,
    encoder_frozen: bool,
}

impl Captioner {
    /// A freshly initialized model as `cfg` says.
    pub fn new(cfg: &CaptionerConfig) -> Result<Captioner> {
        cfg.validate()?;
        let mut g = Generator::new(cfg.seed);
        let (encoder, width) = build_encoder(cfg.encoder, cfg.in_channels, cfg.image_size, &mut g)?;
        let project = Linear::new(width, cfg.embed_size, &mut g);
        let init = (cfg.inject == Inject::State).then(|| {
            let lh = cfg.num_layers * cfg.hidden_size;
            (
                Linear::new(cfg.embed_size, lh, &mut g),
                Linear::new(cfg.embed_size, lh, &mut g),
            )
        });
        let embed = Embedding::new(cfg.vocab_size, cfg.embed_size, Some(cfg.pad), &mut g);
        let opts = RnnOptions::default().layers(cfg.num_layers);
        let lstm = LSTM::with_options(cfg.embed_size, cfg.hidden_size, opts, &mut g);
        open_forget_gates(&lstm, cfg.hidden_size)?;
        let fc = Linear::new(cfg.hidden_size, cfg.vocab_size, &mut g);
        Ok(Captioner {
            encoder,
            project,
            init,
            embed,
            lstm,
            fc,
            cfg: cfg.clone(),
            encoder_frozen: false,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &CaptionerConfig {
        &self.cfg
    }

    /// Freeze the encoder: no gradient reaches it, and its batch norms keep their running
    /// statistics (it always runs in evaluation mode), as a transferred feature extractor.
    pub fn freeze_encoder(&mut self) {
        self.encoder.freeze();
        self.encoder_frozen = true;
    }

    /// Whether the encoder is frozen.
    pub fn encoder_frozen(&self) -> bool {
        self.encoder_frozen
    }

    /// Replace the word embeddings by `weights` `[vocab_size, embed_size]` (pretrained word
    /// vectors), frozen when `freeze`.
    pub fn set_embeddings(&mut self, weights: &Tensor, freeze: bool) -> Result<()> {
        let want = [self.cfg.vocab_size, self.cfg.embed_size];
        if weights.shape() != want {
            return Err(Error::Config(format!(
                "captioner: word vectors must be [vocab {}, embedding {}], got {:?}",
                want[0],
                want[1],
                weights.shape()
            )));
        }
        self.embed = Embedding::from_pretrained(weights, freeze, Some(self.cfg.pad))?;
        Ok(())
    }

    /// Check that `images` is `[N, C, H, W]` as configured.
    fn check_images(&self, images: &Tensor) -> Result<()> {
        let c = &self.cfg;
        let want = [c.in_channels, c.image_size[0], c.image_size[1]];
        if images.rank() != 4 || images.shape()[1..] != want || images.shape()[0] == 0 {
            return Err(Error::Config(format!(
                "captioner: images must be [N ≥ 1, {}, {}, {}], got shape {:?}",
                want[0],
                want[1],
                want[2],
                images.shape()
            )));
        }
        Ok(())
    }

    /// The projected image features `[N, embed]`: the LSTM's first input.
    pub fn image_features(&self, images: &Tensor, mode: Mode) -> Result<Tensor> {
        self.check_images(images)?;
        let f = if self.encoder_frozen {
            let _g = no_grad();
            self.encoder.forward_named("encoder", images, Mode::Eval)?.detach()
        } else {
            self.encoder.forward_named("encoder", images, mode)?
        };
        self.project.forward_named("project", &f, mode)
    }

    /// [`Inject::State`]: `(h0, c0)`, each `[layers, N, hidden]`, from the projected
    /// features `v` `[N, embed]`; `None` for [`Inject::First`].
    pub fn initial_state(&self, v: &Tensor, mode: Mode) -> Result<Option<(Tensor, Tensor)>> {
        let Some((ih, ic)) = &self.init else {
            return Ok(None);
        };
        let (n, l, h) = (v.shape()[0], self.cfg.num_layers, self.cfg.hidden_size);
        let state = |lin: &Linear, name: &str| -> Result<Tensor> {
            let s = lin.forward_named(name, v, mode)?.tanh()?;
            Ok(s.reshape([n, l, h])?.permute(&[1, 0, 2])?.contiguous()?)
        };
        Ok(Some((state(ih, "init_h")?, state(ic, "init_c")?)))
    }

    /// Next-word scores `[T + 1, N, vocab]` under teacher forcing for `captions` (word ids,
    /// without `<start>` and `<end>`; `T` the longest): row `t` scores the word after
    /// `<start> w1 … wt`, so row `len` of a caption should score `<end>`.
    pub fn logits(&self, images: &Tensor, captions: &[Vec<usize>], mode: Mode) -> Result<Tensor> {
        let n = self.check_batch(images, captions)?;
        let t = captions.iter().map(Vec::len).max().unwrap_or(0) + 1;
        // Time-major `[T, N]` inputs: `<start> w1 … wn`, padded.
        let mut ids = vec![self.cfg.pad; t * n];
        for (j, cap) in captions.iter().enumerate() {
            ids[j] = self.cfg.start;
            for (i, &w) in cap.iter().enumerate() {
                ids[(i + 1) * n + j] = w;
            }
        }
        let words = self.embed.lookup(&ids, &[t, n])?;
        let v = self.image_features(images, mode)?;
        let y = match self.initial_state(&v, mode)? {
            Some((h, c)) => self.lstm.forward_with(&words, Some((&h, &c)), None, mode)?.0,
            None => {
                let x = Tensor::cat(&[&v.unsqueeze(0)?, &words], 0)?;
                let (y, _) = self.lstm.forward_with(&x, None, None, mode)?;
                // The output after the image step predicts nothing (the paper's x₋₁).
                y.narrow(0, 1, t)?
            }
        };
        let v = self.cfg.vocab_size;
        let flat = self
            .fc
            .forward_named("fc", &y.reshape([t * n, self.cfg.hidden_size])?, mode)?;
        Ok(flat.reshape([t, n, v])?)
    }

    /// The mean cross-entropy of `w1 … wn <end>` per word (padding ignored), teacher forced.
    pub fn loss(&self, images: &Tensor, captions: &[Vec<usize>], mode: Mode) -> Result<Tensor> {
        let logits = self.logits(images, captions, mode)?;
        let (t, n, v) = (logits.shape()[0], logits.shape()[1], logits.shape()[2]);
        let mut target = vec![self.cfg.pad; t * n];
        for (j, cap) in captions.iter().enumerate() {
            for (i, &w) in cap.iter().enumerate() {
                target[i * n + j] = w;
            }
            target[cap.len() * n + j] = self.cfg.end;
        }
        let opts = CrossEntropyOptions {
            ignore_index: Some(self.cfg.pad),
            reduction: Reduction::Mean,
            ..Default::default()
        };
        cross_entropy(&logits.reshape([t * n, v])?, &target[..], &opts)
    }

    /// Check images against captions; the batch size.
    fn check_batch(&self, images: &Tensor, captions: &[Vec<usize>]) -> Result<usize> {
        self.check_images(images)?;
        let n = images.shape()[0];
        if captions.len() != n {
            return Err(Error::Config(format!(
                "captioner: {} captions for {n} images",
                captions.len()
            )));
        }
        let v = self.cfg.vocab_size;
        for (j, cap) in captions.iter().enumerate() {
            if let Some(&w) = cap.iter().find(|&&w| w >= v || w == self.cfg.pad) {
                return Err(Error::Config(format!(
                    "captioner: caption {j} holds token {w}, {}",
                    if w >= v {
                        format!("outside the vocabulary of {v}")
                    } else {
                        "the padding token".into()
                    }
                )));
            }
        }
        Ok(n)
    }
}

impl Module for Captioner {
    /// The projected image features `[N, embed]` (the LSTM's first input); captions come
    /// from [`Captioner::greedy`] and [`Captioner::beam`], the loss from [`Captioner::loss`].
    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        self.image_features(x, mode)
    }

    fn children(&self, c: &mut Children) {
        c.module("encoder", self.encoder.as_ref());
        c.module("project", &self.project);
        if let Some((h, cc)) = &self.init {
            c.module("init_h", h);
            c.module("init_c", cc);
        }
        c.module("embed", &self.embed);
        c.module("lstm", &self.lstm);
        c.module("fc", &self.fc);
    }

    fn describe(&self) -> String {
        let c = &self.cfg;
        format!(
            "Show and Tell captioner ({} encoder, image as {}, embed {}, LSTM {}×{}, vocabulary {})",
            c.encoder.name(),
            match c.inject {
                Inject::First => "first input",
                Inject::State => "initial state",
            },
            c.embed_size,
            c.hidden_size,
            c.num_layers,
            c.vocab_size
        )
    }
}
