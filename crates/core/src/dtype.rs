//! Element types: f32 (the working type) and f64 (gradient checks, precise work).

use std::fmt::{Debug, Display};

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float, the working type.
    F32,
    /// 64-bit float.
    F64,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }
}

/// Evaluate `$body` once per dtype with `$T` naming that dtype's [`Element`] type, and
/// pick the arm matching `$dtype`: `dispatch!(x.dtype(), T => run::<T>(x))`.
///
/// The one place that lists the dtypes for generic code: a new dtype adds an arm here
/// (beside its [`Buffer`] variant and [`Element`] impl) and every op follows. A macro
/// rather than a `Map1`-style trait because Rust closures cannot be generic: a trait
/// would need a named struct per call site, while the macro lets each op keep its
/// generic `run::<T>` or closure as written, monomorphized exactly as before.
///
/// Exported so that other crates' dtype-generic code goes through it too:
/// ```
/// use nabla_core::{dispatch, Tensor};
/// fn sum_as_f64(t: &Tensor) -> f64 {
///     dispatch!(t.dtype(), T => t.to_vec::<T>().unwrap().iter().map(|v| v.to_f64()).sum())
/// }
/// let x = Tensor::from_vec(vec![1.5f32, 2.0], &[2])?;
/// assert_eq!(sum_as_f64(&x), 3.5);
/// # Ok::<(), nabla_core::Error>(())
/// ```
#[macro_export]
macro_rules! dispatch {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                #[allow(unused_imports)]
                use $crate::Element as _;
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                #[allow(unused_imports)]
                use $crate::Element as _;
                type $T = f64;
                $body
            }
        }
    };
}
pub(crate) use crate::dispatch;

/// The owned data behind a tensor.
#[derive(Debug, Clone)]
pub enum Buffer {
    /// f32 elements.
    F32(Vec<f32>),
    /// f64 elements.
    F64(Vec<f64>),
}

impl Buffer {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Buffer::F32(_) => DType::F32,
            Buffer::F64(_) => DType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(v) => v.len(),
            Buffer::F64(v) => v.len(),
        }
    }

    /// Whether the buffer holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A float type that tensors can hold; kernels are written once, generic over it.
pub trait Element:
    Copy
    + Send
    + Sync
    + Debug
    + Display
    + PartialOrd
    + Default
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::iter::Sum
    + 'static
{
    /// The matching [`DType`].
    const DTYPE: DType;
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// Negative infinity (identity of max).
    const NEG_INFINITY: Self;
    /// Positive infinity (identity of min).
    const INFINITY: Self;
    /// Conversion from f64 (rounding for f32).
    fn from_f64(x: f64) -> Self;
    /// Conversion to f64 (exact).
    fn to_f64(self) -> f64;
    /// Borrow the elements of a buffer of this type.
    fn slice(buf: &Buffer) -> Option<&[Self]>;
    /// Mutably borrow the elements of a buffer of this type.
    fn slice_mut(buf: &mut Buffer) -> Option<&mut [Self]>;
    /// Wrap a vector as a buffer.
    fn wrap(v: Vec<Self>) -> Buffer;
    /// e^x.
    fn exp(self) -> Self;
    /// e^x − 1, accurate near 0.
    fn exp_m1(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate near 0.
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// x to a float power.
    fn powf(self, e: Self) -> Self;
    /// The error function (libm's `erff`/`erf`).
    fn erf(self) -> Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// Larger of two values, NaN if either is NaN.
    fn max_nan(self, o: Self) -> Self {
        if self.is_nan() || o.is_nan() {
            Self::from_f64(f64::NAN)
        } else if o > self {
            o
        } else {
            self
        }
    }
    /// Smaller of two values, NaN if either is NaN.
    fn min_nan(self, o: Self) -> Self {
        if self.is_nan() || o.is_nan() {
            Self::from_f64(f64::NAN)
        } else if o < self {
            o
        } else {
            self
        }
    }
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f32::NEG_INFINITY;
    const INFINITY: Self = f32::INFINITY;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn slice(buf: &Buffer) -> Option<&[Self]> {
        match buf {
            Buffer::F32(v) => Some(v),
            _ => None,
        }
    }
    fn slice_mut(buf: &mut Buffer) -> Option<&mut [Self]> {
        match buf {
            Buffer::F32(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<Self>) -> Buffer {
        Buffer::F32(v)
    }
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn exp_m1(self) -> Self {
        f32::exp_m1(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    fn ln_1p(self) -> Self {
        f32::ln_1p(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn abs(self) -> Self {
        f32::abs(self)
    }
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
    fn powf(self, e: Self) -> Self {
        f32::powf(self, e)
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INFINITY: Self = f64::NEG_INFINITY;
    const INFINITY: Self = f64::INFINITY;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn slice(buf: &Buffer) -> Option<&[Self]> {
        match buf {
            Buffer::F64(v) => Some(v),
            _ => None,
        }
    }
    fn slice_mut(buf: &mut Buffer) -> Option<&mut [Self]> {
        match buf {
            Buffer::F64(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<Self>) -> Buffer {
        Buffer::F64(v)
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn exp_m1(self) -> Self {
        f64::exp_m1(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn abs(self) -> Self {
        f64::abs(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn powf(self, e: Self) -> Self {
        f64::powf(self, e)
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}
