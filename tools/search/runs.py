#!/usr/bin/env python3
"""One line per run directory, for the ledger: the plateau exit (tools/search/plateau.py's
criterion), the last evaluation, the evaluation with the lowest o.o.d.-test loss and the
early-stopped one (summary.json), as last-shot accuracies i.d. train / i.d. test / o.o.d.
train / o.o.d. test and the i.d.-train and o.o.d.-test losses.

usage: tools/search/runs.py RUN_DIR [RUN_DIR ...]
"""
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plateau import exit_from_metrics  # noqa: E402

SETS = ("id_train", "id_test", "ood_train", "ood_test")


def p_of(run):
    for line in open(os.path.join(run, "config.toml")):
        if line.strip().startswith("p ="):
            return int(line.split("=")[1])
    raise SystemExit(f"{run}: no task.p in config.toml")


def describe(step, sets):
    acc = " / ".join(f"{sets[s]['acc_last']:.3f}" for s in SETS)
    return f"step {step:,}: {acc}; losses {sets['id_train']['loss']:.3f} / {sets['ood_test']['loss']:.3f}"


def main(runs):
    for run in runs:
        metrics = os.path.join(run, "metrics.csv")
        by = {}
        for r in csv.DictReader(open(metrics)):
            by.setdefault(int(r["step"]), {})[r["set"]] = {
                "acc_last": float(r["acc_last"]),
                "loss": float(r["loss"]),
            }
        p = p_of(run)
        left, last = exit_from_metrics(metrics, p)
        steps = sorted(s for s in by if all(k in by[s] for k in SETS))
        final = steps[-1]
        low = min((s for s in steps if s >= 1000), key=lambda s: by[s]["ood_test"]["loss"])
        print(f"## {os.path.basename(run.rstrip('/'))} (p = {p}, ln p = {math.log(p):.3f}, chance {1 / p:.3f})")
        print(f"- plateau exit: {f'step {left:,}' if left else f'none by step {last:,}'}")
        print(f"- last: {describe(final, by[final])}")
        print(f"- lowest o.o.d.-test loss: {describe(low, by[low])}")
        summary = os.path.join(run, "summary.json")
        if os.path.exists(summary):
            s = json.load(open(summary))
            b = s.get("best_ood")
            if b:
                sets = {k: v for k, v in b["sets"].items()}
                rm = sets["ood_test"].get("rm_frac")
                print(f"- best_ood (by {s.get('early_stop')}): {describe(b['step'], sets)}"
                      + (f"; {rm:.2f} of RM" if rm is not None else ""))
            for st in s.get("stages", []):
                b, l = st.get("before"), st.get("last")
                print(f"- stage {st['stage']} ({st['tasks']} tasks from step {st['from']:,}): before "
                      + (f"step {b['step']:,} acc_last {b['acc_last']:.3f}" if b else "-")
                      + (f", last {l['acc_last']:.3f}" if l else ""))
            print(f"- {s['steps_run']:,} steps in {s['wall_s'] / 60:.0f} min ({s['steps_per_s']:.1f} steps/s)")
        else:
            print("- not finished (no summary.json)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
