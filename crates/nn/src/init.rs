//! Weight initializers, in place and from a [`Generator`], with PyTorch's names and formulas
//! (`nn.init.kaiming_uniform_` and friends).
//!
//! ```
//! use nabla_core::{DType, Generator, Tensor};
//! use nabla_nn::init::{self, FanMode, Nonlinearity};
//! let w = Tensor::zeros(&[64, 3, 3, 3], DType::F32);
//! init::kaiming_uniform_(&w, 0.0, FanMode::FanIn, Nonlinearity::Relu, &mut Generator::new(0))?;
//! // fan_in = 3·3·3, so the bound is √2 · √(3 / 27).
//! let bound = 2f64.sqrt() * (3.0f64 / 27.0).sqrt();
//! assert!(w.to_vec_f64().iter().all(|v| v.abs() <= bound));
//! # Ok::<(), nabla_nn::Error>(())
//! ```

use crate::{Error, Result};
use nabla_core::{Generator, Tensor};

/// Which fan the Kaiming initializers scale by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanMode {
    /// Preserve the variance of activations in the forward pass.
    FanIn,
    /// Preserve the variance of gradients in the backward pass.
    FanOut,
}

/// The nonlinearity a layer feeds, for [`calculate_gain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonlinearity {
    /// Identity, convolutions and sigmoid: gain 1.
    Linear,
    /// Gain 1.
    Sigmoid,
    /// Gain 5/3.
    Tanh,
    /// Gain √2.
    Relu,
    /// Gain √(2 / (1 + a²)) for negative slope `a`.
    LeakyRelu,
    /// Gain 3/4.
    Selu,
}

