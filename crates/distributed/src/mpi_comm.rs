//! [`Comm`] on MPI (rsmpi), for `mpirun`/`srun` jobs.

use crate::Comm;
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

/// MPI's world communicator; MPI is finalized when this is dropped.
pub struct Mpi {
    world: SimpleCommunicator,
    // Dropped last: finalizes MPI.
    _universe: Universe,
}

impl Mpi {
    /// Initialize MPI (once per process); `None` if it was already initialized.
    pub fn init() -> Option<Mpi> {
        let universe = mpi::initialize()?;
        Some(Mpi {
            world: universe.world(),
            _universe: universe,
        })
    }
}

// Empty buffers skip the call (Open MPI rejects their dangling pointers); every rank's
// buffer has the same length, so every rank skips alike.
impl Comm for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn barrier(&self) {
        self.world.barrier();
    }
    fn broadcast_bytes(&self, buf: &mut [u8], root: usize) {
        if buf.is_empty() {
            return;
        }
        self.world.process_at_rank(root as i32).broadcast_into(buf);
    }
    fn broadcast_f32(&self, buf: &mut [f32], root: usize) {
        if buf.is_empty() {
            return;
        }
        self.world.process_at_rank(root as i32).broadcast_into(buf);
    }
    fn all_reduce_sum_f32(&self, buf: &mut [f32]) {
        if buf.is_empty() {
            return;
        }
        let send = buf.to_vec();
        self.world.all_reduce_into(&send[..], buf, SystemOperation::sum());
    }
    fn all_reduce_sum_f64(&self, buf: &mut [f64]) {
        if buf.is_empty() {
            return;
        }
        let send = buf.to_vec();
        self.world.all_reduce_into(&send[..], buf, SystemOperation::sum());
    }
    fn all_gather_u64(&self, value: u64) -> Vec<u64> {
        let mut out = vec![0u64; self.size()];
        self.world.all_gather_into(&value, &mut out[..]);
        out
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
