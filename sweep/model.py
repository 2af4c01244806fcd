"""A small decoder-only transformer that knows its parameter count and training FLOPs.

Pre-norm GPT: token + learned position embeddings, n_layer blocks of causal self-attention
(through `scaled_dot_product_attention`, so flash/memory-efficient kernels on GPU) and a GELU MLP,
a final LayerNorm and an output layer that is tied to the token embedding or not.

Counting is done by pure functions of (ModelConfig, vocab_size), so the planner can size a grid
without building a model; tests check them against `numel()`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from sweep.config import ModelConfig


# ----------------------------------------------------------------------------- counting


def count_params(cfg: ModelConfig, vocab_size: int) -> dict:
    """Parameters by group and under the usual conventions.

    Groups: embedding (tokens), position, attention, mlp, norm, head (0 when tied).
    Conventions: `n_params` is every unique parameter (Chinchilla's N); `n_params_non_embedding`
    drops token and position embeddings and an untied output layer (Kaplan's N, which for this
    architecture is about 12 * n_layer * d_model^2).
    """
    d, L, h = cfg.d_model, cfg.n_layer, cfg.mlp_width
    b = 1 if cfg.bias else 0
    ln = d * (1 + b)  # LayerNorm weight (+ bias)
    groups = {
        "embedding": vocab_size * d,
        "position": cfg.seq_len * d,
        # qkv projection d -> 3d and output projection d -> d
        "attention": L * (3 * d * d + 3 * d * b + d * d + d * b),
        # up projection d -> h and down projection h -> d
        "mlp": L * (d * h + h * b + h * d + d * b),
        "norm": (2 * L + 1) * ln,
        "head": 0 if cfg.tie_embeddings else vocab_size * d,
    }
    n_params = sum(groups.values())
    n_embedding = groups["embedding"] + groups["position"] + groups["head"]
    return {
        "n_params": n_params,
        "n_params_non_embedding": n_params - n_embedding,
        "n_params_embedding": n_embedding,
        "n_params_by_group": groups,
    }


def flops_per_token(cfg: ModelConfig, vocab_size: int) -> dict:
    """Training FLOPs per token: the exact count of Hoffmann et al. 2022 (Appendix F) and 6N.

    The exact count follows the paper's table for one forward pass over a sequence of length
    `seq_len` (matmuls at 2 FLOPs per multiply-add, the full seq x seq attention matrix as the
    paper counts it, softmax at 3 FLOPs per entry), then backward = 2 x forward, per token.
    Norms, biases and activations are left out as in the paper.
    """
    T, d, L, V, ff = cfg.seq_len, cfg.d_model, cfg.n_layer, vocab_size, cfg.mlp_width
    n_head, key_size = cfg.n_head, cfg.head_dim
    embeddings = 2 * T * V * d
    attention = (
        2 * 3 * T * d * (key_size * n_head)  # K, Q, V projections
        + 2 * T * T * (key_size * n_head)  # Q @ K^T logits
        + 3 * n_head * T * T  # softmax
        + 2 * T * T * (key_size * n_head)  # attention @ V
        + 2 * T * (key_size * n_head) * d  # output projection
    )
    dense = 2 * T * (d * ff + d * ff)
    logits = 2 * T * d * V
    forward = embeddings + L * (attention + dense) + logits
    exact = 3 * forward / T
    n = count_params(cfg, vocab_size)
    return {
        "flops_per_token": float(exact),
        "flops_per_token_6n": float(6 * n["n_params"]),
        "flops_per_token_6n_non_embedding": float(6 * n["n_params_non_embedding"]),
    }


# ----------------------------------------------------------------------------- model


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        # (B, T, 3C) -> three (B, n_head, T, head_dim)
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
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


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg, self.vocab_size = cfg, vocab_size
        self.wte = nn.Embedding(vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
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
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, d_model)
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
