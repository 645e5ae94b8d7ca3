#!/usr/bin/env bash
# Shows that the GPU tests, run on the emulator, catch mistakes in the kernels: each mutant is
# modicl's kernel sources with one deliberate bug, built into an emulator of its own, and
# crates/cuda/tests/gpu_parity.rs must FAIL against it (and pass against the real sources).
# Prints one line per mutant and exits 1 if any mutant survives.
#
#   bash tools/gpu/emulator/mutants.sh
set -uo pipefail
cd "$(dirname "$0")/../../.."
nvrtc=$(ls -d "$PWD"/target/nvrtc/nvidia/*/lib 2>/dev/null | head -n 1)
[ -n "$nvrtc" ] || { echo "no NVRTC under target/nvrtc (see .ci/run)"; exit 1; }
cargo test --workspace --locked --test gpu_parity --no-run >/dev/null 2>&1 ||
  { echo "cannot build the gpu_parity test"; exit 1; }

# name | file | sed expression (applied to that kernel source)
mutants=(
  "LayerNorm's warp sum stops a level early|layernorm.cu|s/for (int o = 16; o > 0; o >>= 1)/for (int o = 16; o > 1; o >>= 1)/"
  "attention drops the diagonal key|attention.cu|0,/for (int k = 0; k <= t; k++) {/s//for (int k = 0; k < t; k++) {/"
  "RoPE's backward rotates forward|attention.cu|s/if (inverse) s = -s;//"
  "the key gradient skips the last query|attention.cu|s/for (int t = k; t < T; t++) {/for (int t = k; t < T - 1; t++) {/"
  "the embedding gradient skips the last row|elementwise.cu|s/for (int r = 0; r < n; r++) {/for (int r = 0; r < n - 1; r++) {/"
  "AdamW's second moment uses beta1|elementwise.cu|s/(1.0f - beta2) \* gi \* gi/(1.0f - beta1) * gi * gi/"
  "the loss sum's tree loses its barrier|loss.cu|/if (t < w) part\[t\] += part\[t + w\];/{n;d}"
  "LayerNorm's weight gradient drops a chunk's last row|layernorm.cu|s/for (long long r = r0; r < r1; r++)/for (long long r = r0; r < r1 - 1; r++)/"
  "the GEMM attention's softmax backward drops its centring|attention.cu|s/g\[k\] = p\[k\] \* (g\[k\] - pd);/g[k] = p[k] * g[k];/"
  "the GEMM attention's softmax normalises over one key too few|attention.cu|/softmax_causal(float/,/^}/s/for (int k = lane; k <= t; k += 32) p\[k\] \/= sum;/for (int k = lane; k < t; k += 32) p[k] \/= sum;/"
)

run_parity() {
  LD_LIBRARY_PATH="$1:$nvrtc" MODICL_REQUIRE_GPU=1 \
    cargo test --workspace --locked --test gpu_parity -- --test-threads 1 \
    forward_backward_and_adamw_match_the_cpu_engine >"$2" 2>&1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
survivors=0
# The real kernels first: the test must pass, or a failing mutant proves nothing.
EMU_OUT="$work/real" bash tools/gpu/emulator/build.sh >/dev/null || exit 1
if run_parity "$work/real" "$work/real.log"; then
  echo "ok      the real kernels pass"
else
  echo "FAIL    the real kernels fail the parity test ($work/real.log):"
  tail -n 20 "$work/real.log"
  exit 1
fi
i=0
for m in "${mutants[@]}"; do
  IFS='|' read -r name file expr <<<"$m"
  i=$((i + 1))
  src="$work/m$i/kernels"
  mkdir -p "$src"
  cp crates/cuda/kernels/*.cu "$src/"
  sed -i -e "$expr" "$src/$file"
  if cmp -s "$src/$file" "crates/cuda/kernels/$file"; then
    echo "STALE   $name: the edit no longer applies to $file"
    survivors=$((survivors + 1))
    continue
  fi
  EMU_OUT="$work/m$i/lib" EMU_KERNELS="$src" bash tools/gpu/emulator/build.sh >/dev/null || {
    echo "STALE   $name: the mutant does not compile"
    survivors=$((survivors + 1))
    continue
  }
  if run_parity "$work/m$i/lib" "$work/m$i.log"; then
    echo "SURVIVED $name"
    survivors=$((survivors + 1))
  else
    # The assertion's message: the line after "panicked at".
    why=$(grep -m1 -A1 "panicked at" "$work/m$i.log" | tail -n 1 | cut -c1-110)
    echo "caught  $name (${why:-failed})"
  fi
done
echo "$((i - survivors)) of $i mutants caught"
[ $survivors = 0 ]
