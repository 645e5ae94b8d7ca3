#!/usr/bin/env bash
# The GPU checks on the CPU: builds the GPU emulator (tools/gpu/emulator: a stand-in for the
# CUDA driver and cuBLAS that runs modicl's kernels on the CPU), runs its self-test, then every
# GPU test of the workspace against it, with MODICL_REQUIRE_GPU=1 so that none can skip:
#   crates/cuda/tests/gpu_parity.rs   the CUDA engine against the CPU engine (f32, tf32, bf16),
#                                     and determinism;
#   crates/trainer/tests/gpu.rs       the device evaluator and a short run against the CPU;
#   crates/cli/tests/gpu_cli.rs       train / eval / bench --device cuda, SIGKILL and resume,
#                                     a run moved between devices, out of memory, a small GPU.
# With --mutants, also tools/gpu/emulator/mutants.sh (deliberately broken kernels must fail).
#
#   bash tools/gpu/emulate.sh [--mutants]
#   bash tools/gpu/emulate.sh -- COMMAND...   # any command with the emulator as the GPU
#
# Needs g++ and NVRTC (NVIDIA's wheel under target/nvrtc, as .ci/run installs it, or on
# LD_LIBRARY_PATH). What the emulator does and does not show: docs/engine.md, "The GPU emulator".
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
bash tools/gpu/emulator/build.sh --selftest
nvrtc=$(ls -d "$PWD"/target/nvrtc/nvidia/*/lib 2>/dev/null | head -n 1 || true)
export LD_LIBRARY_PATH="$PWD/target/gpu-emulator${nvrtc:+:$nvrtc}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MODICL_REQUIRE_GPU=1 MODICL_REQUIRE_NVRTC=1
if [ "${1:-}" = -- ]; then
  shift
  exec "$@"
fi
t0=$SECONDS
# --workspace, as the README's test command: the same features, so nothing is built again.
cargo test --workspace --locked --test kernels_compile --test gpu_parity --test gpu --test gpu_cli
echo "GPU tests on the emulator: passed in $((SECONDS - t0)) s"
if [ "${1:-}" = --mutants ]; then
  bash tools/gpu/emulator/mutants.sh
fi
