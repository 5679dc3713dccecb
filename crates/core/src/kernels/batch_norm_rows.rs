//! The row-by-row walk of [`super`] for small planes (`p` under [`super::ROWS_BELOW`]):
//! column sums split over threads, then per-column affine passes over whole rows.

use super::super::elementwise::{vectorized, Loop};
use super::super::par::{for_each_chunk_on, run_tiles, Disjoint};
use super::{channel_stats, grad_coeffs, threads, Activation, Gate, Leaky, Open, Pass, Relu, COLS, ROWS};
use crate::cpu;
use crate::Element;
use std::mem::MaybeUninit;

/// An activation's gate on the gradient, column by column: `ac[0][j]·x + ac[1][j]` is the
/// forward's normalized value in column `j` (as [`Gate`] has one channel's).
#[derive(Clone, Copy)]
struct ColGate<'a, T> {
    gate: Gate<T>,
    ac: [&'a [T]; 2],
}

impl<'a, T: Copy> ColGate<'a, T> {
    /// The gate of columns `first..first + width`.
    fn cols(self, first: usize, width: usize) -> Self {
        let ac = self.ac.map(|v| if v.is_empty() { v } else { &v[first..][..width] });
        ColGate { gate: self.gate, ac }
    }
}

/// `$body` with `$q(a, c)` the [`Pass`] of `$gate`'s variant for one column's `[a, c]`.
macro_rules! with_col_pass {
    ($gate:expr, $q:ident => $body:expr) => {
        match $gate {
            Gate::Open => {
                let $q = |_, _| Open;
                $body
            }
            Gate::Relu(_) => {
                let $q = |a, c| Relu([a, c]);
                $body
            }
            Gate::Leaky(_, s) => {
                let $q = move |a, c| Leaky([a, c], s);
                $body
            }
        }
    };
}

/// `s1[j] = Σᵢ u`, `s2[j] = Σᵢ u·d` down the columns `first..first + s1.len()` of the rows
/// (of `len` values) in `x`, with `d = x − m[j]` and `u = g` through the gate (or `d`
/// without `g`), in f64.
struct ColSums<'a, T> {
    x: &'a [T],
    g: Option<&'a [T]>,
    gate: ColGate<'a, T>,
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
                Some(g) if matches!(self.gate.gate, Gate::Open) => {
                    for (((s1, s2), (&x, &m)), &g) in cols.zip(&g[at..][..w]) {
                        let (d, u) = (x.to_f64() - m, g.to_f64());
                        *s1 += u;
                        *s2 += u * d;
                    }
                }
                Some(g) => {
                    let [ga, gc] = self.gate.ac;
                    with_col_pass!(self.gate.gate, q => {
                        let gates = ga.iter().zip(gc);
                        for ((((s1, s2), (&x, &m)), &g), (&a, &c)) in cols.zip(&g[at..][..w]).zip(gates) {
                            let (d, u) = (x.to_f64() - m, q(a, c).pass(g, x).to_f64());
                            *s1 += u;
                            *s2 += u * d;
                        }
                    })
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
fn channel_sums<T: Element>(
    x: &[T],
    g: Option<&[T]>,
    gate: ColGate<'_, T>,
    m: &[f64],
    [c, p]: [usize; 2],
) -> (Vec<f64>, Vec<f64>) {
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
                gate: gate.cols(first, width),
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

/// `y = a[j]·x + b[j]·u + c[j]` over whole rows, `u` = `g` through the gate, or without
/// `g` (`b` unused) `y = act(a[j]·x + c[j])`, the activation that of `gate`.
struct RowAffine<'a, T> {
    x: &'a [T],
    g: Option<&'a [T]>,
    y: &'a mut [MaybeUninit<T>],
    abc: [&'a [T]; 3],
    gate: ColGate<'a, T>,
}

impl<T: Element> Loop for RowAffine<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let [a, b, c] = self.abc;
        let len = a.len().max(1);
        let [ga, gc] = self.gate.ac;
        for (r, y) in self.y.chunks_mut(len).enumerate() {
            let ys = y.iter_mut().zip(&self.x[r * len..]).zip(a.iter().zip(c));
            match self.g {
                Some(g) if matches!(self.gate.gate, Gate::Open) => {
                    for (((y, &x), (&a, &c)), (&g, &b)) in ys.zip(g[r * len..].iter().zip(b)) {
                        *y = MaybeUninit::new(a * x + b * g + c);
                    }
                }
                Some(g) => with_col_pass!(self.gate.gate, q => {
                    let gates = ga.iter().zip(gc);
                    for ((((y, &x), (&a, &c)), (&g, &b)), (&qa, &qc)) in ys.zip(g[r * len..].iter().zip(b)).zip(gates) {
                        *y = MaybeUninit::new(a * x + b * q(qa, qc).pass(g, x) + c);
                    }
                }),
                None => with_pass!(self.gate.gate, q => {
                    for ((y, &x), (&a, &c)) in ys {
                        *y = MaybeUninit::new(q.act(a * x + c));
                    }
                }),
            }
        }
    }
}

