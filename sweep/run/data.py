"""The data pipeline: corpus -> documents -> train/validation split -> tokenizer -> token files.

Why one module of ~700 lines: every stage feeds the token cache's key (corpus files, split, tokenizer,
format), and keeping them side by side is what keeps that key complete.

`prepare_data` is the one entry point. A cache hit is found from the corpus files' names, sizes and
mtimes without reading them; otherwise it reads the corpus (its sha256 is the cache key),
splits documents into train and validation by a salted hash of their text, trains or reuses a
tokenizer on the train split, and encodes both sides once into memmapped token files under
`<data.cache_dir>/tokens-<key>/`:

    train.bin   every train document, in corpus order, each followed by the end-of-text id 0
                (`<|endoftext|>` for BPE, the NUL byte for the byte tokenizer)
    val.bin     exactly the first data.val_tokens tokens of the validation documents (ordered by
                their split hash), same layout
    tokenizer.json, meta.json

Sources (`data.source`):
    stdlib  this interpreter's standard library .py files without test suites (offline, ~12 MB)
    files   a text/JSONL file or a folder of them; .jsonl/.json through `datasets`' json builder
    hub     a `datasets` hub name, streamed once into a local snapshot under the cache dir

A cache hit stats the corpus files, reads two small JSON files and opens the memmaps: it never reads or
hashes the corpus, retrains the tokenizer or re-encodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sysconfig
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from sweep.config import DataConfig, TokenizerConfig
from sweep.store.results import write_json_atomic
from sweep.run.tokenizer import (
    EOT_ID,
    ByteTokenizer,
    Tokenizer,
    TokenizerError,
    read_tokenizer_file,
    save_tokenizer,
    tokenizer_hash,
    train_bpe,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bump when the token-file layout or the split/hash rules change: old caches then stop matching."""
STDLIB_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})
"""Folder names skipped in the standard library (test suites, installed packages, bytecode)."""
STDLIB_MACHINE_SPECIFIC = ("config-", "_sysconfigdata_")
"""Prefixes of generated build-configuration files and folders, skipped so the corpus (and its
hash) depends on the Python version only, not on the machine that built it."""
JSON_SUFFIXES = (".jsonl", ".json")
"""Files read as JSON records (one document per record); anything else is one text document."""
ENCODE_BATCH_BYTES = 1 << 18
"""Text per tokenizer batch call: big enough to keep the Rust threads busy, small enough for memory."""


class DataError(ValueError):
    """The corpus or the cache cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)
class Document:
    """One unit of the document-level split."""

    name: str
    """Stable name: path relative to the corpus root (plus '#row' for records and paragraphs)."""
    text: str
    """The document's text, exactly as read."""


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


# ---------------------------------------------------------------------------------------------
# Reading documents


def read_text(path: Path) -> str:
    """A file's text, byte-exact (no newline translation); DataError for binary or non-UTF-8 files."""
    return "".join(read_text_chunks(path))


READ_CHUNK_BYTES = 1 << 24
"""Bytes per read when a file is streamed (a single-file corpus, JSONL checks)."""
PARAGRAPH_BREAK = re.compile(r"(?:\r?\n){2,}")
"""Blank lines: where a single-file corpus is cut into documents."""


