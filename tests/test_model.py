"""Parameter counts against numel() and FLOPs against hand-computed values (Chinchilla App. F)."""

import pytest
import torch

from sweep.config import ModelConfig
from sweep.model import GPT, count_params, flops_per_token


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
