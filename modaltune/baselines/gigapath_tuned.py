"""Prov-GigaPath tuned end to end: our LongNet slide encoder + one Linear head (reference baselines.md section 3).

Unlike ModalTune, every encoder weight trains. The pooled slide vector is Gigapath's: the CLS token (or the tile mean)
after the final norms; ``feature_layer`` k < depth pools the output of block k instead (upstream's fine-tuning default
is 11 of 12, without the encoder's last LayerNorm), and the unused later blocks are frozen. The optimiser groups use
BEiT-style layer-wise learning-rate decay as Gigapath's fine-tuning code does: block i (0-based) gets
decay^(depth - i), the CLS token decay^(depth + 1), everything else (head, norms, patch embedding; upstream's prefix
check never matches patch_embed) 1; 1-d parameters, biases and the CLS token get no weight decay.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput, bag_of, coords_of
from modaltune.models.slide_encoder import SlideEncoder

_BLOCK = re.compile(r"^encoder\.encoder\.layers\.(\d+)\.")


class GigapathTuned(Baseline):
    reads = frozenset({"bag"})

    def __init__(self, encoder: SlideEncoder, n_outputs: int, feature_layer: int | None = None, pool: str = "cls",
                 layer_decay: float = 0.95):
        super().__init__()
        depth = encoder.config.depth
        self.feature_layer = depth if feature_layer is None else feature_layer
        if not 1 <= self.feature_layer <= depth:
            raise ValueError(f"gigapath_tuned: feature_layer {feature_layer} outside 1..{depth} of the encoder")
        self.encoder = encoder
        for layer in encoder.encoder.layers[self.feature_layer:]:
            layer.requires_grad_(False)
        if self.feature_layer < depth:  # the encoder's last LayerNorm only follows the final block
            encoder.encoder.layer_norm.requires_grad_(False)
        self.pool = pool
        self.layer_decay = layer_decay
        self.embed_dim = encoder.config.embed_dim
        self.head = nn.Linear(self.embed_dim, n_outputs)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        tokens = self.encoder.embed(bag_of(patient).unsqueeze(0), coords_of(patient).unsqueeze(0))
        tokens = self.encoder.run_layers(tokens, 0, self.feature_layer)
        final = self.feature_layer == self.encoder.config.depth
        return self.encoder.head(tokens, self.pool, encoder_norm=final)[0]

    def lr_scale(self, name: str) -> float:
        depth = self.encoder.config.depth
        if name == "encoder.cls_token":
            return self.layer_decay ** (depth + 1)
        if match := _BLOCK.match(name):
            return self.layer_decay ** (depth - int(match.group(1)))
        return 1.0

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            no_decay = parameter.ndim <= 1 or name.endswith(".bias") or name == "encoder.cls_token"
            groups.setdefault((self.lr_scale(name), 0.0 if no_decay else weight_decay), []).append(parameter)
        return [{"params": params, "lr_scale": scale, "weight_decay": decay}
                for (scale, decay), params in sorted(groups.items(), key=lambda item: item[0])]


def build_gigapath_tuned(n_outputs: int, inputs: BaselineInputs, **kwargs) -> GigapathTuned:
    """The slide encoder of the config section ``slide_encoder`` (its weights when set) with a head."""
    from modaltune.models import create_slide_encoder

    if not inputs.slide_encoder:
        raise ValueError("gigapath_tuned needs the slide_encoder config section")
    encoder = create_slide_encoder(**inputs.slide_encoder)
    if encoder.config.in_chans != inputs.feature_dim:
        raise ValueError(f"gigapath_tuned: slide encoder '{encoder.config.name}' reads {encoder.config.in_chans}-d "
                         f"tiles, the features are {inputs.feature_dim}-d; match features.encoder and slide_encoder")
    return GigapathTuned(encoder, n_outputs, **kwargs)
