//! One LSTM layer (one direction) over a whole sequence, forward and backward through
//! time, as loops over slices: per step one product for the hidden state (into a
//! preallocated gate buffer) and the fused gate nonlinearities; backward per step the fused
//! gate gradients and one product for the hidden state's gradient, then the gradient of
//! `W_hh` over all steps as one large product.
//!
//! Layouts (row-major): the input's share of the gates `xg` `[T, N, 4H]` (PyTorch's gate
//! order i, f, g, o, biases folded in), the states `[N, H]`, `W_hh` `[4H, H]`. Everything
//! indexed by time is stored in time order also when the sequence runs backwards.

use super::elementwise::{vectorized, Loop};
use super::lstm_cell::{sigmoid, tanh};
use super::matmul::{gemm_init, Init, Mat};
use crate::{cpu, Element};
use std::any::TypeId;

/// Sequence length, batch and hidden size, and the direction the steps run in.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    /// Steps `T`.
    pub t: usize,
    /// Sequences `N`.
    pub n: usize,
    /// Hidden size `H`.
    pub h: usize,
    /// Whether the steps run from `T − 1` down to 0.
    pub reverse: bool,
}

impl Dims {
    /// The time of processing step `s`.
    fn time(&self, s: usize) -> usize {
        if self.reverse {
            self.t - 1 - s
        } else {
            s
        }
    }
}

/// What [`forward`] keeps for [`backward`], each indexed by time: the activated gates
/// `[T, N, 4H]`, the `h` and `c` each step started from `[T, N, H]` and `tanh(c')` `[T, N, H]`.
/// `V` is the storage: vectors from [`forward`], slices for [`backward`].
pub struct Saved<V> {
    /// σ(i), σ(f), tanh(g), σ(o) per step.
    pub act: V,
    /// The hidden state each step read.
    pub h_prev: V,
    /// The cell state each step read.
    pub c_prev: V,
    /// tanh of the new cell state.
    pub tc: V,
}

/// Rows of a step whose sequence has ended (`lengths[b] <= t`); empty without lengths.
fn ended(lengths: Option<&[usize]>, t: usize, out: &mut Vec<bool>) {
    out.clear();
    if let Some(l) = lengths {
        out.extend(l.iter().map(|&l| l <= t));
    }
}

/// The layer's forward pass from `h0`, `c0`: returns `[T + 2, N, H]` (the outputs, then the
/// final `h` and `c`) and what the backward pass needs. With `lengths` (forward direction
/// only), a sequence's state stops at its length and its outputs after it are zero.
pub fn forward<T: Element>(
    d: Dims,
    xg: &[T],
    h0: &[T],
    c0: &[T],
    w_hh: &[T],
    lengths: Option<&[usize]>,
    threads: usize,
) -> (Vec<T>, Saved<Vec<T>>) {
    let (n, h) = (d.n, d.h);
    let (nh, ng) = (n * h, n * 4 * h);
    // The gate buffer starts as the input's share; each step adds h·W_hhᵀ to its block
    // and the cell then overwrites it with the activated gates.
    let mut act = xg.to_vec();
    let mut h_prev = vec![T::ZERO; d.t * nh];
    let mut c_prev = vec![T::ZERO; d.t * nh];
    let mut tc = vec![T::ZERO; d.t * nh];
    let mut out = vec![T::ZERO; (d.t + 2) * nh];
    let (mut h_new, mut c_new) = (vec![T::ZERO; nh], vec![T::ZERO; nh]);
    let mut dead = Vec::new();
    // W_hhᵀ `[H, 4H]` copied once per call: row-major, it suits the outer-product kernel
    // (the strided view went to the dot kernel, at a third of the speed for these shapes).
    let mut w_t = vec![T::ZERO; 4 * h * h];
    for (r, row) in w_hh.chunks_exact(h).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            w_t[k * 4 * h + r] = v;
        }
    }
    let t0 = d.time(0);
    h_prev[t0 * nh..(t0 + 1) * nh].copy_from_slice(h0);
    c_prev[t0 * nh..(t0 + 1) * nh].copy_from_slice(c0);
    for s in 0..d.t {
        let t = d.time(s);
        let hp = Mat {
            data: &h_prev,
            rs: h,
            cs: 1,
            offset: t * nh,
        };
        let w = Mat {
            data: &w_t,
            rs: 4 * h,
            cs: 1,
            offset: 0,
        };
        let gates = &mut act[t * ng..(t + 1) * ng];
        gemm_init(n, 4 * h, h, hp, w, gates, Init::Accumulate, threads);
        let (cp, tct) = (&c_prev[t * nh..(t + 1) * nh], &mut tc[t * nh..(t + 1) * nh]);
        cell_forward(h, gates, cp, &mut h_new, &mut c_new, tct);
        let y = &mut out[t * nh..(t + 1) * nh];
        y.copy_from_slice(&h_new);
        ended(lengths, t, &mut dead);
        for (b, _) in dead.iter().enumerate().filter(|(_, &e)| e) {
            // Past its end a sequence keeps its state and outputs zeros.
            let r = b * h..(b + 1) * h;
            y[r.clone()].fill(T::ZERO);
            h_new[r.clone()].copy_from_slice(&h_prev[t * nh..][r.clone()]);
            c_new[r.clone()].copy_from_slice(&c_prev[t * nh..][r]);
        }
        let (hd, cd) = if s + 1 < d.t {
            let nt = d.time(s + 1);
            (&mut h_prev[nt * nh..(nt + 1) * nh], &mut c_prev[nt * nh..(nt + 1) * nh])
        } else {
            let (hs, cs) = out[d.t * nh..].split_at_mut(nh);
            (hs, cs)
        };
        hd.copy_from_slice(&h_new);
        cd.copy_from_slice(&c_new);
    }
    let saved = Saved {
        act,
        h_prev,
        c_prev,
        tc,
    };
    (out, saved)
}

