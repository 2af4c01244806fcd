"""Text to token ids in bounded memory: batches of about ENCODE_BATCH_BYTES, long documents cut where the ids
do not change."""

from __future__ import annotations

import re
from typing import Iterable, Iterator, Optional, Tuple

import numpy as np

from sweep.run.documents import Document
from sweep.run.tokenizer import EOT_ID, Tokenizer

ENCODE_BATCH_BYTES = 1 << 18
"""Text per tokenizer batch call: big enough to keep the Rust threads busy, small enough for memory."""


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
