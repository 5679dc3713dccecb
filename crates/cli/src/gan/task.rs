//! The two-player task of the training engine: each engine step is one discriminator step
//! on a real batch, and after every K1-th of them come K2 generator steps, so the step index
//! counts the rounds of Goodfellow et al.'s Algorithm 1 (K1 = K2 = 1 is PyTorch's DCGAN
//! example: one D and one G update per batch; WGAN-GP's K1 = 5 gives G one update per five
//! critic batches).
//!
//! Every noise draw comes from a generator seeded by the run's seed and the step index, so a
//! resumed run draws what an uninterrupted one would without any state in the checkpoint.

use super::fid::{FidModel, FidScore, Moments};
use super::report;
use super::settings::{GanSettings, EXTRA_KEY};
use nabla_core::{grad, no_grad, DType, Generator, Gradients, Tensor};
use nabla_data::Batch;
use nabla_models::dcgan::{DcganDiscriminator, DcganGenerator};
use nabla_nn::loss::{gan_loss, gradient_penalty, GanLoss, Player};
use nabla_nn::{Mode, Module};
use nabla_train::{Direction, Optim, Record, Result, StepOutput, Sums};
use std::collections::BTreeMap;
use std::path::Path;

/// Images drawn from the fixed noise each epoch.
const SAMPLE_GRID: usize = 64;
/// Seed salts of the noise streams, so they never coincide.
const STEP_SALT: u64 = 0x9E37_79B9_7F4A_7C15;
const SAMPLE_SALT: u64 = 0xD1B5_4A32_D192_ED03;
/// Salt of the FID samples' noise.
pub const FID_SALT: u64 = 0x8CB9_2BA7_2F3D_8DD7;

/// A seeded generator for `(seed, index)`, one independent stream per index.
pub fn stream(seed: u64, index: u64, salt: u64) -> Generator {
    // splitmix64 finalizer: nearby indices give unrelated seeds.
    let mut x = seed ^ salt ^ index.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Generator::new(x ^ (x >> 31))
}

/// `n` images from noise drawn from `rng`, in eval mode (batch norm's running statistics,
/// so an image does not depend on the others in its batch), values in [-1, 1].
pub fn generate(g: &DcganGenerator, n: usize, rng: &mut Generator) -> nabla_nn::Result<Tensor> {
    let _off = no_grad();
    let z = Tensor::randn(&[n, g.latent()], DType::F32, rng);
    g.forward(&z, Mode::Eval)
}

/// A DCGAN's generator and discriminator trained against each other.
pub struct GanTask {
    g: DcganGenerator,
    d: DcganDiscriminator,
    g_params: Vec<Tensor>,
    d_params: Vec<Tensor>,
    s: GanSettings,
    banner: String,
    fid: Option<FidModel>,
    real: Moments,
    /// The latest FID pass: its score and class histogram.
    pub last_fid: Option<FidScore>,
}

impl GanTask {
    /// The task of a run with settings `s`, its players, the FID classifier (none: no FID)
    /// and the line that opens a fresh run.
    pub fn new(
        s: GanSettings,
        (g, d): (DcganGenerator, DcganDiscriminator),
        fid: Option<FidModel>,
        banner: String,
    ) -> GanTask {
        GanTask {
            g_params: g.trainable_parameters(),
            d_params: d.trainable_parameters(),
            g,
            d,
            s,
            banner,
            real: Moments::new(super::fid::FEATURES),
            fid,
            last_fid: None,
        }
    }

    /// The discriminator's mean output as reported: D's probability for the logistic
    /// games, the critic's raw score for WGAN.
    fn shown_mean(&self, out: &Tensor) -> nabla_nn::Result<f64> {
        Ok(match self.s.loss {
            GanLoss::WganGp => out.mean_all()?.item()?,
            _ => out.sigmoid()?.mean_all()?.item()?,
        })
    }

    /// One generator step on `fake` (made with its graph): only the generator's gradients
    /// are computed (D's weights get none: `grad` skips branches that cannot reach G).
    fn generator_step(&mut self, fake: &Tensor, optim: &mut Optim) -> Result<f64> {
        let out = self.d.forward(fake, Mode::Train)?;
        let loss = gan_loss(self.s.loss, Player::Generator, None, &out)?;
        let lv = loss.item()?;
        if !lv.is_finite() {
            return Ok(lv);
        }
        let refs: Vec<&Tensor> = self.g_params.iter().collect();
        let mut grads = Gradients::default();
        for (p, gr) in self.g_params.iter().zip(grad(&[&loss], None, &refs, false)?) {
            if let Some(gr) = gr {
                grads.insert(p, gr);
            }
        }
        optim.step(&mut grads, &self.g_params)?;
        Ok(lv)
    }
}

impl nabla_train::Task for GanTask {
    fn models(&self) -> Vec<(&str, &dyn Module)> {
        vec![("generator", &self.g), ("discriminator", &self.d)]
    }

    fn configure_optimizers(&mut self) -> Result<Vec<Optim>> {
        Ok(self.s.optimizers(&self.g, &self.d)?)
    }

