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

use super::elementwise::{vectorized, Loop};
use super::par::{for_each_chunk_on, run_tiles, Disjoint};
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

/// `(Σ g, Σ g·(x − m))` over one plane, or `(Σ (x − m), Σ (x − m)²)` without `g`.
struct Sums<'a, T> {
    g: Option<&'a [T]>,
    x: &'a [T],
    m: T,
}

impl<T: Element> Loop for Sums<'_, T> {
    type Output = (f64, f64);
    #[inline(always)]
    fn run(self) -> (f64, f64) {
        let (mut s1, mut s2) = ([0f64; LANES], [0f64; LANES]);
        let m = self.m;
        let n = self.x.len();
        let g = self.g.unwrap_or(self.x);
        let whole = n / (LANES * RUN) * (LANES * RUN);
        for start in (0..whole).step_by(LANES * RUN) {
            let (mut a1, mut a2) = ([T::ZERO; LANES], [T::ZERO; LANES]);
            for c in (start..start + LANES * RUN).step_by(LANES) {
                let (xs, gs) = (&self.x[c..c + LANES], &g[c..c + LANES]);
                for i in 0..LANES {
                    let d = xs[i] - m;
                    let u = if self.g.is_some() { gs[i] } else { d };
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
        for (&x, &g) in self.x[whole..].iter().zip(&g[whole..]) {
            let d = (x - m).to_f64();
            let u = if self.g.is_some() { g.to_f64() } else { d };
            t1 += u;
            t2 += u * d;
        }
        (t1, t2)
    }
}

/// `y = a·x + b·g + c` over one plane (`g` absent: `b` unused).
struct Affine<'a, T> {
    x: &'a [T],
    g: Option<&'a [T]>,
    y: &'a mut [MaybeUninit<T>],
    abc: [T; 3],
}

impl<T: Element> Loop for Affine<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let [a, b, c] = self.abc;
        match self.g {
            Some(g) => {
                for ((y, &x), &g) in self.y.iter_mut().zip(self.x).zip(g) {
                    *y = MaybeUninit::new(a * x + b * g + c);
                }
            }
            None => {
                for (y, &x) in self.y.iter_mut().zip(self.x) {
                    *y = MaybeUninit::new(a * x + c);
                }
            }
        }
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

/// [`forward`] into uninitialized `y`, which it writes in full.
#[allow(clippy::too_many_arguments)]
pub fn forward_into<T: Element>(
    x: &[T],
    [n, c, p]: [usize; 3],
    w: &[T],
    b: &[T],
    eps: f64,
    y: &mut [MaybeUninit<T>],
) -> (Vec<f64>, Vec<f64>) {
    assert!(x.len() == n * c * p && y.len() == x.len() && w.len() >= c && b.len() >= c);
    if p < ROWS_BELOW {
        return forward_rows(x, [n, c, p], w, b, eps, y);
    }
    let (mut mean, mut var) = (vec![0f64; c], vec![0f64; c]);
    let isa = cpu::isa();
    let cnt = (n * p).max(1) as f64;
    let (md, vd, yd) = (Disjoint::new(&mut mean), Disjoint::new(&mut var), Disjoint::new(y));
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
                },
            );
            d1 += a;
            d2 += b;
        }
        let (mu, v, [scale, shift]) = channel_stats(m0.to_f64(), [d1, d2], cnt, [w[ch], b[ch]], eps);
        let abc = [T::from_f64(scale), T::ZERO, T::from_f64(shift)];
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
                },
            );
        }
        // SAFETY: element `ch` of each statistic belongs to this channel's task alone.
        unsafe {
            md.range(ch, 1)[0] = mu;
            vd.range(ch, 1)[0] = v;
        }
    });
    (mean, var)
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

