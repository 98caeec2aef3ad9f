"""The tables a small synthetic site leaves under a results folder, as the cohort, omics, feature and text rules
write them, for the unit tests' site fixtures (each draws its own patients, tiles and genes)."""

from pathlib import Path

import pandas as pd

from modaltune.baselines.data import BagCache, SiteData
from modaltune.features import write_manifest
from modaltune.training.cli import site_files
from modaltune.training.data import BagOptions, ExperimentData


def write_site(root: Path, site: str, rows: list[dict], splits: list[str], omics: list[dict], *, seed: int = 0,
               pathways: pd.DataFrame | None = None, text: list[dict] | None = None) -> None:
    """``rows``: cohort records (each with its ``slides``, whose features are already under features/tiny/), one
    split per record for ``seed``, expression records; optionally the pathway table and the text embeddings
    (text/{site}_seed{seed}_minilm.parquet)."""
    for folder in ("cohort", "omics", *(("text",) if text is not None else ())):
        (root / folder).mkdir(exist_ok=True)
    pd.DataFrame(rows).to_parquet(root / "cohort" / f"{site}.parquet")
    pd.DataFrame({"patient": [r["patient"] for r in rows], "seed": seed, "split": splits}).to_parquet(
        root / "cohort" / f"{site}_splits.parquet")
    pd.DataFrame(omics).to_parquet(root / "omics" / f"{site}.parquet")
    if pathways is not None:
        pathways.to_parquet(root / "omics" / "pathways.parquet")
    if text is not None:
        pd.DataFrame(text).to_parquet(root / "text" / f"{site}_seed{seed}_minilm.parquet")
    features = root / "features" / "tiny"
    write_manifest(sorted(features / f"{slide}.h5" for r in rows for slide in r["slides"]),
                   features / f"{site}.manifest.parquet", "tiny")


def site_data(root: Path, site: str = "S1", cache_mb: int = 100) -> SiteData:
    """A written site as the baselines read it (split seed 0, no tile cap)."""
    files = site_files(root, site, 0, "tiny", None)
    return SiteData(ExperimentData([files], 0, BagOptions(None)), pd.read_parquet(files.cohort), BagCache(cache_mb))
