"""ModalTune w/ LoRA (paper Table 8): LoRA on the frozen slide encoder's attention projections in place of the
Modal Adapter, with the task prompt and the transcriptomics tokens entering the encoder's own token sequence.

The paper gives no more detail; this design keeps everything but the adapter as in :class:`ModalTune`:

* sequence per task pass: ``[CLS, task prompt (k tokens), pathway tokens (n), tiles]``. The multimodal tokens carry
  the learned position E_C (no grid position) and sit right after CLS, so the dense first branch of dilated attention
  lets every tile of the first segment attend to them, and they attend to each other and to CLS;
* LoRA (``peft``, on our LongNet's ``nn.Linear`` projections, q/k/v by default) with rank r and scaling alpha / r;
  every other encoder weight stays frozen, the LoRA B matrices start at zero so the encoder starts as pretrained;
* output as Eq. 4: Linear(LayerNorm(CLS + mean task tokens + mean pathway tokens)) after the last layer.

Only the LoRA matrices, the transcriptomics encoder, the prompts, E_C and the output head are trained.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from modaltune.models.modaltune import TASKS, TOKEN_AGGREGATIONS, task_indices
from modaltune.models.omics_encoder import LearnedTokens, OmicsEncoder

LORA_KEY = "lora_"  # peft's parameter names: lora_A, lora_B


class ModalTuneLoRA(nn.Module):
    def __init__(self, encoder: nn.Module, omics_encoder: OmicsEncoder | LearnedTokens, *,
                 tasks: Sequence[str] = TASKS, prompt_tokens: int = 1, output_dim: int = 256,
                 token_aggregation: str = "sum", rank: int = 8, alpha: float = 32, dropout: float = 0.0,
                 targets: Sequence[str] = ("q_proj", "k_proj", "v_proj"), frozen_encoder_dropout: bool = False):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model

        if token_aggregation not in TOKEN_AGGREGATIONS:
            raise ValueError(f"token_aggregation must be one of {TOKEN_AGGREGATIONS}, got {token_aggregation!r}")
        dim = int(encoder.config.embed_dim)
        if rank > dim:
            raise ValueError(f"LoRA rank {rank} exceeds the width {dim} of the encoder's attention projections")
        for parameter in encoder.parameters():
            parameter.requires_grad_(False)
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
        self.encoder = inject_adapter_in_model(config, encoder)  # LoRA params trainable, the rest stays frozen
        self.frozen_encoder_dropout = frozen_encoder_dropout
        self.tasks = tuple(tasks)
        self.prompt_tokens = prompt_tokens
        self.token_aggregation = token_aggregation
        self.omics_encoder = omics_encoder
        self.task_prompts = nn.Parameter(torch.empty(len(self.tasks), prompt_tokens, dim))
        self.task_norm = nn.LayerNorm(dim)
        self.modal_pos = nn.Parameter(torch.empty(prompt_tokens + omics_encoder.n_tokens, dim))  # E_C
        pooled = dim if token_aggregation == "sum" else 3 * dim
        self.final_norm = nn.LayerNorm(pooled)
        self.final_project = nn.Linear(pooled, output_dim)
        nn.init.trunc_normal_(self.task_prompts, std=0.02)
        nn.init.trunc_normal_(self.modal_pos, std=0.02)
        nn.init.trunc_normal_(self.final_project.weight, std=0.02)
        nn.init.zeros_(self.final_project.bias)
        self.encoder.eval()

    def train(self, mode: bool = True):
        """The encoder's own dropout follows ``frozen_encoder_dropout``; the LoRA dropout is part of it."""
        super().train(mode)
        self.encoder.train(mode and self.frozen_encoder_dropout)
        return self

    def task_index(self, tasks: Sequence[str] | None) -> list[int]:
        return task_indices(self.tasks, tasks)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, genes: torch.Tensor | None,
                tasks: Sequence[str] | None = None) -> torch.Tensor:
        """One patient, as :meth:`ModalTune.forward`: (len(tasks), output_dim) raw task embeddings."""
        index = self.task_index(tasks)
        tokens = self.encoder.embed(features.unsqueeze(0), coords.unsqueeze(0))  # (1, N + 1, D)
        pathways = self.omics_encoder(None if genes is None else genes.unsqueeze(0))  # (1, n, D)
        prompts = self.task_norm(self.task_prompts[index])  # (T, k, D)
        modal = torch.cat([prompts, pathways.expand(len(index), -1, -1)], dim=1) + self.modal_pos
        batch = len(index)
        sequence = torch.cat([tokens[:, :1].expand(batch, -1, -1), modal, tokens[:, 1:].expand(batch, -1, -1)], dim=1)
        out = self.encoder.run_layers(sequence)
        k = self.prompt_tokens
        image_feature = out[:, 0]
        task_feature = out[:, 1:1 + k].mean(dim=1)
        gene_feature = out[:, 1 + k:1 + modal.shape[1]].mean(dim=1)
        if self.token_aggregation == "sum":
            pooled = image_feature + task_feature + gene_feature
        else:
            pooled = torch.cat([image_feature, task_feature, gene_feature], dim=-1)
        return self.final_project(self.final_norm(pooled))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen encoder weights: the LoRA matrices inside the encoder are included."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.") or LORA_KEY in k}
