//! What a captioning run is: the resolved settings, checked once, written to `config.toml`
//! and into every checkpoint (JSON under [`EXTRA_KEY`], the vocabulary under
//! [`VOCAB_KEY`]), so `--resume`, `predict` and `eval` rebuild the same model and words.

use crate::error::{CliError, CliResult};
use nabla_data::text::Vocab;
use nabla_models::captioner::{CaptionerConfig, EncoderKind, Inject};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The checkpoint `extra` key that holds the settings (and marks a captioning checkpoint).
pub const EXTRA_KEY: &str = "caption";
/// The checkpoint `extra` key that holds the vocabulary.
pub const VOCAB_KEY: &str = "vocab";

/// A captioning run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionSettings {
    /// `scenes`, `coco:PATH` or `flickr8k:PATH`.
    pub data: String,
    /// Generated training scenes (scenes only).
    pub scenes: usize,
    /// Validation images (generated scenes, or held out of the training files).
    pub val_size: usize,
    /// Test images (generated scenes; files: the rest after training and validation).
    pub test_size: usize,
    /// Side of the square images files are resized to.
    pub image_size: usize,
    /// Epochs in total.
    pub epochs: u64,
    /// Images per step (one reference caption each).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Global gradient-norm clip (0: none).
    pub clip: f64,
    /// Word embedding size.
    pub embed: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// LSTM layers.
    pub layers: usize,
    /// `small` or `resnet18`.
    pub encoder: String,
    /// How the image enters the LSTM: `first` (first input) or `state` (h0, c0).
    pub inject: String,
    /// Classification checkpoint the encoder is loaded from (then frozen).
    pub encoder_from: Option<PathBuf>,
    /// Pretrained word vectors (word2vec text/binary or GloVe text).
    pub word_vectors: Option<PathBuf>,
    /// Keep the loaded word vectors fixed.
    pub freeze_embeddings: bool,
    /// Words seen fewer times in the training captions become `<unk>`.
    pub min_count: usize,
    /// Most words per caption, in training (longer ones are cut) and decoding.
    pub max_len: usize,
    /// Seed of the weights, the shuffles and the reference picked per step.
    pub seed: u64,
    /// Directory searched first for Fashion-MNIST.
    pub data_dir: Option<PathBuf>,
    /// Image `[C, H, W]` (from the data).
    pub image: [usize; 3],
}

impl Default for CaptionSettings {
    /// The measured scene recipe (see the README's captioning section).
    fn default() -> Self {
        CaptionSettings {
            data: "scenes".into(),
            scenes: 12_000,
            val_size: 500,
            test_size: 1_000,
            image_size: 64,
            epochs: 16,
            batch_size: 32,
            lr: 1e-3,
            clip: 5.0,
            embed: 64,
            hidden: 256,
            layers: 1,
            encoder: "small".into(),
            inject: "first".into(),
            encoder_from: None,
            word_vectors: None,
            freeze_embeddings: false,
            min_count: 1,
            max_len: 20,
            seed: 0,
            data_dir: None,
            image: [1, 64, 64],
        }
    }
}

