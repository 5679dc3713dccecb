//! Batch normalization in training mode over `[n, c, p]` data (`p` values per image and
//! channel): statistics in one pass of deviations from a shift (the mean of the channel's
//! plane in the first image, so the squared deviations do not cancel; the mean is the shift
//! corrected by the deviations' sum), the output in one, and the three gradients in two.
//! Outputs are written into uninitialized memory, every element once: zero-filling them
//! first cost about 3% of a segnet step.
//! Planes of [`ROWS_BELOW`] values or more are walked channel by channel, channels split
//! over threads; smaller ones (`BatchNorm1d` on `[n, c]` has `p = 1`) row by row, summing
//! columns, which are split over threads. Every sum runs in a fixed order, so results do
//! not depend on the thread count.
//! An [`Activation`] after the normalization (ReLU, LeakyReLU) is applied as the output is
//! written, and its gate recomputed from `x` as the gradient is read, so neither the
//! normalized values nor the gated gradient is ever stored.

use super::elementwise::{vectorized, Loop};
use super::par::{run_tiles, Disjoint};
use super::reduce::SumLoop;
use super::PAR_THRESHOLD;
use crate::cpu;
use crate::Element;
use std::mem::MaybeUninit;

/// Planes smaller than this are walked row by row: a call per plane of a few values costs
/// more than the values (`[256, 512]` forward: 5.2 ms by planes, composed ops 0.08 ms).
const ROWS_BELOW: usize = 64;

/// Columns per task of the row-by-row sums (their accumulators stay in L1).
const COLS: usize = 256;

/// Rows per task of the row-by-row sums.
const ROWS: usize = 256;

/// Independent accumulators (two AVX-512 registers of f32), widened to f64 every `RUN`.
const LANES: usize = 32;
const RUN: usize = 16;

/// The activation fused after the normalization (PyTorch's modules that follow a batch
/// norm): its output in the forward pass, its gate on the gradient in the backward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// None: plain batch norm.
    Identity,
    /// `max(y, 0)`; NaN stays NaN, and the gradient is 0 where `y ≤ 0` (as `relu`).
    Relu,
    /// `y` for `y > 0`, `slope·y` otherwise (as `leaky_relu`).
    LeakyRelu(f64),
}

/// An activation with one channel's normalization `y = a·x + c` (`[a, c]`), which the
/// backward pass recomputes from `x` to find where the activation passed the gradient.
#[derive(Clone, Copy)]
enum Gate<T> {
    Open,
    Relu([T; 2]),
    Leaky([T; 2], T),
}

impl<T: Element> Gate<T> {
    fn new(act: Activation, ac: [T; 2]) -> Self {
        match act {
            Activation::Identity => Gate::Open,
            Activation::Relu => Gate::Relu(ac),
            Activation::LeakyRelu(s) => Gate::Leaky(ac, T::from_f64(s)),
        }
    }
}

/// One [`Gate`] variant as a type, so each loop is compiled once per activation and the
/// choice is made outside it.
trait Pass<T>: Copy {
    /// The activation of a normalized value (forward).
    fn act(self, v: T) -> T;
    /// The gradient `g` through the activation at input `x` (backward).
    fn pass(self, g: T, x: T) -> T;
}

#[derive(Clone, Copy)]
struct Open;
#[derive(Clone, Copy)]
struct Relu<T>([T; 2]);
#[derive(Clone, Copy)]
struct Leaky<T>([T; 2], T);

impl<T: Element> Pass<T> for Open {
    #[inline(always)]
    fn act(self, v: T) -> T {
        v
    }
    #[inline(always)]
    fn pass(self, g: T, _: T) -> T {
        g
    }
}

impl<T: Element> Pass<T> for Relu<T> {
    #[inline(always)]
    fn act(self, v: T) -> T {
        if v > T::ZERO || v.is_nan() {
            v
        } else {
            T::ZERO
        }
    }
    #[inline(always)]
    fn pass(self, g: T, x: T) -> T {
        let [a, c] = self.0;
        if a * x + c > T::ZERO {
            g
        } else {
            T::ZERO
        }
    }
}

