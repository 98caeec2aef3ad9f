"""Feature manifests: `results/features/{encoder}/{site}.manifest.parquet`, one row per slide of a site.

Training and embedding jobs read a site's feature files through its manifest (columns ``slide``, ``path``,
``n_tiles``, ``dim``) rather than listing every feature file as a Snakemake input: a TCGA site has up to ~2,000
slides, and each training job would otherwise add that many edges to the workflow's DAG. The manifest job lists
them once. Tile counts come from the HDF5 dataset shapes, so a manifest of thousands of slides is written in
seconds without reading any features.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import pandas as pd

from modaltune.io import read_parquet, write_parquet

from .files import FeatureFileError, two_d_shape

COLUMNS = ("slide", "path", "n_tiles", "dim")


def write_manifest(paths: Sequence[str | os.PathLike], out: str | os.PathLike, encoder: str) -> pd.DataFrame:
    """Write the manifest of ``paths`` (feature files named ``{slide}.h5``) and return it.

    Every file must hold a ``features`` dataset, and all slides that have tiles must share one feature width: a
    mix means files of two encoders, which no model can read together.
    """
    rows = [_row(Path(path)) for path in paths]
    manifest = pd.DataFrame(rows, columns=list(COLUMNS))
    duplicated = manifest["slide"][manifest["slide"].duplicated()]
    if len(duplicated):
        raise FeatureFileError(f"{out}: slide(s) listed twice: {sorted(set(duplicated))[:5]}")
    with_tiles = manifest[manifest["n_tiles"] > 0]
    odd = with_tiles[with_tiles["dim"] != with_tiles["dim"].iloc[0]] if len(with_tiles) else with_tiles
    if len(odd):
        first, odd = with_tiles.iloc[0], odd.iloc[0]
        raise FeatureFileError(
            f"{out}: feature widths differ: {odd['path']} has {odd['dim']}, {first['path']} has {first['dim']}; "
            f"all feature files of a site must come from one encoder ({encoder}): delete the odd files and rerun"
        )
    write_parquet(manifest, out, metadata={"encoder": encoder})
    return manifest


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """A manifest indexed by slide, with columns path (Path), n_tiles and dim."""
    manifest, _ = read_parquet(path)
    missing = set(COLUMNS) - set(manifest.columns)
    if missing:
        raise FeatureFileError(f"{path}: not a feature manifest (no column {sorted(missing)}); rebuild it")
    manifest["path"] = manifest["path"].map(Path)
    return manifest.set_index("slide")


def _row(path: Path) -> tuple[str, str, int, int]:
    try:
        with h5py.File(path, "r") as handle:
            if "features" not in handle:
                raise FeatureFileError(f"{path}: no dataset 'features' (found {sorted(handle)}); re-extract it")
            shape = handle["features"].shape
    except OSError as error:
        raise FeatureFileError(f"{path}: not a readable HDF5 feature file ({error}); delete it and rerun") from None
    return (path.stem, str(path), *two_d_shape(shape, path, "features"))
