//! Convolution by im2col + GEMM over groups of images, for layers whose images have few
//! output pixels and whose weights are large (ResNet-18's 8×8 and 4×4 stages): there one
//! image's product has 64 or 16 columns against weights of up to 512 × 4608, so a product
//! per image streams all the weights through `gemm`'s packing for a handful of
//! multiply-adds each. Here the columns of a group of images sit side by side
//! (`[c·kh·kw, count·p]`) until the product has [`GROUP_COLS`] of them, and one threaded
//! product serves the whole group.
//!
//! The forward pass scatters the product's `[o, count·p]` rows back to each image. The input
//! gradient gathers the output gradient into that layout, multiplies by `wᵀ` into columns
//! and folds each image's columns back. The weight gradient (`weight`) builds its columns
//! with [`columns`] too. Groups are fixed by the shapes, and every output element is one
//! product's element, so results do not depend on the thread count.

pub(super) use super::geom::Pool;
use super::geom::{im2col_rows, padded, rows, tap_offsets, ConvGeom};
use crate::kernels::matmul::{gemm, Mat, PAR_FLOPS};
use crate::kernels::par::{for_each_chunk_on, run_tiles, threads_for, Disjoint};
use crate::Element;

/// Images are grouped until the product has this many columns (output pixels).
pub(super) const GROUP_COLS: usize = 512;

/// Columns of one task's product in the forward pass and input gradient.
const LOCAL_COLS: usize = 128;

/// Column-building and gathering tasks per group (channel ranges), enough to balance a few
/// threads.
const TASKS: usize = 8;

/// Whether the forward pass and input gradient of `g` take this path: several images of
/// at most 128 output pixels each, and weights too large to stay in cache between images
/// (32 Ki elements per conv group, so LeNet-5's layers keep their own kernels).
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.n > 1 && g.p() <= 128 && g.og() * g.k() >= 1 << 15
}

/// Images per group for `g` (fixed by the shapes).
pub(super) fn group_images(g: &ConvGeom) -> usize {
    GROUP_COLS.div_ceil(g.p().max(1)).clamp(1, g.n.max(1))
}

/// Images per task of the forward pass and input gradient: [`LOCAL_COLS`] columns. Each
/// task builds its columns and runs its product on one thread, in buffers that stay in
/// that core's cache; one threaded product over [`GROUP_COLS`] columns ran slower (4×4,
/// 512 → 512, batch 32: forward 11.1 → 9.2 ms; at 8×8, 256 → 256: 14.0 → 9.2 ms).
///
/// Up to twice that when more images fill the products' column tiles better: the AVX-512
/// product works in 64-column tiles, so DCGAN's 49-pixel images go 5 at a time (245 of
/// 256 columns busy) rather than 3 (147 of 192). Every output element is the same sum
/// whatever the count, so this changes speed only.
fn local_images(g: &ConvGeom) -> usize {
    const TILE: usize = 64;
    let p = g.p().max(1);
    let lo = LOCAL_COLS.div_ceil(p);
    let busy = |c: usize| (c * p) as f64 / (c * p).next_multiple_of(TILE) as f64;
    // The fewest images among the best filled (within 1%).
    let best = (lo..=(2 * LOCAL_COLS).div_ceil(p).max(lo))
        .map(busy)
        .fold(0.0, f64::max);
    let count = (lo..).find(|&c| busy(c) >= best - 0.01).unwrap_or(lo);
    count.clamp(1, g.n.max(1))
}

/// Threads for the work of `g`: one for small layers, where a hand-off costs more.
fn threads(g: &ConvGeom) -> usize {
    threads_for(g.flops(), PAR_FLOPS)
}

