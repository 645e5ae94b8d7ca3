#!/usr/bin/env python3
"""The plateau law: the step at which each search run left the loss plateau, against the
number of tasks consistent with one example (n_id / p), every round.

usage: tools/search/plateau.py [docs/search/plateau.csv] [OUT_STEM]

Reads the runs table (docs/search/plateau.csv). A row that names a metrics file (relative to
the table's folder) gets its exit step from the i.d.-train loss: the first evaluation from
step 1,000 on if it is already 0.20 nats below ln p (left at once), else the first evaluation
after step 4,000 that is 0.10 nats below the run's own plateau level (the median over steps
1,000-4,000); a run that never gets there is a lower bound at its last step. (The plateau's
level depends on the learning rate: 1.86-1.91 at lr 5e-3 for p = 7, 1.76-1.80 at 1e-3, against
ln 7 = 1.95; a fixed level would misread one or the other.) Other rows give the exit as a
range (exit_lo..exit_hi) read from the notes, or a lower bound. Prints the table and writes
OUT_STEM.png and OUT_STEM.svg (default docs/search/plateau), and OUT_STEM_decay.{png,svg}: the
40-task Z_7^2 runs of the cpu model against the weight decay per step, lr x wd. Needs
matplotlib.
"""
import csv
import math
import os
import sys

AT_ONCE = 0.20  # nats below ln p at the first evaluation from step 1,000: left at once
DROP = 0.10  # nats below the run's own early level: left later
EARLY = (1000, 4000)  # the steps whose median i.d.-train loss is that level


def exit_from_metrics(path, p):
    """(exit step or None, last step) by the i.d.-train loss criterion (see the docstring)."""
    pts = sorted(
        (int(r["step"]), float(r["loss"]))
        for r in csv.DictReader(open(path))
        if r["set"] == "id_train"
    )
    last = pts[-1][0] if pts else 0
    later = [(s, l) for s, l in pts if s >= EARLY[0]]
    if not later:
        return None, last
    first_step, first_loss = later[0]
    if first_loss < math.log(p) - AT_ONCE:
        return first_step, last
    early = sorted(l for s, l in later if s <= EARLY[1])
    level = early[len(early) // 2]
    for s, l in later:
        if s > EARLY[1] and l < level - DROP:
            return s, last
    return None, last


def load(table):
    folder = os.path.dirname(table)
    runs = []
    for r in csv.DictReader(open(table)):
        p = int(r["p"])
        run = {
            "run": r["run"],
            "round": int(r["round"]),
            "p": p,
            "n_id": int(r["n_id"]),
            "lr": float(r["lr"]),
            "wd": float(r["wd"]),
            "same_model": (r["d_model"], r["layers"], r["examples"], r["batch"]) == ("64", "2", "16", "120"),
            "cpu_model": (r["d_model"], r["layers"], r["examples"]) == ("64", "2", "16"),
            "x": int(r["n_id"]) / p,
        }
        if r["metrics"]:
            step, last = exit_from_metrics(os.path.join(folder, r["metrics"]), p)
            if step is None:
                run.update(lo=last, hi=None, bound=True, how="metrics")
            else:
                run.update(lo=step, hi=step, bound=False, how="metrics")
        else:
            lo = int(r["exit_lo"])
            bound = r["lower_bound"] == "1"
            hi = None if bound else int(r["exit_hi"])
            run.update(lo=lo, hi=hi, bound=bound, how="notes")
        runs.append(run)
    return runs


def lr_group(lr):
    if lr >= 5e-3:
        return "lr 5e-3 to 1e-2", "#E69F00"
    if lr >= 1e-3:
        return "lr 1e-3 to 3e-3", "#0072B2"
    return "lr 2e-4 to 7e-4", "#009E73"


MARKERS = {5: "P", 7: "o", 11: "s", 13: "X", 17: "D", 29: "v"}


def plot(runs, stem):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.6), dpi=150)
    floor = 300
    seen = set()
    # Runs at the same n_id / p are spread sideways by learning-rate group, then by order.
    groups = {}
    for r in runs:
        groups.setdefault((round(r["x"], 3), lr_group(r["lr"])[0]), []).append(r)
    offset = {"lr 5e-3 to 1e-2": -1, "lr 1e-3 to 3e-3": 0, "lr 2e-4 to 7e-4": 1}
    for (x, label), members in groups.items():
        for i, r in enumerate(members):
            shift = 0.09 * offset[label] + 0.025 * (i - (len(members) - 1) / 2)
            r["px"] = r["x"] * 2 ** shift
    for r in runs:
        label, color = lr_group(r["lr"])
        marker = MARKERS.get(r["p"], "o")
        lo = max(r["lo"], floor)
        if r["bound"]:
            ax.scatter([r["px"]], [lo], marker=marker, facecolors="none", edgecolors=color, s=42, linewidths=1.3, zorder=3)
            ax.annotate("", xy=(r["px"], lo * 1.9), xytext=(r["px"], lo * 1.08),
                        arrowprops=dict(arrowstyle="->", color=color, lw=1.1), zorder=2)
        else:
            hi = max(r["hi"], floor)
            mid = math.sqrt(lo * hi)
            ax.scatter([r["px"]], [mid], marker=marker, color=color, s=42, zorder=3)
            if hi > lo:
                ax.plot([r["px"], r["px"]], [lo, hi], color=color, lw=1.2, zorder=2)
        seen.add((label, color))
    ax.set_yscale("log")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tasks per example, n_id / p (log 2; runs at one value spread sideways)")
    ax.set_ylabel("step at which the run left the plateau (log)")
    ax.set_ylim(floor * 0.8, 80000)
    xs = [r["x"] for r in runs]
    ax.set_xlim(min(xs) / 1.3, max(xs) * 1.3)
    ticks = [0.5, 1, 2, 4, 8]
    ax.set_xticks([t for t in ticks if min(xs) / 1.3 <= t <= max(xs) * 1.3])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(True, which="major", color="#dddddd", lw=0.6)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", ls="", label=l) for l, c in sorted(seen)]
    handles += [Line2D([], [], color="#444444", marker=m, ls="", label=f"p = {p}")
                for p, m in sorted(MARKERS.items()) if any(r["p"] == p for r in runs)]
    handles.append(Line2D([], [], color="#444444", marker="o", markerfacecolor="none", ls="",
                          label="never left (lower bound at the last step)"))
    ax.legend(handles=handles, fontsize=7, loc="upper left", frameon=True)
    ax.set_title("Plateau exit against tasks per example, every search round (d 64-128, 2-4 blocks)",
                 fontsize=9)
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{stem}.{ext}")
    print(f"wrote {stem}.png and {stem}.svg")


