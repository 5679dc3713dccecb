//! Fréchet distance between real and generated images in the feature space of a
//! Fashion-MNIST classifier (the FID of Heusel et al. with LeNet-5's 84-wide penultimate
//! layer in place of Inception's pool features):
//! `‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)`, means and covariances in f64, the
//! square roots from nalgebra's symmetric eigendecomposition (both matrices under the root
//! are symmetric positive semi-definite, so no general matrix square root is needed).

use crate::error::{CliError, CliResult};
use crate::trainer::setup::{read_checkpoint, RunMeta};
use nabla_core::{no_grad, Tensor};
use nabla_models::{build_convnet, ConvNet};
use nabla_nn::{Mode, Module};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use std::path::Path;

/// Width of LeNet-5's penultimate layer, the feature space.
pub const FEATURES: usize = 84;

/// Images generated per forward pass while scoring.
const CHUNK: usize = 500;

/// A trained LeNet-5 that maps images to features and predicted classes.
pub struct FidModel {
    net: ConvNet,
    mean: f64,
    std: f64,
    /// Class names by label.
    pub classes: Vec<String>,
}

impl FidModel {
    /// Load a LeNet-5 checkpoint written by `nabla train` on 1×28×28 images (named in
    /// messages by `flag`).
    pub fn load(path: &Path, flag: &str) -> CliResult<FidModel> {
        let ck = read_checkpoint(path, flag)?;
        let p = path.display();
        if ck.extra.contains_key(super::settings::EXTRA_KEY) {
            return Err(CliError::new(format!(
                "{flag}{p}: a GAN checkpoint; the FID needs a LeNet-5 classifier written by nabla train"
            )));
        }
        let meta = RunMeta::from_checkpoint(&ck, path)?;
        if meta.model != "lenet5" || meta.input_shape != [1, 28, 28] {
            return Err(CliError::new(format!(
                "{flag}{p}: a {} checkpoint on {:?} inputs; the FID needs LeNet-5 on 1×28×28 images",
                meta.model, meta.input_shape
            )));
        }
        let net = build_convnet("lenet5", &meta.model_config)?;
        ck.restore_model(&net.state_dict())?;
        let width = net.classifier.len();
        if width < 2 {
            return Err(CliError::new(format!(
                "{flag}{p}: the classifier has no penultimate layer"
            )));
        }
        Ok(FidModel {
            net,
            mean: meta.normalize.0.first().copied().unwrap_or(0.0) as f64,
            std: meta.normalize.1.first().copied().unwrap_or(1.0) as f64,
            classes: meta.classes,
        })
    }

    /// Features `[N, 84]` (after the penultimate layer's activation) and predicted classes
    /// of images `[N, 1, 28, 28]` with values in [-1, 1], normalized as the classifier was
    /// trained.
    pub fn features(&self, images: &Tensor) -> CliResult<(Tensor, Vec<usize>)> {
        let _off = no_grad();
        let x = images.add_scalar(1.0)?.mul_scalar(0.5)?;
        let x = x.sub_scalar(self.mean)?.div_scalar(self.std)?;
        let mut h = self.net.forward_features(&x, Mode::Eval)?.flatten(1, -1)?;
        let last = self.net.classifier.len() - 1;
        for i in 0..last {
            if let Some(layer) = self.net.classifier.get(i) {
                h = layer.forward(&h, Mode::Eval)?;
            }
        }
        let logits = match self.net.classifier.get(last) {
            Some(layer) => layer.forward(&h, Mode::Eval)?,
            None => return Err(CliError::new("the FID classifier has no last layer")),
        };
        if h.shape().get(1) != Some(&FEATURES) {
            return Err(CliError::new(format!(
                "the FID classifier's penultimate layer is {:?} wide, not {FEATURES}",
                h.shape()
            )));
        }
        Ok((h, logits.argmax(1, false)?))
    }

    /// The FID of `n` images made by `generate(k)` (k at a time, values in [-1, 1]) against
    /// the `real` moments, with the histogram of the classes predicted for them.
    pub fn score_generated(
        &self,
        real: &Moments,
        n: usize,
        mut generate: impl FnMut(usize) -> CliResult<Tensor>,
    ) -> CliResult<FidScore> {
        let mut fake = Moments::new(FEATURES);
        let mut histogram = vec![0usize; self.classes.len().max(1)];
        let mut done = 0;
        while done < n {
            let k = CHUNK.min(n - done);
            let images = generate(k)?;
            let (feats, preds) = self.features(&images)?;
            fake.add(&feats)?;
            for p in preds {
                if let Some(h) = histogram.get_mut(p) {
                    *h += 1;
                }
            }
            done += k;
        }
        Ok(FidScore {
            fid: real.frechet(&fake)?,
            histogram,
            samples: n,
            real: real.n,
        })
    }
}