    fn training_step(&mut self, b: &Batch, step: u64, optims: &mut [Optim]) -> Result<StepOutput> {
        let rows = b.inputs.shape()[0];
        let n = rows as f64;
        let mut rng = stream(self.s.seed, step, STEP_SALT);
        let z = Tensor::randn(&[rows, self.s.latent], DType::F32, &mut rng);
        let g_turn = (step + 1).is_multiple_of(self.s.d_steps);
        // The generator's graph is kept only when its step follows (it reuses this fake).
        let fake = if g_turn {
            self.g.forward(&z, Mode::Train)?
        } else {
            let _off = no_grad();
            self.g.forward(&z, Mode::Train)?
        };
        let d_real = self.d.forward(&b.inputs, Mode::Train)?;
        let d_fake = self.d.forward(&fake.detach(), Mode::Train)?;
        let mut d_loss = gan_loss(self.s.loss, Player::Discriminator, Some(&d_real), &d_fake)?;
        if self.s.loss == GanLoss::WganGp {
            let critic = |x: &Tensor| self.d.forward(x, Mode::Train);
            let gp = gradient_penalty(critic, &b.inputs, &fake, self.s.gp_lambda, &mut rng)?;
            d_loss = d_loss.add(&gp)?;
        }
        let dl = d_loss.item()?;
        let mut out = StepOutput::new(rows as u64).sum("d_loss", dl * n);
        if !dl.is_finite() {
            return Ok(out);
        }
        let mut grads = d_loss.backward()?;
        optims[0].step(&mut grads, &self.d_params)?;
        drop(grads);
        out = out
            .sum("d_x", self.shown_mean(&d_real)? * n)
            .sum("d_g_z", self.shown_mean(&d_fake)? * n);
        if !g_turn {
            return Ok(out);
        }
        let (mut g_sum, mut g_n) = (0.0, 0.0);
        for k in 0..self.s.g_steps {
            let fake = match k {
                0 => fake.clone(),
                _ => {
                    let z = Tensor::randn(&[rows, self.s.latent], DType::F32, &mut rng);
                    self.g.forward(&z, Mode::Train)?
                }
            };
            let gl = self.generator_step(&fake, &mut optims[1])?;
            (g_sum, g_n) = (g_sum + gl * n, g_n + n);
            if !gl.is_finite() {
                break;
            }
        }
        Ok(out.sum("g_loss", g_sum).sum("g_n", g_n))
    }

    fn validation_step(&mut self, b: &Batch) -> Result<()> {
        if let Some(f) = &self.fid {
            let (feats, _) = f.features(&b.inputs)?;
            self.real.add(&feats)?;
        }
        Ok(())
    }

    fn validation_end(&mut self) -> Result<Vec<(String, f64)>> {
        let Some(f) = &self.fid else { return Ok(vec![]) };
        let real = std::mem::replace(&mut self.real, Moments::new(super::fid::FEATURES));
        let mut rng = stream(self.s.seed, 0, FID_SALT);
        let score = f.score_generated(&real, self.s.fid_samples, |n| Ok(generate(&self.g, n, &mut rng)?))?;
        let m = vec![
            ("fid".to_string(), score.fid),
            ("classes".to_string(), score.covered() as f64),
        ];
        self.last_fid = Some(score);
        Ok(m)
    }

    fn train_metrics(&self, sums: &Sums) -> Vec<(String, f64)> {
        let n = sums.seen.max(1) as f64;
        let g_n = sums.get("g_n").max(1.0);
        vec![
            ("d_loss".into(), sums.get("d_loss") / n),
            ("g_loss".into(), sums.get("g_loss") / g_n),
            ("d_x".into(), sums.get("d_x") / n),
            ("d_g_z".into(), sums.get("d_g_z") / n),
        ]
    }

    fn best(&self) -> (&'static str, Direction) {
        ("val_fid", Direction::Min)
    }

    fn show(&self, name: &str, value: f64) -> String {
        match name {
            "classes" | "val_classes" => format!("{value:.0}/10"),
            "fid" | "val_fid" => format!("{value:.2}"),
            _ => format!("{value:.4}"),
        }
    }

    fn progress(&self, sums: &Sums) -> String {
        let m = self.train_metrics(sums);
        format!(
            "D {:.4} G {:.4} D(x) {:.3} D(G(z)) {:.3}",
            m[0].1, m[1].1, m[2].1, m[3].1
        )
    }

    fn epoch_end(&mut self, dir: &Path, history: &[Record]) -> Result<()> {
        let epoch = history.last().map_or(0, |r| r.epoch);
        let mut rng = stream(self.s.seed, 0, SAMPLE_SALT);
        let images = generate(&self.g, SAMPLE_GRID, &mut rng)?;
        let title = match history.last() {
            Some(r) if r.get("val_fid").is_finite() => format!("epoch {epoch}, FID {:.2}", r.get("val_fid")),
            _ => format!("epoch {epoch}"),
        };
        report::write_samples(
            &dir.join("samples").join(format!("epoch-{epoch:03}.png")),
            &images,
            &title,
        )?;
        Ok(report::write_curves(dir, history, self.s.loss)?)
    }

    fn checkpoint_extra(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert(EXTRA_KEY.to_string(), self.s.to_json());
        m.insert("model".to_string(), "dcgan".to_string());
        m
    }

    fn start_message(&self) -> Option<String> {
        Some(self.banner.clone())
    }
}