impl<T: Element> Pass<T> for Leaky<T> {
    #[inline(always)]
    fn act(self, v: T) -> T {
        if v > T::ZERO {
            v
        } else {
            self.1 * v
        }
    }
    #[inline(always)]
    fn pass(self, g: T, x: T) -> T {
        let [a, c] = self.0;
        if a * x + c > T::ZERO {
            g
        } else {
            self.1 * g
        }
    }
}

/// `$body` with `$p` bound to `$gate`'s variant as its [`Pass`] type.
macro_rules! with_pass {
    ($gate:expr, $p:ident => $body:expr) => {
        match $gate {
            Gate::Open => {
                let $p = Open;
                $body
            }
            Gate::Relu(ac) => {
                let $p = Relu(ac);
                $body
            }
            Gate::Leaky(ac, s) => {
                let $p = Leaky(ac, s);
                $body
            }
        }
    };
}

#[path = "batch_norm_rows.rs"]
mod rows;

/// `(Σ u, Σ u·(x − m))` over one plane with `u` = `g` through the gate, or
/// `(Σ (x − m), Σ (x − m)²)` without `g`.
struct Sums<'a, T> {
    g: Option<&'a [T]>,
    x: &'a [T],
    m: T,
    gate: Gate<T>,
}

impl<T: Element> Loop for Sums<'_, T> {
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        with_pass!(self.gate, p => sums(self.x, self.g, self.m, p))
    }
}

#[inline(always)]
fn sums<T: Element, P: Pass<T>>(x: &[T], g: Option<&[T]>, m: T, p: P) -> (f64, f64) {
    let (mut s1, mut s2) = ([0f64; LANES], [0f64; LANES]);
    let n = x.len();
    let has_g = g.is_some();
    let g = g.unwrap_or(x);
    // Whole lane groups in runs of up to RUN: a plane of 8×8 or 16×16 values is shorter
    // than one run, and summed in f64 one by one ([32, 64, 16, 16] with ReLU) forward and
    // backward took 1.6 ms rather than 0.6.
    let whole = n / LANES * LANES;
    for start in (0..whole).step_by(LANES * RUN) {
        let (mut a1, mut a2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
        for c in (start..(start + LANES * RUN).min(whole)).step_by(LANES) {
            let (xs, gs) = (&x[c..c + LANES], &g[c..c + LANES]);
            for i in 0..LANES {
                let d = xs[i] - m;
                let u = if has_g { p.pass(gs[i], xs[i]) } else { d };
                a1[i] += u;
                a2[i] += u * d;
            }
        }
        for i in 0..LANES {
            s1[i] += a1[i].to_f64();
            s2[i] += a2[i].to_f64();
        }
    }
    let (mut t1, mut t2): (f64, f64) = (s1.iter().sum(), s2.iter().sum());
    for (&x, &g) in x[whole..].iter().zip(&g[whole..]) {
        let d = (x - m).to_f64();
        let u = if has_g { p.pass(g, x).to_f64() } else { d };
        t1 += u;
        t2 += u * d;
    }
    (t1, t2)
}

/// `y = act(a·x + c)` over one plane, or with `g`: `y = a·x + b·u + c`, `u` = `g` through
/// the gate.
struct Affine<'a, T> {
    x: &'a [T],
    g: Option<&'a [T]>,
    y: &'a mut [MaybeUninit<T>],
    abc: [T; 3],
    gate: Gate<T>,
}

impl<T: Element> Loop for Affine<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let [a, b, c] = self.abc;
        with_pass!(self.gate, p => match self.g {
            Some(g) => {
                for ((y, &x), &g) in self.y.iter_mut().zip(self.x).zip(g) {
                    *y = MaybeUninit::new(a * x + b * p.pass(g, x) + c);
                }
            }
            None => {
                for (y, &x) in self.y.iter_mut().zip(self.x) {
                    *y = MaybeUninit::new(p.act(a * x + c));
                }
            }
        })
    }
}

/// A channel's mean and biased variance from a shift `m0` near its mean and the deviations'
/// sums `[Σ(x − m0), Σ(x − m0)²]` over `cnt` values (the first sum moves `m0` to the mean),
/// with the output's `y = scale·x + shift` for its weight and bias `wb`.
fn channel_stats<T: Element>(m0: f64, [d1, d2]: [f64; 2], cnt: f64, wb: [T; 2], eps: f64) -> (f64, f64, [f64; 2]) {
    let (mean, var) = (m0 + d1 / cnt, (d2 - d1 * d1 / cnt).max(0.0) / cnt);
    let scale = wb[0].to_f64() / (var + eps).sqrt();
    (mean, var, [scale, wb[1].to_f64() - mean * scale])
}