/// PyTorch's recommended gain for a nonlinearity; `param` is the leaky-ReLU slope.
pub fn calculate_gain(nonlinearity: Nonlinearity, param: f64) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu => (2.0 / (1.0 + param * param)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// `(fan_in, fan_out)` of a weight: dims 1 and 0 times the receptive field (dims 2..).
pub fn calculate_fan_in_and_fan_out(shape: &[usize]) -> Result<(usize, usize)> {
    if shape.len() < 2 {
        return Err(Error::Config(format!(
            "init: fan in and fan out need a weight of at least 2 dims, got shape {shape:?}"
        )));
    }
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

fn fan(shape: &[usize], mode: FanMode) -> Result<usize> {
    let (fan_in, fan_out) = calculate_fan_in_and_fan_out(shape)?;
    Ok(match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    })
}

/// `1/√fan`, or 0 for an empty fan (PyTorch's bound for default biases).
pub(crate) fn inv_sqrt(fan: usize) -> f64 {
    if fan == 0 {
        0.0
    } else {
        1.0 / (fan as f64).sqrt()
    }
}

/// Fill `t` with samples from U(low, high).
pub fn uniform_(t: &Tensor, low: f64, high: f64, g: &mut Generator) -> Result<()> {
    if low.partial_cmp(&high).is_none_or(|o| o.is_gt()) {
        return Err(Error::Config(format!("init::uniform_: low {low} > high {high}")));
    }
    Ok(t.assign(&Tensor::uniform(t.shape(), low, high, t.dtype(), g))?)
}

/// Fill `t` with samples from N(mean, std²).
pub fn normal_(t: &Tensor, mean: f64, std: f64, g: &mut Generator) -> Result<()> {
    if std.is_nan() || std < 0.0 {
        return Err(Error::Config(format!("init::normal_: std {std} is negative")));
    }
    Ok(t.assign(&Tensor::normal(t.shape(), mean, std, t.dtype(), g))?)
}

/// Fill `t` with `value`.
pub fn constant_(t: &Tensor, value: f64) -> Result<()> {
    Ok(t.assign(&Tensor::full(t.shape(), value, t.dtype()))?)
}

/// Fill `t` with zeros.
pub fn zeros_(t: &Tensor) -> Result<()> {
    constant_(t, 0.0)
}

/// Fill `t` with ones.
pub fn ones_(t: &Tensor) -> Result<()> {
    constant_(t, 1.0)
}

/// He et al. uniform: U(−b, b) with b = gain·√(3 / fan); `a` is the leaky-ReLU slope.
pub fn kaiming_uniform_(
    t: &Tensor,
    a: f64,
    mode: FanMode,
    nonlinearity: Nonlinearity,
    g: &mut Generator,
) -> Result<()> {
    let std = calculate_gain(nonlinearity, a) * inv_sqrt(fan(t.shape(), mode)?);
    let bound = 3f64.sqrt() * std;
    uniform_(t, -bound, bound, g)
}

/// He et al. normal: N(0, std²) with std = gain / √fan.
pub fn kaiming_normal_(t: &Tensor, a: f64, mode: FanMode, nonlinearity: Nonlinearity, g: &mut Generator) -> Result<()> {
    let std = calculate_gain(nonlinearity, a) * inv_sqrt(fan(t.shape(), mode)?);
    normal_(t, 0.0, std, g)
}

/// Glorot uniform: U(−b, b) with b = gain·√(6 / (fan_in + fan_out)).
pub fn xavier_uniform_(t: &Tensor, gain: f64, g: &mut Generator) -> Result<()> {
    let (fi, fo) = calculate_fan_in_and_fan_out(t.shape())?;
    let bound = gain * 6f64.sqrt() * inv_sqrt(fi + fo);
    uniform_(t, -bound, bound, g)
}

/// Glorot normal: N(0, std²) with std = gain·√(2 / (fan_in + fan_out)).
pub fn xavier_normal_(t: &Tensor, gain: f64, g: &mut Generator) -> Result<()> {
    let (fi, fo) = calculate_fan_in_and_fan_out(t.shape())?;
    let std = gain * 2f64.sqrt() * inv_sqrt(fi + fo);
    normal_(t, 0.0, std, g)
}

/// A `shape` tensor of U(−1/√fan_in, 1/√fan_in) samples: PyTorch's default for the weights
/// (kaiming_uniform with a = √5 works out to this) and biases of Linear and Conv layers.
pub(crate) fn default_uniform(shape: &[usize], fan_in: usize, dtype: nabla_core::DType, g: &mut Generator) -> Tensor {
    let bound = inv_sqrt(fan_in);
    Tensor::uniform(shape, -bound, bound, dtype, g)
}

/// PyTorch's default for Linear and Conv layers: the weight gets kaiming_uniform with
/// a = √5, i.e. U(−1/√fan_in, 1/√fan_in), and the bias U(−1/√fan_in, 1/√fan_in).
pub fn default_weight_and_bias_(weight: &Tensor, bias: Option<&Tensor>, g: &mut Generator) -> Result<()> {
    kaiming_uniform_(weight, 5f64.sqrt(), FanMode::FanIn, Nonlinearity::LeakyRelu, g)?;
    if let Some(b) = bias {
        let bound = inv_sqrt(calculate_fan_in_and_fan_out(weight.shape())?.0);
        uniform_(b, -bound, bound, g)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::DType;

    fn moments(t: &Tensor) -> (f64, f64, f64) {
        let v = t.to_vec_f64();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0f64, |m, x| m.max(x.abs()));
        (mean, var, max)
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(calculate_fan_in_and_fan_out(&[8, 6]).unwrap(), (6, 8));
        assert_eq!(calculate_fan_in_and_fan_out(&[64, 3, 7, 7]).unwrap(), (147, 64 * 49));
        assert!(calculate_fan_in_and_fan_out(&[5]).is_err());
        assert!((calculate_gain(Nonlinearity::LeakyRelu, 5f64.sqrt()) - (1.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn default_init_bounds_and_spread() {
        let mut g = Generator::new(3);
        let w = Tensor::zeros(&[200, 100], DType::F64);
        let b = Tensor::zeros(&[200], DType::F64);
        default_weight_and_bias_(&w, Some(&b), &mut g).unwrap();
        let (mean, var, max) = moments(&w);
        // U(−0.1, 0.1): variance 0.01/3, every value inside the bound.
        assert!(max <= 0.1 && max > 0.099, "{max}");
        assert!(mean.abs() < 2e-3 && (var - 0.01 / 3.0).abs() < 2e-4, "{mean} {var}");
        assert!(moments(&b).2 <= 0.1);
    }

    #[test]
    fn kaiming_and_xavier_variances() {
        let mut g = Generator::new(5);
        let w = Tensor::zeros(&[300, 50, 2, 2], DType::F64); // fan_in 200, fan_out 1200
        kaiming_normal_(&w, 0.0, FanMode::FanIn, Nonlinearity::Relu, &mut g).unwrap();
        assert!((moments(&w).1 - 2.0 / 200.0).abs() < 2e-4);
        kaiming_uniform_(&w, 0.0, FanMode::FanOut, Nonlinearity::Relu, &mut g).unwrap();
        assert!((moments(&w).1 - 2.0 / 1200.0).abs() < 4e-5);
        xavier_uniform_(&w, 1.0, &mut g).unwrap();
        assert!((moments(&w).1 - 2.0 / 1400.0).abs() < 4e-5);
        xavier_normal_(&w, 2.0, &mut g).unwrap();
        assert!((moments(&w).1 - 4.0 * 2.0 / 1400.0).abs() < 2e-4);
        constant_(&w, 0.5).unwrap();
        assert!(w.to_vec_f64().iter().all(|&v| v == 0.5));
        assert!(normal_(&w, 0.0, -1.0, &mut g).is_err());
    }
}
