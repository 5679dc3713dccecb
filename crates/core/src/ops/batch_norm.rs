//! Batch normalization in training mode as one op (PyTorch's `native_batch_norm`): the
//! batch statistics and the output in three passes over the input, the gradients in two.
//! Composed from tensor ops it took about eight full-size passes forward and fifteen
//! backward. The backward rule runs the fused kernel when no graph of the gradient is
//! wanted, and the same formula written with tensor ops when it is (`create_graph`), so
//! the op is differentiable to any order. [`Tensor::batch_norm_train_act`] adds the ReLU or
//! LeakyReLU that follows every batch norm of the zoo's convolutional models to the same
//! passes (as two ops, two more full-size tensors are written and three more read).
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! // Two samples of two channels: channel 0 holds {1, 10}, channel 1 holds {3, 30}.
//! let x = Tensor::from_vec(vec![1.0f32, 3.0, 10.0, 30.0], &[2, 2])?;
//! let (w, b) = (Tensor::ones(&[2], DType::F32), Tensor::zeros(&[2], DType::F32));
//! let (y, mean, var) = x.batch_norm_train(&w, &b, 0.0)?;
//! assert_eq!(mean.to_vec::<f32>()?, vec![5.5, 16.5]);
//! assert_eq!(var.to_vec::<f32>()?, vec![20.25, 182.25]);
//! let y = y.to_vec::<f32>()?;
//! for (got, want) in y.iter().zip([-1.0f32, -1.0, 1.0, 1.0]) {
//!     assert!((got - want).abs() < 1e-6, "{y:?}");
//! }
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::with_data;
use crate::autograd::{is_grad_enabled, no_grad};
use crate::dtype::dispatch;
use crate::kernels::batch_norm::{self, Activation};
use crate::kernels::elementwise::filled;
use crate::{Element, Error, Result, Tensor};
use std::sync::Arc;