/// [`backward`] into uninitialized `dx`, which it writes in full.
#[allow(clippy::too_many_arguments)]
pub fn backward_into<T: Element>(
    x: &[T],
    gy: &[T],
    [n, c, p]: [usize; 3],
    mean: &[f64],
    inv: &[f64],
    w: &[T],
    dx: &mut [MaybeUninit<T>],
) -> (Vec<T>, Vec<T>) {
    let len = n * c * p;
    assert!(x.len() == len && gy.len() == len && dx.len() == len);
    assert!(mean.len() >= c && inv.len() >= c && w.len() >= c);
    if p < ROWS_BELOW {
        return backward_rows(x, gy, [n, c, p], mean, inv, w, dx);
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

/// `s1[j] = Σᵢ u`, `s2[j] = Σᵢ u·d` down the columns `first..first + s1.len()` of the rows
/// (of `len` values) in `x`, with `d = x − m[j]` and `u = g` (or `d` without `g`), in f64.
struct ColSums<'a, T> {
    x: &'a [T],
    g: Option<&'a [T]>,
    m: &'a [f64],
    len: usize,
    first: usize,
    s1: &'a mut [f64],
    s2: &'a mut [f64],
}

impl<T: Element> Loop for ColSums<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let w = self.s1.len();
        for i in 0..self.x.len() / self.len.max(1) {
            let at = i * self.len + self.first;
            let (xs, m) = (&self.x[at..][..w], self.m);
            let cols = self.s1.iter_mut().zip(self.s2.iter_mut()).zip(xs.iter().zip(m));
            match self.g {
                Some(g) => {
                    for (((s1, s2), (&x, &m)), &g) in cols.zip(&g[at..][..w]) {
                        let (d, u) = (x.to_f64() - m, g.to_f64());
                        *s1 += u;
                        *s2 += u * d;
                    }
                }
                None => {
                    for ((s1, s2), (&x, &m)) in cols {
                        let d = x.to_f64() - m;
                        *s1 += d;
                        *s2 += d * d;
                    }
                }
            }
        }
    }
}

/// [`ColSums`] over `[n, c·p]` data in tasks of [`COLS`] columns by [`ROWS`] rows (so a
/// narrow layer with a large batch still spreads over threads), added per column in row
/// order, then per channel (`p` adjacent columns each). Returns the two sums per channel.
fn channel_sums<T: Element>(x: &[T], g: Option<&[T]>, m: &[f64], [c, p]: [usize; 2]) -> (Vec<f64>, Vec<f64>) {
    let len = c * p;
    let n = x.len() / len.max(1);
    let (col_tasks, row_tasks) = (len.div_ceil(COLS), n.div_ceil(ROWS).max(1));
    // Row block r's sums: [s1 of every column, s2 of every column].
    let mut parts = vec![0f64; row_tasks * 2 * len];
    let isa = cpu::isa();
    let out = Disjoint::new(&mut parts);
    run_tiles(col_tasks * row_tasks, threads(x.len()), &|t| {
        let (r, first) = (t / col_tasks, (t % col_tasks) * COLS);
        let width = COLS.min(len - first);
        let rows = r * ROWS * len..((r + 1) * ROWS).min(n) * len;
        // SAFETY: task t alone writes columns first..first + width of block r's two sums.
        let (s1, s2) = unsafe {
            (
                out.range(r * 2 * len + first, width),
                out.range(r * 2 * len + len + first, width),
            )
        };
        vectorized(
            isa,
            ColSums {
                x: &x[rows.clone()],
                g: g.map(|g| &g[rows]),
                m: &m[first..][..width],
                len,
                first,
                s1,
                s2,
            },
        )
    });
    let (mut s1, mut s2) = (vec![0f64; len], vec![0f64; len]);
    for block in parts.chunks(2 * len.max(1)) {
        let (a, b) = block.split_at(len);
        s1.iter_mut().zip(a).for_each(|(s, v)| *s += v);
        s2.iter_mut().zip(b).for_each(|(s, v)| *s += v);
    }
    let per = |s: Vec<f64>| (0..c).map(|ch| s[ch * p..][..p].iter().sum()).collect();
    (per(s1), per(s2))
}

/// `y = a[j]·x + b[j]·g + c[j]` over whole rows (`g` absent: `b` unused).
struct RowAffine<'a, T> {
    x: &'a [T],
    g: Option<&'a [T]>,
    y: &'a mut [MaybeUninit<T>],
    abc: [&'a [T]; 3],
}

