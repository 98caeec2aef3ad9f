"""Feature files: `results/features/{encoder}/{slide}.h5`, and reading CLAM / TRIDENT files in the same layout.

Layout (the data contract): dataset ``features`` (N x D float16), dataset ``coords`` (N x 2 int64, level-0
top-left x, y), file attributes ``encoder``, ``mpp``, ``tile_px_level0`` (plus provenance). N may be 0.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from modaltune.io import atomic_path

log = logging.getLogger(__name__)


class FeatureFileError(ValueError):
    """A feature file does not have the datasets or attributes the pipeline needs."""


def write_features(
    path: str | os.PathLike, features: np.ndarray, coords: np.ndarray, attrs: Mapping[str, Any]
) -> None:
    """Write one slide's features atomically; ``attrs`` must include encoder, mpp and tile_px_level0."""
    features = np.asarray(features)
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    if features.ndim != 2 or len(features) != len(coords):
        raise ValueError(f"{path}: features {features.shape} do not match coords {coords.shape}")
    missing = {"encoder", "mpp", "tile_px_level0"} - set(attrs)
    if missing:
        raise ValueError(f"{path}: attributes {sorted(missing)} are required")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("features", data=features.astype(np.float16))
        handle.create_dataset("coords", data=coords)
        for key, value in attrs.items():
            handle.attrs[key] = value


def read_features(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read ``(features float32 (N, D), coords int64 (N, 2), attrs)`` from a modaltune, CLAM or TRIDENT h5 file.

    A leading batch dimension of 1 (``(1, N, D)``, as some extractors save) is dropped. ``attrs`` merges the
    attributes of the file, of ``coords`` and of ``features``; ``tile_px_level0`` is derived from TRIDENT's
    ``patch_size_level0`` or CLAM's ``patch_size`` x ``downsample`` when the file does not carry it.
    """
    path = Path(path)
    with h5py.File(path, "r") as handle:
        absent = [name for name in ("features", "coords") if name not in handle]
        if absent:
            raise FeatureFileError(
                f"{path}: no dataset {' or '.join(absent)} (found {sorted(handle)}); a feature file needs "
                "'features' (N x D) and 'coords' (N x 2, level-0 pixels)"
            )
        features = _drop_batch_dim(handle["features"][()], path, "features")
        coords = _drop_batch_dim(handle["coords"][()], path, "coords")
        attrs = {}
        for source in (handle, handle["coords"], handle["features"]):
            attrs.update({key: _plain(value) for key, value in source.attrs.items()})
    if coords.shape[1:] != (2,) or len(coords) != len(features):
        raise FeatureFileError(f"{path}: coords {coords.shape} do not pair with features {features.shape}")
    if "tile_px_level0" not in attrs:
        derived = _tile_px_level0_from_other_tools(attrs)
        if derived is not None:
            attrs["tile_px_level0"] = derived
    return features.astype(np.float32), np.rint(coords).astype(np.int64), attrs


def import_features(
    source: str | os.PathLike, out: str | os.PathLike, encoder: str, tile_px_level0: int | None = None
) -> int:
    """Validate a precomputed (CLAM / TRIDENT / modaltune) feature file and write it in the contract layout.

    ``tile_px_level0`` is used for files that do not record their tile size (CLAM's feature files carry no
    attributes); a value recorded in the file wins. Returns the number of tiles. The copy is a normalised one
    (float16 features, int64 coords, the contract's attributes), so every later stage reads one layout.
    """
    features, coords, attrs = read_features(source)
    attrs.setdefault("tile_px_level0", tile_px_level0)
    if attrs["tile_px_level0"] is None:
        raise FeatureFileError(
            f"{source}: cannot tell the tile size in level-0 pixels: none of the attributes tile_px_level0 "
            "(modaltune), patch_size_level0 (TRIDENT), patch_size + downsample (CLAM) is on the file or its "
            "coords dataset; set features.precomputed_tile_px_level0 (e.g. 512 for 256-px tiles at 20x cut from "
            "40x slides)"
        )
    if len(features) == 0:
        log.warning("%s has no tiles: writing an empty feature file", source)
    write_features(
        out,
        features,
        coords,
        {
            "encoder": encoder,
            "mpp": attrs.get("mpp", math.nan),  # CLAM and TRIDENT do not record it
            "tile_px_level0": attrs["tile_px_level0"],
            "tile_px": attrs.get("tile_px", attrs.get("patch_size", -1)),
            "source": str(source),
        },
    )
    return len(features)


def two_d_shape(shape: tuple[int, ...], path: str | os.PathLike, name: str) -> tuple[int, int]:
    """The (N, D) shape of a dataset stored as (N, D) or, as some extractors save it, (1, N, D)."""
    if len(shape) == 3 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 2:
        raise FeatureFileError(f"{path}: dataset '{name}' has shape {shape}; expected (N, D) or (1, N, D)")
    return int(shape[0]), int(shape[1])


def _drop_batch_dim(array: np.ndarray, path: Path, name: str) -> np.ndarray:
    return array.reshape(two_d_shape(array.shape, path, name))


def _plain(value: Any) -> Any:
    """h5py attribute -> plain Python (bytes to str, numpy scalars and arrays to Python values)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _tile_px_level0_from_other_tools(attrs: Mapping[str, Any]) -> int | None:
    if "patch_size_level0" in attrs:  # TRIDENT
        return int(attrs["patch_size_level0"])
    if (
        "patch_size" in attrs and "downsample" in attrs
    ):  # CLAM: patch_size at patch_level, that level's downsample
        downsample = attrs["downsample"]
        factor = downsample[0] if isinstance(downsample, list) else downsample
        return int(round(attrs["patch_size"] * factor))
    return None
