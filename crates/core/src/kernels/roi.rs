//! RoI align and RoI max pooling over slices, with torchvision.ops' arithmetic.
//!
//! Maps are `[N, C, H, W]` and outputs `[K, C, out_h, out_w]`, both contiguous. The sample
//! positions are computed in the element type `T`, step for step as torchvision's CPU
//! kernels do, so f32 results agree with it to rounding (the bin edges of RoI pooling come
//! from `floor`/`ceil` of `T` products, where a different rounding would move a whole row).
//!
//! Forward kernels split the output by roi, gradient kernels split the input by `(n, c)`
//! plane and visit that image's rois: every element has one writer, so no locks, and the
//! sums run in a fixed order whatever the thread count.

use super::par::{for_each_chunk_on, threads_for, Disjoint};
use super::PAR_THRESHOLD;
use crate::Element;

mod blocked;

/// Whether a map of `channels` goes through the channel-blocked kernels (at least one
/// full block: fewer channels would be mostly padding).
fn use_blocked(channels: usize) -> bool {
    channels >= blocked::CB
}

/// One region: its image and its corners `[x1, y1, x2, y2]` in input-image coordinates
/// (the rois tensor's values, exactly).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roi {
    /// Index of the image in the batch.
    pub batch: usize,
    /// `[x1, y1, x2, y2]`.
    pub corners: [f64; 4],
}

/// Sizes shared by the RoI kernels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoiGeometry {
    /// Images in the batch.
    pub batch: usize,
    /// Channels of the map.
    pub channels: usize,
    /// Map height and width.
    pub hw: [usize; 2],
    /// Output bins per roi, rows and columns.
    pub out: [usize; 2],
    /// Map pixels per image pixel.
    pub spatial_scale: f64,
}

impl RoiGeometry {
    /// Elements of one map plane.
    fn plane(&self) -> usize {
        self.hw[0] * self.hw[1]
    }

    /// Bins of one roi and channel.
    fn bins(&self) -> usize {
        self.out[0] * self.out[1]
    }
}

/// RoI align's sampling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlignOptions {
    /// Samples per bin side; ≤ 0 means `ceil(roi size / output size)`.
    pub sampling_ratio: i64,
    /// Shift the corners by half a pixel (pixel centres at integer + 0.5).
    pub aligned: bool,
}

/// One bilinear sample: the four neighbouring plane offsets and their weights.
#[derive(Debug, Clone, Copy, Default)]
struct Tap<T> {
    pos: [u32; 4],
    w: [T; 4],
}

/// The samples of one roi, grouped by bin; samples outside the map are left out (they
/// contribute 0), but still count in the average.
#[derive(Debug, Clone, Default)]
pub struct AlignTable<T> {
    /// `taps[starts[b]..starts[b + 1]]` are bin `b`'s samples.
    starts: Vec<u32>,
    taps: Vec<Tap<T>>,
    /// Samples per bin (at least 1): the average's divisor.
    count: T,
}

/// The rois of each image, in roi order.
pub fn rois_by_image(rois: &[Roi], batch: usize) -> Vec<Vec<usize>> {
    let mut by = vec![Vec::new(); batch];
    for (k, r) in rois.iter().enumerate() {
        by[r.batch].push(k);
    }
    by
}

/// `v` as `T` (exact for the small integers used here).
fn t<T: Element>(v: f64) -> T {
    T::from_f64(v)
}

