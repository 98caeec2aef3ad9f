"""The paper's `Gigapath LP` baseline: the frozen slide encoder's pooled embedding of each patient, no fine-tuning.

The patients, their bags and the tile cap are exactly those ModalTune sees (:class:`modaltune.training.data.
ExperimentData`: all slides of a patient placed on one grid by the bag builder, the deterministic evaluation cap, the
same exclusions), so the baseline and ModalTune are probed on the same train and test patients.

With random encoder weights (the demo) the encoder is drawn right after ``torch.manual_seed(seed)``, as the training
run of that seed draws it, so the baseline is the very encoder ModalTune of that seed starts from; the file's metadata
records its fingerprint (``encoder_sha256``, the same digest the trained model's config.json carries). With a weights
file the seed does not matter.

Output (data contract of ``results/embeddings/``): columns patient, split, task ("general"), embedding.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from modaltune.devices import resolve_device
from modaltune.io import write_parquet
from modaltune.models import create_slide_encoder
from modaltune.training.data import BagOptions, ExperimentData, SiteFiles
from modaltune.training.loop import autocast, encoder_fingerprint

log = logging.getLogger(__name__)

TASK = "general"


def frozen_encoder(slide_encoder: Mapping[str, Any], seed: int) -> torch.nn.Module:
    """The slide encoder of the config section ``slide_encoder`` in eval mode (random weights drawn after seeding)."""
    torch.manual_seed(seed)
    encoder = create_slide_encoder(**slide_encoder)
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    return encoder.eval()


def encoder_sha256(encoder: torch.nn.Module) -> str:
    """The training run's fingerprint (config.json ``encoder_sha256``), which hashes ``model.encoder``."""
    return encoder_fingerprint(SimpleNamespace(encoder=encoder))


class FrozenEmbedder:
    """Pooled slide-encoder output of patient bags: ``transform(data, patients) -> (n, embed_dim)``."""

    def __init__(self, encoder: torch.nn.Module, pool: str = "cls", device: str = "auto", precision: str = "auto"):
        self.device = resolve_device(device)
        self.encoder = encoder.to(self.device).eval()
        self.pool = pool
        self.precision = precision

    @torch.no_grad()
    def embed_bag(self, features: np.ndarray, coords: np.ndarray) -> np.ndarray:
        features_t = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)
        coords_t = torch.from_numpy(np.ascontiguousarray(coords, dtype=np.int64)).to(self.device)
        with autocast(self.device, self.precision):
            pooled = self.encoder(features_t[None], coords_t[None], pool=self.pool)[0]
        return pooled[0].float().cpu().numpy()

    def transform(self, data: ExperimentData, patients: list[str], desc: str = "frozen") -> np.ndarray:
        rows = []
        for patient in tqdm(patients, desc=desc, leave=False):
            bag = data.bag(patient)  # no generator: the deterministic evaluation cap
            rows.append(self.embed_bag(bag.features, bag.coords))
        return np.stack(rows) if rows else np.zeros((0, self.encoder.config.embed_dim), np.float32)


def embed_frozen(site: SiteFiles, seed: int, out: str | Path, *,
                 slide_encoder: Mapping[str, Any], pool: str, tile_cap: int | None, gap_px: int,
                 device: str = "auto", precision: str = "auto") -> pd.DataFrame:
    """Embed every patient of ``site``'s split for ``seed`` with the frozen slide encoder; write ``out``."""
    encoder = frozen_encoder(slide_encoder, seed)
    grid = encoder.config
    data = ExperimentData([site], seed, BagOptions.for_encoder(grid, tile_cap, gap_px))
    patients = data.patients["patient"].tolist()
    vectors = FrozenEmbedder(encoder, pool, device, precision).transform(data, patients, desc=f"frozen {site.site}")
    frame = pd.DataFrame({
        "patient": patients,
        "split": data.patients["split"].tolist(),
        "task": TASK,
        "embedding": [v.astype(float).tolist() for v in vectors],
    })
    write_parquet(frame, out, metadata={
        "slide_encoder": dict(slide_encoder), "pool": pool, "site": site.site, "seed": seed,
        "tile_cap": tile_cap, "encoder_sha256": encoder_sha256(encoder), "excluded_patients": data.excluded,
    })
    log.info("%s: %d patients embedded by the frozen %s encoder (%s pooling) -> %s", site.site, len(patients),
             grid.name, pool, out)
    return frame
