//! Fused softmax + negative log-likelihood over logits laid out `[n, c, s]`: `c` classes,
//! each a run of `s` values per sample image (`s = 1` for `[N, C]` rows, `H·W` for
//! per-pixel losses on `[N, C, H, W]`, read in place, with no permuted copy).
//!
//! Each sample's value goes through the same operations in the same order whatever the
//! layout: the class maximum (NaN wins), `e = exp(x − m)` summed over classes in order,
//! `−log p_t = ln Σ e − (x_t − m)`, and `p = e / Σ e`. So a per-pixel loss is bitwise the
//! one of its row after a permute, and the split over threads never changes a result.

use super::elementwise::{filled, output_vec, vectorized, Loop};
use super::lstm_rows::exp_f32;
use super::par::{for_each_chunk, for_each_chunk2, run_tiles, threads_for, Disjoint};
use super::{BLOCK, PAR_THRESHOLD};
use crate::cpu;
use crate::Element;
use std::any::TypeId;
use std::mem::MaybeUninit;

/// `e^x`: in f32 a polynomial without a library call ([`exp_f32`], within 4e-7 relative of
/// the library's), so the loops over samples vectorize (a library call per value took 3 ns,
/// three quarters of a per-pixel loss); in f64 the library's.
#[inline(always)]
fn exp<T: Element>(x: T) -> T {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        T::from_f64(f64::from(exp_f32(x.to_f64() as f32)))
    } else {
        x.exp()
    }
}

/// Samples per task of the `s > 1` layout (their `c` runs stay in L1).
const PIXELS: usize = 256;

/// The softmax `p` of `x` (`[n, c, s]`) over its classes, and `−log p` at each sample's
/// target (0 for an ignored one, `None`); `tgt` holds the `n·s` samples in `[n, s]` order.
pub fn forward<T: Element>(x: &[T], [n, c, s]: [usize; 3], tgt: &[Option<usize>]) -> (Vec<T>, Vec<T>) {
    assert!(
        x.len() == n * c * s && tgt.len() == n * s,
        "softmax_nll: sizes disagree"
    );
    if c == 0 {
        // No classes: every target was ignored (any other is out of range).
        return (Vec::new(), vec![T::ZERO; tgt.len()]);
    }
    if s == 1 {
        return rows(x, c, tgt);
    }
    let mut loss = output_vec::<T>(tgt.len());
    let blocks = s.div_ceil(PIXELS);
    let isa = cpu::isa();
    let p = filled(x.len(), |p| {
        let (pd, ld) = (Disjoint::new(p), Disjoint::new(&mut loss));
        run_tiles(n * blocks, threads_for(x.len(), PAR_THRESHOLD), &|t| {
            let (i, j0) = (t / blocks, t % blocks * PIXELS);
            let w = PIXELS.min(s - j0);
            // SAFETY: tile (i, j0) alone writes samples j0..j0 + w of image i, in its loss
            // and in each class run of its softmax.
            let l = unsafe { ld.range(i * s + j0, w) };
            // SAFETY: as above; `block` holds one class run at a time.
            let p = |ch: usize| unsafe { pd.range((i * c + ch) * s + j0, w) };
            let x = |ch: usize| &x[(i * c + ch) * s + j0..][..w];
            let tgt = &tgt[i * s + j0..][..w];
            vectorized(isa, Block { x, p, c, tgt, loss: l });
        });
    });
    (p, loss)
}

/// Samples `0..w` of one tile ([`block`]) as a loop for the vector width.
struct Block<'a, T, X, P> {
    x: X,
    p: P,
    c: usize,
    tgt: &'a [Option<usize>],
    loss: &'a mut [T],
}

impl<'a, T: Element, X: Fn(usize) -> &'a [T], P: Fn(usize) -> &'a mut [MaybeUninit<T>]> Loop for Block<'a, T, X, P> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        block(self.x, self.p, self.c, self.tgt, self.loss)
    }
}

/// Samples `0..w` of one tile: `x(ch)` and `p(ch)` are class `ch`'s runs.
#[inline(always)]
fn block<'a, T: Element>(
    x: impl Fn(usize) -> &'a [T],
    p: impl Fn(usize) -> &'a mut [MaybeUninit<T>],
    c: usize,
    tgt: &[Option<usize>],
    loss: &mut [T],
) {
    let w = loss.len();
    let (mut m, mut sum) = ([T::NEG_INFINITY; PIXELS], [T::ZERO; PIXELS]);
    let (m, sum) = (&mut m[..w], &mut sum[..w]);
    for ch in 0..c {
        for (m, &v) in m.iter_mut().zip(x(ch)) {
            *m = if v > *m || v.is_nan() { v } else { *m };
        }
    }
    for ch in 0..c {
        for (((e, &v), &m), s) in p(ch).iter_mut().zip(x(ch)).zip(&*m).zip(sum.iter_mut()) {
            let v = exp(v - m);
            e.write(v);
            *s += v;
        }
    }
    for (j, (l, t)) in loss.iter_mut().zip(tgt).enumerate() {
        *l = t.map_or(T::ZERO, |t| sum[j].ln() - (x(t)[j] - m[j]));
    }
    for ch in 0..c {
        for (e, &s) in p(ch).iter_mut().zip(&*sum) {
            // SAFETY: written by the exp loop above.
            e.write(unsafe { e.assume_init() } / s);
        }
    }
}

