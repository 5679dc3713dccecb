//! The LSTM cell's gate nonlinearities and state update as one op:
//! `lstm_cell(gates, c) → (h', c')` with `gates = x·W_ihᵀ + h·W_hhᵀ + b` in PyTorch's
//! order (i, f, g, o), `c' = σ(f)·c + σ(i)·tanh(g)` and `h' = σ(o)·tanh(c')`.
//!
//! Written out with tensor ops this is a dozen ops a step, each with its own pass,
//! allocation and graph node (and twice that backward); here it is one pass each way.
//! The backward pass uses the fused kernel when no graph is being built for it, and the
//! same formulas in tensor ops when one is (`create_graph`), so it is differentiable again.
//!
//! ```
//! use nabla_core::Tensor;
//! let gates = Tensor::zeros(&[1, 8], nabla_core::DType::F32); // N = 1, H = 2
//! let c = Tensor::ones(&[1, 2], nabla_core::DType::F32);
//! let (h, c2) = Tensor::lstm_cell(&gates, &c)?;
//! // σ(0) = 0.5, tanh(0) = 0: c' = 0.5·1, h' = 0.5·tanh(0.5).
//! assert_eq!(c2.to_vec::<f32>()?, vec![0.5, 0.5]);
//! assert!((h.to_vec::<f32>()?[0] - 0.5 * 0.5f32.tanh()).abs() < 1e-7);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::{same_dtype, with_data};
use crate::autograd::is_grad_enabled;
use crate::dtype::dispatch;
use crate::kernels::lstm_cell as kernel;
use crate::{Element, Error, Result, Tensor};

/// Forward through the kernel: `[2, n, h]` (h', c'), the activated gates and tanh(c').
fn forward<T: Element>(gates: &Tensor, c: &Tensor, n: usize, h: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let mut out = vec![T::ZERO; 2 * n * h];
    let mut act = vec![T::ZERO; 4 * n * h];
    let mut tc = vec![T::ZERO; n * h];
    with_data("lstm_cell", &[gates, c], |s: &[&[T]]| {
        kernel::forward(h, s[0], s[1], &mut out, &mut act, &mut tc)
    })?;
    Ok((
        Tensor::from_buffer(T::wrap(out), &[2, n, h]),
        Tensor::from_buffer(T::wrap(act), &[n, 4 * h]),
        Tensor::from_buffer(T::wrap(tc), &[n, h]),
    ))
}

/// Backward through the kernel: the gradients of the gates and of `c`.
fn backward_fused<T: Element>(g: &Tensor, act: &Tensor, tc: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
    let (n, h) = (c.shape()[0], c.shape()[1]);
    let mut dgates = vec![T::ZERO; 4 * n * h];
    let mut dc = vec![T::ZERO; n * h];
    with_data("lstm_cell_backward", &[g, act, tc, c], |s: &[&[T]]| {
        kernel::backward(h, s[0], s[1], s[2], s[3], &mut dgates, &mut dc)
    })?;
    Ok((
        Tensor::from_buffer(T::wrap(dgates), &[n, 4 * h]),
        Tensor::from_buffer(T::wrap(dc), &[n, h]),
    ))
}

/// The same gradients in tensor ops, recorded, for a graph of the backward pass.
pub(crate) fn backward_ops(g: &Tensor, gates: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
    let h = c.shape()[1];
    let part = |k: usize| gates.narrow(1, k * h, h);
    let (i, f, gg, o) = (
        part(0)?.sigmoid()?,
        part(1)?.sigmoid()?,
        part(2)?.tanh()?,
        part(3)?.sigmoid()?,
    );
    let t = f.mul(c)?.add(&i.mul(&gg)?)?.tanh()?;
    let gh = g.narrow(0, 0, 1)?.squeeze(0)?;
    let gc = g.narrow(0, 1, 1)?.squeeze(0)?;
    let one_minus = |x: &Tensor| x.rsub_scalar(1.0);
    let dct = gc.add(&gh.mul(&o)?.mul(&one_minus(&t.square()?)?)?)?;
    let di = dct.mul(&gg)?.mul(&i)?.mul(&one_minus(&i)?)?;
    let df = dct.mul(c)?.mul(&f)?.mul(&one_minus(&f)?)?;
    let dg = dct.mul(&i)?.mul(&one_minus(&gg.square()?)?)?;
    let d_o = gh.mul(&t)?.mul(&o)?.mul(&one_minus(&o)?)?;
    Ok((Tensor::cat(&[&di, &df, &dg, &d_o], 1)?, dct.mul(&f)?))
}

