#!/usr/bin/env bash
# Data-parallel training on MPI, tested with 2 local ranks (Open MPI from Debian).
#   scripts/mpi/test.sh           install Open MPI if needed, build with --features mpi, test
# Exit 3: Open MPI (or libclang) could not be installed, nothing was tested.
set -euo pipefail
cd "$(dirname "$0")/../.."
need() { command -v mpirun >/dev/null && [ -e /usr/include/x86_64-linux-gnu/mpi/mpi.h -o -e /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] \
  && ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; }
if ! need; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq libopenmpi-dev openmpi-bin libclang-dev >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libopenmpi-dev openmpi-bin libclang-dev >/dev/null 2>&1; } || true
  fi
  need || { echo "Open MPI or libclang is missing and could not be installed"; exit 3; }
fi
# Root may run ranks (CI runs as root); more ranks than cores is fine here.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun -n 2 --oversubscribe --bind-to none)
cargo build --release -q -p nabla-distributed --features mpi --example mpi_equivalence
cargo build --release -q -p nabla-cli --features mpi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # name, then the command; the command's exit status decides
  local name="$1"; shift
  if "$@"; then echo "ok: $name"; else echo "FAILED: $name"; fails=$((fails + 1)); fi
}
# 1. MLP, LeNet-5, small ResNet (--sync-bn, and per-rank BN): 2 ranks against 1 process;
#    then the all-reduce overlapping backward against the blocking one (bitwise equal).
check "equivalence of 2 ranks and 1 process, and of overlapped and blocking all-reduce" \
  timeout 600 "${MPIRUN[@]}" env RAYON_NUM_THREADS=1 target/release/examples/mpi_equivalence "$tmp/eq"
nabla=target/release/nabla
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  # 2. nabla train itself: 2 ranks and 1 process print the same validation numbers
  #    (within the rounding of 50 steps in another summation order).
  common=(train --limit 1000 --val-size 200 --epochs 1 --batch-size 20 --threads 1)
  timeout 300 "${MPIRUN[@]}" $nabla "${common[@]}" --out "$tmp/two" > "$tmp/two.txt"
  timeout 300 $nabla "${common[@]}" --out "$tmp/one" > "$tmp/one.txt"
  v2="$(grep -o '"val_loss":[0-9.e-]*' "$tmp/two/metrics.jsonl" | cut -d: -f2)"
  v1="$(grep -o '"val_loss":[0-9.e-]*' "$tmp/one/metrics.jsonl" | cut -d: -f2)"
  echo "nabla train, 1 epoch of 1000 images at batch 20: val_loss 2 ranks $v2, 1 process $v1"
  check "nabla train on 2 ranks matches 1 process (val_loss within 1e-4)" \
    awk -v a="$v2" -v b="$v1" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-4 * b) }'
  check "rank 0 alone printed (one epoch line)" test "$(grep -c '^epoch 1/1' "$tmp/two.txt")" = 1
  # 3. Resume a 2-rank run stopped after 17 steps, on 2 ranks (bitwise) and on 1 process.
  timeout 300 "${MPIRUN[@]}" $nabla "${common[@]}" --stop-after-steps 17 --out "$tmp/split" > /dev/null
  cp -r "$tmp/split" "$tmp/split1"
  timeout 300 "${MPIRUN[@]}" $nabla train --resume "$tmp/split/last.safetensors" > /dev/null
  check "2-rank resume is bitwise the uninterrupted 2-rank run" cmp -s \
    <(grep -o '"val_loss":[0-9.e-]*' "$tmp/split/metrics.jsonl") <(grep -o '"val_loss":[0-9.e-]*' "$tmp/two/metrics.jsonl")
  timeout 300 $nabla train --resume "$tmp/split1/last.safetensors" > /dev/null
  check "a 2-rank checkpoint resumes on 1 process" test -s "$tmp/split1/metrics.jsonl"
  # 4. Bad input: a clear error, every rank exits non-zero, no hang.
  check "ranks with different configurations are refused" bash -c "! timeout 120 mpirun -n 1 --oversubscribe $nabla ${common[*]} --lr 0.1 --out $tmp/bad1 : -n 1 --oversubscribe $nabla ${common[*]} --lr 0.2 --out $tmp/bad1 > $tmp/bad1.txt 2>&1 && grep -q 'different configuration' $tmp/bad1.txt"
  small=(train --limit 1000 --val-size 200 --epochs 1 --threads 1)
  check "an odd global batch on 2 ranks is refused" bash -c "! timeout 120 ${MPIRUN[*]} $nabla ${small[*]} --batch-size 21 --out $tmp/bad2 > $tmp/bad2.txt 2>&1 && grep -q 'not divisible' $tmp/bad2.txt"
  check "more ranks than training samples are refused" bash -c "! timeout 120 ${MPIRUN[*]} $nabla train --limit 1 --val-size 200 --epochs 1 --batch-size 2 --out $tmp/bad3 > $tmp/bad3.txt 2>&1 && grep -q 'only 1 training samples' $tmp/bad3.txt"
else
  echo "skipped: the nabla train checks, because Fashion-MNIST is not installed"
fi
if [ "$fails" = 0 ]; then echo "mpi tests: all passed"; else echo "mpi tests: $fails failed"; exit 1; fi
