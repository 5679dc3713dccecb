//! The LSTM cell's pointwise work on one block of hidden units, for [`super::lstm_seq`]:
//! forward from a block's pre-activation gates to the activated gates and the new states,
//! backward from the states' gradients to the gate gradients. Each function handles all
//! rows of the batch for units `u0..u0 + ul`; f32 runs as loops the compiler vectorizes at
//! the CPU's width (with an `exp` that needs no library call), other types call the exact
//! functions of [`super::lstm_cell`].

use super::elementwise::{vectorized, Loop};
use super::lstm_cell::{sigmoid, tanh};
use crate::{cpu, Element};
use std::any::TypeId;

/// Units per pass of the pointwise loops: one AVX-512 vector of f32.
const W: usize = 16;

/// One unit's cell: the activated gates, the new `c` and its `tanh` from the four
/// pre-activations and the old `c`.
#[inline(always)]
fn cell<T: Element, A: Act<T>>(pre: [T; 4], c: T) -> ([T; 4], T, T) {
    let (i, f, g, o) = (
        A::sigmoid(pre[0]),
        A::sigmoid(pre[1]),
        A::tanh(pre[2]),
        A::sigmoid(pre[3]),
    );
    let cn = f * c + i * g;
    ([i, f, g, o], cn, A::tanh(cn))
}

/// One unit's gate gradients and the old `c`'s gradient, from the activated gates, the
/// new `c`'s `tanh`, the old `c` and the gradients of the new `h` and `c`.
#[inline(always)]
fn cell_grad<T: Element>(act: [T; 4], t: T, c: T, dh: T, dc: T) -> ([T; 4], T) {
    let [i, f, g, o] = act;
    // The new c reaches the loss directly and through h = o·tanh(c').
    let dct = dc + dh * o * (T::ONE - t * t);
    let d = [
        dct * g * i * (T::ONE - i),
        dct * c * f * (T::ONE - f),
        dct * i * (T::ONE - g * g),
        dh * t * o * (T::ONE - o),
    ];
    (d, dct * f)
}

/// σ and tanh for one element type.
trait Act<T> {
    fn sigmoid(x: T) -> T;
    fn tanh(x: T) -> T;
}

/// The exact functions (f64 and the other types).
struct Exact;

impl<T: Element> Act<T> for Exact {
    #[inline(always)]
    fn sigmoid(x: T) -> T {
        sigmoid(x)
    }
    #[inline(always)]
    fn tanh(x: T) -> T {
        tanh(x)
    }
}

/// The branch-free f32 versions, which vectorize.
struct Fast;

impl Act<f32> for Fast {
    #[inline(always)]
    fn sigmoid(x: f32) -> f32 {
        sigmoid_f32(x)
    }
    #[inline(always)]
    fn tanh(x: f32) -> f32 {
        tanh_f32(x)
    }
}

/// A block's outputs: a base pointer (already offset to the block's first unit) and a row
/// stride. Several tiles write the same rows at once, each its own columns, so a tile
/// never holds a slice wider than its block.
#[derive(Clone, Copy)]
pub struct Out<T> {
    /// Element (0, first unit).
    pub ptr: *mut T,
    /// Step between rows.
    pub rs: usize,
}

impl<T> Out<T> {
    /// `len` elements of row `r` from column `at`.
    ///
    /// # Safety
    /// They must lie inside the buffer behind `ptr`, and no other live reference may
    /// overlap them.
    #[inline(always)]
    unsafe fn at<'a>(self, r: usize, at: usize, len: usize) -> &'a mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r * self.rs + at), len) }
    }
}

