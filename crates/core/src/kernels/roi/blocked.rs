//! The RoI kernels on a channel-blocked copy of the map, `[N, ⌈C/16⌉, H·W, 16]`: every
//! bilinear tap or pooled pixel then reads (or writes) 16 channels side by side, one vector,
//! instead of 16 scattered loads from 16 planes. Used when the map has at least [`CB`]
//! channels (detector features); the results equal the plane kernels' (same sums in the
//! same order), except the align adjoint, which folds `1/count` into the weights.

use super::{AlignTable, Roi, RoiGeometry, Span, NO_ARGMAX};
use crate::cpu::{self, Isa};
use crate::kernels::elementwise::{vectorized, Loop};
use crate::kernels::par::{for_each_chunk_on, threads_for, Disjoint};
use crate::kernels::PAR_THRESHOLD;
use crate::Element;

/// Channels per block.
pub const CB: usize = 16;

/// Channel blocks of `c` channels.
fn blocks(c: usize) -> usize {
    c.div_ceil(CB)
}

/// `x` (`[N, C, H·W]`) as `[N, ⌈C/CB⌉, H·W, CB]`, the padding channels 0.
pub fn to_blocked<T: Element>(x: &[T], g: &RoiGeometry) -> Vec<T> {
    let (plane, ch) = (g.hw[0] * g.hw[1], g.channels);
    let mut xb = vec![T::ZERO; g.batch * blocks(ch) * plane * CB];
    if xb.is_empty() {
        return xb;
    }
    let threads = threads_for(xb.len(), PAR_THRESHOLD);
    for_each_chunk_on(threads, &mut xb, plane * CB, &|i, blk| {
        let (n, cb) = (i / blocks(ch), i % blocks(ch));
        for j in 0..CB.min(ch - cb * CB) {
            let src = &x[(n * ch + cb * CB + j) * plane..][..plane];
            for (d, &v) in blk.iter_mut().skip(j).step_by(CB).zip(src) {
                *d = v;
            }
        }
    });
    xb
}

/// The inverse of [`to_blocked`] into `out` (`[N, C, H·W]`).
pub fn from_blocked<T: Element>(xb: &[T], g: &RoiGeometry, out: &mut [T]) {
    let (plane, ch) = (g.hw[0] * g.hw[1], g.channels);
    if out.is_empty() {
        return;
    }
    let threads = threads_for(out.len(), PAR_THRESHOLD);
    for_each_chunk_on(threads, out, plane, &|i, p| {
        let (n, c) = (i / ch, i % ch);
        let blk = &xb[(n * blocks(ch) + c / CB) * plane * CB..][..plane * CB];
        for (d, &v) in p.iter_mut().zip(blk.iter().skip(c % CB).step_by(CB)) {
            *d = v;
        }
    });
}

/// The 16 channels at plane offset `pos` of a block.
#[inline(always)]
fn lane<T>(blk: &[T], pos: u32) -> &[T; CB] {
    let at = pos as usize * CB;
    blk[at..at + CB].try_into().expect("CB elements")
}

/// One roi of RoI align: all its bins for every channel block.
struct AlignRoi<'a, T> {
    /// The roi's image, blocked: `[⌈C/CB⌉, H·W, CB]`.
    img: &'a [T],
    tb: &'a AlignTable<T>,
    g: &'a RoiGeometry,
    /// `[C, bins]`.
    out: &'a mut [T],
}

impl<T: Element> Loop for AlignRoi<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let (plane, bins, ch) = (
            self.g.hw[0] * self.g.hw[1],
            self.g.out[0] * self.g.out[1],
            self.g.channels,
        );
        let tb = self.tb;
        // Each bin's 16 sums go to `acc` as one vector and are spread over the channels'
        // rows of `out` after the block: storing lanes one by one right after the vector
        // would stall on store forwarding.
        let mut acc = vec![[T::ZERO; CB]; bins];
        for (cb, blk) in self.img.chunks_exact(plane * CB).enumerate() {
            for (b, sums) in acc.iter_mut().enumerate() {
                let mut s = [T::ZERO; CB];
                for tp in &tb.taps[tb.starts[b] as usize..tb.starts[b + 1] as usize] {
                    let [a, bb, c, d] = tp.pos.map(|p| lane(blk, p));
                    let [w0, w1, w2, w3] = tp.w;
                    for j in 0..CB {
                        s[j] += w0 * a[j] + w1 * bb[j] + w2 * c[j] + w3 * d[j];
                    }
                }
                *sums = s;
            }
            let rows = self.out[cb * CB * bins..].chunks_exact_mut(bins);
            for (j, row) in rows.take(CB.min(ch - cb * CB)).enumerate() {
                for (o, sums) in row.iter_mut().zip(&acc) {
                    *o = sums[j] / tb.count;
                }
            }
        }
    }
}

