"""ModalTune w/ LoRA (paper Table 8): LoRA on the frozen slide encoder's attention projections in place of the
Modal Adapter, with the task prompt and the transcriptomics tokens entering the encoder's own token sequence.

The paper gives no more detail; this design keeps everything but the adapter as in :class:`ModalTune`:

* sequence per task pass: ``[CLS, task prompt (k tokens), pathway tokens (n), tiles]``. The multimodal tokens carry
  the learned position E_C (no grid position) and sit right after CLS, so the dense first branch of dilated attention
  lets every tile of the first segment attend to them, and they attend to each other and to CLS;
* LoRA (``peft``, on our LongNet's ``nn.Linear`` projections, q/k/v by default) with rank r and scaling alpha / r;
  every other encoder weight stays frozen, the LoRA B matrices start at zero so the encoder starts as pretrained;
* output as Eq. 4: Linear(LayerNorm(CLS + mean task tokens + mean pathway tokens)) after the last layer.

Only the LoRA matrices, the transcriptomics encoder, the prompts, E_C and the output head are trained; the prompts,
E_C and the output head are :class:`modaltune.models.modaltune.PromptedModel`'s, shared with ModalTune.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from modaltune.models.modaltune import TASKS, ModelInputs, PromptedModel, encoder_and_omics, frozen
from modaltune.models.omics_encoder import LearnedTokens, OmicsEncoder

LORA_KEY = "lora_"  # peft's parameter names: lora_A, lora_B


class ModalTuneLoRA(PromptedModel):
    def __init__(self, encoder: nn.Module, omics_encoder: OmicsEncoder | LearnedTokens, *,
                 tasks: Sequence[str] = TASKS, prompt_tokens: int = 1, output_dim: int = 256,
                 token_aggregation: str = "sum", rank: int = 8, alpha: float = 32, dropout: float = 0.0,
                 targets: Sequence[str] = ("q_proj", "k_proj", "v_proj"), frozen_encoder_dropout: bool = False):
        from peft import LoraConfig, inject_adapter_in_model

        dim = int(encoder.config.embed_dim)
        if rank > dim:
            raise ValueError(f"LoRA rank {rank} exceeds the width {dim} of the encoder's attention projections")
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets))
        encoder = inject_adapter_in_model(config, frozen(encoder))  # LoRA params trainable, the rest stays frozen
        super().__init__(encoder, omics_encoder, tasks=tasks, prompt_tokens=prompt_tokens, output_dim=output_dim,
                         token_aggregation=token_aggregation, frozen_encoder_dropout=frozen_encoder_dropout)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, genes: torch.Tensor | None,
                tasks: Sequence[str] | None = None) -> torch.Tensor:
        """One patient, as :meth:`ModalTune.forward`: (len(tasks), output_dim) raw task embeddings."""
        index = self.task_index(tasks)
        tokens = self.encoder.embed(features.unsqueeze(0), coords.unsqueeze(0))  # (1, N + 1, D)
        pathways = self.omics_encoder(None if genes is None else genes.unsqueeze(0))  # (1, n, D)
        prompts = self.prompts(index)  # (T, k, D)
        modal = torch.cat([prompts, pathways.expand(len(index), -1, -1)], dim=1) + self.modal_pos
        batch = len(index)
        sequence = torch.cat([tokens[:, :1].expand(batch, -1, -1), modal, tokens[:, 1:].expand(batch, -1, -1)], dim=1)
        out = self.encoder.run_layers(sequence)
        return self.output(out[:, 0], out[:, 1:1 + modal.shape[1]])

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything but the frozen encoder weights: the LoRA matrices inside the encoder are included."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.") or LORA_KEY in k}


def build_lora_model(model: Mapping[str, Any], inputs: ModelInputs) -> ModalTuneLoRA:
    encoder, omics_encoder = encoder_and_omics(model, inputs)
    lora = model["lora"]
    return ModalTuneLoRA(
        encoder, omics_encoder, tasks=model["tasks"], prompt_tokens=model["prompt_tokens"],
        output_dim=model["output_dim"], token_aggregation=model["token_aggregation"], rank=lora["rank"],
        alpha=lora["alpha"], dropout=lora["dropout"], targets=lora["targets"],
        frozen_encoder_dropout=model["frozen_encoder_dropout"],
    )
