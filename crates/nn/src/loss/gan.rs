//! The objectives of a generative adversarial network, from the discriminator's outputs:
//! [`gan_loss`] for either player under [`GanLoss::Minimax`] (Goodfellow et al.'s game as
//! written), [`GanLoss::NonSaturating`] (the generator ascends log D(G(z)) instead) and
//! [`GanLoss::WganGp`] (a Wasserstein critic), and [`gradient_penalty`], WGAN-GP's
//! λ·(‖∂D(x̂)/∂x̂‖₂ − 1)² on interpolates of real and fake images.
//!
//! ```
//! use nabla_core::Tensor;
//! use nabla_nn::loss::{gan_loss, GanLoss, Player};
//! // D's logits on two real and two fake images.
//! let real = Tensor::from_vec(vec![2.0f32, 1.0], &[2, 1])?;
//! let fake = Tensor::from_vec(vec![-1.0f32, 0.5], &[2, 1])?;
//! let d = gan_loss(GanLoss::NonSaturating, Player::Discriminator, Some(&real), &fake)?;
//! let g = gan_loss(GanLoss::NonSaturating, Player::Generator, None, &fake)?;
//! assert!(d.item()? > 0.0 && g.item()? > 0.0);
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use super::{binary_cross_entropy_with_logits, Reduction};
use crate::Result;
use nabla_core::autograd::enable_grad;
use nabla_core::{grad, Error as CoreError, Generator, Tensor};

/// Which game the two players play.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GanLoss {
    /// D ascends log D(x) + log(1 − D(G(z))); G descends log(1 − D(G(z))).
    Minimax,
    /// D as in minimax; G ascends log D(G(z)) (a strong gradient while D rejects its fakes).
    #[default]
    NonSaturating,
    /// The critic descends mean D(G(z)) − mean D(x) (plus [`gradient_penalty`]); G descends
    /// −mean D(G(z)). The outputs are raw scores, not logits.
    WganGp,
}

impl GanLoss {
    /// The loss by its command-line name (`minimax`, `nonsaturating`, `wgan-gp`).
    pub fn parse(name: &str) -> Option<GanLoss> {
        match name {
            "minimax" => Some(GanLoss::Minimax),
            "nonsaturating" => Some(GanLoss::NonSaturating),
            "wgan-gp" => Some(GanLoss::WganGp),
            _ => None,
        }
    }

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            GanLoss::Minimax => "minimax",
            GanLoss::NonSaturating => "nonsaturating",
            GanLoss::WganGp => "wgan-gp",
        }
    }
}

/// Which player's loss to compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Player {
    /// The discriminator (critic): needs its outputs on real and on fake images.
    Discriminator,
    /// The generator: needs only the discriminator's outputs on its fakes.
    Generator,
}

/// The loss `player` descends, from the discriminator's outputs on real images (`real`,
/// needed by the discriminator only) and on generated ones (`fake`), each `[N, 1]` or
/// `[N]`: logits for minimax and nonsaturating (the discriminator's loss is BCE-with-logits
/// of real against 1 plus fake against 0, each a batch mean, as PyTorch's DCGAN example
/// sums them), critic scores for WGAN-GP (without the penalty).
pub fn gan_loss(kind: GanLoss, player: Player, real: Option<&Tensor>, fake: &Tensor) -> Result<Tensor> {
    let bce = |x: &Tensor, target: f64| {
        let t = Tensor::full(x.shape(), target, x.dtype());
        binary_cross_entropy_with_logits(x, &t, Reduction::Mean)
    };
    match (player, kind) {
        (Player::Discriminator, _) => {
            let real = real.ok_or_else(|| {
                CoreError::invalid("gan_loss", "the discriminator's loss needs its outputs on real images")
            })?;
            match kind {
                GanLoss::WganGp => Ok(fake.mean_all()?.sub(&real.mean_all()?)?),
                _ => Ok(bce(real, 1.0)?.add(&bce(fake, 0.0)?)?),
            }
        }
        // log(1 − σ(l)) = −BCE(l, 0): descending it is the lecture's generator step.
        (Player::Generator, GanLoss::Minimax) => Ok(bce(fake, 0.0)?.neg()?),
        (Player::Generator, GanLoss::NonSaturating) => bce(fake, 1.0),
        (Player::Generator, GanLoss::WganGp) => Ok(fake.mean_all()?.neg()?),
    }
}