/// One block's forward pointwise work over all `n` rows of units `u0..u0 + ul`, where `H`
/// is the hidden size: gate q (i, f, g, o) of unit u sits at column `q·H + u` of a gates
/// row (row stride `4H`) and at column u of a state row (row stride `H`); the slices and
/// pointers below start at the block's first unit.
pub struct Forward<'a, T> {
    /// Rows (the batch).
    pub n: usize,
    /// Units in this block.
    pub ul: usize,
    /// The hidden size `H`.
    pub h: usize,
    /// The product's share `[n, 4·ul]` (gate q at columns `q·ul..`).
    pub pre: &'a [T],
    /// The input's share (gates layout).
    pub xg: &'a [T],
    /// The hidden state read (state layout).
    pub h_in: &'a [T],
    /// The cell state read (state layout).
    pub c_in: &'a [T],
    /// Which rows have ended: they output zeros and keep their state (empty: none).
    pub dead: &'a [bool],
    /// The activated gates out (gates layout).
    pub act: Out<T>,
    /// The new hidden state (state layout); so are the next three.
    pub h_out: Out<T>,
    /// The new cell state.
    pub c_out: Out<T>,
    /// `tanh` of the new cell state.
    pub tc: Out<T>,
    /// The step's output.
    pub y: Out<T>,
}

// SAFETY: built and run on one thread; the pointers only cross into `vectorized`.
unsafe impl<T: Send> Send for Out<T> {}

impl<T: Element> Forward<'_, T> {
    /// Run it, vectorized for f32.
    ///
    /// # Safety
    /// Every `Out` must reach `n` rows of the block's columns (the four gates' for `act`)
    /// inside its buffer, which nothing else may read or write during the call.
    pub unsafe fn run(self) {
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            // SAFETY: T is f32 (checked), so the copy only renames the element type.
            let f: Forward<'_, f32> = unsafe { std::mem::transmute_copy(&self) };
            vectorized(cpu::isa(), FastForward(f));
        } else {
            // SAFETY: the caller's contract.
            unsafe { self.rows::<Exact>() };
        }
    }

    /// # Safety
    /// As [`Forward::run`].
    #[inline(always)]
    unsafe fn rows<A: Act<T>>(&self) {
        let (h, ul) = (self.h, self.ul);
        for r in 0..self.n {
            let p = &self.pre[r * 4 * ul..(r + 1) * 4 * ul];
            let x = &self.xg[r * 4 * h..];
            let (pi, pf, pg, po) = (&p[..ul], &p[ul..2 * ul], &p[2 * ul..3 * ul], &p[3 * ul..4 * ul]);
            let (xi, xf, xgg, xo) = (&x[..ul], &x[h..h + ul], &x[2 * h..2 * h + ul], &x[3 * h..3 * h + ul]);
            // SAFETY: the caller's contract: each of these is this block's own columns.
            let (ai, af, ag, ao, co, ho, tc, y) = unsafe {
                (
                    self.act.at(r, 0, ul),
                    self.act.at(r, h, ul),
                    self.act.at(r, 2 * h, ul),
                    self.act.at(r, 3 * h, ul),
                    self.c_out.at(r, 0, ul),
                    self.h_out.at(r, 0, ul),
                    self.tc.at(r, 0, ul),
                    self.y.at(r, 0, ul),
                )
            };
            let c = &self.c_in[r * h..r * h + ul];
            let full = ul - ul % W;
            for c0 in (0..full).step_by(W) {
                let ld = |s: &[T]| -> [T; W] { s[c0..c0 + W].try_into().expect("W units") };
                let (pi, pf, pg, po, cv) = (ld(pi), ld(pf), ld(pg), ld(po), ld(c));
                let (xi, xf, xgg, xo) = (ld(xi), ld(xf), ld(xgg), ld(xo));
                let ([mut i, mut f, mut g, mut ot], mut cn, mut t) = ([[T::ZERO; W]; 4], [T::ZERO; W], [T::ZERO; W]);
                // On local arrays of a fixed length, which the compiler keeps in vector
                // registers (on the output slices it could not rule out overlaps).
                for u in 0..W {
                    let pre = [pi[u] + xi[u], pf[u] + xf[u], pg[u] + xgg[u], po[u] + xo[u]];
                    ([i[u], f[u], g[u], ot[u]], cn[u], t[u]) = cell::<T, A>(pre, cv[u]);
                }
                let hn: [T; W] = std::array::from_fn(|u| ot[u] * t[u]);
                // Copies of a known length: vector moves (a run-time length called memmove).
                let st = |d: &mut [T], v: &[T; W]| d[c0..c0 + W].copy_from_slice(v);
                st(ai, &i);
                st(af, &f);
                st(ag, &g);
                st(ao, &ot);
                st(co, &cn);
                st(tc, &t);
                st(ho, &hn);
                st(y, &hn);
            }
            for u in full..ul {
                let pre = [pi[u] + xi[u], pf[u] + xf[u], pg[u] + xgg[u], po[u] + xo[u]];
                ([ai[u], af[u], ag[u], ao[u]], co[u], tc[u]) = cell::<T, A>(pre, c[u]);
                ho[u] = ao[u] * tc[u];
                y[u] = ho[u];
            }
            if self.dead.get(r).copied().unwrap_or(false) {
                // Past its end a sequence keeps its state and outputs zeros.
                y.fill(T::ZERO);
                ho.copy_from_slice(&self.h_in[r * h..r * h + ul]);
                co.copy_from_slice(c);
            }
        }
    }
}

