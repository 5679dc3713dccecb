#!/usr/bin/env bash
# Cross-build nabla for aarch64-unknown-linux-gnu and run nabla-core's tests under qemu-user.
#
# What it verifies: the crates compile for 64-bit Arm (no x86-only code left ungated), and
# nabla-core's unit and integration tests pass on an emulated aarch64 CPU (NEON, the base of
# every aarch64 chip), with the results the scalar and any NEON paths give there.
# The hand-written NEON paths (crates/core/src/kernels/simd/neon.rs: the Winograd transforms
# and the unpacked small products, written once over the `Lanes` trait) are compared there
# with the scalar level, as the x86 levels are on x86; elsewhere aarch64 runs `gemm`'s own
# NEON kernels and loops the compiler vectorizes for NEON (part of the aarch64 baseline).
# What it cannot: speed (timings under emulation mean nothing); real Arm hardware quirks qemu
# does not model (memory ordering, denormals).
#
# Toolchain, all from Debian 12 packages (offline-friendly, no rustup target download):
# rustc-web 1.96 (installs /usr/bin/rustc, sysroot /usr) with the arm64 standard library
# from libstd-rust-web-dev:arm64 (multi-arch: /usr/lib/rustlib/aarch64-unknown-linux-gnu),
# gcc-aarch64-linux-gnu as the linker, qemu-user as the runner. qemu loads the arm64 glibc
# that libc6:arm64 installs under / (`-L /`): with the cross glibc of libc6-arm64-cross
# (`-L /usr/aarch64-linux-gnu`, 2.36-8) any thread creation hangs under qemu 7.2, so every
# test harness would.
# Run as root to install what is missing; the build goes to target/aarch64 so the host's
# (other rustc) artifacts are left alone.
#
# Usage: scripts/aarch64.sh                 # nabla-core, unit + integration tests
#        scripts/aarch64.sh -p nabla-core --doc   # its doc tests (rustdoc-web; not run in CI)
#        scripts/aarch64.sh -p nabla-nn     # other crates: any `cargo test` arguments
#        scripts/aarch64.sh --workspace
# Exits 3 (after saying why) when the toolchain cannot be installed, so CI can skip it.
set -euo pipefail
cd "$(dirname "$0")/.."

rustc_web=/usr/bin/rustc
need=()
has() { dpkg -s "$1" >/dev/null 2>&1; }
has rustc-web || need+=(rustc-web)
has libstd-rust-web-dev:arm64 || need+=(libstd-rust-web-dev:arm64)
has libc6:arm64 || need+=(libc6:arm64)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
# Exit status 3: the toolchain is missing and could not be installed (callers may skip).
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "aarch64: skipped: missing ${need[*]}, and installing needs root and apt-get" >&2
    exit 3
  fi
  echo "aarch64: installing ${need[*]}"
  if ! { dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64; } ||
    ! apt-get update -qq ||
    ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; then
    echo "aarch64: skipped: apt-get could not install ${need[*]}" >&2
    exit 3
  fi
fi
# The arm64 std must come from the same rustc build as the compiler.
"$rustc_web" --print target-libdir --target aarch64-unknown-linux-gnu >/dev/null

export RUSTC="$rustc_web" RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_AARCH64:-target/aarch64}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-p nabla-core --lib --tests)
echo "aarch64: $("$rustc_web" --version), $(qemu-aarch64 --version | head -1)"
echo "aarch64: cargo test --release --target aarch64-unknown-linux-gnu ${args[*]} (under qemu-aarch64)"
cargo test --release --target aarch64-unknown-linux-gnu "${args[@]}"
echo "aarch64: tests passed under emulation (${args[*]}); correctness only, no timings"
