//! Border handling: how an image is extended past its edges before a window slides over
//! it, and how large the output of a sliding window is.
//!
//! ```
//! use nabla_core::Tensor;
//! use nabla_vision::{pad2d, Border};
//! let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[1, 3])?;
//! let p = pad2d(&x, [0, 0, 2, 2], Border::Reflect)?;
//! assert_eq!(p.to_vec_f64(), vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]);
//! # Ok::<(), nabla_core::Error>(())
//! ```

use nabla_core::{Error, Result, Tensor};

/// How values outside the image are made up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Border {
    /// Zeros (`F.pad(mode="constant")`).
    #[default]
    Zero,
    /// Mirror without repeating the edge: `d c b | a b c d | c b a` (`F.pad(mode="reflect")`).
    Reflect,
    /// Repeat the edge value: `a a a | a b c d | d d d` (`F.pad(mode="replicate")`).
    Replicate,
}

/// Which outputs of a sliding window are kept, set by how far the input is padded (scipy's
/// `mode`, PyTorch's `padding="valid"/"same"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Padding {
    /// Only positions where the kernel lies wholly inside the image: `n − k + 1`.
    Valid,
    /// As many outputs as inputs; an odd kernel's centre sits on the output pixel.
    #[default]
    Same,
    /// Every position where kernel and image overlap at all: `n + k − 1`.
    Full,
}

impl Padding {
    /// The padding `(before, after)` along a dim for a kernel of size `k`.
    pub fn sizes(self, k: usize) -> (usize, usize) {
        let total = k.saturating_sub(1);
        match self {
            Padding::Valid => (0, 0),
            // Even kernels put the extra pixel after, as PyTorch's padding="same" does.
            Padding::Same => (total / 2, total - total / 2),
            Padding::Full => (total, total),
        }
    }
}

impl std::str::FromStr for Border {
    type Err = Error;
    fn from_str(s: &str) -> Result<Border> {
        match s {
            "zero" | "zeros" | "constant" => Ok(Border::Zero),
            "reflect" => Ok(Border::Reflect),
            "replicate" => Ok(Border::Replicate),
            _ => Err(Error::invalid(
                "border",
                format!("unknown border {s:?}: use zero, reflect or replicate"),
            )),
        }
    }
}

impl std::str::FromStr for Padding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Padding> {
        match s {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            "full" => Ok(Padding::Full),
            _ => Err(Error::invalid(
                "padding",
                format!("unknown padding {s:?}: use valid, same or full"),
            )),
        }
    }
}

/// Source index of padded position `i` (counted from the first pad element) along a
/// dim of size `n ≥ 1` with `before` elements of padding, mirrored or clamped at the edges.
fn source(i: usize, before: usize, n: usize, reflect: bool) -> usize {
    let j = i as isize - before as isize;
    let last = n as isize - 1;
    if (0..=last).contains(&j) || !reflect || n == 1 {
        return j.clamp(0, last) as usize;
    }
    // Mirroring repeats with period 2(n − 1); folding handles pads wider than n.
    let period = 2 * last;
    let m = j.rem_euclid(period);
    (if m <= last { m } else { period - m }) as usize
}

/// The entries `src` along `dim`, skipping the copy when `src` is the identity.
fn select(x: &Tensor, dim: isize, src: &[usize]) -> Result<Tensor> {
    if src.len() == x.size(dim)? && src.iter().enumerate().all(|(i, &s)| s == i) {
        return Ok(x.clone());
    }
    x.index_select(dim, src)
}

/// Reverse the order of the last two dims (`torch.flip(x, [-2, -1])`). Differentiable.
pub fn flip2d(x: &Tensor) -> Result<Tensor> {
    check_rank("flip2d", x)?;
    let rev = |n: usize| (0..n).rev().collect::<Vec<_>>();
    let h = x.size(-2)?;
    let w = x.size(-1)?;
    select(&select(x, -2, &rev(h))?, -1, &rev(w))
}

