"""Tokenizers: a plain UTF-8 byte tokenizer and a byte-level BPE trained with `tokenizers`.

Both reserve id 0 for the end-of-text boundary placed after every document: for BPE it is the
special token `<|endoftext|>`, for bytes it is the NUL byte, which the data pipeline rejects inside
documents (a NUL marks a binary file), so it never collides with text. Both tokenizers can encode
any string: BPE starts from all 256 bytes, so there is no unknown token.

A tokenizer is identified by `tokenizer_hash`: sha256 of its serialized JSON, or of 'byte'.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np

EOT = "<|endoftext|>"
"""The BPE end-of-text special token (id 0)."""
EOT_ID = 0
"""Id of the end-of-text boundary in both tokenizers."""
BYTE_SERIALIZED = "byte"
"""What the byte tokenizer serializes (and hashes) to."""


class TokenizerError(ValueError):
    """A tokenizer cannot be built as configured; the message says which setting to change."""


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict:
    """GPT-2's byte -> printable character map, the alphabet of the ByteLevel pre-tokenizer."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


class ByteTokenizer:
    """Tokens are the UTF-8 bytes of the text (vocab 256); id 0 (NUL) doubles as end of text."""

    kind = "byte"
    vocab_size = 256
    eot_id = EOT_ID

    def encode(self, text: str) -> List[int]:
        return list(text.encode("utf-8"))

    def encode_batch(self, texts: Sequence[str]) -> List[np.ndarray]:
        return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8) for t in texts]

    def decode(self, ids: Iterable[int]) -> str:
        # A window of tokens may cut a multi-byte character; show it as U+FFFD rather than fail.
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def to_str(self) -> str:
        return BYTE_SERIALIZED

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each token id stands for (the boundary counts as one byte)."""
        return np.ones(256, dtype=np.int64)


class BPETokenizer:
    """A byte-level BPE `tokenizers.Tokenizer` with id 0 = `<|endoftext|>`."""

    kind = "bpe"
    eot_id = EOT_ID

    def __init__(self, tok):
        self.tok = tok
        # Not serialized by `tokenizers`, so set on every load: a literal "<|endoftext|>" inside a
        # document is ordinary text; the only boundaries are the ones the pipeline inserts by id.
        self.tok.encode_special_tokens = True
        self.vocab_size = tok.get_vocab_size()

    def encode(self, text: str) -> List[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> List[List[int]]:
        # The batch API runs on all cores (Rust threads).
        return [e.ids for e in self.tok.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def to_str(self) -> str:
        return self.tok.to_str()

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each token id stands for (the boundary counts as one byte, like NUL for bytes)."""
        byte_of = {c: b for b, c in bytes_to_unicode().items()}
        out = np.zeros(self.vocab_size, dtype=np.int64)
        for piece, i in self.tok.get_vocab(with_added_tokens=False).items():
            out[i] = sum(1 for c in piece if c in byte_of)
        out[EOT_ID] = 1
        return out


Tokenizer = Union[ByteTokenizer, BPETokenizer]


def tokenizer_hash(tok: Tokenizer) -> str:
    """sha256 of the tokenizer's serialized JSON (or of 'byte')."""
    return hashlib.sha256(tok.to_str().encode("utf-8")).hexdigest()


def train_bpe(texts: Iterable[str], vocab_size: int, show_progress: bool = False) -> BPETokenizer:
    """Train a byte-level BPE with `vocab_size` ids (id 0 = <|endoftext|>, then the 256 bytes, then merges)."""
    from tokenizers import Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=show_progress,
    )
    tok.train_from_iterator(texts, trainer)
    got = tok.get_vocab_size()
    if got < vocab_size:
        # Training stops only when no pair is left to merge, so `got` is this corpus's maximum.
        raise TokenizerError(
            f"tokenizer.vocab_size={vocab_size} is more than this corpus supports: BPE ran out of merges "
            f"at {got} tokens; set tokenizer.vocab_size <= {got}, or train on more text "
            f"(raise data.max_bytes / tokenizer.train_bytes, or use a bigger corpus)")
    return BPETokenizer(tok)


def tokenizer_from_str(serialized: str) -> Tokenizer:
    """Rebuild a tokenizer from `to_str()` output."""
    if serialized.strip() == BYTE_SERIALIZED:
        return ByteTokenizer()
    from tokenizers import Tokenizer as HFTokenizer

    return BPETokenizer(HFTokenizer.from_str(serialized))


def save_tokenizer(tok: Tokenizer, path: Union[str, Path]) -> None:
    Path(path).write_text(tok.to_str(), encoding="utf-8")


def read_tokenizer_file(path: Union[str, Path]) -> Optional[Tokenizer]:
    """The tokenizer saved at `path`, or None if there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return tokenizer_from_str(path.read_text(encoding="utf-8"))
