"""PyTorch reference twin of the "Learning to grok" (arXiv 2406.02550) model.

Written from a description of the official model and loss (ablghtianyi/ICL_Modular_Arithmetic).
It exists only to produce test fixtures and a speed baseline for the Rust engine;
nothing in the Rust build depends on it.

Architecture (pre-LN decoder-only transformer, no biases outside LayerNorm):

    x = wte[tokens]                                  # no positional embedding
    for each block:
        x = x + o(attn(rope(q), rope(k), v))         # q, k, v from to_qkv(ln_1(x))
        x = x + c_proj(act(c_fc(ln_2(x))))
    logits = lm_head(ln_f(x))                        # lm_head tied to wte by default

Parameter names match the official state_dict keys exactly
(`transformer.wte.weight`, `transformer.h.{i}.attn.to_qkv.weight`, ...), and the
intermediate activations can be returned under TransformerLens hook names, with
TransformerLens shapes and meanings (see `forward` and tools/reference/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Config:
    vocab_size: int = 47
    d_model: int = 512
    n_heads: int = 4
    n_layers: int = 4
    mlp_ratio: int = 4
    act: str = "relu"          # 'relu' or 'gelu' (tanh approximation)
    tied: bool = True          # lm_head.weight is the same Parameter as transformer.wte.weight
    rope_theta: float = 10000.0
    ln_eps: float = 1e-5
    attn_impl: str = "explicit"  # 'explicit' (intermediates visible) or 'sdpa' (fast path)

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------
# Rotary position embedding
# --------------------------------------------------------------------------------------

class Rotary(nn.Module):
    """Interleaved (GPT-J style) rotary embedding over all head dims.

    Inverse frequencies f_i = theta^(-2i/dh), i < dh/2, held in `freqs` (a Parameter with
    requires_grad=False, so it shows up in the state_dict as `...attn.rotary_emb.freqs`,
    exactly like rotary_embedding_torch). Dimension pair (2i, 2i+1) at position m is
    rotated by angle m*f_i:
        out[2i]   = t[2i]   cos - t[2i+1] sin
        out[2i+1] = t[2i+1] cos + t[2i]   sin
    """

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        assert dim % 2 == 0
        # same expression as rotary_embedding_torch: 1 / theta^(arange(0, dim, 2)/dim), fp32
        inv = 1.0 / (theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
        self.freqs = nn.Parameter(inv, requires_grad=False)

    def cos_sin(self, T: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(T, device=device, dtype=dtype)
        ang = pos[:, None] * self.freqs.to(dtype)[None, :]        # (T, dh/2)
        ang = ang.repeat_interleave(2, dim=-1)                     # (T, dh): f0 f0 f1 f1 ...
        return ang.cos(), ang.sin()

    @staticmethod
    def rotate_pairs(t: torch.Tensor) -> torch.Tensor:
        # (t0, t1, t2, t3, ...) -> (-t1, t0, -t3, t2, ...)
        even, odd = t[..., 0::2], t[..., 1::2]
        return torch.stack((-odd, even), dim=-1).flatten(-2)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B, h, T, dh); positions are 0..T-1."""
        cos, sin = self.cos_sin(t.shape[-2], t.dtype, t.device)
        return t * cos + self.rotate_pairs(t) * sin


# --------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------

def layer_norm(ln: nn.LayerNorm, x: torch.Tensor, cache: dict | None, prefix: str) -> torch.Tensor:
    """Apply `ln` and, when caching, record TransformerLens' LayerNorm hooks:
    `{prefix}.hook_scale` (B, T, 1) = sqrt(biased var over d + eps) and
    `{prefix}.hook_normalized` (B, T, d) = the output after weight and bias.
    The output is exactly `ln(x)`; the scale is computed on the side and changes nothing."""
    y = ln(x)
    if cache is not None:
        var = (x - x.mean(-1, keepdim=True)).pow(2).mean(-1, keepdim=True)
        cache[f"{prefix}.hook_scale"] = (var + ln.eps).sqrt()
        cache[f"{prefix}.hook_normalized"] = y
    return y


