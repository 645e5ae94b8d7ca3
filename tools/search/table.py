#!/usr/bin/env python3
"""Markdown rows of a sweep's results table (modicl sweep collect DIR writes DIR/results.csv).

usage: tools/search/table.py LABEL RESULTS.csv [LABEL RESULTS.csv ...]

One row per run: the label, the run's name (its axis values), n_id, alpha, the last evaluated
step, the four last-shot accuracies and the phase labels (final, and at the best o.o.d.-test
step). Runs without results show their state.
"""
import csv
import sys


def rows(label, path):
    for r in csv.DictReader(open(path)):
        if not r.get("final_step"):
            yield f"| {label} | {r['name']} | {r['n_id']} | {r['alpha']} | - | - | - | - | - | {r['state']} | - |"
            continue
        acc = [float(r[f"final_{s}_acc_last"]) for s in ("id_train", "id_test", "ood_train", "ood_test")]
        best = f"{r['best_ood_phase']} (step {r['best_ood_step']})"
        yield (f"| {label} | {r['name']} | {r['n_id']} | {r['alpha']} | {r['final_step']} | "
               + " | ".join(f"{a:.3f}" for a in acc)
               + f" | {r['final_phase']} | {best} |")


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        sys.exit(__doc__)
    print("| sweep | run | n_id | alpha | step | id train | id test | ood train | ood test | phase | phase at best o.o.d. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, path in zip(argv[::2], argv[1::2]):
        for line in rows(label, path):
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
