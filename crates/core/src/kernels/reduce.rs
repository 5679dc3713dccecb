//! Reductions over a `[outer, len, inner]` view of a contiguous buffer.
//!
//! Long ones are split over threads with [`super::par`]'s hand-off, where the calling
//! thread starts at once: a rayon `par_iter` from outside the pool parks the caller until
//! a worker wakes, which cost a whole millisecond or more around a 20 µs sum.

use super::elementwise::{vectorized, Loop};
use super::par::for_each_chunk;
use super::{BLOCK, PAR_THRESHOLD};
use crate::cpu;
use crate::Element;

/// Elements per lane summed in the element type before moving to f64: few enough that
/// f32 rounding stays far below the f64 total's (16 additions), many enough that the
/// widening is rare.
const RUN: usize = 16;
/// Independent accumulators: two AVX-512 registers of f32, enough to hide add latency.
const LANES: usize = 32;

/// The sum of a slice in f64 (one task of [`sum`]).
pub(super) struct SumLoop<'a, T>(pub(super) &'a [T]);

impl<T: Element> Loop for SumLoop<'_, T> {
    type Output = f64;
    #[inline(always)]
    fn run(self) -> f64 {
        let mut wide = [0.0f64; LANES];
        let (runs, rest) = self.0.as_chunks::<{ LANES * RUN }>();
        for run in runs {
            let mut acc = [T::ZERO; LANES];
            for c in run.as_chunks::<LANES>().0 {
                for i in 0..LANES {
                    acc[i] += c[i];
                }
            }
            for i in 0..LANES {
                wide[i] += acc[i].to_f64();
            }
        }
        let (chunks, tail) = rest.as_chunks::<LANES>();
        for c in chunks {
            for i in 0..LANES {
                wide[i] += c[i].to_f64();
            }
        }
        // A plain in-order sum: indexing `wide` by a loop variable here (a pairwise
        // tree) made LLVM keep it in memory and stopped the loops above vectorizing.
        let lanes: f64 = wide.iter().sum();
        tail.iter().fold(lanes, |s, v| s + v.to_f64())
    }
}

/// Sum of a slice: many independent accumulators (so it vectorizes), widened to f64
/// every few elements (so f32 data does not lose the small terms), in fixed blocks
/// summed in order (so the result does not depend on the thread count).
pub fn sum<T: Element>(x: &[T]) -> T {
    let isa = cpu::isa();
    let block = |b: &[T]| vectorized(isa, SumLoop(b));
    let total: f64 = if x.len() >= PAR_THRESHOLD {
        partials(x, 0.0, &block).into_iter().sum()
    } else if x.len() > BLOCK {
        x.chunks(BLOCK).map(block).sum()
    } else {
        block(x)
    };
    T::from_f64(total)
}

/// Lanes of [`PlaneSums`]: one AVX-512 register of f32. Planes are short (a convolution
/// output's pixels, 49 to a few thousand), so fewer accumulators leave less to fold.
const PLANE_LANES: usize = 16;

/// The sum in f64 of each `p`-element plane of `x` into `out`, as [`SumLoop`] does (f32
/// runs of [`RUN`] per lane widened to f64), with one vector of accumulators folded
/// pairwise: a bias gradient's thousands of short planes, summed one [`sum`] call each,
/// spent most of their time folding 32 lanes in order and dispatching.
pub(crate) struct PlaneSums<'a, T> {
    /// The planes, back to back.
    pub(crate) x: &'a [T],
    /// Elements per plane (at least one).
    pub(crate) p: usize,
    /// One sum per plane.
    pub(crate) out: &'a mut [f64],
}

impl<T: Element> Loop for PlaneSums<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        const L: usize = PLANE_LANES;
        for (s, plane) in self.out.iter_mut().zip(self.x.chunks_exact(self.p)) {
            let mut wide = [0.0f64; L];
            let (runs, rest) = plane.as_chunks::<{ L * RUN }>();
            let (chunks, tail) = rest.as_chunks::<L>();
            for run in runs.iter().map(|r| &r[..]).chain([chunks.as_flattened()]) {
                let mut acc = [T::ZERO; L];
                for c in run.as_chunks::<L>().0 {
                    for i in 0..L {
                        acc[i] += c[i];
                    }
                }
                for i in 0..L {
                    wide[i] += acc[i].to_f64();
                }
            }
            let h: [f64; 8] = std::array::from_fn(|i| wide[i] + wide[i + 8]);
            let q: [f64; 4] = std::array::from_fn(|i| h[i] + h[i + 4]);
            let total = (q[0] + q[2]) + (q[1] + q[3]);
            *s = tail.iter().fold(total, |s, v| s + v.to_f64());
        }
    }
}

