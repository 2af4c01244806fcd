"""Documents: the unit the corpus is read, split and encoded in, and the file reading every source shares.

Every write the pipeline makes is a folder built beside its final place and renamed into it
(`write_dir_atomically`), so a crash leaves the cache readable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

log = logging.getLogger(__name__)

READ_CHUNK_BYTES = 1 << 24
"""Bytes per read when a file is streamed (a single-file corpus, JSONL checks)."""
PARAGRAPH_BREAK = re.compile(r"(?:\r?\n){2,}")
"""Blank lines: where a single-file corpus is cut into documents."""


class DataError(ValueError):
    """The corpus or the cache cannot be used; the message names the problem and the fix."""


@dataclass(frozen=True)


class Document:
    """One unit of the document-level split."""

    name: str
    """Stable name: path relative to the corpus root (plus '#row' for records and paragraphs)."""
    text: str
    """The document's text, exactly as read."""


def read_text(path: Path) -> str:
    """A file's text, byte-exact (no newline translation); DataError for binary or non-UTF-8 files."""
    return "".join(read_text_chunks(path))


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


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def write_dir_atomically(final: Path, fill: Callable[[Path], None]) -> None:
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


class datasets_local:
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
