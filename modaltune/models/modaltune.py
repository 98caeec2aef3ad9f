"""The whole ModalTune model: frozen slide encoder + Modal Adapter + transcriptomics encoder + task prompts.

For one patient (a bag of tile features with grid coordinates and one gene vector) and each task t the model returns
z_t = Linear(LayerNorm(f_img + f_task + f_gene)) (the paper's Eq. 4; reference section 8), where f_img is the raw CLS
token after the last encoder layer, f_task the task-prompt token(s) and f_gene the mean of the pathway tokens after
the adapter. With clinical tokens (ModalTune w/ Clinical, :mod:`modaltune.models.clinical`) the multimodal sequence
is [task prompts ; pathway tokens ; clinical tokens], E_C has a row for each, and f_gene is the mean over the pathway
and clinical tokens (every non-prompt multimodal token).

The prompts, E_C and the output head are :class:`PromptedModel`'s, shared with ModalTune w/ LoRA
(:mod:`modaltune.models.lora`); :func:`build_modaltune` builds any model of the family (:data:`modaltune.models.FAMILY`).

The task passes differ only in their prompt, so they run as one batch of ``len(tasks)`` through the frozen layers and
the adapter (``batched=True``); ``batched=False`` runs them one after the other and gives the same values.

The slide encoder must offer ``embed(features (B, N, D_in), coords (B, N, 2)) -> tokens (B, N + 1, D)`` (CLS first),
``run_layers(tokens, start, stop)`` (layers ``start`` .. ``stop - 1``), ``layer_blocks(n)`` (n contiguous
(start, stop) ranges) and ``config.embed_dim`` (:class:`modaltune.models.slide_encoder.SlideEncoder`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modaltune.models.adapter import ModalAdapter
from modaltune.models.clinical import ClinicalTokens
from modaltune.models.omics_encoder import LearnedTokens, OmicsEncoder

TASKS = ("general", "subtype", "survival")
TOKEN_AGGREGATIONS = ("sum", "cat")
TRANSCRIPTOMICS = ("genes", "learned")


class PromptedModel(nn.Module):
    """What ModalTune and ModalTune w/ LoRA share around their slide encoder: the task prompts (``task_prompts``,
    LayerNorm ``task_norm``), the learned position E_C of the multimodal tokens (``modal_pos``: prompt tokens, then
    the transcriptomics encoder's tokens, then any clinical tokens), the Eq. 4 output head (``final_norm``,
    ``final_project``), the frozen encoder's train/eval mode and the task order. Subclasses pass the encoder already
    frozen (:func:`frozen`; with its LoRA matrices for ModalTune w/ LoRA) and define how the multimodal tokens meet
    the tiles."""

    def __init__(self, encoder: nn.Module, omics_encoder: OmicsEncoder | LearnedTokens, *, tasks: Sequence[str],
                 prompt_tokens: int, output_dim: int, token_aggregation: str, frozen_encoder_dropout: bool,
                 clinical: ClinicalTokens | None = None):
        super().__init__()
        if token_aggregation not in TOKEN_AGGREGATIONS:
            raise ValueError(f"token_aggregation must be one of {TOKEN_AGGREGATIONS}, got {token_aggregation!r}")
        dim = int(encoder.config.embed_dim)
        self.encoder = encoder
        self.frozen_encoder_dropout = frozen_encoder_dropout
        self.tasks = tuple(tasks)
        self.prompt_tokens = prompt_tokens
        self.token_aggregation = token_aggregation
        self.omics_encoder = omics_encoder
        self.clinical_encoder = clinical  # None: no parameter of that name, the model of the paper's Table 2
        n_modal = prompt_tokens + omics_encoder.n_tokens + (clinical.n_tokens if clinical is not None else 0)
        self.task_prompts = nn.Parameter(torch.empty(len(self.tasks), prompt_tokens, dim))
        self.task_norm = nn.LayerNorm(dim)
        self.modal_pos = nn.Parameter(torch.empty(n_modal, dim))  # E_C
        pooled = dim if token_aggregation == "sum" else 3 * dim
        self.final_norm = nn.LayerNorm(pooled)
        self.final_project = nn.Linear(pooled, output_dim)
        nn.init.trunc_normal_(self.task_prompts, std=0.02)
        nn.init.trunc_normal_(self.modal_pos, std=0.02)
        nn.init.trunc_normal_(self.final_project.weight, std=0.02)
        nn.init.zeros_(self.final_project.bias)
        self.encoder.eval()

    def train(self, mode: bool = True):
        """The frozen encoder stays in eval mode unless ``frozen_encoder_dropout`` (the official code's behaviour:
        embedding dropout and drop-path of the frozen LongNet active while fine-tuning; LoRA's dropout with it)."""
        super().train(mode)
        self.encoder.train(mode and self.frozen_encoder_dropout)
        return self

    def task_index(self, tasks: Sequence[str] | None) -> list[int]:
        return task_indices(self.tasks, tasks)

    def prompts(self, index: Sequence[int]) -> torch.Tensor:
        """The normalised prompt tokens of the tasks at ``index``: (len(index), prompt_tokens, D)."""
        return self.task_norm(self.task_prompts[index])

    def output(self, cls: torch.Tensor, modal: torch.Tensor) -> torch.Tensor:
        """Eq. 4 from the CLS token (B, D) and the multimodal tokens (B, k + n_tokens, D) after the last layer:
        Linear(LayerNorm(f_img + f_task + f_gene)) (``cat``: the three concatenated) -> (B, output_dim)."""
        task_feature = modal[:, :self.prompt_tokens].mean(dim=1)
        gene_feature = modal[:, self.prompt_tokens:].mean(dim=1)
        if self.token_aggregation == "sum":
            pooled = cls + task_feature + gene_feature
        else:
            pooled = torch.cat([cls, task_feature, gene_feature], dim=-1)
        return self.final_project(self.final_norm(pooled))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen encoder."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}


def frozen(encoder: nn.Module) -> nn.Module:
    """``encoder`` with every parameter excluded from training (before LoRA adds its trainable matrices)."""
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    return encoder


class ModalTune(PromptedModel):
    def __init__(self, encoder: nn.Module, omics_encoder: OmicsEncoder | LearnedTokens, *, tasks: Sequence[str] = TASKS,
                 prompt_tokens: int = 1, output_dim: int = 256, token_aggregation: str = "sum",
                 n_blocks: int = 3, heads: int = 12, inner_ratio: float = 0.25, gamma_init: float = 0.0,
                 drop_path: float = 0.1, extra_extractors: int = 2, self_attention: bool = True,
                 residual: str = "paper", frozen_encoder_dropout: bool = False,
                 clinical: ClinicalTokens | None = None):
        super().__init__(frozen(encoder), omics_encoder, tasks=tasks, prompt_tokens=prompt_tokens,
                         output_dim=output_dim, token_aggregation=token_aggregation,
                         frozen_encoder_dropout=frozen_encoder_dropout, clinical=clinical)
        self.blocks = encoder.layer_blocks(n_blocks)  # 12 layers in 3 blocks -> (0, 4), (4, 8), (8, 12)
        self.adapter = ModalAdapter(int(encoder.config.embed_dim), n_blocks, heads, inner_ratio, gamma_init,
                                    drop_path, extra_extractors, self_attention, residual=residual)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, genes: torch.Tensor | None,
                tasks: Sequence[str] | None = None, batched: bool = True,
                clinical: torch.Tensor | None = None) -> torch.Tensor:
        """One patient: features (N, D_in), coords (N, 2) grid-frame coordinates, genes (G,) scaled expression
        (None with learned tokens in place of the transcriptomics encoder), clinical (F,) the clinical vector of a
        model with clinical tokens.

        Returns the raw (un-normalised) task embeddings, (len(tasks), output_dim), in the order of ``tasks``
        (default: all tasks of the model).
        """
        index = self.task_index(tasks)
        tokens = self.encoder.embed(features.unsqueeze(0), coords.unsqueeze(0))  # (1, N + 1, D)
        pathways = self.omics_encoder(None if genes is None else genes.unsqueeze(0))  # (1, n_tokens, D)
        context = self._with_clinical(pathways, None if clinical is None else clinical.unsqueeze(0))
        prompts = self.prompts(index)  # (T, k, D)
        modal = torch.cat([prompts, context.expand(len(index), -1, -1)], dim=1)
        if batched:
            return self._passes(tokens.expand(len(index), -1, -1), modal)
        return torch.cat([self._passes(tokens, modal[i:i + 1]) for i in range(len(index))])

    def _with_clinical(self, pathways: torch.Tensor, clinical: torch.Tensor | None) -> torch.Tensor:
        """Pathway tokens (B, n, D), followed by the clinical tokens of clinical vectors (B, F) when the model has them."""
        if (clinical is None) != (self.clinical_encoder is None):
            raise ValueError("a model with clinical tokens needs the clinical vector, a model without them takes none"
                             f" (model.clinical.enabled is {self.clinical_encoder is not None})")
        if clinical is None:
            return pathways
        return torch.cat([pathways, self.clinical_encoder(clinical).expand(len(pathways), -1, -1)], dim=1)

    def forward_genes(self, tokens: torch.Tensor, genes: torch.Tensor, task: str) -> torch.Tensor:
        """One patient's embedded tiles (1, N + 1, D) from ``encoder.embed`` with a batch of gene vectors (B, G) ->
        the task's embeddings (B, output_dim). Integrated gradients run many gene inputs against one bag with it;
        each row equals ``forward(features, coords, genes[i], tasks=[task])``."""
        index = self.task_index([task])
        prompts = self.prompts(index).expand(len(genes), -1, -1)
        modal = torch.cat([prompts, self._with_clinical(self.omics_encoder(genes), None)], dim=1)
        return self._passes(tokens.expand(len(genes), -1, -1), modal)

    def _passes(self, tokens: torch.Tensor, modal: torch.Tensor) -> torch.Tensor:
        """Tokens (B, N + 1, D) with CLS first and multimodal tokens (B, k + n_tokens, D) -> (B, output_dim)."""
        cls, image = tokens[:, :1], tokens[:, 1:]
        for block, (start, stop) in enumerate(self.blocks):
            image, modal = self.adapter.inject(block, image, modal, self.modal_pos)
            tokens = self.encoder.run_layers(torch.cat([cls, image], dim=1), start, stop)
            cls, image = tokens[:, :1], tokens[:, 1:]
            modal = self.adapter.extract(block, modal, image, self.modal_pos)
        return self.output(cls[:, 0], modal)


