"""Read W&B runs recorded offline, without the network and without wandb's own reader.

A run folder `<dir>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>[-<n>]/` holds `run-<id>.wandb`,
the run's transaction log: every config, history, summary and exit record, in order. The file
is a LevelDB-style log (as written by wandb-core 0.31):

- a 7-byte file header: b":W&B", magic 0xBEE1 (uint16 LE), version 0 (uint8);
- then 32 KiB blocks (the file header counts towards the first block), each a run of chunks
  with a 7-byte header: CRC-32 (uint32 LE, zlib/IEEE, over the type byte then the payload),
  payload length (uint16 LE), type (1 FULL, 2 FIRST, 3 MIDDLE, 4 LAST);
- a block tail shorter than a chunk header is zero padding;
- a record is one FULL chunk or FIRST + MIDDLE* + LAST, and parses as
  `wandb.proto.wandb_internal_pb2.Record`.

A run still being written, or killed, ends in a partial chunk; reading stops before it.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Iterator, Optional

FILE_HEADER = struct.Struct("<4sHB")
FILE_IDENT, FILE_MAGIC, FILE_VERSION = b":W&B", 0xBEE1, 0
CHUNK_HEADER = struct.Struct("<IHB")
BLOCK_SIZE = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}


class OfflineRunError(ValueError):
    """A run folder or .wandb file is missing or not in the expected format."""


def iter_record_bytes(path: Path) -> Iterator[bytes]:
    """Serialized records of a .wandb log, in order; stops quietly at a truncated tail."""
    data = Path(path).read_bytes()
    if len(data) < FILE_HEADER.size:
        raise OfflineRunError(f"{path}: {len(data)} bytes, too short for a W&B log header")
    ident, magic, version = FILE_HEADER.unpack_from(data)
    if ident != FILE_IDENT or magic != FILE_MAGIC or version != FILE_VERSION:
        raise OfflineRunError(f"{path}: header {ident!r}/{magic:#x}/v{version} is not a W&B "
                              f"version-{FILE_VERSION} log (a newer wandb may have changed the format)")
    pos, parts = FILE_HEADER.size, None
    while True:
        left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
        if left_in_block < CHUNK_HEADER.size:
            pos += left_in_block
            continue
        if pos + CHUNK_HEADER.size > len(data):
            return
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        if crc == 0 and length == 0 and kind == 0:  # zero-filled rest of a block
            pos += left_in_block
            continue
        start, end = pos + CHUNK_HEADER.size, pos + CHUNK_HEADER.size + length
        if end > len(data):
            return  # partial chunk: the writer had not flushed it (yet)
        if kind not in _TYPE_CRC or length > left_in_block - CHUNK_HEADER.size:
            raise OfflineRunError(f"{path}: bad chunk (type {kind}, length {length}) at byte {pos}")
        payload = data[start:end]
        if zlib.crc32(payload, _TYPE_CRC[kind]) != crc:
            raise OfflineRunError(f"{path}: checksum mismatch in chunk at byte {pos}")
        pos = end
        if kind == FULL:
            parts = None
            yield payload
        elif kind == FIRST:
            parts = [payload]
        elif parts is not None:  # MIDDLE/LAST without FIRST: skip the orphan
            parts.append(payload)
            if kind == LAST:
                yield b"".join(parts)
                parts = None


def iter_records(path: Path) -> Iterator[Any]:
    """Parsed `Record` protos of a .wandb log, in order."""
    from wandb.proto import wandb_internal_pb2

    for raw in iter_record_bytes(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        yield record


def last_record_type(path: Path) -> Optional[str]:
    """Kind of the last complete record ('exit' once a run has finished), None if there is none."""
    from wandb.proto import wandb_internal_pb2

    last = None
    for last in iter_record_bytes(path):
        pass
    if last is None:
        return None
    record = wandb_internal_pb2.Record()
    record.ParseFromString(last)
    return record.WhichOneof("record_type")


def _decode(value_json: str) -> Any:
    return json.loads(value_json) if value_json else None


def _path(item: Any) -> list[str]:
    return list(item.nested_key) if item.nested_key else [item.key]


def _set(target: dict, path: list[str], value: Any) -> None:
    for key in path[:-1]:
        node = target.get(key)
        if not isinstance(node, dict):
            node = target[key] = {}
        target = node
    target[path[-1]] = value


def _remove(target: dict, path: list[str]) -> None:
    for key in path[:-1]:
        target = target.get(key)
        if not isinstance(target, dict):
            return
    target.pop(path[-1], None)


def _apply(target: dict, record: Any) -> None:
    """Apply a ConfigRecord or SummaryRecord (update + remove items) to `target`."""
    for item in record.update:
        _set(target, _path(item), _decode(item.value_json))
    for item in record.remove:
        _remove(target, _path(item))


def _history_row(record: Any) -> dict:
    row: dict = {}
    for item in record.item:
        _set(row, _path(item), _decode(item.value_json))
    return row


def run_log_path(run_dir: Path) -> Path:
    """The run-<id>.wandb file of a run folder."""
    logs = sorted(Path(run_dir).glob("run-*.wandb"))
    if len(logs) != 1:
        raise OfflineRunError(f"{run_dir}: expected one run-<id>.wandb file, found {len(logs)} "
                              f"({', '.join(p.name for p in logs) or 'none'}); is this a W&B run folder?")
    return logs[0]


def find_offline_runs(dir: Path, run_id: Optional[str] = None) -> list[Path]:
    """offline-run-* folders holding a .wandb log below `dir`, oldest first; optionally of one run id."""
    runs = [p for p in Path(dir).glob("**/offline-run-*") if p.is_dir() and not p.is_symlink()]
    if run_id is not None:
        runs = [p for p in runs if (p / f"run-{run_id}.wandb").is_file()]
    else:
        runs = [p for p in runs if any(p.glob("run-*.wandb"))]
    # Folder names start with the start time, so name order is time order (the -<n> suffix
    # wandb adds for a second start within one second also sorts after the first).
    return sorted(runs, key=lambda p: (p.name.split("-")[2], p.name, str(p)))


def settle(path: Path, wait: float = 30.0, quiet: float = 5.0) -> None:
    """Wait until a run's log ends with its exit record, or has not grown for `quiet` seconds, at most `wait`
    seconds: wandb's finish() can return before its service has written the run's last records, and a reader right
    after would see a log cut short (no run record yet, or no exit). A crashed run's log stops growing and is read
    as it is."""
    deadline = time.monotonic() + wait
    size, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = path.stat().st_size if path.exists() else 0
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        if now and last_record_type(path) == "exit":
            return
        time.sleep(0.1)


def read_offline_run(run_dir: Path, wait: float = 30.0) -> dict:
    """Metadata, config, summary, history and exit code of one run folder (after `settle`, at most `wait` s)."""
    settle(run_log_path(run_dir), wait)
    run: dict = {"id": None, "name": None, "group": None, "job_type": None, "project": None,
                 "entity": None, "tags": [], "config": {}, "summary": {}, "history": [],
                 "exit_code": None, "run_dir": str(run_dir)}
    for record in iter_records(run_log_path(run_dir)):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(id=r.run_id, name=r.display_name or None, group=r.run_group or None,
                       job_type=r.job_type or None, project=r.project or None,
                       entity=r.entity or None, tags=list(r.tags))
            _apply(run["config"], r.config)
            _apply(run["summary"], r.summary)
        elif kind == "config":
            _apply(run["config"], record.config)
        elif kind == "summary":
            _apply(run["summary"], record.summary)
        elif kind == "history":
            run["history"].append(_history_row(record.history))
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    # `_wandb` holds wandb's own bookkeeping, not the run's values.
    run["config"].pop("_wandb", None)
    run["summary"].pop("_wandb", None)
    return run
