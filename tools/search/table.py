#!/usr/bin/env python3
"""Markdown rows of a sweep's results table (modicl sweep collect DIR writes DIR/results.csv).

usage: tools/search/table.py LABEL RESULTS.csv [LABEL RESULTS.csv ...]

One row per run: the label, the run's name (its axis values), n_id, alpha, the last evaluated
step, the four last-shot accuracies, the o.o.d.-test accuracy as a fraction of Ratio
Matching's, and the phase labels (final, and at the best o.o.d.-test step; each followed by the
second labelling, with ood-gen-rm, where the table has it). Runs without results show their
state.
"""
import csv
import sys


def rows(label, path):
    for r in csv.DictReader(open(path)):
        if not r.get("final_step"):
            yield f"| {label} | {r['name']} | {r['n_id']} | {r['alpha']} | - | - | - | - | - | - | {r['state']} | - |"
            continue
        acc = [float(r[f"final_{s}_acc_last"]) for s in ("id_train", "id_test", "ood_train", "ood_test")]
        rm = lambda which: f" / {r[which + '_phase_rm']}" if r.get(which + "_phase_rm") else ""
        of_rm = r.get("final_ood_test_rm_frac") or ""
        of_rm = f"{float(of_rm):.2f}" if of_rm else "-"
        best = f"{r['best_ood_phase']}{rm('best_ood')} (step {r['best_ood_step']})"
        yield (f"| {label} | {r['name']} | {r['n_id']} | {r['alpha']} | {r['final_step']} | "
               + " | ".join(f"{a:.3f}" for a in acc)
               + f" | {of_rm} | {r['final_phase']}{rm('final')} | {best} |")


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        sys.exit(__doc__)
    print("| sweep | run | n_id | alpha | step | id train | id test | ood train | ood test | ood test / RM | phase | phase at best o.o.d. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, path in zip(argv[::2], argv[1::2]):
        for line in rows(label, path):
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
