//! The settings of `nabla autoencode`: the recipe's defaults, a resumed run's settings, the
//! flags on top; written as `config.toml` and into every checkpoint, with what rebuilds the
//! model. A checkpoint is told apart from `nabla train`'s and `nabla gan`'s by its `task`
//! entry.

use crate::config::{parse_keys, want_count, want_num, want_str, TrainConfig};
use crate::error::{CliError, CliResult};
use crate::trainer::setup::read_checkpoint;
use nabla_models::ModelConfig;
use nabla_nn::checkpoint::Checkpoint;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The autoencoders of the zoo this command trains.
pub const MODELS: &[&str] = &["conv_autoencoder", "mlp_autoencoder"];
/// The reconstruction losses.
pub const LOSSES: &[&str] = &["mse", "bce"];
/// The hidden width between the input and the latent code of `mlp_autoencoder` (mirrored).
pub const MLP_HIDDEN: usize = 256;
/// The `task` entry of an autoencoder's checkpoints.
pub const TASK: &str = "autoencode";
/// The keys of `config.toml`.
const KEYS: &[&str] = &[
    "model",
    "dataset",
    "data_dir",
    "latent",
    "loss",
    "noise",
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "threads",
    "out",
    "limit",
    "val_size",
];

/// Every setting of an autoencoder run.
#[derive(Debug, Clone, PartialEq)]
pub struct AeConfig {
    /// `conv_autoencoder` or `mlp_autoencoder`.
    pub model: String,
    /// The image data set (`fashion-mnist`, `mnist`, `kmnist`).
    pub dataset: String,
    /// Where to look for the data set first.
    pub data_dir: Option<PathBuf>,
    /// Size of the latent code.
    pub latent: usize,
    /// `mse` on the output as it is, or `bce` on the output taken as logits.
    pub loss: String,
    /// Standard deviation of the Gaussian noise added to training inputs (0: none).
    pub noise: f64,
    /// Epochs in total.
    pub epochs: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seed of the initialization, the shuffles and the noise.
    pub seed: u64,
    /// Compute threads (0: one per core).
    pub threads: usize,
    /// Run folder (default a new `runs/<model>-<dataset>/version_N`).
    pub out: Option<PathBuf>,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Training images held out for validation (default as `nabla train`: one twelfth).
    pub val_size: Option<usize>,
}

impl Default for AeConfig {
    fn default() -> Self {
        AeConfig {
            model: "conv_autoencoder".into(),
            dataset: "fashion-mnist".into(),
            data_dir: None,
            latent: 16,
            loss: "mse".into(),
            noise: 0.0,
            epochs: 10,
            batch_size: 128,
            lr: 1e-3,
            seed: 0,
            threads: 0,
            out: None,
            limit: None,
            val_size: None,
        }
    }
}

/// `Err` with one line.
fn fail<T>(msg: String) -> CliResult<T> {
    Err(CliError::new(msg))
}

impl AeConfig {
    /// Whether the loss treats the decoder's output as logits.
    pub fn bce(&self) -> bool {
        self.loss == "bce"
    }

    /// Check what can be checked before the data are read.
    pub fn validate(&self) -> CliResult<()> {
        let one_of = |what: &str, v: &str, known: &[&str]| match known.contains(&v) {
            true => Ok(()),
            false => fail(format!("unknown {what} {v:?} (known: {})", known.join(", "))),
        };
        one_of("model", &self.model, MODELS)?;
        one_of("loss", &self.loss, LOSSES)?;
        if self.latent == 0 {
            return fail("--latent must be at least 1".into());
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return fail(format!("--noise must be a number ≥ 0, got {}", self.noise));
        }
        let base = self.train_config();
        base.validate()
    }

    /// Check the latent size against the images (`[C, H, W]`): a code must be smaller.
    pub fn check_latent(&self, input_shape: &[usize]) -> CliResult<()> {
        let d: usize = input_shape.iter().product();
        if self.latent >= d {
            return fail(format!(
                "--latent {}: a code must be smaller than the image it encodes ({d} values, {input_shape:?})",
                self.latent
            ));
        }
        Ok(())
    }

