"""mpi4py's all-reduce (sum of float32, Allreduce on NumPy buffers) between the ranks of
this job, 4 B to 64 MB, timed as `nabla-bench allreduce` times nabla's: warm-up, a barrier,
then the mean over a loop; bus bandwidth = bytes/time * 2(N-1)/N. Run under mpirun."""
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
n = comm.Get_size()
size = 4
while size <= 64 << 20:
    send = np.ones(size // 4, dtype=np.float32)
    recv = np.empty_like(send)
    iters = max(5, min(2000, 200_000_000 // max(size, 1 << 12)))
    for _ in range(min(iters, 20)):
        comm.Allreduce(send, recv, op=MPI.SUM)
    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(iters):
        comm.Allreduce(send, recv, op=MPI.SUM)
    secs = (time.perf_counter() - t0) / iters
    if comm.Get_rank() == 0:
        label = f"{size >> 20} MB" if size >= 1 << 20 else f"{size >> 10} KB" if size >= 1 << 10 else f"{size} B"
        bus = size / secs * 2 * (n - 1) / n / 1e9
        print(f"mpi4py allreduce {label}: {secs * 1e6:.1f} us, bus bandwidth {bus:.2f} GB/s")
    size *= 4