/// [`RowAffine`] over `[n, len]` data in blocks of whole rows over threads.
fn row_affine<T: Element>(x: &[T], g: Option<&[T]>, abc: [&[T]; 3], gate: ColGate<'_, T>, y: &mut [MaybeUninit<T>]) {
    let len = abc[0].len().max(1);
    let rows = (super::super::BLOCK / len).max(1);
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
                gate,
            },
        )
    });
}

/// Each channel's value repeated over its `p` columns.
fn per_column<T: Copy>(v: &[T], p: usize) -> Vec<T> {
    v.iter().flat_map(|&v| std::iter::repeat_n(v, p)).collect()
}

/// [`super::forward_act_into`] row by row.
pub(super) fn forward<T: Element>(
    x: &[T],
    [n, c, p]: [usize; 3],
    w: &[T],
    b: &[T],
    eps: f64,
    act: Activation,
    y: &mut [MaybeUninit<T>],
) -> (Vec<f64>, Vec<f64>, Vec<[T; 2]>) {
    let cnt = (n * p).max(1) as f64;
    // The shift: the first image's plane mean per channel (its `p` values, summed in f64).
    let first = |ch: usize| if n == 0 { &x[..0] } else { &x[ch * p..][..p] };
    let m0: Vec<f64> = (0..c)
        .map(|ch| first(ch).iter().map(|v| v.to_f64()).sum::<f64>() / p.max(1) as f64)
        .collect();
    let none = ColGate {
        gate: Gate::Open,
        ac: [&[], &[]],
    };
    let (d1, d2) = channel_sums(x, None, none, &per_column(&m0, p), [c, p]);
    let (mut mean, mut var) = (Vec::with_capacity(c), Vec::with_capacity(c));
    let (mut a, mut shift) = (Vec::with_capacity(c), Vec::with_capacity(c));
    for ch in 0..c {
        let (mu, v, [sc, sh]) = channel_stats(m0[ch], [d1[ch], d2[ch]], cnt, [w[ch], b[ch]], eps);
        mean.push(mu);
        var.push(v);
        a.push(T::from_f64(sc));
        shift.push(T::from_f64(sh));
    }
    let ac = a.iter().zip(&shift).map(|(&a, &c)| [a, c]).collect();
    let (a, shift) = (per_column(&a, p), per_column(&shift, p));
    // The activation alone matters here (`[a, c]` are per column).
    let gate = ColGate {
        gate: Gate::new(act, [T::ZERO; 2]),
        ac: [&[], &[]],
    };
    row_affine(x, None, [&a, &a, &shift], gate, y);
    (mean, var, ac)
}

/// [`super::backward_act_into`] row by row: the gradient gated by `act` (with each
/// channel's forward constants `ac`; unused for [`Activation::Identity`]) as it is read.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward<T: Element>(
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
    let cnt = (n * p).max(1) as f64;
    let (ga, gc) = match act {
        Activation::Identity => (vec![], vec![]),
        _ => (
            per_column(&ac[..c].iter().map(|v| v[0]).collect::<Vec<_>>(), p),
            per_column(&ac[..c].iter().map(|v| v[1]).collect::<Vec<_>>(), p),
        ),
    };
    let gate = ColGate {
        gate: Gate::new(act, [T::ZERO; 2]),
        ac: [&ga, &gc],
    };
    let (sg, sgx) = channel_sums(x, Some(gy), gate, &per_column(&mean[..c], p), [c, p]);
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
    row_affine(x, Some(gy), [&a, &b, &k0], gate, dx);
    (dw, db)
}