/// The columns of images `n0..n0 + count` of `x` into `cols`, laid out
/// `[c·kh·kw, count·p]` with image `i`'s pixels from column `i·p`; `pads` holds their padded
/// copies (`count · pad_len` elements, unused without padding).
pub(super) fn columns<T: Element>(
    g: &ConvGeom,
    x: &[T],
    n0: usize,
    count: usize,
    pads: &mut [T],
    cols: &mut [T],
    threads: usize,
) {
    let (img, pad_len, taps, p) = (g.c * g.h * g.w, g.pad_len(), g.kh * g.kw, g.p());
    let ld = count * p;
    let image = |i: usize| &x[(n0 + i) * img..][..img];
    if pad_len > 0 {
        for_each_chunk_on(threads, &mut pads[..count * pad_len], pad_len, &|i, buf| {
            padded(g, image(i), buf);
        });
    }
    let pads = &pads[..];
    let per = g.c.div_ceil(TASKS).max(1);
    // Once per call, for the image loop below (`im2col_rows` takes it where rows are short).
    let offsets = (g.stride[1] >= 2).then(|| tap_offsets(g));
    let offsets = offsets.as_ref().map(|(idx, span)| (&idx[..], *span));
    for_each_chunk_on(threads, &mut cols[..g.c * taps * ld], per * taps * ld, &|t, part| {
        let chans = t * per..((t + 1) * per).min(g.c);
        for i in 0..count {
            let xp = if pad_len > 0 {
                &pads[i * pad_len..][..pad_len]
            } else {
                image(i)
            };
            im2col_rows(g, xp, chans.clone(), part, ld, i * p, offsets);
        }
    });
}

/// [`conv2d_forward`](super::conv2d_forward), a group of images per task.
pub(super) fn forward<T: Element>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, out: &mut [T]) {
    let (k, p, og, oimg) = (g.k(), g.p(), g.og(), g.o * g.p());
    let group = local_images(g);
    let (cols, pads, prods) = (
        Pool::new(g.c * g.kh * g.kw * group * p),
        Pool::new(g.pad_len() * group),
        Pool::new(g.o * group * p),
    );
    let base = Disjoint::new(&mut out[..g.n * oimg]);
    run_tiles(g.n.div_ceil(group), threads(g), &|task| {
        let n0 = task * group;
        let count = group.min(g.n - n0);
        let ld = count * p;
        let (mut c, mut pad, mut prod) = (cols.take(), pads.take(), prods.take());
        columns(g, x, n0, count, &mut pad, &mut c, 1);
        for gi in 0..g.groups {
            let dst = &mut prod[gi * og * ld..(gi + 1) * og * ld];
            let (a, b) = (rows(w, gi * og * k, k), rows(&c, gi * k * ld, ld));
            gemm(og, ld, k, a, b, dst, false, 1);
        }
        // SAFETY: task `task` alone writes images n0..n0 + count, and `out` stays borrowed
        // for the call.
        let y = unsafe { base.range(n0 * oimg, count * oimg) };
        for (i, y) in y.chunks_mut(oimg).enumerate() {
            for (oc, plane) in y.chunks_mut(p).enumerate() {
                let src = &prod[oc * ld + i * p..][..p];
                match bias {
                    Some(b) => plane.iter_mut().zip(src).for_each(|(d, &s)| *d = s + b[oc]),
                    None => plane.copy_from_slice(src),
                }
            }
        }
        cols.put(c);
        pads.put(pad);
        prods.put(prod);
    });
}

/// [`conv2d_backward_input`](super::conv2d_backward_input), a group of images per task.
pub(super) fn backward_input<T: Element>(g: &ConvGeom, dy: &[T], w: &[T], bias: Option<&[T]>, dx: &mut [T]) {
    let (k, p, og, img) = (g.k(), g.p(), g.og(), g.c * g.h * g.w);
    let group = local_images(g);
    let (cols, dys) = (Pool::new(g.c * g.kh * g.kw * group * p), Pool::new(g.o * group * p));
    let base = Disjoint::new(&mut dx[..g.n * img]);
    let table = (g.stride[1] >= 2).then(|| tap_offsets(g));
    run_tiles(g.n.div_ceil(group), threads(g), &|task| {
        let n0 = task * group;
        let count = group.min(g.n - n0);
        let ld = count * p;
        let (mut c, mut dyg) = (cols.take(), dys.take());
        let mut acc = Vec::new();
        gather(dy, g.o, p, n0, count, &mut dyg, 1);
        for gi in 0..g.groups {
            // `w` of this conv group read as its transpose, `k × og`.
            let wt = Mat {
                data: w,
                rs: 1,
                cs: k,
                offset: gi * og * k,
            };
            let dst = &mut c[gi * k * ld..(gi + 1) * k * ld];
            gemm(k, ld, og, wt, rows(&dyg, gi * og * ld, ld), dst, false, 1);
        }
        // SAFETY: as in `forward`.
        let dx = unsafe { base.range(n0 * img, count * img) };
        for (i, dxi) in dx.chunks_mut(img).enumerate() {
            fold(g, &c, ld, i * p, dxi, table.as_ref(), &mut acc);
            if let Some(b) = bias {
                for (plane, &bv) in dxi.chunks_mut(g.h * g.w).zip(b) {
                    plane.iter_mut().for_each(|v| *v += bv);
                }
            }
        }
        cols.put(c);
        dys.put(dyg);
    });
}