/// Extend the last two dims of `x` by `[top, bottom, left, right]` elements made up by
/// `border`. Differentiable. Reflection folds back and forth when a pad exceeds the size.
pub fn pad2d(x: &Tensor, pads: [usize; 4], border: Border) -> Result<Tensor> {
    check_rank("pad2d", x)?;
    let [top, bottom, left, right] = pads;
    let h = x.size(-2)?;
    let w = x.size(-1)?;
    if (h == 0 || w == 0) && border != Border::Zero && pads.iter().any(|&p| p > 0) {
        return Err(Error::invalid(
            "pad2d",
            format!("cannot {border:?}-pad an empty image of shape {:?}", x.shape()),
        ));
    }
    if border == Border::Zero {
        return x.pad(&[left, right, top, bottom], 0.0);
    }
    // Every padded position copies some input position: one gather per axis.
    let reflect = border == Border::Reflect;
    let src = |len: usize, before: usize, n: usize| -> Vec<usize> {
        (0..len).map(|i| source(i, before, n, reflect)).collect()
    };
    let rows = select(x, -2, &src(top + h + bottom, top, h))?;
    select(&rows, -1, &src(left + w + right, left, w))
}

pub(crate) fn check_rank(op: &'static str, x: &Tensor) -> Result<()> {
    if x.rank() == 2 || x.rank() == 3 {
        Ok(())
    } else {
        Err(Error::invalid(
            op,
            format!("expected an image [H, W] or [C, H, W], got shape {:?}", x.shape()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nabla_core::gradcheck::gradcheck;

    fn row(v: &[f64]) -> Tensor {
        Tensor::from_vec(v.to_vec(), &[1, v.len()]).unwrap()
    }

    #[test]
    fn border_modes_on_a_row() {
        let x = row(&[1.0, 2.0, 3.0, 4.0]);
        let p = |b| pad2d(&x, [0, 0, 2, 3], b).unwrap().to_vec_f64();
        assert_eq!(p(Border::Zero), vec![0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0]);
        assert_eq!(p(Border::Replicate), vec![1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0]);
        assert_eq!(p(Border::Reflect), vec![3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]);
    }

    #[test]
    fn reflection_wider_than_the_image_folds_back() {
        let x = row(&[1.0, 2.0]);
        let p = pad2d(&x, [0, 0, 3, 3], Border::Reflect).unwrap().to_vec_f64();
        assert_eq!(p, vec![2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0]);
        let one = pad2d(&row(&[5.0]), [0, 0, 2, 1], Border::Reflect).unwrap().to_vec_f64();
        assert_eq!(one, vec![5.0; 4]);
    }

    #[test]
    fn pads_rows_and_channels() {
        // Two channels of 2×2; replicate one row above and one column to the right.
        let x = Tensor::from_vec((1..=8).map(f64::from).collect(), &[2, 2, 2]).unwrap();
        let p = pad2d(&x, [1, 0, 0, 1], Border::Replicate).unwrap();
        assert_eq!(p.shape(), &[2, 3, 3]);
        let v = p.to_vec_f64();
        assert_eq!(&v[..9], &[1.0, 2.0, 2.0, 1.0, 2.0, 2.0, 3.0, 4.0, 4.0]);
        assert_eq!(&v[9..], &[5.0, 6.0, 6.0, 5.0, 6.0, 6.0, 7.0, 8.0, 8.0]);
    }

    #[test]
    fn flip_reverses_both_axes() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        assert_eq!(flip2d(&x).unwrap().to_vec_f64(), vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
    }

    #[test]
    fn padding_sizes() {
        assert_eq!(Padding::Same.sizes(3), (1, 1));
        assert_eq!(Padding::Same.sizes(4), (1, 2));
        assert_eq!(Padding::Full.sizes(3), (2, 2));
        assert_eq!(Padding::Valid.sizes(5), (0, 0));
        assert!("wrap".parse::<Border>().is_err());
        assert_eq!("full".parse::<Padding>().unwrap(), Padding::Full);
    }

    #[test]
    fn padding_is_differentiable() {
        let x = Tensor::from_vec(vec![0.3f64, -1.0, 2.0, 0.5, 1.5, -0.7], &[2, 3]).unwrap();
        for b in [Border::Zero, Border::Reflect, Border::Replicate] {
            gradcheck(|t| pad2d(&t[0], [2, 1, 1, 3], b), std::slice::from_ref(&x)).unwrap();
        }
    }
}