impl Tensor {
    /// Training-mode batch normalization of `[N, C, ...]` input over every dim but 1:
    /// `(x − mean)/√(var + eps)·weight + bias` with the batch mean and biased variance per
    /// channel. Returns the output and, detached, the mean and variance (`[C]`), from
    /// which a caller updates running statistics.
    pub fn batch_norm_train(&self, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<(Tensor, Tensor, Tensor)> {
        self.batch_norm_train_act(weight, bias, eps, Activation::Identity)
    }

    /// [`Tensor::batch_norm_train`] followed by `act` (`relu` or `leaky_relu`) as one op:
    /// the normalized values are never stored, and the backward pass gates the gradient as
    /// it reads it. Values and gradients are those of the two ops, bit for bit.
    pub fn batch_norm_train_act(
        &self,
        weight: &Tensor,
        bias: &Tensor,
        eps: f64,
        act: Activation,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let op = match act {
            Activation::Identity => "batch_norm_train",
            Activation::Relu => "batch_norm_train_relu",
            Activation::LeakyRelu(_) => "batch_norm_train_leaky_relu",
        };
        if self.rank() < 2 {
            return Err(Error::invalid(
                op,
                format!("expects [N, C, ...] input, got shape {:?}", self.shape()),
            ));
        }
        let (n, c) = (self.shape()[0], self.shape()[1]);
        let p: usize = self.shape()[2..].iter().product();
        for (what, t) in [("weight", weight), ("bias", bias)] {
            if t.shape() != [c] {
                return Err(Error::shapes(
                    op,
                    self.shape(),
                    t.shape(),
                    format!("{what} must have one value per channel ({c})"),
                ));
            }
            if t.dtype() != self.dtype() {
                return Err(Error::invalid(
                    op,
                    format!("{what} is {:?}, input is {:?}", t.dtype(), self.dtype()),
                ));
            }
        }
        if n * p < 2 {
            return Err(Error::invalid(
                op,
                format!(
                    "needs more than 1 value per channel, got input shape {:?}",
                    self.shape()
                ),
            ));
        }
        let dims = [n, c, p];
        type Out = ([Tensor; 3], Vec<f64>);
        fn run<T: Element>(
            x: &Tensor,
            w: &Tensor,
            b: &Tensor,
            dims: [usize; 3],
            eps: f64,
            act: Activation,
        ) -> Result<Out> {
            with_data("batch_norm_train", &[x, w, b], |s: &[&[T]]| {
                let mut stats = (Vec::new(), Vec::new(), Vec::new());
                let y = filled(s[0].len(), |y| {
                    stats = batch_norm::forward_act_into(s[0], dims, s[1], s[2], eps, act, y)
                });
                let (mean, var, ac) = stats;
                let stat =
                    |v: Vec<f64>| Tensor::from_buffer(T::wrap(v.into_iter().map(T::from_f64).collect()), &[dims[1]]);
                // Each channel's `[a, c]` in f64 (exact), for the backward's gate.
                let ac = ac.iter().flat_map(|v| v.map(T::to_f64)).collect();
                ([Tensor::from_buffer(T::wrap(y), x.shape()), stat(mean), stat(var)], ac)
            })
        }
        let ([y, mean, var], ac) = dispatch!(self.dtype(), T => run::<T>(self, weight, bias, dims, eps, act)?);
        let mean64 = Arc::new(mean.to_vec_f64());
        let inv: Arc<Vec<f64>> = Arc::new(var.to_vec_f64().iter().map(|v| 1.0 / (v + eps).sqrt()).collect());
        let (x, w) = (self.clone(), weight.clone());
        let y = y.record(op, &[self, weight, bias], move |gy, _| {
            let [dx, dw, db] = if is_grad_enabled() {
                composed_grad(&x, &w, &gated(&x, gy, act, &ac)?, eps)?
            } else {
                fused_grad(&x, &w, gy, dims, &mean64, &inv, act, &ac)?
            };
            Ok(vec![Some(dx), Some(dw), Some(db)])
        });
        Ok((y, mean, var))
    }
}

/// The gradients by the fused kernel (not recorded).
#[allow(clippy::too_many_arguments)]
fn fused_grad(
    x: &Tensor,
    w: &Tensor,
    gy: &Tensor,
    dims: [usize; 3],
    mean: &[f64],
    inv: &[f64],
    act: Activation,
    ac: &[f64],
) -> Result<[Tensor; 3]> {
    #[allow(clippy::too_many_arguments)]
    fn run<T: Element>(
        x: &Tensor,
        w: &Tensor,
        gy: &Tensor,
        dims: [usize; 3],
        mean: &[f64],
        inv: &[f64],
        act: Activation,
        ac: &[f64],
    ) -> Result<[Tensor; 3]> {
        let ac: Vec<[T; 2]> = ac.chunks(2).map(|v| [T::from_f64(v[0]), T::from_f64(v[1])]).collect();
        with_data("batch_norm_train_backward", &[x, gy, w], |s: &[&[T]]| {
            let mut grads = (Vec::new(), Vec::new());
            let dx = filled(s[0].len(), |dx| {
                grads = batch_norm::backward_act_into(s[0], s[1], dims, mean, inv, s[2], act, &ac, dx)
            });
            let (dw, db) = grads;
            [
                Tensor::from_buffer(T::wrap(dx), x.shape()),
                Tensor::from_buffer(T::wrap(dw), &[dims[1]]),
                Tensor::from_buffer(T::wrap(db), &[dims[1]]),
            ]
        })
    }
    dispatch!(x.dtype(), T => run::<T>(x, w, gy, dims, mean, inv, act, ac))
}

/// `gy` passed back through the activation with tensor ops (recorded, linear in `gy`):
/// where the normalized value `a·x + c` is positive `gy`, elsewhere 0 or `slope·gy`.
fn gated(x: &Tensor, gy: &Tensor, act: Activation, ac: &[f64]) -> Result<Tensor> {
    let slope = match act {
        Activation::Identity => return Ok(gy.clone()),
        Activation::Relu => None,
        Activation::LeakyRelu(s) => Some(s),
    };
    let c = x.shape()[1];
    let mut stat = vec![1usize; x.rank()];
    stat[1] = c;
    let positive = {
        let _g = no_grad();
        let coef = |k: usize| -> Result<Tensor> {
            let v: Vec<f64> = ac.iter().skip(k).step_by(2).copied().collect();
            Tensor::from_vec(v, &stat)?.to_dtype(x.dtype())
        };
        let pre = x.detach().mul(&coef(0)?)?.add(&coef(1)?)?;
        pre.gt(&Tensor::zeros(&[], x.dtype()))?
    };
    let other = match slope {
        None => Tensor::zeros(&[], x.dtype()),
        Some(s) => gy.mul_scalar(s)?,
    };
    Tensor::where_cond(&positive, gy, &other)
}

/// The same gradients written with tensor ops, so they can be differentiated again:
/// `db = Σ gy`, `dw = Σ gy·x̂`, `dx = w·inv·(gy − db/cnt − x̂·dw/cnt)`.
fn composed_grad(x: &Tensor, w: &Tensor, gy: &Tensor, eps: f64) -> Result<[Tensor; 3]> {
    let red: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
    let c = x.shape()[1];
    let cnt = (x.numel() / c.max(1)) as f64;
    let mut stat = vec![1usize; x.rank()];
    stat[1] = c;
    let xc = x.sub(&x.mean(&red, true)?)?;
    let inv = xc.square()?.mean(&red, true)?.add_scalar(eps)?.powf(-0.5)?;
    let xhat = xc.mul(&inv)?;
    let db = gy.sum(&red, true)?;
    let dw = gy.mul(&xhat)?.sum(&red, true)?;
    let centred_gy = gy
        .sub(&db.mul_scalar(1.0 / cnt)?)?
        .sub(&xhat.mul(&dw)?.mul_scalar(1.0 / cnt)?)?;
    let dx = w.reshape(&stat)?.mul(&inv)?.mul(&centred_gy)?;
    Ok([dx, dw.reshape([c])?, db.reshape([c])?])
}

#[cfg(test)]
mod tests {
    use super::super::conv2d::recorded_grads;
    use crate::gradcheck::gradcheck;
    use crate::{grad, Activation, DType, Generator, Tensor};