class Attention(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.to_qkv = nn.Linear(d, 3 * d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.rotary_emb = Rotary(cfg.d_head, cfg.rope_theta)

    def forward(self, x: torch.Tensor, cache: dict | None, prefix: str) -> torch.Tensor:
        B, T, d = x.shape
        h, dh = self.cfg.n_heads, self.cfg.d_head
        q, k, v = self.to_qkv(x).split(d, dim=-1)           # contiguous d-blocks, order q k v
        q, k, v = (t.view(B, T, h, dh) for t in (q, k, v))   # (B,T,h,dh), TransformerLens layout
        if cache is not None:
            cache[f"{prefix}.attn.hook_q"] = q                # before rotary
            cache[f"{prefix}.attn.hook_k"] = k
            cache[f"{prefix}.attn.hook_v"] = v

        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)   # (B,h,T,dh)
        q = self.rotary_emb(q)
        k = self.rotary_emb(k)
        if cache is not None:
            cache[f"{prefix}.attn.hook_rot_q"] = q.transpose(1, 2)          # (B,T,h,dh)
            cache[f"{prefix}.attn.hook_rot_k"] = k.transpose(1, 2)
        scale = 1.0 / math.sqrt(dh)

        if self.cfg.attn_impl == "sdpa":
            assert cache is None, "use attn_impl='explicit' to record intermediates"
            z = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
        else:
            scores = (q @ k.transpose(-2, -1)) * scale                      # (B,h,Tq,Tk)
            causal = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(causal, float("-inf"))
            pattern = scores.softmax(dim=-1)                                # zeros above diag
            z = pattern @ v                                                 # (B,h,T,dh)
            if cache is not None:
                cache[f"{prefix}.attn.hook_attn_scores"] = scores           # -inf above diag
                cache[f"{prefix}.attn.hook_pattern"] = pattern

        z = z.transpose(1, 2)                                # (B,T,h,dh)
        if cache is not None:
            cache[f"{prefix}.attn.hook_z"] = z
        return self.o(z.reshape(B, T, d))                    # heads concatenated in order


class MLP(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        d = cfg.d_model
        self.c_fc = nn.Linear(d, cfg.mlp_ratio * d, bias=False)
        self.c_proj = nn.Linear(cfg.mlp_ratio * d, d, bias=False)
        if cfg.act == "relu":
            self.act = F.relu
        elif cfg.act == "gelu":
            self.act = lambda t: F.gelu(t, approximate="tanh")
        else:
            raise ValueError(f"unknown activation {cfg.act!r}")

    def forward(self, x: torch.Tensor, cache: dict | None, prefix: str) -> torch.Tensor:
        pre = self.c_fc(x)
        post = self.act(pre)
        if cache is not None:
            cache[f"{prefix}.mlp.hook_pre"] = pre
            cache[f"{prefix}.mlp.hook_post"] = post
        return self.c_proj(post)


class Block(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: dict | None, prefix: str) -> torch.Tensor:
        if cache is not None:
            cache[f"{prefix}.hook_resid_pre"] = x
        a = self.attn(layer_norm(self.ln_1, x, cache, f"{prefix}.ln1"), cache, prefix)
        x = x + a
        if cache is not None:
            cache[f"{prefix}.hook_attn_out"] = a
            cache[f"{prefix}.hook_resid_mid"] = x
        m = self.mlp(layer_norm(self.ln_2, x, cache, f"{prefix}.ln2"), cache, prefix)
        x = x + m
        if cache is not None:
            cache[f"{prefix}.hook_mlp_out"] = m
            cache[f"{prefix}.hook_resid_post"] = x
        return x


# --------------------------------------------------------------------------------------
# Full model
# --------------------------------------------------------------------------------------

class RoPETransformer(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.d_model),
            h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)]),
            ln_f=nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps),
        ))
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self._init_weights()
        if cfg.tied:
            # tying happens AFTER init, so lm_head's own (1/sqrt(d)-scaled) init is discarded
            self.lm_head.weight = self.transformer.wte.weight

    @torch.no_grad()
    def _init_weights(self) -> None:
        """Official init, walking named_modules() in registration order."""
        L, d = self.cfg.n_layers, self.cfg.d_model
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
                if "proj" in name:            # only mlp.c_proj (attn.o is NOT scaled)
                    m.weight.div_(math.sqrt(2 * L))
                if "head" in name:            # only lm_head; irrelevant when tied
                    m.weight.div_(math.sqrt(d))
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor, return_cache: bool = False):
        """idx: (B, T) int64. Returns logits (B, T, V), or (logits, cache) if return_cache.

        The cache holds TransformerLens hooks (l = block index):
          hook_embed (B,T,d); blocks.{l}.hook_resid_pre (B,T,d);
          blocks.{l}.ln1.hook_scale (B,T,1), .ln1.hook_normalized (B,T,d);
          blocks.{l}.attn.hook_q / hook_k / hook_v (B,T,h,dh), q and k before rotary;
          blocks.{l}.attn.hook_rot_q / hook_rot_k (B,T,h,dh), after rotary;
          blocks.{l}.attn.hook_attn_scores (B,h,Tq,Tk), rot_q.rot_k^T/sqrt(dh), -inf above diag;
          blocks.{l}.attn.hook_pattern (B,h,Tq,Tk); blocks.{l}.attn.hook_z (B,T,h,dh);
          blocks.{l}.hook_attn_out, hook_resid_mid (B,T,d);
          blocks.{l}.ln2.hook_scale (B,T,1), .ln2.hook_normalized (B,T,d);
          blocks.{l}.mlp.hook_pre / hook_post (B,T,d_mlp); blocks.{l}.hook_mlp_out,
          hook_resid_post (B,T,d); ln_final.hook_scale (B,T,1), ln_final.hook_normalized (B,T,d);
          logits (B,T,V).
        Requires attn_impl='explicit'."""
        cache = {} if return_cache else None
        x = self.transformer.wte(idx)
        if cache is not None:
            cache["hook_embed"] = x                      # no positional embedding (RoPE only)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, f"blocks.{i}")
        x = layer_norm(self.transformer.ln_f, x, cache, "ln_final")
        logits = self.lm_head(x)
        if cache is not None:
            cache["logits"] = logits
            return logits, cache
        return logits

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


