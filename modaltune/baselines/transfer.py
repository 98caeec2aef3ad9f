"""A trained single-task baseline as a feature extractor on another site (paper Table 3, `Gigapath Surv. (cat)` and
`Gigapath Cls. (cat)`): the model trained on the source site, its prediction layer removed, embeds the target site's
patients (``Baseline.embed``: for a late-fusion model the fused vector), and the same linear probes as ModalTune's
read that embedding on the target's own train/test split.

The selected epoch's weights are kept as ``{task}.safetensors`` beside the run's record, with what rebuilds the model
in the file's metadata (registered name, architecture settings, outputs, the gene columns it was trained on). On the
target site the genes are z-scored with a scaler fitted on the target's training split (:class:`SiteData` does so),
as ModalTune's out-of-distribution runs (``modaltune embed --gene-scaling target-train``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modaltune.baselines.base import Baseline, BaselineInputs
from modaltune.baselines.data import SiteData
from modaltune.baselines.registry import create_baseline
from modaltune.io import write_parquet
from modaltune.training.checkpoint import save_tensors
from modaltune.training.loop import autocast

# The probes read this task's embedding (modaltune.evaluation.probes), as they read ModalTune's General task.
PROBED_TASK = "general"


def save_weights(state: dict[str, torch.Tensor], path: str | Path, *, name: str, architecture: dict, n_outputs: int,
                 genes: list[str], site: str, task: str, epoch: int) -> None:
    metadata = {"model": name, "architecture": json.dumps(architecture, sort_keys=True), "n_outputs": str(n_outputs),
                "genes": json.dumps(list(genes)), "site": site, "task": task, "epoch": str(epoch)}
    save_tensors(state, Path(path), metadata=metadata)


def load_weights(path: str | Path, inputs: BaselineInputs, genes: list[str]) -> tuple[Baseline, dict[str, Any]]:
    """Rebuild the model saved in ``path`` for data shaped like ``inputs`` whose gene columns are ``genes``; returns
    the model (eval mode, on CPU) and the file's metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "skipped" in metadata:
        raise ValueError(f"{path}: the source run was skipped ({metadata['skipped']}); there is no model to embed "
                         "with (drop this out-of-distribution run or give the source site's split the patients)")
    trained_genes = json.loads(metadata["genes"])
    if trained_genes != list(genes):
        raise ValueError(f"{path}: trained on {len(trained_genes)} gene columns, the target site has {len(genes)} "
                         "or in another order; rebuild results/omics with one pathways.parquet for every site")
    model = create_baseline(metadata["model"], int(metadata["n_outputs"]), inputs, **json.loads(metadata["architecture"]))
    model.load_state_dict(load_file(str(path)))
    return model.eval(), metadata


@torch.no_grad()
def embed_patients(model: Baseline, data: SiteData, tile_cap: int | None, device: torch.device,
                   precision: str = "fp32") -> pd.DataFrame:
    """Every patient of ``data``'s split: ``model.embed`` (the head is never applied), evenly spaced tiles up to
    ``tile_cap``. Columns patient, split, task, embedding."""
    model = model.to(device).eval()
    patients = data.experiment.patients
    vectors = []
    for patient in patients["patient"]:
        patient_input = data.patient(patient, model.reads, tile_cap).to(device)
        with autocast(device, precision):
            vectors.append(model.embed(patient_input).float().cpu().numpy().astype(np.float64))
    return pd.DataFrame({"patient": patients["patient"].to_numpy(), "split": patients["split"].to_numpy(),
                         "task": PROBED_TASK, "embedding": [v.tolist() for v in vectors]})


def embed_with_trained(weights: str | Path, data: SiteData, inputs: BaselineInputs, out: str | Path, *,
                       tile_cap: int | None, device: torch.device, precision: str = "fp32") -> pd.DataFrame:
    """Embed the target site of ``data`` with the model saved in ``weights``; write ``out`` (parquet)."""
    model, metadata = load_weights(weights, inputs, data.experiment.gene_names)
    frame = embed_patients(model, data, tile_cap, device, precision)
    write_parquet(frame, out, metadata={"weights": str(weights), "source": metadata["site"], "site": data.site,
                                        "gene_scaling": "target-train", "excluded_patients": data.experiment.excluded})
    return frame
