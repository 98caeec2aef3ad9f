"""The whole ModalTune model: frozen slide encoder + Modal Adapter + transcriptomics encoder + task prompts.

For one patient (a bag of tile features with grid coordinates and one gene vector) and each task t the model returns
z_t = Linear(LayerNorm(f_img + f_task + f_gene)) (the paper's Eq. 4; reference section 8), where f_img is the raw CLS
token after the last encoder layer, f_task the task-prompt token(s) and f_gene the mean of the pathway tokens after
the adapter. With clinical tokens (ModalTune w/ Clinical, :mod:`modaltune.models.clinical`) the multimodal sequence
is [task prompts ; pathway tokens ; clinical tokens], E_C has a row for each, and f_gene is the mean over the pathway
and clinical tokens (every non-prompt multimodal token).

The task passes differ only in their prompt, so they run as one batch of ``len(tasks)`` through the frozen layers and
the adapter (``batched=True``); ``batched=False`` runs them one after the other and gives the same values.

The slide encoder must offer ``embed(features (B, N, D_in), coords (B, N, 2)) -> tokens (B, N + 1, D)`` (CLS first),
``run_layers(tokens, start, stop)`` (layers ``start`` .. ``stop - 1``), ``layer_blocks(n)`` (n contiguous
(start, stop) ranges) and ``config.embed_dim`` (:class:`modaltune.models.slide_encoder.SlideEncoder`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from modaltune.models.adapter import ModalAdapter
from modaltune.models.clinical import ClinicalTokens
from modaltune.models.omics_encoder import LearnedTokens, OmicsEncoder

TASKS = ("general", "subtype", "survival")
TOKEN_AGGREGATIONS = ("sum", "cat")
TRANSCRIPTOMICS = ("genes", "learned")


class ModalTune(nn.Module):
    def __init__(self, encoder: nn.Module, omics_encoder: OmicsEncoder | LearnedTokens, *, tasks: Sequence[str] = TASKS,
                 prompt_tokens: int = 1, output_dim: int = 256, token_aggregation: str = "sum",
                 n_blocks: int = 3, heads: int = 12, inner_ratio: float = 0.25, gamma_init: float = 0.0,
                 drop_path: float = 0.1, extra_extractors: int = 2, self_attention: bool = True,
                 residual: str = "paper", frozen_encoder_dropout: bool = False,
                 clinical: ClinicalTokens | None = None):
        super().__init__()
        if token_aggregation not in TOKEN_AGGREGATIONS:
            raise ValueError(f"token_aggregation must be one of {TOKEN_AGGREGATIONS}, got {token_aggregation!r}")
        dim = int(encoder.config.embed_dim)
        self.encoder = encoder
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.frozen_encoder_dropout = frozen_encoder_dropout
        self.tasks = tuple(tasks)
        self.prompt_tokens = prompt_tokens
        self.token_aggregation = token_aggregation
        self.blocks = encoder.layer_blocks(n_blocks)  # 12 layers in 3 blocks -> (0, 4), (4, 8), (8, 12)

        self.omics_encoder = omics_encoder
        self.clinical_encoder = clinical  # None: no parameter of that name, the model of the paper's Table 2
        n_modal = prompt_tokens + omics_encoder.n_tokens + (clinical.n_tokens if clinical is not None else 0)
        self.task_prompts = nn.Parameter(torch.empty(len(self.tasks), prompt_tokens, dim))
        self.task_norm = nn.LayerNorm(dim)
        self.modal_pos = nn.Parameter(torch.empty(n_modal, dim))  # E_C
        self.adapter = ModalAdapter(dim, n_blocks, heads, inner_ratio, gamma_init, drop_path, extra_extractors,
                                    self_attention, residual=residual)
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
        embedding dropout and drop-path of the frozen LongNet active while fine-tuning)."""
        super().train(mode)
        self.encoder.train(mode and self.frozen_encoder_dropout)
        return self

    def task_index(self, tasks: Sequence[str] | None) -> list[int]:
        return task_indices(self.tasks, tasks)

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
        prompts = self.task_norm(self.task_prompts[index])  # (T, k, D)
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
        prompts = self.task_norm(self.task_prompts[index]).expand(len(genes), -1, -1)
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
        image_feature = cls[:, 0]
        task_feature = modal[:, :self.prompt_tokens].mean(dim=1)
        gene_feature = modal[:, self.prompt_tokens:].mean(dim=1)
        if self.token_aggregation == "sum":
            pooled = image_feature + task_feature + gene_feature
        else:
            pooled = torch.cat([image_feature, task_feature, gene_feature], dim=-1)
        return self.final_project(self.final_norm(pooled))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen encoder."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}


