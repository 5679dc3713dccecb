#!/usr/bin/env bash
# The figures of docs/distributed.md, in one run: all-reduce between 2 local ranks (nabla's
# and, if importable, mpi4py's), step times of 2 ranks × 1 thread against 1 process × 2
# threads (LeNet-5, ResNet-18), and a LeNet-5 epoch of nabla train both ways.
# Needs the builds with --features mpi (scripts/mpi/test.sh makes them) and Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# nabla asks Open MPI to yield while waiting unless told otherwise; mpi4py gets the same.
export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
MPIRUN=(mpirun -n 2 --oversubscribe --bind-to none)
cargo build --release -q -p nabla-bench -p nabla-cli --features mpi
cargo build --release -q -p nabla-distributed --features mpi --examples
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# Rank 0 prints; the other rank's copy of the report is dropped.
"${MPIRUN[@]}" bash -c 'if [ "$OMPI_COMM_WORLD_RANK" = 0 ]; then exec target/release/nabla-bench allreduce --no-torch; else exec target/release/nabla-bench allreduce --no-torch > /dev/null; fi'
PY="${NABLA_TORCH_PYTHON:-python3}"
if "$PY" -c 'import mpi4py' 2>/dev/null; then
  "${MPIRUN[@]}" "$PY" scripts/mpi/allreduce.py
else
  echo "mpi4py is not importable from $PY: its figures are left out"
fi
RAYON_NUM_THREADS=2 target/release/examples/mpi_speed
"${MPIRUN[@]}" env RAYON_NUM_THREADS=1 target/release/examples/mpi_speed
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
common=(train --limit 12000 --val-size 2000 --epochs 1)
target/release/nabla "${common[@]}" --threads 2 --out "$tmp/one" | grep '^epoch'
"${MPIRUN[@]}" target/release/nabla "${common[@]}" --threads 1 --out "$tmp/two" | grep '^epoch'