/// One FID measurement.
#[derive(Debug, Clone)]
pub struct FidScore {
    /// The Fréchet distance.
    pub fid: f64,
    /// Generated images predicted as each class.
    pub histogram: Vec<usize>,
    /// Generated images scored.
    pub samples: usize,
    /// Real images the reference moments came from.
    pub real: usize,
}

impl FidScore {
    /// Classes predicted for at least one generated image.
    pub fn covered(&self) -> usize {
        self.histogram.iter().filter(|&&c| c > 0).count()
    }

    /// The histogram as one line: `T-shirt/top 9.8%, Trouser 10.1%, ...`.
    pub fn histogram_line(&self, classes: &[String]) -> String {
        let total = self.histogram.iter().sum::<usize>().max(1) as f64;
        let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| format!("class {i}"));
        let parts: Vec<String> = self
            .histogram
            .iter()
            .enumerate()
            .map(|(i, &c)| format!("{} {:.1}%", name(i), 100.0 * c as f64 / total))
            .collect();
        parts.join(", ")
    }
}

/// Running sums for the mean and covariance of feature rows, in f64.
#[derive(Debug, Clone)]
pub struct Moments {
    d: usize,
    /// Rows added.
    pub n: usize,
    sum: Vec<f64>,
    outer: Vec<f64>,
}

impl Moments {
    /// Empty sums over `d`-wide rows.
    pub fn new(d: usize) -> Moments {
        Moments {
            d,
            n: 0,
            sum: vec![0.0; d],
            outer: vec![0.0; d * d],
        }
    }

    /// Add the rows of `[N, d]` features.
    pub fn add(&mut self, feats: &Tensor) -> CliResult<()> {
        if feats.rank() != 2 || feats.shape()[1] != self.d {
            return Err(CliError::new(format!(
                "features of shape {:?} where [N, {}] was expected",
                feats.shape(),
                self.d
            )));
        }
        let v = feats.to_vec_f64();
        for row in v.chunks_exact(self.d) {
            for (i, &a) in row.iter().enumerate() {
                self.sum[i] += a;
                let out = &mut self.outer[i * self.d..(i + 1) * self.d];
                for (o, &b) in out.iter_mut().zip(row) {
                    *o += a * b;
                }
            }
            self.n += 1;
        }
        Ok(())
    }

    /// The mean and the unbiased covariance (as `numpy.cov`, which FID code uses).
    pub fn mean_cov(&self) -> CliResult<(DVector<f64>, DMatrix<f64>)> {
        if self.n < 2 {
            return Err(CliError::new(format!(
                "a covariance needs at least 2 images, got {}",
                self.n
            )));
        }
        let n = self.n as f64;
        let mu = DVector::from_iterator(self.d, self.sum.iter().map(|s| s / n));
        let outer = DMatrix::from_row_slice(self.d, self.d, &self.outer);
        let cov = (outer - &mu * mu.transpose() * n) / (n - 1.0);
        Ok((mu, cov))
    }

    /// The Fréchet distance between the Gaussians of these rows and of `other`'s.
    pub fn frechet(&self, other: &Moments) -> CliResult<f64> {
        let (m1, s1) = self.mean_cov()?;
        let (m2, s2) = other.mean_cov()?;
        Ok(frechet_distance(&m1, &s1, &m2, &s2))
    }
}

/// `A^½` of a symmetric positive semi-definite `a` (eigenvalues below 0, from rounding,
/// count as 0).
fn sqrt_psd(a: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (a + a.transpose()) * 0.5;
    let e = SymmetricEigen::new(sym);
    let roots = DMatrix::from_diagonal(&e.eigenvalues.map(|l| l.max(0.0).sqrt()));
    &e.eigenvectors * roots * e.eigenvectors.transpose()
}

