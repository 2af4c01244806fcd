"""The token cache: a corpus, split and tokenizer become memmapped token files under
`<data.cache_dir>/tokens-<key>/`, built once and found again without reading the corpus.

    train.bin   every train document, in corpus order, each followed by the end-of-text id 0
                (`<|endoftext|>` for BPE, the NUL byte for the byte tokenizer)
    val.bin     exactly the first data.val_tokens tokens of the validation documents (ordered by
                their split hash), same layout
    tokenizer.json, meta.json

Why one module of ~300 lines: every stage feeds the cache's key (corpus files, split, tokenizer, format),
and keeping the key's parts side by side is what keeps it complete.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Tuple, Union

import numpy as np

from sweep.config import DataConfig, TokenizerConfig
from sweep.run.corpus import empty_corpus_error, source_files, stream_documents
from sweep.run.documents import DataError, Document, sha256_json, write_dir_atomically
from sweep.run.encode import encode_documents, token_dtype
from sweep.run.split import CorpusScan, scan_corpus, train_documents, validation_documents
from sweep.run.tokenizer import (EOT_ID, ByteTokenizer, Tokenizer, TokenizerError, read_tokenizer_file, save_tokenizer,
                                 tokenizer_hash, train_bpe)
from sweep.store.results import write_json_atomic

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bump when the token-file layout or the split/hash rules change: old caches then stop matching."""


@dataclass


class TokenData:
    """Pre-encoded train/validation tokens and their provenance."""

    dir: Path
    """Cache folder holding train.bin, val.bin, tokenizer.json and meta.json."""
    n_train_tokens: int
    """Tokens in train.bin (end-of-text boundaries included)."""
    n_val_tokens: int
    """Tokens in val.bin: exactly data.val_tokens."""
    val_bytes: int
    """UTF-8 bytes the validation tokens stand for (each boundary counts as one byte)."""
    vocab_size: int
    """Number of token ids."""
    corpus_hash: str
    """sha256 over document names and texts, in corpus order."""
    tokenizer_hash: str
    """sha256 of the tokenizer's serialized JSON (or of 'byte')."""
    dtype: str
    """Token file dtype: 'uint16' (vocab_size <= 65536) or 'uint32'."""

    def train_tokens(self) -> np.memmap:
        return np.memmap(self.dir / "train.bin", dtype=self.dtype, mode="r", shape=(self.n_train_tokens,))

    def val_tokens(self) -> np.memmap:
        return np.memmap(self.dir / "val.bin", dtype=self.dtype, mode="r", shape=(self.n_val_tokens,))

    def bits_per_byte(self, val_loss_nats: float) -> float:
        """Mean validation loss (nats per token) -> bits per UTF-8 byte of the validation text."""
        return bits_per_byte(val_loss_nats, self.n_val_tokens, self.val_bytes)

    def meta(self) -> dict:
        """The full meta.json (document counts, configs, ...)."""
        return json.loads((self.dir / "meta.json").read_text())


