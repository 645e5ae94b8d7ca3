#!/usr/bin/env python3
"""Writes crates/data/tests/fixtures/numpy_split.json: the official code's input permutation,
computed by numpy itself, for the Rust test of `task.split = "official"`.

The official code (BaseArithmeticDataset.splits) calls np.random.seed(data_seed), then shuffles
the rows of the transposed (p^2, n_tasks) index matrix with np.random.shuffle; input index
x*p + y; the first round(p^2 * alpha) of the permuted order are the training inputs. This script
does exactly that and records the permutation (and the train count) for a few (p, data_seed,
alpha). Only numpy is needed:  python3 -m venv v && v/bin/pip install numpy && v/bin/python THIS
"""
import json
import pathlib

import numpy as np

CASES = [
    # (p, n_var, data_seed, alpha, n_tasks)
    (29, 2, 0, 0.8, 384),  # paper-d4
    (29, 2, 0, 0.6, 512),  # paper-d2
    (29, 2, 0, 0.5, 8),    # 420.5 train inputs: rounds half to even
    (29, 2, 1, 0.3, 16),
    (11, 2, 0, 0.8, 16),
    (7, 2, 3, 0.8, 24),
    (13, 3, 2, 0.7, 4),
]


def official_permutation(n_inputs, data_seed, n_tasks):
    np.random.seed(data_seed)
    idx = np.tile(np.arange(n_inputs), (n_tasks, 1))  # (n_tasks, p^n_var)
    np.random.shuffle(idx.T)  # rows of the transpose: one permutation for every task
    assert (idx == idx[0]).all()
    # The same draws as a 1-D shuffle of arange(n), the fast path numpy takes for vectors.
    np.random.seed(data_seed)
    flat = np.arange(n_inputs)
    np.random.shuffle(flat)
    assert (flat == idx[0]).all()
    return idx[0]


cases = []
for p, n_var, seed, alpha, n_tasks in CASES:
    n = p ** n_var
    perm = official_permutation(n, seed, n_tasks)
    cases.append({
        "p": p, "n_var": n_var, "data_seed": seed, "alpha": alpha,
        "n_train": int(round(n * alpha)),  # Python's round: half to even
        "perm": [int(v) for v in perm],
    })

out = pathlib.Path(__file__).resolve().parents[2] / "crates/data/tests/fixtures/numpy_split.json"
out.write_text(json.dumps({"numpy": np.__version__, "cases": cases}) + "\n")
print(f"wrote {out} ({len(cases)} cases, numpy {np.__version__})")