def read_text_chunks(path: Path, chunk_bytes: Optional[int] = None) -> Iterator[str]:
    """A file's text in pieces, byte-exact, never the whole file in memory; the same DataError as read_text
    (naming the file and the offset) for binary or non-UTF-8 input."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, chunk_bytes = 0, chunk_bytes or READ_CHUNK_BYTES
    with open(path, "rb") as f:
        while True:
            raw = f.read(chunk_bytes)
            # NUL never occurs in text files, and it is the byte tokenizer's end-of-text id.
            nul = raw.find(b"\0")
            if nul >= 0:
                raise DataError(f"{path} looks binary (NUL byte at offset {offset + nul}): remove it from the corpus "
                                f"folder (data.path) or point data.path at text files only")
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                pending = len(e.object) - len(raw)  # bytes of a character the previous piece left unfinished
                raise DataError(f"{path} is not UTF-8 text (invalid byte at offset {offset + e.start - pending}): "
                                f"remove it from the corpus or convert it to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
                                ) from None
            if text:
                yield text
            if not raw:
                return
            offset += len(raw)


def take_bytes(docs: Iterable[Document], max_bytes: Optional[int]) -> Iterator[Document]:
    """The longest prefix of `docs` whose UTF-8 size is at most `max_bytes` (whole documents), lazily."""
    total = 0
    for doc in docs:
        if max_bytes is not None:
            total += len(doc.text.encode("utf-8"))
            if total > max_bytes:
                return
        yield doc


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Optional[Path] = None) -> List[Tuple[str, Path]]:
    """(relative posix name, path) of the standard library's .py files, sorted by name; test suites and
    machine-specific build configuration excluded."""
    root = root or stdlib_root()
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in STDLIB_EXCLUDED_DIRS and not d.startswith(STDLIB_MACHINE_SPECIFIC)]
        for f in filenames:
            if f.endswith(".py") and not f.startswith(STDLIB_MACHINE_SPECIFIC):
                path = Path(dirpath) / f
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def stdlib_documents() -> Iterator[Document]:
    """One document per standard library source file; empty files (many __init__.py) carry nothing and are skipped."""
    for name, path in stdlib_files():
        text = read_text(path)
        if text:
            yield Document(name, text)


def corpus_files(path: Path) -> List[Tuple[str, Path]]:
    """(relative posix name, path) of the files under `path` (or `path` itself), sorted; hidden files skipped."""
    if path.is_file():
        return [(path.name, path)]
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        for f in filenames:
            if not f.startswith("."):
                p = Path(dirpath) / f
                found.append((p.relative_to(path).as_posix(), p))
    return sorted(found)


def paragraphs(name: str, chunks: Iterable[str]) -> Iterator[Document]:
    """Split a text, given in pieces, at blank lines into documents named name#i (empty pieces dropped): the
    documents `PARAGRAPH_BREAK.split` of the whole text gives, without ever holding the whole text.

    Only the part of the buffer before its trailing newlines is split: a break ending there is followed by
    other text, so no later piece can extend it, and the text after the last break carries over."""
    i, rest = 0, ""
    for chunk in chunks:
        buffer = rest + chunk
        cut = len(buffer.rstrip("\r\n"))
        pieces = PARAGRAPH_BREAK.split(buffer[:cut])
        for piece in pieces[:-1]:
            if piece.strip():
                yield Document(f"{name}#{i}", piece)
            i += 1
        rest = pieces[-1] + buffer[cut:]
    for piece in PARAGRAPH_BREAK.split(rest):
        if piece.strip():
            yield Document(f"{name}#{i}", piece)
        i += 1


def json_documents(path: Path, name: str, text_field: str, hf_cache_dir: Path) -> Iterator[Document]:
    """One document per record of a JSON Lines (or JSON array) file, read by `datasets`' json builder."""
    for _ in read_text_chunks(path):  # fail early, naming the file, on binary or non-UTF-8 input
        pass
    import datasets

    try:
        with _datasets_local(datasets):
            ds = datasets.load_dataset("json", data_files=[str(path)], split="train", cache_dir=str(hf_cache_dir))
    except Exception as e:  # the json builder raises several pyarrow/json error types
        raise DataError(f"could not read {path} as JSON Lines ({type(e).__name__}: {e}); fix or remove the file") from None
    if text_field not in ds.column_names:
        raise DataError(f"{path} has no column data.text_field={text_field!r}; its columns are "
                        f"{ds.column_names}: set data.text_field to the one holding the text")
    # Record batches from the memory-mapped Arrow cache: the column is never a Python list of the whole file.
    texts = (text for batch in ds.iter(batch_size=1024) for text in batch[text_field])
    for i, text in enumerate(texts):
        if text is None or not isinstance(text, str):
            raise DataError(f"{path} record {i}: {text_field!r} is {type(text).__name__}, not a string; "
                            f"fix the record or set data.text_field")
        if "\0" in text:
            raise DataError(f"{path} record {i} contains a NUL character (binary data?); remove the record")
        if text:
            yield Document(f"{name}#{i}", text)


