#!/usr/bin/env bash
# Every GPU check of modicl's CUDA backend in one go, then one table. Runs on a machine with an
# NVIDIA driver and Python with PyTorch (CUDA 13), and needs neither Rust nor a network: it
# takes target/gpu-bundle/ (tools/gpu/build.sh, run on an ordinary x86-64 machine) and the
# scripts in tools/. Runs and logs go to MODICL_CHECK_WORK (default /tmp/modicl-gpu); the table
# (table.md) and the logs (logs.tar.gz) are also copied to $OUT when that is set (the device
# tool's folder that comes back: two files, never the runs' checkpoints).
#
#   bash tools/gpu/check.sh            # under 8 minutes on one H200 (estimated: never run yet)
#
# Each row is printed as its check ends ("ROW ..."), and the whole table last. The checks share
# a deadline, MODICL_CHECK_DEADLINE seconds from the start (default 540, inside the device
# tool's 600 s per call): a check gets at most the time left, and once less than 20 s is left
# the rest are reported "not run (deadline)", so the table always prints.
#
# MODICL_CHECKS="a b" runs only the named checks (a rerun); MODICL_CHECK_DEVICE=cpu runs the
# curve and resume checks on the CPU, and RESUME_STEPS=N shortens the resume check (to try the
# script on a machine without a GPU, or with tools/gpu/emulate.sh -- on the GPU emulator).
#
# Checks, in the order of the table:
#   kernels      every kernel source compiles with NVRTC for this GPU (kernels_compile);
#   parity       the CUDA engine against the CPU engine on random weights, f32: logits, every
#                gradient tensor, 5 AdamW steps, each ||gpu - cpu|| / ||cpu|| <= 1e-5;
#   tf32         train.precision = tf32 against the f32 CPU engine, within 1e-2;
#   bf16         train.precision = bf16 (bf16 operands, f32 accumulation) against it, within 5e-2;
#   determinism  the same steps twice give the same bytes on the GPU;
#   torch        PyTorch's paper-d4 step: official model, bf16 autocast, SDPA, torch.compile;
#   bench        `modicl bench --device cuda --preset paper-d4` (f32);
#   bench-bf16   the same with train.precision = bf16, the official runs' arithmetic;
#   bench-gemm   that bf16 step with the batched-GEMM attention (--attention gemm);
#   profile      that step's device time per kernel and product (bench --profile);
#   speed        modicl's bf16 step over PyTorch's (same card, same script) and device memory;
#   evaluator    the device evaluator's per-shot counts against the host's, and a short run's
#                metrics on the GPU against the CPU's (the trainer's gpu test);
#   cli          the binary at a tiny size: train, eval and bench --device cuda against the CPU,
#                SIGKILL and resume byte-identical, a run moved between devices (gpu_cli);
#   train        `modicl train --preset paper-d4 --device cuda`, 200 steps at batch 1536;
#   eval         `modicl eval --device cuda` of that run;
#   curve        the training loss of the same 2 steps on the CPU and the GPU (within 1e-4);
#   resume       resume after SIGKILL on the GPU is byte-identical to an uninterrupted run;
#   sanitizer    compute-sanitizer's memcheck, racecheck and synccheck over the parity test.
# The targets' measurements come early, so that a deadline cuts the slow checks, not them.
set -uo pipefail
# $OUT as given, before the script moves to the repository's root.
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
fi
cd "$(dirname "$0")/../.."
B=${BUNDLE:-target/gpu-bundle}
W=${MODICL_CHECK_WORK:-/tmp/modicl-gpu}
DEADLINE=${MODICL_CHECK_DEADLINE:-540}
# The device of the curve and resume checks (cpu only to try the script without a GPU).
DEV=${MODICL_CHECK_DEVICE:-cuda}
export B W DEV
mkdir -p "$W"
[ -x "$B/modicl" ] || { echo "no $B/modicl: run tools/gpu/build.sh on a machine with Rust"; exit 1; }