/// What [`backward`] returns: the gradients of `xg`, `h0`, `c0` and (when asked) `W_hh`.
pub struct Grads<T> {
    /// `[T, N, 4H]`, also the gradient of the pre-activation gates.
    pub xg: Vec<T>,
    /// `[N, H]`.
    pub h0: Vec<T>,
    /// `[N, H]`.
    pub c0: Vec<T>,
    /// `[4H, H]`, when asked for.
    pub w_hh: Option<Vec<T>>,
}

/// Backward through time from the upstream gradient `g` `[T + 2, N, H]` (of the outputs,
/// the final `h`, the final `c`), with what [`forward`] kept.
#[allow(clippy::too_many_arguments)] // the layer's pieces, read best side by side
pub fn backward<T: Element>(
    d: Dims,
    g: &[T],
    saved: &Saved<&[T]>,
    w_hh: &[T],
    lengths: Option<&[usize]>,
    want_w: bool,
    threads: usize,
) -> Grads<T> {
    let (n, h) = (d.n, d.h);
    let (nh, ng) = (n * h, n * 4 * h);
    let mut dh = g[d.t * nh..(d.t + 1) * nh].to_vec();
    let mut dc = g[(d.t + 1) * nh..(d.t + 2) * nh].to_vec();
    let mut dxg = vec![T::ZERO; d.t * ng];
    let mut total = vec![T::ZERO; nh];
    let mut dead = Vec::new();
    for s in (0..d.t).rev() {
        let t = d.time(s);
        ended(lengths, t, &mut dead);
        // The output's gradient joins the one coming back from later steps (not for ended
        // rows: their output was a constant zero).
        for (k, (o, (&a, &b))) in total.iter_mut().zip(dh.iter().zip(&g[t * nh..])).enumerate() {
            *o = if dead.get(k / h).copied().unwrap_or(false) {
                a
            } else {
                a + b
            };
        }
        let dg = &mut dxg[t * ng..(t + 1) * ng];
        let r = t * nh..(t + 1) * nh;
        cell_backward(
            h,
            &total,
            &mut dc,
            &saved.act[t * ng..(t + 1) * ng],
            &saved.tc[r.clone()],
            &saved.c_prev[r],
            &dead,
            dg,
        );
        let a = Mat {
            data: &*dg,
            rs: 4 * h,
            cs: 1,
            offset: 0,
        };
        let w = Mat {
            data: w_hh,
            rs: h,
            cs: 1,
            offset: 0,
        };
        gemm_init(n, h, 4 * h, a, w, &mut dh, Init::Zero, threads);
        for (b, _) in dead.iter().enumerate().filter(|(_, &e)| e) {
            // An ended row's state passed through unchanged, and so does its gradient.
            dh[b * h..(b + 1) * h].copy_from_slice(&total[b * h..(b + 1) * h]);
        }
    }
    let w_grad = want_w.then(|| {
        // Σ_t dgates_tᵀ · h_{t−1}: every step's share in one product over all T·N rows.
        let mut dw = vec![T::ZERO; 4 * h * h];
        let a = Mat {
            data: &dxg,
            rs: 1,
            cs: 4 * h,
            offset: 0,
        };
        let b = Mat {
            data: saved.h_prev,
            rs: h,
            cs: 1,
            offset: 0,
        };
        gemm_init(4 * h, h, d.t * n, a, b, &mut dw, Init::Zero, threads);
        dw
    });
    Grads {
        xg: dxg,
        h0: dh,
        c0: dc,
        w_hh: w_grad,
    }
}

