//! Data-parallel training (PyTorch's DistributedDataParallel semantics) for nabla.
//!
//! Every process (a *rank*) holds the same model; each takes its own part of every global
//! batch, and before every optimizer step the gradients are averaged over the ranks, so all
//! ranks take the same step. The pieces:
//!
//! - [`Comm`], the few collectives training needs, with [`Local`] (one process, always
//!   built) and, behind the cargo feature `mpi`, `Mpi` on the MPI library (rsmpi).
//! - [`world_from_env`]: the rank and world size that `mpirun` or `srun` gave this process.
//! - [`broadcast_tensors`] (rank 0's initial parameters to every rank) and
//!   [`DistributedOptimizer`], which wraps a task's optimizer so its `step` first averages
//!   the gradients by all-reduce, in buckets, then steps the inner optimizer.
//! - [`install_sync_batch_norm`]: batch norm over the global batch (`--sync-bn`).
//!
//! ```
//! use nabla_distributed::{Comm, Local};
//! let comm = Local;
//! let mut g = vec![1.0f32, 2.0];
//! comm.all_reduce_sum_f32(&mut g); // one rank: the sum is the value itself
//! assert_eq!((comm.rank(), comm.size(), g), (0, 1, vec![1.0, 2.0]));
//! ```

mod buckets;
mod comm;
mod env;
mod grads;
#[cfg(feature = "mpi")]
mod mpi_comm;
mod overlap;
mod sync_bn;

pub use comm::{all_agree, broadcast_string, Comm, Local, Reducer};
pub use env::world_from_env;
pub use grads::{all_reduce_gradients, allreduce_seconds, broadcast_tensors, DistributedOptimizer};
#[cfg(feature = "mpi")]
pub use mpi_comm::Mpi;
pub use overlap::comm_thread_seconds;
pub use sync_bn::install_sync_batch_norm;

/// Whether this build can talk MPI (the cargo feature `mpi`).
pub const HAS_MPI: bool = cfg!(feature = "mpi");