# CUDA libraries: a toolkit on the path, or the nvidia-* wheels PyTorch brings.
wheel_libs=$(python3 - <<'PY' 2>/dev/null
import glob, os
dirs = set()
try:
    import nvidia
    for root in nvidia.__path__:
        for lib in ("libnvrtc.so*", "libcublas.so*", "libcublasLt.so*"):
            for f in glob.glob(os.path.join(root, "**", lib), recursive=True):
                dirs.add(os.path.dirname(f))
except Exception:
    pass
print(":".join(sorted(dirs)))
PY
)
if [ -n "$wheel_libs" ]; then
  export LD_LIBRARY_PATH="${wheel_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
# Where the table and the logs are copied as the checks go (absolute: the copies are made
# from inside the work folder).
RET=${OUT:-}
[ -n "$RET" ] && [ "$RET" = "$(cd "$W" && pwd)" ] && RET=
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

declare -A RESULT DETAIL
ORDER=()
LAST=
# table: the table so far, in $W/table.md and (with the logs) in $OUT, so that a call cut
# short still brings back every check that ended.
table() {
  {
    echo "| check | result | detail |"
    echo "|---|---|---|"
    for n in "${ORDER[@]}"; do
      [ -n "${RESULT[$n]:-}" ] && echo "| $n | ${RESULT[$n]} | ${DETAIL[$n]//$'\n'/ } |"
    done
  } >"$W/table.md"
  if [ -n "$RET" ]; then
    cp "$W/table.md" "$RET/table.md"
    (cd "$W" && tar czf "$RET/logs.tar.gz" ./*.log 2>/dev/null)
  fi
}
# row [NAME]: prints the row of the check before (its detail is complete by now) and saves
# the table so far.
row() {
  if [ -n "$LAST" ]; then
    echo "ROW | $LAST | ${RESULT[$LAST]} | ${DETAIL[$LAST]//$'\n'/ } |"
    table
  fi
  LAST=${1:-}
}
# check NAME TIMEOUT_S COMMAND...: runs it, logs to $W/NAME.log, records pass/FAIL.
check() {
  local name=$1 limit=$2
  shift 2
  # A log for a check not run (kept from an earlier run, or empty), so that reading its
  # detail prints no error.
  [ -e "$W/$name.log" ] || : >"$W/$name.log"
  # MODICL_CHECKS="curve resume" runs only those (a rerun of the ones that failed).
  if [ -n "${MODICL_CHECKS:-}" ] && [[ " $MODICL_CHECKS " != *" $name "* ]]; then
    return
  fi
  row "$name"
  ORDER+=("$name")
  local left=$((DEADLINE - SECONDS))
  if [ $left -lt 20 ]; then
    RESULT[$name]="not run (deadline)"
    DETAIL[$name]="MODICL_CHECK_DEADLINE=$DEADLINE s reached"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  local t0=$SECONDS
  if declare -F "$1" >/dev/null; then
    # A function of this script: timeout runs programs, so through bash with it exported.
    export -f "$1"
    timeout -k 10 "$limit" bash -c "$1" >"$W/$name.log" 2>&1
  else
    timeout -k 10 "$limit" "$@" >"$W/$name.log" 2>&1
  fi
  local rc=$?
  # Whatever a check started and left running (an inner timeout's child escapes the outer
  # one) must not hold the GPU during the next.
  pkill -KILL -f "$B/" 2>/dev/null
  case $rc in
    0) RESULT[$name]=pass ;;
    124 | 137) RESULT[$name]="FAIL (timed out at $limit s)" ;;
    *) RESULT[$name]="FAIL (exit $rc)" ;;
  esac
  DETAIL[$name]="$((SECONDS - t0)) s"
}

check kernels 120 env MODICL_REQUIRE_NVRTC=1 "$B/kernels_compile" --nocapture
DETAIL[kernels]+="; $(grep -c 'bytes of PTX' "$W/kernels.log") PTX builds; $(grep -m1 '^NVRTC' "$W/kernels.log")"

check parity 300 env MODICL_REQUIRE_GPU=1 "$B/gpu_parity" --nocapture --test-threads 1 \
  forward_backward_and_adamw_match_the_cpu_engine
worst=$(awk '/^PARITY/ {print $NF "\t" $0}' "$W/parity.log" | sort -g | tail -n 1 | cut -f2)
DETAIL[parity]+="; $(grep -c '^PARITY' "$W/parity.log") comparisons; worst: ${worst:-none}"

check tf32 120 env MODICL_REQUIRE_GPU=1 "$B/gpu_parity" --nocapture --test-threads 1 \
  tf32_stays_within_its_stated_tolerance
DETAIL[tf32]+="; $(grep '^TF32' "$W/tf32.log" | cut -c6- | tr '\n' ';')"

check bf16 120 env MODICL_REQUIRE_GPU=1 "$B/gpu_parity" --nocapture --test-threads 1 \
  bf16_stays_within_its_stated_tolerance
DETAIL[bf16]+="; $(grep '^BF16' "$W/bf16.log" | cut -c6- | tr '\n' ';')"

check determinism 120 env MODICL_REQUIRE_GPU=1 "$B/gpu_parity" --nocapture --test-threads 1 \
  the_same_steps_give_the_same_bytes_on_the_gpu
DETAIL[determinism]+="; $(grep '^DETERMINISM' "$W/determinism.log" | cut -c13- | tr '\n' ';')"

# The same batch as the paper-d4 preset (1536), which bench times.
check torch 300 python3 tools/gpu/torch_step.py --steps 20 --batch 1536
DETAIL[torch]+="; $(tail -n 1 "$W/torch.log" | cut -c1-200)"

check bench 300 "$B/modicl" bench --device cuda --preset paper-d4 --steps 10 --json
DETAIL[bench]+="; $(tail -n 1 "$W/bench.log" | cut -c1-200)"

check bench-bf16 300 "$B/modicl" bench --device cuda --preset paper-d4 --steps 10 --json \
  --set train.precision=bf16
DETAIL[bench-bf16]+="; $(tail -n 1 "$W/bench-bf16.log" | cut -c1-200)"

# The same bf16 step with the batched-GEMM attention (bench --attention gemm), to choose.
check bench-gemm 300 "$B/modicl" bench --device cuda --preset paper-d4 --steps 10 --json \
  --set train.precision=bf16 --attention gemm
DETAIL[bench-gemm]+="; $(tail -n 1 "$W/bench-gemm.log" | cut -c1-200)"

# Where modicl's bf16 step spends its device time, kernel by kernel (for the next round of work).
check profile 300 "$B/modicl" bench --device cuda --preset paper-d4 --steps 3 \
  --set train.precision=bf16 --profile
DETAIL[profile]+="; top: $(grep -A3 '^    operation' "$W/profile.log" | tail -n 3 | awk '{n = $1; for (i = 2; i <= NF - 3; i++) n = n " " $i; printf "%s %s ms (%s); ", n, $(NF-1), $NF}' | cut -c1-200)"

# modicl's step against PyTorch's, same card (ratio > 1: modicl is slower), and device memory.
if [[ " ${ORDER[*]} " == *" torch "* && " ${ORDER[*]} " == *" bench-bf16 "* ]]; then
  row speed
  ORDER+=(speed)
  DETAIL[speed]=$(python3 - "$W" <<'PY' 2>&1
import json, sys
o = sys.argv[1]
last = lambda f: json.loads(open(f"{o}/{f}.log").read().strip().splitlines()[-1])
try:
    t, m = last("torch"), last("bench-bf16")
    try:
        g = last("bench-gemm")
    except Exception:
        g = None
    # Per token, in case the batches differ (all should be 1536).
    ratio = t["tokens_per_s"] / m["tokens_per_s"]
    print("modicl bf16 %.1f ms/step at batch %d (%.1f TFLOP/s, %.2f GiB measured) vs PyTorch %.1f ms/step at batch %d (%.2f GiB peak): time ratio %.2f per token; 200k steps would take %.1f h" % (
        m["ms_per_step"], m["batch"], m["tflops"], m["device_mem_mb"] / 1024, t["ms_per_step"], t["batch"],
        t["peak_mem_gib"], ratio, m["ms_per_step"] * 2e5 / 3.6e6), end="")
    if g:
        print("; with gemm attention %.1f ms/step (ratio %.2f)" % (
            g["ms_per_step"], t["tokens_per_s"] / g["tokens_per_s"]), end="")
    print()
except Exception as e:
    print("not measured:", e)
PY
)
  RESULT[speed]=$([[ ${DETAIL[speed]} == modicl* ]] && echo measured || echo "not measured")
fi

check evaluator 180 env MODICL_REQUIRE_GPU=1 "$B/gpu" --nocapture --test-threads 1
DETAIL[evaluator]+="; $(grep -c '^EVAL' "$W/evaluator.log") sets compared; $(grep -m1 '^RUN' "$W/evaluator.log" | cut -c5-120)"

# The binary on the GPU at a tiny size: train / eval / bench against the CPU, SIGKILL and resume,
# a run moved between the CPU and the GPU (its emulator-only fault tests say SKIPPED here).
check cli 400 env MODICL_REQUIRE_GPU=1 MODICL_BIN="$B/modicl" "$B/gpu_cli" --nocapture --test-threads 1
DETAIL[cli]+="; $(grep -m1 '^test result' "$W/cli.log" | cut -c1-60); $(grep -c '^SKIPPED' "$W/cli.log") skipped"

# A short paper-d4 run on the GPU (full batch 1536; 4 sequences per task per evaluation set).

check train 420 "$B/modicl" train --preset paper-d4 --device cuda --set train.steps=200 \
  --set train.warmup=20 --set train.eval_every=100 --set train.eval_early=0 \
  --set eval.seqs_per_task=4 --set train.checkpoints=log:2 --run-dir "$W/paper-d4" \
  --overwrite --quiet
DETAIL[train]+="; $(python3 - "$W/paper-d4" <<'PY' 2>&1
import csv, json, sys
d = sys.argv[1]
try:
    s = json.load(open(d + "/summary.json"))
    rows = [r for r in csv.DictReader(open(d + "/metrics.csv")) if r["set"] == "train_batch"]
    print("%.1f ms/step without evaluation; train loss %s -> %s; device %s" % (
        1e3 / s["train_only_steps_per_s"], rows[0]["loss"][:6], rows[-1]["loss"][:6], s.get("device")))
except Exception as e:
    print("no summary:", e)
PY
)"

# modicl eval on the GPU, of the run just trained.
check eval 120 "$B/modicl" eval "$W/paper-d4" --device cuda --seqs-per-task 4 --json
DETAIL[eval]+="; last-shot $(python3 - "$W/eval.log" <<'PY' 2>&1 | cut -c1-160
import json, sys
try:
    t = open(sys.argv[1]).read()
    d = json.loads(t[t.index("{"):t.rindex("}") + 1])
    print(" ".join("%s %.3f" % (s["set"], s["acc_last"]) for s in d["sets"]))
except Exception as e:
    print("not read:", e)
PY
)"

# The same first 2 steps on the CPU and the GPU (paper-d4 at batch 384): training loss per step.
curve() {
  for dev in cpu "$DEV"; do
    "$B/modicl" train --preset paper-d4 --device $dev --set task.batch=384 --set train.steps=2 \
      --set train.eval_every=1 --set train.eval_early=0 --set eval.seqs_per_task=1 \
      --set train.checkpoints=log:1 --set train.save_every=0 --run-dir "$W/curve-$dev" \
      --overwrite --quiet || return 1
  done
  python3 - "$W" "$DEV" <<'PY'
import csv, sys
o = sys.argv[1]
get = lambda dev: [float(r["loss"]) for r in csv.DictReader(open(f"{o}/curve-{dev}/metrics.csv"))
                   if r["set"] == "train_batch"]
c, g = get("cpu"), get(sys.argv[2])
worst = max((abs(a - b) / abs(a) for a, b in zip(c, g)), default=float("inf"))
print("CURVE cpu", " ".join("%.6f" % x for x in c), "| cuda", " ".join("%.6f" % x for x in g),
      "| worst relative difference %.2e" % worst)
sys.exit(0 if worst <= 1e-4 else 1)
PY
}
check curve 420 curve
DETAIL[curve]+="; $(grep -m1 '^CURVE' "$W/curve.log" | cut -c7-220)"

# Resume after SIGKILL on the GPU is byte-identical: the cpu preset's model, 400 steps,
#    killed every few seconds and resumed, against one uninterrupted run.
resume() {
  local steps=${RESUME_STEPS:-400}
  local args=(--preset cpu --device "$DEV" --set train.steps="$steps" --set train.warmup=$((steps / 10))
    --set train.save_every=$((steps / 8)) --set train.eval_every=$((steps / 4)) --quiet)
  "$B/modicl" train "${args[@]}" --run-dir "$W/straight" --overwrite || return 1
  rm -rf "$W/killed"
  # Killed after 4 s, then 5 s, 6 s, ... so that every start gets further than the last; until
  # a start has written the run's config.toml (opening the GPU can take seconds), a fresh start
  # again instead of a resume.
  local kills=0
  until [ -e "$W/killed/DONE" ]; do
    if [ -e "$W/killed/config.toml" ]; then
      timeout -s KILL $((4 + kills)) "$B/modicl" train --resume "$W/killed" --device "$DEV" --quiet
    else
      rm -rf "$W/killed"
      timeout -s KILL $((4 + kills)) "$B/modicl" train "${args[@]}" --run-dir "$W/killed"
    fi
    kills=$((kills + 1))
    [ $kills -gt 60 ] && { echo "RESUME did not finish"; return 1; }
  done
  local diffs=0
  for f in metrics.csv shots.csv $(cd "$W/straight" && ls checkpoints/*/*.safetensors); do
    cmp -s "$W/straight/$f" "$W/killed/$f" || { echo "differs: $f"; diffs=$((diffs + 1)); }
  done
  echo "RESUME $kills starts, $diffs files differ"
  [ $diffs = 0 ]
}
check resume 300 resume
DETAIL[resume]+="; $(grep -m1 '^RESUME' "$W/resume.log")"

# NVIDIA's compute-sanitizer over the parity test (a small model, 5 steps): memcheck (out of
# bounds, misaligned, uninitialised device reads), racecheck (shared-memory hazards) and
# synccheck (barrier misuse): what the emulator, whose threads never run at once, cannot see.
sanitize() {
  local cs bad=0 tool rc
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n 1)
  [ -n "$cs" ] || { echo "SANITIZER compute-sanitizer not found"; return 1; }
  for tool in memcheck racecheck synccheck; do
    MODICL_REQUIRE_GPU=1 "$cs" --tool "$tool" --error-exitcode 9 "$B/gpu_parity" --test-threads 1 \
      forward_backward_and_adamw_match_the_cpu_engine >"$W/sanitizer-$tool.log" 2>&1
    rc=$?
    echo "SANITIZER $tool exit $rc, $(grep -m1 'ERROR SUMMARY' "$W/sanitizer-$tool.log")"
    [ $rc = 0 ] || bad=1
  done
  return $bad
}
check sanitizer 240 sanitize
DETAIL[sanitizer]+="; $(grep '^SANITIZER' "$W/sanitizer.log" | cut -c11- | tr '\n' ';')"

row
table
echo
cat "$W/table.md"
