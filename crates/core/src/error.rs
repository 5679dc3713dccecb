//! Errors: values that name the op, the shapes and the dim.

use crate::DType;

/// Everything that can go wrong in a tensor operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Two shapes that had to agree did not.
    #[error("{op}: shape mismatch: {lhs:?} vs {rhs:?}{}", fmt_detail(.detail))]
    ShapeMismatch {
        /// The op that failed.
        op: &'static str,
        /// The first shape.
        lhs: Vec<usize>,
        /// The second shape.
        rhs: Vec<usize>,
        /// What had to agree (may be empty).
        detail: String,
    },
    /// Two tensors had different element types.
    #[error("{op}: dtype mismatch: {lhs:?} vs {rhs:?}")]
    DTypeMismatch {
        /// The op that failed.
        op: &'static str,
        /// The first operand's dtype.
        lhs: DType,
        /// The second operand's dtype.
        rhs: DType,
    },
    /// A dimension index outside `-rank..rank`.
    #[error("{op}: dim {dim} out of range for a tensor of shape {shape:?} (rank {})", .shape.len())]
    DimOutOfRange {
        /// The op that failed.
        op: &'static str,
        /// The dim asked for.
        dim: isize,
        /// The tensor's shape.
        shape: Vec<usize>,
    },
    /// A reshape to a shape with a different number of elements, or similar.
    #[error("{op}: cannot turn shape {from:?} into {to:?}")]
    BadReshape {
        /// The op that failed.
        op: &'static str,
        /// The tensor's shape.
        from: Vec<usize>,
        /// The shape asked for (`-1` for an inferred dim).
        to: Vec<isize>,
    },
    /// An argument that is wrong on its own (an index out of range, an empty list, ...).
    #[error("{op}: {msg}")]
    Invalid {
        /// The op that failed.
        op: &'static str,
        /// What was wrong.
        msg: String,
    },
    /// A gradient was asked for that autodiff cannot give.
    #[error("autograd: {0}")]
    Autograd(String),
}

fn fmt_detail(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(" ({d})")
    }
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Invalid { op, msg: msg.into() }
    }

    /// Shorthand for [`Error::ShapeMismatch`].
    pub fn shapes(op: &'static str, lhs: &[usize], rhs: &[usize], detail: impl Into<String>) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.to_vec(),
            rhs: rhs.to_vec(),
            detail: detail.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;
