"""No Text Embedding (paper Table 8): ModalTune trained without text, one single-task model per task.

The model is ModalTune as :func:`modaltune.models.modaltune.build_modaltune` builds it from an experiment's merged
``model`` section (the frozen slide encoder, the Modal Adapter, the transcriptomics encoder) with one task prompt,
the task it is trained for. Its pooled output (Eq. 4, ``text.projector_dim`` wide as ModalTune's) feeds a Linear
head: the class logits, trained with cross-entropy (subtype), or K hazard logits, trained with the baselines'
discrete-time NLL (survival). It trains, selects its epoch on validation and scores its own test predictions as the
baselines do (:func:`modaltune.baselines.train.train_single_task`); there is no text, no embedding and no probe.

Settings: ModalTune's own for everything it has (the experiment's ``training`` section: lr, weight decay, eps, betas,
epochs, warm-up and schedule, accumulation, precision, and its tile cap, in training as a random subset and at
evaluation as evenly spaced tiles, as ModalTune embeds); the survival bins and alpha, which ModalTune has no
counterpart for, are the baselines' (``baselines.training``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput, bag_of, coords_of, genes_of
from modaltune.baselines.train import SingleTaskModel
from modaltune.models.modaltune import build_modaltune

LABEL = "No Text Embedding"  # the paper's row; the tables name rows by evaluation.labels
# What the run takes from ModalTune's training section, and from the baselines' protocol.
OPTIMISER_KEYS = ("lr", "weight_decay", "eps", "warmup_factor", "schedule")
PROTOCOL_KEYS = ("epochs", "warmup_epochs", "accumulate", "betas", "precision")
SURVIVAL_KEYS = ("survival_bins", "survival_alpha")


class SupervisedModalTune(Baseline):
    """ModalTune with a single task prompt, its pooled output (output_dim) into a Linear head."""

    reads = frozenset({"bag", "genes"})

    def __init__(self, modaltune: nn.Module, output_dim: int, n_outputs: int):
        super().__init__()
        if len(modaltune.tasks) != 1:
            raise ValueError(f"a single-task model has one task prompt, got {modaltune.tasks}")
        self.modaltune = modaltune
        self.embed_dim = output_dim
        self.head = nn.Linear(output_dim, n_outputs)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        return self.modaltune(bag_of(patient), coords_of(patient), genes_of(patient))[0]


def no_text_model(experiment: str, sections: Mapping[str, Any], task: str, inputs: BaselineInputs) -> SingleTaskModel:
    """The single-task model of ``task`` for experiment ``experiment``, whose merged config ``sections`` hold model,
    slide_encoder, training, text and baselines; ``inputs`` give the genes and pathways."""
    model = dict(sections["model"], tasks=[task], output_dim=sections["text"]["projector_dim"])
    training = sections["training"]
    protocol = {key: training[key] for key in PROTOCOL_KEYS}
    protocol.update(tile_cap=training["tile_cap"], eval_tile_cap=training["tile_cap"],
                    **{key: sections["baselines"]["training"][key] for key in SURVIVAL_KEYS})
    slide_encoder = sections["slide_encoder"]

    def build(n_outputs: int) -> SupervisedModalTune:
        modaltune = build_modaltune(model, slide_encoder, inputs.pathway_genes, inputs.n_genes)
        return SupervisedModalTune(modaltune, model["output_dim"], n_outputs)

    return SingleTaskModel(experiment, LABEL, "multimodal", build,
                           {"model": model, "slide_encoder": dict(slide_encoder)},
                           {key: training[key] for key in OPTIMISER_KEYS}, protocol)
