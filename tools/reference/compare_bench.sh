#!/usr/bin/env bash
# Times modicl and the PyTorch twin on the same configs in one session, interleaved
# (modicl small, torch small, modicl paper, torch paper), and prints modicl / PyTorch.
# Usage: PYTHON=/path/to/venv/bin/python tools/reference/compare_bench.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
threads=${1:-2}
cargo build --release -q -p modicl
out=$(mktemp -d)
for m in small paper; do
  ./target/release/modicl bench --model "$m" --threads "$threads" --json | tee -a "$out/modicl.jsonl"
  "$py" tools/reference/bench_torch.py --threads "$threads" --configs "$m" | tee -a "$out/torch.jsonl"
done
"$py" - "$out/modicl.jsonl" "$out/torch.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ref = {r["model"]: r for r in (json.loads(l) for l in open(sys.argv[2]) if l.strip().startswith("{"))}
print(f"{'config':<7} {'modicl ms':>10} {'torch ms':>10} {'ratio':>6} {'modicl RSS MB':>14} {'torch RSS MB':>13}")
for r in rows:
    t = ref[r["model"]]
    print(f"{r['model']:<7} {r['ms_per_step']:>10.1f} {t['ms_per_step']:>10.1f} {r['ms_per_step'] / t['ms_per_step']:>6.3f} {r['peak_rss_mb']:>14.0f} {t['peak_rss_mb']:>13.0f}")
PY