struct LaneFold<'a, T, F> {
    x: &'a [T],
    init: T,
    step: &'a F,
}

impl<T: Element, F: Fn(T, T) -> T> Loop for LaneFold<'_, T, F> {
    type Output = T;
    #[inline(always)]
    fn run(self) -> T {
        let step = self.step;
        let mut acc = [self.init; LANES];
        let (chunks, tail) = self.x.as_chunks::<LANES>();
        for c in chunks {
            for i in 0..LANES {
                acc[i] = step(acc[i], c[i]);
            }
        }
        let lanes = acc.into_iter().fold(self.init, step);
        tail.iter().fold(lanes, |a, &b| step(a, b))
    }
}

/// Fold a slice with an associative, commutative `step` (max, min) whose identity is
/// `init`: in independent lanes, so it vectorizes, and over the pool for long slices.
pub fn fold<T: Element>(x: &[T], init: T, step: impl Fn(T, T) -> T + Sync) -> T {
    let step = &step;
    let isa = cpu::isa();
    let block = |x: &[T]| vectorized(isa, LaneFold { x, init, step });
    if x.len() >= PAR_THRESHOLD {
        partials(x, init, &block).into_iter().fold(init, step)
    } else {
        block(x)
    }
}

/// `block` of each [`BLOCK`]-element block of `x`, in order, the blocks spread over threads.
fn partials<T: Sync, R: Copy + Send>(x: &[T], zero: R, block: &(impl Fn(&[T]) -> R + Sync)) -> Vec<R> {
    let mut partial = vec![zero; x.len().div_ceil(BLOCK)];
    for_each_chunk(&mut partial, 1, &|i, p| {
        p[0] = block(&x[i * BLOCK..][..BLOCK.min(x.len() - i * BLOCK)])
    });
    partial
}

/// `acc[j] = step(acc[j], row[j])`: one row folded into the running result.
struct FoldRow<'a, T, F> {
    acc: &'a mut [T],
    row: &'a [T],
    step: &'a F,
}

impl<T: Element, F: Fn(T, T) -> T> Loop for FoldRow<'_, T, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let step = self.step;
        self.acc.iter_mut().zip(self.row).for_each(|(a, &b)| *a = step(*a, b));
    }
}