    /// The `nabla train` configuration that loads this run's data and names its folder
    /// (the same validation split, `runs/<model>-<dataset>/version_N`).
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            model: self.model.clone(),
            dataset: self.dataset.clone(),
            data_dir: self.data_dir.clone(),
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optimizer: "adam".into(),
            weight_decay: 0.0,
            scheduler: "none".into(),
            seed: self.seed,
            threads: self.threads,
            out: self.out.clone(),
            loss: "mse".into(),
            limit: self.limit,
            val_size: self.val_size,
            ..TrainConfig::default()
        }
    }

    /// The zoo configuration of the model for images of `input_shape` (`[C, H, W]`).
    pub fn model_config(&self, input_shape: &[usize]) -> ModelConfig {
        let (c, h, w) = match input_shape {
            [c, h, w] => (*c, *h, *w),
            _ => (1, 1, input_shape.iter().product()),
        };
        let hidden = match self.model.as_str() {
            "mlp_autoencoder" => vec![MLP_HIDDEN, self.latent],
            _ => vec![self.latent],
        };
        ModelConfig {
            in_channels: c,
            input_size: [h, w],
            small_input: true,
            hidden,
            seed: self.seed,
            ..ModelConfig::default()
        }
    }

    /// The settings as `key = value` lines (unset options left out).
    pub fn to_toml(&self) -> String {
        let q = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\"));
        let path = |v: &Option<PathBuf>| v.as_ref().map(|d| q(&d.to_string_lossy()));
        let count = |v: Option<usize>| v.map(|n| n.to_string());
        let entries = [
            ("model", Some(q(&self.model))),
            ("dataset", Some(q(&self.dataset))),
            ("data_dir", path(&self.data_dir)),
            ("latent", count(Some(self.latent))),
            ("loss", Some(q(&self.loss))),
            ("noise", Some(format!("{:?}", self.noise))),
            ("epochs", count(Some(self.epochs))),
            ("batch_size", count(Some(self.batch_size))),
            ("lr", Some(format!("{:?}", self.lr))),
            ("seed", Some(self.seed.to_string())),
            ("threads", count(Some(self.threads))),
            ("out", path(&self.out)),
            ("limit", count(self.limit)),
            ("val_size", count(self.val_size)),
        ];
        let mut s = String::from("# nabla autoencode configuration (flags given with --resume override it)\n");
        for (k, v) in entries {
            if let Some(v) = v {
                let _ = writeln!(s, "{k} = {v}");
            }
        }
        s
    }

    /// Parse text written by [`AeConfig::to_toml`] over the defaults.
    pub fn from_toml(text: &str, origin: &Path) -> CliResult<AeConfig> {
        let mut c = AeConfig::default();
        for (key, v) in parse_keys(text, origin, KEYS)? {
            let k = key.as_str();
            match k {
                "model" => c.model = want_str(k, &v)?,
                "dataset" => c.dataset = want_str(k, &v)?,
                "data_dir" => c.data_dir = Some(want_str(k, &v)?.into()),
                "latent" => c.latent = want_count(k, &v)?,
                "loss" => c.loss = want_str(k, &v)?,
                "noise" => c.noise = want_num(k, &v)?,
                "epochs" => c.epochs = want_count(k, &v)?,
                "batch_size" => c.batch_size = want_count(k, &v)?,
                "lr" => c.lr = want_num(k, &v)?,
                "seed" => c.seed = want_count(k, &v)? as u64,
                "threads" => c.threads = want_count(k, &v)?,
                "out" => c.out = Some(want_str(k, &v)?.into()),
                "limit" => c.limit = Some(want_count(k, &v)?),
                "val_size" => c.val_size = Some(want_count(k, &v)?),
                _ => return fail(format!("{}: unknown key {k:?}", origin.display())),
            }
        }
        Ok(c)
    }
}

/// What an autoencoder checkpoint says about the run that wrote it.
#[derive(Debug, Clone)]
pub struct AeMeta {
    /// The run's settings.
    pub config: AeConfig,
    /// Shape of one image, `[C, H, W]`.
    pub input_shape: Vec<usize>,
    /// Class names by label.
    pub classes: Vec<String>,
}

impl AeMeta {
    /// The entries every checkpoint of the run carries.
    pub fn to_extra(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("task".into(), TASK.into());
        m.insert("model".into(), self.config.model.clone());
        m.insert("input_shape".into(), json!(self.input_shape).to_string());
        m.insert("classes".into(), json!(self.classes).to_string());
        m.insert("autoencode_config".into(), self.config.to_toml());
        m
    }
}

