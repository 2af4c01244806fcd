"""Parameter counts against numel() and FLOPs against hand-computed values (Chinchilla App. F)."""

import pytest
import torch

from sweep.config import ModelConfig
from sweep.run.model import GPT, count_params, flops_per_token


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 8, 2, 4, None), (3, 48, 4, 32, 100)])
def test_counts_match_numel(tie, bias, shape):
    n_layer, d_model, n_head, seq_len, d_mlp = shape
    cfg = ModelConfig(n_layer=n_layer, d_model=d_model, n_head=n_head, seq_len=seq_len, d_mlp=d_mlp,
                      tie_embeddings=tie, bias=bias)
    model = GPT(cfg, vocab_size=97)
    counts = count_params(cfg, 97)
    assert counts["n_params"] == sum(p.numel() for p in model.parameters())
    groups = counts["n_params_by_group"]
    assert groups["embedding"] == model.wte.weight.numel()
    assert groups["position"] == model.wpe.weight.numel()
    assert groups["attention"] == sum(p.numel() for b in model.blocks for p in b.attn.parameters())
    assert groups["mlp"] == sum(p.numel() for b in model.blocks for p in b.mlp.parameters())
    assert groups["head"] == (0 if tie else model.head.weight.numel())
    non_embedding = counts["n_params"] - groups["embedding"] - groups["position"] - groups["head"]
    assert counts["n_params_non_embedding"] == non_embedding


def test_non_embedding_is_about_12_L_d_squared():
    cfg = ModelConfig(n_layer=12, d_model=768, n_head=12, seq_len=1024)
    n = count_params(cfg, 50257)["n_params_non_embedding"]
    assert abs(n / (12 * 12 * 768**2) - 1) < 0.001  # Kaplan's approximation, norms are the rest


def test_exact_flops_by_hand_small():
    # L=1, d=8, 2 heads of 4, T=4, V=10, ff=32. Forward per sequence:
    # embed 2*4*10*8=640; qkv 2*3*4*8*8=1536; QK 2*4*4*8=256; softmax 3*2*4*4=96; AV 256;
    # proj 2*4*8*8=512; dense 2*4*(8*32*2)=4096; logits 640 -> 8032; x3 / T = 6024.
    cfg = ModelConfig(n_layer=1, d_model=8, n_head=2, seq_len=4)
    f = flops_per_token(cfg, 10)
    assert f["flops_per_token"] == 6024.0
    assert f["flops_per_token_6n"] == 6 * count_params(cfg, 10)["n_params"]


def test_exact_flops_by_hand_tiny():
    # L=2, d=64, 4 heads, T=128, V=256, ff=256: embed 4,194,304; attention per layer 8,585,216;
    # dense per layer 8,388,608; logits 4,194,304 -> forward 42,336,256; x3 / 128 = 992,256.
    cfg = ModelConfig(n_layer=2, d_model=64, n_head=4, seq_len=128)
    assert flops_per_token(cfg, 256)["flops_per_token"] == 992256.0


def test_forward_shapes_and_causality():
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=2, d_model=32, n_head=4, seq_len=16)
    model = GPT(cfg, 50).eval()
    x = torch.randint(0, 50, (2, 16))
    logits, loss = model(x, x)
    assert logits.shape == (2, 16, 50) and loss.ndim == 0
    x2 = x.clone()
    x2[:, 10:] = (x2[:, 10:] + 1) % 50  # changing the future must not change earlier logits
    logits2, _ = model(x2)
    assert torch.allclose(logits[:, :10], logits2[:, :10], atol=1e-5)
    assert not torch.allclose(logits[:, 10:], logits2[:, 10:])


