"""Generate the engine's numerical test fixtures from the PyTorch twin (tools/reference/model.py).

    /work/venv-ref/bin/python tools/reference/make_fixtures.py [--out DIR] [--listing FILE]

Writes, for a tiny config (p = 11, V = 29, d = 32, 2 heads, 2 blocks, batch 4, k = 8):
    crates/engine/tests/fixtures/tiny_relu_tied.safetensors
    crates/engine/tests/fixtures/tiny_gelu_untied.safetensors
and a human-readable listing in tools/reference/FIXTURES.txt.

Weights are initialised in float32 (seeded, so output is byte-stable); every derived
quantity (activations, logits, loss, gradients, 5 AdamW steps) is computed in float64
from those float32 weights, then stored as float32. See tools/reference/README.md.

The activations are stored under TransformerLens hook names, shapes and meanings
(`act.<hook>`; q/k/v as (B, T, heads, d_head), q/k before rotary; see hook_names()).

Before writing, the script checks: hook names, shapes and the relations between them,
gradients vs central finite differences (float64), strict load_state_dict of the saved
parameter names, explicit vs SDPA attention, the torch AdamW trajectory vs a hand-written
AdamW, and the set of tensor names.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file, load_file
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Config, RoPETransformer, icl_loss, make_optimizer, split_tokens, trainable_names  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# ---- tiny fixture configuration -------------------------------------------------------
P = 11
V = P + 18            # official vocabulary rule: p+1 number tokens + 17 special tokens
D = 32
H = 2
L = 2
B = 4
K = 8                 # examples per sequence -> 3K = 24 tokens, model input T = 23
N_VAR = 2
MODEL_SEED = 0        # torch.manual_seed before building the model
DATA_SEED = 1         # torch.Generator seed for the token batch (shared by both variants)
LRS = [1e-3, 2e-3, 3e-3, 2e-3, 1e-3]
WD = 0.1
BETAS = (0.9, 0.98)
EPS = 1e-8

VARIANTS = [
    ("tiny_relu_tied", "relu", True),
    ("tiny_gelu_untied", "gelu", False),
]


def make_tokens() -> torch.Tensor:
    """(B, 3K) int64: per sequence one task (a, b) in Z_p^2 and K examples x y z,
    z = (a x + b y) mod p."""
    g = torch.Generator().manual_seed(DATA_SEED)
    rows = []
    for _ in range(B):
        a, b = torch.randint(0, P, (2,), generator=g).tolist()
        x = torch.randint(0, P, (K,), generator=g)
        y = torch.randint(0, P, (K,), generator=g)
        z = (a * x + b * y) % P
        rows.append(torch.stack([x, y, z], dim=1).reshape(-1))
    return torch.stack(rows).to(torch.int64)


def loss_of(model, tokens, return_cache=False):
    inp, tgt = split_tokens(tokens)
    if return_cache:
        logits, cache = model(inp, return_cache=True)
        return icl_loss(logits, tgt, N_VAR), logits, cache
    return icl_loss(model(inp), tgt, N_VAR)


# ---- checks ---------------------------------------------------------------------------

def check_finite_differences(model64, tokens, grads, n_coords=4, h=1e-6, seed=123):
    g = torch.Generator().manual_seed(seed)
    params = dict(model64.named_parameters())
    worst = 0.0
    for name in trainable_names(model64):
        p = params[name]
        for _ in range(n_coords):
            idx = int(torch.randint(0, p.numel(), (1,), generator=g))
            with torch.no_grad():
                flat = p.view(-1)
                orig = flat[idx].item()
                flat[idx] = orig + h
                lp = loss_of(model64, tokens).item()
                flat[idx] = orig - h
                lm = loss_of(model64, tokens).item()
                flat[idx] = orig
            fd = (lp - lm) / (2 * h)
            an = grads[name].view(-1)[idx].item()
            err = abs(fd - an) / max(1e-6, abs(fd) + abs(an))
            worst = max(worst, err)
            if abs(fd - an) > 1e-7 + 1e-5 * abs(an):
                raise AssertionError(f"finite-difference mismatch {name}[{idx}]: fd={fd} an={an}")
    print(f"  finite differences ok (worst rel err {worst:.2e})")


def check_strict_load(cfg, params32, ref_logits32, tokens):
    torch.manual_seed(999)  # different init, so the load must actually overwrite everything
    fresh = RoPETransformer(cfg)
    missing = set(fresh.state_dict().keys()) ^ set(params32.keys())
    assert not missing, f"state_dict key mismatch: {missing}"
    fresh.load_state_dict(params32, strict=True)
    if cfg.tied:
        assert fresh.lm_head.weight is fresh.transformer.wte.weight
    with torch.no_grad():
        out = fresh(split_tokens(tokens)[0])
    assert torch.equal(out, ref_logits32), "reloaded model gives different logits"
    print("  load_state_dict(strict=True) ok")


def check_sdpa(model64, tokens, ref_logits):
    m = copy.deepcopy(model64)
    m.cfg = copy.copy(model64.cfg)
    m.cfg.attn_impl = "sdpa"
    for blk in m.transformer.h:
        blk.attn.cfg = m.cfg
    with torch.no_grad():
        out = m(split_tokens(tokens)[0])
    err = (out - ref_logits).abs().max().item()
    assert err < 1e-12, f"SDPA vs explicit mismatch {err}"
    print(f"  sdpa == explicit attention (max abs diff {err:.1e})")


def manual_adamw(params: dict, grads_fn, names_decay: set, lrs, wd, betas, eps):
    """Plain AdamW (torch semantics, bias-corrected, decoupled decay) for cross-checking."""
    b1, b2 = betas
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    for t, lr in enumerate(lrs, start=1):
        grads = grads_fn(params)
        for n in params:
            g = grads[n]
            p = params[n]
            if n in names_decay:
                p = p * (1 - lr * wd)
            m[n] = b1 * m[n] + (1 - b1) * g
            v[n] = b2 * v[n] + (1 - b2) * g * g
            mhat = m[n] / (1 - b1 ** t)
            vhat = v[n] / (1 - b2 ** t)
            params[n] = p - lr * mhat / (vhat.sqrt() + eps)
    return params


# ---- one variant ----------------------------------------------------------------------

def build_variant(name: str, act: str, tied: bool, tokens: torch.Tensor):
    print(f"[{name}]")
    cfg = Config(vocab_size=V, d_model=D, n_heads=H, n_layers=L, mlp_ratio=4, act=act,
                 tied=tied, attn_impl="explicit")
    torch.manual_seed(MODEL_SEED)
    model32 = RoPETransformer(cfg)
    if tied:
        assert model32.lm_head.weight is model32.transformer.wte.weight

    # float32 parameters under the official state_dict names (clone: no shared storage)
    params32 = {k: v.detach().clone().contiguous() for k, v in model32.state_dict().items()}
    with torch.no_grad():
        logits32 = model32(split_tokens(tokens)[0])

    # float64 twin built from the float32 weights
    model64 = copy.deepcopy(model32).double()
    if tied:
        assert model64.lm_head.weight is model64.transformer.wte.weight
    names = trainable_names(model64)

    loss, logits, cache = loss_of(model64, tokens, return_cache=True)
    model64.zero_grad(set_to_none=True)
    loss.backward()
    params64 = dict(model64.named_parameters())
    grads = {n: params64[n].grad.detach().clone() for n in names}
    print(f"  loss {loss.item():.10f} (ln V = {math.log(V):.6f}); trainable params "
          f"{model64.n_trainable()}; f32-vs-f64 logits max diff "
          f"{(logits32.double() - logits).abs().max().item():.1e}")

    check_hooks(model64, cache, tokens)
    check_finite_differences(model64, tokens, grads)
    check_strict_load(cfg, params32, logits32, tokens)
    check_sdpa(model64, tokens, logits.detach())

    # AdamW: 5 steps on the same batch, float64
    opt_model = copy.deepcopy(model32).double()
    opt = make_optimizer(opt_model, lr=LRS[0], weight_decay=WD, betas=BETAS, eps=EPS)
    assert len(opt.param_groups[0]["params"]) == 2 * (2 * L + 1)  # LN weights + biases
    assert len(opt.param_groups[1]["params"]) == 4 * L + 1 + (0 if tied else 1)
    losses = []
    for lr in LRS:
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        l_ = loss_of(opt_model, tokens)
        losses.append(l_.item())
        l_.backward()
        opt.step()
    after = {n: p.detach().clone() for n, p in opt_model.named_parameters() if p.requires_grad}
    assert abs(losses[0] - loss.item()) < 1e-15

    # cross-check against a hand-written AdamW via torch.func.functional_call
    decay_names = {n for n, p in model64.named_parameters()
                   if p.requires_grad and p.ndim >= 2 and not n.endswith(".bias")}
    ref_model = copy.deepcopy(model32).double()
    fixed = {n: b for n, b in ref_model.named_parameters() if not b.requires_grad}

    def grads_fn(ps):
        ps = {n: p.detach().requires_grad_(True) for n, p in ps.items()}
        full = dict(ps)
        full.update(fixed)
        if tied:
            full["lm_head.weight"] = ps["transformer.wte.weight"]
        inp, tgt = split_tokens(tokens)
        out = torch.func.functional_call(ref_model, full, (inp,))
        l_ = icl_loss(out, tgt, N_VAR)
        gs = torch.autograd.grad(l_, list(ps.values()))
        return dict(zip(ps.keys(), gs))

    start = {n: p.detach().clone() for n, p in ref_model.named_parameters() if p.requires_grad}
    manual = manual_adamw(start, grads_fn, decay_names, LRS, WD, BETAS, EPS)
    err = max((manual[n] - after[n]).abs().max().item() for n in after)
    assert err < 1e-12, f"torch AdamW vs manual AdamW mismatch {err}"
    print(f"  AdamW losses {['%.8f' % x for x in losses]}; matches manual AdamW ({err:.1e})")

    # ---- assemble the file ----
    f32 = lambda t: t.detach().to(torch.float32).contiguous()  # noqa: E731
    out = {"tokens": tokens.clone().contiguous()}
    out.update(params32)
    out["logits"] = f32(logits)
    out["loss"] = f32(loss.reshape(1))
    for n in names:
        out[f"grad.{n}"] = f32(grads[n])
    for hook, t in cache.items():
        out[f"act.{hook}"] = f32(t)
    out["adamw.lr"] = torch.tensor(LRS, dtype=torch.float32)
    out["adamw.wd"] = torch.tensor([WD], dtype=torch.float32)
    out["adamw.losses"] = torch.tensor(losses, dtype=torch.float64).to(torch.float32)
    for n in names:
        out[f"after.{n}"] = f32(after[n])

    meta_cfg = dict(p=P, V=V, d=D, h=H, L=L, B=B, k=K, act=act, tied=tied,
                    n_var=N_VAR, T=3 * K - 1, mlp_ratio=4, rope_theta=cfg.rope_theta,
                    ln_eps=cfg.ln_eps, betas=list(BETAS), eps=EPS, wd=WD, lrs=LRS,
                    gelu="tanh" if act == "gelu" else None,
                    model_seed=MODEL_SEED, data_seed=DATA_SEED)
    meta_cfg["generator"] = "tools/reference/make_fixtures.py"
    # a single metadata key: safetensors writes its metadata map in hash order, so more
    # than one key would make the file bytes differ from run to run
    metadata = {"config": json.dumps(meta_cfg, sort_keys=True)}
    return out, metadata


def expected_names(tied: bool, hooks: list[str]) -> set[str]:
    params = ["transformer.wte.weight"]
    for i in range(L):
        pre = f"transformer.h.{i}"
        params += [f"{pre}.ln_1.weight", f"{pre}.ln_1.bias", f"{pre}.attn.to_qkv.weight",
                   f"{pre}.attn.o.weight", f"{pre}.ln_2.weight", f"{pre}.ln_2.bias",
                   f"{pre}.mlp.c_fc.weight", f"{pre}.mlp.c_proj.weight"]
    params += ["transformer.ln_f.weight", "transformer.ln_f.bias"]
    trainable = params + ([] if tied else ["lm_head.weight"])
    state = params + [f"transformer.h.{i}.attn.rotary_emb.freqs" for i in range(L)] + ["lm_head.weight"]
    names = {"tokens", "logits", "loss", "adamw.lr", "adamw.wd", "adamw.losses"}
    names |= set(state)
    names |= {f"grad.{n}" for n in trainable}
    names |= {f"after.{n}" for n in trainable}
    names |= {f"act.{h}" for h in hooks}
    return names


def hook_names() -> list[str]:
    """TransformerLens hook names, in forward order (stored with the prefix `act.`)."""
    hooks = ["hook_embed"]
    for i in range(L):
        b = f"blocks.{i}"
        hooks += [f"{b}.hook_resid_pre", f"{b}.ln1.hook_scale", f"{b}.ln1.hook_normalized",
                  f"{b}.attn.hook_q", f"{b}.attn.hook_k", f"{b}.attn.hook_v",
                  f"{b}.attn.hook_rot_q", f"{b}.attn.hook_rot_k", f"{b}.attn.hook_attn_scores",
                  f"{b}.attn.hook_pattern", f"{b}.attn.hook_z", f"{b}.hook_attn_out",
                  f"{b}.hook_resid_mid", f"{b}.ln2.hook_scale", f"{b}.ln2.hook_normalized",
                  f"{b}.mlp.hook_pre", f"{b}.mlp.hook_post", f"{b}.hook_mlp_out",
                  f"{b}.hook_resid_post"]
    return hooks + ["ln_final.hook_scale", "ln_final.hook_normalized", "logits"]


def hook_shape(name: str) -> tuple[int, ...]:
    """TransformerLens shape of each hook for the fixture configuration."""
    T, dh = 3 * K - 1, D // H
    last = name.rsplit(".", 1)[-1]
    if last == "hook_scale":
        return (B, T, 1)
    if last in ("hook_q", "hook_k", "hook_v", "hook_rot_q", "hook_rot_k", "hook_z"):
        return (B, T, H, dh)
    if last in ("hook_attn_scores", "hook_pattern"):
        return (B, H, T, T)
    if name.startswith("blocks.") and ".mlp." in name:
        return (B, T, 4 * D)
    if name == "logits":
        return (B, T, V)
    return (B, T, D)


def check_hooks(model64, cache, tokens):
    """Names, shapes and the defining relations between the cached hooks (float64)."""
    assert list(cache) == hook_names(), f"hook order/names differ: {list(cache)}"
    for n, t in cache.items():
        assert tuple(t.shape) == hook_shape(n), (n, tuple(t.shape), hook_shape(n))
    T = tokens.shape[1] - 1
    above = torch.ones(T, T, dtype=torch.bool).triu(1)
    with torch.no_grad():
        assert torch.equal(cache["hook_embed"], cache["blocks.0.hook_resid_pre"])

        def ln_check(pre, x, ln):
            xc = x - x.mean(-1, keepdim=True)
            scale = cache[f"{pre}.hook_scale"]
            assert torch.allclose(scale, (xc.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt(), 0, 1e-14)
            tl = xc / scale * ln.weight + ln.bias            # TransformerLens' formula
            assert (tl - cache[f"{pre}.hook_normalized"]).abs().max() < 1e-12, pre

        for i, blk in enumerate(model64.transformer.h):
            b = f"blocks.{i}"
            ln_check(f"{b}.ln1", cache[f"{b}.hook_resid_pre"], blk.ln_1)
            ln_check(f"{b}.ln2", cache[f"{b}.hook_resid_mid"], blk.ln_2)
            rope = blk.attn.rotary_emb
            for c in ("q", "k"):
                rot = rope(cache[f"{b}.attn.hook_{c}"].transpose(1, 2)).transpose(1, 2)
                assert torch.equal(rot, cache[f"{b}.attn.hook_rot_{c}"]), (b, c)
                assert not torch.equal(cache[f"{b}.attn.hook_{c}"], cache[f"{b}.attn.hook_rot_{c}"])
            sc = cache[f"{b}.attn.hook_attn_scores"]
            assert torch.isneginf(sc[..., above]).all() and torch.isfinite(sc[..., ~above]).all()
            ref = torch.einsum("bqhd,bkhd->bhqk", cache[f"{b}.attn.hook_rot_q"],
                               cache[f"{b}.attn.hook_rot_k"]) / math.sqrt(D // H)
            assert (ref[..., ~above] - sc[..., ~above]).abs().max() < 1e-12
            pat = cache[f"{b}.attn.hook_pattern"]
            assert torch.equal(pat, sc.softmax(-1)) and (pat[..., above] == 0).all()
            assert torch.equal(cache[f"{b}.hook_resid_mid"],
                               cache[f"{b}.hook_resid_pre"] + cache[f"{b}.hook_attn_out"])
            assert torch.equal(cache[f"{b}.hook_resid_post"],
                               cache[f"{b}.hook_resid_mid"] + cache[f"{b}.hook_mlp_out"])
        ln_check("ln_final", cache[f"blocks.{L - 1}.hook_resid_post"], model64.transformer.ln_f)
    print(f"  {len(cache)} hooks: names, shapes and relations ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "crates", "engine", "tests", "fixtures"))
    ap.add_argument("--listing", default=os.path.join(REPO, "tools", "reference", "FIXTURES.txt"))
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # single-threaded BLAS/reductions: byte-stable output
    os.makedirs(args.out, exist_ok=True)
    tokens = make_tokens()
    assert tokens.shape == (B, 3 * K) and tokens.dtype == torch.int64
    assert torch.equal(tokens[:, 2::3], (tokens[:, 2::3]) % P)

    listing = [
        "# Generated by tools/reference/make_fixtures.py -- do not edit.",
        f"# torch {torch.__version__}; name  dtype  shape",
        "",
    ]
    for name, act, tied in VARIANTS:
        out, metadata = build_variant(name, act, tied, tokens)
        exp = expected_names(tied, hook_names())
        assert set(out) == exp, f"name mismatch: extra {set(out) - exp}, missing {exp - set(out)}"
        path = os.path.join(args.out, f"{name}.safetensors")
        save_file(out, path, metadata=metadata)
        os.chmod(path, 0o644)

        # verify the written file
        back = load_file(path)
        assert set(back) == exp
        for k_, t in out.items():
            assert back[k_].dtype == t.dtype and torch.equal(back[k_], t), k_
        with safe_open(path, framework="pt") as f:
            meta = f.metadata()
        json.loads(meta["config"])
        size = os.path.getsize(path)
        assert size < 2 * 1024 * 1024
        sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
        print(f"  wrote {os.path.relpath(path, REPO)} ({size} bytes, {len(back)} tensors, sha256 {sha[:16]})")

        listing.append(f"== {os.path.relpath(path, REPO)}  ({size} bytes, {len(back)} tensors, sha256 {sha})")
        listing.append(f"   metadata config = {meta['config']}")
        for k_ in sorted(back):
            t = back[k_]
            dt = str(t.dtype).replace("torch.", "")
            listing.append(f"   {k_:52s} {dt:8s} {tuple(t.shape)}")
        listing.append("")

    with open(args.listing, "w") as fh:
        fh.write("\n".join(listing))
    print(f"listing -> {os.path.relpath(args.listing, REPO)}")


if __name__ == "__main__":
    main()