/// A channel's input gradient as `dx = kx·x + k·gy + k0` (returned as `[kx, k, k0]`) and
/// its weight gradient, from the sums `[Σ gy, Σ gy·(x − m)]`: with `k = w·inv`,
/// `dx = k·gy + kx·(x − m) − k·db/cnt` and `kx = −k·inv·dw/cnt`.
fn grad_coeffs<T: Element>([sg, sgx]: [f64; 2], m: f64, inv: f64, w: T, cnt: f64) -> ([f64; 3], f64) {
    let dw = sgx * inv;
    let k = w.to_f64() * inv;
    let kx = -k * inv * dw / cnt;
    ([kx, k, -k * sg / cnt - kx * m], dw)
}

/// Threads for `len` elements of work.
fn threads(len: usize) -> usize {
    super::par::threads_for(len, PAR_THRESHOLD)
}

/// Run `f(channel, planes)` for every channel, `planes(i)` giving image `i`'s plane.
fn per_channel(n: usize, c: usize, p: usize, f: &(dyn Fn(usize) + Sync)) {
    let per = (super::BLOCK / (n * p).max(1)).clamp(1, c.max(1));
    run_tiles(c.div_ceil(per), threads(n * c * p), &|t| {
        for ch in t * per..((t + 1) * per).min(c) {
            f(ch)
        }
    });
}