def file_documents(data: DataConfig) -> Iterator[Document]:
    """Documents of a local file or folder: one per text file, one per JSON record.

    A corpus that is a single text file is split at blank lines instead, because a
    document-level split needs many documents.
    """
    root = Path(data.path).expanduser()
    if not root.exists():
        raise DataError(f"data.path={data.path!r} does not exist (resolved to {root.resolve()}); "
                        f"point it at a text/JSONL file or a folder of them")
    files = corpus_files(root)
    hf_cache = Path(data.cache_dir) / "hf-datasets"
    for name, path in files:
        if path.suffix.lower() in JSON_SUFFIXES:
            yield from json_documents(path, name, data.text_field, hf_cache)
        elif len(files) == 1 and data.split == "documents":
            yield from paragraphs(name, read_text_chunks(path))
        else:
            text = read_text(path)
            if text:
                yield Document(name, text)


def hub_load_kwargs(data: DataConfig) -> dict:
    """Arguments of the `datasets.load_dataset` call that streams a hub data set."""
    return {"path": data.path, "name": data.hub_config, "split": data.hub_split, "streaming": True}


def stream_hub_documents(data: DataConfig, load_dataset: Callable) -> Iterator[Document]:
    """Stream the hub data set's records as documents named by their index (the stream order is the
    hub's file order, fixed for a given revision). `load_dataset` is `datasets.load_dataset`, passed in
    so tests can hand a fake loader (the one mock: there is no network in tests)."""
    kwargs = hub_load_kwargs(data)
    try:
        records = load_dataset(**kwargs)
    except Exception as e:
        raise DataError(f"could not stream {data.path!r} (data.hub_config={data.hub_config!r}, "
                        f"data.hub_split={data.hub_split!r}) from the hub: {type(e).__name__}: {e}. "
                        f"Check the names and the network (HF_DATASETS_OFFLINE must be unset)") from None
    for i, record in enumerate(records):
        text = record.get(data.text_field)
        if not isinstance(text, str):
            raise DataError(f"{data.path!r} record {i} has no string column data.text_field={data.text_field!r}; "
                            f"its columns are {sorted(record)}: set data.text_field")
        if text:
            yield Document(str(i), text)


