//! Matrix product: 1-D, 2-D and batched with broadcast batch dims
//! (`[2,1,3,4] @ [5,4,6] -> [2,5,3,6]`), as `torch.matmul`.

use super::access::same_dtype;
use super::activation::gates_at_output;
use super::conv_act::Gate;
use crate::dtype::dispatch;
use crate::kernels::conv::activate;
use crate::kernels::matmul::{gemm_uninit, Mat, PAR_FLOPS};
use crate::shape::broadcast_shape;
use crate::{Activation, Element, Error, Result, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The raw product of two ≥2-D tensors with broadcast batch dims; records nothing.
fn product(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k) = (a.shape()[ra - 2], a.shape()[ra - 1]);
    let (k2, n) = (b.shape()[rb - 2], b.shape()[rb - 1]);
    if k != k2 {
        return Err(Error::shapes(
            "matmul",
            a.shape(),
            b.shape(),
            format!("inner dims differ: {k} vs {k2}"),
        ));
    }
    let batch = broadcast_shape("matmul", &a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
    let mut full_a = batch.clone();
    full_a.extend([m, k]);
    let mut full_b = batch.clone();
    full_b.extend([k, n]);
    let ea = a.detach().expand(&full_a)?;
    let eb = b.detach().expand(&full_b)?;
    let mut out_shape = batch.clone();
    out_shape.extend([m, n]);
    fn run<T: Element>(
        ea: &Tensor,
        eb: &Tensor,
        batch: &[usize],
        m: usize,
        k: usize,
        n: usize,
        out_shape: &[usize],
    ) -> Tensor {
        let nb: usize = batch.iter().product();
        let total = nb * m * n;
        // Filled by the products below (every element written), so not zeroed first.
        let mut out: Vec<T> = Vec::with_capacity(total);
        let spare = &mut out.spare_capacity_mut()[..total];
        let offsets = |t: &Tensor, i: usize| {
            let (mut off, mut r) = (t.layout().offset, i);
            for d in (0..batch.len()).rev() {
                off += (r % batch[d]) * t.strides()[d];
                r /= batch[d];
            }
            off
        };
        let rank = batch.len() + 2;
        let (ga, gb) = (ea.read(), eb.read());
        let da = T::slice(&ga).expect("dtype checked");
        let db = T::slice(&gb).expect("dtype checked");
        let (sa, sb) = (ea.strides(), eb.strides());
        let one = |i: usize, dst: &mut [MaybeUninit<T>], threads: usize| {
            let a = Mat {
                data: da,
                rs: sa[rank - 2],
                cs: sa[rank - 1],
                offset: offsets(ea, i),
            };
            let b = Mat {
                data: db,
                rs: sb[rank - 2],
                cs: sb[rank - 1],
                offset: offsets(eb, i),
            };
            gemm_uninit(m, n, k, a, b, dst, None, threads);
        };
        let threads = rayon::current_num_threads();
        if nb > 1 && m * n * k < PAR_FLOPS && nb * m * n * k >= PAR_FLOPS {
            // Many small products: one per thread rather than threads inside each.
            spare
                .par_chunks_mut((m * n).max(1))
                .enumerate()
                .for_each(|(i, d)| one(i, d, 1));
        } else {
            spare
                .chunks_mut((m * n).max(1))
                .enumerate()
                .take(nb)
                .for_each(|(i, d)| one(i, d, threads));
        }
        // SAFETY: the nb products above wrote all nb·m·n elements.
        unsafe { out.set_len(total) };
        drop((ga, gb));
        Tensor::from_buffer(T::wrap(out), out_shape)
    }
    Ok(dispatch!(a.dtype(), T => run::<T>(&ea, &eb, &batch, m, k, n, &out_shape)))
}

/// Whether `t` is a 2-D view whose columns are contiguous (a transposed matrix).
fn is_transposed_2d(t: &Tensor) -> bool {
    t.rank() == 2 && t.strides()[0] == 1 && t.shape()[0] > 1 && t.shape()[1] > 1
}

impl Tensor {
    /// Matrix product with `torch.matmul`'s rules: a 1-D operand is a vector (its dim
    /// is removed from the result); batch dims broadcast.
    pub fn matmul(&self, other: &Tensor) -> Result<Tensor> {
        same_dtype("matmul", self, other)?;
        if self.rank() == 0 || other.rank() == 0 {
            return Err(Error::shapes(
                "matmul",
                self.shape(),
                other.shape(),
                "both operands need at least 1 dim",
            ));
        }
        if self.rank() == 1 && other.rank() == 1 {
            if self.shape() != other.shape() {
                return Err(Error::shapes(
                    "matmul",
                    self.shape(),
                    other.shape(),
                    "dot product of vectors of different lengths",
                ));
            }
            return self.mul(other)?.sum_all();
        }
        if self.rank() == 1 {
            return self.unsqueeze(0)?.matmul(other)?.squeeze(-2);
        }
        if other.rank() == 1 {
            return self.matmul(&other.unsqueeze(1)?)?.squeeze(-1);
        }
        let out = product(self, other)?;
        let (a, b) = (self.clone(), other.clone());
        Ok(out.record("matmul", &[self, other], move |g, needs| {
            // A 2-D operand that is a transposed view (a Linear layer's `W^T`) gets its
            // gradient computed transposed, so that undoing the view yields row-major
            // storage: the optimizer then reads it without a transposing copy.
            let ga = if !needs[0] {
                None
            } else if is_transposed_2d(&a) {
                Some(b.matmul(&g.transpose(-1, -2)?)?.transpose(-1, -2)?.sum_to(a.shape())?)
            } else {
                Some(g.matmul(&b.transpose(-1, -2)?)?.sum_to(a.shape())?)
            };
            let gb = if !needs[1] {
                None
            } else if is_transposed_2d(&b) {
                Some(g.transpose(-1, -2)?.matmul(&a)?.transpose(-1, -2)?.sum_to(b.shape())?)
            } else {
                Some(a.transpose(-1, -2)?.matmul(g)?.sum_to(b.shape())?)
            };
            Ok(vec![ga, gb])
        }))
    }
}

/// `x · wᵀ (+ bias)` for a 2-D `x` into a fresh `[rows, out]` tensor; records nothing.
/// Input features up to which an f32 `linear` multiplies rows of a transposed copy of the
/// weight (outer products along the outputs) instead of taking one dot product per output:
/// a dot of so few elements spends most of its time summing a vector's lanes (batch 128,
/// one thread: 16 → 1568 ran 0.23 ms by dots, 0.05 ms + 0.02 ms for the copy; 64 → 1568
/// 0.41 against 0.17 + 0.05 ms).
const SHORT_K: usize = 64;

/// The weight `w` (`[out, in]`, data `wd`) as a row-major `[in, out]` copy, where that
/// pays ([`SHORT_K`]): f32, contiguous, at least as many rows as inputs (the copy is
/// small against the product).
fn short_transposed<T: Element>(wd: &[T], w: &Tensor, rows: usize) -> Option<Vec<T>> {
    let [out_f, k] = *w.shape() else { return None };
    let f32 = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>();
    if !f32 || k > SHORT_K || rows < k || w.strides() != [k, 1] {
        return None;
    }
    let src = &wd[w.layout().offset..][..out_f * k];
    let mut t = vec![T::ZERO; k * out_f];
    for (o, row) in src.chunks_exact(k).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            t[i * out_f + o] = v;
        }
    }
    Some(t)
}

