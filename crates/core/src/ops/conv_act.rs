//! A convolution or transposed convolution followed by ReLU or leaky ReLU as one op
//! ([`Tensor::conv2d_act`], [`Tensor::conv_transpose2d_act`]), as `nn::Sequential` runs a
//! layer and the activation after it: the activation is applied to the output in place
//! while it is still in cache (no second tensor), and the backward pass gates the gradient
//! by the output's sign before the convolution's own backward. Values and gradients are
//! those of the two ops bit for bit, to any order (the gate is the activation's own
//! backward op).
//!
//! ```
//! use nabla_core::{Activation, Conv2dOptions, DType, Tensor};
//! let x = Tensor::ones(&[1, 1, 3, 3], DType::F32);
//! let w = Tensor::full(&[2, 1, 1, 1], -1.0, DType::F32);
//! let y = x.conv2d_act(&w, None, Conv2dOptions::default(), Activation::Relu)?;
//! assert_eq!(y.to_vec::<f32>()?, vec![0.0; 18]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::activation::{backward_at_output, gates_at_output};
use super::conv2d::{conv2d_geom, conv2d_prim_act};
use super::conv_transpose2d::{conv_transpose2d_geom, conv_transpose2d_prim_act};
use crate::{Activation, Conv2dOptions, ConvTranspose2dOptions, Result, Tensor};

/// What a fused op keeps for its backward pass: its output (without its graph identity,
/// which inside its own node would be a reference cycle) where an activation was fused.
pub(super) struct Gate {
    /// The output and the activation that made it; None for `Identity`.
    fused: Option<(Tensor, Activation)>,
}

impl Gate {
    /// The gate of an op whose freshly computed (not yet recorded) output is `out`.
    pub(super) fn new(out: &Tensor, act: Activation) -> Gate {
        let fused = (act != Activation::Identity).then(|| (out.clone(), act));
        Gate { fused }
    }

    /// The op's name in the graph and the profile: `base`, or `base` + the activation.
    pub(super) fn name(&self, base: &'static str) -> &'static str {
        match (base, self.fused.as_ref().map(|f| f.1)) {
            ("conv2d", Some(Activation::Relu)) => "conv2d_relu",
            ("conv2d", Some(Activation::LeakyRelu(_))) => "conv2d_leaky_relu",
            ("conv_transpose2d", Some(Activation::Relu)) => "conv_transpose2d_relu",
            ("conv_transpose2d", Some(Activation::LeakyRelu(_))) => "conv_transpose2d_leaky_relu",
            ("linear", Some(Activation::Relu)) => "linear_relu",
            ("linear", Some(Activation::LeakyRelu(_))) => "linear_leaky_relu",
            _ => base,
        }
    }

    /// The upstream gradient `gy` through the activation (itself where none was fused).
    pub(super) fn apply(&self, gy: &Tensor) -> Result<Tensor> {
        match &self.fused {
            Some((y, act)) => backward_at_output(gy, y, *act),
            None => Ok(gy.clone()),
        }
    }
}

impl Tensor {
    /// [`Tensor::conv2d`] followed by `act` as one op: what `conv2d(..)?.activation(act)`
    /// gives, values and gradients, without the second pass and tensor. A leaky ReLU with
    /// a negative slope runs as the two ops.
    pub fn conv2d_act(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: Conv2dOptions,
        act: Activation,
    ) -> Result<Tensor> {
        let g = conv2d_geom(self, weight, bias, &opts)?;
        if gates_at_output(act) {
            conv2d_prim_act(self, weight, bias, g, act)
        } else {
            conv2d_prim_act(self, weight, bias, g, Activation::Identity)?.activation(act)
        }
    }

    /// [`Tensor::conv_transpose2d`] followed by `act` as one op, as [`Tensor::conv2d_act`].
    pub fn conv_transpose2d_act(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        opts: ConvTranspose2dOptions,
        act: Activation,
    ) -> Result<Tensor> {
        let g = conv_transpose2d_geom(self, weight, bias, &opts)?;
        if gates_at_output(act) {
            conv_transpose2d_prim_act(self, weight, bias, g, act)
        } else {
            conv_transpose2d_prim_act(self, weight, bias, g, Activation::Identity)?.activation(act)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::recorded_grads;
    use super::*;
    use crate::gradcheck::gradcheck;
    use crate::{grad, DType, Generator};

    const ACTS: [Activation; 4] = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::LeakyRelu(-0.5),
    ];

    fn r(shape: &[usize], dtype: DType, s: u64) -> Tensor {
        Tensor::randn(shape, dtype, &mut Generator::new(s))
    }

    fn bits(t: &Tensor) -> Vec<u64> {
        t.to_vec_f64().iter().map(|v| v.to_bits()).collect()
    }

    /// `fused(x, w, b, act)` against `plain(x, w, b)` then `act`: the same output and the
    /// same gradients for x, w and b bit for bit, with and without `create_graph`.
    fn same_as_unfused(
        what: &str,
        [x, w, b]: [Tensor; 3],
        fused: impl Fn(&Tensor, &Tensor, &Tensor, Activation) -> Result<Tensor>,
        plain: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
    ) {
        let [x, w, b] = [x, w, b].map(|t| t.set_requires_grad(true));
        for act in ACTS {
            let y = fused(&x, &w, &b, act).unwrap();
            let y0 = plain(&x, &w, &b).unwrap().activation(act).unwrap();
            assert_eq!(bits(&y), bits(&y0), "{what} {act:?} forward");
            let gy = r(y.shape(), y.dtype(), 9);
            for create_graph in [false, true] {
                let got = grad(&[&y], Some(&[&gy]), &[&x, &w, &b], create_graph).unwrap();
                let want = grad(&[&y0], Some(&[&gy]), &[&x, &w, &b], create_graph).unwrap();
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    let (g, e) = (g.as_ref().unwrap(), e.as_ref().unwrap());
                    assert_eq!(bits(g), bits(e), "{what} {act:?} grad {i} ({create_graph})");
                }
            }
        }
    }