/// The bilinear sample at `(y, x)`, or `None` outside the map (torchvision's rule: a
/// sample more than one pixel beyond an edge contributes 0; nearer ones clamp to it).
fn tap<T: Element>(y: T, x: T, hw: [usize; 2]) -> Option<Tap<T>> {
    let [h, w] = hw;
    if h == 0 || w == 0 || y < t(-1.0) || y > t(h as f64) || x < t(-1.0) || x > t(w as f64) {
        return None;
    }
    let y = if y <= T::ZERO { T::ZERO } else { y };
    let x = if x <= T::ZERO { T::ZERO } else { x };
    // y ≥ 0 here, so the cast floors.
    let (yl, xl) = (y.to_f64() as usize, x.to_f64() as usize);
    let (yl, yh, y) = if yl >= h - 1 {
        (h - 1, h - 1, t((h - 1) as f64))
    } else {
        (yl, yl + 1, y)
    };
    let (xl, xh, x) = if xl >= w - 1 {
        (w - 1, w - 1, t((w - 1) as f64))
    } else {
        (xl, xl + 1, x)
    };
    let (ly, lx) = (y - t(yl as f64), x - t(xl as f64));
    let (hy, hx) = (T::ONE - ly, T::ONE - lx);
    Some(Tap {
        pos: [
            (yl * w + xl) as u32,
            (yl * w + xh) as u32,
            (yh * w + xl) as u32,
            (yh * w + xh) as u32,
        ],
        w: [hy * hx, hy * lx, ly * hx, ly * lx],
    })
}

/// The sampling table of one roi (torchvision's `pre_calc`).
pub fn align_table<T: Element>(roi: &Roi, g: &RoiGeometry, o: AlignOptions) -> AlignTable<T> {
    let offset = if o.aligned { 0.5 } else { 0.0 };
    let c = roi.corners.map(|v| t::<T>(v * g.spatial_scale - offset));
    let (x0, y0) = (c[0], c[1]);
    let (mut rw, mut rh) = (c[2] - c[0], c[3] - c[1]);
    if !o.aligned {
        // Without the half-pixel shift torchvision makes every roi at least 1×1.
        rw = if rw > T::ONE { rw } else { T::ONE };
        rh = if rh > T::ONE { rh } else { T::ONE };
    }
    let [oh, ow] = g.out;
    let (bin_h, bin_w) = (rh / t(oh as f64), rw / t(ow as f64));
    let grid = |bin: T| -> usize {
        if o.sampling_ratio > 0 {
            o.sampling_ratio as usize
        } else {
            bin.to_f64().ceil().max(0.0) as usize
        }
    };
    let (gh, gw) = (grid(bin_h), grid(bin_w));
    let count = t::<T>((gh * gw).max(1) as f64);
    let mut starts = Vec::with_capacity(oh * ow + 1);
    let mut taps = Vec::new();
    starts.push(0);
    let (gh_t, gw_t) = (t::<T>(gh as f64), t::<T>(gw as f64));
    for py in 0..oh {
        for px in 0..ow {
            for iy in 0..gh {
                let y = y0 + t::<T>(py as f64) * bin_h + t::<T>(iy as f64 + 0.5) * bin_h / gh_t;
                for ix in 0..gw {
                    let x = x0 + t::<T>(px as f64) * bin_w + t::<T>(ix as f64 + 0.5) * bin_w / gw_t;
                    taps.extend(tap(y, x, g.hw));
                }
            }
            starts.push(taps.len() as u32);
        }
    }
    AlignTable { starts, taps, count }
}

/// The tables of all rois, built in parallel when there are many.
pub fn align_tables<T: Element>(rois: &[Roi], g: &RoiGeometry, o: AlignOptions) -> Vec<AlignTable<T>> {
    let mut tables = vec![AlignTable::default(); rois.len()];
    let threads = threads_for(rois.len() * g.bins() * 4, PAR_THRESHOLD);
    for_each_chunk_on(threads, &mut tables, 16, &|i, chunk| {
        for (j, tb) in chunk.iter_mut().enumerate() {
            *tb = align_table(&rois[i * 16 + j], g, o);
        }
    });
    tables
}

/// Work of one pass over the tables and channels, for the threading threshold.
fn align_work<T>(tables: &[AlignTable<T>], channels: usize) -> usize {
    tables
        .iter()
        .map(|tb| tb.taps.len() * 4 + tb.starts.len())
        .sum::<usize>()
        * channels
}