/// Read an autoencoder checkpoint named by `flag` (`--checkpoint `, `--resume `): one line
/// when the file is missing, not a checkpoint, or written by `nabla train` or `nabla gan`.
pub fn read_ae_checkpoint(path: &Path, flag: &str) -> CliResult<(AeMeta, Checkpoint)> {
    let ck = read_checkpoint(path, flag)?;
    let p = path.display();
    let task = ck.extra.get("task").map(String::as_str);
    // `nabla gan` names its players' tensors and keeps its settings under "gan".
    let gan_names = ck.extra.contains_key("gan")
        || ck
            .model
            .iter()
            .any(|(n, _)| n.starts_with("generator.") || n.starts_with("discriminator."));
    let whose = match task {
        Some(TASK) => None,
        Some("classification" | "regression") => Some("a nabla train checkpoint (a classifier or regressor)"),
        Some(t) if t.contains("gan") => Some("a nabla gan checkpoint (a generator and a discriminator)"),
        _ if gan_names => Some("a nabla gan checkpoint (a generator and a discriminator)"),
        _ => Some("not a nabla autoencode checkpoint (it names no autoencoder)"),
    };
    if let Some(whose) = whose {
        return fail(format!(
            "{flag}{p}: {whose}; nabla autoencode needs one it wrote (last.safetensors or best.safetensors in its run folder)"
        ));
    }
    let bad = |what: &str| CliError::new(format!("{flag}{p}: an autoencoder checkpoint with a bad {what} entry"));
    let text = ck
        .extra
        .get("autoencode_config")
        .ok_or_else(|| bad("autoencode_config"))?;
    let config = AeConfig::from_toml(text, path)?;
    let parse = |k: &str| -> CliResult<serde_json::Value> {
        let v = ck.extra.get(k).ok_or_else(|| bad(k))?;
        serde_json::from_str(v).map_err(|_| bad(k))
    };
    let input_shape: Vec<usize> = parse("input_shape")?
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_u64().map(|x| x as usize)).collect())
        .filter(|s: &Vec<usize>| s.len() == 3)
        .ok_or_else(|| bad("input_shape"))?;
    let classes: Vec<String> = parse("classes")?
        .as_array()
        .and_then(|a| a.iter().map(|v| v.as_str().map(String::from)).collect())
        .ok_or_else(|| bad("classes"))?;
    Ok((
        AeMeta {
            config,
            input_shape,
            classes,
        },
        ck,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_round_trips_through_its_text() {
        let c = AeConfig {
            model: "mlp_autoencoder".into(),
            data_dir: Some("/d".into()),
            latent: 2,
            loss: "bce".into(),
            noise: 0.3,
            limit: Some(100),
            val_size: Some(10),
            out: Some("/o".into()),
            ..AeConfig::default()
        };
        assert_eq!(AeConfig::from_toml(&c.to_toml(), Path::new("x")).unwrap(), c);
        let d = AeConfig::default();
        assert_eq!(AeConfig::from_toml(&d.to_toml(), Path::new("x")).unwrap(), d);
        let e = AeConfig::from_toml("momentum = 0.9\n", Path::new("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key"), "{e}");
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = |c: AeConfig| c.validate().unwrap_err().to_string();
        assert!(bad(AeConfig {
            latent: 0,
            ..AeConfig::default()
        })
        .contains("--latent"));
        let loss = bad(AeConfig {
            loss: "l1".into(),
            ..AeConfig::default()
        });
        assert!(
            loss.contains("unknown loss \"l1\"") && loss.contains("mse, bce"),
            "{loss}"
        );
        let model = bad(AeConfig {
            model: "lenet5".into(),
            ..AeConfig::default()
        });
        assert!(model.contains("unknown model \"lenet5\""), "{model}");
        assert!(bad(AeConfig {
            noise: -1.0,
            ..AeConfig::default()
        })
        .contains("--noise"));
        let big = AeConfig {
            latent: 784,
            ..AeConfig::default()
        };
        assert!(big
            .check_latent(&[1, 28, 28])
            .unwrap_err()
            .to_string()
            .contains("smaller"));
        assert!(AeConfig::default().check_latent(&[1, 28, 28]).is_ok());
    }
}
