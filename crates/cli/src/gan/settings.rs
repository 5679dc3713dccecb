//! What a GAN run is: the resolved settings, checked once, written to `config.toml` and
//! into every checkpoint (as JSON under `gan`), so `--resume` and `gan sample` rebuild the
//! same players.

use crate::error::{CliError, CliResult};
use nabla_models::dcgan::{DcganDiscriminator, DcganGenerator};
use nabla_models::{build_dcgan_discriminator, build_dcgan_generator, ModelConfig};
use nabla_nn::loss::GanLoss;
use nabla_nn::optim::{Adam, AdamOptions};
use nabla_nn::Module;
use nabla_train::Optim;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The checkpoint `extra` key that holds the settings (and marks a GAN checkpoint).
pub const EXTRA_KEY: &str = "gan";

/// A GAN run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GanSettings {
    /// The game.
    pub loss: GanLoss,
    /// Discriminator (critic) steps per round.
    pub d_steps: u64,
    /// Generator steps per round.
    pub g_steps: u64,
    /// Size of the noise vectors.
    pub latent: usize,
    /// Adam's learning rate of the discriminator.
    pub lr_d: f64,
    /// Adam's learning rate of the generator.
    pub lr_g: f64,
    /// Adam's betas, both players.
    pub betas: (f64, f64),
    /// WGAN-GP's penalty weight λ.
    pub gp_lambda: f64,
    /// Epochs in total.
    pub epochs: u64,
    /// Real images per discriminator step (and fakes per step of either player).
    pub batch_size: usize,
    /// Seed of the weights, the shuffles and every noise draw.
    pub seed: u64,
    /// Train on the first N training images only.
    pub limit: Option<usize>,
    /// Generated images the per-epoch FID is measured on (0: no FID).
    pub fid_samples: usize,
    /// Where Fashion-MNIST was looked for first.
    pub data_dir: Option<PathBuf>,
    /// The FID classifier checkpoint (set once it is known; a resumed run keeps it).
    pub fid_model: Option<PathBuf>,
    /// Image channels, height and width (from the data).
    pub image: [usize; 3],
}

impl Default for GanSettings {
    /// The DCGAN recipe: nonsaturating loss, K1 = K2 = 1, latent 100, Adam 2e-4 (0.5, 0.999)
    /// for each player, batch 128, 5 epochs, seed 0.
    fn default() -> Self {
        GanSettings {
            loss: GanLoss::NonSaturating,
            d_steps: 1,
            g_steps: 1,
            latent: 100,
            lr_d: 2e-4,
            lr_g: 2e-4,
            betas: (0.5, 0.999),
            gp_lambda: 10.0,
            epochs: 5,
            batch_size: 128,
            seed: 0,
            limit: None,
            fid_samples: 10_000,
            data_dir: None,
            fid_model: None,
            image: [1, 28, 28],
        }
    }
}