/// RoI align: `out[k, c, bin]` = the mean of the bilinear samples of bin `bin` of roi `k`
/// in plane `(batch_k, c)` of `x`.
pub fn roi_align_forward<T: Element>(x: &[T], rois: &[Roi], tables: &[AlignTable<T>], g: &RoiGeometry, out: &mut [T]) {
    if out.is_empty() {
        return;
    }
    if use_blocked(g.channels) {
        blocked::align_forward(&blocked::to_blocked(x, g), rois, tables, g, out)
    } else {
        align_forward_planes(x, rois, tables, g, out)
    }
}

/// [`roi_align_forward`] reading the planes of `x` directly.
fn align_forward_planes<T: Element>(x: &[T], rois: &[Roi], tables: &[AlignTable<T>], g: &RoiGeometry, out: &mut [T]) {
    let (plane, bins, ch) = (g.plane(), g.bins(), g.channels);
    let threads = threads_for(align_work(tables, ch), PAR_THRESHOLD);
    for_each_chunk_on(threads, out, ch * bins, &|k, o| {
        let tb = &tables[k];
        let base = rois[k].batch * ch;
        for (c, oc) in o.chunks_exact_mut(bins).enumerate() {
            let p = &x[(base + c) * plane..][..plane];
            for (b, ob) in oc.iter_mut().enumerate() {
                let mut s = T::ZERO;
                for tp in &tb.taps[tb.starts[b] as usize..tb.starts[b + 1] as usize] {
                    let [a, bb, cc, d] = tp.pos.map(|i| p[i as usize]);
                    s += tp.w[0] * a + tp.w[1] * bb + tp.w[2] * cc + tp.w[3] * d;
                }
                *ob = s / tb.count;
            }
        }
    });
}

/// The adjoint of [`roi_align_forward`] (its gradient with respect to `x`): each bin's
/// `gy` spread back over its samples' neighbours with the same weights, into `gx`
/// (`[N, C, H, W]`, overwritten).
pub fn roi_align_adjoint<T: Element>(
    gy: &[T],
    by_image: &[Vec<usize>],
    tables: &[AlignTable<T>],
    g: &RoiGeometry,
    gx: &mut [T],
) {
    if gx.is_empty() {
        return;
    }
    if use_blocked(g.channels) {
        let mut gxb = vec![T::ZERO; g.batch * g.channels.div_ceil(blocked::CB) * g.plane() * blocked::CB];
        blocked::align_adjoint(gy, by_image, tables, g, &mut gxb);
        blocked::from_blocked(&gxb, g, gx);
    } else {
        align_adjoint_planes(gy, by_image, tables, g, gx)
    }
}

/// [`roi_align_adjoint`] writing the planes of `gx` directly.
fn align_adjoint_planes<T: Element>(
    gy: &[T],
    by_image: &[Vec<usize>],
    tables: &[AlignTable<T>],
    g: &RoiGeometry,
    gx: &mut [T],
) {
    let (plane, bins, ch) = (g.plane(), g.bins(), g.channels);
    let threads = threads_for(align_work(tables, ch), PAR_THRESHOLD);
    for_each_chunk_on(threads, gx, plane, &|i, p| {
        // Zeroed here, by the thread that fills the plane next.
        p.fill(T::ZERO);
        let (n, c) = (i / ch, i % ch);
        for &k in &by_image[n] {
            let tb = &tables[k];
            let gk = &gy[(k * ch + c) * bins..][..bins];
            for (b, &gb) in gk.iter().enumerate() {
                for tp in &tb.taps[tb.starts[b] as usize..tb.starts[b + 1] as usize] {
                    for (&q, &w) in tp.pos.iter().zip(&tp.w) {
                        p[q as usize] += gb * w / tb.count;
                    }
                }
            }
        }
    });
}

/// Argmax code of a bin without a maximum: empty (its output is 0), or only NaN or values
/// ≤ −f32::MAX (its output is −f32::MAX, torchvision's starting value). It passes no gradient.
pub const NO_ARGMAX: i32 = -1;

/// A half-open range of map rows or columns, `(start, end)`.
type Span = (usize, usize);