struct FastForward<'a>(Forward<'a, f32>);

impl Loop for FastForward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        // SAFETY: `Forward::run`'s caller upholds the contract.
        unsafe { self.0.rows::<Fast>() }
    }
}

/// One block's backward pointwise work over all `n` rows (layouts as [`Forward`]'s): the
/// gate gradients from the gradient of the new `h` and of the new `c` (`dc`, replaced by
/// the old `c`'s). Rows in `dead` get zero gate gradients and keep their `dc`.
pub struct Backward<'a, T> {
    /// Rows (the batch).
    pub n: usize,
    /// Units in this block.
    pub ul: usize,
    /// The hidden size `H`.
    pub h: usize,
    /// The new `h`'s gradient `[n, ul]` (the block's own, contiguous).
    pub dh: &'a [T],
    /// The activated gates (gates layout).
    pub act: &'a [T],
    /// `tanh` of the new cell state (state layout).
    pub tc: &'a [T],
    /// The old cell state (state layout).
    pub c: &'a [T],
    /// Which rows had ended (empty: none).
    pub dead: &'a [bool],
    /// The new `c`'s gradient in, the old `c`'s out (state layout).
    pub dc: Out<T>,
    /// The gate gradients out (gates layout).
    pub dg: Out<T>,
}

impl<T: Element> Backward<'_, T> {
    /// Run it, vectorized for f32.
    ///
    /// # Safety
    /// As [`Forward::run`], for `dc` and `dg`.
    pub unsafe fn run(self) {
        if TypeId::of::<T>() == TypeId::of::<f32>() {
            // SAFETY: T is f32 (checked), so the copy only renames the element type.
            let b: Backward<'_, f32> = unsafe { std::mem::transmute_copy(&self) };
            vectorized(cpu::isa(), FastBackward(b));
        } else {
            // SAFETY: the caller's contract.
            unsafe { self.rows() };
        }
    }

    /// # Safety
    /// As [`Backward::run`].
    #[inline(always)]
    unsafe fn rows(&self) {
        let (h, ul) = (self.h, self.ul);
        for r in 0..self.n {
            // SAFETY: the caller's contract: each of these is this block's own columns.
            let (di, df, dgg, d_o, dc) = unsafe {
                (
                    self.dg.at(r, 0, ul),
                    self.dg.at(r, h, ul),
                    self.dg.at(r, 2 * h, ul),
                    self.dg.at(r, 3 * h, ul),
                    self.dc.at(r, 0, ul),
                )
            };
            if self.dead.get(r).copied().unwrap_or(false) {
                for s in [di, df, dgg, d_o] {
                    s.fill(T::ZERO);
                }
                continue;
            }
            let a = &self.act[r * 4 * h..];
            let (ai, af, ag, ao) = (&a[..ul], &a[h..h + ul], &a[2 * h..2 * h + ul], &a[3 * h..3 * h + ul]);
            let dh = &self.dh[r * ul..(r + 1) * ul];
            let (tc, c) = (&self.tc[r * h..r * h + ul], &self.c[r * h..r * h + ul]);
            let full = ul - ul % W;
            for c0 in (0..full).step_by(W) {
                let ld = |s: &[T]| -> [T; W] { s[c0..c0 + W].try_into().expect("W units") };
                let (i, f, g, ot, t) = (ld(ai), ld(af), ld(ag), ld(ao), ld(tc));
                let (dhv, dcv, cv) = (ld(dh), ld(dc), ld(c));
                let [mut a, mut b, mut e, mut q, mut z] = [[T::ZERO; W]; 5];
                // On local arrays, as the forward pass.
                for u in 0..W {
                    ([a[u], b[u], e[u], q[u]], z[u]) =
                        cell_grad([i[u], f[u], g[u], ot[u]], t[u], cv[u], dhv[u], dcv[u]);
                }
                let st = |d: &mut [T], v: &[T; W]| d[c0..c0 + W].copy_from_slice(v);
                st(di, &a);
                st(df, &b);
                st(dgg, &e);
                st(d_o, &q);
                st(dc, &z);
            }
            for u in full..ul {
                ([di[u], df[u], dgg[u], d_o[u]], dc[u]) =
                    cell_grad([ai[u], af[u], ag[u], ao[u]], tc[u], c[u], dh[u], dc[u]);
            }
        }
    }
}

