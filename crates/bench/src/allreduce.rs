//! `allreduce`: MPI all-reduce (sum of f32) between the ranks of this job, 4 B to 64 MB, as
//! data-parallel training uses it for gradients. Run under `mpirun -n N` in a build with
//! `--features mpi`; rank 0's figures are printed (mean time per all-reduce after a
//! warm-up, each timed loop started after a barrier). Bandwidth is the bus bandwidth of
//! NCCL's tests: bytes/time · 2(N−1)/N, what each link carries in a ring all-reduce.

use crate::report::Row;

/// No PyTorch counterpart in this harness (mpi4py's figure comes from
/// `scripts/mpi/allreduce.py`, run by `scripts/mpi/bench.sh` in the same job).
pub const TORCH_SECTIONS: &[&str] = &[];

#[cfg(feature = "mpi")]
pub fn run() -> nabla_core::Result<Vec<Row>> {
    use nabla_distributed::{Comm, Mpi};
    use std::time::Instant;
    thread_local! {
        // MPI initializes once per process; later rounds reuse it.
        static MPI: Option<std::rc::Rc<Mpi>> = Mpi::init().map(std::rc::Rc::new);
    }
    let comm = MPI
        .with(|m| m.clone())
        .ok_or_else(|| nabla_core::Error::invalid("allreduce", "MPI could not be initialized"))?;
    let n = comm.size();
    if n < 2 {
        return Err(nabla_core::Error::invalid(
            "allreduce",
            "needs at least 2 ranks: mpirun -n 2 nabla-bench allreduce",
        ));
    }
    let mut rows = vec![];
    let mut bytes = 4usize;
    while bytes <= 64 << 20 {
        let mut buf = vec![1.0f32; bytes / 4];
        // About 0.3 s per size on a quiet machine, at least 5 times.
        let iters = (200_000_000 / bytes.max(1 << 12)).clamp(5, 2000);
        for _ in 0..iters.min(20) {
            comm.all_reduce_sum_f32(&mut buf);
        }
        comm.barrier();
        let t0 = Instant::now();
        for _ in 0..iters {
            comm.all_reduce_sum_f32(&mut buf);
        }
        let secs = t0.elapsed().as_secs_f64() / iters as f64;
        let label = match bytes {
            b if b >= 1 << 20 => format!("{} MB", b >> 20),
            b if b >= 1 << 10 => format!("{} KB", b >> 10),
            b => format!("{b} B"),
        };
        rows.push(Row::lower(format!("allreduce {label} latency"), "us", secs * 1e6));
        let bus = bytes as f64 / secs * 2.0 * (n - 1) as f64 / n as f64 / 1e9;
        rows.push(Row::higher(format!("allreduce {label} bus bandwidth"), "GB/s", bus));
        bytes *= 4;
    }
    Ok(rows)
}

#[cfg(not(feature = "mpi"))]
pub fn run() -> nabla_core::Result<Vec<Row>> {
    Err(nabla_core::Error::invalid(
        "allreduce",
        "this nabla-bench was built without MPI: cargo build --release -p nabla-bench --features mpi, \
         then mpirun -n 2 target/release/nabla-bench allreduce",
    ))
}
