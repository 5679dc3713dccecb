//! [`Comm`] on MPI (rsmpi), for `mpirun`/`srun` jobs.

use crate::{Comm, Reducer};
use mpi::collective::SystemOperation;
use mpi::environment::{Threading, Universe};
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

/// MPI's world communicator; MPI is finalized when this is dropped.
pub struct Mpi {
    world: SimpleCommunicator,
    /// Whether MPI may be called from several threads at once (the overlapped all-reduce).
    threads: bool,
    // Dropped last: finalizes MPI.
    _universe: Universe,
}

impl Mpi {
    /// Initialize MPI (once per process); `None` if it was already initialized.
    ///
    /// Unless the environment says otherwise, Open MPI is asked to yield the core while it
    /// waits (`mpi_yield_when_idle`): by default a rank waiting in a collective spins, and
    /// when ranks share cores (with each other, with other jobs, or with the all-reduce
    /// thread) the spinning rank holds the core the rank it waits for needs. Measured here
    /// (2 ranks on 2 loaded cores, LeNet-5 at batch 32): 50–60 ms per step spinning,
    /// 6.6–9.5 ms yielding. `OMPI_MCA_mpi_yield_when_idle=0` restores spinning.
    pub fn init() -> Option<Mpi> {
        if std::env::var_os("OMPI_MCA_mpi_yield_when_idle").is_none() {
            // Read by Open MPI at initialization; other MPI libraries ignore it.
            std::env::set_var("OMPI_MCA_mpi_yield_when_idle", "1");
        }
        let (universe, level) = mpi::initialize_with_threading(Threading::Multiple)?;
        Some(Mpi {
            world: universe.world(),
            threads: level == Threading::Multiple,
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
    fn gradient_reducer(&self) -> Option<Box<dyn Reducer>> {
        if !self.threads {
            return None;
        }
        Some(Box::new(MpiReducer(self.world.duplicate())))
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// A duplicate of the world communicator, used by the all-reduce thread alone.
struct MpiReducer(SimpleCommunicator);

// SAFETY: the communicator handle is a plain MPI handle; MPI was initialized with
// MPI_THREAD_MULTIPLE (`gradient_reducer` checks), so any thread may call MPI with it, and
// only the thread that owns this value does.
unsafe impl Send for MpiReducer {}

impl Reducer for MpiReducer {
    fn sum_f32(&mut self, buf: &mut [f32]) {
        if buf.is_empty() {
            return;
        }
        let send = buf.to_vec();
        self.0.all_reduce_into(&send[..], buf, SystemOperation::sum());
    }
    fn sum_f64(&mut self, buf: &mut [f64]) {
        if buf.is_empty() {
            return;
        }
        let send = buf.to_vec();
        self.0.all_reduce_into(&send[..], buf, SystemOperation::sum());
    }
}