/// [`super::roi_align_forward`] from the blocked map `xb`.
pub fn align_forward<T: Element>(xb: &[T], rois: &[Roi], tables: &[AlignTable<T>], g: &RoiGeometry, out: &mut [T]) {
    let (plane, bins, ch) = (g.hw[0] * g.hw[1], g.out[0] * g.out[1], g.channels);
    let img = blocks(ch) * plane * CB;
    let isa = cpu::isa();
    let work = tables.iter().map(|t| t.taps.len()).sum::<usize>() * 4 * blocks(ch) * CB;
    for_each_chunk_on(threads_for(work, PAR_THRESHOLD), out, ch * bins, &|k, o| {
        let img = &xb[rois[k].batch * img..][..img];
        vectorized(
            isa,
            AlignRoi {
                img,
                tb: &tables[k],
                g,
                out: o,
            },
        )
    });
}

/// One `(image, channel block)` of RoI align's adjoint: every roi of the image spread back.
struct AlignBack<'a, T> {
    gy: &'a [T],
    rois: &'a [usize],
    tables: &'a [AlignTable<T>],
    g: &'a RoiGeometry,
    cb: usize,
    /// `[H·W, CB]`, zeroed.
    blk: &'a mut [T],
}

impl<T: Element> Loop for AlignBack<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let (bins, ch, cb) = (self.g.out[0] * self.g.out[1], self.g.channels, self.cb);
        let width = CB.min(ch - cb * CB);
        // The roi's gradient for this block, transposed to one 16-channel vector per bin
        // (written in full before any is read, so no load waits on those stores).
        let mut gbs = vec![[T::ZERO; CB]; bins];
        for &k in self.rois {
            let tb = &self.tables[k];
            let gk = &self.gy[(k * ch + cb * CB) * bins..][..width * bins];
            for (j, row) in gk.chunks_exact(bins).enumerate() {
                for (gb, &v) in gbs.iter_mut().zip(row) {
                    gb[j] = v;
                }
            }
            for (b, gb) in gbs.iter().enumerate() {
                // A local copy: LLVM cannot tell `gbs` from `blk` and would not vectorize.
                let gb = *gb;
                for tp in &tb.taps[tb.starts[b] as usize..tb.starts[b + 1] as usize] {
                    for (&p, &w) in tp.pos.iter().zip(&tp.w) {
                        let w = w / tb.count;
                        let at = p as usize * CB;
                        let d: &mut [T; CB] = (&mut self.blk[at..at + CB]).try_into().expect("CB elements");
                        for j in 0..CB {
                            d[j] += gb[j] * w;
                        }
                    }
                }
            }
        }
    }
}

/// [`super::roi_align_adjoint`] into the blocked gradient `gxb` (overwritten).
pub fn align_adjoint<T: Element>(
    gy: &[T],
    by_image: &[Vec<usize>],
    tables: &[AlignTable<T>],
    g: &RoiGeometry,
    gxb: &mut [T],
) {
    let plane = g.hw[0] * g.hw[1];
    if gxb.is_empty() {
        return;
    }
    let isa = cpu::isa();
    let work = tables.iter().map(|t| t.taps.len()).sum::<usize>() * 4 * blocks(g.channels) * CB;
    for_each_chunk_on(threads_for(work, PAR_THRESHOLD), gxb, plane * CB, &|i, blk| {
        blk.fill(T::ZERO);
        let (n, cb) = (i / blocks(g.channels), i % blocks(g.channels));
        vectorized(
            isa,
            AlignBack {
                gy,
                rois: &by_image[n],
                tables,
                g,
                cb,
                blk,
            },
        )
    });
}

/// One roi of RoI pooling over every channel block.
struct PoolRoi<'a, T> {
    img: &'a [T],
    rows: &'a [Span],
    cols: &'a [Span],
    g: &'a RoiGeometry,
    /// `[C, bins]` each.
    out: &'a mut [T],
    arg: &'a mut [i32],
}