/// One step's pointwise part: `gates` `[n, 4h]` pre-activations in, activated gates out;
/// the new `h` and `c` and `tanh(c')` from the cell state `c`.
fn cell_forward<T: Element>(h: usize, gates: &mut [T], c: &[T], h_out: &mut [T], c_out: &mut [T], tc: &mut [T]) {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (checked), so these casts only rename the element type.
        let f = |s: &mut [T]| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr() as *mut f32, s.len()) };
        // SAFETY: as above.
        let c = unsafe { std::slice::from_raw_parts(c.as_ptr() as *const f32, c.len()) };
        let body = CellF32 {
            h,
            gates: f(gates),
            c,
            h_out: f(h_out),
            c_out: f(c_out),
            tc: f(tc),
        };
        vectorized(cpu::isa(), body);
        return;
    }
    for r in 0..c.len() / h.max(1) {
        let gr = &mut gates[r * 4 * h..(r + 1) * 4 * h];
        for j in 0..h {
            let k = r * h + j;
            let i = sigmoid(gr[j]);
            let f = sigmoid(gr[h + j]);
            let g = tanh(gr[2 * h + j]);
            let o = sigmoid(gr[3 * h + j]);
            let cn = f * c[k] + i * g;
            let t = tanh(cn);
            gr[j] = i;
            gr[h + j] = f;
            gr[2 * h + j] = g;
            gr[3 * h + j] = o;
            c_out[k] = cn;
            tc[k] = t;
            h_out[k] = o * t;
        }
    }
}

/// The f32 cell as a loop the compiler vectorizes at the CPU's width.
struct CellF32<'a> {
    h: usize,
    gates: &'a mut [f32],
    c: &'a [f32],
    h_out: &'a mut [f32],
    c_out: &'a mut [f32],
    tc: &'a mut [f32],
}

impl Loop for CellF32<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let h = self.h;
        let rows = self.c.len() / h.max(1);
        for r in 0..rows {
            let gr = &mut self.gates[r * 4 * h..(r + 1) * 4 * h];
            let (gi, rest) = gr.split_at_mut(h);
            let (gf, rest) = rest.split_at_mut(h);
            let (gg, go) = rest.split_at_mut(h);
            let c = &self.c[r * h..(r + 1) * h];
            let ho = &mut self.h_out[r * h..(r + 1) * h];
            let co = &mut self.c_out[r * h..(r + 1) * h];
            let tc = &mut self.tc[r * h..(r + 1) * h];
            // Zipped slices rather than indices: no bounds checks, so the loop vectorizes
            // (indexed, it ran one element at a time).
            let gates = gi.iter_mut().zip(gf.iter_mut()).zip(gg.iter_mut()).zip(go.iter_mut());
            let states = c.iter().zip(ho.iter_mut()).zip(co.iter_mut()).zip(tc.iter_mut());
            for ((((gi, gf), gg), go), (((&c, ho), co), tc)) in gates.zip(states) {
                let i = sigmoid_f32(*gi);
                let f = sigmoid_f32(*gf);
                let g = tanh_f32(*gg);
                let o = sigmoid_f32(*go);
                let cn = f * c + i * g;
                let t = tanh_f32(cn);
                (*gi, *gf, *gg, *go) = (i, f, g, o);
                *co = cn;
                *tc = t;
                *ho = o * t;
            }
        }
    }
}