impl CaptionSettings {
    /// Refuse settings no run can use, with one line naming the flag.
    pub fn validate(&self) -> CliResult<()> {
        let bad = |m: String| Err(CliError::new(m));
        let positive = [
            ("--epochs", self.epochs as usize),
            ("--batch-size", self.batch_size),
            ("--embed", self.embed),
            ("--hidden", self.hidden),
            ("--layers", self.layers),
            ("--max-len", self.max_len),
            ("--val-size", self.val_size),
            ("--test-size", self.test_size),
            ("--image-size", self.image_size),
        ];
        if let Some((flag, v)) = positive.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{flag} {v}: must be at least 1"));
        }
        if self.data == "scenes" && self.scenes == 0 {
            return bad("--scenes 0: must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr {}: the learning rate must be positive", self.lr));
        }
        if !(self.clip >= 0.0 && self.clip.is_finite()) {
            return bad(format!("--clip {}: must be 0 (none) or more", self.clip));
        }
        EncoderKind::named(&self.encoder).map_err(|_| {
            CliError::new(format!(
                "--encoder {}: unknown encoder (known: small, resnet18)",
                self.encoder
            ))
        })?;
        Inject::named(&self.inject)
            .map_err(|_| CliError::new(format!("--inject {}: unknown (known: first, state)", self.inject)))?;
        if self.freeze_embeddings && self.word_vectors.is_none() {
            return bad("--freeze-embeddings needs --word-vectors FILE".into());
        }
        Ok(())
    }

    /// The model configuration for a vocabulary of `vocab` words.
    pub fn model_config(&self, vocab: usize) -> CliResult<CaptionerConfig> {
        let [c, h, w] = self.image;
        Ok(CaptionerConfig {
            vocab_size: vocab,
            embed_size: self.embed,
            hidden_size: self.hidden,
            num_layers: self.layers,
            encoder: EncoderKind::named(&self.encoder)?,
            inject: Inject::named(&self.inject)?,
            in_channels: c,
            image_size: [h, w],
            pad: Vocab::PAD,
            start: Vocab::START,
            end: Vocab::END,
            seed: self.seed,
        })
    }

    /// The settings as JSON text (the checkpoint's `caption` entry).
    pub fn to_json(&self) -> String {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        json!({
            "data": self.data,
            "scenes": self.scenes,
            "val_size": self.val_size,
            "test_size": self.test_size,
            "image_size": self.image_size,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "clip": self.clip,
            "embed": self.embed,
            "hidden": self.hidden,
            "layers": self.layers,
            "encoder": self.encoder,
            "inject": self.inject,
            "encoder_from": path(&self.encoder_from),
            "word_vectors": path(&self.word_vectors),
            "freeze_embeddings": self.freeze_embeddings,
            "min_count": self.min_count,
            "max_len": self.max_len,
            "seed": self.seed,
            "data_dir": path(&self.data_dir),
            "image": self.image,
        })
        .to_string()
    }

    /// Settings read back from [`CaptionSettings::to_json`] text found in `path`.
    pub fn from_json(text: &str, path: &Path) -> CliResult<CaptionSettings> {
        let bad = |what: &str| CliError::new(format!("{}: unreadable captioning settings ({what})", path.display()));
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let num = |k: &str| v[k].as_u64().ok_or_else(|| bad(k));
        let size = |k: &str| num(k).map(|n| n as usize);
        let float = |k: &str| v[k].as_f64().ok_or_else(|| bad(k));
        let text = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| bad(k));
        let image: Vec<usize> = v["image"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_u64().map(|x| x as usize)).collect())
            .unwrap_or_default();
        Ok(CaptionSettings {
            data: text("data")?,
            scenes: size("scenes")?,
            val_size: size("val_size")?,
            test_size: size("test_size")?,
            image_size: size("image_size")?,
            epochs: num("epochs")?,
            batch_size: size("batch_size")?,
            lr: float("lr")?,
            clip: float("clip")?,
            embed: size("embed")?,
            hidden: size("hidden")?,
            layers: size("layers")?,
            encoder: text("encoder")?,
            inject: text("inject")?,
            encoder_from: v["encoder_from"].as_str().map(PathBuf::from),
            word_vectors: v["word_vectors"].as_str().map(PathBuf::from),
            freeze_embeddings: v["freeze_embeddings"]
                .as_bool()
                .ok_or_else(|| bad("freeze_embeddings"))?,
            min_count: size("min_count")?,
            max_len: size("max_len")?,
            seed: num("seed")?,
            data_dir: v["data_dir"].as_str().map(PathBuf::from),
            image: image.try_into().map_err(|_| bad("image"))?,
        })
    }

    /// `config.toml`: every setting as `key = value`, the flags' names with underscores.
    pub fn to_toml(&self, vocab: usize) -> String {
        let mut s = String::from("# nabla caption train: the settings of this run\n");
        let mut line = |k: &str, v: String| s.push_str(&format!("{k} = {v}\n"));
        line("data", format!("{:?}", self.data));
        if self.data == "scenes" {
            line("scenes", self.scenes.to_string());
        }
        line("val_size", self.val_size.to_string());
        line("test_size", self.test_size.to_string());
        line("image", format!("{:?}", self.image));
        line("epochs", self.epochs.to_string());
        line("batch_size", self.batch_size.to_string());
        line("lr", format!("{:?}", self.lr));
        line("clip", format!("{:?}", self.clip));
        line("embed", self.embed.to_string());
        line("hidden", self.hidden.to_string());
        line("layers", self.layers.to_string());
        line("encoder", format!("{:?}", self.encoder));
        line("inject", format!("{:?}", self.inject));
        let mut path = |k: &str, p: &Option<PathBuf>| {
            if let Some(p) = p {
                line(k, format!("{:?}", p.display().to_string()));
            }
        };
        path("encoder_from", &self.encoder_from);
        path("word_vectors", &self.word_vectors);
        path("data_dir", &self.data_dir);
        line("freeze_embeddings", self.freeze_embeddings.to_string());
        line("min_count", self.min_count.to_string());
        line("vocabulary", vocab.to_string());
        line("max_len", self.max_len.to_string());
        line("seed", self.seed.to_string());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_ones_are_named() {
        let s = CaptionSettings {
            data: "coco:/x".into(),
            encoder_from: Some("/a.safetensors".into()),
            word_vectors: Some("/w.txt".into()),
            freeze_embeddings: true,
            lr: 1e-4,
            ..Default::default()
        };
        assert_eq!(CaptionSettings::from_json(&s.to_json(), Path::new("c")).unwrap(), s);
        assert!(s.to_toml(40).contains("data = \"coco:/x\"\n"));
        assert!(CaptionSettings::from_json("{}", Path::new("c.safetensors")).is_err());
        let check = |s: CaptionSettings, want: &str| {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        };
        let d = CaptionSettings::default;
        check(CaptionSettings { hidden: 0, ..d() }, "--hidden 0");
        check(CaptionSettings { lr: 0.0, ..d() }, "--lr 0");
        check(
            CaptionSettings {
                encoder: "vgg".into(),
                ..d()
            },
            "--encoder vgg",
        );
        check(
            CaptionSettings {
                freeze_embeddings: true,
                ..d()
            },
            "--word-vectors",
        );
        d().validate().unwrap();
    }
}