/// Reduce `x`, seen as `[outer, len, inner]`, over the middle axis into `out` (`[outer, inner]`).
/// `row` reduces one contiguous run (used when `inner == 1`); `step` folds one element
/// into an accumulator started at `init` (used otherwise).
#[allow(clippy::too_many_arguments)] // shape, closures and output, each needed
pub fn reduce_axis<T: Element>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    out: &mut [T],
    row: impl Fn(&[T]) -> T + Sync,
    init: T,
    step: impl Fn(T, T) -> T + Sync,
) {
    if inner == 1 {
        if outer == 1 {
            out[0] = row(x);
        } else if x.len() >= PAR_THRESHOLD {
            let rows = (BLOCK / len.max(1)).max(1);
            for_each_chunk(out, rows, &|t, o| {
                let xs = &x[t * rows * len..];
                o.iter_mut().zip(xs.chunks(len)).for_each(|(o, r)| *o = row(r));
            });
        } else {
            out.iter_mut().zip(x.chunks(len)).for_each(|(o, r)| *o = row(r));
        }
        return;
    }
    let step = &step;
    let isa = cpu::isa();
    let plane = |o: &mut [T], xs: &[T]| {
        o.iter_mut().for_each(|v| *v = init);
        for r in xs.chunks(inner) {
            vectorized(
                isa,
                FoldRow {
                    acc: &mut *o,
                    row: r,
                    step,
                },
            );
        }
    };
    if x.len() >= PAR_THRESHOLD && outer > 1 {
        let planes = (BLOCK / (len * inner).max(1)).max(1);
        for_each_chunk(out, planes * inner, &|t, o| {
            let xs = &x[t * planes * len * inner..];
            for (o, xs) in o.chunks_mut(inner).zip(xs.chunks(len * inner)) {
                plane(o, xs)
            }
        });
    } else if x.len() >= PAR_THRESHOLD {
        // One plane: split the inner axis instead.
        let cols = inner.div_ceil(rayon::current_num_threads().max(1)).max(1024);
        for_each_chunk(out, cols, &|c, o| {
            let start = c * cols;
            o.iter_mut().for_each(|v| *v = init);
            for r in 0..len {
                let row = &x[r * inner + start..r * inner + start + o.len()];
                vectorized(
                    isa,
                    FoldRow {
                        acc: &mut *o,
                        row,
                        step,
                    },
                );
            }
        });
    } else {
        out.chunks_mut(inner)
            .zip(x.chunks(len * inner))
            .for_each(|(o, xs)| plane(o, xs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_blocked_and_close_to_f64() {
        let x: Vec<f32> = (0..10_000_000).map(|i| ((i % 1000) as f32) * 0.001).collect();
        let exact: f64 = x.iter().map(|&v| v as f64).sum();
        let got = sum(&x) as f64;
        assert!((got - exact).abs() / exact < 1e-5, "{got} vs {exact}");
    }

    #[test]
    fn sum_counts_every_element_once() {
        // Small integers sum exactly in f32 and f64, so any lost or repeated element shows.
        for n in [0, 1, 31, 33, 511, 513, 1000, BLOCK + 7, PAR_THRESHOLD + 1000] {
            let x: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 2.0).collect();
            let exact: i64 = (0..n as i64).map(|i| i % 7 - 2).sum();
            assert_eq!(sum(&x) as i64, exact, "n = {n}");
            let y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            assert_eq!(sum(&y) as i64, exact, "n = {n} (f64)");
        }
    }

    #[test]
    fn plane_sums_count_every_element_once_at_every_level() {
        // Small integers sum exactly, so any lost or repeated element shows; plane lengths
        // around the lanes and the f32 runs (16 and 256), and a bias gradient's 49 and 196.
        for level in cpu::supported() {
            for p in [1, 15, 16, 17, 49, 196, 255, 256, 257, 784, 1000] {
                let x: Vec<f32> = (0..3 * p).map(|i| (i % 7) as f32 - 2.0).collect();
                let exact: Vec<f64> = x.chunks(p).map(|c| c.iter().map(|&v| v as f64).sum()).collect();
                let mut got = vec![f64::NAN; 3];
                vectorized(
                    level,
                    PlaneSums {
                        x: &x,
                        p,
                        out: &mut got,
                    },
                );
                assert_eq!(got, exact, "{level} p = {p}");
                let y: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                vectorized(
                    level,
                    PlaneSums {
                        x: &y,
                        p,
                        out: &mut got,
                    },
                );
                assert_eq!(got, exact, "{level} p = {p} (f64)");
            }
        }
    }

    #[test]
    fn fold_finds_max_min_and_propagates_nan() {
        for n in [1, 31, 33, 1000, PAR_THRESHOLD + 77] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1009) as f32 - 500.0).collect();
            let (hi, lo) = (
                x.iter().copied().fold(f32::MIN, f32::max),
                x.iter().copied().fold(f32::MAX, f32::min),
            );
            assert_eq!(fold(&x, f32::NEG_INFINITY, f32::max_nan), hi, "n = {n}");
            assert_eq!(fold(&x, f32::INFINITY, f32::min_nan), lo, "n = {n}");
            let mut y = x.clone();
            y[n / 2] = f32::NAN;
            assert!(fold(&y, f32::NEG_INFINITY, f32::max_nan).is_nan(), "n = {n}");
            assert!(fold(&y, f32::INFINITY, f32::min_nan).is_nan(), "n = {n}");
        }
        assert_eq!(fold(&[] as &[f64], f64::NEG_INFINITY, f64::max_nan), f64::NEG_INFINITY);
    }

    #[test]
    fn middle_axis() {
        // [2, 3, 2]: sum over the 3
        let x: Vec<f64> = (0..12).map(|v| v as f64).collect();
        let mut out = vec![0.0; 4];
        reduce_axis(&x, 2, 3, 2, &mut out, |r| r.iter().copied().sum(), 0.0, |a, b| a + b);
        assert_eq!(out, vec![6.0, 9.0, 24.0, 27.0]);
    }
}