# --------------------------------------------------------------------------------------
# Loss and optimiser
# --------------------------------------------------------------------------------------

def split_tokens(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Full sequences (B, 3k) -> model input tokens[:, :-1] and targets tokens[:, 1:]."""
    return tokens[:, :-1], tokens[:, 1:]


def icl_loss(logits: torch.Tensor, targets: torch.Tensor, n_var: int = 2,
             drop_exact_zero: bool = False) -> torch.Tensor:
    """Mean cross-entropy (softmax over all V logits) over the z targets.

    Target position j (0-based, in the shifted sequence) is supervised iff
    j % (n_var+1) == n_var-1, i.e. j = 1, 4, 7, ... for n_var = 2: the output at a y token
    predicts the following z. That gives k supervised positions per sequence (the 0-shot
    one included); the mean is over B*k positions.

    drop_exact_zero=True reproduces the official `losses[losses > 0].mean()` quirk
    (positions whose loss is exactly 0 leave the mean); it never triggers at init.
    """
    B, T, V = logits.shape
    pos = torch.arange(T, device=logits.device)
    mask = (pos % (n_var + 1)) == (n_var - 1)
    lg = logits[:, mask, :].reshape(-1, V)
    tg = targets[:, mask].reshape(-1)
    losses = F.cross_entropy(lg, tg, reduction="none")
    if drop_exact_zero:
        losses = losses[losses > 0]
    return losses.mean()


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Official grouping: [no_decay, decay].

    no_decay: every parameter with ndim <= 1 or a name ending in '.bias' (LayerNorm weights
    and biases). decay: every 2-D matrix (wte/lm_head once when tied, to_qkv, o, c_fc,
    c_proj). Parameters with requires_grad False (rotary freqs) are skipped.
    named_parameters() de-duplicates shared Parameters, so a tied wte appears once.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float,
                   betas=(0.9, 0.98), eps: float = 1e-8, **kw) -> torch.optim.AdamW:
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, eps=eps, **kw)


def trainable_names(model: nn.Module) -> list[str]:
    """Names of the optimised parameters (tied wte listed once, under transformer.wte.weight)."""
    return [n for n, p in model.named_parameters() if p.requires_grad]
