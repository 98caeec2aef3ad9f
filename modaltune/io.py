"""Atomic writes, parquet/HDF5 helpers and safe checkpoint loading.

Every writer in the project goes through :func:`atomic_path`, so an interrupted run never leaves a file
that looks complete: the data is written under a temporary name in the same folder and renamed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

METADATA_KEY = b"modaltune"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the permissions of a plain open()
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet(df: pd.DataFrame, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``df`` atomically; ``metadata`` (JSON-serialisable) is stored in the file's schema metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        merged = dict(table.schema.metadata or {})
        merged[METADATA_KEY] = json.dumps(dict(metadata)).encode()
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | os.PathLike) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a table written by :func:`write_parquet`; returns the frame and its metadata (``{}`` if none)."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    return table.to_pandas(), (json.loads(raw) if raw else {})


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def load_state_dict(path: str | os.PathLike, key: str | None = None, mmap: bool = False) -> dict:
    """Load tensors from a checkpoint without unpickling arbitrary objects.

    safetensors files are read directly; ``.pth``/``.bin`` files go through ``torch.load(weights_only=True)``.
    ``key`` selects a nested state dict (Gigapath's slide encoder keeps its weights under ``"model"``). ``mmap``
    maps a torch file's tensors instead of reading them (for checks that only need names and shapes).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        # torch maps only its zip format; files of the legacy format are read
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    if key is not None:
        if key not in state:
            raise KeyError(f"{path}: no '{key}' entry; top-level keys are {sorted(state)[:10]}")
        state = state[key]
    return state