    #[test]
    fn fused_convolutions_match_the_two_ops() {
        // The conv autoencoder's layers at a small batch, f32 (stride-2 direct kernels and
        // im2col) and f64 (the generic path), with and without padding tails.
        let o2 = |p: usize| Conv2dOptions {
            stride: [2, 2],
            padding: [p, p],
            ..Default::default()
        };
        let t2 = |op: usize| ConvTranspose2dOptions {
            stride: [2, 2],
            padding: [1, 1],
            output_padding: [op, op],
            ..Default::default()
        };
        for dtype in [DType::F32, DType::F64] {
            for (c, o, hw) in [(1, 16, 28), (16, 32, 14), (3, 5, 9)] {
                let what = format!("conv2d {c}→{o} {hw}² {dtype:?}");
                let xs = [
                    r(&[3, c, hw, hw], dtype, 1),
                    r(&[o, c, 3, 3], dtype, 2),
                    r(&[o], dtype, 3),
                ];
                same_as_unfused(
                    &what,
                    xs,
                    |x, w, b, act| x.conv2d_act(w, Some(b), o2(1), act),
                    |x, w, b| x.conv2d(w, Some(b), o2(1)),
                );
            }
            for (c, o, hw, op) in [(32, 16, 7, 1), (16, 1, 14, 1), (4, 3, 5, 0)] {
                let what = format!("conv_transpose2d {c}→{o} {hw}² {dtype:?}");
                let xs = [
                    r(&[3, c, hw, hw], dtype, 4),
                    r(&[c, o, 3, 3], dtype, 5),
                    r(&[o], dtype, 6),
                ];
                same_as_unfused(
                    &what,
                    xs,
                    |x, w, b, act| x.conv_transpose2d_act(w, Some(b), t2(op), act),
                    |x, w, b| x.conv_transpose2d(w, Some(b), t2(op)),
                );
            }
        }
    }

    #[test]
    fn fused_gradients_are_differentiable() {
        let o = Conv2dOptions {
            stride: [2, 1],
            padding: [1, 1],
            ..Default::default()
        };
        let t = ConvTranspose2dOptions {
            stride: [2, 2],
            padding: [1, 0],
            output_padding: [1, 0],
            ..Default::default()
        };
        let (x, w, b) = (
            r(&[2, 3, 5, 4], DType::F64, 7),
            r(&[4, 3, 3, 3], DType::F64, 8),
            r(&[4], DType::F64, 9),
        );
        let (wt, bt) = (r(&[3, 4, 3, 2], DType::F64, 10), r(&[4], DType::F64, 11));
        for act in [Activation::Relu, Activation::LeakyRelu(0.1)] {
            gradcheck(
                |t| t[0].conv2d_act(&t[1], Some(&t[2]), o, act),
                &[x.clone(), w.clone(), b.clone()],
            )
            .unwrap();
            gradcheck(
                |u| u[0].conv_transpose2d_act(&u[1], Some(&u[2]), t, act),
                &[x.clone(), wt.clone(), bt.clone()],
            )
            .unwrap();
            // Second derivatives: of the weight's gradient of Σ y², through the gate.
            let second = |u: &[Tensor]| {
                recorded_grads(u, |u| u[0].conv2d_act(&u[1], Some(&u[2]), o, act)?.square()?.sum_all())
                    .map(|g| g[1].clone())
            };
            gradcheck(second, &[x.clone(), w.clone(), b.clone()]).unwrap();
            let second = |u: &[Tensor]| {
                recorded_grads(u, |u| {
                    u[0].conv_transpose2d_act(&u[1], Some(&u[2]), t, act)?
                        .square()?
                        .sum_all()
                })
                .map(|g| g[0].clone())
            };
            gradcheck(second, &[x.clone(), wt.clone(), bt.clone()]).unwrap();
        }
    }
}