impl Tensor {
    /// One LSTM step's pointwise part: `gates` `[N, 4H]` (pre-activations in PyTorch's
    /// order i, f, g, o) and the cell state `c` `[N, H]` to the new `(h, c)`, each `[N, H]`.
    pub fn lstm_cell(gates: &Tensor, c: &Tensor) -> Result<(Tensor, Tensor)> {
        same_dtype("lstm_cell", gates, c)?;
        let [n, h] = *c.shape() else {
            return Err(Error::shapes("lstm_cell", gates.shape(), c.shape(), "c must be [N, H]"));
        };
        if gates.shape() != [n, 4 * h] {
            return Err(Error::shapes(
                "lstm_cell",
                gates.shape(),
                c.shape(),
                format!("gates must be [N, 4H] = [{n}, {}]", 4 * h),
            ));
        }
        let (out, act, tc) = dispatch!(c.dtype(), T => forward::<T>(gates, c, n, h)?);
        let (gs, cs) = (gates.clone(), c.clone());
        // The graph keeps the inputs only; act and tc are plain buffers.
        let c_saved = c.detach();
        let out = out.record("lstm_cell", &[gates, c], move |g, needs| {
            let (dgates, dc) = if is_grad_enabled() {
                backward_ops(g, &gs, &cs)?
            } else {
                dispatch!(g.dtype(), T => backward_fused::<T>(g, &act, &tc, &c_saved)?)
            };
            Ok(vec![needs[0].then_some(dgates), needs[1].then_some(dc)])
        });
        let h_new = out.narrow(0, 0, 1)?.squeeze(0)?;
        let c_new = out.narrow(0, 1, 1)?.squeeze(0)?;
        Ok((h_new, c_new))
    }
}

#[cfg(test)]
mod tests {
    use crate::autograd::enable_grad;
    use crate::gradcheck::gradcheck;
    use crate::{grad, DType, Generator, Tensor};

    /// The cell written with separate tensor ops, as the layers would without this op.
    fn reference(gates: &Tensor, c: &Tensor) -> crate::Result<(Tensor, Tensor)> {
        let h = c.shape()[1];
        let p = |k: usize| gates.narrow(1, k * h, h);
        let c2 = p(1)?.sigmoid()?.mul(c)?.add(&p(0)?.sigmoid()?.mul(&p(2)?.tanh()?)?)?;
        Ok((p(3)?.sigmoid()?.mul(&c2.tanh()?)?, c2))
    }

    #[test]
    fn matches_separate_ops_forward_and_backward() {
        let mut g = Generator::new(4);
        let gates = Tensor::randn(&[3, 8], DType::F64, &mut g)
            .mul_scalar(2.0)
            .unwrap()
            .set_requires_grad(true);
        let c = Tensor::randn(&[3, 2], DType::F64, &mut g).set_requires_grad(true);
        let (w1, w2) = (
            Tensor::randn(&[3, 2], DType::F64, &mut g),
            Tensor::randn(&[3, 2], DType::F64, &mut g),
        );
        let loss = |(h, c2): (Tensor, Tensor)| {
            h.mul(&w1)
                .unwrap()
                .add(&c2.mul(&w2).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let (a, b) = (Tensor::lstm_cell(&gates, &c).unwrap(), reference(&gates, &c).unwrap());
        for (x, y) in [(&a.0, &b.0), (&a.1, &b.1)] {
            for (p, q) in x.to_vec_f64().iter().zip(y.to_vec_f64()) {
                assert!((p - q).abs() < 1e-14, "{p} vs {q}");
            }
        }
        let ga = loss(a).backward().unwrap();
        let gb = loss(b).backward().unwrap();
        for t in [&gates, &c] {
            for (p, q) in ga
                .get(t)
                .unwrap()
                .to_vec_f64()
                .iter()
                .zip(gb.get(t).unwrap().to_vec_f64())
            {
                assert!((p - q).abs() < 1e-13, "{p} vs {q}");
            }
        }
    }

    #[test]
    fn gradcheck_first_and_second_order() {
        let mut g = Generator::new(9);
        let gates = Tensor::randn(&[2, 12], DType::F64, &mut g);
        let c = Tensor::randn(&[2, 3], DType::F64, &mut g);
        gradcheck(
            |t| {
                let (h, c2) = Tensor::lstm_cell(&t[0], &t[1])?;
                Tensor::cat(&[&h, &c2], 1)
            },
            &[gates.clone(), c.clone()],
        )
        .unwrap();
        // The backward built as a graph (create_graph) is itself right: check its gradient.
        gradcheck(
            |t| {
                // The finite differences run under no_grad on plain tensors: this needs a graph.
                let _on = enable_grad();
                let lift = |x: &Tensor| {
                    if x.requires_grad() {
                        x.clone()
                    } else {
                        x.set_requires_grad(true)
                    }
                };
                let (x, y) = (lift(&t[0]), lift(&t[1]));
                let (h, c2) = Tensor::lstm_cell(&x, &y)?;
                let s = h.mul(&h)?.add(&c2)?.sum_all()?;
                let d = grad(&[&s], None, &[&x, &y], true)?;
                let (dg, dc) = (d[0].clone().unwrap(), d[1].clone().unwrap());
                Tensor::cat(&[&dg.flatten(0, -1)?, &dc.flatten(0, -1)?], 0)
            },
            &[gates, c],
        )
        .unwrap();
    }

    #[test]
    fn shapes_are_checked() {
        let g = Tensor::zeros(&[2, 7], DType::F32);
        let c = Tensor::zeros(&[2, 2], DType::F32);
        let msg = Tensor::lstm_cell(&g, &c).unwrap_err().to_string();
        assert!(msg.contains("lstm_cell") && msg.contains("[2, 8]"), "{msg}");
        assert!(Tensor::lstm_cell(&Tensor::zeros(&[8], DType::F32), &Tensor::zeros(&[2], DType::F32)).is_err());
    }
}
