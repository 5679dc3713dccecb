//! One LSTM layer (one direction) over a whole sequence as one op:
//! `lstm_seq(xg, h0, c0, W_hh) → (outputs, h_T, c_T)` with `xg = x·W_ihᵀ + b_ih + b_hh`
//! computed by the caller for all steps at once.
//!
//! Step by step (a product, an add and [`Tensor::lstm_cell`] per step) every step leaves
//! graph nodes, fresh buffers and, backward, a product for `W_hh`'s gradient per step.
//! Here the forward pass runs all steps in one call into preallocated buffers, and the
//! backward pass runs back through time in one call: per step the fused gate gradients
//! and one product for the hidden state's gradient, then `W_hh`'s gradient over the whole
//! sequence as one large product. When a graph of the backward pass is wanted
//! (`create_graph`), the same backward through time is built from tensor ops instead (the
//! steps recomputed with `matmul` and `lstm_cell`), so it is differentiable again.
//!
//! ```
//! use nabla_core::{DType, Tensor};
//! let (t, n, h) = (3, 2, 4);
//! let xg = Tensor::zeros(&[t, n, 4 * h], DType::F32);
//! let (h0, c0) = (Tensor::zeros(&[n, h], DType::F32), Tensor::ones(&[n, h], DType::F32));
//! let w_hh = Tensor::zeros(&[4 * h, h], DType::F32);
//! let (y, h_t, c_t) = Tensor::lstm_seq(&xg, &h0, &c0, &w_hh, None, false)?;
//! assert_eq!(y.shape(), &[3, 2, 4]);
//! // All gates σ(0) = 0.5 and tanh(0) = 0: the cell state halves each step.
//! assert!((c_t.to_vec::<f32>()?[0] - 0.125).abs() < 1e-6);
//! assert_eq!(h_t.shape(), &[2, 4]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use super::access::{same_dtype, with_data};
use crate::autograd::is_grad_enabled;
use crate::dtype::dispatch;
use crate::kernels::lstm_seq::{self as kernel, Dims, Saved};
use crate::{Element, Error, Result, Tensor};

const OP: &str = "lstm_seq";

/// The shapes: `xg` `[T, N, 4H]`, `h0` and `c0` `[N, H]`, `W_hh` `[4H, H]`; lengths one per
/// sequence in 1..=T and only forward in time.
fn check(xg: &Tensor, h0: &Tensor, c0: &Tensor, w: &Tensor, lengths: Option<&[usize]>, reverse: bool) -> Result<Dims> {
    for t in [h0, c0, w] {
        same_dtype(OP, xg, t)?;
    }
    let [g4, h] = *w.shape() else {
        return Err(Error::shapes(OP, xg.shape(), w.shape(), "W_hh must be [4H, H]"));
    };
    if g4 != 4 * h || h == 0 {
        return Err(Error::shapes(
            OP,
            xg.shape(),
            w.shape(),
            format!("W_hh must be [4H, H] with H ≥ 1, got {:?}", w.shape()),
        ));
    }
    let [t, n, g] = *xg.shape() else {
        return Err(Error::shapes(
            OP,
            xg.shape(),
            w.shape(),
            format!("xg must be [T, N, 4H] = [T, N, {g4}]"),
        ));
    };
    if g != g4 || t == 0 || n == 0 {
        return Err(Error::shapes(
            OP,
            xg.shape(),
            w.shape(),
            format!("xg must be [T, N, 4H] = [T, N, {g4}] with T, N ≥ 1"),
        ));
    }
    for (what, s) in [("h0", h0), ("c0", c0)] {
        if s.shape() != [n, h] {
            return Err(Error::shapes(
                OP,
                s.shape(),
                xg.shape(),
                format!("{what} must be [N, H] = [{n}, {h}]"),
            ));
        }
    }
    if let Some(l) = lengths {
        if reverse {
            return Err(Error::invalid(
                OP,
                "lengths with reverse: reverse each sequence within its length and run forward",
            ));
        }
        if l.len() != n {
            return Err(Error::invalid(OP, format!("{} lengths for a batch of {n}", l.len())));
        }
        if let Some((i, &v)) = l.iter().enumerate().find(|(_, &v)| v == 0 || v > t) {
            return Err(Error::invalid(
                OP,
                format!("length {v} of sequence {i} is outside 1..={t}"),
            ));
        }
    }
    Ok(Dims { t, n, h, reverse })
}