/// The map rows (or columns) of each bin of a roi along one axis: torchvision's rounded
/// corners, at least one pixel, `floor`/`ceil` bin edges clipped to `0..size`.
fn pool_edges<T: Element>(lo: f64, hi: f64, scale: f64, bins: usize, size: usize) -> Vec<Span> {
    // f64::round rounds half away from zero, as C's round.
    let (start, end) = ((lo * scale).round() as i64, (hi * scale).round() as i64);
    let len = (end - start + 1).max(1);
    let bin = t::<T>(len as f64) / t::<T>(bins as f64);
    let clip = |v: i64| (v + start).clamp(0, size as i64) as usize;
    (0..bins)
        .map(|i| {
            let a = (t::<T>(i as f64) * bin).to_f64().floor() as i64;
            let b = (t::<T>((i + 1) as f64) * bin).to_f64().ceil() as i64;
            (clip(a), clip(b))
        })
        .collect()
}

/// RoI max pooling: `out[k, c, bin]`, the maximum of the bin's pixels in plane
/// `(batch_k, c)` of `x`, and `arg[k, c, bin]` its flat plane offset (the first maximum on
/// ties, NaN skipped) or [`NO_ARGMAX`].
pub fn roi_pool_forward<T: Element>(x: &[T], rois: &[Roi], g: &RoiGeometry, out: &mut [T], arg: &mut [i32]) {
    assert_eq!(
        out.len(),
        arg.len(),
        "roi_pool_forward: values and argmax differ in length"
    );
    if arg.is_empty() {
        return;
    }
    if use_blocked(g.channels) {
        blocked::pool_forward(&blocked::to_blocked(x, g), rois, g, out, arg)
    } else {
        pool_forward_planes(x, rois, g, out, arg)
    }
}

/// The map rows and columns of each bin row and bin column of roi `r`.
fn roi_bins<T: Element>(r: &Roi, g: &RoiGeometry) -> (Vec<Span>, Vec<Span>) {
    let [h, w] = g.hw;
    (
        pool_edges::<T>(r.corners[1], r.corners[3], g.spatial_scale, g.out[0], h),
        pool_edges::<T>(r.corners[0], r.corners[2], g.spatial_scale, g.out[1], w),
    )
}

/// The value of a bin at `(y0..y1, x0..x1)` with its argmax, from `p` (one plane, width
/// `w`); torchvision's rule: strictly greater wins, from −f32::MAX, 0 for an empty bin.
fn bin_max<T: Element>(p: &[T], w: usize, (y0, y1): Span, (x0, x1): Span) -> (T, i32) {
    if y1 <= y0 || x1 <= x0 {
        return (T::ZERO, NO_ARGMAX);
    }
    let (mut best, mut at) = (t::<T>(-(f32::MAX as f64)), NO_ARGMAX);
    for y in y0..y1 {
        for (xx, &v) in p[y * w + x0..y * w + x1].iter().enumerate() {
            if v > best {
                best = v;
                at = (y * w + x0 + xx) as i32;
            }
        }
    }
    (best, at)
}

/// [`roi_pool_forward`] reading the planes of `x` directly.
fn pool_forward_planes<T: Element>(x: &[T], rois: &[Roi], g: &RoiGeometry, out: &mut [T], arg: &mut [i32]) {
    let (plane, bins, ch) = (g.plane(), g.bins(), g.channels);
    let values = Disjoint::new(out);
    let threads = threads_for(arg.len() * 4, PAR_THRESHOLD);
    for_each_chunk_on(threads, arg, ch * bins, &|k, a| {
        // SAFETY: roi k's values are `k·C·bins..(k+1)·C·bins` of `out`, as its argmax chunk
        // of `arg` (same length, asserted above); each roi runs once.
        let o = unsafe { values.range(k * ch * bins, ch * bins) };
        let r = &rois[k];
        let (rows, cols) = roi_bins::<T>(r, g);
        for (c, (ac, oc)) in a.chunks_exact_mut(bins).zip(o.chunks_exact_mut(bins)).enumerate() {
            let p = &x[(r.batch * ch + c) * plane..][..plane];
            for (b, (ab, ob)) in ac.iter_mut().zip(oc).enumerate() {
                (*ob, *ab) = bin_max(p, g.hw[1], rows[b / g.out[1]], cols[b % g.out[1]]);
            }
        }
    });
}

