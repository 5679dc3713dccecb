//! Pooling and resampling kernels over contiguous `[planes, h, w]` buffers, one plane
//! (an `(n, c)` pair) at a time: max and mean over windows, gather/scatter by flat
//! per-plane indices, nearest and bilinear interpolation, each with its adjoint.
//!
//! Every pass is separable: the caller describes the rows and the columns of the output
//! once (windows, source indices or interpolation weights), and the kernels combine them.
//! Planes are independent, so splitting them over threads never changes a result.

use super::par::{for_each_chunk, for_each_chunk2};
use super::{BLOCK, PAR_THRESHOLD};
use crate::Element;
use std::hint::select_unpredictable;
use std::mem::MaybeUninit;

mod tiled;
pub use tiled::{filled, max_pool_tiled, max_pool_tiled_backward, Tiles};

/// Clipped input range `start..end` feeding each output position along one axis.
pub type Windows = Vec<(usize, usize)>;

/// The clipped windows of a strided sweep, and the window sizes PyTorch's average
/// pooling divides by when counting padding (clipped to the padded input only).
pub fn pool_windows(size: usize, out: usize, kernel: usize, stride: usize, pad: usize) -> (Windows, Vec<usize>) {
    (0..out)
        .map(|o| {
            let start = (o * stride) as isize - pad as isize;
            let end = (start + kernel as isize).min((size + pad) as isize);
            let padded_len = (end - start) as usize;
            let clip = |v: isize| v.clamp(0, size as isize) as usize;
            ((clip(start), clip(end)), padded_len)
        })
        .unzip()
}

/// Adaptive pooling windows: output `i` reads `floor(i·size/out) .. ceil((i+1)·size/out)`.
pub fn adaptive_windows(size: usize, out: usize) -> Windows {
    (0..out)
        .map(|i| (i * size / out, ((i + 1) * size).div_ceil(out)))
        .collect()
}

/// Run `f(plane index, plane of out)` for every plane, in parallel when `work` is large.
/// Whole planes go in groups of about [`BLOCK`] elements on [`for_each_chunk`]'s cheap
/// hand-off (rayon's cost tens of microseconds a call, and a task per small plane more).
fn for_planes<T: Send>(out: &mut [T], plane: usize, work: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if plane == 0 {
        return;
    }
    let group = |first: usize, o: &mut [T]| {
        for (i, o) in o.chunks_mut(plane).enumerate() {
            f(first + i, o)
        }
    };
    if work >= PAR_THRESHOLD {
        let per = (BLOCK / plane).max(1);
        for_each_chunk(out, per * plane, &|t, o| group(t * per, o));
    } else {
        group(0, out);
    }
}