def task_indices(known: Sequence[str], tasks: Sequence[str] | None) -> list[int]:
    """Positions of ``tasks`` (all of ``known`` when None) among a model's ``known`` tasks."""
    tasks = tuple(known) if tasks is None else tuple(tasks)
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; the model knows {tuple(known)}")
    return [tuple(known).index(t) for t in tasks]


@dataclass(frozen=True)
class ModelInputs:
    """What a model of the family is built for besides its ``model`` section: the ``slide_encoder`` section, the
    gene vector's pathway layout, and for a model on a registered baseline its tile-feature width and architecture
    settings (the keys of ``baselines.<model.architecture>`` that are not optimiser settings)."""

    slide_encoder: Mapping[str, Any]
    pathway_genes: Sequence[Sequence[int]] = ()
    n_genes: int = 0
    feature_dim: int = 0
    baseline: Mapping[str, Any] | None = None
    clinical_features: int = 0  # the width of the fitted clinical vector (model.clinical.enabled)


def build_modaltune(model: Mapping[str, Any], slide_encoder: Mapping[str, Any],
                    pathway_genes: Sequence[Sequence[int]], n_genes: int, *, feature_dim: int = 0,
                    baseline: Mapping[str, Any] | None = None, clinical_features: int = 0) -> nn.Module:
    """The model from the config sections ``model`` (modaltune/schema/model.yaml, plus ``output_dim``) and
    ``slide_encoder``, by its :data:`modaltune.models.FAMILY` name.

    With ``model.clinical.enabled`` the model has clinical tokens reading ``clinical_features`` numbers per patient
    (the width of the fitted :class:`modaltune.cohort.clinical_encoding.ClinicalEncoder`).

    With ``model.transcriptomics`` "learned" (Single Modal) the pathways and genes are unused (pass [] and 0);
    ``model.finetuning`` "lora" builds :class:`modaltune.models.lora.ModalTuneLoRA` (no adapter); ``model.architecture``
    "abmil_cat" the registered ABMIL (cat) baseline with a head per task, from ``feature_dim`` and ``baseline``.
    """
    from modaltune.models import FAMILY, family_member

    module, builder = FAMILY[family_member(model)].split(":")
    inputs = ModelInputs(slide_encoder, pathway_genes, n_genes, feature_dim, baseline, clinical_features)
    return getattr(importlib.import_module(module), builder)(model, inputs)


