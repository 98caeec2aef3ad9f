"""Supervised baselines of the paper's Table 2, timm-style: ``create_baseline(name, n_outputs, inputs, **kwargs)``.

The registry (:mod:`modaltune.baselines.registry`) is plain data, so the workflow and the report read names, labels
and modalities without importing torch; each family lives in its own small module, imported when a model is built.
"""

from __future__ import annotations

from modaltune.baselines.registry import (
    BASELINES,
    MODALITY_TITLES,
    BaselineSpec,
    baseline_names,
    create_baseline,
)

__all__ = ["BASELINES", "MODALITY_TITLES", "BaselineSpec", "baseline_names", "create_baseline"]