/// The saved buffers as tensors, so the (non-generic) backward rule can hold them.
struct Kept {
    act: Tensor,
    h_prev: Tensor,
    c_prev: Tensor,
    tc: Tensor,
}

fn forward<T: Element>(d: Dims, ins: [&Tensor; 4], lengths: Option<&[usize]>) -> Result<(Tensor, Kept)> {
    let threads = rayon::current_num_threads();
    let (out, s) = with_data(OP, &ins, |s: &[&[T]]| {
        kernel::forward(d, s[0], s[1], s[2], s[3], lengths, threads)
    })?;
    let (nh, g) = ([d.t, d.n, d.h], [d.t, d.n, 4 * d.h]);
    let wrap = |v: Vec<T>, shape: &[usize]| Tensor::from_buffer(T::wrap(v), shape);
    Ok((
        wrap(out, &[d.t + 2, d.n, d.h]),
        Kept {
            act: wrap(s.act, &g),
            h_prev: wrap(s.h_prev, &nh),
            c_prev: wrap(s.c_prev, &nh),
            tc: wrap(s.tc, &nh),
        },
    ))
}

fn backward_fused<T: Element>(
    d: Dims,
    g: &Tensor,
    k: &Kept,
    w: &Tensor,
    lengths: Option<&[usize]>,
    want_w: bool,
) -> Result<[Tensor; 4]> {
    let threads = rayon::current_num_threads();
    let ins = [g, &k.act, &k.h_prev, &k.c_prev, &k.tc, w];
    let r = with_data("lstm_seq_backward", &ins, |s: &[&[T]]| {
        let saved = Saved {
            act: s[1],
            h_prev: s[2],
            c_prev: s[3],
            tc: s[4],
        };
        kernel::backward(d, s[0], &saved, s[5], lengths, want_w, threads)
    })?;
    let wrap = |v: Vec<T>, shape: &[usize]| Tensor::from_buffer(T::wrap(v), shape);
    let dw = match r.w_hh {
        Some(v) => wrap(v, w.shape()),
        None => Tensor::zeros(w.shape(), w.dtype()),
    };
    Ok([
        wrap(r.xg, &[d.t, d.n, 4 * d.h]),
        wrap(r.h0, &[d.n, d.h]),
        wrap(r.c0, &[d.n, d.h]),
        dw,
    ])
}

/// The layer step by step in tensor ops, with what each step started from (by time):
/// the pre-activation gates, `h`, `c` and the step's mask (`[N, 1]`, 1 while running).
struct Unrolled {
    // Read by the tests' reference; the backward pass needs only the per-step pieces.
    #[cfg_attr(not(test), allow(dead_code))]
    packed: Tensor,
    gates: Vec<Tensor>,
    h_prev: Vec<Tensor>,
    c_prev: Vec<Tensor>,
    masks: Vec<Option<Tensor>>,
}

fn unroll(
    xg: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    w: &Tensor,
    lengths: Option<&[usize]>,
    reverse: bool,
) -> Result<Unrolled> {
    let (t_len, n) = (xg.shape()[0], xg.shape()[1]);
    let wt = w.t()?;
    let (mut h, mut c) = (h0.clone(), c0.clone());
    let mut by_time: Vec<Option<(Tensor, Tensor, Tensor, Tensor)>> = vec![None; t_len];
    let mut masks = vec![None; t_len];
    for s in 0..t_len {
        let t = if reverse { t_len - 1 - s } else { s };
        let gates = xg.narrow(0, t, 1)?.squeeze(0)?.add(&h.matmul(&wt)?)?;
        let (hn, cn) = Tensor::lstm_cell(&gates, &c)?;
        let (y, h2, c2) = match lengths.filter(|l| l.iter().any(|&v| v <= t)) {
            Some(l) => {
                let m: Vec<f64> = l.iter().map(|&v| f64::from(u8::from(v > t))).collect();
                let m = Tensor::from_vec(m, &[n, 1])?.to_dtype(xg.dtype())?;
                let r = (
                    hn.mul(&m)?,
                    Tensor::where_cond(&m, &hn, &h)?,
                    Tensor::where_cond(&m, &cn, &c)?,
                );
                masks[t] = Some(m);
                r
            }
            None => (hn.clone(), hn, cn),
        };
        by_time[t] = Some((y, gates, h, c));
        (h, c) = (h2, c2);
    }
    let (mut ys, mut gates, mut h_prev, mut c_prev) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (y, g, hp, cp) in by_time.into_iter().map(|v| v.expect("every step ran")) {
        ys.push(y);
        gates.push(g);
        h_prev.push(hp);
        c_prev.push(cp);
    }
    let y = Tensor::stack(&ys.iter().collect::<Vec<_>>(), 0)?;
    let packed = Tensor::cat(&[&y, &h.unsqueeze(0)?, &c.unsqueeze(0)?], 0)?;
    Ok(Unrolled {
        packed,
        gates,
        h_prev,
        c_prev,
        masks,
    })
}