fn linear_raw(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, act: Activation) -> Tensor {
    fn run<T: Element>(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, act: Activation) -> Tensor {
        let (rows, k, out_f) = (x.shape()[0], x.shape()[1], w.shape()[0]);
        let total = rows * out_f;
        let mut out: Vec<T> = Vec::with_capacity(total);
        let bias = bias.map(|b| b.to_vec::<T>().expect("dtype checked"));
        let (gx, gw) = (x.read(), w.read());
        let a = Mat {
            data: T::slice(&gx).expect("dtype checked"),
            rs: x.strides()[0],
            cs: x.strides()[1],
            offset: x.layout().offset,
        };
        let wd = T::slice(&gw).expect("dtype checked");
        let wt = short_transposed(wd, w, rows);
        let b = match &wt {
            Some(t) => Mat {
                data: t,
                rs: out_f,
                cs: 1,
                offset: 0,
            },
            // wᵀ as a strided view: [in, out] with w's strides swapped.
            None => Mat {
                data: wd,
                rs: w.strides()[1],
                cs: w.strides()[0],
                offset: w.layout().offset,
            },
        };
        let threads = rayon::current_num_threads();
        gemm_uninit(
            rows,
            out_f,
            k,
            a,
            b,
            &mut out.spare_capacity_mut()[..total],
            bias.as_deref(),
            threads,
        );
        // SAFETY: the product wrote all rows·out elements.
        unsafe { out.set_len(total) };
        drop((gx, gw));
        activate(&mut out, act);
        Tensor::from_buffer(T::wrap(out), &[rows, out_f])
    }
    dispatch!(x.dtype(), T => run::<T>(x, w, bias, act))
}