    fn r(shape: &[usize], seed: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(seed))
    }

    /// The op composed from tensor ops, as a reference.
    fn composed(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Tensor {
        let red: Vec<isize> = (0..x.rank() as isize).filter(|&d| d != 1).collect();
        let mut stat = vec![1usize; x.rank()];
        stat[1] = x.shape()[1];
        let xc = x.sub(&x.mean(&red, true).unwrap()).unwrap();
        let var = xc.square().unwrap().mean(&red, true).unwrap();
        let y = xc.div(&var.add_scalar(eps).unwrap().sqrt().unwrap()).unwrap();
        y.mul(&w.reshape(&stat).unwrap())
            .unwrap()
            .add(&b.reshape(&stat).unwrap())
            .unwrap()
    }

    #[test]
    fn matches_the_composition_forward_and_backward() {
        // Small planes go row by row (one task; many column tasks, the last partial; over
        // threads), larger ones channel by channel (one task; over threads).
        let shapes = [
            &[4usize, 3, 5, 6][..],
            &[7, 2],
            &[3, 16, 40],
            &[3, 700, 5, 7],
            &[300, 260],
            &[2, 5, 64, 33],
            &[4, 40, 50, 40],
        ];
        for shape in shapes {
            let c = shape[1];
            let x = r(shape, 1)
                .mul_scalar(3.0)
                .unwrap()
                .add_scalar(2.0)
                .unwrap()
                .set_requires_grad(true);
            let w = r(&[c], 2).set_requires_grad(true);
            let b = r(&[c], 3).set_requires_grad(true);
            let gy = r(shape, 4);
            let (y, mean, var) = x.batch_norm_train(&w, &b, 1e-5).unwrap();
            let want = composed(&x, &w, &b, 1e-5);
            let close = |a: Vec<f64>, b: Vec<f64>, what: &str| {
                for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                    assert!(
                        (p - q).abs() < 1e-10 * (1.0 + q.abs()),
                        "{what} {shape:?} at {i}: {p} vs {q}"
                    );
                }
            };
            close(y.to_vec_f64(), want.to_vec_f64(), "y");
            let red: Vec<isize> = (0..shape.len() as isize).filter(|&d| d != 1).collect();
            close(mean.to_vec_f64(), x.mean(&red, false).unwrap().to_vec_f64(), "mean");
            close(var.to_vec_f64(), x.var(&red, false, false).unwrap().to_vec_f64(), "var");
            let got = grad(&[&y], Some(&[&gy]), &[&x, &w, &b], false).unwrap();
            let exp = grad(&[&want], Some(&[&gy]), &[&x, &w, &b], false).unwrap();
            for (what, (g, e)) in ["dx", "dw", "db"].iter().zip(got.iter().zip(&exp)) {
                close(g.as_ref().unwrap().to_vec_f64(), e.as_ref().unwrap().to_vec_f64(), what);
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let run = |shape: &[usize]| {
            let f = |t: Tensor| t.to_dtype(DType::F32).unwrap();
            let c = shape[1];
            let x = f(r(shape, 1)).set_requires_grad(true);
            let w = f(r(&[c], 2)).set_requires_grad(true);
            let (y, mean, var) = x.batch_norm_train(&w, &f(r(&[c], 3)), 1e-5).unwrap();
            let g = grad(&[&y], Some(&[&f(r(shape, 4))]), &[&x, &w], false).unwrap();
            let mut all = vec![y.to_vec_f32(), mean.to_vec_f32(), var.to_vec_f32()];
            all.extend(g.iter().map(|g| g.as_ref().unwrap().to_vec_f32()));
            all
        };
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for shape in [&[300usize, 260][..], &[4, 40, 50, 40]] {
            assert!(one.install(|| run(shape)) == three.install(|| run(shape)), "{shape:?}");
        }
    }

    #[test]
    fn f32_matches_f64_and_errors_name_the_problem() {
        let x = r(&[8, 4, 9, 9], 5);
        let (w, b) = (r(&[4], 6), r(&[4], 7));
        let (y64, ..) = x.batch_norm_train(&w, &b, 1e-5).unwrap();
        let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let (y32, ..) = f(&x).batch_norm_train(&f(&w), &f(&b), 1e-5).unwrap();
        for (a, b) in y32.to_vec_f64().iter().zip(y64.to_vec_f64()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let e = x.batch_norm_train(&r(&[3], 1), &b, 1e-5).unwrap_err().to_string();
        assert!(e.contains("batch_norm_train") && e.contains("weight"), "{e}");
        let e = r(&[1, 4], 1).batch_norm_train(&w, &b, 1e-5).unwrap_err().to_string();
        assert!(e.contains("more than 1 value"), "{e}");
        let e = r(&[4], 1).batch_norm_train(&w, &b, 1e-5).unwrap_err().to_string();
        assert!(e.contains("[N, C, ...]"), "{e}");
    }

    #[test]
    fn gradients_and_second_derivatives() {
        let (x, w, b) = (r(&[3, 2, 4], 1), r(&[2], 2), r(&[2], 3));
        gradcheck(
            |t| Ok(t[0].batch_norm_train(&t[1], &t[2], 1e-3)?.0),
            &[x.clone(), w.clone(), b.clone()],
        )
        .unwrap();
        // Through the gradient's own graph: d/d(x, w) of <∂L/∂x, v> + <∂L/∂w, q>, L = <y, u>.
        let (u, v, q) = (r(&[3, 2, 4], 4), r(&[3, 2, 4], 5), r(&[2], 6));
        gradcheck(
            |t| {
                let gs = recorded_grads(t, |t| t[0].batch_norm_train(&t[1], &b, 1e-3)?.0.mul(&u)?.sum_all())?;
                gs[0].mul(&v)?.sum_all()?.add(&gs[1].mul(&q)?.sum_all()?)
            },
            &[x, w],
        )
        .unwrap();
    }

    #[test]
    fn fused_activation_gives_the_two_ops_bits() {
        // Planes by rows (p < 64) and by channels; f32 as trained. The gradients of the
        // recorded path (create_graph) follow the composed formula: close, not bitwise.
        let f = |t: Tensor| t.to_dtype(DType::F32).unwrap();
        // [130, 40, 7, 7]: rows split into several column and row tasks.
        for shape in [
            &[4usize, 3, 5, 6][..],
            &[7, 2],
            &[2, 5, 64, 33],
            &[3, 4, 100],
            &[130, 40, 7, 7],
        ] {
            for act in [Activation::Relu, Activation::LeakyRelu(0.2)] {
                let c = shape[1];
                let x = f(r(shape, 1)).set_requires_grad(true);
                let w = f(r(&[c], 2)).set_requires_grad(true);
                let b = f(r(&[c], 3)).set_requires_grad(true);
                let gy = f(r(shape, 4));
                let (y, mean, var) = x.batch_norm_train_act(&w, &b, 1e-5, act).unwrap();
                let (y0, mean0, var0) = x.batch_norm_train(&w, &b, 1e-5).unwrap();
                let y0 = y0.activation(act).unwrap();
                assert_eq!(y.to_vec_f32(), y0.to_vec_f32(), "{act:?} {shape:?}");
                assert_eq!(
                    (mean.to_vec_f32(), var.to_vec_f32()),
                    (mean0.to_vec_f32(), var0.to_vec_f32())
                );
                for create_graph in [false, true] {
                    let got = grad(&[&y], Some(&[&gy]), &[&x, &w, &b], create_graph).unwrap();
                    let want = grad(&[&y0], Some(&[&gy]), &[&x, &w, &b], create_graph).unwrap();
                    for (g, e) in got.iter().zip(&want) {
                        let (g, e) = (g.as_ref().unwrap().to_vec_f32(), e.as_ref().unwrap().to_vec_f32());
                        if create_graph {
                            let ok = g.iter().zip(&e).all(|(p, q)| (p - q).abs() <= 1e-4 * (1.0 + q.abs()));
                            assert!(ok, "{act:?} {shape:?} recorded: {g:?} vs {e:?}");
                        } else {
                            assert_eq!(g, e, "{act:?} {shape:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fused_activation_gradients_and_second_derivatives() {
        for act in [Activation::Relu, Activation::LeakyRelu(0.2)] {
            let (x, w, b) = (r(&[3, 2, 4], 1), r(&[2], 2), r(&[2], 3));
            gradcheck(
                |t| Ok(t[0].batch_norm_train_act(&t[1], &t[2], 1e-3, act)?.0),
                &[x.clone(), w.clone(), b.clone()],
            )
            .unwrap();
            let (u, v, q) = (r(&[3, 2, 4], 4), r(&[3, 2, 4], 5), r(&[2], 6));
            gradcheck(
                |t| {
                    let gs = recorded_grads(t, |t| {
                        t[0].batch_norm_train_act(&t[1], &b, 1e-3, act)?.0.mul(&u)?.sum_all()
                    })?;
                    gs[0].mul(&v)?.sum_all()?.add(&gs[1].mul(&q)?.sum_all()?)
                },
                &[x, w],
            )
            .unwrap();
        }
    }
}