/// `y` as slots to write. Sound because every kernel here stores only initialized values.
fn slots<T>(y: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`, and the slots are only written with
    // initialized values, so `y` stays initialized.
    unsafe { &mut *(y as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// Training-mode forward: per channel the mean and biased variance of `x` (`[n, c, p]`),
/// and `y = (x − mean)/√(var + eps)·w + b`. Returns (mean, var) per channel.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Element>(x: &[T], dims: [usize; 3], w: &[T], b: &[T], eps: f64, y: &mut [T]) -> (Vec<f64>, Vec<f64>) {
    forward_into(x, dims, w, b, eps, slots(y))
}

/// [`forward_act_into`] into `y`.
#[allow(clippy::too_many_arguments)]
pub fn forward_act<T: Element>(
    x: &[T],
    dims: [usize; 3],
    w: &[T],
    b: &[T],
    eps: f64,
    act: Activation,
    y: &mut [T],
) -> (Vec<f64>, Vec<f64>, Vec<[T; 2]>) {
    forward_act_into(x, dims, w, b, eps, act, slots(y))
}

/// [`forward`] into uninitialized `y`, which it writes in full.
#[allow(clippy::too_many_arguments)]
pub fn forward_into<T: Element>(
    x: &[T],
    dims: [usize; 3],
    w: &[T],
    b: &[T],
    eps: f64,
    y: &mut [MaybeUninit<T>],
) -> (Vec<f64>, Vec<f64>) {
    let (mean, var, _) = forward_act_into(x, dims, w, b, eps, Activation::Identity, y);
    (mean, var)
}

/// [`forward`] followed by `act`, into uninitialized `y`, which it writes in full (the
/// normalized values are never stored). Returns (mean, var) and each channel's
/// normalization `[a, c]` (`y = act(a·x + c)`), which [`backward_act_into`] takes.
#[allow(clippy::too_many_arguments)]
pub fn forward_act_into<T: Element>(
    x: &[T],
    [n, c, p]: [usize; 3],
    w: &[T],
    b: &[T],
    eps: f64,
    act: Activation,
    y: &mut [MaybeUninit<T>],
) -> (Vec<f64>, Vec<f64>, Vec<[T; 2]>) {
    assert!(x.len() == n * c * p && y.len() == x.len() && w.len() >= c && b.len() >= c);
    if p < ROWS_BELOW {
        return rows::forward(x, [n, c, p], w, b, eps, act, y);
    }
    let (mut mean, mut var, mut ac) = (vec![0f64; c], vec![0f64; c], vec![[T::ZERO; 2]; c]);
    let isa = cpu::isa();
    let cnt = (n * p).max(1) as f64;
    let (md, vd, yd) = (Disjoint::new(&mut mean), Disjoint::new(&mut var), Disjoint::new(y));
    let acd = Disjoint::new(&mut ac);
    per_channel(n, c, p, &|ch| {
        let plane = |i: usize| &x[(i * c + ch) * p..][..p];
        // The shift: the first image's plane mean (a 1/n pass; n = 1 makes it exact).
        let m0 = match n {
            0 => T::ZERO,
            _ => T::from_f64(vectorized(isa, SumLoop(plane(0))) / p as f64),
        };
        let (mut d1, mut d2) = (0f64, 0f64);
        for i in 0..n {
            let (a, b) = vectorized(
                isa,
                Sums {
                    g: None,
                    x: plane(i),
                    m: m0,
                    gate: Gate::Open,
                },
            );
            d1 += a;
            d2 += b;
        }
        let (mu, v, [scale, shift]) = channel_stats(m0.to_f64(), [d1, d2], cnt, [w[ch], b[ch]], eps);
        let (scale, shift) = (T::from_f64(scale), T::from_f64(shift));
        let abc = [scale, T::ZERO, shift];
        for i in 0..n {
            // SAFETY: this channel alone writes its planes and its statistics.
            let out = unsafe { yd.range((i * c + ch) * p, p) };
            vectorized(
                isa,
                Affine {
                    x: plane(i),
                    g: None,
                    y: out,
                    abc,
                    gate: Gate::new(act, [scale, shift]),
                },
            );
        }
        // SAFETY: element `ch` of each statistic belongs to this channel's task alone.
        unsafe {
            md.range(ch, 1)[0] = mu;
            vd.range(ch, 1)[0] = v;
            acd.range(ch, 1)[0] = [scale, shift];
        }
    });
    (mean, var, ac)
}

/// Training-mode backward of [`forward`]: with `xhat = (x − mean)·inv`, `inv = 1/√(var+eps)`,
/// `db = Σ gy`, `dw = Σ gy·xhat` and `dx = w·inv·(gy − db/cnt − xhat·dw/cnt)`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Element>(
    x: &[T],
    gy: &[T],
    dims: [usize; 3],
    mean: &[f64],
    inv: &[f64],
    w: &[T],
    dx: &mut [T],
) -> (Vec<T>, Vec<T>) {
    backward_into(x, gy, dims, mean, inv, w, slots(dx))
}

/// [`backward_act_into`] into `dx`.
#[allow(clippy::too_many_arguments)]
pub fn backward_act<T: Element>(
    x: &[T],
    gy: &[T],
    dims: [usize; 3],
    mean: &[f64],
    inv: &[f64],
    w: &[T],
    act: Activation,
    ac: &[[T; 2]],
    dx: &mut [T],
) -> (Vec<T>, Vec<T>) {
    backward_act_into(x, gy, dims, mean, inv, w, act, ac, slots(dx))
}

/// [`backward`] into uninitialized `dx`, which it writes in full.
#[allow(clippy::too_many_arguments)]
pub fn backward_into<T: Element>(
    x: &[T],
    gy: &[T],
    dims: [usize; 3],
    mean: &[f64],
    inv: &[f64],
    w: &[T],
    dx: &mut [MaybeUninit<T>],
) -> (Vec<T>, Vec<T>) {
    backward_act_into(x, gy, dims, mean, inv, w, Activation::Identity, &[], dx)
}

/// The backward of [`forward_act_into`] into uninitialized `dx`, which it writes in full:
/// [`backward`] of the gradient `gy` passed back through `act`, whose gate each element
/// finds from `x` and its channel's `ac` (unused for [`Activation::Identity`]). The gated
/// gradient is the one `relu`/`leaky_relu`'s backward would make, so results are those of
/// the two ops, bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn backward_act_into<T: Element>(
    x: &[T],
    gy: &[T],
    [n, c, p]: [usize; 3],
    mean: &[f64],
    inv: &[f64],
    w: &[T],
    act: Activation,
    ac: &[[T; 2]],
    dx: &mut [MaybeUninit<T>],
) -> (Vec<T>, Vec<T>) {
    let len = n * c * p;
    assert!(x.len() == len && gy.len() == len && dx.len() == len);
    assert!(mean.len() >= c && inv.len() >= c && w.len() >= c);
    assert!(act == Activation::Identity || ac.len() >= c);
    let gate = |ch: usize| match act {
        Activation::Identity => Gate::Open,
        _ => Gate::new(act, ac[ch]),
    };
    if p < ROWS_BELOW {
        return rows::backward(x, gy, [n, c, p], mean, inv, w, act, ac, dx);
    }
    let (mut dw, mut db) = (vec![T::ZERO; c], vec![T::ZERO; c]);
    let isa = cpu::isa();
    let cnt = (n * p).max(1) as f64;
    let (dwd, dbd, dxd) = (Disjoint::new(&mut dw), Disjoint::new(&mut db), Disjoint::new(dx));
    per_channel(n, c, p, &|ch| {
        let at = |i: usize| (i * c + ch) * p;
        let m = T::from_f64(mean[ch]);
        let (mut sg, mut sgx) = (0f64, 0f64);
        for i in 0..n {
            let (a, b) = vectorized(
                isa,
                Sums {
                    g: Some(&gy[at(i)..][..p]),
                    x: &x[at(i)..][..p],
                    m,
                    gate: gate(ch),
                },
            );
            sg += a;
            sgx += b;
        }
        let (coef, dwc) = grad_coeffs([sg, sgx], m.to_f64(), inv[ch], w[ch], cnt);
        let abc = coef.map(T::from_f64);
        for i in 0..n {
            // SAFETY: this channel alone writes its planes and its gradients.
            let out = unsafe { dxd.range(at(i), p) };
            vectorized(
                isa,
                Affine {
                    x: &x[at(i)..][..p],
                    g: Some(&gy[at(i)..][..p]),
                    y: out,
                    abc,
                    gate: gate(ch),
                },
            );
        }
        // SAFETY: element `ch` of each gradient belongs to this channel's task alone.
        unsafe {
            dwd.range(ch, 1)[0] = T::from_f64(dwc);
            dbd.range(ch, 1)[0] = T::from_f64(sg);
        }
    });
    (dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_stay_accurate_far_from_zero_in_f32() {
        // Values near 1000 with unit spread, the first image 3 higher: the shift (image 0's
        // plane mean) is 3 spreads off the mean, and f32 squares of raw values would lose
        // the variance entirely. Planes by channels (p = 300) and by rows (p = 5).
        for [n, c, p] in [[6, 3, 300], [40, 3, 5]] {
            let x: Vec<f32> = (0..n * c * p)
                .map(|i| 1000.0 + ((i as f32) * 0.731).sin() + if i < c * p { 3.0 } else { 0.0 })
                .collect();
            let mut y = vec![0f32; x.len()];
            let (mean, var) = forward(&x, [n, c, p], &vec![1f32; c], &vec![0f32; c], 0.0, &mut y);
            for ch in 0..c {
                let vals: Vec<f64> = (0..n)
                    .flat_map(|i| x[(i * c + ch) * p..][..p].iter().map(|&v| v as f64))
                    .collect();
                let m = vals.iter().sum::<f64>() / vals.len() as f64;
                let v = vals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / vals.len() as f64;
                assert!((mean[ch] - m).abs() < 1e-5 * m, "{n}x{c}x{p} mean {} vs {m}", mean[ch]);
                assert!((var[ch] - v).abs() < 1e-4 * v, "{n}x{c}x{p} var {} vs {v}", var[ch]);
            }
        }
    }

    #[test]
    fn empty_dims_give_empty_or_zero_results() {
        // [n, c, p] with one of them zero: nothing to write, statistics of nothing are 0.
        for dims in [[2, 3, 0], [0, 3, 4], [2, 0, 4], [0, 3, 100], [0, 0, 0]] {
            let [n, c, p] = dims;
            let (w, b) = (vec![1f32; c], vec![0f32; c]);
            let x = vec![1f32; n * c * p];
            let mut y = vec![0f32; x.len()];
            let (mean, var) = forward(&x, dims, &w, &b, 1e-5, &mut y);
            assert_eq!((mean, var), (vec![0.0; c], vec![0.0; c]), "{dims:?}");
            let mut dx = vec![0f32; x.len()];
            let (dw, db) = backward(&x, &x, dims, &vec![0.0; c], &vec![1.0; c], &w, &mut dx);
            assert_eq!((dw, db), (vec![0.0; c], vec![0.0; c]), "{dims:?}");
        }
    }
}
