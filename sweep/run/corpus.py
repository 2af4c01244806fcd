"""Corpus sources: where a corpus's documents come from, read one pass at a time (`stream_documents`).

Sources (`data.source`):
    stdlib   this interpreter's standard library .py files without test suites (offline, ~12 MB)
    python   the stdlib plus the .py files of the installed packages (site-packages) without test suites:
             offline after the install; conf/data/python.yaml lists the packages (~120 MB: torch, sympy, scipy, ...)
    files    a text/JSONL file or a folder of them; .jsonl/.json through `datasets`' json builder
    hub      a `datasets` hub name, streamed once into a local snapshot under the cache dir (hub.py)
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

from sweep.config import DataConfig
from sweep.run.documents import (DataError, Document, datasets_local, paragraphs, read_text, read_text_chunks,
                                 take_bytes)
from sweep.run.hub import hub_documents, hub_snapshot

SOURCES = ("stdlib", "python", "files", "hub")

STDLIB_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})
"""Folder names skipped in the standard library (test suites, installed packages, bytecode)."""
STDLIB_MACHINE_SPECIFIC = ("config-", "_sysconfigdata_")
"""Prefixes of generated build-configuration files and folders, skipped so the corpus (and its
hash) depends on the Python version only, not on the machine that built it."""
JSON_SUFFIXES = (".jsonl", ".json")
"""Files read as JSON records (one document per record); anything else is one text document."""


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

SITE_PACKAGES_EXCLUDED_DIRS = STDLIB_EXCLUDED_DIRS | {"testing", "sweep"}
"""Folder names skipped in site-packages: test suites and fixtures, bytecode, and this package (a non-editable
install would otherwise train on the code that trains it)."""


def site_packages_root() -> Path:
    """This interpreter's site-packages (its pure-Python library folder)."""
    return Path(sysconfig.get_paths()["purelib"])


def python_files(site_packages: Optional[Path] = None, packages: Optional[List[str]] = None) -> List[Tuple[str, Path]]:
    """The `python` source's files: the stdlib's as 'stdlib/<name>', then site-packages' .py files as
    'site-packages/<name>', each part sorted; test suites, bytecode and metadata folders skipped. `packages`
    keeps only those top-level names (a folder or a module file); a listed one that is not installed is an error."""
    site = Path(site_packages).expanduser() if site_packages else site_packages_root()
    if not site.is_dir():
        raise DataError(f"data.path={str(site)!r}: no such folder; for data.source=python it names the site-packages "
                        f"folder to read (leave it empty for this interpreter's)")
    if packages is not None:
        missing = [p for p in packages if not (site / p).is_dir() and not (site / f"{p}.py").is_file()]
        if missing:
            raise DataError(f"data.packages: {missing} not installed in {site}; install them, drop them from "
                            f"data.packages, or set data.packages=null to read every installed package")
    keep = None if packages is None else set(packages)
    found = []
    for dirpath, dirnames, filenames in os.walk(site):
        top = Path(dirpath) == site
        dirnames[:] = sorted(d for d in dirnames if d not in SITE_PACKAGES_EXCLUDED_DIRS and not d.startswith(".")
                             and not d.endswith((".dist-info", ".egg-info")) and (not top or keep is None or d in keep))
        if top and keep is not None:
            filenames = [f for f in filenames if f[:-3] in keep]
        for f in filenames:
            if f.endswith(".py"):
                path = Path(dirpath) / f
                found.append(("site-packages/" + path.relative_to(site).as_posix(), path))
    return [("stdlib/" + name, path) for name, path in stdlib_files()] + sorted(found)


