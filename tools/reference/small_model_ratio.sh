#!/usr/bin/env bash
# The small-model speed target (docs/engine.md, "Small models"): the `cpu` preset's training step
# against the paper-size step (d 512, 4 blocks, batch 128), both as GFLOP/s, in interleaved rounds
# of one session, so that the machine's day-to-day speed cancels out.
# Usage: tools/reference/small_model_ratio.sh [rounds] [binary ...]
#   rounds: default 3. Each binary (default: this checkout's release build) is timed in every
#   round, in the order given, then in the reverse order in the next round.
# Prints one line per measurement and, last, the median over rounds of each binary's
# cpu / paper GFLOP/s ratio (the ratio of medians of step times), and its min-based ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
shift || true
bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release -q -p modicl
  bins=(./target/release/modicl)
fi
out=$(mktemp)
for r in $(seq 1 "$rounds"); do
  order=("${bins[@]}")
  if [ $((r % 2)) -eq 0 ]; then
    order=()
    for ((i = ${#bins[@]} - 1; i >= 0; i--)); do order+=("${bins[$i]}"); done
  fi
  for b in "${order[@]}"; do
    for what in "--preset cpu --steps 30" "--model paper --steps 2 --warmup 1"; do
      # shellcheck disable=SC2086
      j=$("$b" bench $what --json)
      echo "$r $b $j" | tee -a "$out" | cut -c1-200
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r, b, j = line.split(" ", 2)
    d = json.loads(j)
    runs.setdefault(b, {}).setdefault(int(r), {})[d["model"]] = d
print(f"{'binary':<40} {'round':>5} {'cpu GFLOP/s':>12} {'paper GFLOP/s':>14} {'ratio':>6} {'ratio at min':>13}")
for b, rounds in runs.items():
    ratios = []
    for r, m in sorted(rounds.items()):
        cpu, paper = m["cpu"], m["paper"]
        ratio = cpu["gflops"] / paper["gflops"]
        # The same at the fastest timed step of each.
        fastest = lambda d: d["gflops"] * d["ms_per_step"] / min(d["step_ms_all"])
        at_min = fastest(cpu) / fastest(paper)
        ratios.append((ratio, at_min))
        print(f"{b:<40} {r:>5} {cpu['gflops']:>12.1f} {paper['gflops']:>14.1f} {ratio:>6.2f} {at_min:>13.2f}")
    med = statistics.median(x for x, _ in ratios)
    med_min = statistics.median(y for _, y in ratios)
    print(f"{b:<40} {'median':>5} {'':>12} {'':>14} {med:>6.2f} {med_min:>13.2f}")
PY
rm -f "$out"