def encoder_and_omics(model: Mapping[str, Any], inputs: ModelInputs) -> tuple[nn.Module, OmicsEncoder | LearnedTokens]:
    """The slide encoder and the transcriptomics encoder (or the Single Modal tokens) at its width."""
    from modaltune.models import create_slide_encoder

    encoder = create_slide_encoder(**inputs.slide_encoder)
    omics, dim = model["omics"], encoder.config.embed_dim
    if model["transcriptomics"] not in TRANSCRIPTOMICS:
        raise ValueError(f"model.transcriptomics must be one of {TRANSCRIPTOMICS}, got {model['transcriptomics']!r}")
    if model["transcriptomics"] == "learned":
        return encoder, LearnedTokens(omics["tokens"], dim)
    return encoder, OmicsEncoder(
        inputs.pathway_genes, inputs.n_genes, out_dim=dim, latent_dim=omics["latent_dim"], depth=omics["depth"],
        token_expansion=omics["token_expansion"], channel_expansion=omics["channel_expansion"],
        dropout=omics["dropout"], n_tokens=omics["tokens"],
    )


def build_adapter_model(model: Mapping[str, Any], inputs: ModelInputs) -> ModalTune:
    encoder, omics_encoder = encoder_and_omics(model, inputs)
    clinical = None
    if model["clinical"]["enabled"]:
        if inputs.clinical_features < 1:
            raise ValueError("model.clinical.enabled needs the clinical vector's width (clinical_features), got "
                             f"{inputs.clinical_features}")
        clinical = ClinicalTokens(inputs.clinical_features, encoder.config.embed_dim, model["clinical"]["tokens"],
                                  model["clinical"]["hidden"])
    adapter = model["adapter"]
    return ModalTune(
        encoder, omics_encoder, tasks=model["tasks"], prompt_tokens=model["prompt_tokens"],
        output_dim=model["output_dim"], token_aggregation=model["token_aggregation"],
        n_blocks=adapter["blocks"], heads=adapter["heads"], inner_ratio=adapter["inner_ratio"],
        gamma_init=adapter["gamma_init"], drop_path=adapter["drop_path"],
        extra_extractors=adapter["extra_extractors"], self_attention=adapter["self_attention"],
        residual=adapter["residual"], frozen_encoder_dropout=model["frozen_encoder_dropout"], clinical=clinical,
    )