def test_tied_head_shares_storage_and_weight_decay_groups():
    cfg = ModelConfig(n_layer=1, d_model=16, n_head=2, seq_len=8)
    model = GPT(cfg, 40)
    assert model.head.weight.data_ptr() == model.wte.weight.data_ptr()
    decay, no_decay = model.param_groups(0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert sum(p.numel() for g in (decay, no_decay) for p in g["params"]) == count_params(cfg, 40)["n_params"]


# ----------------------------------------------------------------------------- llama


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("shape", [(1, 8, 2, 4, None), (3, 48, 4, 32, 100), (2, 24, 3, 16, None)])
def test_llama_counts_match_numel(tie, shape):
    n_layer, d_model, n_head, seq_len, d_mlp = shape
    cfg = ModelConfig(arch="llama", n_layer=n_layer, d_model=d_model, n_head=n_head, seq_len=seq_len, d_mlp=d_mlp,
                      tie_embeddings=tie)
    model = GPT(cfg, vocab_size=97)
    counts = model.n_params()
    assert counts == count_params(cfg, 97)
    assert counts["n_params"] == sum(p.numel() for p in model.parameters())
    groups = counts["n_params_by_group"]
    assert groups["position"] == 0 and model.wpe is None  # RoPE has no parameters
    assert groups["mlp"] == sum(p.numel() for b in model.blocks for p in b.mlp.parameters()) == \
        n_layer * 3 * d_model * cfg.mlp_width
    assert groups["norm"] == (2 * n_layer + 1) * d_model  # RMSNorm: a weight, no bias
    assert not any(name.endswith("bias") for name, _ in model.named_parameters())
    assert counts["n_params_non_embedding"] == counts["n_params"] - groups["embedding"] - groups["head"]


def test_llama_mlp_width_matches_gelu_parameters():
    # 8/3 d rounded up to a multiple of 8: SwiGLU's three matrices hold about GELU's 8 d^2
    assert [ModelConfig(arch="llama", d_model=d).mlp_width for d in (24, 32, 768)] == [64, 88, 2048]
    assert ModelConfig(arch="llama", d_model=32, d_mlp=50).mlp_width == 50


def test_llama_flops_by_hand():
    # L=1, d=8, 2 heads of 4, T=4, V=10, ff=8*ceil(8/3)=24. Forward per sequence:
    # embed 640; qkv 1536; QK 256; softmax 96; AV 256; proj 512; SwiGLU 2*4*(3*8*24)=4608; logits 640
    # -> 8544; x3 / T = 6408.
    cfg = ModelConfig(arch="llama", n_layer=1, d_model=8, n_head=2, seq_len=4)
    assert cfg.mlp_width == 24
    f = GPT(cfg, 10).flops_per_token()
    assert f["flops_per_token"] == 6408.0 == flops_per_token(cfg, 10)["flops_per_token"]


def test_llama_is_causal_and_rope_scores_depend_on_relative_position_only():
    from sweep.run.model import apply_rope, rope_tables

    torch.manual_seed(0)
    cfg = ModelConfig(arch="llama", n_layer=2, d_model=32, n_head=4, seq_len=16)
    model = GPT(cfg, 50).eval()
    x = torch.randint(0, 50, (2, 16))
    logits, loss = model(x, x)
    assert logits.shape == (2, 16, 50) and loss.ndim == 0
    x2 = x.clone()
    x2[:, 10:] = (x2[:, 10:] + 1) % 50
    assert torch.allclose(logits[:, :10], model(x2)[0][:, :10], atol=1e-5)
    # the same query and key vectors at positions (i, j) and (i + s, j + s) give the same score
    cos, sin = rope_tables(16, 8)
    q, k = torch.randn(8), torch.randn(8)
    def score(i, j):
        qs = apply_rope(q.expand(1, 1, 16, 8), cos, sin)[0, 0, i]
        ks = apply_rope(k.expand(1, 1, 16, 8), cos, sin)[0, 0, j]
        return float(qs @ ks)
    assert score(5, 2) == pytest.approx(score(12, 9), rel=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 3), rel=1e-3)


def test_llama_learns_and_bad_llama_settings_are_refused():
    from sweep.config import BudgetConfig, ConfigError, RunConfig, validate

    torch.manual_seed(0)
    model = GPT(ModelConfig(arch="llama", n_layer=2, d_model=32, n_head=4, seq_len=16), 20)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = torch.arange(16).repeat(4, 1) % 20  # a counting sequence: each next token is learnable
    losses = []
    for _ in range(30):
        _, loss = model(x, torch.roll(x, -1, dims=1))
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0]
    budget = BudgetConfig(n_tokens=4096)
    with pytest.raises(ConfigError, match="model.arch='llama': llama has no biases"):
        validate(RunConfig(model=ModelConfig(arch="llama", bias=True), budget=budget))
    with pytest.raises(ConfigError, match="model.arch='gpt3'"):
        validate(RunConfig(model=ModelConfig(arch="gpt3"), budget=budget))
