"""The patients of one experiment for one seed: labels, splits, scaled genes, tile bags and text targets.

An experiment trains on one site or on several sites pooled (pan-cancer); its patients are the union of the sites'
split files for the seed. Patients without an expression row (``has_rna`` false; upstream drops them the same way)
or without any tile cannot be fed to the model and are left out with a logged list. Without genes
(``with_genes=False``, the Single Modal ablation) the gene table is never opened; the cohort table's ``has_rna``
leaves out the same patients, so the ablation is trained and probed on the same patients as ModalTune.

With ``clinical_fields`` (ModalTune w/ Clinical) those columns of the cohort table are kept per patient in
:attr:`ExperimentData.clinical`, raw; :class:`modaltune.cohort.clinical_encoding.ClinicalEncoder` is fitted on the
training patients' rows only.

Text targets are read for the **training** patients only: :class:`TextTargets` filters the parquet rows while
reading, so the text of validation and test patients never enters the training process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from modaltune.training.bags import GAP_PX, Bag, build_bag, cap_indices

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SiteFiles:
    """Input files of one site (paths of the data contracts)."""

    site: str
    cohort: Path  # results/cohort/{site}.parquet
    splits: Path  # results/cohort/{site}_splits.parquet
    omics: Path  # results/omics/{site}.parquet
    features: Path  # results/features/{encoder}/{site}.manifest.parquet
    text: Path | None = None  # results/text/{site}_seed{seed}_{text_encoder}.parquet (training only)


@dataclass(frozen=True)
class BagOptions:
    tile_cap: int | None = 25_000
    gap_px: int = GAP_PX
    grid_px: int = 256
    grid_cells: int = 1000

    @classmethod
    def for_encoder(cls, encoder_config, tile_cap: int | None, gap_px: int) -> BagOptions:
        """Bags on the grid of a slide encoder (its config's ``tile_size`` and ``slide_ngrids``)."""
        return cls(tile_cap, gap_px, encoder_config.tile_size, encoder_config.slide_ngrids)


class ExperimentData:
    """Patients (one row each: patient, site, split, subtype_class, slides), raw genes and feature files."""

    def __init__(self, sites: Sequence[SiteFiles], seed: int, bag_options: BagOptions = BagOptions(),
                 with_genes: bool = True, clinical_fields: Sequence[str] = ()):
        from modaltune.features import read_manifest

        self.sites = list(sites)
        self.seed = seed
        self.bag_options = bag_options
        tables, gene_tables, manifests = [], [], []
        for files in self.sites:
            tables.append(_site_patients(files, seed, with_rna_flag=not with_genes, clinical_fields=clinical_fields))
            if with_genes:
                gene_tables.append(pd.read_parquet(files.omics).set_index("patient"))
            manifests.append(_site_manifest(files, tables[-1], read_manifest(files.features)))
        self.slides = pd.concat(manifests)
        patients = pd.concat(tables, ignore_index=True)
        duplicated = patients["patient"][patients["patient"].duplicated()]
        if len(duplicated):
            raise ValueError(f"patients listed in more than one site: {sorted(duplicated)[:5]}")
        self.gene_names: list[str] = []
        self.genes: pd.DataFrame | None = None
        if with_genes:
            self.gene_names = list(gene_tables[0].columns)
            for files, table in zip(self.sites, gene_tables, strict=True):
                if list(table.columns) != self.gene_names:
                    raise ValueError(f"{files.omics}: gene columns differ from {self.sites[0].omics}; pooled sites "
                                     "need the same gene set (rebuild results/omics with one pathways.parquet)")
            self.genes = pd.concat(gene_tables)
            no_rna = ~patients["patient"].isin(self.genes.index)
        else:
            no_rna = ~patients.pop("has_rna").astype(bool)
        patients["n_tiles"] = [int(self.slides.loc[slides, "n_tiles"].sum()) for slides in patients["slides"]]
        no_tiles = patients["n_tiles"] == 0
        self.excluded = {
            "no_rna": sorted(patients.loc[no_rna, "patient"]),
            "no_tiles": sorted(patients.loc[no_tiles & ~no_rna, "patient"]),
        }
        for reason, names in self.excluded.items():
            if names:
                log.warning("%d patient(s) left out (%s): %s", len(names), reason, ", ".join(names[:20]))
        patients = patients[~no_rna & ~no_tiles].reset_index(drop=True)
        # raw clinical fields by patient (None without clinical_fields); the patients table keeps its usual columns
        self.clinical = patients.set_index("patient")[list(clinical_fields)] if clinical_fields else None
        self.patients = patients.drop(columns=list(clinical_fields))
        if not (self.patients["split"] == "train").any():
            raise ValueError(f"seed {seed}: no training patient with expression data and tiles in "
                             f"{[str(f.splits) for f in self.sites]}")

    def feature_path(self, slide: str) -> Path:
        return self.slides.at[slide, "path"]

    def split_patients(self, split: str) -> list[str]:
        return self.patients.loc[self.patients["split"] == split, "patient"].tolist()

    def raw_genes(self, patients: Sequence[str]) -> np.ndarray:
        return self.genes.loc[list(patients)].to_numpy(dtype=np.float64)

    def bag(self, patient: str, generator: np.random.Generator | None = None) -> Bag:
        """The patient's tiles on the grid, capped (random subset with ``generator``, else evenly spaced)."""
        from modaltune.features import read_features

        row = self.patients.loc[self.patients["patient"] == patient]
        if row.empty:
            raise KeyError(f"patient {patient} is not part of this experiment")
        slides = []
        for slide in row.iloc[0]["slides"]:
            features, coords, _ = read_features(self.feature_path(slide))
            slides.append((slide, features, coords))
        options = self.bag_options
        bag = build_bag(patient, slides, gap_px=options.gap_px, grid_px=options.grid_px,
                        grid_cells=options.grid_cells)
        keep = cap_indices(len(bag), options.tile_cap, generator)
        return Bag(patient, bag.features[keep], bag.coords[keep], bag.slides)


def _site_manifest(files: SiteFiles, patients: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest rows of the site's patients' slides; every such slide must be listed."""
    slides = [slide for slides in patients["slides"] for slide in slides]
    missing = sorted(set(slides) - set(manifest.index))
    if missing:
        raise ValueError(f"{files.features}: no feature file listed for slide(s) {missing[:5]} of site {files.site} "
                         f"({len(missing)} in all); rebuild the manifest (snakemake {files.features})")
    return manifest.loc[slides]


def _site_patients(files: SiteFiles, seed: int, with_rna_flag: bool = False,
                   clinical_fields: Sequence[str] = ()) -> pd.DataFrame:
    columns = ["patient", "subtype_class", "slides"] + (["has_rna"] if with_rna_flag else [])
    absent = sorted(set(clinical_fields) - set(pq.read_schema(files.cohort).names)) if clinical_fields else []
    if absent:
        raise ValueError(f"{files.cohort}: no clinical column(s) {absent} (model.clinical.fields); rebuild the cohort "
                         f"table with this version (snakemake --forcerun cohort {files.cohort})")
    cohort = pd.read_parquet(files.cohort, columns=columns + list(clinical_fields))
    splits = pd.read_parquet(files.splits)
    splits = splits.loc[splits["seed"] == seed, ["patient", "split"]]
    if splits.empty:
        raise ValueError(f"{files.splits}: no split for seed {seed}; add the seed to cohort.seeds in the config")
    unknown = sorted(set(splits["split"]) - set(SPLITS))
    if unknown:
        raise ValueError(f"{files.splits}: unknown split names {unknown} (expected {SPLITS})")
    table = splits.merge(cohort, on="patient", how="left", validate="one_to_one")
    missing = table.loc[table["slides"].isna(), "patient"].tolist()
    if missing:
        raise ValueError(f"{files.splits}: patients {missing[:5]} are not in {files.cohort}")
    table["slides"] = [list(s) for s in table["slides"]]
    table.insert(1, "site", files.site)
    return table


class TextTargets:
    """Text embeddings (tasks x text_dim) of the given patients only; other patients' rows are never loaded."""

    def __init__(self, paths: Sequence[str | Path], patients: Sequence[str], tasks: Sequence[str]):
        self.tasks = tuple(tasks)
        wanted = sorted(set(patients))
        self._rows: dict[str, torch.Tensor] = {}
        for path in paths:
            table = pq.read_table(path, columns=["patient", "task", "embedding"],
                                  filters=[("patient", "in", wanted), ("task", "in", list(self.tasks))])
            frame = table.to_pandas()
            for patient, rows in frame.groupby("patient", sort=False):
                by_task = dict(zip(rows["task"], rows["embedding"], strict=True))
                absent = [t for t in self.tasks if t not in by_task]
                if absent:
                    raise ValueError(f"{path}: patient {patient} has no text embedding for task(s) {absent}")
                self._rows[patient] = torch.tensor(np.stack([np.asarray(by_task[t], np.float32) for t in self.tasks]))
        missing = [p for p in wanted if p not in self._rows]
        if missing:
            raise ValueError(f"no text embedding for {len(missing)} training patient(s), e.g. {missing[:5]}, in "
                             f"{[str(p) for p in paths]}; rebuild the text stage for this seed")

    @property
    def patients(self) -> set[str]:
        return set(self._rows)

    @property
    def dim(self) -> int:
        return next(iter(self._rows.values())).shape[1]

    def __getitem__(self, patient: str) -> torch.Tensor:
        return self._rows[patient]