def task_indices(known: Sequence[str], tasks: Sequence[str] | None) -> list[int]:
    """Positions of ``tasks`` (all of ``known`` when None) among a model's ``known`` tasks."""
    tasks = tuple(known) if tasks is None else tuple(tasks)
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; the model knows {tuple(known)}")
    return [tuple(known).index(t) for t in tasks]


def build_modaltune(model: Mapping[str, Any], slide_encoder: Mapping[str, Any],
                    pathway_genes: Sequence[Sequence[int]], n_genes: int, clinical_features: int = 0) -> nn.Module:
    """The model from the config sections ``model`` (modaltune/schema/model.yaml) and ``slide_encoder``.

    With ``model.clinical.enabled`` the model has clinical tokens reading ``clinical_features`` numbers per patient
    (the width of the fitted :class:`modaltune.cohort.clinical_encoding.ClinicalEncoder`).

    With ``model.transcriptomics`` "learned" (Single Modal) the pathways and genes are unused (pass [] and 0);
    ``model.finetuning`` "lora" returns :class:`modaltune.models.lora.ModalTuneLoRA` (no adapter).
    """
    from modaltune.models import create_slide_encoder

    encoder = create_slide_encoder(**slide_encoder)
    omics = model["omics"]
    if model["transcriptomics"] not in TRANSCRIPTOMICS:
        raise ValueError(f"model.transcriptomics must be one of {TRANSCRIPTOMICS}, got {model['transcriptomics']!r}")
    if model["transcriptomics"] == "learned":
        omics_encoder = LearnedTokens(omics["tokens"], encoder.config.embed_dim)
    else:
        omics_encoder = OmicsEncoder(
            pathway_genes, n_genes, out_dim=encoder.config.embed_dim, latent_dim=omics["latent_dim"],
            depth=omics["depth"], token_expansion=omics["token_expansion"],
            channel_expansion=omics["channel_expansion"], dropout=omics["dropout"], n_tokens=omics["tokens"],
        )
    clinical = None
    if model["clinical"]["enabled"]:
        if model["finetuning"] == "lora":
            raise ValueError("model.clinical is built for the Modal Adapter only; set model.finetuning adapter")
        if clinical_features < 1:
            raise ValueError("model.clinical.enabled needs the clinical vector's width (clinical_features), got "
                             f"{clinical_features}")
        clinical = ClinicalTokens(clinical_features, encoder.config.embed_dim, model["clinical"]["tokens"],
                                  model["clinical"]["hidden"])
    if model["finetuning"] == "lora":
        from modaltune.models.lora import ModalTuneLoRA

        lora = model["lora"]
        return ModalTuneLoRA(
            encoder, omics_encoder, tasks=model["tasks"], prompt_tokens=model["prompt_tokens"],
            output_dim=model["output_dim"], token_aggregation=model["token_aggregation"], rank=lora["rank"],
            alpha=lora["alpha"], dropout=lora["dropout"], targets=lora["targets"],
            frozen_encoder_dropout=model["frozen_encoder_dropout"],
        )
    adapter = model["adapter"]
    return ModalTune(
        encoder, omics_encoder, tasks=model["tasks"], prompt_tokens=model["prompt_tokens"],
        output_dim=model["output_dim"], token_aggregation=model["token_aggregation"],
        n_blocks=adapter["blocks"], heads=adapter["heads"], inner_ratio=adapter["inner_ratio"],
        gamma_init=adapter["gamma_init"], drop_path=adapter["drop_path"],
        extra_extractors=adapter["extra_extractors"], self_attention=adapter["self_attention"],
        residual=adapter["residual"], frozen_encoder_dropout=model["frozen_encoder_dropout"], clinical=clinical,
    )