/// View initialized `out` as slots, for the kernels that write uninitialized output.
fn as_slots<T>(out: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has `T`'s layout, and the kernels only store initialized
    // values, so `out` stays initialized.
    unsafe { &mut *(out as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// A regular sweep of windows along one axis: `out` windows of `kernel` taps, `stride`
/// apart, starting `pad` before the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Number of windows.
    pub out: usize,
    /// Taps per window.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// Padding before the input.
    pub pad: usize,
}

impl Sweep {
    /// Windows `o` in `lo..hi` whose tap `j` (at `o·stride + j − pad`) lands in `0..size`.
    fn tap_range(&self, j: usize, size: usize) -> (usize, usize) {
        let off = j as isize - self.pad as isize;
        let lo = if off >= 0 { 0 } else { (-off) as usize }.div_ceil(self.stride);
        let last = size as isize - 1 - off;
        let hi = if last < 0 {
            0
        } else {
            (last as usize / self.stride + 1).min(self.out)
        };
        (lo.min(hi), hi)
    }
}

/// Keep `v` in `best` if it is larger or NaN (branch-free, so the loops vectorize).
#[inline(always)]
fn take<T: Element>(v: T, best: T) -> bool {
    (v > best) | v.is_nan()
}

/// Fold tap `src[q·s]` into window `q` of a row of windows (`best`, and the flat index
/// `base + q·s` into `at` when tracked). `S` fixes the stride at compile time (0: use `s`)
/// so the common strides vectorize.
#[inline(always)]
fn tap_row<T: Element, const S: usize>(src: &[T], best: &mut [T], at: Option<&mut [u32]>, base: u32, s: usize) {
    let s = if S == 0 { s } else { S };
    let n = best.len();
    if n == 0 || (n - 1) * s >= src.len() {
        return;
    }
    // Which tap wins is data-dependent: plain selects became branches that mispredicted
    // on random data (measured 10× slower), so the index select is marked unpredictable.
    if let Some(at) = at {
        for (q, a) in at[..n].iter_mut().enumerate() {
            *a = select_unpredictable(take(src[q * s], best[q]), base + (q * s) as u32, *a);
        }
    }
    for q in 0..n {
        let (v, b) = (src[q * s], best[q]);
        best[q] = if take(v, b) { v } else { b };
    }
}

/// Max over each window of each `[h, w]` plane of `x` (rows by window, columns by sweep).
/// With `idx`, also the flat index (`ih·w + iw`) of each maximum. NaN wins over any number
/// (the last NaN in a window, as PyTorch); ties keep the first in row-major window order;
/// a window of only −∞ reports its first element, so an index is always in range.
///
/// Each output row is built tap by tap over the whole row of windows, which keeps the
/// innermost loop free of window bounds and branches.
pub fn max_pool<T: Element>(
    x: &[T],
    hw: [usize; 2],
    rows: &Windows,
    cols: &Sweep,
    out: &mut [T],
    idx: Option<&mut [u32]>,
) {
    let (w, plane, ow) = (hw[1], hw[0] * hw[1], cols.out);
    let oplane = rows.len() * ow;
    let taps: Vec<(usize, usize)> = (0..cols.kernel).map(|j| cols.tap_range(j, w)).collect();
    let (s, pad) = (cols.stride, cols.pad);
    let one = |p: usize, o: &mut [T], mut ix: Option<&mut [u32]>| {
        let xp = &x[p * plane..(p + 1) * plane];
        for (oy, &(h0, h1)) in rows.iter().enumerate() {
            let best = &mut o[oy * ow..(oy + 1) * ow];
            best.fill(T::NEG_INFINITY);
            let mut at = ix.as_deref_mut().map(|i| &mut i[oy * ow..(oy + 1) * ow]);
            if let Some(at) = at.as_deref_mut() {
                for (ox, a) in at.iter_mut().enumerate() {
                    *a = (h0 * w + (ox * s).saturating_sub(pad).min(w.saturating_sub(1))) as u32;
                }
            }
            for ih in h0..h1 {
                let row = &xp[ih * w..(ih + 1) * w];
                for (j, &(lo, hi)) in taps.iter().enumerate() {
                    if lo == hi {
                        continue;
                    }
                    let first = lo * s + j - pad;
                    let at = at.as_deref_mut().map(|a| &mut a[lo..hi]);
                    let base = (ih * w + first) as u32;
                    match s {
                        1 => tap_row::<T, 1>(&row[first..], &mut best[lo..hi], at, base, 1),
                        2 => tap_row::<T, 2>(&row[first..], &mut best[lo..hi], at, base, 2),
                        _ => tap_row::<T, 0>(&row[first..], &mut best[lo..hi], at, base, s),
                    }
                }
            }
        }
    };
    if oplane == 0 {
        return;
    }
    let work = x.len().max(out.len());
    match idx {
        None => for_planes(out, oplane, work, |p, o| one(p, o, None)),
        Some(ix) if work >= PAR_THRESHOLD => {
            let per = (BLOCK / oplane).max(1) * oplane;
            for_each_chunk2(out, per, ix, per, &|t, o, ix| {
                for (p, (o, i)) in o.chunks_mut(oplane).zip(ix.chunks_mut(oplane)).enumerate() {
                    one(t * per / oplane + p, o, Some(i))
                }
            })
        }
        Some(ix) => out
            .chunks_mut(oplane)
            .zip(ix.chunks_mut(oplane))
            .enumerate()
            .for_each(|(p, (o, i))| one(p, o, Some(i))),
    }
}

/// Weighted sum over each window: `out[q] = scale[q] · Σ_window x` (a mean when `scale`
/// holds reciprocal window sizes).
pub fn window_sum<T: Element>(x: &[T], hw: [usize; 2], rows: &Windows, cols: &Windows, scale: &[T], out: &mut [T]) {
    let (w, plane, oplane) = (hw[1], hw[0] * hw[1], rows.len() * cols.len());
    for_planes(out, oplane, x.len().max(out.len()), |p, o| {
        let xp = &x[p * plane..(p + 1) * plane];
        for (oy, &(h0, h1)) in rows.iter().enumerate() {
            for (ox, &(w0, w1)) in cols.iter().enumerate() {
                let mut s = T::ZERO;
                for ih in h0..h1 {
                    for &v in &xp[ih * w + w0..ih * w + w1] {
                        s += v;
                    }
                }
                let q = oy * cols.len() + ox;
                o[q] = s * scale[q];
            }
        }
    });
}

/// Adjoint of [`window_sum`]: `gx[window of q] += scale[q] · gy[q]`.
pub fn window_sum_adjoint<T: Element>(
    gy: &[T],
    hw: [usize; 2],
    rows: &Windows,
    cols: &Windows,
    scale: &[T],
    gx: &mut [T],
) {
    let (w, plane, oplane) = (hw[1], hw[0] * hw[1], rows.len() * cols.len());
    for_planes(gx, plane, gy.len().max(gx.len()), |p, g| {
        g.fill(T::ZERO);
        let gp = &gy[p * oplane..(p + 1) * oplane];
        for (oy, &(h0, h1)) in rows.iter().enumerate() {
            for (ox, &(w0, w1)) in cols.iter().enumerate() {
                let q = oy * cols.len() + ox;
                let v = gp[q] * scale[q];
                for ih in h0..h1 {
                    for d in &mut g[ih * w + w0..ih * w + w1] {
                        *d += v;
                    }
                }
            }
        }
    });
}

/// `out[p, q] = x[p, idx[p, q]]` for planes of `in_plane` inputs and `idx.len() / planes`
/// outputs. The caller guarantees every index is below `in_plane`.
pub fn gather<T: Element>(x: &[T], in_plane: usize, idx: &[u32], out: &mut [T]) {
    gather_into(x, in_plane, idx, as_slots(out))
}

/// [`gather`] into uninitialized `out`, which it writes in full.
pub fn gather_into<T: Element>(x: &[T], in_plane: usize, idx: &[u32], out: &mut [MaybeUninit<T>]) {
    let planes = x.len().checked_div(in_plane).unwrap_or(0);
    let oplane = out.len().checked_div(planes).unwrap_or(0);
    for_planes(out, oplane, out.len(), |p, o| {
        let xp = &x[p * in_plane..(p + 1) * in_plane];
        for (d, &i) in o.iter_mut().zip(&idx[p * oplane..(p + 1) * oplane]) {
            d.write(xp[i as usize]);
        }
    });
}

/// Adjoint of [`gather`]: `out[p, idx[p, q]] += y[p, q]` into zeroed planes of
/// `out_plane` elements (or `=` when not `accumulate`: the later of equal indices wins).
/// Returns false, leaving that value out, when an index is not below `out_plane`.
pub fn scatter<T: Element>(y: &[T], idx: &[u32], out_plane: usize, out: &mut [T], accumulate: bool) -> bool {
    scatter_into(y, idx, out_plane, as_slots(out), accumulate)
}

/// [`scatter`] into uninitialized `out`, which it writes in full: each plane is zeroed
/// just before its values land, so it is written while in cache, in one pass over `out`.
pub fn scatter_into<T: Element>(
    y: &[T],
    idx: &[u32],
    out_plane: usize,
    out: &mut [MaybeUninit<T>],
    accumulate: bool,
) -> bool {
    let planes = out.len().checked_div(out_plane).unwrap_or(0);
    let yplane = y.len().checked_div(planes).unwrap_or(0);
    if planes == 0 {
        // No output planes: only an empty `y` has every index in range.
        return y.is_empty();
    }
    let bad = std::sync::atomic::AtomicBool::new(false);
    for_planes(out, out_plane, out.len().max(y.len()), |p, o| {
        o.fill(MaybeUninit::new(T::ZERO));
        // SAFETY: every slot of the plane was just written.
        let o = unsafe { &mut *(o as *mut [MaybeUninit<T>] as *mut [T]) };
        let ip = &idx[p * yplane..(p + 1) * yplane];
        for (&v, &i) in y[p * yplane..(p + 1) * yplane].iter().zip(ip) {
            match o.get_mut(i as usize) {
                Some(d) if accumulate => *d += v,
                Some(d) => *d = v,
                None => bad.store(true, std::sync::atomic::Ordering::Relaxed),
            }
        }
    });
    !bad.into_inner()
}

/// Nearest-neighbour resampling: `out[p, y, x] = src[p, rows[y], cols[x]]` for source
/// planes `hw`.
pub fn nearest<T: Element>(x: &[T], hw: [usize; 2], rows: &[usize], cols: &[usize], out: &mut [T]) {
    let (w, plane, oplane) = (hw[1], hw[0] * hw[1], rows.len() * cols.len());
    for_planes(out, oplane, out.len(), |p, o| {
        let xp = &x[p * plane..(p + 1) * plane];
        for (orow, &r) in o.chunks_mut(cols.len()).zip(rows) {
            for (d, &c) in orow.iter_mut().zip(cols) {
                *d = xp[r * w + c];
            }
        }
    });
}

/// Adjoint of [`nearest`]: each source pixel sums the outputs that copied it.
pub fn nearest_adjoint<T: Element>(gy: &[T], hw: [usize; 2], rows: &[usize], cols: &[usize], gx: &mut [T]) {
    let (w, plane, oplane) = (hw[1], hw[0] * hw[1], rows.len() * cols.len());
    for_planes(gx, plane, gx.len().max(gy.len()), |p, g| {
        g.fill(T::ZERO);
        for (grow, &r) in gy[p * oplane..(p + 1) * oplane].chunks(cols.len()).zip(rows) {
            for (&v, &c) in grow.iter().zip(cols) {
                g[r * w + c] += v;
            }
        }
    });
}

/// One output coordinate of a linear interpolation: `l0·src[i0] + l1·src[i1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lerp<T> {
    /// Lower source index.
    pub i0: usize,
    /// Upper source index (equal to `i0` at the last row or column).
    pub i1: usize,
    /// Weight of `i0`.
    pub l0: T,
    /// Weight of `i1`.
    pub l1: T,
}

/// Bilinear resampling, separable in rows and columns.
pub fn bilinear<T: Element>(x: &[T], hw: [usize; 2], rows: &[Lerp<T>], cols: &[Lerp<T>], out: &mut [T]) {
    let (w, plane, oplane) = (hw[1], hw[0] * hw[1], rows.len() * cols.len());
    for_planes(out, oplane, out.len(), |p, o| {
        let xp = &x[p * plane..(p + 1) * plane];
        for (orow, r) in o.chunks_mut(cols.len()).zip(rows) {
            let (top, bottom) = (&xp[r.i0 * w..(r.i0 + 1) * w], &xp[r.i1 * w..(r.i1 + 1) * w]);
            for (d, c) in orow.iter_mut().zip(cols) {
                *d = r.l0 * (c.l0 * top[c.i0] + c.l1 * top[c.i1]) + r.l1 * (c.l0 * bottom[c.i0] + c.l1 * bottom[c.i1]);
            }
        }
    });
}

/// Adjoint of [`bilinear`]: each output spreads its gradient over its four sources.
pub fn bilinear_adjoint<T: Element>(gy: &[T], hw: [usize; 2], rows: &[Lerp<T>], cols: &[Lerp<T>], gx: &mut [T]) {
    let (w, plane, oplane) = (hw[1], hw[0] * hw[1], rows.len() * cols.len());
    for_planes(gx, plane, gx.len().max(gy.len()), |p, g| {
        g.fill(T::ZERO);
        for (grow, r) in gy[p * oplane..(p + 1) * oplane].chunks(cols.len()).zip(rows) {
            for (&v, c) in grow.iter().zip(cols) {
                let (a, b) = (r.l0 * v, r.l1 * v);
                g[r.i0 * w + c.i0] += a * c.l0;
                g[r.i0 * w + c.i1] += a * c.l1;
                g[r.i1 * w + c.i0] += b * c.l0;
                g[r.i1 * w + c.i1] += b * c.l1;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_clip_and_count_padding() {
        let (w, n) = pool_windows(5, 3, 3, 2, 1);
        assert_eq!(w, vec![(0, 2), (1, 4), (3, 5)]);
        assert_eq!(n, vec![3, 3, 3]);
        // ceil-mode window running past the padded input counts only up to it
        let (w, n) = pool_windows(4, 2, 3, 3, 0);
        assert_eq!((w, n), (vec![(0, 3), (3, 4)], vec![3, 1]));
        assert_eq!(adaptive_windows(7, 3), vec![(0, 3), (2, 5), (4, 7)]);
    }

    fn rows_of(h: usize) -> Windows {
        vec![(0, h)]
    }

    #[test]
    fn max_pool_nan_wins_and_indices_stay_in_range() {
        let x = [
            1.0f32,
            f32::NAN,
            3.0,
            2.0,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        let rows = vec![(0, 2)];
        let cols = Sweep {
            out: 2,
            kernel: 2,
            stride: 2,
            pad: 0,
        };
        let mut out = [0.0f32; 2];
        let mut idx = [9u32; 2];
        max_pool(&x, [2, 4], &rows, &cols, &mut out, Some(&mut idx));
        assert!(out[0].is_nan());
        assert_eq!(idx[0], 1);
        assert_eq!(out[1], 3.0);
        assert_eq!(idx[1], 2);
        let all_neg_inf = [f32::NEG_INFINITY; 4];
        // one window starting in the padding: its first real element is column 0
        let cols = Sweep {
            out: 1,
            kernel: 2,
            stride: 1,
            pad: 1,
        };
        let rows = vec![(0, 2)];
        max_pool(&all_neg_inf, [2, 2], &rows, &cols, &mut out[..1], Some(&mut idx[..1]));
        assert_eq!(idx[0], 0);
        let cols = Sweep {
            out: 2,
            kernel: 1,
            stride: 1,
            pad: 0,
        };
        let rows = vec![(1, 2)];
        max_pool(&all_neg_inf, [2, 2], &rows, &cols, &mut out, Some(&mut idx));
        assert_eq!(idx, [2, 3]);
        // ties keep the first in row-major window order, NaN the last
        let x = [2.0f32, 1.0, 5.0, 5.0, 2.0, 0.0, f32::NAN, f32::NAN];
        let cols = Sweep {
            out: 2,
            kernel: 2,
            stride: 2,
            pad: 0,
        };
        max_pool(&x, [2, 4], &rows_of(2), &cols, &mut out, Some(&mut idx));
        assert_eq!(idx, [0, 7]);
    }

    #[test]
    fn scatter_is_the_adjoint_of_gather() {
        let x: Vec<f64> = (0..12).map(|v| v as f64).collect();
        let idx = [3u32, 0, 3, 5, 5, 1];
        let mut g = [0.0; 6];
        gather(&x, 6, &idx, &mut g);
        assert_eq!(g, [3.0, 0.0, 3.0, 11.0, 11.0, 7.0]);
        let mut s = [0.0; 12];
        scatter(&[1.0, 2.0, 4.0, 1.0, 2.0, 4.0], &idx, 6, &mut s, true);
        assert_eq!(s, [2.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 4.0, 0.0, 0.0, 0.0, 3.0]);
        scatter(&[1.0, 2.0, 4.0, 1.0, 2.0, 4.0], &idx, 6, &mut s, false);
        assert_eq!(s[3], 4.0);
    }

    /// `gather_into` and `scatter_into` (uninitialized output, planes over threads) against
    /// plain loops, for `planes` planes of `small` values and `big` slots.
    fn gather_scatter_match_loops<T: Element + std::fmt::Debug>(planes: usize, small: usize, big: usize) {
        let x: Vec<T> = crate::kernels::test_rand::uniform_f64(planes * big, 7, 4.0)
            .into_iter()
            .map(T::from_f64)
            .collect();
        let y: Vec<T> = crate::kernels::test_rand::uniform_f64(planes * small, 9, 4.0)
            .into_iter()
            .map(T::from_f64)
            .collect();
        let y = &y[..];
        // Indices with repeats (about `small` draws from `big` slots), every one in range.
        let idx: Vec<u32> = crate::kernels::test_rand::uniform_f64(planes * small, 8, 1.0)
            .iter()
            .map(|u| ((u + 1.0) / 2.0 * big as f64) as u32 % big as u32)
            .collect();
        let got = filled(planes * small, |o| gather_into(&x, big, &idx, o));
        let want: Vec<T> = (0..planes * small)
            .map(|q| x[q / small * big + idx[q] as usize])
            .collect();
        assert_eq!(got, want);
        for accumulate in [false, true] {
            let mut want = vec![T::ZERO; planes * big];
            for (q, &v) in y.iter().enumerate() {
                let d = &mut want[q / small * big + idx[q] as usize];
                *d = if accumulate { *d + v } else { v };
            }
            let mut fits = false;
            let got = filled(planes * big, |o| fits = scatter_into(y, &idx, big, o, accumulate));
            assert!(fits);
            assert_eq!(got, want, "accumulate {accumulate}");
        }
        // An index past the plane is reported and left out; the other values still land.
        let mut bad = idx.clone();
        let last = bad.len() - 1;
        bad[last] = big as u32;
        let mut fits = true;
        let got = filled(planes * big, |o| fits = scatter_into(y, &bad, big, o, true));
        assert!(!fits);
        assert_eq!(
            got.iter().filter(|v| **v != T::ZERO).count() > 0,
            small > 1 || planes > 1
        );
    }

    #[test]
    fn gather_and_scatter_into_uninitialized_match_loops() {
        // Batch 1, odd sizes, and a case large enough to split planes over threads.
        gather_scatter_match_loops::<f64>(1, 35, 143);
        gather_scatter_match_loops::<f32>(1, 35, 143);
        gather_scatter_match_loops::<f32>(3, 7, 5);
        gather_scatter_match_loops::<f64>(61, 401, 1599);
        gather_scatter_match_loops::<f32>(61, 401, 1599);
        // No output planes: only an empty input fits.
        assert!(scatter_into::<f32>(&[], &[], 4, &mut [], false));
        assert!(!scatter_into::<f32>(&[1.0], &[0], 0, &mut [], false));
    }
}
