//! CPU kernels: plain loops over slices. They never see a `Tensor`; only `ops` knows the graph.
//!
//! Work above [`PAR_THRESHOLD`] elements is split over rayon's threads in fixed-size
//! blocks, so results do not depend on the thread count; below it everything runs on the
//! calling thread, since a hand-off to the pool costs more than a tiny op.

pub mod batch_norm;
pub mod conv;
pub mod copy;
pub mod elementwise;
#[cfg(test)]
mod every_isa;
pub mod lstm_cell;
pub mod lstm_rows;
pub mod lstm_seq;
pub mod matmul;
pub mod par;
pub mod pool;
pub mod reduce;
pub mod roi;
pub(crate) mod simd;
pub mod softmax_nll;
#[cfg(test)]
pub(crate) mod test_rand;

/// Element count above which a kernel uses more than one thread.
pub const PAR_THRESHOLD: usize = 1 << 16;

/// Block size for parallel work (fixed, so the split does not depend on thread count).
pub const BLOCK: usize = 1 << 14;