def hub_documents(data: DataConfig, load_dataset: Optional[Callable] = None, progress: bool = False) -> Iterator[Document]:
    """Hub documents from a local snapshot, streamed from the hub (once) into the snapshot if missing.

    The snapshot is keyed by the load arguments, data.text_field and data.max_bytes, so later runs
    work offline; delete `<cache_dir>/hub-*` to fetch a newer revision.
    """
    key = _sha256_json({**hub_load_kwargs(data), "text_field": data.text_field, "max_bytes": data.max_bytes})[:16]
    snap = Path(data.cache_dir) / f"hub-{key}"
    if not (snap / "documents.jsonl").is_file():
        if load_dataset is None:
            import datasets

            load_dataset = datasets.load_dataset
        log.info("streaming %s from the hub into %s", data.path, snap)

        def write(tmp: Path) -> None:
            from tqdm import tqdm

            with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f, \
                    tqdm(total=data.max_bytes, unit="B", unit_scale=True, desc="stream", disable=not progress) as bar:
                for doc in take_bytes(stream_hub_documents(data, load_dataset), data.max_bytes):
                    f.write(json.dumps({"name": doc.name, "text": doc.text}, ensure_ascii=False) + "\n")
                    bar.update(len(doc.text.encode("utf-8")))
            (tmp / "source.json").write_text(json.dumps(hub_load_kwargs(data), indent=1))

        _write_dir_atomically(snap, write)
    with open(snap / "documents.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            yield Document(rec["name"], rec["text"])


def stream_documents(data: DataConfig, load_dataset: Optional[Callable] = None,
                     progress: bool = False) -> Iterator[Document]:
    """One pass over the configured corpus's documents, in corpus order, capped at data.max_bytes. Each call
    reads the corpus again: the pipeline makes a few passes rather than hold the corpus in memory."""
    if data.source == "stdlib":
        docs = stdlib_documents()
    elif data.source == "files":
        if not data.path:
            raise DataError("data.path is required when data.source='files'")
        docs = file_documents(data)
    elif data.source == "hub":
        if not data.path:
            raise DataError("data.path (the hub data set name) is required when data.source='hub'")
        docs = hub_documents(data, load_dataset, progress)
    else:
        raise DataError(f"data.source={data.source!r}: must be 'stdlib', 'files' or 'hub'")
    return take_bytes(docs, data.max_bytes)


def describe_source(data: DataConfig) -> str:
    if data.source == "stdlib":
        return f"the standard library at {stdlib_root()}"
    return f"data.path={data.path!r}" if data.source == "files" else f"hub data set {data.path!r}"


def empty_corpus_error(data: DataConfig) -> DataError:
    hint = f" (data.max_bytes={data.max_bytes} is smaller than the first document)" if data.max_bytes else ""
    return DataError(f"the corpus is empty: no non-empty documents in {describe_source(data)}{hint}; "
                     f"point data.path at text, or raise data.max_bytes")


def load_documents(data: DataConfig, load_dataset: Optional[Callable] = None, progress: bool = False) -> List[Document]:
    """All documents of the configured corpus as a list (small corpora, tests); the pipeline streams instead."""
    out = list(stream_documents(data, load_dataset, progress))
    if not out:
        raise empty_corpus_error(data)
    return out


# ---------------------------------------------------------------------------------------------
# Hashing and the train/validation split


def corpus_hash(docs: Iterable[Document]) -> str:
    """sha256 over document names and texts, in order (length-prefixed, so the framing is unambiguous)."""
    return scan_corpus(docs, 0.5, 0, how="tail").corpus_hash


def split_value(doc: Document, split_seed: int) -> float:
    """Salted hash of the document's text as a number in [0, 1).

    Hashing the text (not its position or name) makes the split independent of file order and of
    the machine, and puts exact duplicates on the same side, so they cannot leak into validation.
    """
    return _split_value(doc.text.encode("utf-8"), split_seed)


def _split_value(text: bytes, split_seed: int) -> float:
    digest = hashlib.sha256(b"%d\0" % split_seed + text).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class CorpusScan:
    """What one streaming pass over the corpus learns: its hash and sizes, and which documents are validation."""

    corpus_hash: str
    """sha256 over document names and texts (corpus_hash)."""
    n_documents: int
    corpus_bytes: int
    """UTF-8 bytes of all documents."""
    n_chars: int
    """Characters of all documents (the tail split cuts by characters)."""
    val: List[Tuple[float, int, int]]
    """'documents' split: (split value, document index, UTF-8 bytes) of each validation document, in split
    value order (ties in corpus order). 'tail' split: empty (validation is what follows the cut)."""


def scan_corpus(docs: Iterable[Document], val_fraction: float, split_seed: int, how: str = "documents") -> CorpusScan:
    """One pass: the corpus hash, its sizes and the document split; holds one document at a time and 24
    bytes per validation document."""
    h = hashlib.sha256(b"sweep-corpus-v1\n")
    n, n_bytes, n_chars, val = 0, 0, 0, []
    for i, doc in enumerate(docs):
        name, text = doc.name.encode("utf-8"), doc.text.encode("utf-8")
        h.update(b"%d %d\n" % (len(name), len(text)))
        h.update(name)
        h.update(text)
        n, n_bytes, n_chars = n + 1, n_bytes + len(text), n_chars + len(doc.text)
        if how != "tail":
            v = _split_value(text, split_seed)  # the bytes the hash above just encoded
            if v < val_fraction:
                val.append((v, i, len(text)))
    val.sort(key=lambda p: p[0])
    return CorpusScan(h.hexdigest(), n, n_bytes, n_chars, val)


def train_documents(docs: Iterable[Document], scan: CorpusScan, val_fraction: float, how: str = "documents"
                    ) -> Iterator[Document]:
    """The train side of the split, in corpus order, from a fresh pass over the corpus."""
    if how == "tail":
        # nanoGPT's split: the first (1 - val_fraction) of the characters, the boundary document cut inside
        limit, seen = int((1.0 - val_fraction) * scan.n_chars), 0
        for doc in docs:
            if seen + len(doc.text) > limit:
                if limit > seen:
                    yield Document(f"{doc.name}#train", doc.text[:limit - seen])
                return
            seen += len(doc.text)
            yield doc
        return
    held_out = {i for _, i, _ in scan.val}
    for i, doc in enumerate(docs):
        if i not in held_out:
            yield doc


def validation_documents(docs: Iterable[Document], scan: CorpusScan, val_fraction: float, how: str = "documents",
                         max_bytes: Optional[int] = None) -> List[Document]:
    """The validation side in its order (split value, or corpus order for 'tail'), from a fresh pass, keeping
    only the first documents that reach `max_bytes` (all of them when None): the fixed validation tokens are
    a prefix of this order, so the rest of a large validation split need not be held."""
    if how == "tail":
        limit, seen, out, size = int((1.0 - val_fraction) * scan.n_chars), 0, [], 0
        for doc in docs:
            if max_bytes is not None and size >= max_bytes:
                break
            end = seen + len(doc.text)
            if end > limit:  # the document holding the cut gives its end; the ones after it are whole
                piece = doc if seen >= limit else Document(f"{doc.name}#val", doc.text[limit - seen:])
                out.append(piece)
                size += len(piece.text.encode("utf-8"))
            seen = end
        return out
    chosen, size = {}, 0
    for rank, (_, i, n_bytes) in enumerate(scan.val):
        if max_bytes is not None and size >= max_bytes:
            break
        chosen[i], size = rank, size + n_bytes
    picked = [(chosen[i], doc) for i, doc in enumerate(docs) if i in chosen]
    return [doc for _, doc in sorted(picked, key=lambda p: p[0])]


def split_documents(docs: List[Document], val_fraction: float, split_seed: int,
                    how: str = "documents") -> Tuple[List[Document], List[Document]]:
    """(train, validation) of a list of documents: train in corpus order, validation in order of split value
    ('documents') or the last val_fraction of the characters in corpus order ('tail', nanoGPT's split).

    Ordering validation by its hash spreads the fixed validation tokens (a prefix of that order)
    over the whole corpus rather than its first files, and makes that prefix the same for any
    val_fraction large enough to hold it.
    """
    scan = scan_corpus(docs, val_fraction, split_seed, how)
    return (list(train_documents(docs, scan, val_fraction, how)),
            validation_documents(docs, scan, val_fraction, how))


# ---------------------------------------------------------------------------------------------
# Tokenizer (trained on the train split, cached by corpus hash and settings)


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
    key = _sha256_json({"v": FORMAT_VERSION, "corpus": corpus_sha, "tokenizer": dataclasses.asdict(tok),
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


# ---------------------------------------------------------------------------------------------
# Encoding to token files


def token_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 2**16 else "uint32"


PIECE_BOUNDARY = re.compile(r"(?<=[!-~])(?=\n)")
"""Where a long document is cut for encoding: before a newline that follows a visible ASCII character. No
byte-level pre-token runs from a non-space character into whitespace, and the whitespace that follows is
split the same way whatever came before it, so encoding the pieces gives exactly the ids of encoding the
whole document. (A cut after the newline would not do: a run of whitespace ends differently at the end of
a piece than before more text.)"""


def pieces(text: str, size: int) -> Iterator[Tuple[str, bool]]:
    """(piece, is the document's last) for a text cut at PIECE_BOUNDARY into pieces of about `size` characters
    (longer when no boundary is near): a multi-megabyte document never goes to the tokenizer whole, where its
    per-token strings and offsets would take hundreds of megabytes."""
    start = 0
    while len(text) - start > size:
        cut = PIECE_BOUNDARY.search(text, start + size)
        if cut is None:
            break
        yield text[start:cut.end()], False
        start = cut.end()
    yield text[start:], True


def encode_documents(tok: Tokenizer, docs: Iterable[Document], dtype: str, limit: Optional[int] = None,
                     progress: bool = False, desc: str = "", total: Optional[int] = None) -> Iterator[np.ndarray]:
    """Token chunks of `docs`, each document followed by the end-of-text id, stopping after `limit` tokens;
    text goes to the tokenizer in batches of ~ENCODE_BATCH_BYTES, and no document is ever encoded whole when
    it is longer (`total`: characters, for the bar)."""
    from tqdm import tqdm

    eot = np.array([EOT_ID], dtype=dtype)
    done = 0
    parts = ((piece, last) for doc in docs for piece, last in pieces(doc.text, ENCODE_BATCH_BYTES))
    with tqdm(total=total, unit="char", unit_scale=True, desc=desc, disable=not progress) as bar:
        batch, ends, size = [], [], 0
        while True:
            part = next(parts, None)
            if part is not None:
                batch.append(part[0])
                ends.append(part[1])
                size += len(part[0])
                if size < ENCODE_BATCH_BYTES:
                    continue
            if not batch:
                return
            out = []
            for ids, last in zip(tok.encode_batch(batch), ends):
                out.append(np.asarray(ids, dtype=dtype))
                if last:
                    out.append(eot)
            chunk = np.concatenate(out)
            bar.update(size)
            batch, ends, size = [], [], 0
            if limit is not None and done + len(chunk) >= limit:
                yield chunk[: limit - done]
                return
            done += len(chunk)
            yield chunk
            if part is None:
                return


def tokens_key(corpus_sha: str, tok_sha: str, data: DataConfig) -> str:
    return _sha256_json({"v": FORMAT_VERSION, "corpus": corpus_sha, "tokenizer": tok_sha,
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


def source_files(data: DataConfig) -> Optional[List[Tuple[str, Path]]]:
    """The files the corpus is read from (for the hub: its local snapshot), or None when unknown yet."""
    if data.source == "stdlib":
        return stdlib_files()
    if data.source == "files" and data.path and Path(data.path).expanduser().exists():
        return corpus_files(Path(data.path).expanduser())
    if data.source == "hub" and data.path:
        key = _sha256_json({**hub_load_kwargs(data), "text_field": data.text_field, "max_bytes": data.max_bytes})[:16]
        snap = Path(data.cache_dir) / f"hub-{key}" / "documents.jsonl"
        return [("documents.jsonl", snap)] if snap.is_file() else None
    return None


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
    return _sha256_json({"v": FORMAT_VERSION, "data": settings, "tokenizer": dataclasses.asdict(tokenizer),
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
    _write_dir_atomically(final, lambda tmp: write_token_files(tmp, tok, stream, scan, data, tokenizer, meta, progress))
    return read_token_dir(final, expect)


def load_tokenizer(token_data_or_dir: Union[TokenData, str, Path]) -> Tokenizer:
    """The tokenizer of a TokenData or token cache folder (or a tokenizer .json file): encode/decode."""
    path = Path(token_data_or_dir.dir if isinstance(token_data_or_dir, TokenData) else token_data_or_dir)
    file = path / "tokenizer.json" if path.is_dir() else path
    tok = read_tokenizer_file(file)
    if tok is None:
        raise DataError(f"no tokenizer at {file}: pass a TokenData, a token cache folder or a tokenizer .json file")
    return tok


# ---------------------------------------------------------------------------------------------
# Helpers


def _documents_in(ids: np.ndarray) -> int:
    """Documents that start in a token stream: one per boundary, plus a cut-off last one."""
    n_eot = int((ids == EOT_ID).sum())
    return n_eot + int(len(ids) > 0 and ids[-1] != EOT_ID)


def _sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def _write_dir_atomically(final: Path, fill: Callable[[Path], None]) -> None:
    """Build a folder in a temporary sibling, then rename it into place.

    A crash leaves only a `.tmp-*` folder (never read, safe to delete). If another process renamed
    its folder first, ours is discarded and theirs is used: both were built from the same inputs.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        fill(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            log.info("another process wrote %s first; using it", final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class _datasets_local:
    """For one `datasets` call on local files: offline mode and no progress bars, restored afterwards.

    Local files need no network; forcing offline mode for the call guarantees that no hub lookup
    can stall a machine without internet, and leaves the user's environment untouched.
    """

    def __init__(self, datasets):
        self.datasets = datasets

    def __enter__(self):
        self.was_offline = self.datasets.config.HF_HUB_OFFLINE
        self.had_bars = self.datasets.is_progress_bar_enabled()
        self.datasets.config.HF_HUB_OFFLINE = True
        self.datasets.disable_progress_bars()

    def __exit__(self, *exc):
        self.datasets.config.HF_HUB_OFFLINE = self.was_offline
        if self.had_bars:
            self.datasets.enable_progress_bars()