/// The layer step by step in tensor ops (`matmul`, `lstm_cell`, masks by `where_cond`),
/// packed as the op's output `[T + 2, N, H]`: the reference the op is tested against.
#[cfg(test)]
pub(crate) fn unrolled(
    xg: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    w: &Tensor,
    lengths: Option<&[usize]>,
    reverse: bool,
) -> Result<Tensor> {
    Ok(unroll(xg, h0, c0, w, lengths, reverse)?.packed)
}

/// The backward pass in tensor ops, for a graph of it (`create_graph`): the steps
/// recomputed from the inputs, then back through time with the cell's gradient formulas
/// (`lstm_cell`'s, in tensor ops) and `W_hh`'s gradient as one product, as the kernel does.
fn backward_ops(
    g: &Tensor,
    ins: &[Tensor; 4],
    lengths: Option<&[usize]>,
    reverse: bool,
    needs: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let [xg, h0, c0, w] = ins;
    let (t_len, n, g4) = (xg.shape()[0], xg.shape()[1], xg.shape()[2]);
    let u = unroll(xg, h0, c0, w, lengths, reverse)?;
    let part = |i: usize| g.narrow(0, i, 1)?.squeeze(0);
    let (mut dh, mut dc) = (part(t_len)?, part(t_len + 1)?);
    let mut dgates: Vec<Option<Tensor>> = vec![None; t_len];
    for s in (0..t_len).rev() {
        let t = if reverse { t_len - 1 - s } else { s };
        let m = u.masks[t].as_ref();
        let gy = part(t)?;
        // An ended row's output was a constant zero: its gradient goes nowhere.
        let total = dh.add(&m.map_or(Ok(gy.clone()), |m| gy.mul(m))?)?;
        let both = Tensor::stack(&[&total, &dc], 0)?;
        let (dg, dcp) = super::lstm_cell::backward_ops(&both, &u.gates[t], &u.c_prev[t])?;
        let (dg, dcp) = match m {
            // Ended rows kept their state: no gate gradient, the state's passes through.
            Some(m) => (dg.mul(m)?, Tensor::where_cond(m, &dcp, &dc)?),
            None => (dg, dcp),
        };
        let dhp = dg.matmul(w)?;
        dh = match m {
            Some(m) => Tensor::where_cond(m, &dhp, &total)?,
            None => dhp,
        };
        dc = dcp;
        dgates[t] = Some(dg);
    }
    let dgates: Vec<Tensor> = dgates.into_iter().map(|d| d.expect("every step ran")).collect();
    let dxg = Tensor::stack(&dgates.iter().collect::<Vec<_>>(), 0)?;
    let dw = if needs[3] {
        let hp = Tensor::stack(&u.h_prev.iter().collect::<Vec<_>>(), 0)?;
        let rows = |x: &Tensor, k: usize| x.reshape([t_len * n, k].as_slice());
        Some(rows(&dxg, g4)?.t()?.matmul(&rows(&hp, g4 / 4)?)?)
    } else {
        None
    };
    Ok(vec![
        needs[0].then_some(dxg),
        needs[1].then_some(dh),
        needs[2].then_some(dc),
        dw,
    ])
}

