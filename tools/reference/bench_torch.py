"""CPU speed baseline: one full fp32 training step of the PyTorch twin.

    /work/venv-ref/bin/python tools/reference/bench_torch.py [--threads 2] [--steps N]
        [--configs small,paper] [--compare modicl.json]

A step is: zero_grad, forward (SDPA causal attention), ICL loss, backward, AdamW step.
Each config runs in a fresh subprocess so that peak RSS (getrusage ru_maxrss) is per config.
After 2 warm-up steps, the median over N timed steps is reported (default N: 5 small, 3 paper).
One JSON object per config is printed on stdout:
    {"model": ..., "ms_per_step": ..., "tokens_per_s": ..., "peak_rss_mb": ..., ...}

--compare FILE reads a Rust bench's JSON (a list of objects, one object, JSON lines, or an
object holding such a list) with keys "model" and "ms_per_step", and prints the ratio
modicl / PyTorch per config (> 1 means modicl is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

K_EXAMPLES = 32          # -> 96 tokens per sequence, model input T = 95
P = 29                   # tokens drawn from the number range 0..28
CONFIGS = {
    "small": dict(d_model=256, n_heads=4, n_layers=2, batch=64, vocab=47, steps=5),
    "paper": dict(d_model=512, n_heads=4, n_layers=4, batch=128, vocab=47, steps=3),
}
WARMUP = 2
LR = 1.5e-4
WD = 2.0


def run_one(name: str, threads: int, steps: int | None, seed: int = 0) -> dict:
    import torch
    sys.path.insert(0, HERE)
    from model import Config, RoPETransformer, icl_loss, make_optimizer, split_tokens

    torch.set_num_threads(threads)
    c = CONFIGS[name]
    steps = steps or c["steps"]
    torch.manual_seed(seed)
    cfg = Config(vocab_size=c["vocab"], d_model=c["d_model"], n_heads=c["n_heads"],
                 n_layers=c["n_layers"], act="relu", tied=True, attn_impl="sdpa")
    model = RoPETransformer(cfg)
    opt = make_optimizer(model, lr=LR, weight_decay=WD)
    # random ICL-shaped batch: (B, 3k) tokens in 0..p-1 (valid z's are not needed for timing)
    tokens = torch.randint(0, P, (c["batch"], 3 * K_EXAMPLES), dtype=torch.int64)
    inp, tgt = split_tokens(tokens)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = icl_loss(model(inp), tgt)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    n_tok = c["batch"] * inp.shape[1]
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "model": name,
        "ms_per_step": round(med * 1e3, 2),
        "tokens_per_s": round(n_tok / med, 1),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "threads": threads,
        "steps_timed": steps,
        "warmup": WARMUP,
        "batch": c["batch"],
        "seq_len": int(inp.shape[1]),
        "d_model": c["d_model"],
        "n_heads": c["n_heads"],
        "n_layers": c["n_layers"],
        "vocab": c["vocab"],
        "params": model.n_trainable(),
        "step_ms_all": [round(t * 1e3, 2) for t in times],
        "torch": torch.__version__,
        "framework": "pytorch",
    }


def load_compare(path: str) -> dict:
    with open(path) as fh:
        text = fh.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if isinstance(data, dict):
        if "model" in data:
            data = [data]
        else:  # e.g. {"results": [...]}
            lists = [v for v in data.values() if isinstance(v, list)]
            data = lists[0] if lists else []
    return {d["model"]: float(d["ms_per_step"]) for d in data if "model" in d and "ms_per_step" in d}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 5 small, 3 paper)")
    ap.add_argument("--configs", default="small,paper")
    ap.add_argument("--compare", default=None, help="JSON from the Rust bench (model, ms_per_step)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(run_one(args.child, args.threads, args.steps)))
        return

    other = load_compare(args.compare) if args.compare else {}
    for name in args.configs.split(","):
        if name not in CONFIGS:
            sys.exit(f"unknown config {name!r}; choose from {sorted(CONFIGS)}")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--threads", str(args.threads)]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        line = res.stdout.strip().splitlines()[-1]
        print(line, flush=True)
        if name in other:
            torch_ms = json.loads(line)["ms_per_step"]
            print(json.dumps({"model": name, "modicl_ms_per_step": other[name],
                              "pytorch_ms_per_step": torch_ms,
                              "ratio_modicl_over_pytorch": round(other[name] / torch_ms, 3)}),
                  flush=True)


if __name__ == "__main__":
    main()