/// The `s = 1` layout: one `c`-wide row per sample, blocks of whole rows over threads.
fn rows<T: Element>(x: &[T], c: usize, tgt: &[Option<usize>]) -> (Vec<T>, Vec<T>) {
    let mut p = output_vec::<T>(x.len());
    let mut loss = vec![T::ZERO; tgt.len()];
    let isa = cpu::isa();
    if x.len() < PAR_THRESHOLD {
        vectorized(
            isa,
            RowBlock {
                x,
                c,
                tgt,
                p: &mut p,
                loss: &mut loss,
            },
        );
    } else {
        let rows = (BLOCK / c).max(1);
        for_each_chunk2(&mut p, rows * c, &mut loss, rows, &|i, p, loss| {
            let r = i * rows;
            let (x, tgt) = (&x[r * c..][..p.len()], &tgt[r..][..loss.len()]);
            vectorized(isa, RowBlock { x, c, tgt, p, loss })
        });
    }
    (p, loss)
}

/// [`rows`] over whole rows, into `p` and `loss`.
struct RowBlock<'a, T> {
    x: &'a [T],
    c: usize,
    tgt: &'a [Option<usize>],
    p: &'a mut [T],
    loss: &'a mut [T],
}

impl<T: Element> Loop for RowBlock<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let RowBlock { x, c, tgt, p, loss } = self;
        for (((row, p), t), l) in x.chunks_exact(c).zip(p.chunks_exact_mut(c)).zip(tgt).zip(loss) {
            let m = row
                .iter()
                .fold(T::NEG_INFINITY, |m, &v| if v > m || v.is_nan() { v } else { m });
            let mut s = T::ZERO;
            for (e, &v) in p.iter_mut().zip(row) {
                *e = exp(v - m);
                s += *e;
            }
            // −log p_t = ln Σ exp(x − m) − (x_t − m): the large m cancels before rounding.
            *l = t.map_or(T::ZERO, |t| s.ln() - (row[t] - m));
            p.iter_mut().for_each(|e| *e = *e / s);
        }
    }
}

/// The gradient of the loss with respect to the logits, `[n, c, s]`:
/// `scale · g_q · (p − [class = t_q])` for sample `q`, 0 for an ignored one; `g` holds one
/// gradient per sample, or one for all (a reduced loss).
pub fn backward<T: Element>(g: &[T], p: &[T], [n, c, s]: [usize; 3], tgt: &[Option<usize>], scale: f64) -> Vec<T> {
    assert!(
        p.len() == n * c * s && tgt.len() == n * s,
        "softmax_nll: sizes disagree"
    );
    let k = |q: usize| T::from_f64(scale) * if g.len() == 1 { g[0] } else { g[q] };
    if s == 1 {
        return backward_rows(p, c, tgt, &k);
    }
    let blocks = s.div_ceil(PIXELS);
    filled(p.len(), |gx| {
        let gd = Disjoint::new(gx);
        run_tiles(n * blocks, threads_for(p.len(), PAR_THRESHOLD), &|t| {
            let (i, j0) = (t / blocks, t % blocks * PIXELS);
            let (w, q0) = (PIXELS.min(s - j0), i * s + j0);
            let mut kq = [T::ZERO; PIXELS];
            kq[..w].iter_mut().enumerate().for_each(|(j, v)| *v = k(q0 + j));
            // As the rows: k·p over every class run of the tile (unit-stride loops), then
            // k off at each sample's target, and ignored samples zeroed.
            for ch in 0..c {
                // SAFETY: tile (i, j0) alone writes samples j0..j0 + w of image i's runs.
                let d = unsafe { gd.range((i * c + ch) * s + j0, w) };
                for ((d, &p), &k) in d.iter_mut().zip(&p[(i * c + ch) * s + j0..][..w]).zip(&kq) {
                    d.write(k * p);
                }
            }
            for (j, t) in tgt[q0..q0 + w].iter().enumerate() {
                match *t {
                    Some(t) => {
                        // SAFETY: as above.
                        let d = unsafe { &mut gd.range((i * c + t) * s + j0 + j, 1)[0] };
                        // SAFETY: the loop over the runs wrote this slot.
                        let v = unsafe { d.assume_init() };
                        d.write(v - kq[j]);
                    }
                    None => (0..c).for_each(|ch| {
                        // SAFETY: as above.
                        unsafe { gd.range((i * c + ch) * s + j0 + j, 1)[0].write(T::ZERO) };
                    }),
                }
            }
        });
    })
}