impl<T: Element> Loop for PoolRoi<'_, T> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let (w, ow, ch) = (self.g.hw[1], self.g.out[1], self.g.channels);
        let (plane, bins) = (self.g.hw[0] * w, self.g.out[0] * ow);
        let floor = T::from_f64(-(f32::MAX as f64));
        // Per bin one vector of maxima and one of argmaxes, spread over the channels' rows
        // after the block (as in `AlignRoi`, to keep lane stores away from vector stores).
        let mut found = vec![([T::ZERO; CB], [NO_ARGMAX; CB]); bins];
        for (cb, blk) in self.img.chunks_exact(plane * CB).enumerate() {
            for (b, f) in found.iter_mut().enumerate() {
                let ((y0, y1), (x0, x1)) = (self.rows[b / ow], self.cols[b % ow]);
                if y1 <= y0 || x1 <= x0 {
                    *f = ([T::ZERO; CB], [NO_ARGMAX; CB]);
                    continue;
                }
                let (mut best, mut at) = ([floor; CB], [NO_ARGMAX; CB]);
                for y in y0..y1 {
                    for x in x0..x1 {
                        let p = (y * w + x) as u32;
                        let v = lane(blk, p);
                        for j in 0..CB {
                            // Strictly greater: the first maximum wins and NaN never does.
                            let gt = v[j] > best[j];
                            best[j] = if gt { v[j] } else { best[j] };
                            at[j] = if gt { p as i32 } else { at[j] };
                        }
                    }
                }
                *f = (best, at);
            }
            let first = cb * CB * bins;
            let rows = self.out[first..]
                .chunks_exact_mut(bins)
                .zip(self.arg[first..].chunks_exact_mut(bins));
            for (j, (vo, ao)) in rows.take(CB.min(ch - cb * CB)).enumerate() {
                for ((v, a), f) in vo.iter_mut().zip(ao.iter_mut()).zip(&found) {
                    (*v, *a) = (f.0[j], f.1[j]);
                }
            }
        }
    }
}

/// [`super::roi_pool_forward`] from the blocked map `xb`.
pub fn pool_forward<T: Element>(xb: &[T], rois: &[Roi], g: &RoiGeometry, out: &mut [T], arg: &mut [i32]) {
    let (plane, bins, ch) = (g.hw[0] * g.hw[1], g.out[0] * g.out[1], g.channels);
    let img = blocks(ch) * plane * CB;
    let isa: Isa = cpu::isa();
    let values = Disjoint::new(out);
    for_each_chunk_on(threads_for(arg.len() * 4, PAR_THRESHOLD), arg, ch * bins, &|k, a| {
        // SAFETY: roi k's values are `k·C·bins..(k+1)·C·bins` of `out`, as its argmax chunk
        // of `arg` (the caller checked the lengths agree); each roi runs once.
        let o = unsafe { values.range(k * ch * bins, ch * bins) };
        let r = &rois[k];
        let (rows, cols) = super::roi_bins::<T>(r, g);
        vectorized(
            isa,
            PoolRoi {
                img: &xb[r.batch * img..][..img],
                rows: &rows,
                cols: &cols,
                g,
                out: o,
                arg: a,
            },
        )
    });
}

/// [`super::roi_pool_scatter`] into the blocked gradient `gxb` (overwritten): per
/// `(image, channel block)`, each roi's `gy` and argmax rows of the block read in one run.
pub fn pool_scatter<T: Element>(gy: &[T], by_image: &[Vec<usize>], arg: &[i32], g: &RoiGeometry, gxb: &mut [T]) {
    let (plane, bins, ch) = (g.hw[0] * g.hw[1], g.out[0] * g.out[1], g.channels);
    if gxb.is_empty() {
        return;
    }
    let threads = threads_for(gy.len() * 4 + gxb.len(), PAR_THRESHOLD);
    for_each_chunk_on(threads, gxb, plane * CB, &|i, blk| {
        blk.fill(T::ZERO);
        let (n, cb) = (i / blocks(ch), i % blocks(ch));
        let width = CB.min(ch - cb * CB);
        for &k in &by_image[n] {
            let at = (k * ch + cb * CB) * bins;
            let rows = arg[at..at + width * bins]
                .chunks_exact(bins)
                .zip(gy[at..at + width * bins].chunks_exact(bins));
            for (j, (ar, gr)) in rows.enumerate() {
                for (&q, &v) in ar.iter().zip(gr) {
                    if q != NO_ARGMAX {
                        blk[q as usize * CB + j] += v;
                    }
                }
            }
        }
    });
}
