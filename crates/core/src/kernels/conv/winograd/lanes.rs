//! The lane vectors the f32 Winograd transforms are written on: since every kernel may use
//! them, they live in [`crate::kernels::simd`]; this module only names them for
//! [`super::vector`].

pub(super) use crate::kernels::simd::Lanes;
#[cfg(target_arch = "aarch64")]
pub(super) use crate::kernels::simd::V4;
#[cfg(target_arch = "x86_64")]
pub(super) use crate::kernels::simd::{V16, V8};
