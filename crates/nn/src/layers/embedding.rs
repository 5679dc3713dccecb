//! Embedding: a lookup table of learned vectors, one per token index.

use crate::module::{Children, Mode, Module, Param};
use crate::Result;
use nabla_core::{DType, Generator, Tensor};

/// A table `weight` `[num_embeddings, embedding_dim]` whose row `i` is the vector of index
/// `i`: indices of any shape `S` give `S + [embedding_dim]` (PyTorch's `nn.Embedding`).
///
/// ```
/// use nabla_core::{Generator, Tensor};
/// use nabla_nn::{Embedding, Mode, Module};
/// let emb = Embedding::new(10, 4, Some(0), &mut Generator::new(0));
/// let y = emb.lookup(&[3, 0, 7, 7, 1, 2], &[2, 3])?;
/// assert_eq!(y.shape(), &[2, 3, 4]);
/// assert_eq!(y.narrow(1, 1, 1)?.narrow(0, 0, 1)?.to_vec::<f32>()?, vec![0.0; 4]);
/// # Ok::<(), nabla_nn::Error>(())
/// ```
#[derive(Debug)]
pub struct Embedding {
    /// `[num_embeddings, embedding_dim]`.
    pub weight: Param,
    /// The index whose row starts at zeros and never gets a gradient (padding).
    pub padding_idx: Option<usize>,
}

impl Embedding {
    /// A table initialized from N(0, 1), f32, with the `padding_idx` row set to zeros, as
    /// PyTorch does.
    pub fn new(
        num_embeddings: usize,
        embedding_dim: usize,
        padding_idx: Option<usize>,
        g: &mut Generator,
    ) -> Embedding {
        Embedding::with_dtype(num_embeddings, embedding_dim, padding_idx, DType::F32, g)
    }

    /// [`Embedding::new`] with the table in `dtype`.
    pub fn with_dtype(
        num_embeddings: usize,
        embedding_dim: usize,
        padding_idx: Option<usize>,
        dtype: DType,
        g: &mut Generator,
    ) -> Embedding {
        let mut w = Tensor::randn(&[num_embeddings, embedding_dim], DType::F64, g).to_vec_f64();
        if let Some(p) = padding_idx.filter(|&p| p < num_embeddings) {
            w[p * embedding_dim..(p + 1) * embedding_dim].fill(0.0);
        }
        let w = Tensor::from_vec(w, &[num_embeddings, embedding_dim])
            .and_then(|t| t.to_dtype(dtype))
            .expect("the shape fits the data");
        Embedding {
            weight: Param::new(w),
            padding_idx,
        }
    }

    /// A table holding `weights` (`[num_embeddings, embedding_dim]`, copied), frozen when
    /// `freeze` (PyTorch's `Embedding.from_pretrained`, whose default is frozen).
    pub fn from_pretrained(weights: &Tensor, freeze: bool, padding_idx: Option<usize>) -> Result<Embedding> {
        if weights.rank() != 2 {
            return Err(invalid(format!(
                "pretrained weights must be [num_embeddings, embedding_dim], got shape {:?}",
                weights.shape()
            )));
        }
        if let Some(p) = padding_idx.filter(|&p| p >= weights.shape()[0]) {
            return Err(invalid(format!(
                "padding_idx {p} is out of range for a table of {} rows",
                weights.shape()[0]
            )));
        }
        let e = Embedding {
            weight: Param::new(Tensor::from_vec(weights.to_vec_f64(), weights.shape())?.to_dtype(weights.dtype())?),
            padding_idx,
        };
        e.weight.set_trainable(!freeze);
        Ok(e)
    }

    /// Number of rows (the vocabulary size).
    pub fn num_embeddings(&self) -> usize {
        self.weight.leaf().shape()[0]
    }

    /// Length of each vector.
    pub fn embedding_dim(&self) -> usize {
        self.weight.leaf().shape()[1]
    }