/// WGAN-GP's penalty `λ · mean over samples of (‖∂D(x̂)/∂x̂‖₂ − 1)²` at
/// `x̂ = ε·real + (1 − ε)·fake`, with one `ε ~ U[0, 1)` per sample drawn from `generator`
/// (`real` and `fake` are `[N, ...]` and enter as constants). The gradient is taken with
/// its own graph recorded, so the penalty backpropagates into the critic's parameters
/// through every layer's second derivative; it is recorded even inside a no-grad scope,
/// since the penalty is itself a gradient. A 1e-12 under the square root keeps the norm's
/// own gradient finite where ∂D/∂x̂ is 0.
pub fn gradient_penalty(
    critic: impl Fn(&Tensor) -> Result<Tensor>,
    real: &Tensor,
    fake: &Tensor,
    lambda: f64,
    generator: &mut Generator,
) -> Result<Tensor> {
    if real.shape() != fake.shape() || real.rank() == 0 || real.shape()[0] == 0 {
        return Err(CoreError::shapes(
            "gradient_penalty",
            real.shape(),
            fake.shape(),
            "real and fake must be one non-empty [N, ...] shape",
        )
        .into());
    }
    let n = real.shape()[0];
    let mut eps_shape = vec![1; real.rank()];
    eps_shape[0] = n;
    let eps = Tensor::rand(&eps_shape, real.dtype(), generator);
    let (real, fake) = (real.detach(), fake.detach());
    let mixed = {
        let _off = nabla_core::no_grad();
        real.mul(&eps)?.add(&fake.mul(&eps.rsub_scalar(1.0)?)?)?
    };
    let _on = enable_grad();
    let x_hat = mixed.set_requires_grad(true);
    let scores = critic(&x_hat)?;
    let g = grad(&[&scores], None, &[&x_hat], true)?
        .pop()
        .flatten()
        .ok_or_else(|| {
            CoreError::Autograd("gradient_penalty: the critic's output does not depend on its input".into())
        })?;
    let norms = g
        .reshape(&[n as isize, -1][..])?
        .square()?
        .sum(&[1], false)?
        .add_scalar(1e-12)?
        .sqrt()?;
    Ok(norms.sub_scalar(1.0)?.square()?.mean_all()?.mul_scalar(lambda)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::gradcheck::gradcheck;
    use nabla_core::{Conv2dOptions, DType};

    fn r(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
    }

    fn softplus(x: f64) -> f64 {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    }

    #[test]
    fn each_objective_is_its_formula() {
        let (lr, lf) = ([1.5f64, -0.3], [0.2f64, -2.0]);
        let real = Tensor::from_vec(lr.to_vec(), &[2, 1]).unwrap();
        let fake = Tensor::from_vec(lf.to_vec(), &[2, 1]).unwrap();
        let mean = |f: &dyn Fn(f64) -> f64, v: &[f64]| v.iter().map(|&x| f(x)).sum::<f64>() / v.len() as f64;
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        // −[log σ(r) + log(1 − σ(f))], each a mean.
        let d_want = mean(&|x| -sig(x).ln(), &lr) + mean(&|x| -(1.0 - sig(x)).ln(), &lf);
        let cases = [
            (GanLoss::Minimax, Player::Discriminator, d_want),
            (GanLoss::NonSaturating, Player::Discriminator, d_want),
            (GanLoss::Minimax, Player::Generator, mean(&|x| (1.0 - sig(x)).ln(), &lf)),
            (GanLoss::NonSaturating, Player::Generator, mean(&|x| softplus(-x), &lf)),
            (
                GanLoss::WganGp,
                Player::Discriminator,
                mean(&|x| x, &lf) - mean(&|x| x, &lr),
            ),
            (GanLoss::WganGp, Player::Generator, -mean(&|x| x, &lf)),
        ];
        for (kind, player, want) in cases {
            let got = gan_loss(kind, player, Some(&real), &fake).unwrap().item().unwrap();
            assert!((got - want).abs() < 1e-12, "{kind:?} {player:?}: {got} vs {want}");
        }
        assert!(gan_loss(GanLoss::Minimax, Player::Discriminator, None, &fake).is_err());
        for k in [GanLoss::Minimax, GanLoss::NonSaturating, GanLoss::WganGp] {
            assert_eq!(GanLoss::parse(k.name()), Some(k));
        }
        assert_eq!(GanLoss::parse("hinge"), None);
    }

    #[test]
    fn minimax_generator_gradient_vanishes_where_nonsaturating_does_not() {
        // D confidently rejects the fakes (logit −8): the minimax G gradient is σ(−8)-small.
        let fake = Tensor::full(&[4, 1], -8.0, DType::F64).set_requires_grad(true);
        let slope = |kind| {
            let l = gan_loss(kind, Player::Generator, None, &fake).unwrap();
            l.backward().unwrap().get(&fake).unwrap().to_vec_f64()[0].abs()
        };
        let (mm, ns) = (slope(GanLoss::Minimax), slope(GanLoss::NonSaturating));
        assert!(mm < 1e-3 / 4.0 && ns > 0.9 / 4.0, "minimax {mm}, nonsaturating {ns}");
    }

    #[test]
    fn penalty_of_a_linear_critic_is_its_closed_form() {
        // D(x) = Σ w·x has ∂D/∂x = w for every sample: λ(‖w‖ − 1)².
        let w = Tensor::from_vec(vec![3.0f64, 4.0], &[1, 2]).unwrap();
        let (real, fake) = (r(&[5, 2], 1), r(&[5, 2], 2));
        let p = gradient_penalty(
            |x| Ok(x.mul(&w)?.sum(&[1], false)?),
            &real,
            &fake,
            10.0,
            &mut Generator::new(0),
        );
        let p = p.unwrap().item().unwrap();
        assert!((p - 10.0 * 16.0).abs() < 1e-9, "{p}");
        let bad = gradient_penalty(|x| Ok(x.clone()), &real, &r(&[4, 2], 3), 10.0, &mut Generator::new(0));
        assert!(bad.is_err());
    }

    #[test]
    fn penalty_gradient_matches_finite_differences_through_a_critic() {
        // conv → leaky ReLU → linear: the penalty's gradient in every weight needs each
        // layer's second derivative.
        let (real, fake) = (r(&[3, 1, 5, 5], 1), r(&[3, 1, 5, 5], 2));
        let opts = Conv2dOptions {
            stride: [2, 2],
            padding: [1, 1],
            ..Default::default()
        };
        let (cw, lw, lb) = (r(&[2, 1, 3, 3], 3), r(&[1, 18], 4).mul_scalar(0.5).unwrap(), r(&[1], 5));
        gradcheck(
            |t| {
                let critic = |x: &Tensor| -> Result<Tensor> {
                    let h = x.conv2d(&t[0], None, opts)?.leaky_relu(0.2)?;
                    Ok(h.flatten(1, -1)?.linear(&t[1], Some(&t[2]))?)
                };
                gradient_penalty(critic, &real, &fake, 10.0, &mut Generator::new(7)).map_err(|e| match e {
                    crate::Error::Tensor { source, .. } => source,
                    other => CoreError::Autograd(other.to_string()),
                })
            },
            &[cw, lw, lb],
        )
        .unwrap();
    }
}
