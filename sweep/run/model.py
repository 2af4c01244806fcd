"""A small decoder-only transformer that knows its parameter count and training FLOPs.

Two blocks, chosen by `model.arch`:
- 'gpt2': token + learned position embeddings, pre-LayerNorm blocks of causal self-attention and a
  GELU MLP, a final LayerNorm;
- 'llama': token embeddings only, rotary position embedding (RoPE) on queries and keys, RMSNorm, a
  SwiGLU MLP and no biases (what current scaling ladders use).
Attention goes through `scaled_dot_product_attention` (flash/memory-efficient kernels on GPU); the
output layer is tied to the token embedding or not.

Counting is done by pure functions of (ModelConfig, vocab_size) in counts.py, without torch, so the
planner can size a grid (and a job waiting for its slot stays light) without building a model; tests
check them against `numel()`. They are re-exported here: the model knows its counts.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from sweep.config import ModelConfig
from sweep.run.counts import count_params, executed_flops_per_token, flops_per_token  # noqa: F401  (re-exported)


# ----------------------------------------------------------------------------- model


def rope_tables(seq_len: int, head_dim: int, base: float = 10000.0) -> tuple:
    """cos and sin of RoPE's angles, each (seq_len, head_dim / 2): position t turns pair i by t * base^(-2i/head_dim)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, n_head, T, head_dim) queries or keys; the two halves of head_dim are the pairs."""
    T = x.shape[-2]
    x1, x2 = x.chunk(2, dim=-1)
    c, s = cos[:T].to(x.dtype), sin[:T].to(x.dtype)
    return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.rope = cfg.arch == "llama"
        if self.rope:
            cos, sin = rope_tables(cfg.seq_len, cfg.head_dim)
            # buffers move with .to(device) but are not parameters and not in the state dict
            self.register_buffer("cos", cos, persistent=False)
            self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, 3C) -> three (B, n_head, T, head_dim)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        if self.rope:
            q, k = apply_rope(q, self.cos, self.sin), apply_rope(k, self.cos, self.sin)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble heads side by side
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.mlp_width, bias=cfg.bias)
        self.down = nn.Linear(cfg.mlp_width, cfg.d_model, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Exact (erf) GELU, as nanoGPT: on CPU the tanh approximation costs about twice as much per
        # element (3% of a baby-GPT step); on GPU torch.compile fuses either into one kernel.
        return self.drop(self.down(F.gelu(self.up(x))))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.mlp_width, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.mlp_width, bias=False)
        self.down = nn.Linear(cfg.mlp_width, cfg.d_model, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down(F.silu(self.gate(x)) * self.up(x)))


def norm(cfg: ModelConfig) -> nn.Module:
    return nn.RMSNorm(cfg.d_model) if cfg.arch == "llama" else nn.LayerNorm(cfg.d_model, bias=cfg.bias)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = norm(cfg)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = norm(cfg)
        self.mlp = SwiGLU(cfg) if cfg.arch == "llama" else MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.wte = nn.Embedding(vocab_size, cfg.d_model)
        # llama's positions come from RoPE inside attention
        self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model) if cfg.arch == "gpt2" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = norm(cfg)
        self.head = nn.Linear(cfg.d_model, vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2: scale residual-branch outputs by 1/sqrt(2 * n_layer) so the residual stream's
        # variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("down.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx, targets: (B, T) token ids. Returns logits (B, T, V) and the mean loss (or None)."""
        B, T = idx.shape
        x = self.wte(idx)  # (B, T, d_model)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def n_params(self) -> dict:
        return count_params(self.cfg, self.vocab_size)

    def flops_per_token(self) -> dict:
        return flops_per_token(self.cfg, self.vocab_size)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Decay matrices and embeddings; never norms or biases (they set scale, not features)."""
        decay, no_decay = [], []
        for p in self.parameters():  # parameters() yields a tied weight once
            (decay if p.dim() >= 2 else no_decay).append(p)
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
