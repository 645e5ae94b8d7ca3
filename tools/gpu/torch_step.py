"""The PyTorch reference step time on a GPU: the official model (tools/reference/model.py) at
the paper-d4 size (d 512, 4 heads, 4 blocks, batch 1536 as the preset, 32 examples: T = 95,
vocabulary 47),
trained the way the official code trains: bf16 autocast, SDPA attention, torch.compile, AdamW.

    python3 tools/gpu/torch_step.py [--steps 20] [--warmup 5] [--batch 1536] [--no-compile]

Prints one JSON object: ms_per_step (median), tokens_per_s, peak_mem_gib
(torch.cuda.max_memory_allocated), the settings and the torch version.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1536)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()

    import torch
    from model import Config, RoPETransformer, icl_loss, make_optimizer, split_tokens

    torch.manual_seed(0)
    dev = torch.device("cuda")
    cfg = Config(vocab_size=47, d_model=512, n_heads=4, n_layers=a.layers, act="relu",
                 tied=True, attn_impl="sdpa")
    model = RoPETransformer(cfg).to(dev)
    opt = make_optimizer(model, lr=1.5e-4, weight_decay=2.0)
    fwd = model if a.no_compile else torch.compile(model)
    tokens = torch.randint(0, 29, (a.batch, 96), dtype=torch.int64, device=dev)
    inp, tgt = split_tokens(tokens)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = fwd(inp)
        loss = icl_loss(logits.float(), tgt)
        loss.backward()
        opt.step()

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "framework": "pytorch",
        "model": f"paper-d{a.layers}",
        "batch": a.batch,
        "precision": "bf16 autocast",
        "compiled": not a.no_compile,
        "ms_per_step": round(med * 1e3, 3),
        "tokens_per_s": round(a.batch * inp.shape[1] / med, 1),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
        "steps_timed": a.steps,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
    }))


if __name__ == "__main__":
    main()