/// `out[k, c, bin] = src[batch_k, c, arg[k, c, bin]]`, 0 for [`NO_ARGMAX`]: the gradient of
/// RoI pooling's gradient.
pub fn roi_pool_gather<T: Element>(src: &[T], rois: &[Roi], arg: &[i32], g: &RoiGeometry, out: &mut [T]) {
    let (plane, bins, ch) = (g.plane(), g.bins(), g.channels);
    if out.is_empty() {
        return;
    }
    let threads = threads_for(out.len() * 4, PAR_THRESHOLD);
    for_each_chunk_on(threads, out, ch * bins, &|k, o| {
        let base = rois[k].batch * ch;
        for (c, oc) in o.chunks_exact_mut(bins).enumerate() {
            let p = &src[(base + c) * plane..][..plane];
            let ac = &arg[(k * ch + c) * bins..][..bins];
            for (ob, &i) in oc.iter_mut().zip(ac) {
                *ob = if i == NO_ARGMAX { T::ZERO } else { p[i as usize] };
            }
        }
    });
}

/// RoI max pooling's gradient: each bin's `gy` added at its argmax in `gx`
/// (`[N, C, H, W]`, overwritten); bins without one pass nothing.
pub fn roi_pool_scatter<T: Element>(gy: &[T], by_image: &[Vec<usize>], arg: &[i32], g: &RoiGeometry, gx: &mut [T]) {
    if gx.is_empty() {
        return;
    }
    if use_blocked(g.channels) {
        let mut gxb = vec![T::ZERO; g.batch * g.channels.div_ceil(blocked::CB) * g.plane() * blocked::CB];
        blocked::pool_scatter(gy, by_image, arg, g, &mut gxb);
        blocked::from_blocked(&gxb, g, gx);
    } else {
        pool_scatter_planes(gy, by_image, arg, g, gx)
    }
}