/// `‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)`; the last trace is the sum of the
/// square roots of the eigenvalues of the symmetric `Σ₁^½ Σ₂ Σ₁^½` (the same as those of
/// `Σ₁Σ₂`, whose square root FID is usually written with).
pub fn frechet_distance(mu1: &DVector<f64>, s1: &DMatrix<f64>, mu2: &DVector<f64>, s2: &DMatrix<f64>) -> f64 {
    let r1 = sqrt_psd(s1);
    let m = &r1 * s2 * &r1;
    let m = (&m + m.transpose()) * 0.5;
    let cross: f64 = SymmetricEigen::new(m)
        .eigenvalues
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    (mu1 - mu2).norm_squared() + s1.trace() + s2.trace() - 2.0 * cross
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::{DType, Generator};

    /// A rotation of the plane by `t` applied in coordinates (0, 1) and (2, 3) of 4.
    fn rotation(t: f64) -> DMatrix<f64> {
        let (c, s) = (t.cos(), t.sin());
        DMatrix::from_row_slice(
            4,
            4,
            &[c, -s, 0.0, 0.0, s, c, 0.0, 0.0, 0.0, 0.0, c, -s, 0.0, 0.0, s, c],
        )
    }

    #[test]
    fn distance_of_rotated_gaussians_is_the_closed_form() {
        // Σ₁ = R diag(a) Rᵀ and Σ₂ = R diag(b) Rᵀ commute: the trace term is Σ(√a − √b)².
        let r = rotation(0.7);
        let (a, b) = ([4.0, 1.0, 0.25, 9.0], [1.0, 2.0, 1.0, 4.0]);
        let s1 = &r * DMatrix::from_diagonal(&DVector::from_row_slice(&a)) * r.transpose();
        let s2 = &r * DMatrix::from_diagonal(&DVector::from_row_slice(&b)) * r.transpose();
        let (m1, m2) = (DVector::from_row_slice(&[1.0, 0.0, -1.0, 2.0]), DVector::zeros(4));
        let want = 1.0
            + 1.0
            + 4.0
            + a.iter()
                .zip(&b)
                .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
                .sum::<f64>();
        let got = frechet_distance(&m1, &s1, &m2, &s2);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // Symmetric in its arguments, and 0 from a Gaussian to itself.
        assert!((frechet_distance(&m2, &s2, &m1, &s1) - want).abs() < 1e-9);
        assert!(frechet_distance(&m1, &s1, &m1, &s1).abs() < 1e-9);
    }

    #[test]
    fn distance_between_non_commuting_covariances_is_the_2x2_closed_form() {
        // For 2×2 PSD M, tr √M = √(tr M + 2√det M); here M = Σ₁^½ Σ₂ Σ₁^½ has
        // tr M = tr Σ₁Σ₂ = 10 and det M = det Σ₁ · det Σ₂ = 12.
        let s1 = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 4.0]);
        let s2 = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 2.0]);
        let z = DVector::zeros(2);
        let want = 5.0 + 4.0 - 2.0 * (10.0 + 2.0 * 12f64.sqrt()).sqrt();
        let got = frechet_distance(&z, &s1, &z, &s2);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }

    #[test]
    fn moments_of_samples_give_the_gaussians_distance() {
        // 20,000 rows from N(μ, Σ) each: the sample FID is near the closed form, and a set's
        // FID with itself is 0.
        let d = 4;
        let draw = |mu: &[f64], scale: &[f64], seed| {
            let z = Tensor::randn(&[20_000, d], DType::F64, &mut Generator::new(seed)).to_vec_f64();
            let rows: Vec<f64> = z
                .chunks(d)
                .flat_map(|r| (0..d).map(|i| mu[i] + scale[i] * r[i]))
                .collect();
            Tensor::from_vec(rows, &[20_000, d]).unwrap()
        };
        let (mut a, mut b) = (Moments::new(d), Moments::new(d));
        a.add(&draw(&[0.0, 1.0, 0.0, 0.0], &[1.0, 2.0, 0.5, 1.0], 1)).unwrap();
        b.add(&draw(&[1.0, 1.0, 0.0, -1.0], &[1.0, 1.0, 0.5, 3.0], 2)).unwrap();
        let want = 2.0 + (2.0f64 - 1.0).powi(2) + (3.0f64 - 1.0).powi(2);
        let got = a.frechet(&b).unwrap();
        assert!((got - want).abs() < 0.15, "{got} vs {want}");
        assert!(a.frechet(&a).unwrap().abs() < 1e-9);
        assert!(Moments::new(d).frechet(&a).is_err());
        assert!(a.add(&Tensor::zeros(&[2, 3], DType::F64)).is_err());
    }
}
