"""What every baseline model offers, so that fusion models (late fusion, MCAT, SurvPath) can reuse the encoders.

A model reads one patient (:class:`PatientInput`: the bag of tile features and grid coordinates that ModalTune reads,
and/or the scaled pathway genes) and offers ``embed(patient) -> (embed_dim,)`` and ``head``, a Linear from that
embedding to the outputs; ``forward`` is ``head(embed(patient))``. Late fusion concatenates ``embed`` outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class BaselineInputs:
    """The shape of the data a model is built for."""

    feature_dim: int = 0  # tile-feature width
    n_genes: int = 0  # columns of the scaled gene vector
    pathway_genes: Sequence[Sequence[int]] = ()  # per pathway, indices into the gene vector
    slide_encoder: dict[str, Any] = field(default_factory=dict)  # config section slide_encoder (gigapath_tuned)


@dataclass
class PatientInput:
    """One patient: ``features`` (N, D) and ``coords`` (N, 2) on the slide encoder's grid, ``genes`` (G,)."""

    features: torch.Tensor | None = None
    coords: torch.Tensor | None = None
    genes: torch.Tensor | None = None

    def to(self, device: torch.device) -> PatientInput:
        return PatientInput(*(None if t is None else t.to(device) for t in (self.features, self.coords, self.genes)))


class Baseline(nn.Module):
    """Base class: subclasses set ``reads`` (what the data loader fills in: "bag", "genes" or both), ``embed_dim``
    and ``head``, and define ``embed``."""

    reads: frozenset[str] = frozenset()
    embed_dim: int
    head: nn.Linear

    def embed(self, patient: PatientInput) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, patient: PatientInput) -> torch.Tensor:
        return self.head(self.embed(patient))

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimiser groups with an ``lr_scale`` each (the schedule multiplies it in): one group by default."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "weight_decay": weight_decay,
                 "lr_scale": 1.0}]


def bag_of(patient: PatientInput) -> torch.Tensor:
    if patient.features is None or patient.features.dim() != 2 or len(patient.features) == 0:
        raise ValueError("this baseline reads a non-empty bag of tile features (N, D)")
    return patient.features


def coords_of(patient: PatientInput) -> torch.Tensor:
    if patient.coords is None or patient.features is None or patient.coords.shape != (len(patient.features), 2):
        raise ValueError("this baseline reads the tiles' grid coordinates (N, 2) with the features")
    return patient.coords


def genes_of(patient: PatientInput) -> torch.Tensor:
    if patient.genes is None:
        raise ValueError("this baseline reads the scaled gene vector")
    return patient.genes