impl Tensor {
    /// A fully connected layer, `x · weightᵀ + bias` over the last dim of `x`
    /// (`[.., in]` with weight `[out, in]` and bias `[out]` → `[.., out]`), as
    /// `torch.nn.functional.linear`. One product with the bias as its starting value,
    /// rather than a product and a broadcast add; the weight's gradient comes back
    /// row-major, as the optimizer reads it.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.linear_act(weight, bias, Activation::Identity)
    }

    /// [`Tensor::linear`] followed by `act` as one op: what `linear(..)?.activation(act)`
    /// gives, values and gradients, with the activation applied to the product in place
    /// and the gradient gated by the output's sign (as [`Tensor::conv2d_act`]).
    pub fn linear_act(&self, weight: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
        if !gates_at_output(act) {
            return self.linear(weight, bias)?.activation(act);
        }
        same_dtype("linear", self, weight)?;
        if let Some(b) = bias {
            same_dtype("linear", self, b)?;
        }
        let (out_f, in_f) = match *weight.shape() {
            [o, i] => (o, i),
            _ => {
                return Err(Error::shapes(
                    "linear",
                    self.shape(),
                    weight.shape(),
                    "weight must be [out, in]",
                ))
            }
        };
        if self.rank() == 0 || self.shape()[self.rank() - 1] != in_f {
            return Err(Error::shapes(
                "linear",
                self.shape(),
                weight.shape(),
                format!("input's last dim must be the weight's {in_f} input features"),
            ));
        }
        if let Some(b) = bias {
            if b.shape() != [out_f] {
                return Err(Error::shapes(
                    "linear",
                    b.shape(),
                    weight.shape(),
                    format!("bias must be [{out_f}]"),
                ));
            }
        }
        if self.rank() != 2 {
            // Leading dims fold into rows and come back after.
            let mut shape = self.shape().to_vec();
            let rows = shape[..shape.len() - 1].iter().product::<usize>();
            let y = self.reshape(&[rows, in_f][..])?.linear_act(weight, bias, act)?;
            *shape.last_mut().expect("rank ≥ 1") = out_f;
            return y.reshape(&shape[..]);
        }
        let out = linear_raw(self, weight, bias, act);
        let gate = Gate::new(&out, act);
        let (x, w) = (self.clone(), weight.clone());
        let mut inputs = vec![self, weight];
        inputs.extend(bias);
        Ok(out.record(gate.name("linear"), &inputs, move |g, needs| {
            let g = &gate.apply(g)?;
            let gx = if needs[0] { Some(g.matmul(&w)?) } else { None };
            // gᵀ·x is [out, in] row-major: the weight's own layout.
            let gw = if needs[1] { Some(g.t()?.matmul(&x)?) } else { None };
            let gb = match needs.get(2) {
                Some(true) => Some(g.sum(&[0], false)?),
                _ => None,
            };
            let mut grads = vec![gx, gw];
            if needs.len() > 2 {
                grads.push(gb);
            }
            Ok(grads)
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::{DType, Generator, Tensor};

    fn r(shape: &[usize], s: u64) -> Tensor {
        Tensor::randn(shape, DType::F64, &mut Generator::new(s))
    }

    /// Naive reference: out[b,i,j] = Σ_k a[b,i,k] b[b,k,j] over contiguous 3-D inputs.
    fn naive(a: &[f64], b: &[f64], nb: usize, m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut o = vec![0.0; nb * m * n];
        for bi in 0..nb {
            for i in 0..m {
                for j in 0..n {
                    o[bi * m * n + i * n + j] = (0..k)
                        .map(|p| a[bi * m * k + i * k + p] * b[bi * k * n + p * n + j])
                        .sum();
                }
            }
        }
        o
    }

    #[test]
    fn batched_broadcast_shape_and_values() {
        let a = r(&[2, 1, 3, 4], 1);
        let b = r(&[5, 4, 6], 2);
        let c = a.matmul(&b).unwrap();
        assert_eq!(c.shape(), &[2, 5, 3, 6]);
        let ae = a.expand([2, 5, 3, 4]).unwrap().to_vec::<f64>().unwrap();
        let be = b.expand([2, 5, 4, 6]).unwrap().to_vec::<f64>().unwrap();
        let want = naive(&ae, &be, 10, 3, 4, 6);
        for (x, y) in c.to_vec::<f64>().unwrap().iter().zip(&want) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn vectors_and_errors() {
        let m = r(&[3, 4], 3);
        let v = r(&[4], 4);
        assert_eq!(m.matmul(&v).unwrap().shape(), &[3]);
        assert_eq!(v.matmul(&m.t().unwrap()).unwrap().shape(), &[3]);
        assert_eq!(v.matmul(&v).unwrap().shape(), &[] as &[usize]);
        let e = m.matmul(&m).unwrap_err().to_string();
        assert!(
            e.contains("matmul") && e.contains("[3, 4]") && e.contains("inner"),
            "{e}"
        );
    }

    #[test]
    fn large_matches_naive() {
        let a = r(&[1, 130, 70], 5);
        let b = r(&[1, 70, 90], 6);
        let c = a.matmul(&b).unwrap().to_vec::<f64>().unwrap();
        let want = naive(&a.to_vec::<f64>().unwrap(), &b.to_vec::<f64>().unwrap(), 1, 130, 70, 90);
        assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-9));
    }

    #[test]
    fn transposed_operands_get_row_major_gradients() {
        // y = x Wᵀ as a Linear layer computes it: W's gradient comes back row-major.
        let x = r(&[5, 3], 1);
        let w = r(&[4, 3], 2).set_requires_grad(true);
        let g = x
            .matmul(&w.t().unwrap())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&w).unwrap().is_contiguous());
        gradcheck(|t| t[0].matmul(&t[1].t()?), &[r(&[5, 3], 1), r(&[4, 3], 2)]).unwrap();
        gradcheck(|t| t[0].t()?.matmul(&t[1]), &[r(&[3, 5], 1), r(&[3, 4], 2)]).unwrap();
        gradcheck(|t| t[0].matmul(&t[1].t()?), &[r(&[2, 5, 3], 1), r(&[4, 3], 2)]).unwrap();
        gradcheck(|t| t[1].t()?.matmul(&t[0]), &[r(&[2, 5, 3], 1), r(&[5, 4], 2)]).unwrap();
    }

    #[test]
    fn gradients() {
        gradcheck(|t| t[0].matmul(&t[1]), &[r(&[2, 1, 3, 4], 1), r(&[5, 4, 6], 2)]).unwrap();
        gradcheck(|t| t[0].matmul(&t[1]), &[r(&[3, 4], 1), r(&[4], 2)]).unwrap();
        // a transposed (non-contiguous) operand gives the same as its contiguous copy
        let a = r(&[4, 3], 7);
        let b = r(&[4, 2], 8);
        let x = a.t().unwrap().matmul(&b).unwrap().to_vec::<f64>().unwrap();
        let y = a
            .t()
            .unwrap()
            .contiguous()
            .unwrap()
            .matmul(&b)
            .unwrap()
            .to_vec::<f64>()
            .unwrap();
        assert_eq!(x, y);
    }

    #[test]
    fn linear_matches_matmul_plus_bias_with_gradients() {
        let (x, w, b) = (r(&[5, 3], 1), r(&[4, 3], 2), r(&[4], 3));
        let y = x.linear(&w, Some(&b)).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap().add(&b).unwrap();
        let (y, want) = (y.to_vec::<f64>().unwrap(), want.to_vec::<f64>().unwrap());
        assert!(y.iter().zip(&want).all(|(p, q)| (p - q).abs() < 1e-12));
        gradcheck(|t| t[0].linear(&t[1], Some(&t[2])), &[x.clone(), w.clone(), b.clone()]).unwrap();
        gradcheck(|t| t[0].linear(&t[1], None), &[x.clone(), w.clone()]).unwrap();
        // leading dims, a transposed input and a transposed weight
        gradcheck(
            |t| t[0].linear(&t[1], Some(&t[2])),
            &[r(&[2, 3, 3], 4), w.clone(), b.clone()],
        )
        .unwrap();
        gradcheck(
            |t| t[0].t()?.linear(&t[1].t()?, Some(&t[2])),
            &[r(&[3, 5], 5), r(&[3, 4], 6), b.clone()],
        )
        .unwrap();
        let ws = w.set_requires_grad(true);
        let g = x.linear(&ws, Some(&b)).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(g.get(&ws).unwrap().is_contiguous());
    }

    #[test]
    fn linear_second_derivatives() {
        // Through the gradient's own graph: d/d(x, w, b) of <∂L/∂x, v> + <∂L/∂w, u> with a
        // loss that is not linear in the output (a WGAN-GP critic's penalty does this).
        let (x, w, b) = (r(&[3, 4], 1), r(&[2, 4], 2), r(&[2], 3));
        let (v, u) = (r(&[3, 4], 4), r(&[2, 4], 5));
        gradcheck(
            |t| {
                let loss = |t: &[Tensor]| t[0].linear(&t[1], Some(&t[2]))?.tanh()?.sum_all();
                let gs = crate::ops::conv2d::recorded_grads(t, loss)?;
                gs[0].mul(&v)?.sum_all()?.add(&gs[1].mul(&u)?.sum_all()?)
            },
            &[x, w, b],
        )
        .unwrap();
    }

    #[test]
    fn linear_f32_matches_f64_and_errors_name_shapes() {
        let (x, w, b) = (r(&[64, 784], 7), r(&[10, 784], 8), r(&[10], 9));
        let want = x.linear(&w, Some(&b)).unwrap().to_vec::<f64>().unwrap();
        let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let got = f(&x).linear(&f(&w), Some(&f(&b))).unwrap().to_vec_f64();
        assert!(
            got.iter().zip(&want).all(|(p, q)| (p - q).abs() < 1e-3),
            "f32 kernel drifted"
        );
        let e = x.linear(&r(&[10, 5], 1), None).unwrap_err().to_string();
        assert!(
            e.contains("linear") && e.contains("[64, 784]") && e.contains("[10, 5]"),
            "{e}"
        );
        let e = x.linear(&w, Some(&r(&[3], 1))).unwrap_err().to_string();
        assert!(e.contains("bias must be [10]"), "{e}");
    }

    #[test]
    fn short_inputs_match_f64_through_the_transposed_weight() {
        // Few input features (the transposed copy of the weight, contiguous or a view of a
        // wider one) and many (the strided view): f32 within rounding of f64.
        let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let wide = r(&[40, 24], 3);
        for (x, w) in [
            (r(&[128, 16], 1), r(&[300, 16], 2)),
            (r(&[33, 7], 4), r(&[65, 7], 5)),
            (r(&[20, 16], 6), wide.narrow(1, 4, 16).unwrap()),
            (r(&[5, 16], 7), r(&[9, 16], 8)),
            (r(&[70, 65], 9), r(&[31, 65], 10)),
        ] {
            let b = r(&[w.shape()[0]], 11);
            let want = x.linear(&w, Some(&b)).unwrap().to_vec::<f64>().unwrap();
            let got = f(&x).linear(&f(&w), Some(&f(&b))).unwrap().to_vec_f64();
            let ok = got
                .iter()
                .zip(&want)
                .all(|(p, q)| (p - q).abs() < 1e-4 * (1.0 + q.abs()));
            assert!(ok, "{:?} x {:?}", x.shape(), w.shape());
        }
    }

    #[test]
    fn linear_act_is_linear_then_the_activation() {
        use crate::{grad, Activation};
        let bits = |t: &Tensor| t.to_vec_f64().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let acts = [
            Activation::Relu,
            Activation::LeakyRelu(0.2),
            Activation::LeakyRelu(-0.5),
        ];
        for dtype in [DType::F32, DType::F64] {
            for (xs, o) in [(&[128, 16][..], 200), (&[3, 5, 40][..], 9)] {
                let leaf = |shape: &[usize], s| r(shape, s).to_dtype(dtype).unwrap().set_requires_grad(true);
                let (x, w, b) = (leaf(xs, 1), leaf(&[o, xs[xs.len() - 1]], 2), leaf(&[o], 3));
                for act in acts {
                    let y = x.linear_act(&w, Some(&b), act).unwrap();
                    let y0 = x.linear(&w, Some(&b)).unwrap().activation(act).unwrap();
                    assert_eq!(bits(&y), bits(&y0), "{act:?} {xs:?}");
                    let gy = r(y.shape(), 4).to_dtype(dtype).unwrap();
                    for create_graph in [false, true] {
                        let got = grad(&[&y], Some(&[&gy]), &[&x, &w, &b], create_graph).unwrap();
                        let want = grad(&[&y0], Some(&[&gy]), &[&x, &w, &b], create_graph).unwrap();
                        for (g, e) in got.iter().zip(&want) {
                            assert_eq!(bits(g.as_ref().unwrap()), bits(e.as_ref().unwrap()), "{act:?} {xs:?}");
                        }
                    }
                }
            }
        }
        // Differentiable twice through the gate.
        let (x, w, b) = (r(&[4, 3], 5), r(&[5, 3], 6), r(&[5], 7));
        gradcheck(
            |t| {
                let loss = |t: &[Tensor]| {
                    t[0].linear_act(&t[1], Some(&t[2]), Activation::Relu)?
                        .square()?
                        .sum_all()
                };
                Ok(crate::ops::conv2d::recorded_grads(t, loss)?[1].clone())
            },
            &[x, w, b],
        )
        .unwrap();
    }
}
