"""Typed configuration for one training run.

These dataclasses are the Hydra structured-config schemas (registered by `register_configs`)
and also what every library function receives: Hydra stops at the command line, so `train()`
and friends take a `RunConfig`, never a DictConfig. `validate()` checks every rule that can be
checked without reading data, so a bad value fails before any compute is spent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


class ConfigError(ValueError):
    """A configuration value breaks a rule; the message names the field and the rule."""


@dataclass
class ModelConfig:
    """Shape of the decoder-only transformer."""

    arch: str = "gpt2"
    """'gpt2' (learned positions, LayerNorm, GELU MLP) or 'llama' (RoPE, RMSNorm, SwiGLU MLP, no biases)."""
    n_layer: int = 2
    """Number of transformer blocks."""
    d_model: int = 64
    """Residual stream width."""
    n_head: int = 4
    """Attention heads; must divide d_model."""
    d_mlp: Optional[int] = None
    """Hidden width of the MLP; None means 4 * d_model (gpt2) or 8/3 * d_model rounded up to a multiple of 8
    (llama: SwiGLU's three matrices then hold as many parameters as GELU's two)."""
    seq_len: int = 128
    """Context length in tokens (also the training sequence length)."""
    tie_embeddings: bool = True
    """Share the token embedding with the output layer."""
    dropout: float = 0.0
    """Dropout probability; scaling-law runs see each token about once, so 0 by default."""
    bias: bool = False
    """Biases in linear layers and LayerNorms."""

    @property
    def mlp_width(self) -> int:
        if self.d_mlp is not None:
            return self.d_mlp
        if self.arch == "llama":
            return 8 * -(-self.d_model // 3)  # 8/3 d rounded up to a multiple of 8
        return 4 * self.d_model

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


@dataclass
class DataConfig:
    """Where the text comes from and how it is split."""

    source: str = "stdlib"
    """'stdlib' (this Python's standard library sources, offline), 'python' (the stdlib plus the installed packages'
    sources, offline, ~120 MB with data=python's package list), 'files' (local text/JSONL) or 'hub' (a `datasets`
    hub name)."""
    path: Optional[str] = None
    """For 'files': a text or JSONL file, or a folder of them. For 'hub': the data set name. For 'python': another
    site-packages folder to read (empty: this interpreter's)."""
    hub_config: Optional[str] = None
    """For 'hub': the data set configuration (subset) name."""
    hub_split: str = "train"
    """For 'hub': which split to stream."""
    text_field: str = "text"
    """Column holding the text in JSONL files and hub data sets."""
    max_bytes: Optional[int] = None
    """Read at most this many bytes of text (whole documents); None reads everything."""
    packages: Optional[List[str]] = None
    """For 'python': the top-level names in site-packages to read (e.g. [torch, scipy]); None reads every one.
    A fixed list keeps the corpus the same whatever else is installed (test tools, a user's packages)."""
    split: str = "documents"
    """'documents' (a deterministic hash split of whole documents) or 'tail' (the last val_fraction of the text, as nanoGPT)."""
    val_fraction: float = 0.1
    """Fraction of documents (or of the text, for split='tail') held out for validation."""
    val_tokens: int = 65536
    """Fixed number of validation tokens every run is evaluated on."""
    split_seed: int = 0
    """Salt of the document-level train/validation hash split."""
    allow_repeat: bool = False
    """Allow a budget larger than the train split (tokens are seen more than once; scaling-law runs should not)."""
    cache_dir: str = "results/cache"
    """Where tokenizers and pre-encoded token files are cached."""


@dataclass
class TokenizerConfig:
    """How text becomes tokens."""

    kind: str = "bpe"
    """'bpe' (byte-level BPE trained on the train split) or 'byte' (vocab 256)."""
    vocab_size: int = 2048
    """Vocabulary size; must be 256 for 'byte'."""
    train_bytes: Optional[int] = 4_000_000
    """Train the BPE on at most this many bytes of the train split; None uses all of it."""


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""torch.compile's modes; the ones with CUDA graphs replay each step's kernels with one launch."""


@dataclass
class TrainConfig:
    """Optimisation and execution settings."""

    lr: float = 3e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of the peak."""
    schedule: str = "cosine"
    """'cosine' (warmup then cosine to min_lr over exactly the run's budget), 'wsd' or 'constant'."""
    warmup_fraction: float = 0.05
    """Fraction of the run's steps spent in linear warmup."""
    warmup_steps: Optional[int] = None
    """Fixed number of warmup steps; overrides warmup_fraction when set."""
    cooldown_fraction: float = 0.2
    """For 'wsd': fraction of the run's steps in the final decay."""
    cooldown_shape: str = "linear"
    """For 'wsd': 'linear' or '1-sqrt' decay."""
    batch_size: int = 16
    """Most sequences per micro-batch (what fits in memory); see micro_batch()."""
    tokens_per_step: int = 4096
    """Tokens per optimizer step, a multiple of seq_len; what one micro-batch cannot hold is gradient accumulation."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay on matrices (not on norms or biases)."""
    beta1: float = 0.9
    """AdamW first-moment decay."""
    beta2: float = 0.95
    """AdamW second-moment decay."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this; 0 disables clipping."""
    seed: int = 0
    """Seed for initialisation and data order."""
    eval_interval: int = 0
    """Evaluate every this many steps; 0 means about 10 evaluations per run."""
    eval_tokens: Optional[int] = 8192
    """Validation tokens per intermediate evaluation (a prefix of the fixed set); None uses all. The final one always uses all."""
    log_interval: int = 10
    """Log training loss every this many steps."""
    device: str = "auto"
    """'auto' (CUDA if available, else CPU), 'cpu' or 'cuda[:i]'."""
    dtype: str = "auto"
    """'auto' (bf16 autocast on CUDA; on CPU only where AMX/AVX512-BF16 make it faster), 'fp32' or 'bf16'."""
    compile: bool = False
    """torch.compile the model (worth it on GPU)."""
    compile_mode: str = "default"
    """torch.compile mode: 'default', 'reduce-overhead' (CUDA graphs: one launch per step, for tiny models), 'max-autotune'."""
    threads: Optional[int] = None
    """CPU threads for torch; None picks the cores free to this process."""
    memory_fraction: Optional[float] = None
    """Cap on the fraction of its GPU's memory this process may allocate (torch's caching allocator); None: no cap.
    The parallel launcher sets it to a packed run's share, so a run that outgrows its estimate fails (and retries
    at a smaller micro-batch) instead of making its neighbours run out of memory."""
    checkpoint_interval: int = 0
    """Checkpoint every this many steps for resume; 0 disables checkpoints."""
    save_at_steps: List[int] = field(default_factory=list)
    """Keep a checkpoint `branch-<step>.pt` at these steps: the points WSD cooldown branches start from."""
    init_from: Optional[str] = None
    """Start from this kept checkpoint (a WSD branch point) instead of step 0; the run's own checkpoint wins on resume."""
    diverge_factor: float = 0.0
    """Stop as diverged when the loss exceeds this multiple of its running minimum (0 disables; non-finite always stops)."""
    diverge_patience: int = 20
    """Consecutive steps above diverge_factor * running minimum before stopping (steps on every device: a GPU run
    checks the loss every log_interval steps, and each check above counts for the steps since the last)."""


@dataclass
class BudgetConfig:
    """How many tokens a run trains on: set exactly one of the three."""

    n_tokens: Optional[int] = None
    """Absolute number of training tokens D."""
    tokens_per_param: Optional[float] = None
    """D as a multiple of the model's parameter count (see param_convention)."""
    flops: Optional[float] = None
    """Training compute C; D = C / (exact training FLOPs per token)."""
    param_convention: str = "total"
    """Which N tokens_per_param multiplies: 'total' or 'non_embedding'."""


@dataclass
class LoggerConfig:
    """Weights & Biases settings."""

    mode: str = "offline"
    """'offline' (default, sync later with `wandb sync`), 'online' or 'disabled'."""
    project: str = "sweep"
    """W&B project name."""
    entity: Optional[str] = None
    """W&B entity (user or team); None uses the default."""
    dir: Optional[str] = None
    """Directory for W&B files; None means results/<sweep_name>."""
    tags: List[str] = field(default_factory=list)
    """Tags added to every W&B run."""


@dataclass
class RunConfig:
    """Everything that defines one training run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    sweep_name: str = "default"
    """Name of the sweep this run belongs to (results folder and W&B group)."""
    results_dir: str = "results"
    """Root of the results store."""
    meta: Dict[str, Any] = field(default_factory=dict)
    """Free-form labels (experiment, grid coordinates) copied into result.json and W&B config."""


def _require(ok: bool, field_name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{field_name}={value!r}: {rule}")


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError for any rule broken by `cfg`; reads no data."""
    m, t, tok, b, d = cfg.model, cfg.train, cfg.tokenizer, cfg.budget, cfg.data
    for name in ("n_layer", "d_model", "n_head", "seq_len"):
        _require(getattr(m, name) > 0, f"model.{name}", "must be a positive integer", getattr(m, name))
    _require(m.arch in ("gpt2", "llama"), "model.arch", "must be 'gpt2' or 'llama'", m.arch)
    _require(m.arch != "llama" or (not m.bias and m.head_dim % 2 == 0), "model.arch",
             "llama has no biases (model.bias=false) and needs an even head dimension for RoPE", m.arch)
    _require(m.d_mlp is None or m.d_mlp > 0, "model.d_mlp", "must be positive (or null for 4*d_model)", m.d_mlp)
    _require(m.d_model % m.n_head == 0, "model.d_model",
             f"must be divisible by model.n_head={m.n_head}", m.d_model)
    _require(0.0 <= m.dropout < 1.0, "model.dropout", "must be in [0, 1)", m.dropout)

    _require(tok.kind in ("bpe", "byte"), "tokenizer.kind", "must be 'bpe' or 'byte'", tok.kind)
    if tok.kind == "byte":
        _require(tok.vocab_size == 256, "tokenizer.vocab_size", "must be 256 for the byte tokenizer", tok.vocab_size)
    else:
        _require(257 <= tok.vocab_size <= 2**32 - 1, "tokenizer.vocab_size",
                 "must be above 256 (the byte alphabet) for BPE", tok.vocab_size)
    _require(tok.train_bytes is None or tok.train_bytes > 0, "tokenizer.train_bytes", "must be positive or null", tok.train_bytes)

    _require(d.source in ("stdlib", "python", "files", "hub"), "data.source",
             "must be 'stdlib', 'python', 'files' or 'hub'", d.source)
    if d.source in ("files", "hub"):
        _require(bool(d.path), "data.path", f"is required when data.source={d.source!r}", d.path)
    _require(d.split in ("documents", "tail"), "data.split", "must be 'documents' or 'tail'", d.split)
    _require(0.0 < d.val_fraction < 1.0, "data.val_fraction", "must be in (0, 1)", d.val_fraction)
    _require(d.val_tokens > 0, "data.val_tokens", "must be positive", d.val_tokens)
    _require(d.max_bytes is None or d.max_bytes > 0, "data.max_bytes", "must be positive or null", d.max_bytes)
    _require(m.seq_len + 1 <= d.val_tokens, "model.seq_len",
             f"must be shorter than the validation split (data.val_tokens={d.val_tokens})", m.seq_len)

    _require(t.lr > 0, "train.lr", "must be positive", t.lr)
    _require(0.0 <= t.min_lr_ratio <= 1.0, "train.min_lr_ratio", "must be in [0, 1]", t.min_lr_ratio)
    _require(t.schedule in ("cosine", "wsd", "constant"), "train.schedule", "must be 'cosine', 'wsd' or 'constant'", t.schedule)
    _require(0.0 <= t.warmup_fraction < 1.0, "train.warmup_fraction", "must be in [0, 1)", t.warmup_fraction)
    _require(t.warmup_steps is None or t.warmup_steps >= 0, "train.warmup_steps", "must be >= 0 or null", t.warmup_steps)
    _require(0.0 < t.cooldown_fraction <= 1.0, "train.cooldown_fraction", "must be in (0, 1]", t.cooldown_fraction)
    _require(t.cooldown_shape in ("linear", "1-sqrt"), "train.cooldown_shape", "must be 'linear' or '1-sqrt'", t.cooldown_shape)
    _require(t.batch_size > 0, "train.batch_size", "must be positive", t.batch_size)
    _require(t.memory_fraction is None or 0 < t.memory_fraction <= 1, "train.memory_fraction",
             "must be in (0, 1] or null", t.memory_fraction)
    _require(t.tokens_per_step > 0 and t.tokens_per_step % m.seq_len == 0, "train.tokens_per_step",
             f"must be a positive multiple of model.seq_len={m.seq_len}", t.tokens_per_step)
    _require(t.weight_decay >= 0, "train.weight_decay", "must be >= 0", t.weight_decay)
    _require(0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, "train.beta1/beta2", "must be in [0, 1)", (t.beta1, t.beta2))
    _require(t.grad_clip >= 0, "train.grad_clip", "must be >= 0", t.grad_clip)
    for name in ("eval_interval", "log_interval", "checkpoint_interval"):
        _require(getattr(t, name) >= 0, f"train.{name}", "must be >= 0", getattr(t, name))
    _require(t.eval_tokens is None or t.eval_tokens >= m.seq_len + 1, "train.eval_tokens",
             f"must be at least model.seq_len+1={m.seq_len + 1} or null", t.eval_tokens)
    _require(t.dtype in ("auto", "fp32", "bf16"), "train.dtype", "must be 'auto', 'fp32' or 'bf16'", t.dtype)
    _require(t.compile_mode in COMPILE_MODES, "train.compile_mode", "must be one of " + ", ".join(
        map(repr, COMPILE_MODES)), t.compile_mode)
    _require(t.device == "auto" or t.device == "cpu" or t.device.startswith("cuda"), "train.device",
             "must be 'auto', 'cpu' or 'cuda[:i]'", t.device)
    _require(t.threads is None or t.threads > 0, "train.threads", "must be positive or null", t.threads)
    _require(all(x > 0 for x in t.save_at_steps), "train.save_at_steps", "must hold positive step numbers", t.save_at_steps)
    _require(t.init_from is None or t.schedule in ("wsd", "constant"), "train.init_from",
             "needs train.schedule=wsd (a branch shares the trunk's constant phase)", t.init_from)
    _require(t.diverge_factor == 0 or t.diverge_factor > 1, "train.diverge_factor", "must be 0 (off) or > 1", t.diverge_factor)

    given = [k for k in ("n_tokens", "tokens_per_param", "flops") if getattr(b, k) is not None]
    _require(len(given) == 1, "budget", "set exactly one of budget.n_tokens, budget.tokens_per_param, budget.flops",
             {k: getattr(b, k) for k in ("n_tokens", "tokens_per_param", "flops")})
    for k in given:
        _require(getattr(b, k) > 0, f"budget.{k}", "must be positive", getattr(b, k))
    _require(b.param_convention in ("total", "non_embedding"), "budget.param_convention",
             "must be 'total' or 'non_embedding'", b.param_convention)

    _require(cfg.logger.mode in ("offline", "online", "disabled"), "logger.mode",
             "must be 'offline', 'online' or 'disabled'", cfg.logger.mode)
    _require(bool(cfg.sweep_name) and "/" not in cfg.sweep_name and "\\" not in cfg.sweep_name
             and cfg.sweep_name not in (".", ".."), "sweep_name",
             "must be a non-empty name without path separators", cfg.sweep_name)


def micro_batch(cfg: RunConfig) -> tuple[int, int]:
    """(sequences per micro-batch, micro-batches per step): the largest micro-batch of at most
    train.batch_size sequences that divides the step exactly, so tokens per step never depend on memory."""
    per_step = cfg.train.tokens_per_step // cfg.model.seq_len
    size = max(b for b in range(1, min(cfg.train.batch_size, per_step) + 1) if per_step % b == 0)
    return size, per_step // size


def to_dict(cfg: Any) -> dict:
    """A plain, JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(cfg)


def from_dict(data: dict) -> RunConfig:
    """Rebuild a RunConfig from `to_dict` output (e.g. a result.json's config)."""
    sections = {"model": ModelConfig, "data": DataConfig, "tokenizer": TokenizerConfig,
                "train": TrainConfig, "budget": BudgetConfig, "logger": LoggerConfig}
    kwargs = {k: cls(**data[k]) for k, cls in sections.items() if k in data}
    rest = {k: v for k, v in data.items() if k not in sections}
    return RunConfig(**kwargs, **rest)


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (called by the CLI, not at import)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="run_schema", node=RunConfig)
