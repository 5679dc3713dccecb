//! Shapes, strides and broadcasting (PyTorch's rules).

use crate::{Error, Result};

/// Where a tensor's elements sit in its storage: shape, strides (in elements) and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Size of each dimension.
    pub shape: Vec<usize>,
    /// Step in storage for each dimension (0 for a broadcast dimension).
    pub strides: Vec<usize>,
    /// Index of the first element in storage.
    pub offset: usize,
}

impl Layout {
    /// A row-major layout starting at 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether elements are laid out row-major without gaps (offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    /// Storage index of every element, in row-major order of the shape.
    pub fn indices(&self) -> StridedIndex<'_> {
        StridedIndex::new(self)
    }
}

/// Row-major strides of a shape.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// Turn a possibly negative dim into an index below `rank`.
pub fn normalize_dim(op: &'static str, dim: isize, shape: &[usize]) -> Result<usize> {
    let rank = shape.len() as isize;
    let d = if dim < 0 { dim + rank } else { dim };
    if d < 0 || d >= rank {
        return Err(Error::DimOutOfRange {
            op,
            dim,
            shape: shape.to_vec(),
        });
    }
    Ok(d as usize)
}

/// Normalize a list of dims, rejecting duplicates; an empty list means all dims.
pub fn normalize_dims(op: &'static str, dims: &[isize], shape: &[usize]) -> Result<Vec<usize>> {
    if dims.is_empty() {
        return Ok((0..shape.len()).collect());
    }
    let mut out = Vec::with_capacity(dims.len());
    for &d in dims {
        let n = normalize_dim(op, d, shape)?;
        if out.contains(&n) {
            return Err(Error::invalid(op, format!("dim {d} given twice for shape {shape:?}")));
        }
        out.push(n);
    }
    out.sort_unstable();
    Ok(out)
}

/// The shape two shapes broadcast to, by PyTorch's rules (align right; sizes equal or 1).
pub fn broadcast_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() { 1 } else { a[i - (rank - a.len())] };
        let db = if i < rank - b.len() { 1 } else { b[i - (rank - b.len())] };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shapes(
                    op,
                    a,
                    b,
                    format!("dim {i} of the broadcast shape: {da} vs {db}"),
                ))
            }
        };
    }
    Ok(out)
}

/// Iterator over the storage indices of a strided layout, in row-major order.
pub struct StridedIndex<'a> {
    layout: &'a Layout,
    pos: Vec<usize>,
    next: Option<usize>,
}

impl<'a> StridedIndex<'a> {
    fn new(layout: &'a Layout) -> Self {
        let next = if layout.numel() == 0 { None } else { Some(layout.offset) };
        StridedIndex {
            layout,
            pos: vec![0; layout.shape.len()],
            next,
        }
    }
}

impl Iterator for StridedIndex<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        let cur = self.next?;
        let l = self.layout;
        let mut idx = cur;
        let mut d = l.shape.len();
        loop {
            if d == 0 {
                self.next = None;
                break;
            }
            d -= 1;
            self.pos[d] += 1;
            idx += l.strides[d];
            if self.pos[d] < l.shape[d] {
                self.next = Some(idx);
                break;
            }
            idx -= l.strides[d] * l.shape[d];
            self.pos[d] = 0;
        }
        Some(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_pytorch() {
        assert_eq!(broadcast_shape("t", &[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert_eq!(broadcast_shape("t", &[], &[5]).unwrap(), vec![5]);
        let e = broadcast_shape("add", &[2, 3], &[4]).unwrap_err();
        assert!(e.to_string().contains("add"), "{e}");
        assert!(e.to_string().contains("[2, 3]"), "{e}");
    }

    #[test]
    fn strided_index_walks_transposed() {
        let l = Layout {
            shape: vec![2, 3],
            strides: vec![1, 2],
            offset: 1,
        };
        let v: Vec<usize> = l.indices().collect();
        assert_eq!(v, vec![1, 3, 5, 2, 4, 6]);
        assert!(!l.is_contiguous());
        assert!(Layout::contiguous(&[2, 1, 3]).is_contiguous());
    }

    #[test]
    fn dims_normalize() {
        assert_eq!(normalize_dim("t", -1, &[2, 3]).unwrap(), 1);
        assert!(normalize_dim("t", 2, &[2, 3]).is_err());
        assert!(normalize_dims("t", &[0, -2], &[2, 3]).is_err());
    }
}