/// `e^x` in f32 without a library call, so a loop of it vectorizes: `2^k · e^r` with
/// `k = round(x / ln 2)`, `|r| ≤ ln 2 / 2` and `e^r` by its Taylor series to `r^7`
/// (truncation below 1e-8 relative). Inputs are clamped to where `2^k` is a normal float.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Adding 1.5·2^23 rounds x/ln 2 to an integer k (ties to even) held in the low bits,
    // with plain float and integer arithmetic only (no rounding or conversion call).
    const MAGIC: f32 = 12_582_912.0;
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let k = t - MAGIC;
    // ln 2 split in two so k·hi is exact (hi has 9 significant bits).
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let bits = t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23;
    p * f32::from_bits(bits)
}

#[inline(always)]
fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// As the cell kernel's tanh, `1 − 2/(e^{2|x|} + 1)` with x's sign.
#[inline(always)]
fn tanh_f32(x: f32) -> f32 {
    (1.0 - 2.0 / (exp_f32(2.0 * x.abs()) + 1.0)).copysign(x)
}

/// One step's gate gradients `dg` `[n, 4h]` from the gradient of the new `h` (`dh`) and of
/// the new `c` (`dc`, replaced by the gradient of the old `c`); ended rows get zeros and
/// keep their `dc`.
#[allow(clippy::too_many_arguments)]
fn cell_backward<T: Element>(
    h: usize,
    dh: &[T],
    dc: &mut [T],
    act: &[T],
    tc: &[T],
    c: &[T],
    dead: &[bool],
    dg: &mut [T],
) {
    for r in 0..c.len() / h.max(1) {
        let dr = &mut dg[r * 4 * h..(r + 1) * 4 * h];
        if dead.get(r).copied().unwrap_or(false) {
            dr.fill(T::ZERO);
            continue;
        }
        let ar = &act[r * 4 * h..(r + 1) * 4 * h];
        let (ai, rest) = ar.split_at(h);
        let (af, rest) = rest.split_at(h);
        let (ag, ao) = rest.split_at(h);
        let (di, rest) = dr.split_at_mut(h);
        let (df, rest) = rest.split_at_mut(h);
        let (dgg, d_o) = rest.split_at_mut(h);
        let o = r * h;
        let (dh, dc, tc, c) = (&dh[o..o + h], &mut dc[o..o + h], &tc[o..o + h], &c[o..o + h]);
        for j in 0..h {
            let (i, f, g, ot, t) = (ai[j], af[j], ag[j], ao[j], tc[j]);
            // The new c reaches the loss directly and through h = o·tanh(c').
            let dct = dc[j] + dh[j] * ot * (T::ONE - t * t);
            di[j] = dct * g * i * (T::ONE - i);
            df[j] = dct * c[j] * f * (T::ONE - f);
            dgg[j] = dct * i * (T::ONE - g * g);
            d_o[j] = dh[j] * t * ot * (T::ONE - ot);
            dc[j] = dct * f;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_f32, sigmoid_f32, tanh_f32};

    #[test]
    fn vector_friendly_exp_sigmoid_tanh_match_the_library() {
        for k in -8000..=8000 {
            let x = k as f32 * 0.01;
            let (a, b) = (exp_f32(x), x.exp());
            if b.is_normal() && b < 1e38 {
                assert!((a - b).abs() <= 4e-7 * b, "exp({x}): {a} vs {b}");
            }
            let s = 1.0 / (1.0 + (-x as f64).exp());
            assert!(
                (f64::from(sigmoid_f32(x)) - s).abs() <= 3e-7 * s.max(1e-30),
                "sigmoid({x})"
            );
            assert!(
                (tanh_f32(x) - x.tanh()).abs() <= 3e-7,
                "tanh({x}): {} vs {}",
                tanh_f32(x),
                x.tanh()
            );
        }
        assert_eq!(tanh_f32(1e30), 1.0);
        assert_eq!(tanh_f32(-1e30), -1.0);
        assert_eq!(sigmoid_f32(1e30), 1.0);
        assert!(sigmoid_f32(-1e30) < 1e-37);
        assert!(exp_f32(f32::NAN).is_nan() && tanh_f32(f32::NAN).is_nan());
    }
}
