"""Parameter and FLOP counts of the model, as pure functions of (ModelConfig, vocab_size).

No torch here: the planner sizes a grid with them, and a job that waits for its slot imports this, not
torch. model.py builds the network these counts describe; tests check them against `numel()`.
"""

from __future__ import annotations

from sweep.config import ModelConfig


def count_params(cfg: ModelConfig, vocab_size: int) -> dict:
    """Parameters by group and under the usual conventions.

    Groups: embedding (tokens), position, attention, mlp, norm, head (0 when tied).
    Conventions: `n_params` is every unique parameter (Chinchilla's N); `n_params_non_embedding`
    drops token and position embeddings and an untied output layer (Kaplan's N, which for this
    architecture is about 12 * n_layer * d_model^2).
    """
    d, L, h = cfg.d_model, cfg.n_layer, cfg.mlp_width
    llama = cfg.arch == "llama"
    b = 1 if cfg.bias else 0
    ln = d * (1 + b)  # LayerNorm weight (+ bias); RMSNorm has the weight only (and llama has no biases)
    groups = {
        "embedding": vocab_size * d,
        "position": 0 if llama else cfg.seq_len * d,  # RoPE has no parameters
        # qkv projection d -> 3d and output projection d -> d
        "attention": L * (3 * d * d + 3 * d * b + d * d + d * b),
        # gpt2: up d -> h and down h -> d; llama: gate and up d -> h, down h -> d
        "mlp": L * (3 * d * h if llama else d * h + h * b + h * d + d * b),
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
    Norms, biases and activations are left out as in the paper; so are RoPE's rotations (a few FLOPs
    per query and key element). SwiGLU has three d x ff matrices where GELU has two.
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
    dense = 2 * T * (3 if cfg.arch == "llama" else 2) * d * ff
    logits = 2 * T * d * V
    forward = embeddings + L * (attention + dense) + logits
    exact = 3 * forward / T
    n = count_params(cfg, vocab_size)
    return {
        "flops_per_token": float(exact),
        "flops_per_token_6n": float(6 * n["n_params"]),
        "flops_per_token_6n_non_embedding": float(6 * n["n_params_non_embedding"]),
    }


def executed_flops_per_token(cfg: ModelConfig, vocab_size: int) -> float:
    """Training FLOPs per token that a step actually runs, for MFU; the fits keep the exact count above.

    Two terms of the paper's count never run: the input embedding is a lookup (a gather, not a V x d
    matmul), and causal attention kernels (flash, memory-efficient) skip the masked upper triangle, so
    the logits, softmax and attention @ V cost T(T+1)/2 entries per head, not T^2. Backward = 2 x
    forward as above; no activation recompute. Against the exact count this is what MFU is based on:
    an MFU from the exact count would credit the GPU with work it never did (1.8x at d=192, seq 1024)."""
    T, d, L, V, ff = cfg.seq_len, cfg.d_model, cfg.n_layer, vocab_size, cfg.mlp_width
    width = cfg.n_head * cfg.head_dim
    causal = T * (T + 1) / 2  # entries of the score matrix at or below the diagonal
    attention = (2 * 3 * T * d * width  # K, Q, V projections
                 + 2 * causal * width  # Q @ K^T, causal half
                 + 3 * cfg.n_head * causal  # softmax, causal half
                 + 2 * causal * width  # attention @ V, causal half
                 + 2 * T * width * d)  # output projection
    dense = 2 * T * (3 if cfg.arch == "llama" else 2) * d * ff
    logits = 2 * T * d * V
    return float(3 * (L * (attention + dense) + logits) / T)
