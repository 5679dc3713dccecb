//! Gradient buckets: which parameters share one all-reduce, and the contiguous buffers they
//! are summed in (kept across steps, so a step allocates no bucket memory).
//!
//! Buckets follow the parameters in reverse order (as PyTorch's DDP), since backward makes
//! the last layers' gradients first; f32 and f64 parameters go in separate buckets. Both the
//! overlapped and the blocking path use the same buckets, fill them the same way (zeros for
//! a parameter without gradient on this rank) and sum them in the same order, so their
//! results are bitwise equal.

use nabla_core::{DType, Tensor};
use nabla_nn::Result;

/// A bucket's buffer.
pub(crate) enum Buf {
    /// f32 gradients.
    F32(Vec<f32>),
    /// f64 gradients.
    F64(Vec<f64>),
}

/// One bucket: its parameters (indices into the parameter list) and where each starts.
pub(crate) struct Bucket {
    /// (parameter index, offset in the buffer, element count).
    pub(crate) parts: Vec<(usize, usize, usize)>,
    /// The buffer; `None` while the communication thread holds it.
    pub(crate) buf: Option<Buf>,
}

/// Where each parameter's gradient goes.
pub(crate) struct Layout {
    /// The buckets, in the order every rank all-reduces them.
    pub(crate) buckets: Vec<Bucket>,
    /// For each parameter: (bucket, index in the bucket's parts).
    pub(crate) slot: Vec<(usize, usize)>,
    /// Each parameter's autograd identity when the layout was made.
    pub(crate) ids: Vec<Option<usize>>,
}

impl Layout {
    /// Buckets of about `bucket_bytes` over `params`, last parameter first.
    pub(crate) fn new(params: &[Tensor], bucket_bytes: usize) -> Layout {
        let mut buckets: Vec<Bucket> = vec![];
        let mut slot = vec![(0, 0); params.len()];
        // The open bucket of each dtype: (index in `buckets`, bytes so far).
        let mut open: [Option<(usize, usize)>; 2] = [None, None];
        for (i, p) in params.iter().enumerate().rev() {
            let (k, width) = if p.dtype() == DType::F32 { (0, 4) } else { (1, 8) };
            let (b, bytes) = *open[k].get_or_insert_with(|| {
                buckets.push(Bucket {
                    parts: vec![],
                    buf: Some(if k == 0 { Buf::F32(vec![]) } else { Buf::F64(vec![]) }),
                });
                (buckets.len() - 1, 0)
            });
            let at = buckets[b].parts.last().map_or(0, |&(_, o, n)| o + n);
            slot[i] = (b, buckets[b].parts.len());
            buckets[b].parts.push((i, at, p.numel()));
            let bytes = bytes + p.numel() * width;
            open[k] = (bytes < bucket_bytes).then_some((b, bytes));
        }
        for b in &mut buckets {
            let n = b.parts.last().map_or(0, |&(_, o, n)| o + n);
            match b.buf.as_mut() {
                Some(Buf::F32(v)) => v.resize(n, 0.0),
                Some(Buf::F64(v)) => v.resize(n, 0.0),
                None => {}
            }
        }
        Layout {
            buckets,
            slot,
            ids: params.iter().map(Tensor::grad_id).collect(),
        }
    }

    /// Whether this layout was made for `params` (same identities in the same order).
    pub(crate) fn fits(&self, params: &[Tensor]) -> bool {
        self.ids.len() == params.len() && params.iter().zip(&self.ids).all(|(p, id)| p.grad_id() == *id)
    }
}

/// Copy `g` (or zeros when `None`) into `buf[at..at + n]`.
pub(crate) fn fill(buf: &mut Buf, at: usize, n: usize, g: Option<&Tensor>) -> Result<()> {
    match (buf, g) {
        (Buf::F32(v), Some(g)) => g.with_slice(|s: &[f32]| v[at..at + n].copy_from_slice(s))?,
        (Buf::F64(v), Some(g)) => g.with_slice(|s: &[f64]| v[at..at + n].copy_from_slice(s))?,
        (Buf::F32(v), None) => v[at..at + n].fill(0.0),
        (Buf::F64(v), None) => v[at..at + n].fill(0.0),
    }
    Ok(())
}

/// The summed `buf[at..at + n]` divided by `size`, shaped like `param`.
pub(crate) fn average(buf: &Buf, at: usize, n: usize, size: usize, param: &Tensor) -> Result<Tensor> {
    Ok(match buf {
        Buf::F32(v) => {
            let inv = 1.0 / size as f32;
            Tensor::from_vec(v[at..at + n].iter().map(|x| x * inv).collect(), param.shape())?
        }
        Buf::F64(v) => {
            let inv = 1.0 / size as f64;
            Tensor::from_vec(v[at..at + n].iter().map(|x| x * inv).collect(), param.shape())?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_take_the_parameters_last_first_and_split_by_size_and_dtype() {
        let t = |n: usize, d: DType| Tensor::zeros(&[n], d).set_requires_grad(true);
        let params = [t(2, DType::F32), t(3, DType::F64), t(4, DType::F32), t(1, DType::F32)];
        // 16 bytes: parameter 3 (4 B) and 2 (16 B) fill the first f32 bucket; 0 opens another.
        let l = Layout::new(&params, 16);
        let parts: Vec<Vec<(usize, usize, usize)>> = l.buckets.iter().map(|b| b.parts.clone()).collect();
        assert_eq!(
            parts,
            vec![vec![(3, 0, 1), (2, 1, 4)], vec![(1, 0, 3)], vec![(0, 0, 2)]]
        );
        assert_eq!(l.slot, vec![(2, 0), (1, 0), (0, 1), (0, 0)]);
        assert!(matches!(&l.buckets[0].buf, Some(Buf::F32(v)) if v.len() == 5));
        assert!(matches!(&l.buckets[1].buf, Some(Buf::F64(v)) if v.len() == 3));
        assert!(l.fits(&params) && !l.fits(&params[..3]));
    }
}
