"""Where encoder weights come from, and the one rule against random weights by accident.

Random weights have two legitimate uses: encoders that are random by design (the ``tiny`` tile and slide encoders
of the demo and the tests, ``weights: null``) and benchmarks that time full-size models (``weights="random"``,
passed in Python). A real encoder without weights is an error, and a workflow run refuses ``random`` too: every
number of its tables would come from an untrained encoder.

Torch-free: the workflow applies :func:`check_workflow` when it parses the config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RANDOM = "random"  # explicit random weights of a full-size encoder: benchmarks only
RANDOM_SLIDE_ENCODERS = ("tiny",)  # slide encoders random by design (no released weights exist)

SLIDE_ENCODER_HELP = (
    "download slide_encoder.pth from the gated Hugging Face repository prov-gigapath/prov-gigapath (accept its "
    "terms at https://huggingface.co/prov-gigapath/prov-gigapath, then `huggingface-cli download "
    "prov-gigapath/prov-gigapath slide_encoder.pth --local-dir <folder>` with HF_TOKEN set) and set "
    "slide_encoder.weights to the file"
)


class WeightsError(RuntimeError):
    """Encoder weights are missing, cannot be downloaded, belong to another architecture, or are random by accident."""


def slide_encoder_source(name: str, weights: str | os.PathLike | None) -> Path | None:
    """The checkpoint to load for slide encoder ``name``, or None for random weights (tiny, or ``"random"``)."""
    if weights is None:
        if name in RANDOM_SLIDE_ENCODERS:
            return None
        raise WeightsError(
            f"slide encoder '{name}' needs pretrained weights but slide_encoder.weights is not set: "
            f"{SLIDE_ENCODER_HELP} (random weights are for benchmarks only: weights='{RANDOM}' in Python)"
        )
    if str(weights) == RANDOM:
        return None
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"slide_encoder.weights: Prov-GigaPath slide encoder weights not found: {path}; "
                           f"{SLIDE_ENCODER_HELP}")
    return path


def tile_encoder_source(name: str, weights: str | os.PathLike | None) -> str:
    """``"random"``, ``"hub"`` or the weights file of tile encoder ``name`` (None only for random-by-design ones)."""
    from modaltune.features.registry import get_encoder_config

    config = get_encoder_config(name)
    if weights is None:
        if config.random_seed is None:
            raise WeightsError(
                f"tile encoder '{name}' needs pretrained weights but features.weights is not set: "
                f"{config.weights_help} (random weights are for benchmarks only: weights='{RANDOM}' in Python)"
            )
        return RANDOM
    weights = str(weights)
    if weights == RANDOM:
        return RANDOM
    if weights == "hub":
        if config.hf_repo is None:
            raise WeightsError(f"tile encoder '{name}' has no released weights to download")
        return "hub"
    if not Path(weights).is_file():
        raise WeightsError(f"features.weights: weights file for tile encoder '{name}' not found: {weights} -- "
                           f"{config.weights_help}")
    return weights


def check_workflow(config: Mapping[str, Any]) -> None:
    """Refuse, before any job runs, a config that would give a real encoder random weights.

    ``random`` is refused for every encoder (benchmarks pass it in Python, never through the workflow); a missing
    ``weights`` for any encoder but the random-by-design ``tiny`` ones. Weight files themselves are checked where
    they are loaded (on a cluster they may be visible only to the compute nodes).
    """
    for section in ("features", "slide_encoder"):
        if config[section]["weights"] == RANDOM:
            raise WeightsError(
                f"config error: key '{section}.weights': '{RANDOM}' gives a full-size encoder random weights, "
                "which only benchmarks may use; a workflow run needs the released weights file (or null for the "
                "tiny demo encoders)"
            )
    features = config["features"]
    if features["weights"] is None and not features.get("precomputed_dir"):
        tile_encoder_source(features["encoder"], None)
    slide = config["slide_encoder"]
    if slide["weights"] is None:
        slide_encoder_source(slide["name"], None)
