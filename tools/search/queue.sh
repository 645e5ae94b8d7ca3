#!/usr/bin/env bash
# Run a list of training runs in the background, N at a time, each at one thread and low
# priority, resuming any that an earlier session left unfinished.
#
# usage: tools/search/queue.sh RUNS.txt ROOT [WORKERS]
#
# RUNS.txt: one run per line, "NAME  ARGS..." (ARGS are `modicl train` arguments, put after the
# common arguments of the last line "= ARGS..." above it); blank lines and lines starting with #
# are skipped. Each run lives in ROOT/NAME: a run with a DONE file is
# skipped, a run directory without one is continued with `modicl train --resume`, any other is
# started. The workers take runs in file order; a run claimed by one worker (ROOT/NAME.claim) is
# not taken by another. Output goes to ROOT/NAME.log. Environment: MODICL (the binary, default
# `modicl` on PATH).
set -euo pipefail
runs=${1:?usage: queue.sh RUNS.txt ROOT [WORKERS]}
root=${2:?usage: queue.sh RUNS.txt ROOT [WORKERS]}
workers=${3:-2}
modicl=${MODICL:-modicl}
mkdir -p "$root"
rm -rf "$root"/*.claim

worker() {
  local name args common=""
  while read -r name args; do
    [ -z "$name" ] || [ "${name:0:1}" = "#" ] && continue
    if [ "$name" = "=" ]; then common=$args; continue; fi
    args="$common $args"
    [ -e "$root/$name/DONE" ] && continue
    mkdir "$root/$name.claim" 2>/dev/null || continue
    if [ -d "$root/$name/checkpoints" ]; then
      echo "$(date -Is) resume $name" >>"$root/queue.log"
      nice -n 19 "$modicl" train --resume "$root/$name" --threads 1 --quiet >>"$root/$name.log" 2>&1 || true
    else
      echo "$(date -Is) start $name" >>"$root/queue.log"
      rm -rf "${root:?}/$name"
      # shellcheck disable=SC2086 # ARGS are split into words on purpose
      nice -n 19 "$modicl" train $args --run-dir "$root/$name" --threads 1 --quiet >>"$root/$name.log" 2>&1 || true
    fi
    echo "$(date -Is) end $name ($([ -e "$root/$name/DONE" ] && echo done || echo stopped))" >>"$root/queue.log"
  done <"$runs"
}

for _ in $(seq "$workers"); do worker & done
wait