impl Tensor {
    /// One LSTM layer in one direction over a whole sequence. `xg` `[T, N, 4H]` is the
    /// input's share of the gates at every step (`x·W_ihᵀ + b_ih + b_hh`, PyTorch's gate
    /// order i, f, g, o), `h0`, `c0` `[N, H]` the initial states and `w_hh` `[4H, H]`.
    /// Returns the outputs `[T, N, H]` and the final `h` and `c` `[N, H]`. With `reverse`
    /// the steps run from `T − 1` down to 0 (outputs stay in time order). With `lengths`
    /// (one per sequence, in 1..=T; forward only) a sequence stops at its length: its
    /// state is kept from there on and its outputs are zero, as PyTorch's packed sequences.
    pub fn lstm_seq(
        xg: &Tensor,
        h0: &Tensor,
        c0: &Tensor,
        w_hh: &Tensor,
        lengths: Option<&[usize]>,
        reverse: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let d = check(xg, h0, c0, w_hh, lengths, reverse)?;
        let ins = [xg, h0, c0, w_hh];
        let (out, kept) = dispatch!(xg.dtype(), T => forward::<T>(d, ins, lengths)?);
        let graph_ins = [xg.clone(), h0.clone(), c0.clone(), w_hh.clone()];
        let w = w_hh.detach();
        let lens = lengths.map(<[usize]>::to_vec);
        let out = out.record(OP, &ins, move |g, needs| {
            let lengths = lens.as_deref();
            if is_grad_enabled() {
                return backward_ops(g, &graph_ins, lengths, d.reverse, needs);
            }
            let grads = dispatch!(g.dtype(), T => backward_fused::<T>(d, g, &kept, &w, lengths, needs[3])?);
            Ok(grads.into_iter().zip(needs).map(|(t, &n)| n.then_some(t)).collect())
        });
        let part = |i: usize| out.narrow(0, i, 1)?.squeeze(0);
        Ok((out.narrow(0, 0, d.t)?, part(d.t)?, part(d.t + 1)?))
    }
}

#[cfg(test)]
mod tests {
    use super::unrolled;
    use crate::autograd::enable_grad;
    use crate::gradcheck::gradcheck;
    use crate::{grad, DType, Generator, Tensor};

    /// Random inputs `[xg, h0, c0, w_hh]` needing gradients.
    fn inputs(t: usize, n: usize, h: usize, dtype: DType, seed: u64) -> Vec<Tensor> {
        let mut g = Generator::new(seed);
        [vec![t, n, 4 * h], vec![n, h], vec![n, h], vec![4 * h, h]]
            .iter()
            .map(|s| {
                Tensor::randn(s, dtype, &mut g)
                    .to_dtype(dtype)
                    .unwrap()
                    .set_requires_grad(true)
            })
            .collect()
    }

    fn packed(x: &[Tensor], lengths: Option<&[usize]>, reverse: bool) -> Tensor {
        let (y, h, c) = Tensor::lstm_seq(&x[0], &x[1], &x[2], &x[3], lengths, reverse).unwrap();
        Tensor::cat(&[&y, &h.unsqueeze(0).unwrap(), &c.unsqueeze(0).unwrap()], 0).unwrap()
    }

    #[track_caller]
    fn close(what: &str, a: &Tensor, b: &Tensor, tol: f64) {
        assert_eq!(a.shape(), b.shape(), "{what}");
        for (i, (p, q)) in a.to_vec_f64().iter().zip(b.to_vec_f64()).enumerate() {
            assert!((p - q).abs() <= tol * (1.0 + q.abs()), "{what}[{i}]: {p} vs {q}");
        }
    }

    /// Outputs, final states and the gradients of all four inputs against the step-by-step
    /// ops, under a loss weighting every output differently.
    fn against_steps(dtype: DType, t: usize, n: usize, h: usize, lengths: Option<&[usize]>, reverse: bool, tol: f64) {
        let x = inputs(t, n, h, dtype, 7 + t as u64);
        let a = packed(&x, lengths, reverse);
        let b = unrolled(&x[0], &x[1], &x[2], &x[3], lengths, reverse).unwrap();
        close("outputs", &a, &b, tol);
        let w = Tensor::randn(a.shape(), dtype, &mut Generator::new(3));
        let ga = a.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = b.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        for (name, p) in ["xg", "h0", "c0", "w_hh"].iter().zip(&x) {
            close(name, ga.get(p).unwrap(), gb.get(p).unwrap(), tol);
        }
    }

