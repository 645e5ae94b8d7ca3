#!/usr/bin/env bash
# Builds modicl's GPU emulator (emulator.cpp): one shared library, installed as libcuda.so.1
# and libcublas.so.13 (and their unversioned names) in target/gpu-emulator. With that folder and
# NVRTC on LD_LIBRARY_PATH, `--device cuda` and the GPU tests run on the CPU
# (tools/gpu/emulate.sh sets that up). Needs g++ (C++17) on x86-64.
#
#   bash tools/gpu/emulator/build.sh              # the library, from crates/cuda/kernels/*.cu
#   bash tools/gpu/emulator/build.sh --selftest   # and the emulator's own self-test, run
set -euo pipefail
cd "$(dirname "$0")/../../.."
# EMU_OUT and EMU_KERNELS build elsewhere from other sources (tools/gpu/emulator/mutants.sh).
out=${EMU_OUT:-target/gpu-emulator}
kernels=${EMU_KERNELS:-crates/cuda/kernels}
here=tools/gpu/emulator
mkdir -p "$out"
command -v g++ >/dev/null || { echo "the GPU emulator needs g++ (apt-get install g++)"; exit 1; }
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT

# compile OUTPUT MAIN FLAGS... -- KERNEL_SOURCES...: MAIN compiled with every kernel source in
# a namespace of its own (they share helper names) and the table of their __global__ functions.
compile() {
  local output=$1 main=$2
  shift 2
  local flags=()
  while [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  local dir="$gen/$(basename "$output")"
  mkdir -p "$dir"
  : >"$dir/kernels.inc"
  : >"$dir/registry.inc"
  for f in "$@"; do
    local stem
    stem=$(basename "$f" .cu)
    printf 'namespace k_%s {\n#include "%s"\n}\n' "$stem" "$(realpath "$f")" >>"$dir/kernels.inc"
    grep -o '__global__ void [A-Za-z_0-9]*' "$f" |
      awk -v ns="k_$stem" '{print "EMU_KERNEL(" ns ", " $3 ")"}' >>"$dir/registry.inc"
  done
  g++ -std=c++17 -O2 -g -Wall -Wextra -Wno-unused-parameter -I "$dir" -I "$here" \
    "${flags[@]}" -o "$output" "$main" -lpthread
  echo "$(grep -c EMU_KERNEL "$dir/registry.inc") kernels"
}

n=$(compile "$out/libmodicl-gpu-emulator.so" "$here/emulator.cpp" -fPIC -shared \
  -fvisibility=hidden -- "$kernels"/*.cu)
for name in libcuda.so libcuda.so.1 libcublas.so libcublas.so.13; do
  ln -sf libmodicl-gpu-emulator.so "$out/$name"
done
echo "GPU emulator: $out ($n)"

if [ "${1:-}" = --selftest ]; then
  compile "$out/selftest" "$here/selftest.cpp" -- "$here/selftest.cu" >/dev/null
  "$out/selftest"
fi
