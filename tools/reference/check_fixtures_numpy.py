"""Independent check of the fixtures: a NumPy (float64) forward pass written straight from the
spec formulas, without torch, compared against every stored activation hook (TransformerLens
names, shapes and meanings), the logits and the loss.

    /work/venv-ref/bin/python tools/reference/check_fixtures_numpy.py [FILE ...]

It doubles as a compact, framework-free statement of the conventions the Rust engine must
follow (weight layout (out, in) with y = x @ W.T, q/k/v blocks, interleaved RoPE pairs, ...)
and of the hook conventions: q/k/v hooks are (B, T, heads, d_head) with q/k before rotary,
hook_rot_q/k after it, hook_attn_scores (B, heads, Tq, Tk) with -inf above the diagonal,
LayerNorm hook_scale = sqrt(biased var + eps) of shape (B, T, 1).
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
    """TransformerLens LayerNorm: returns (scale (..., 1), normalized (..., d))."""
    xc = x - x.mean(-1, keepdims=True)
    scale = np.sqrt((xc ** 2).mean(-1, keepdims=True) + eps)   # biased variance
    return scale, xc / scale * w + b


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rope(t, freqs):
    """t: (B, T, h, dh). Pair (2i, 2i+1) at position m rotated by m*f_i."""
    T = t.shape[1]
    ang = np.arange(T)[:, None] * freqs[None, :]           # (T, dh/2)
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]  # broadcast over heads
    even, odd = t[..., 0::2], t[..., 1::2]
    out = np.empty_like(t)
    out[..., 0::2] = even * c - odd * s
    out[..., 1::2] = odd * c + even * s
    return out


def forward(W, cfg, inp):
    """Returns logits and a dict of every TransformerLens hook (names without `act.`)."""
    d, h, L = cfg["d"], cfg["h"], cfg["L"]
    dh = d // h
    B, T = inp.shape
    eps = cfg["ln_eps"]
    acts = {}
    x = W["transformer.wte.weight"][inp]                   # (B, T, d); no positional embedding
    acts["hook_embed"] = x
    mask = np.triu(np.ones((T, T), dtype=bool), 1)         # True above the diagonal
    for l in range(L):
        p, b = f"transformer.h.{l}.", f"blocks.{l}."
        acts[b + "hook_resid_pre"] = x
        s1, a_in = layer_norm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        qkv = a_in @ W[p + "attn.to_qkv.weight"].T        # (B, T, 3d)
        q, k, v = (qkv[..., i * d:(i + 1) * d].reshape(B, T, h, dh) for i in range(3))  # (B,T,h,dh)
        freqs = W[p + "attn.rotary_emb.freqs"]
        rq, rk = rope(q, freqs), rope(k, freqs)
        scores = np.einsum("bqhe,bkhe->bhqk", rq, rk) / math.sqrt(dh)   # (B, h, Tq, Tk)
        scores = np.where(mask, -np.inf, scores)
        e = np.exp(scores - scores.max(-1, keepdims=True))
        pattern = e / e.sum(-1, keepdims=True)
        z = np.einsum("bhqk,bkhe->bqhe", pattern, v)       # (B, T, h, dh)
        attn_out = z.reshape(B, T, d) @ W[p + "attn.o.weight"].T
        x = x + attn_out
        acts.update({b + "ln1.hook_scale": s1, b + "ln1.hook_normalized": a_in,
                     b + "attn.hook_q": q, b + "attn.hook_k": k, b + "attn.hook_v": v,
                     b + "attn.hook_rot_q": rq, b + "attn.hook_rot_k": rk,
                     b + "attn.hook_attn_scores": scores, b + "attn.hook_pattern": pattern,
                     b + "attn.hook_z": z, b + "hook_attn_out": attn_out, b + "hook_resid_mid": x})
        s2, m_in = layer_norm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        pre = m_in @ W[p + "mlp.c_fc.weight"].T
        post = np.maximum(pre, 0.0) if cfg["act"] == "relu" else gelu_tanh(pre)
        mlp_out = post @ W[p + "mlp.c_proj.weight"].T
        x = x + mlp_out
        acts.update({b + "ln2.hook_scale": s2, b + "ln2.hook_normalized": m_in,
                     b + "mlp.hook_pre": pre, b + "mlp.hook_post": post,
                     b + "hook_mlp_out": mlp_out, b + "hook_resid_post": x})
    sf, xf = layer_norm(x, W["transformer.ln_f.weight"], W["transformer.ln_f.bias"], eps)
    head = W["transformer.wte.weight"] if cfg["tied"] else W["lm_head.weight"]
    logits = xf @ head.T
    acts["ln_final.hook_scale"] = sf
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
    stored_hooks = {n[len("act."):] for n in F if n.startswith("act.")}
    assert stored_hooks == set(acts), (f"hook names: extra {stored_hooks - set(acts)}, "
                                       f"missing {set(acts) - stored_hooks}")
    T = tokens.shape[1] - 1
    above = np.triu(np.ones((T, T), dtype=bool), 1)
    worst = 0.0
    for name, a in acts.items():
        stored = F[f"act.{name}"].astype(np.float64)
        assert stored.shape == a.shape, (name, stored.shape, a.shape)
        if name.endswith("hook_attn_scores"):
            # -inf exactly above the diagonal (both sides); compare the finite entries
            assert np.isneginf(stored[..., above]).all() and np.isneginf(a[..., above]).all(), name
            assert np.isfinite(stored[..., ~above]).all() and np.isfinite(a[..., ~above]).all(), name
            stored, a = stored[..., ~above], a[..., ~above]
        if name.endswith("hook_pattern"):
            assert (stored[..., above] == 0).all(), name
        err = np.abs(stored - a).max() / np.abs(a).max()     # relative to the tensor's scale
        worst = max(worst, err)
        assert err < 1e-6, (name, err)
    for l in range(cfg["L"]):                                # q/k hooks are pre-rotary
        for c in "qk":
            assert not np.allclose(acts[f"blocks.{l}.attn.hook_{c}"][:, 1:],
                                   acts[f"blocks.{l}.attn.hook_rot_{c}"][:, 1:])
    assert np.abs(F["logits"] - logits).max() < 1e-6
    assert abs(float(F["loss"][0]) - loss) < 1e-6 and abs(float(F["adamw.losses"][0]) - loss) < 1e-6
    print(f"{os.path.relpath(path, REPO)}: numpy forward matches all {len(acts)} hooks "
          f"(worst rel {worst:.1e}; scores -inf exactly above the diagonal), loss {loss:.7f}")


if __name__ == "__main__":
    files = sys.argv[1:] or sorted(glob.glob(os.path.join(REPO, "crates/engine/tests/fixtures/*.safetensors")))
    for fpath in files:
        check(fpath)
