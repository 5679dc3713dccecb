//! Elementwise maps: unary over a slice, binary over two broadcast strided operands.

use super::{BLOCK, PAR_THRESHOLD};
use rayon::prelude::*;

/// `out[i] = f(x[i])`.
pub fn map<T: Copy + Send + Sync, U: Copy + Send + Sync>(x: &[T], out: &mut [U], f: impl Fn(T) -> U + Sync) {
    if x.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(BLOCK)
            .zip(x.par_chunks(BLOCK))
            .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x)));
    } else {
        out.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x));
    }
}

/// `out[i] = f(a[i], b[i])` for equal-length slices.
pub fn zip<T: Copy + Send + Sync, U: Copy + Send + Sync>(a: &[T], b: &[T], out: &mut [U], f: impl Fn(T, T) -> U + Sync) {
    if a.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(BLOCK)
            .zip(a.par_chunks(BLOCK).zip(b.par_chunks(BLOCK)))
            .for_each(|(o, (a, b))| {
                o.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = f(a, b))
            });
    } else {
        out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| *o = f(a, b));
    }
}

/// One operand of a strided binary map: its storage, strides over the output shape
/// (0 where broadcast) and offset.
#[derive(Clone, Copy)]
pub struct Operand<'a, T> {
    /// The whole storage.
    pub data: &'a [T],
    /// Strides aligned with the output shape.
    pub strides: &'a [usize],
    /// Index of element 0.
    pub offset: usize,
}

/// Merge neighbouring dims that both operands walk as one (fewer, longer inner loops).
fn coalesce(shape: &[usize], sa: &[usize], sb: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut d, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..shape.len() {
        if shape[i] == 1 {
            continue;
        }
        if let (Some(ld), Some(la), Some(lb)) = (d.last_mut(), a.last_mut(), b.last_mut()) {
            if *la == sa[i] * shape[i] && *lb == sb[i] * shape[i] {
                *ld *= shape[i];
                *la = sa[i];
                *lb = sb[i];
                continue;
            }
        }
        d.push(shape[i]);
        a.push(sa[i]);
        b.push(sb[i]);
    }
    if d.is_empty() {
        d.push(1);
        a.push(0);
        b.push(0);
    }
    (d, a, b)
}

/// `out = f(a, b)` over `shape` (row-major `out`), operands strided and broadcast.
pub fn zip_strided<T: Copy + Send + Sync, U: Copy + Send + Sync>(
    shape: &[usize],
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    out: &mut [U],
    f: impl Fn(T, T) -> U + Sync,
) {
    let (dims, sa, sb) = coalesce(shape, a.strides, b.strides);
    let rank = dims.len();
    let inner = dims[rank - 1];
    let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
    if rank == 1 && ia == 1 && ib == 1 {
        let n = out.len();
        return zip(&a.data[a.offset..a.offset + n], &b.data[b.offset..b.offset + n], out, f);
    }
    let row_offsets = |row: usize| {
        let (mut oa, mut ob, mut r) = (a.offset, b.offset, row);
        for d in (0..rank - 1).rev() {
            let i = r % dims[d];
            r /= dims[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        (oa, ob)
    };
    let do_row = |row: usize, o: &mut [U]| {
        let (oa, ob) = row_offsets(row);
        match (ia, ib) {
            (1, 1) => o
                .iter_mut()
                .zip(a.data[oa..oa + inner].iter().zip(&b.data[ob..ob + inner]))
                .for_each(|(o, (&x, &y))| *o = f(x, y)),
            (1, 0) => {
                let y = b.data[ob];
                o.iter_mut().zip(&a.data[oa..oa + inner]).for_each(|(o, &x)| *o = f(x, y));
            }
            (0, 1) => {
                let x = a.data[oa];
                o.iter_mut().zip(&b.data[ob..ob + inner]).for_each(|(o, &y)| *o = f(x, y));
            }
            _ => o
                .iter_mut()
                .enumerate()
                .for_each(|(j, o)| *o = f(a.data[oa + j * ia], b.data[ob + j * ib])),
        }
    };
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(inner).enumerate().for_each(|(r, o)| do_row(r, o));
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(r, o)| do_row(r, o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_row_plus_column() {
        // a: [2,1] column, b: [3] row, out [2,3]
        let a = [10.0f32, 20.0];
        let b = [1.0f32, 2.0, 3.0];
        let mut out = [0.0f32; 6];
        zip_strided(
            &[2, 3],
            Operand { data: &a, strides: &[1, 0], offset: 0 },
            Operand { data: &b, strides: &[0, 1], offset: 0 },
            &mut out,
            |x, y| x + y,
        );
        assert_eq!(out, [11.0, 12.0, 13.0, 21.0, 22.0, 23.0]);
    }
}
