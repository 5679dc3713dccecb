//! Reductions over a `[outer, len, inner]` view of a contiguous buffer.

use super::{BLOCK, PAR_THRESHOLD};
use crate::Element;
use rayon::prelude::*;

/// Sum of a slice: 8 independent f64 accumulators (so it vectorizes and f32 data does
/// not lose the small terms), in fixed blocks summed in order (so the result does not
/// depend on the thread count).
pub fn sum<T: Element>(x: &[T]) -> T {
    fn block<T: Element>(x: &[T]) -> f64 {
        let mut acc = [0.0f64; 8];
        let chunks = x.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for i in 0..8 {
                acc[i] += c[i].to_f64();
            }
        }
        let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for &v in rest {
            s += v.to_f64();
        }
        s
    }
    let total: f64 = if x.len() >= PAR_THRESHOLD {
        let partial: Vec<f64> = x.par_chunks(BLOCK).map(block).collect();
        partial.into_iter().sum()
    } else if x.len() > BLOCK {
        x.chunks(BLOCK).map(block).sum()
    } else {
        block(x)
    };
    T::from_f64(total)
}

/// Reduce `x`, seen as `[outer, len, inner]`, over the middle axis into `out` (`[outer, inner]`).
/// `row` reduces one contiguous run (used when `inner == 1`); `step` folds one element
/// into an accumulator started at `init` (used otherwise).
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
            out.par_iter_mut().zip(x.par_chunks(len)).for_each(|(o, r)| *o = row(r));
        } else {
            out.iter_mut().zip(x.chunks(len)).for_each(|(o, r)| *o = row(r));
        }
        return;
    }
    let plane = |o: &mut [T], xs: &[T]| {
        o.iter_mut().for_each(|v| *v = init);
        for r in xs.chunks(inner) {
            o.iter_mut().zip(r).for_each(|(a, &b)| *a = step(*a, b));
        }
    };
    if x.len() >= PAR_THRESHOLD && outer > 1 {
        out.par_chunks_mut(inner)
            .zip(x.par_chunks(len * inner))
            .for_each(|(o, xs)| plane(o, xs));
    } else if x.len() >= PAR_THRESHOLD {
        // One plane: split the inner axis instead.
        let cols = inner.div_ceil(rayon::current_num_threads().max(1)).max(1024);
        out.par_chunks_mut(cols).enumerate().for_each(|(c, o)| {
            let start = c * cols;
            o.iter_mut().for_each(|v| *v = init);
            for r in 0..len {
                let src = &x[r * inner + start..r * inner + start + o.len()];
                o.iter_mut().zip(src).for_each(|(a, &b)| *a = step(*a, b));
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
    fn middle_axis() {
        // [2, 3, 2]: sum over the 3
        let x: Vec<f64> = (0..12).map(|v| v as f64).collect();
        let mut out = vec![0.0; 4];
        reduce_axis(&x, 2, 3, 2, &mut out, |r| r.iter().copied().sum(), 0.0, |a, b| a + b);
        assert_eq!(out, vec![6.0, 9.0, 24.0, 27.0]);
    }
}
