"""The hub source: a `datasets` hub data set, streamed once into a local snapshot, then read offline."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Iterator, Optional

from sweep.config import DataConfig
from sweep.run.documents import DataError, Document, sha256_json, take_bytes, write_dir_atomically

log = logging.getLogger(__name__)


def hub_snapshot(data: DataConfig) -> Path:
    """The folder a hub corpus is streamed into, keyed by the load arguments, data.text_field and data.max_bytes."""
    key = sha256_json({**hub_load_kwargs(data), "text_field": data.text_field, "max_bytes": data.max_bytes})[:16]
    return Path(data.cache_dir) / f"hub-{key}"


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
    snap = hub_snapshot(data)
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

        write_dir_atomically(snap, write)
    with open(snap / "documents.jsonl", encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            yield Document(rec["name"], rec["text"])