impl<T: Element> Loop for RowAffine<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let [a, b, c] = self.abc;
        let len = a.len().max(1);
        for (r, y) in self.y.chunks_mut(len).enumerate() {
            let ys = y.iter_mut().zip(&self.x[r * len..]).zip(a.iter().zip(c));
            match self.g {
                Some(g) => {
                    for (((y, &x), (&a, &c)), (&g, &b)) in ys.zip(g[r * len..].iter().zip(b)) {
                        *y = MaybeUninit::new(a * x + b * g + c);
                    }
                }
                None => {
                    for ((y, &x), (&a, &c)) in ys {
                        *y = MaybeUninit::new(a * x + c);
                    }
                }
            }
        }
    }
}

/// [`RowAffine`] over `[n, len]` data in blocks of whole rows over threads.
fn row_affine<T: Element>(x: &[T], g: Option<&[T]>, abc: [&[T]; 3], y: &mut [MaybeUninit<T>]) {
    let len = abc[0].len().max(1);
    let rows = (super::BLOCK / len).max(1);
    let isa = cpu::isa();
    for_each_chunk_on(threads(x.len()), y, rows * len, &|t, y| {
        let at = t * rows * len;
        vectorized(
            isa,
            RowAffine {
                x: &x[at..][..y.len()],
                g: g.map(|g| &g[at..][..y.len()]),
                y,
                abc,
            },
        )
    });
}

/// Each channel's value repeated over its `p` columns.
fn per_column<T: Copy>(v: &[T], p: usize) -> Vec<T> {
    v.iter().flat_map(|&v| std::iter::repeat_n(v, p)).collect()
}

/// [`forward`] row by row, for small planes.
fn forward_rows<T: Element>(
    x: &[T],
    [n, c, p]: [usize; 3],
    w: &[T],
    b: &[T],
    eps: f64,
    y: &mut [MaybeUninit<T>],
) -> (Vec<f64>, Vec<f64>) {
    let cnt = (n * p).max(1) as f64;
    // The shift: the first image's plane mean per channel (its `p` values, summed in f64).
    let first = |ch: usize| if n == 0 { &x[..0] } else { &x[ch * p..][..p] };
    let m0: Vec<f64> = (0..c)
        .map(|ch| first(ch).iter().map(|v| v.to_f64()).sum::<f64>() / p.max(1) as f64)
        .collect();
    let (d1, d2) = channel_sums(x, None, &per_column(&m0, p), [c, p]);
    let (mut mean, mut var) = (Vec::with_capacity(c), Vec::with_capacity(c));
    let (mut a, mut shift) = (Vec::with_capacity(c), Vec::with_capacity(c));
    for ch in 0..c {
        let (mu, v, [sc, sh]) = channel_stats(m0[ch], [d1[ch], d2[ch]], cnt, [w[ch], b[ch]], eps);
        mean.push(mu);
        var.push(v);
        a.push(T::from_f64(sc));
        shift.push(T::from_f64(sh));
    }
    let (a, shift) = (per_column(&a, p), per_column(&shift, p));
    row_affine(x, None, [&a, &a, &shift], y);
    (mean, var)
}

/// [`backward`] row by row, for small planes.
fn backward_rows<T: Element>(
    x: &[T],
    gy: &[T],
    [n, c, p]: [usize; 3],
    mean: &[f64],
    inv: &[f64],
    w: &[T],
    dx: &mut [MaybeUninit<T>],
) -> (Vec<T>, Vec<T>) {
    let cnt = (n * p).max(1) as f64;
    let (sg, sgx) = channel_sums(x, Some(gy), &per_column(&mean[..c], p), [c, p]);
    let (mut dw, mut db) = (Vec::with_capacity(c), Vec::with_capacity(c));
    let mut abc = [Vec::with_capacity(c), Vec::with_capacity(c), Vec::with_capacity(c)];
    for ch in 0..c {
        let (coef, dwc) = grad_coeffs([sg[ch], sgx[ch]], mean[ch], inv[ch], w[ch], cnt);
        for (list, k) in abc.iter_mut().zip(coef) {
            list.push(T::from_f64(k));
        }
        dw.push(T::from_f64(dwc));
        db.push(T::from_f64(sg[ch]));
    }
    let [a, b, k0] = abc.map(|v| per_column(&v, p));
    row_affine(x, Some(gy), [&a, &b, &k0], dx);
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
