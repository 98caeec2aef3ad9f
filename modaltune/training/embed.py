"""Patient embeddings from a trained model: every patient of a site's split file, every task.

The clinical vector (ModalTune w/ Clinical) is encoded with the model's own clinical encoder, fitted on its training
patients. Genes are z-scored with the model's own statistics, or, for an out-of-distribution site, with statistics
fitted on that site's training split (:func:`target_train_scaler`).

Output (data contract): ``results/embeddings/{experiment}/{site}/seed{seed}.parquet`` with columns patient, split,
task and embedding (list[float], the raw model output before normalisation, which the probes read). The tile cap is
deterministic here, so the embeddings are reproducible.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

from modaltune.cohort.clinical_encoding import ClinicalEncoder
from modaltune.devices import resolve_device
from modaltune.io import write_parquet
from modaltune.models.modaltune import ModalTune, build_modaltune
from modaltune.models.slide_encoder import SLIDE_ENCODERS
from modaltune.omics import GeneScaler
from modaltune.training.data import BagOptions, ExperimentData, SiteFiles
from modaltune.training.loop import Embedder, encoder_fingerprint

log = logging.getLogger(__name__)


def load_trained(model_dir: str | Path, device: torch.device | str = "cpu") -> tuple[ModalTune, dict,
                                                                                    GeneScaler | None]:
    """Rebuild a trained model from ``model.safetensors`` + ``config.json`` (the best epoch's weights); the gene
    scaler is None for a model without genes (Single Modal)."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    tensors = load_file(str(model_dir / "model.safetensors"))
    model_section = dict(config["model"], output_dim=config["output_dim"])
    slide_encoder = dict(config["slide_encoder"])
    scaler = GeneScaler.from_state_dict(config["gene_scaler"]) if config["gene_scaler"] is not None else None
    clinical = trained_clinical_encoder(config)
    # feature_dim and baseline build a baseline architecture; ModalTune's config.json files from before them lack them.
    model = build_modaltune(model_section, slide_encoder, config["pathway_genes"], len(scaler.mean_) if scaler else 0,
                            feature_dim=config.get("feature_dim", 0), baseline=config.get("baseline"),
                            clinical_features=clinical.width if clinical else 0)
    # The loss's projectors are not part of the embedding model.
    state = {k: v for k, v in tensors.items() if not k.startswith(("target_projector.", "output_projector."))}
    strict = slide_encoder.get("weights") is None  # otherwise the encoder came from its weights file
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if strict or not k.startswith("encoder.")]:
        raise ValueError(f"{model_dir}/model.safetensors does not match its config.json "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    if encoder_fingerprint(model) != config["encoder_sha256"]:
        raise ValueError(f"the slide encoder rebuilt from {slide_encoder} differs from the one {model_dir} was "
                         "trained with (weights file changed?); retrain or restore the original weights")
    return model.to(device).eval(), config, scaler


def trained_clinical_encoder(config: dict) -> ClinicalEncoder | None:
    """The clinical encoder a model was trained with (its config.json), None for a model without clinical tokens."""
    state = config.get("clinical_encoder")
    return ClinicalEncoder.from_state_dict(state) if state is not None else None


GENE_SCALINGS = ("model", "target-train")


def target_train_scaler(data: ExperimentData) -> GeneScaler:
    """Gene z-scores fitted on the training split of ``data``'s site, as the official deployment scales an unseen
    site with its own table (paper Table 3); its validation and test patients never enter the statistics."""
    return GeneScaler().fit(data.genes.loc[data.split_patients("train")])


def embed_site(model_dir: str | Path, site: SiteFiles, seed: int, out: str | Path, *,
               gene_scaling: str = "model", device: str = "auto", precision: str = "auto") -> pd.DataFrame:
    """Embed every patient of ``site``'s split for ``seed`` with the model in ``model_dir``; write ``out``.

    ``gene_scaling``: "model" z-scores the genes with the statistics the model was trained with (in-domain);
    "target-train" fits them on ``site``'s training split (out-of-distribution runs).
    """
    if gene_scaling not in GENE_SCALINGS:
        raise ValueError(f"gene_scaling must be one of {GENE_SCALINGS}, got {gene_scaling!r}")
    device = resolve_device(device)
    model, config, scaler = load_trained(model_dir, device)
    grid = SLIDE_ENCODERS[config["slide_encoder"]["name"]]  # places the slides, with or without an encoder built
    with_genes = scaler is not None
    clinical = trained_clinical_encoder(config)
    data = ExperimentData([site], seed, BagOptions.for_encoder(grid, config["tile_cap"], config["gap_px"]),
                          with_genes=with_genes, clinical_fields=clinical.kept if clinical else ())
    if gene_scaling == "target-train" and with_genes:
        scaler = target_train_scaler(data)
    embedder = Embedder(model, data, scaler.transform(data.genes) if with_genes else None, device, precision,
                        clinical.transform(data.clinical) if clinical else None)
    patients = data.patients["patient"].tolist()
    outputs = embedder.embed(patients, desc=f"embed {site.site}")
    rows = [
        {"patient": patient, "split": split, "task": task, "embedding": outputs[i, t].astype(float).tolist()}
        for i, (patient, split) in enumerate(zip(patients, data.patients["split"], strict=True))
        for t, task in enumerate(model.tasks)
    ]
    frame = pd.DataFrame(rows, columns=["patient", "split", "task", "embedding"])
    write_parquet(frame, out, metadata={"model_dir": str(model_dir), "site": site.site, "seed": seed,
                                        "gene_scaling": gene_scaling, "excluded_patients": data.excluded})
    log.info("%s: %d patients x %d tasks embedded -> %s", site.site, len(patients), len(model.tasks), out)
    return frame
