"""TransMIL (Shao et al. 2021), the official model (reference baselines.md section 2), on the `nystrom-attention`
package that the original pins.

Linear(D -> dim), ReLU -> square padding (the first side^2 - N tokens appended again) -> CLS -> TransLayer -> PPEG ->
TransLayer -> LayerNorm -> the CLS token is the embedding -> head Linear(dim -> C). TransLayer is
x + NystromAttention(LayerNorm(x)) with no feed-forward block, as upstream.
"""

from __future__ import annotations

import math

import torch
from nystrom_attention import NystromAttention
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput, bag_of


class TransLayer(nn.Module):
    def __init__(self, dim: int, heads: int, landmarks: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = NystromAttention(dim=dim, dim_head=dim // heads, heads=heads, num_landmarks=landmarks,
                                          pinv_iterations=6, residual=True, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attention(self.norm(x))


class PPEG(nn.Module):
    """Pyramid position encoding: x + DW7x7(x) + DW5x5(x) + DW3x3(x) over the tiles laid out side x side."""

    def __init__(self, dim: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (7, 5, 3))

    def forward(self, tokens: torch.Tensor, side: int) -> torch.Tensor:
        cls, patches = tokens[:, :1], tokens[:, 1:]
        grid = patches.transpose(1, 2).reshape(tokens.shape[0], -1, side, side)
        grid = grid + sum(conv(grid) for conv in self.convs)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)


class TransMIL(Baseline):
    reads = frozenset({"bag"})

    def __init__(self, n_outputs: int, inputs: BaselineInputs, dim: int = 512, heads: int = 8,
                 landmarks: int = 256, dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"transmil: dim {dim} is not divisible by heads {heads}")
        self.project = nn.Sequential(nn.Linear(inputs.feature_dim, dim), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.layer1 = TransLayer(dim, heads, landmarks, dropout)
        self.ppeg = PPEG(dim)
        self.layer2 = TransLayer(dim, heads, landmarks, dropout)
        self.norm = nn.LayerNorm(dim)
        self.embed_dim = dim
        self.head = nn.Linear(dim, n_outputs)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        tokens = self.project(bag_of(patient))
        n = len(tokens)
        side = math.ceil(math.sqrt(n))
        repeat = torch.arange(side * side - n, device=tokens.device) % n  # upstream: the first tokens again
        tokens = torch.cat([self.cls_token[0], tokens, tokens[repeat]]).unsqueeze(0)
        tokens = self.layer2(self.ppeg(self.layer1(tokens), side))
        return self.norm(tokens)[0, 0]