def package_versions(site_packages: Optional[Path] = None, packages: Optional[List[str]] = None) -> dict:
    """{top-level name: version} of the installed distributions the `python` source reads (`packages`, or every
    one), from their metadata in `site_packages`: what decides that corpus's content besides the Python version,
    so that a changed corpus can be traced to the upgrade that changed it. Names without metadata are left out."""
    import importlib.metadata as md

    site = Path(site_packages).expanduser() if site_packages else site_packages_root()
    keep = None if packages is None else set(packages)
    out = {}
    for dist in md.distributions(path=[str(site)]):
        tops = (dist.read_text("top_level.txt") or "").split() or sorted(
            {f.parts[0].removesuffix(".py") for f in dist.files or () if f.parts and not f.parts[0].endswith(
                (".dist-info", ".egg-info", ".data")) and f.parts[0] != ".."})
        for top in tops:
            if keep is None or top in keep:
                out.setdefault(top, dist.version)
    return dict(sorted(out.items()))


def python_documents(site_packages: Optional[Path] = None, packages: Optional[List[str]] = None
                     ) -> Iterator[Document]:
    """One document per file of `python_files`; empty files skipped."""
    for name, path in python_files(site_packages, packages):
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


def json_documents(path: Path, name: str, text_field: str, hf_cache_dir: Path) -> Iterator[Document]:
    """One document per record of a JSON Lines (or JSON array) file, read by `datasets`' json builder."""
    for _ in read_text_chunks(path):  # fail early, naming the file, on binary or non-UTF-8 input
        pass
    import datasets

    try:
        with datasets_local(datasets):
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


PACKAGE_PREFIX = "pkg:"
"""data.path=pkg:<file> names a corpus shipped in sweep/corpora/: the same path (and run ids) in every install."""


def resolve_path(path: str) -> Path:
    """data.path as a local path: `pkg:<file>` in the package's corpora folder, `~` expanded."""
    if path.startswith(PACKAGE_PREFIX):
        return Path(__file__).resolve().parents[1] / "corpora" / path[len(PACKAGE_PREFIX):]
    return Path(path).expanduser()


def file_documents(data: DataConfig) -> Iterator[Document]:
    """Documents of a local file or folder: one per text file, one per JSON record.

    A corpus that is a single text file is split at blank lines instead, because a
    document-level split needs many documents.
    """
    root = resolve_path(data.path)
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


def stream_documents(data: DataConfig, load_dataset: Optional[Callable] = None,
                     progress: bool = False) -> Iterator[Document]:
    """One pass over the configured corpus's documents, in corpus order, capped at data.max_bytes. Each call
    reads the corpus again: the pipeline makes a few passes rather than hold the corpus in memory."""
    if data.source == "stdlib":
        docs = stdlib_documents()
    elif data.source == "python":
        docs = python_documents(Path(data.path) if data.path else None, data.packages)
    elif data.source == "files":
        if not data.path:
            raise DataError("data.path is required when data.source='files'")
        docs = file_documents(data)
    elif data.source == "hub":
        if not data.path:
            raise DataError("data.path (the hub data set name) is required when data.source='hub'")
        docs = hub_documents(data, load_dataset, progress)
    else:
        raise DataError(f"data.source={data.source!r}: must be one of {', '.join(map(repr, SOURCES))}")
    return take_bytes(docs, data.max_bytes)


def describe_source(data: DataConfig) -> str:
    if data.source == "stdlib":
        return f"the standard library at {stdlib_root()}"
    if data.source == "python":
        return f"the standard library at {stdlib_root()} and the packages in {data.path or site_packages_root()}"
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


def source_files(data: DataConfig) -> Optional[List[Tuple[str, Path]]]:
    """The files the corpus is read from (for the hub: its local snapshot), or None when unknown yet."""
    if data.source == "stdlib":
        return stdlib_files()
    if data.source == "python":
        return python_files(Path(data.path) if data.path else None, data.packages)
    if data.source == "files" and data.path and resolve_path(data.path).exists():
        return corpus_files(resolve_path(data.path))
    if data.source == "hub" and data.path:
        snap = hub_snapshot(data) / "documents.jsonl"
        return [("documents.jsonl", snap)] if snap.is_file() else None
    return None