    /// The vectors of `indices` (row-major, of shape `shape`): `shape + [embedding_dim]`.
    /// An index outside the table is an error naming it and the table size.
    pub fn lookup(&self, indices: &[usize], shape: &[usize]) -> Result<Tensor> {
        let (num, dim) = (self.num_embeddings(), self.embedding_dim());
        if shape.iter().product::<usize>() != indices.len() {
            return Err(invalid(format!("{} indices given for shape {shape:?}", indices.len())));
        }
        if let Some((p, &i)) = indices.iter().enumerate().find(|(_, &i)| i >= num) {
            return Err(invalid(format!(
                "index {i} (at position {p}) is out of range for a table of {num} embeddings"
            )));
        }
        let w = self.weight.tensor();
        let mut rows = w.index_select(0, indices)?;
        if let Some(p) = self.padding_idx.filter(|p| indices.contains(p)) {
            // Padding positions read the row detached, so no gradient reaches it.
            let mask: Vec<f64> = indices.iter().map(|&i| f64::from(u8::from(i == p))).collect();
            let mask = Tensor::from_vec(mask, &[indices.len(), 1])?.to_dtype(w.dtype())?;
            let fixed = w.detach().index_select(0, indices)?;
            rows = Tensor::where_cond(&mask, &fixed, &rows)?;
        }
        let mut out_shape = shape.to_vec();
        out_shape.push(dim);
        Ok(rows.reshape(out_shape.as_slice())?)
    }
}

fn invalid(msg: String) -> crate::Error {
    nabla_core::Error::invalid("Embedding", msg).into()
}

impl Module for Embedding {
    /// `x` holds the indices as whole numbers (nabla's tensors are floating point).
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        let vals = x.to_vec_f64();
        let mut idx = Vec::with_capacity(vals.len());
        for (p, &v) in vals.iter().enumerate() {
            if v < 0.0 || v.fract() != 0.0 || !v.is_finite() {
                return Err(invalid(format!(
                    "index {v} (at position {p}) is not a whole number in [0, {})",
                    self.num_embeddings()
                )));
            }
            idx.push(v as usize);
        }
        self.lookup(&idx, x.shape())
    }

    fn children(&self, c: &mut Children) {
        c.param("weight", &self.weight);
    }

    fn describe(&self) -> String {
        format!("Embedding {}×{}", self.num_embeddings(), self.embedding_dim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_row_is_zero_and_gets_no_gradient() {
        let e = Embedding::with_dtype(5, 3, Some(1), DType::F64, &mut Generator::new(3));
        let w = e.weight.leaf().to_vec_f64();
        assert_eq!(&w[3..6], &[0.0; 3]);
        assert!(w[..3].iter().chain(&w[6..]).all(|&v| v != 0.0));
        let y = e.lookup(&[1, 2, 1, 4, 2], &[5]).unwrap();
        assert_eq!(y.shape(), &[5, 3]);
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g = grads.get(&e.weight.leaf()).unwrap().to_vec_f64();
        // Row 2 was picked twice, row 4 once, rows 0 and 3 never, row 1 (padding) no gradient.
        assert_eq!(g, [0., 0., 0., 0., 0., 0., 2., 2., 2., 0., 0., 0., 1., 1., 1.]);
    }

    #[test]
    fn forward_takes_any_shape_and_checks_indices() {
        let e = Embedding::new(4, 2, None, &mut Generator::new(0));
        let x = Tensor::from_vec(vec![0.0f32, 3.0, 2.0, 1.0, 1.0, 0.0], &[1, 2, 3]).unwrap();
        let y = e.forward(&x, Mode::Train).unwrap();
        assert_eq!(y.shape(), &[1, 2, 3, 2]);
        let w = e.weight.leaf().to_vec_f32();
        assert_eq!(&y.to_vec_f32()[2..4], &w[6..8]);
        let bad = Tensor::from_vec(vec![0.0f32, 4.0], &[2]).unwrap();
        let msg = e.forward(&bad, Mode::Train).unwrap_err().to_string();
        assert!(
            msg.contains("Embedding") && msg.contains("index 4") && msg.contains("4 embeddings"),
            "{msg}"
        );
        let frac = Tensor::from_vec(vec![0.5f32], &[1]).unwrap();
        assert!(e.forward(&frac, Mode::Train).is_err());
    }

    #[test]
    fn from_pretrained_copies_and_freezes() {
        let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let e = Embedding::from_pretrained(&w, true, None).unwrap();
        assert!(!e.weight.trainable());
        assert_eq!(e.lookup(&[1], &[1]).unwrap().to_vec_f32(), vec![3.0, 4.0]);
        assert!(!e.weight.leaf().shares_storage(&w));
        let t = Embedding::from_pretrained(&w, false, None).unwrap();
        assert!(t.weight.trainable());
        assert!(Embedding::from_pretrained(&w, false, Some(2)).is_err());
    }
}