    #[test]
    fn matches_the_step_by_step_ops_both_ways_and_with_lengths() {
        against_steps(DType::F64, 5, 3, 4, None, false, 1e-12);
        against_steps(DType::F64, 5, 3, 4, None, true, 1e-12);
        against_steps(DType::F64, 5, 3, 4, Some(&[5, 2, 4]), false, 1e-12);
        against_steps(DType::F64, 1, 2, 3, Some(&[1, 1]), false, 1e-12);
        // f32 through the vectorized cell and the AVX kernels, at a width that has edge tiles.
        against_steps(DType::F32, 6, 5, 19, None, true, 2e-5);
        against_steps(DType::F32, 6, 5, 19, Some(&[3, 6, 1, 6, 2]), false, 2e-5);
    }

    #[test]
    fn gradcheck_first_and_second_order() {
        for (lengths, reverse) in [(None, false), (None, true), (Some(vec![3usize, 1]), false)] {
            let x: Vec<Tensor> = inputs(3, 2, 2, DType::F64, 11).iter().map(Tensor::detach).collect();
            let l = lengths.clone();
            gradcheck(|t| Ok(packed(t, l.as_deref(), reverse)), &x).unwrap();
            // The backward built as a graph (create_graph) is itself right: check its gradient.
            let l = lengths.clone();
            gradcheck(
                |t| {
                    let _on = enable_grad();
                    let v: Vec<Tensor> = t
                        .iter()
                        .map(|x| {
                            if x.requires_grad() {
                                x.clone()
                            } else {
                                x.set_requires_grad(true)
                            }
                        })
                        .collect();
                    let p = packed(&v, l.as_deref(), reverse);
                    let s = p.mul(&p)?.sum_all()?;
                    let d = grad(&[&s], None, &v.iter().collect::<Vec<_>>(), true)?;
                    let flat: Vec<Tensor> = d.into_iter().map(|g| g.unwrap().flatten(0, -1).unwrap()).collect();
                    Tensor::cat(&flat.iter().collect::<Vec<_>>(), 0)
                },
                &x,
            )
            .unwrap();
        }
    }

    #[test]
    fn bad_shapes_and_lengths_are_named() {
        let z = |s: &[usize]| Tensor::zeros(s, DType::F32);
        let (xg, s, w) = (z(&[3, 2, 8]), z(&[2, 2]), z(&[8, 2]));
        let err = |xg: &Tensor, h0: &Tensor, c0: &Tensor, w: &Tensor, l: Option<&[usize]>, r: bool| {
            Tensor::lstm_seq(xg, h0, c0, w, l, r).unwrap_err().to_string()
        };
        let m = err(&z(&[3, 2, 12]), &s, &s, &w, None, false);
        assert!(
            m.contains("lstm_seq") && m.contains("xg must be [T, N, 4H] = [T, N, 8]"),
            "{m}"
        );
        let m = err(&xg, &s, &s, &z(&[8, 3]), None, false);
        assert!(m.contains("W_hh must be [4H, H]"), "{m}");
        let m = err(&xg, &z(&[3, 2]), &s, &w, None, false);
        assert!(m.contains("h0 must be [N, H] = [2, 2]"), "{m}");
        let m = err(&xg, &s, &z(&[2, 3]), &w, None, false);
        assert!(m.contains("c0 must be [N, H] = [2, 2]"), "{m}");
        let m = err(&xg, &s, &s, &w, Some(&[3, 4]), false);
        assert!(m.contains("length 4 of sequence 1 is outside 1..=3"), "{m}");
        let m = err(&xg, &s, &s, &w, Some(&[3]), false);
        assert!(m.contains("1 lengths for a batch of 2"), "{m}");
        let m = err(&xg, &s, &s, &w, Some(&[3, 3]), true);
        assert!(m.contains("lengths with reverse"), "{m}");
        let m = err(&z(&[0, 2, 8]), &s, &s, &w, None, false);
        assert!(m.contains("T, N ≥ 1"), "{m}");
        let f64s = Tensor::zeros(&[2, 2], DType::F64);
        assert!(Tensor::lstm_seq(&xg, &f64s, &s, &w, None, false).is_err());
    }
}
