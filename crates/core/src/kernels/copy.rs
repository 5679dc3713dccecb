//! Gathering a strided view into row-major order (what `contiguous` and readback do).

/// Append the elements of the view (`shape`, `strides`, `offset` into `src`) to `out` in
/// row-major order. Neighbouring dims that walk memory as one are merged first; a unit
/// inner stride copies whole runs, and a plain 2-D transpose goes tile by tile so that
/// both sides stay in cache.
pub fn gather<T: Copy>(src: &[T], shape: &[usize], strides: &[usize], offset: usize, out: &mut Vec<T>) {
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
    let rank = dims.len();
    let (inner, is) = (dims[rank - 1], st[rank - 1]);
    if rank == 2 && is != 1 && st[0] == 1 {
        // A transpose: out[r][c] = src[offset + r + c*is].
        const TILE: usize = 32;
        let (rows, cols) = (dims[0], inner);
        let start = out.len();
        out.resize(start + n, src[offset]);
        let dst = &mut out[start..];
        for r0 in (0..rows).step_by(TILE) {
            for c0 in (0..cols).step_by(TILE) {
                for c in c0..(c0 + TILE).min(cols) {
                    let base = offset + c * is;
                    for r in r0..(r0 + TILE).min(rows) {
                        dst[r * cols + c] = src[base + r];
                    }
                }
            }
        }
        return;
    }
    let rows = n / inner;
    let mut pos = vec![0usize; rank - 1];
    let mut base = offset;
    for _ in 0..rows {
        if is == 1 {
            out.extend_from_slice(&src[base..base + inner]);
        } else {
            out.extend((0..inner).map(|j| src[base + j * is]));
        }
        // Advance the outer index like an odometer.
        let mut d = rank - 1;
        while d > 0 {
            d -= 1;
            pos[d] += 1;
            base += st[d];
            if pos[d] < dims[d] {
                break;
            }
            base -= st[d] * dims[d];
            pos[d] = 0;
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
}