/// [`backward`] for the `s = 1` layout, `k(q)` sample `q`'s factor.
fn backward_rows<T: Element>(p: &[T], c: usize, tgt: &[Option<usize>], k: &(impl Fn(usize) -> T + Sync)) -> Vec<T> {
    // Ignored rows stay 0.
    let mut gx = output_vec::<T>(p.len());
    let c = c.max(1);
    // The output's rows from row `first` on, which `gx` holds.
    let rows = |first: usize, gx: &mut [T]| {
        for (j, (d, p)) in gx.chunks_exact_mut(c).zip(p[first * c..].chunks_exact(c)).enumerate() {
            let i = first + j;
            let Some(t) = tgt[i] else { continue };
            let k = k(i);
            d.iter_mut().zip(p).for_each(|(d, &p)| *d = k * p);
            d[t] = d[t] - k;
        }
    };
    if gx.len() < PAR_THRESHOLD {
        rows(0, &mut gx);
    } else {
        let per = (BLOCK / c).max(1);
        for_each_chunk(&mut gx, per * c, &|b, gx| rows(b * per, gx));
    }
    gx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_rand::uniform_f64;

    /// Plain loops over `[n, c, s]`: the softmax, the losses, and the gradient for
    /// per-sample gradients `g` and `scale`.
    fn reference<T: Element>(
        x: &[T],
        [n, c, s]: [usize; 3],
        tgt: &[Option<usize>],
        g: &[T],
        scale: f64,
    ) -> [Vec<T>; 3] {
        let (mut p, mut loss, mut gx) = (vec![T::ZERO; x.len()], vec![T::ZERO; n * s], vec![T::ZERO; x.len()]);
        let at = |i: usize, ch: usize, j: usize| (i * c + ch) * s + j;
        for i in 0..n {
            for j in 0..s {
                let mut m = T::NEG_INFINITY;
                for ch in 0..c {
                    let v = x[at(i, ch, j)];
                    m = if v > m || v.is_nan() { v } else { m };
                }
                let mut sum = T::ZERO;
                for ch in 0..c {
                    p[at(i, ch, j)] = exp(x[at(i, ch, j)] - m);
                    sum += p[at(i, ch, j)];
                }
                let q = i * s + j;
                if let Some(t) = tgt[q] {
                    loss[q] = sum.ln() - (x[at(i, t, j)] - m);
                }
                let k = T::from_f64(scale) * g[q];
                for ch in 0..c {
                    p[at(i, ch, j)] = p[at(i, ch, j)] / sum;
                    if let Some(t) = tgt[q] {
                        gx[at(i, ch, j)] = k * p[at(i, ch, j)] - if ch == t { k } else { T::ZERO };
                    }
                }
            }
        }
        [p, loss, gx]
    }

    fn check<T: Element + std::fmt::Debug>(dims: [usize; 3]) {
        let [n, c, s] = dims;
        let f = |v: Vec<f64>| v.into_iter().map(T::from_f64).collect::<Vec<T>>();
        let mut x = f(uniform_f64(n * c * s, 3, 20.0));
        // A NaN in sample 0: NaN softmax and loss there only.
        x[(c - 1).min(2) * s] = T::from_f64(f64::NAN);
        let tgt: Vec<Option<usize>> = (0..n * s).map(|q| (q % 5 != 3).then_some(q * 7 % c)).collect();
        let g = f(uniform_f64(n * s, 4, 1.0));
        let [p, loss, gx] = reference(&x, dims, &tgt, &g, 0.5);
        let (gp, gl) = forward(&x, dims, &tgt);
        let bits = |v: &[T]| v.iter().map(|v| v.to_f64().to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&gp), bits(&p), "softmax {dims:?}");
        assert_eq!(bits(&gl), bits(&loss), "loss {dims:?}");
        assert!(gl[0].is_nan() && gl[1..].iter().all(|v| !v.is_nan()));
        assert_eq!(
            bits(&backward(&g, &gp, dims, &tgt, 0.5)),
            bits(&gx),
            "gradient {dims:?}"
        );
        // One gradient for all samples (a reduced loss).
        let g1 = vec![g[0]; n * s];
        let [.., gx1] = reference(&x, dims, &tgt, &g1, 0.5);
        assert_eq!(bits(&backward(&g[..1], &gp, dims, &tgt, 0.5)), bits(&gx1));
    }

    #[test]
    fn both_layouts_match_plain_loops() {
        // Rows and planes, batch 1, odd sizes, a partial last tile, and sizes that go over
        // threads (the planes path in several tiles per image).
        for dims in [
            [1, 3, 1],
            [7, 5, 1],
            [1, 3, 5],
            [2, 11, 37],
            [3, 7, 613],
            [2, 11, 4099],
            [1, 2, 70001],
        ] {
            check::<f64>(dims);
            check::<f32>(dims);
        }
        // No classes: zero losses, nothing else.
        let (p, l) = forward::<f32>(&[], [2, 0, 3], &[None; 6]);
        assert!(p.is_empty() && l == vec![0.0; 6]);
    }
}
