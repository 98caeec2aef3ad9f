"""One site's patients for the single-task baselines: the same patients, bags and genes as ModalTune's training.

Patients come from :class:`modaltune.training.data.ExperimentData` (the site's split file for the seed, less the
patients without RNA or tiles), so every baseline and ModalTune see the same train/val/test patients. Genes are
z-scored with a :class:`GeneScaler` fitted on the training patients only. Bags are read whole and cached in memory
up to ``cache_mb`` (the demo's all fit; a real cohort's do not and are re-read), then capped per use: a random subset
of ``tile_cap`` tiles in training, evenly spaced tiles up to ``eval_tile_cap`` at evaluation.

A task whose training split cannot train a model raises :class:`SkipRun` with a one-line reason naming the site, the
task and the counts; the run is recorded as skipped instead of failing the workflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from modaltune.baselines.base import BaselineInputs, PatientInput
from modaltune.baselines.survival import assign_bins, survival_bins
from modaltune.omics import GeneScaler
from modaltune.training.bags import Bag, cap_indices
from modaltune.training.data import ExperimentData

TASKS = ("subtype", "survival")


class SkipRun(Exception):
    """A run that cannot train on this split; the message is the reason reported in the results table."""


class BagCache:
    """Whole patient bags kept in memory while their total stays under ``limit_mb``; shared by the runs of a job."""

    def __init__(self, limit_mb: float):
        self.limit = limit_mb * 2**20
        self.used = 0
        self.bags: dict[str, Bag] = {}

    def get(self, patient: str, data: ExperimentData) -> Bag:
        if patient in self.bags:
            return self.bags[patient]
        bag = data.bag(patient)
        size = bag.features.nbytes + bag.coords.nbytes
        if self.used + size <= self.limit:
            self.bags[patient] = bag
            self.used += size
        return bag


@dataclass
class TaskData:
    """The labelled patients of one task per split and the targets the loss reads."""

    task: str
    n_outputs: int
    splits: dict[str, list[str]]  # train / val / test -> patients with a label for this task
    labels: pd.DataFrame  # index patient: subtype_class, or time_months, event, bin
    details: dict  # classes and training counts, or bin edges and events: recorded with the run


class SiteData:
    def __init__(self, experiment: ExperimentData, cohort: pd.DataFrame, cache: BagCache, *, tile_cap: int | None,
                 eval_tile_cap: int | None):
        if len(experiment.sites) != 1:
            raise ValueError("baselines train on one site at a time")
        self.site = experiment.sites[0].site
        self.experiment = experiment
        self.cohort = cohort.set_index("patient")
        self.patients = experiment.patients.merge(cohort[["patient", "time_months", "event"]], on="patient",
                                                  how="left")
        self.cache = cache
        self.tile_cap, self.eval_tile_cap = tile_cap, eval_tile_cap
        train = experiment.split_patients("train")
        self.genes = GeneScaler().fit(experiment.genes.loc[train]).transform(experiment.genes)

    def inputs(self, pathway_genes: Sequence[Sequence[int]] = (), slide_encoder: dict | None = None) -> BaselineInputs:
        return BaselineInputs(feature_dim=int(self.experiment.slides["dim"].iloc[0]), n_genes=len(self.experiment.gene_names),
                              pathway_genes=pathway_genes, slide_encoder=dict(slide_encoder or {}))

    def patient(self, patient: str, reads: frozenset[str], generator: np.random.Generator | None = None
                ) -> PatientInput:
        """The input of a model reading ``reads`` ("bag" and/or "genes"); ``generator`` = training tile sampling."""
        result = PatientInput()
        if "genes" in reads:
            result.genes = torch.from_numpy(self.genes.loc[patient].to_numpy(np.float32))
        if "bag" in reads:
            bag = self.cache.get(patient, self.experiment)
            keep = cap_indices(len(bag), self.tile_cap if generator is not None else self.eval_tile_cap, generator)
            result.features, result.coords = torch.from_numpy(bag.features[keep]), torch.from_numpy(bag.coords[keep])
        return result

    def task(self, task: str, n_bins: int = 4) -> TaskData:
        if task == "subtype":
            return self._subtype()
        if task == "survival":
            return self._survival(n_bins)
        raise ValueError(f"unknown task '{task}' (tasks: {', '.join(TASKS)})")

    def _split(self, rows: pd.DataFrame) -> dict[str, list[str]]:
        return {split: rows.loc[rows["split"] == split, "patient"].tolist() for split in ("train", "val", "test")}

    def _subtype(self) -> TaskData:
        # The site's classes are those of its whole cohort; the rare set (-1) cannot train a baseline (paper).
        n_classes = int(self.cohort["subtype_class"].max()) + 1
        rows = self.patients[self.patients["subtype_class"] >= 0]
        splits = self._split(rows)
        counts = rows.loc[rows["split"] == "train", "subtype_class"].value_counts()
        counts = {int(c): int(counts.get(c, 0)) for c in range(n_classes)}
        if n_classes < 2 or min(counts.values()) == 0:
            raise SkipRun(f"site {self.site}, task subtype: the training split lacks class(es) "
                          f"{[c for c, n in counts.items() if n == 0] or 'other than 0'} (training patients per class "
                          f"{counts}); every class needs training patients")
        if not splits["test"]:
            raise SkipRun(f"site {self.site}, task subtype: no test patient with a subtype class")
        labels = rows.set_index("patient")[["subtype_class"]]
        return TaskData("subtype", n_classes, splits, labels, {"classes": n_classes, "train_counts": counts})

    def _survival(self, n_bins: int) -> TaskData:
        rows = self.patients.dropna(subset=["time_months", "event"])
        splits = self._split(rows)
        train = rows[rows["split"] == "train"]
        events = int(train["event"].sum())
        if events < 2:
            raise SkipRun(f"site {self.site}, task survival: {events} event(s) among {len(train)} training patients; "
                          "the survival bins need at least 2")
        if not splits["test"]:
            raise SkipRun(f"site {self.site}, task survival: no test patient with survival data")
        edges = survival_bins(train["time_months"].to_numpy(), train["event"].to_numpy(), n_bins)
        labels = rows.set_index("patient")[["time_months", "event"]].astype(np.float64)
        labels["bin"] = assign_bins(labels["time_months"].to_numpy(), edges)
        return TaskData("survival", n_bins, splits, labels,
                        {"bin_edges": edges.tolist(), "train_events": events, "train_patients": len(train)})
