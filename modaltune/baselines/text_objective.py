"""A registered baseline trained with ModalTune's multi-task text objective (paper Table 8, `ABMIL (cat) w/ text emb.`:
"the ABMIL (cat) baseline trained with ModalTune's multi-task text objective instead of single-task labels, evaluated
by linear probing like ModalTune").

The baseline is built by :func:`create_baseline` from its ``baselines.<name>`` settings, so the architecture has one
implementation; its single-task head is removed and its embedding (ABMIL (cat): the fused ABMIL + Gene Mixer
embedding) feeds one Linear head per task, each to ``text.projector_dim``. The model is trained by
:func:`modaltune.training.loop.train_model` (KL to the projected text targets, validation-probe model selection,
checkpoints, resume) and embedded by :mod:`modaltune.training.embed`, whose parquet the probes read.

Why one head per task and not a task embedding added before one head: the baseline's head is a plain Linear, and
``W (h + e_t) = W h + W e_t`` would give every task the same embedding shifted by a constant, so the task outputs
(and their linear probes) could not differ; ModalTune's own prompts avoid this through the LayerNorm of Eq. 4 and
the adapter, which the baseline does not have.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput
from modaltune.baselines.registry import create_baseline
from modaltune.models.modaltune import ModelInputs, task_indices


class TextObjectiveBaseline(nn.Module):
    """``forward(features, coords, genes, tasks) -> (len(tasks), output_dim)``, as the ModalTune models; every weight
    trains and there is no slide encoder (``encoder`` None: nothing to fingerprint or save besides these weights)."""

    encoder = None

    def __init__(self, baseline: Baseline, tasks: Sequence[str], output_dim: int):
        super().__init__()
        del baseline.head  # the task heads predict; the single-task head would never train
        self.baseline = baseline
        self.tasks = tuple(tasks)
        self.heads = nn.ModuleList(nn.Linear(baseline.embed_dim, output_dim) for _ in self.tasks)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, genes: torch.Tensor | None,
                tasks: Sequence[str] | None = None) -> torch.Tensor:
        embedding = self.baseline.embed(PatientInput(features, coords, genes))
        return torch.stack([self.heads[i](embedding) for i in task_indices(self.tasks, tasks)])

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return self.state_dict()


def build_text_objective_baseline(model: Mapping[str, Any], inputs: ModelInputs) -> TextObjectiveBaseline:
    """The baseline named by ``model.architecture`` with ``inputs.baseline`` as its architecture settings."""
    if inputs.baseline is None or not inputs.feature_dim:
        raise ValueError(f"model.architecture {model['architecture']} needs the tile-feature width and the "
                         f"architecture settings of baselines.{model['architecture']}")
    shape = BaselineInputs(feature_dim=inputs.feature_dim, n_genes=inputs.n_genes, pathway_genes=inputs.pathway_genes)
    baseline = create_baseline(model["architecture"], 1, shape, **inputs.baseline)
    return TextObjectiveBaseline(baseline, model["tasks"], model["output_dim"])
