//! Gathering a strided view into row-major order (what `contiguous` and readback do).

use super::par::for_each_chunk;
use super::{BLOCK, PAR_THRESHOLD};
use std::mem::MaybeUninit;

/// Side of the square tiles a plain 2-D transpose is copied in.
const TILE: usize = 32;

/// Append the elements of the view (`shape`, `strides`, `offset` into `src`) to `out` in
/// row-major order. Neighbouring dims that walk memory as one are merged first; a unit
/// inner stride copies whole runs, and a plain 2-D transpose goes tile by tile so that
/// both sides stay in cache. Views of [`PAR_THRESHOLD`] elements or more are copied in
/// blocks of whole output rows on every thread (a per-pixel loss's `[N, C, H, W]` →
/// `[N·H·W, C]` permute was a serial copy between parallel ops).
pub fn gather<T: Copy + Send + Sync>(src: &[T], shape: &[usize], strides: &[usize], offset: usize, out: &mut Vec<T>) {
    let n: usize = shape.iter().product();
    if n == 0 {
        return;
    }
    // Merge dims (outermost first), dropping size-1 dims.
    let (mut dims, mut st): (Vec<usize>, Vec<usize>) = (Vec::new(), Vec::new());
    for (&d, &s) in shape.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match (dims.last_mut(), st.last_mut()) {
            (Some(ld), Some(ls)) if *ls == s * d => {
                *ld *= d;
                *ls = s;
            }
            _ => {
                dims.push(d);
                st.push(s);
            }
        }
    }
    if dims.is_empty() {
        out.push(src[offset]);
        return;
    }
    out.reserve(n);
    let start = out.len();
    let dst = &mut out.spare_capacity_mut()[..n];
    let rank = dims.len();
    let inner = dims[rank - 1];
    if rank == 2 && st[1] != 1 && st[0] == 1 {
        // A transpose, in bands of TILE output rows.
        let band = TILE * inner;
        let copy = |b: usize, d: &mut [MaybeUninit<T>]| transpose_band(src, offset + b * TILE, st[1], inner, d);
        if n >= PAR_THRESHOLD {
            for_each_chunk(dst, band * (BLOCK / band).max(1), &|i, d| {
                let per = (BLOCK / band).max(1);
                for (j, d) in d.chunks_mut(band).enumerate() {
                    copy(i * per + j, d)
                }
            });
        } else {
            dst.chunks_mut(band).enumerate().for_each(|(b, d)| copy(b, d));
        }
    } else if n >= PAR_THRESHOLD && rank == 1 && st[0] == 1 {
        // One contiguous run.
        let run = &src[offset..][..n];
        for_each_chunk(dst, BLOCK, &|i, d| {
            d.iter_mut().zip(&run[i * BLOCK..]).for_each(|(o, &v)| {
                o.write(v);
            })
        });
    } else if n >= PAR_THRESHOLD && n > inner {
        let rows = (BLOCK / inner).max(1);
        for_each_chunk(dst, rows * inner, &|i, d| {
            copy_rows(src, &dims, &st, offset, i * rows, d)
        });
    } else {
        copy_rows(src, &dims, &st, offset, 0, dst);
    }
    // SAFETY: the capacity holds `start + n` elements and both paths above wrote every
    // one of the `n` slots after `start` (each output row or band is written whole).
    unsafe { out.set_len(start + n) };
}

/// Output rows `r0..r0 + TILE` (fewer at the end) of the transpose of `src` read from
/// `base` (`out[r][c] = src[base + r + c·is]`), `cols` wide, into `d`.
fn transpose_band<T: Copy>(src: &[T], base: usize, is: usize, cols: usize, d: &mut [MaybeUninit<T>]) {
    let rows = d.len() / cols;
    for c0 in (0..cols).step_by(TILE) {
        for c in c0..(c0 + TILE).min(cols) {
            let b = base + c * is;
            for r in 0..rows {
                d[r * cols + c].write(src[b + r]);
            }
        }
    }
}

/// Rows `first..` of the merged view (`dims`, `st`) into `d`, which holds whole rows.
fn copy_rows<T: Copy>(src: &[T], dims: &[usize], st: &[usize], offset: usize, first: usize, d: &mut [MaybeUninit<T>]) {
    let rank = dims.len();
    let (inner, is) = (dims[rank - 1], st[rank - 1]);
    // The odometer of the outer dims at row `first`.
    let mut pos = vec![0usize; rank - 1];
    let (mut rest, mut base) = (first, offset);
    for k in (0..rank - 1).rev() {
        pos[k] = rest % dims[k];
        rest /= dims[k];
        base += pos[k] * st[k];
    }
    for row in d.chunks_mut(inner) {
        let run = &src[base..];
        if is == 1 {
            row.iter_mut().zip(&run[..inner]).for_each(|(o, &v)| {
                o.write(v);
            });
        } else {
            row.iter_mut().enumerate().for_each(|(j, o)| {
                o.write(run[j * is]);
            });
        }
        // Advance the outer index like an odometer.
        let mut k = rank - 1;
        while k > 0 {
            k -= 1;
            pos[k] += 1;
            base += st[k];
            if pos[k] < dims[k] {
                break;
            }
            base -= st[k] * dims[k];
            pos[k] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Layout;

    fn check(shape: &[usize], strides: &[usize], offset: usize, len: usize) {
        let src: Vec<u32> = (0..len as u32).collect();
        let l = Layout {
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
        };
        let want: Vec<u32> = l.indices().map(|i| src[i]).collect();
        let mut got = Vec::new();
        gather(&src, shape, strides, offset, &mut got);
        assert_eq!(got, want, "shape {shape:?} strides {strides:?}");
    }

    #[test]
    fn matches_the_elementwise_walk() {
        check(&[3, 4], &[1, 3], 0, 12); // transpose
        check(&[70, 45], &[1, 70], 0, 70 * 45); // transpose over several tiles
        check(&[2, 3, 4], &[12, 1, 3], 0, 24); // batched transpose
        check(&[2, 3], &[0, 1], 1, 4); // broadcast rows
        check(&[4, 1, 2], &[4, 9, 1], 1, 16); // narrowed, size-1 dim
        check(&[2, 2, 2], &[1, 4, 2], 0, 8); // permuted
        check(&[], &[], 2, 3); // 0-d
        check(&[0, 3], &[3, 1], 0, 0); // empty
    }

    #[test]
    fn large_views_split_over_threads_match_the_walk() {
        // Past PAR_THRESHOLD, with partial last blocks, tiles and odometer starts.
        check(&[300, 257], &[1, 300], 0, 300 * 257); // transpose
        check(&[4, 3, 9000], &[3, 1, 12], 5, 4 * 3 * 9000 + 5); // [N,C,P] → [N,P,C] view
        check(&[8, 77, 130], &[77 * 130, 1, 77], 0, 8 * 77 * 130); // permuted
        check(&[600, 150], &[0, 1], 3, 153); // broadcast rows
        check(&[70_001], &[2], 1, 140_002); // one strided row
        check(&[3, 30_000], &[30_000, 1], 7, 90_007); // contiguous, with an offset
                                                      // Appends after what `out` already holds.
        let src: Vec<u32> = (0..90_000).collect();
        let mut got = vec![7u32; 3];
        gather(&src, &[300, 300], &[1, 300], 0, &mut got);
        assert_eq!(&got[..4], &[7, 7, 7, 0]);
        assert_eq!(got[3 + 1], 300);
        assert_eq!(got.len(), 90_003);
    }
}