impl GanSettings {
    /// Refuse settings no run can use, with one line naming the flag.
    pub fn validate(&self) -> CliResult<()> {
        let bad = |m: String| Err(CliError::new(m));
        if self.d_steps == 0 || self.g_steps == 0 {
            return bad(format!(
                "--d-steps {} --g-steps {}: each player needs at least one step per round",
                self.d_steps, self.g_steps
            ));
        }
        let pixels = self.image.iter().product::<usize>();
        if self.latent == 0 || self.latent > pixels {
            return bad(format!(
                "--latent {}: the noise size must be between 1 and the image's {pixels} values",
                self.latent
            ));
        }
        for (flag, lr) in [("--lr-d", self.lr_d), ("--lr-g", self.lr_g)] {
            if !(lr > 0.0 && lr.is_finite()) {
                return bad(format!("{flag} {lr}: the learning rate must be positive"));
            }
        }
        let (b1, b2) = self.betas;
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return bad(format!("--betas {b1},{b2}: each beta must be in [0, 1)"));
        }
        if !(self.gp_lambda >= 0.0 && self.gp_lambda.is_finite()) {
            return bad(format!("--gp-lambda {}: must be 0 or more", self.gp_lambda));
        }
        if self.batch_size == 0 || self.epochs == 0 {
            return bad("--batch-size and --epochs must be at least 1".into());
        }
        Ok(())
    }

    /// The zoo config of both players.
    fn model_config(&self, critic: bool) -> ModelConfig {
        let [c, h, w] = self.image;
        ModelConfig {
            in_channels: c,
            input_size: [h, w],
            hidden: vec![self.latent],
            seed: self.seed,
            variant: critic.then(|| "critic".to_string()),
            ..Default::default()
        }
    }

    /// The generator and the discriminator (for WGAN-GP the critic without batch norm),
    /// initialized from the seed (the discriminator from the seed + 1, so the players'
    /// weights are not drawn from one stream).
    pub fn build(&self) -> CliResult<(DcganGenerator, DcganDiscriminator)> {
        let g = build_dcgan_generator("generator", &self.model_config(false))?;
        let mut dc = self.model_config(self.loss == GanLoss::WganGp);
        dc.seed = self.seed.wrapping_add(1);
        let d = build_dcgan_discriminator("discriminator", &dc)?;
        Ok((g, d))
    }

    /// Adam for each player: the discriminator's first, as the task steps them.
    pub fn optimizers(&self, g: &dyn Module, d: &dyn Module) -> CliResult<Vec<Optim>> {
        let adam = |m: &dyn Module, lr| -> CliResult<Optim> {
            let o = AdamOptions {
                lr,
                betas: self.betas,
                ..Default::default()
            };
            Ok(Optim::constant(Box::new(Adam::new(m.trainable_parameters(), o)?)))
        };
        Ok(vec![adam(d, self.lr_d)?, adam(g, self.lr_g)?])
    }

    /// The settings as JSON text (the checkpoint's `gan` entry).
    pub fn to_json(&self) -> String {
        json!({
            "loss": self.loss.name(),
            "d_steps": self.d_steps,
            "g_steps": self.g_steps,
            "latent": self.latent,
            "lr_d": self.lr_d,
            "lr_g": self.lr_g,
            "betas": [self.betas.0, self.betas.1],
            "gp_lambda": self.gp_lambda,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "limit": self.limit,
            "fid_samples": self.fid_samples,
            "data_dir": self.data_dir.as_ref().map(|p| p.display().to_string()),
            "fid_model": self.fid_model.as_ref().map(|p| p.display().to_string()),
            "image": self.image,
        })
        .to_string()
    }

    /// Settings read back from [`GanSettings::to_json`] text found in `path`.
    pub fn from_json(text: &str, path: &Path) -> CliResult<GanSettings> {
        let bad = |what: &str| CliError::new(format!("{}: unreadable GAN settings ({what})", path.display()));
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let num = |k: &str| v[k].as_u64().ok_or_else(|| bad(k));
        let float = |v: &Value, k: &str| v.as_f64().ok_or_else(|| bad(k));
        let loss = v["loss"].as_str().and_then(GanLoss::parse).ok_or_else(|| bad("loss"))?;
        let image: Vec<usize> = v["image"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_u64().map(|x| x as usize)).collect())
            .unwrap_or_default();
        Ok(GanSettings {
            loss,
            d_steps: num("d_steps")?,
            g_steps: num("g_steps")?,
            latent: num("latent")? as usize,
            lr_d: float(&v["lr_d"], "lr_d")?,
            lr_g: float(&v["lr_g"], "lr_g")?,
            betas: (float(&v["betas"][0], "betas")?, float(&v["betas"][1], "betas")?),
            gp_lambda: float(&v["gp_lambda"], "gp_lambda")?,
            epochs: num("epochs")?,
            batch_size: num("batch_size")? as usize,
            seed: num("seed")?,
            limit: v["limit"].as_u64().map(|l| l as usize),
            fid_samples: num("fid_samples")? as usize,
            data_dir: v["data_dir"].as_str().map(PathBuf::from),
            fid_model: v["fid_model"].as_str().map(PathBuf::from),
            image: image.try_into().map_err(|_| bad("image"))?,
        })
    }

    /// `config.toml`: every setting as `key = value`, the flags' names with underscores.
    pub fn to_toml(&self) -> String {
        let mut s = String::from("# nabla gan: the settings of this run\n");
        let mut line = |k: &str, v: String| s.push_str(&format!("{k} = {v}\n"));
        line("loss", format!("{:?}", self.loss.name()));
        line("d_steps", self.d_steps.to_string());
        line("g_steps", self.g_steps.to_string());
        line("latent", self.latent.to_string());
        line("lr_d", format!("{:?}", self.lr_d));
        line("lr_g", format!("{:?}", self.lr_g));
        line("betas", format!("[{:?}, {:?}]", self.betas.0, self.betas.1));
        line("gp_lambda", format!("{:?}", self.gp_lambda));
        line("epochs", self.epochs.to_string());
        line("batch_size", self.batch_size.to_string());
        line("seed", self.seed.to_string());
        if let Some(l) = self.limit {
            line("limit", l.to_string());
        }
        line("fid_samples", self.fid_samples.to_string());
        if let Some(d) = &self.data_dir {
            line("data_dir", format!("{:?}", d.display().to_string()));
        }
        if let Some(m) = &self.fid_model {
            line("fid_model", format!("{:?}", m.display().to_string()));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_bad_ones_are_named() {
        let s = GanSettings {
            loss: GanLoss::WganGp,
            d_steps: 5,
            limit: Some(64),
            data_dir: Some(PathBuf::from("/tmp/x")),
            fid_model: Some(PathBuf::from("/tmp/l.safetensors")),
            lr_d: 1e-4,
            ..Default::default()
        };
        assert_eq!(GanSettings::from_json(&s.to_json(), Path::new("c")).unwrap(), s);
        assert!(s.to_toml().contains("loss = \"wgan-gp\"\nd_steps = 5\n"));
        assert!(GanSettings::from_json("{}", Path::new("c.safetensors")).is_err());
        let check = |s: GanSettings, want: &str| {
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        };
        check(
            GanSettings {
                d_steps: 0,
                ..Default::default()
            },
            "--d-steps 0",
        );
        check(
            GanSettings {
                g_steps: 0,
                ..Default::default()
            },
            "--g-steps 0",
        );
        check(
            GanSettings {
                latent: 0,
                ..Default::default()
            },
            "--latent 0",
        );
        check(
            GanSettings {
                latent: 785,
                ..Default::default()
            },
            "784",
        );
        check(
            GanSettings {
                betas: (0.5, 1.0),
                ..Default::default()
            },
            "--betas",
        );
        GanSettings::default().validate().unwrap();
    }
}
