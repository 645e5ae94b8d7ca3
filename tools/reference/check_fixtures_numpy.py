"""Independent check of the fixtures: a NumPy (float64) forward pass written straight from the
spec formulas, without torch, compared against the stored activations, logits and loss.

    /work/venv-ref/bin/python tools/reference/check_fixtures_numpy.py [FILE ...]

It doubles as a compact, framework-free statement of the conventions the Rust engine must
follow (weight layout (out, in) with y = x @ W.T, q/k/v blocks, interleaved RoPE pairs, ...).
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)          # biased variance
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rope(t, freqs):
    """t: (B, h, T, dh). Pair (2i, 2i+1) at position m rotated by m*f_i."""
    T = t.shape[-2]
    ang = np.arange(T)[:, None] * freqs[None, :]           # (T, dh/2)
    c, s = np.cos(ang), np.sin(ang)
    even, odd = t[..., 0::2], t[..., 1::2]
    out = np.empty_like(t)
    out[..., 0::2] = even * c - odd * s
    out[..., 1::2] = odd * c + even * s
    return out


def forward(W, cfg, inp):
    d, h, L = cfg["d"], cfg["h"], cfg["L"]
    dh = d // h
    B, T = inp.shape
    acts = {}
    x = W["transformer.wte.weight"][inp]                   # (B, T, d)
    mask = np.triu(np.ones((T, T), dtype=bool), 1)
    for l in range(L):
        p = f"transformer.h.{l}."
        acts[f"blocks.{l}.hook_resid_pre"] = x
        a_in = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"])
        qkv = a_in @ W[p + "attn.to_qkv.weight"].T        # (B, T, 3d)
        q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
        heads = lambda t: t.reshape(B, T, h, dh).transpose(0, 2, 1, 3)  # noqa: E731
        freqs = W[p + "attn.rotary_emb.freqs"]
        q, k, v = rope(heads(q), freqs), rope(heads(k), freqs), heads(v)
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
        scores = np.where(mask, -np.inf, scores)
        scores = scores - scores.max(-1, keepdims=True)
        e = np.exp(scores)
        pattern = e / e.sum(-1, keepdims=True)
        z = (pattern @ v).transpose(0, 2, 1, 3)            # (B, T, h, dh)
        attn_out = z.reshape(B, T, d) @ W[p + "attn.o.weight"].T
        acts.update({f"blocks.{l}.attn.hook_q": q, f"blocks.{l}.attn.hook_k": k,
                     f"blocks.{l}.attn.hook_v": v, f"blocks.{l}.attn.hook_pattern": pattern,
                     f"blocks.{l}.attn.hook_z": z, f"blocks.{l}.hook_attn_out": attn_out})
        x = x + attn_out
        m_in = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"])
        pre = m_in @ W[p + "mlp.c_fc.weight"].T
        post = np.maximum(pre, 0.0) if cfg["act"] == "relu" else gelu_tanh(pre)
        x = x + post @ W[p + "mlp.c_proj.weight"].T
        acts[f"blocks.{l}.mlp.hook_pre"] = pre
        acts[f"blocks.{l}.mlp.hook_post"] = post
        acts[f"blocks.{l}.hook_resid_post"] = x
    xf = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"])
    head = W["transformer.wte.weight"] if cfg["tied"] else W["lm_head.weight"]
    logits = xf @ head.T
    acts["ln_final.hook_normalized"] = xf
    acts["logits"] = logits
    return logits, acts


def icl_loss(logits, tgt, n_var=2):
    T = logits.shape[1]
    sel = (np.arange(T) % (n_var + 1)) == (n_var - 1)     # j = 1, 4, 7, ...
    lg, tg = logits[:, sel, :], tgt[:, sel]
    mx = lg.max(-1, keepdims=True)
    lse = np.log(np.exp(lg - mx).sum(-1)) + mx[..., 0]
    picked = np.take_along_axis(lg, tg[..., None], -1)[..., 0]
    return float((lse - picked).mean())


def check(path):
    with safe_open(path, framework="np") as f:
        cfg = json.loads(f.metadata()["config"])
    F = load_file(path)
    W = {k: v.astype(np.float64) for k, v in F.items() if not k.startswith(("act.", "grad.", "after.", "adamw."))}
    tokens = F["tokens"]
    p, k = cfg["p"], cfg["k"]
    x, y, z = tokens[:, 0::3], tokens[:, 1::3], tokens[:, 2::3]
    # every sequence is consistent with a single task (a, b)
    for r in range(tokens.shape[0]):
        assert any(((a * x[r] + b * y[r]) % p == z[r]).all() for a in range(p) for b in range(p))
    assert tokens.shape == (cfg["B"], 3 * k)
    if cfg["tied"]:
        assert np.array_equal(F["lm_head.weight"], F["transformer.wte.weight"])
        assert "grad.lm_head.weight" not in F
    dh = cfg["d"] // cfg["h"]
    ref_freqs = 1.0 / 10000.0 ** (np.arange(0, dh, 2) / dh)
    assert np.allclose(W["transformer.h.0.attn.rotary_emb.freqs"], ref_freqs, rtol=1e-6)

    logits, acts = forward(W, cfg, tokens[:, :-1])
    loss = icl_loss(logits, tokens[:, 1:])
    worst = 0.0
    for name, a in acts.items():
        stored = F[f"act.{name}"].astype(np.float64)
        assert stored.shape == a.shape, (name, stored.shape, a.shape)
        err = np.abs(stored - a).max() / max(1.0, np.abs(a).max())
        worst = max(worst, err)
        assert err < 1e-6, (name, err)
    assert np.abs(F["logits"] - logits).max() < 1e-6
    assert abs(float(F["loss"][0]) - loss) < 1e-6 and abs(float(F["adamw.losses"][0]) - loss) < 1e-6
    print(f"{os.path.relpath(path, REPO)}: numpy forward matches (worst rel {worst:.1e}), loss {loss:.7f}")


if __name__ == "__main__":
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(REPO, "crates/engine/tests/fixtures/*.safetensors")))
    for fpath in files:
        check(fpath)