/// Images `n0..n0 + count` of `src` (`[n, chans, p]`) into `dst` laid out
/// `[chans, count·p]`, image `i` from column `i·p`.
pub(super) fn gather<T: Element>(
    src: &[T],
    chans: usize,
    p: usize,
    n0: usize,
    count: usize,
    dst: &mut [T],
    threads: usize,
) {
    let ld = count * p;
    let per = chans.div_ceil(TASKS).max(1);
    for_each_chunk_on(threads, &mut dst[..chans * ld], per * ld, &|t, part| {
        let first = t * per;
        for (r, row) in part.chunks_mut(ld).enumerate() {
            for i in 0..count {
                row[i * p..][..p].copy_from_slice(&src[((n0 + i) * chans + first + r) * p..][..p]);
            }
        }
    });
}

/// Fold one image's columns (`cols` laid out `[c·kh·kw, ld]`, its pixels from column
/// `first`) into `dx` (`[c, h, w]`), adding overlapping taps in channel-then-tap order and
/// skipping the taps that fall in the padding. Strided layers fold through `table`
/// ([`tap_offsets`], computed once per call) into `acc`, a padded plane reused per task.
fn fold<T: Element>(
    g: &ConvGeom,
    cols: &[T],
    ld: usize,
    first: usize,
    dx: &mut [T],
    table: Option<&(Vec<u32>, usize)>,
    acc: &mut Vec<T>,
) {
    let ([sh, sw], [dh, dw], [ph, pw]) = (g.stride, g.dilation, g.padding);
    let (p, ow, plane) = (g.p(), g.ow, g.h * g.w);
    if let Some((idx, span)) = table.filter(|_| sw >= 2) {
        // Into a padded plane through the offset table (see `geom::tap_offsets`), then its
        // interior out: one bounds-checked element every sw-th ran row by row at DCGAN's
        // 7-wide rows. Each element gets its taps in (i, j, y, x) order from zero, as below.
        let [hp, wp] = g.padded_hw();
        let span = *span;
        acc.resize(hp * wp, T::ZERO);
        for (c, dxc) in dx.chunks_mut(plane).take(g.c).enumerate() {
            acc.fill(T::ZERO);
            for t in 0..g.kh * g.kw {
                let (i, j) = (t / g.kw, t % g.kw);
                let row = &cols[(c * g.kh * g.kw + t) * ld + first..][..p];
                let dst = &mut acc[i * dh * wp + j * dw..][..span];
                row.iter().zip(idx).for_each(|(&s, &o)| dst[o as usize] += s);
            }
            for (r, row) in dxc.chunks_mut(g.w).enumerate() {
                row.copy_from_slice(&acc[(r + ph) * wp + pw..][..g.w]);
            }
        }
        return;
    }
    dx[..g.c * plane].fill(T::ZERO);
    // Output columns whose tap `j` lands inside the row: `0 ≤ x·sw + j·dw − pw < w`.
    let span = |j: usize| {
        let off = j * dw;
        let lo = pw.saturating_sub(off).div_ceil(sw);
        let hi = if g.w + pw > off {
            (g.w + pw - off).div_ceil(sw).min(ow)
        } else {
            0
        };
        (lo, hi.max(lo))
    };
    for c in 0..g.c {
        let dxc = &mut dx[c * plane..][..plane];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((c * g.kh + i) * g.kw + j) * ld + first..][..p];
                let (lo, hi) = span(j);
                for (y, seg) in row.chunks(ow).enumerate() {
                    let Some(ih) = (y * sh + i * dh).checked_sub(ph).filter(|&r| r < g.h) else {
                        continue;
                    };
                    let base = ih * g.w + j * dw;
                    if sw == 1 {
                        let dst = &mut dxc[base + lo - pw..base + hi - pw];
                        dst.iter_mut().zip(&seg[lo..hi]).for_each(|(d, &s)| *d += s);
                    } else {
                        for (xo, &s) in seg.iter().enumerate().take(hi).skip(lo) {
                            dxc[base + xo * sw - pw] += s;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::im2col::{im2col_backward_input, im2col_forward};
    use super::*;

    fn seq(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|i| (i as f64 * 0.37 + seed).sin()).collect()
    }

    #[test]
    fn groups_of_images_match_im2col() {
        let geom = |n, c, hw: [usize; 2], o, k: [usize; 2], s: [usize; 2], pad: [usize; 2], d: [usize; 2], groups| {
            ConvGeom::new([n, c, hw[0], hw[1]], [o, k[0], k[1]], s, pad, d, groups)
        };
        // 25 pixels per image (groups of 21 images, the last partial), strides, dilation,
        // asymmetric padding, conv groups, 1×1 with and without stride, one image.
        for g in [
            geom(23, 4, [5, 5], 6, [3, 3], [1, 1], [1, 1], [1, 1], 1),
            geom(5, 6, [9, 8], 4, [3, 2], [2, 3], [1, 0], [1, 1], 2),
            geom(3, 4, [8, 9], 4, [3, 3], [1, 2], [2, 1], [2, 1], 4),
            geom(40, 3, [4, 4], 5, [3, 3], [1, 1], [1, 1], [1, 1], 1),
            geom(7, 4, [6, 6], 3, [1, 1], [2, 2], [0, 0], [1, 1], 1),
            geom(6, 4, [3, 5], 3, [1, 1], [1, 1], [0, 0], [1, 1], 1),
            geom(1, 2, [5, 4], 3, [2, 3], [1, 1], [1, 2], [1, 1], 1),
        ] {
            let x = seq(g.n * g.c * g.h * g.w, 0.3);
            let w = seq(g.o * g.k(), 1.1);
            let b = seq(g.o.max(g.c), 2.0);
            let dy = seq(g.n * g.o * g.p(), 0.9);
            let close = |a: &[f64], b: &[f64], what: &str| {
                assert_eq!(a.len(), b.len());
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    assert!(
                        (x - y).abs() < 1e-12 * (1.0 + y.abs()),
                        "{what} {g:?} at {i}: {x} vs {y}"
                    );
                }
            };
            for bias in [None, Some(&b[..])] {
                let (mut want, mut got) = (vec![0.0; dy.len()], vec![f64::NAN; dy.len()]);
                im2col_forward(&g, &x, &w, bias.map(|b| &b[..g.o]), &mut want);
                forward(&g, &x, &w, bias.map(|b| &b[..g.o]), &mut got);
                close(&got, &want, "forward");
                let (mut want, mut got) = (vec![0.0; x.len()], vec![f64::NAN; x.len()]);
                im2col_backward_input(&g, &dy, &w, bias.map(|b| &b[..g.c]), &mut want);
                backward_input(&g, &dy, &w, bias.map(|b| &b[..g.c]), &mut got);
                close(&got, &want, "backward input");
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // f32 through the threaded products: 40 images of 4×4, in groups of 32 and 8.
        let g = ConvGeom::new([40, 64, 4, 4], [64, 3, 3], [1, 1], [1, 1], [1, 1], 1);
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        let (x, w, dy) = (
            f(seq(g.n * g.c * g.h * g.w, 0.3)),
            f(seq(g.o * g.k(), 1.1)),
            f(seq(g.n * g.o * g.p(), 0.9)),
        );
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let (mut y, mut dx) = (vec![0f32; dy.len()], vec![0f32; x.len()]);
                forward(&g, &x, &w, None, &mut y);
                backward_input(&g, &dy, &w, None, &mut dx);
                [y, dx].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            })
        };
        assert!(applies(&g));
        assert!(run(1) == run(3));
    }

    #[test]
    fn resnet_deep_layers_take_it_and_lenet_does_not() {
        let g = |n, c, hw, o, k, s, pad| ConvGeom::new([n, c, hw, hw], [o, k, k], [s; 2], [pad; 2], [1, 1], 1);
        assert!(applies(&g(32, 512, 4, 512, 3, 1, 1)));
        assert!(applies(&g(32, 256, 8, 256, 3, 1, 1)));
        assert!(applies(&g(32, 128, 16, 256, 3, 2, 1)));
        assert!(!applies(&g(1, 512, 4, 512, 3, 1, 1)));
        assert!(!applies(&g(64, 6, 14, 16, 5, 1, 0)));
        assert!(!applies(&g(64, 1, 28, 6, 5, 1, 2)));
    }
}