def plot_decay(runs, stem):
    """The 40-task Z_7^2 runs of the cpu model (d 64, 2 blocks, k 16, batch 120): the plateau's
    exit against the decay per step, lr x wd."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in runs if r["p"] == 7 and r["n_id"] == 40 and r["same_model"]]
    if not sel:
        return
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    for r in sel:
        x = r["lr"] * r["wd"]
        label, color = lr_group(r["lr"])
        if r["bound"]:
            ax.scatter([x], [r["lo"]], marker="o", facecolors="none", edgecolors=color, s=42, linewidths=1.3, zorder=3)
            ax.annotate("", xy=(x, r["lo"] * 1.6), xytext=(x, r["lo"] * 1.06),
                        arrowprops=dict(arrowstyle="->", color=color, lw=1.1))
        else:
            hi = r["hi"]
            ax.scatter([x], [math.sqrt(r["lo"] * hi)], marker="o", color=color, s=42, zorder=3)
            if hi > r["lo"]:
                ax.plot([x, x], [r["lo"], hi], color=color, lw=1.2)
    # Labels of runs at one lr x wd alternate right and left (by height), so they do not overlap.
    # A lower bound that shares its lr x wd with a run that left goes to the upper left.
    side = {}
    for x in {r["lr"] * r["wd"] for r in sel}:
        same = [r for r in sel if r["lr"] * r["wd"] == x]
        left = sorted((r for r in same if not r["bound"]), key=lambda r: r["lo"])
        for i, r in enumerate(left):
            side[id(r)] = i % 2
        for r in same:
            if r["bound"]:
                side[id(r)] = 1 if left else 0
    for r in sel:
        x = r["lr"] * r["wd"]
        left = side[id(r)] == 1
        if r["bound"]:
            offset = (-9, -17) if not left else (-8, 4)
        else:
            offset = (6, -6) if not left else (-6, -6)
        ax.annotate(f"lr {r['lr']:g}\nwd {r['wd']:g}", (x, r["lo"]), textcoords="offset points",
                    xytext=offset, fontsize=6, color="#333333", linespacing=0.9,
                    ha="right" if left else "left")
    ax.set_xscale("log")
    ax.set_yscale("log")
    top = max(r["lo"] if r["bound"] else r["hi"] for r in sel)
    bottom = min(r["lo"] for r in sel)
    ax.set_ylim(bottom / 1.5, top * 2.0)
    ax.set_xlabel("weight decay per step, lr x wd (log)")
    ax.set_ylabel("step at which the run left the plateau (log)")
    ax.set_title("40 tasks of Z_7^2, d 64, 2 blocks, batch 120: exit against lr x wd", fontsize=9)
    ax.grid(True, which="major", color="#dddddd", lw=0.6)
    from matplotlib.lines import Line2D

    groups = sorted({lr_group(r["lr"]) for r in sel})
    handles = [Line2D([], [], color=c, marker="o", ls="", label=l) for l, c in groups]
    handles.append(Line2D([], [], color="#444444", marker="o", markerfacecolor="none", ls="",
                          label="never left (lower bound)"))
    ax.legend(handles=handles, fontsize=7, loc="upper left")
    fig.tight_layout()
    for ext in ("png", "svg"):
        fig.savefig(f"{stem}.{ext}")
    print(f"wrote {stem}.png and {stem}.svg")


# Where the paper's own runs sit: 256 and 512 tasks of issue 28's E1, and the paper's 384.
TARGETS = {"E1, 256 tasks of Z_29^2": 256 / 29, "paper d 4, 384 tasks": 384 / 29,
           "paper d 2 / E1, 512 tasks": 512 / 29}


def fit(runs):
    """Least squares of ln(exit step) on n_id / p over the p = 7 runs of the cpu model (d 64,
    2 blocks, k 16) at lr 5e-3 to 1e-2 that left the plateau from 2 tasks per example on (below
    that every run leaves at once; other primes and learning rates have too few exits to fit):
    the law's slope, and where it puts the paper's settings. Lower bounds are checked against
    the fit, not fitted: where they exceed it, the extrapolation is a floor."""
    lines = []
    for group in ("lr 5e-3 to 1e-2",):
        sel = [r for r in runs if r["cpu_model"] and lr_group(r["lr"])[0] == group and r["x"] >= 2
               and r["p"] == 7]
        pts = [(r["x"], math.log(math.sqrt(max(r["lo"], 1) * max(r["hi"], 1))))
               for r in sel if not r["bound"]]
        if len({x for x, _ in pts}) < 2:
            continue
        n = len(pts)
        mx = sum(x for x, _ in pts) / n
        my = sum(y for _, y in pts) / n
        b = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
        a = my - b * mx
        at = lambda x: math.exp(a + b * x)
        lines.append(f"p = 7, {group}: ln(exit) = {a:.2f} + {b:.2f} x (n_id / p) over {n} runs at x = "
                     f"{min(x for x, _ in pts):.2f}-{max(x for x, _ in pts):.2f}: x {math.exp(b):.1f} "
                     "per task per example")
        for r in sel:
            if r["bound"]:
                lines.append(f"  lower bound {r['run']} (x = {r['x']:.2f}): > {r['lo']:,}, fit {at(r['x']):,.0f}")
        for name, x in TARGETS.items():
            lines.append(f"  {name} (x = {x:.2f}): {at(x):.2g} steps")
    return lines


def main(argv):
    table = argv[1] if len(argv) > 1 else "docs/search/plateau.csv"
    stem = argv[2] if len(argv) > 2 else os.path.join(os.path.dirname(table), "plateau")
    runs = load(table)
    print("| run | round | p | n_id | n_id/p | lr | left the plateau at | from |")
    print("|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: (r["x"], r["lr"])):
        if r["bound"]:
            when = f"> {r['lo']:,} (never)"
        elif r["hi"] == r["lo"]:
            when = f"{r['lo']:,}"
        else:
            when = f"{r['lo']:,}-{r['hi']:,}"
        print(f"| {r['run']} | {r['round']} | {r['p']} | {r['n_id']} | {r['x']:.2f} | {r['lr']:g} | {when} | {r['how']} |")
    print()
    for line in fit(runs):
        print(line)
    plot(runs, stem)
    plot_decay(runs, stem + "_decay")


if __name__ == "__main__":
    main(sys.argv)