/// [`roi_pool_scatter`] writing the planes of `gx` directly.
fn pool_scatter_planes<T: Element>(gy: &[T], by_image: &[Vec<usize>], arg: &[i32], g: &RoiGeometry, gx: &mut [T]) {
    let (plane, bins, ch) = (g.plane(), g.bins(), g.channels);
    let threads = threads_for(gy.len() * 4 + gx.len(), PAR_THRESHOLD);
    for_each_chunk_on(threads, gx, plane, &|i, p| {
        // Zeroed here, by the thread that fills the plane next.
        p.fill(T::ZERO);
        let (n, c) = (i / ch, i % ch);
        for &k in &by_image[n] {
            let at = (k * ch + c) * bins;
            for (&q, &v) in arg[at..at + bins].iter().zip(&gy[at..at + bins]) {
                if q >= 0 {
                    p[q as usize] += v;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(hw: [usize; 2], out: [usize; 2], scale: f64) -> RoiGeometry {
        RoiGeometry {
            batch: 1,
            channels: 1,
            hw,
            out,
            spatial_scale: scale,
        }
    }

    #[test]
    fn align_samples_bin_centres_and_averages() {
        // A 2×2 roi over a 4×4 ramp, one bin, one sample: its centre (1.5, 1.5) when aligned
        // (corners shifted by half a pixel), (2, 2) without.
        let x: Vec<f64> = (0..16).map(|v| v as f64).collect();
        let roi = [Roi {
            batch: 0,
            corners: [1.0, 1.0, 3.0, 3.0],
        }];
        let g = geom([4, 4], [1, 1], 1.0);
        for (aligned, want) in [(true, 1.5 * 4.0 + 1.5), (false, 2.0 * 4.0 + 2.0)] {
            let o = AlignOptions {
                sampling_ratio: 1,
                aligned,
            };
            let tb = align_tables::<f64>(&roi, &g, o);
            let mut out = [0.0];
            roi_align_forward(&x, &roi, &tb, &g, &mut out);
            assert!((out[0] - want).abs() < 1e-12, "aligned {aligned}: {}", out[0]);
        }
    }

    #[test]
    fn pool_edges_round_and_clip() {
        // Corners 0.4..2.6 at scale 1 round to 0..3: 4 pixels in 2 bins of 2.
        assert_eq!(pool_edges::<f32>(0.4, 2.6, 1.0, 2, 10), vec![(0, 2), (2, 4)]);
        // A roi past the right edge clips its bins; a roi wholly outside leaves them empty.
        assert_eq!(pool_edges::<f32>(8.0, 11.0, 1.0, 2, 10), vec![(8, 10), (10, 10)]);
        assert_eq!(pool_edges::<f32>(20.0, 30.0, 1.0, 1, 10), vec![(10, 10)]);
    }

    #[test]
    fn blocked_kernels_equal_the_plane_kernels() {
        // 20 channels: one full block and one padded; rois inside, across edges, tiny, empty.
        let mut g = geom([7, 9], [3, 2], 0.5);
        g.batch = 2;
        g.channels = 20;
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let x: Vec<f64> = (0..2 * 20 * 63).map(|_| rnd() * 4.0 - 2.0).collect();
        let mut rois = vec![
            Roi {
                batch: 1,
                corners: [-6.0, -5.0, 8.0, 6.0],
            },
            Roi {
                batch: 0,
                corners: [4.4, 6.2, 5.2, 6.8],
            },
            Roi {
                batch: 1,
                corners: [8.0, 4.0, 8.0, 4.0],
            },
            Roi {
                batch: 0,
                corners: [40.0, 40.0, 50.0, 60.0],
            },
        ];
        for k in 0..8 {
            let (x0, y0) = (rnd() * 18.0, rnd() * 14.0);
            rois.push(Roi {
                batch: k % 2,
                corners: [x0, y0, x0 + rnd() * 10.0, y0 + rnd() * 8.0],
            });
        }
        let by = rois_by_image(&rois, 2);
        let n_out = rois.len() * 20 * 6;
        for (sampling_ratio, aligned) in [(0, false), (2, true)] {
            let tb = align_tables::<f64>(
                &rois,
                &g,
                AlignOptions {
                    sampling_ratio,
                    aligned,
                },
            );
            let (mut a, mut b) = (vec![0.0; n_out], vec![0.0; n_out]);
            roi_align_forward(&x, &rois, &tb, &g, &mut a);
            align_forward_planes(&x, &rois, &tb, &g, &mut b);
            assert_eq!(a, b);
            let (mut a, mut b) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            let gy: Vec<f64> = (0..n_out).map(|i| (i % 13) as f64 - 6.0).collect();
            roi_align_adjoint(&gy, &by, &tb, &g, &mut a);
            align_adjoint_planes(&gy, &by, &tb, &g, &mut b);
            assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() <= 1e-12 * (1.0 + q.abs())));
            assert!(b.iter().any(|&v| v != 0.0));
        }
        let (mut a, mut b) = (vec![0; n_out], vec![0; n_out]);
        let (mut va, mut vb) = (vec![0.0; n_out], vec![0.0; n_out]);
        roi_pool_forward(&x, &rois, &g, &mut va, &mut a);
        pool_forward_planes(&x, &rois, &g, &mut vb, &mut b);
        assert_eq!((a.clone(), va), (b, vb));
        assert!(a.contains(&NO_ARGMAX) && a.iter().any(|&i| i > 0));
        let gy: Vec<f64> = (0..n_out).map(|i| (i % 11) as f64 - 5.0).collect();
        let (mut ga, mut gb) = (vec![1.0; x.len()], vec![2.0; x.len()]);
        roi_pool_scatter(&gy, &by, &a, &g, &mut ga);
        pool_scatter_planes(&gy, &by, &a, &g, &mut gb);
        assert_eq!(ga, gb);
        assert!(ga.iter().any(|&v| v != 0.0));
    }
}
