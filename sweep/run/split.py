"""The corpus hash and the train/validation split, made in one streaming pass over the documents.

Documents go to validation by a salted hash of their text, so the split does not depend on file order or
machine, and exact duplicates land on the same side.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Tuple

from sweep.run.documents import Document


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