def bits_per_byte(val_loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Total nats over the tokens, in bits, divided by the bytes those tokens encode."""
    return val_loss_nats * n_tokens / (n_bytes * math.log(2))


def bpe_training_texts(train: Iterable[Document], max_bytes: Optional[int]) -> Iterator[str]:
    """Train-split texts up to `max_bytes` in total; the last one is cut at a byte boundary."""
    left = max_bytes
    for doc in train:
        if left is None:
            yield doc.text
            continue
        raw = doc.text.encode("utf-8")
        if len(raw) >= left:
            yield raw[:left].decode("utf-8", errors="ignore")
            return
        left -= len(raw)
        yield doc.text


def get_tokenizer(train: Iterable[Document], corpus_sha: str, data: DataConfig, tok: TokenizerConfig,
                  progress: bool = True) -> Tokenizer:
    """The byte tokenizer, or the BPE for this corpus and settings: from the cache, else trained and cached."""
    if tok.kind == "byte":
        if tok.vocab_size != 256:
            raise DataError(f"tokenizer.vocab_size={tok.vocab_size}: must be 256 for tokenizer.kind='byte'")
        return ByteTokenizer()
    if tok.kind != "bpe":
        raise DataError(f"tokenizer.kind={tok.kind!r}: must be 'bpe' or 'byte'")
    key = sha256_json({"v": FORMAT_VERSION, "corpus": corpus_sha, "tokenizer": dataclasses.asdict(tok),
                        "val_fraction": data.val_fraction, "split_seed": data.split_seed, "split": data.split})[:16]
    path = Path(data.cache_dir) / f"tokenizer-{key}.json"
    cached = read_tokenizer_file(path)
    if cached is not None:
        log.info("tokenizer cache hit: %s", path)
        return cached
    log.info("training BPE (vocab %d) on the train split", tok.vocab_size)
    try:
        bpe = train_bpe(bpe_training_texts(train, tok.train_bytes), tok.vocab_size, show_progress=progress)
    except TokenizerError as e:
        raise DataError(str(e)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    save_tokenizer(bpe, tmp)
    os.replace(tmp, path)  # atomic; BPE training is deterministic, so a racing writer wrote the same file
    return bpe


def tokens_key(corpus_sha: str, tok_sha: str, data: DataConfig) -> str:
    return sha256_json({"v": FORMAT_VERSION, "corpus": corpus_sha, "tokenizer": tok_sha,
                         "val_fraction": data.val_fraction, "split_seed": data.split_seed,
                         "split": data.split, "val_tokens": data.val_tokens})[:16]


VAL_BYTES_PER_TOKEN = 8
"""Validation text first held per validation token: BPE tokens average 2-5 bytes, so this is nearly always
enough; when it is not, the held text doubles until the validation tokens are filled or the split runs out."""


def encode_validation(tok: Tokenizer, stream: Callable[[], Iterable[Document]], scan: CorpusScan, data: DataConfig,
                      dtype: str, progress: bool) -> Tuple[np.ndarray, int]:
    """(the first data.val_tokens tokens of the validation split, the validation documents encoded), holding
    only the validation text those tokens need rather than the whole split."""
    budget = VAL_BYTES_PER_TOKEN * data.val_tokens
    while True:
        val = validation_documents(stream(), scan, data.val_fraction, data.split, max_bytes=budget)
        ids = np.concatenate(list(encode_documents(tok, val, dtype, limit=data.val_tokens, progress=progress,
                                                   desc="encode val")) or [np.zeros(0, dtype)])
        # validation_documents stops early only once it holds `budget` bytes: less means the split ran out
        if len(ids) >= data.val_tokens or sum(len(d.text.encode("utf-8")) for d in val) < budget:
            return ids, len(val)
        budget *= 2


def write_token_files(out: Path, tok: Tokenizer, stream: Callable[[], Iterable[Document]], scan: CorpusScan,
                      data: DataConfig, tok_cfg: TokenizerConfig, meta: dict, progress: bool) -> None:
    """Fill the (temporary) folder `out` with val.bin, train.bin, tokenizer.json and meta.json, from fresh passes
    over the corpus (`stream()`)."""
    dtype = token_dtype(tok.vocab_size)
    # Validation first: it is small, and a too-short split should fail before encoding the train side.
    val_ids, n_val_docs = encode_validation(tok, stream, scan, data, dtype, progress)
    if len(val_ids) < data.val_tokens:
        raise DataError(f"the validation split ({n_val_docs} documents) has only {len(val_ids)} tokens, fewer than "
                        f"data.val_tokens={data.val_tokens}: lower data.val_tokens or raise data.val_fraction "
                        f"(or use a bigger corpus)")
    val_ids.tofile(out / "val.bin")
    n_train, n_train_docs, train_bytes = 0, 0, 0

    cut_inside = False

    def counted(docs: Iterable[Document]) -> Iterator[Document]:
        nonlocal n_train_docs, train_bytes, cut_inside
        for doc in docs:
            n_train_docs += 1
            cut_inside = doc.name.endswith("#train")
            train_bytes += len(doc.text.encode("utf-8"))
            yield doc

    train = counted(train_documents(stream(), scan, data.val_fraction, data.split))
    with open(out / "train.bin", "wb") as f:
        for chunk in encode_documents(tok, train, dtype, progress=progress, desc="encode train",
                                      total=int(scan.n_chars * (1 - data.val_fraction))):
            chunk.tofile(f)
            n_train += len(chunk)
    save_tokenizer(tok, out / "tokenizer.json")
    meta.update({
        "n_train_tokens": n_train,
        "n_val_tokens": int(len(val_ids)),
        "val_bytes": int(tok.token_bytes()[val_ids].sum()),
        "vocab_size": tok.vocab_size,
        "dtype": dtype,
        "tokenizer_kind": tok.kind,
        "eot_id": EOT_ID,
        "n_documents_train": n_train_docs,
        # the tail split's boundary document is on both sides
        "n_documents_val": scan.n_documents - n_train_docs + int(data.split == "tail" and cut_inside),
        "n_documents_val_used": _documents_in(val_ids),
        "train_text_bytes": train_bytes,
        "data": dataclasses.asdict(data),
        "tokenizer": dataclasses.asdict(tok_cfg),
    })
    (out / "meta.json").write_text(json.dumps(meta, indent=1))


def read_token_dir(path: Path, expect: dict) -> TokenData:
    """TokenData of a finished cache folder; DataError if its meta.json disagrees with its key."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        wrong = {k: (meta.get(k), v) for k, v in expect.items() if meta.get(k) != v}
        itemsize = np.dtype(meta["dtype"]).itemsize
        for name, n in (("train.bin", meta["n_train_tokens"]), ("val.bin", meta["n_val_tokens"])):
            size = (path / name).stat().st_size
            if size != n * itemsize:
                wrong[name] = (f"{size} bytes", f"{n * itemsize} bytes")
    except (OSError, ValueError, KeyError) as e:
        wrong = {"meta.json": f"unreadable ({type(e).__name__}: {e})"}
    if wrong:
        raise DataError(f"token cache {path} does not match its key ({wrong}): it was edited or written by "
                        f"another version; delete the folder and run again to rebuild it")
    return TokenData(dir=path, **{f.name: meta[f.name] for f in dataclasses.fields(TokenData) if f.name != "dir"})


def fingerprint_key(data: DataConfig, tokenizer: TokenizerConfig) -> Optional[str]:
    """A key for everything a token cache depends on, from file names, sizes and modification times alone
    (no file is read): the settings, and (name, size, mtime_ns) of every corpus file. None when the files
    are not known without reading (a hub corpus not yet streamed)."""
    files = source_files(data)
    if files is None:
        return None
    stats = []
    for name, path in files:
        st = path.stat()
        stats.append((name, st.st_size, st.st_mtime_ns))
    settings = {k: v for k, v in dataclasses.asdict(data).items() if k not in ("cache_dir", "allow_repeat")}
    return sha256_json({"v": FORMAT_VERSION, "data": settings, "tokenizer": dataclasses.asdict(tokenizer),
                         "files": stats})[:24]


def _cached_by_fingerprint(data: DataConfig, key: Optional[str]) -> Optional[TokenData]:
    """The token files a fingerprint points at, if both are there; reads only two small JSON files."""
    if key is None:
        return None
    link = Path(data.cache_dir).expanduser().resolve() / "fingerprints" / f"{key}.json"
    try:
        ref = json.loads(link.read_text())
        final = link.parent.parent / ref["token_dir"]
    except (OSError, ValueError, KeyError):
        return None
    if not final.is_dir():
        return None
    log.info("token cache hit by fingerprint (corpus not read): %s", final)
    return read_token_dir(final, {k: ref[k] for k in ("key", "corpus_hash", "tokenizer_hash", "n_val_tokens")})


def cached_data(data: DataConfig, tokenizer: TokenizerConfig) -> Optional[TokenData]:
    """The token files of this corpus if they are cached already; reads no corpus and downloads nothing."""
    return _cached_by_fingerprint(data, fingerprint_key(data, tokenizer))


BPE_BYTES_PER_TOKEN = 4.0
"""A byte-level BPE of a few thousand to 50k entries spends about 4 bytes of English prose (3-4 of code) per token:
the assumption behind an estimated corpus size, which `sweep plan` labels as such."""


def estimate_train_tokens(data: DataConfig, tokenizer: TokenizerConfig) -> Tuple[Optional[int], str]:
    """(train tokens, how they were estimated) without reading or downloading the corpus: its size on disk (or
    data.max_bytes for a hub corpus not yet streamed), less the validation share, over bytes per token.
    (None, why) when the size is not known without reading."""
    files = source_files(data)
    if files is not None:
        size, where = sum(path.stat().st_size for _, path in files), f"{len(files)} files on disk"
    elif data.source == "hub" and data.max_bytes:
        size, where = data.max_bytes, f"data.max_bytes of hub data set {data.path!r} (not downloaded)"
    else:
        return None, ("the corpus size is not known without reading it: set data.max_bytes, or give "
                      "launch.corpus_tokens=N")
    if data.max_bytes:
        size = min(size, data.max_bytes)
    per_token = 1.0 if tokenizer.kind == "byte" else BPE_BYTES_PER_TOKEN
    tokens = int(size * (1 - data.val_fraction) / per_token)
    return tokens, (f"estimated from {size / 1e6:.4g} MB ({where}), {100 * (1 - data.val_fraction):.0f}% train, "
                    f"{per_token:g} bytes per token{'' if tokenizer.kind == 'byte' else ' (assumed for BPE)'}")


def describe_build(data: DataConfig, tokenizer: TokenizerConfig) -> str:
    """What building this corpus's token cache will do, in words, before it is done."""
    cap = f"up to {data.max_bytes / 1e9:.3g} GB of " if data.max_bytes else "all of "
    if data.source == "hub" and source_files(data) is None:
        what = f"downloads {cap}hub data set {data.path!r}{f' ({data.hub_config})' if data.hub_config else ''}"
    else:
        files = source_files(data) or []
        what = f"reads {cap}{sum(p.stat().st_size for _, p in files) / 1e6:.3g} MB of text in {len(files)} files"
    train = f"trains a {tokenizer.vocab_size}-entry BPE, " if tokenizer.kind == "bpe" else ""
    return f"{what}, {train}and writes its token files under {data.cache_dir}"


def prepare_data(data: DataConfig, tokenizer: TokenizerConfig, progress: bool = True,
                 load_dataset: Optional[Callable] = None) -> TokenData:
    """Read, split, tokenize and encode the corpus once; later calls with the same data and tokenizer
    settings (and an unchanged corpus) return the cached token files. `load_dataset` replaces
    `datasets.load_dataset` for the hub source (tests only).

    A hit is found first by the corpus files' names, sizes and modification times (`fingerprint_key`):
    then the corpus is neither read nor hashed, and start-up costs milliseconds at any corpus size.
    A changed file changes its fingerprint; the corpus is then read and hashed, and its content hash
    decides (an untouched content finds the same token files, without re-encoding)."""
    fingerprint = fingerprint_key(data, tokenizer)
    hit = _cached_by_fingerprint(data, fingerprint)
    if hit is not None:
        return hit
    token_data = _prepare_by_content(data, tokenizer, progress, load_dataset)
    fingerprint = fingerprint or fingerprint_key(data, tokenizer)  # a hub snapshot exists now
    if fingerprint is not None:
        link = Path(data.cache_dir).expanduser().resolve() / "fingerprints" / f"{fingerprint}.json"
        write_json_atomic(link, {"token_dir": token_data.dir.name, "key": token_data.dir.name[len("tokens-"):],
                                 "corpus_hash": token_data.corpus_hash, "tokenizer_hash": token_data.tokenizer_hash,
                                 "n_val_tokens": data.val_tokens})
    return token_data


def _prepare_by_content(data: DataConfig, tokenizer: TokenizerConfig, progress: bool,
                        load_dataset: Optional[Callable]) -> TokenData:
    """Build (or find by content hash) the token files by streaming: one pass hashes the corpus and splits it,
    one trains the tokenizer when it is not cached, one or two encode. Memory holds one encoding batch and the
    validation text the fixed validation tokens need, at any corpus size."""
    def stream() -> Iterator[Document]:
        return stream_documents(data, load_dataset, progress)

    scan = scan_corpus(stream(), data.val_fraction, data.split_seed, data.split)
    if scan.n_documents == 0:
        raise empty_corpus_error(data)
    if data.split != "tail" and len(scan.val) == scan.n_documents:
        raise DataError(f"all {scan.n_documents} documents fell into the validation split: lower data.val_fraction="
                        f"{data.val_fraction}, change data.split_seed, or use a bigger corpus")
    tok = get_tokenizer(train_documents(stream(), scan, data.val_fraction, data.split), scan.corpus_hash, data,
                        tokenizer, progress)
    tok_sha = tokenizer_hash(tok)
    key = tokens_key(scan.corpus_hash, tok_sha, data)
    final = Path(data.cache_dir).expanduser().resolve() / f"tokens-{key}"  # absolute: callers may chdir
    expect = {"key": key, "corpus_hash": scan.corpus_hash, "tokenizer_hash": tok_sha, "n_val_tokens": data.val_tokens}
    if final.exists():
        log.info("token cache hit: %s", final)
        return read_token_dir(final, expect)
    log.info("encoding %d documents (%d held out for validation) into %s", scan.n_documents, len(scan.val), final)
    meta = {"format_version": FORMAT_VERSION, "key": key, "corpus_hash": scan.corpus_hash, "tokenizer_hash": tok_sha,
            "n_documents": scan.n_documents, "corpus_bytes": scan.corpus_bytes}
    write_dir_atomically(final, lambda tmp: write_token_files(tmp, tok, stream, scan, data, tokenizer, meta, progress))
    return read_token_dir(final, expect)


def load_tokenizer(token_data_or_dir: Union[TokenData, str, Path]) -> Tokenizer:
    """The tokenizer of a TokenData or token cache folder (or a tokenizer .json file): encode/decode."""
    path = Path(token_data_or_dir.dir if isinstance(token_data_or_dir, TokenData) else token_data_or_dir)
    file = path / "tokenizer.json" if path.is_dir() else path
    tok = read_tokenizer_file(file)
    if tok is None:
        raise DataError(f"no tokenizer at {file}: pass a TokenData, a token cache folder or a tokenizer .json file")
    return tok


def _documents_in(ids: np.ndarray) -> int:
    """Documents that start in a token stream: one per boundary, plus a cut-off last one."""
    n_eot = int((ids == EOT_ID).sum())
    return n_eot + int(len(ids) > 0 and ids[-1] != EOT_ID)
