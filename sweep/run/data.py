"""The data pipeline's entry points: corpus -> documents -> train/validation split -> tokenizer -> token files.

`prepare_data` is the one call a run makes. Each stage is its own module:

    corpus.py       where documents come from (data.source: stdlib, python, files, hub; hub.py streams the hub)
    documents.py    the Document, reading files in pieces, atomic folder writes
    split.py        the corpus hash and the document-level train/validation split, in one pass
    encode.py       text to token ids in bounded memory
    token_cache.py  the memmapped token files, their key, and the cache hit that reads no corpus
    batches.py      the windows a run reads from the token files

This module only re-exports the names callers use, so `from sweep.run.data import prepare_data` keeps working.
"""

from sweep.run.corpus import (SOURCES, STDLIB_EXCLUDED_DIRS, describe_source, load_documents, python_files,
                              source_files, stdlib_files, stream_documents)
from sweep.run.documents import DataError, Document, paragraphs, write_dir_atomically
from sweep.run.encode import pieces, token_dtype
from sweep.run.hub import hub_load_kwargs
from sweep.run.split import corpus_hash, split_documents
from sweep.run.token_cache import (TokenData, bits_per_byte, cached_data, describe_build, estimate_train_tokens,
                                   load_tokenizer, prepare_data)

__all__ = [
    "SOURCES", "STDLIB_EXCLUDED_DIRS", "DataError", "Document", "TokenData", "bits_per_byte", "cached_data",
    "corpus_hash", "describe_build", "describe_source", "estimate_train_tokens", "hub_load_kwargs", "load_documents", "load_tokenizer", "paragraphs", "pieces", "prepare_data",
    "python_files", "source_files", "split_documents", "stdlib_files", "stream_documents", "token_dtype",
    "write_dir_atomically",
]