struct FastBackward<'a>(Backward<'a, f32>);

impl Loop for FastBackward<'_> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        // SAFETY: `Backward::run`'s caller upholds the contract.
        unsafe { self.0.rows() }
    }
}

/// `e^x` in f32 without a library call, so a loop of it vectorizes: `2^k · e^r` with
/// `k = round(x / ln 2)`, `|r| ≤ ln 2 / 2` and `e^r` by its Taylor series to `r^7`
/// (truncation below 1e-8 relative). Inputs are clamped to where `2^k` is a normal float.
#[inline(always)]
pub(super) fn exp_f32(x: f32) -> f32 {
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

/// tanh to a few units in the last place of the result everywhere, without a library call
/// (the `tanh` op's f32 map; the library's took 0.8 ms of a DCGAN step on one core): an
/// odd Taylor polynomial to `x¹³` below `|x| = ½` (terms from `x¹⁵` on stay under 1e-7 of
/// the result), [`tanh_f32`] above, where its absolute error is a few ulp of the result.
#[inline(always)]
pub(crate) fn tanh_f32_accurate(x: f32) -> f32 {
    let x2 = x * x;
    let p = -1.0 / 3.0
        + x2 * (2.0 / 15.0
            + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0 + x2 * (-1382.0 / 155_925.0 + x2 * (21844.0 / 6_081_075.0)))));
    // x·(1 + x²p) rather than x + x³p: −0 stays −0. Both branches are computed, so a map
    // of this vectorizes to a select.
    let small = x * (1.0 + x2 * p);
    if x.abs() < 0.5 {
        small
    } else {
        tanh_f32(x)
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_f32, sigmoid_f32, tanh_f32, tanh_f32_accurate};

    #[test]
    fn accurate_tanh_stays_within_a_few_ulp_of_the_result() {
        let mut worst = 0f64;
        for k in -200_000i32..=200_000 {
            // Dense near 0 (down to 1e-7), then out to ±20.
            let x = if k.abs() < 100_000 {
                k as f32 * 1e-5
            } else {
                k.signum() as f32 * (1.0 + (k.abs() - 100_000) as f32 * 1.9e-4)
            };
            let (got, want) = (f64::from(tanh_f32_accurate(x)), (x as f64).tanh());
            if want != 0.0 {
                worst = worst.max((got - want).abs() / want.abs());
            } else {
                assert_eq!(got, 0.0);
            }
        }
        // f32's unit in the last place is 6e-8 to 1.2e-7 of a value.
        assert!(worst < 5e-7, "largest relative error {worst:e}");
        assert_eq!(tanh_f32_accurate(1e-30), 1e-30);
        assert_eq!(tanh_f32_accurate(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32_accurate(f32::INFINITY), 1.0);
        assert!(tanh_f32_accurate(f32::NAN).is_nan());
    }

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
