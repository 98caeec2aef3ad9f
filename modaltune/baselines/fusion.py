"""Fusion of two embeddings into one (reference baselines.md section 10): concatenation, and Pathomic Fusion's gated
Kronecker product. MCAT's "concat" fusion and the late-fusion "(cat)" models are the same module.
"""

from __future__ import annotations

import torch
from torch import nn

# Training-state bytes per weight of the first layer after the Kronecker product: the fp32 weight, its gradient and
# AdamW's two moments.
BYTES_PER_TRAINED_WEIGHT = 4 * 4
KRONECKER_LIMIT_GIB = 2.0


class ConcatFusion(nn.Module):
    """h = ReLU(W2 ReLU(W1 [a; b])): W1 (dim_a + dim_b -> out_dim), W2 (out_dim -> out_dim), as MCAT and SurvPath."""

    def __init__(self, dim_a: int, dim_b: int, out_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim_a + dim_b, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([a, b], dim=-1))


class GatedUnimodal(nn.Module):
    """One modality's gated embedding o = Dropout(ReLU(W_o (sigmoid(z) * h))), h = ReLU(W_h v), z = W_z [v; other]:
    the gate sees both modalities (MCAT/SurvPath's BilinearFusion with use_bilinear 0)."""

    def __init__(self, dim: int, other_dim: int, k: int, dropout: float):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(dim, k), nn.ReLU())
        self.gate = nn.Linear(dim + other_dim, k)
        self.out = nn.Sequential(nn.Linear(k, k), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, v: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return self.out(torch.sigmoid(self.gate(torch.cat([v, other], dim=-1))) * self.hidden(v))


class KroneckerFusion(nn.Module):
    """Pathomic Fusion's gated Kronecker product: gated k-d embeddings o_a, o_b, a 1 appended to each (keeping the
    unimodal terms), vec(o_a' outer o_b') of size (k + 1)^2 -> Dropout -> two Linear-ReLU-Dropout layers of out_dim."""

    def __init__(self, dim_a: int, dim_b: int, k: int, out_dim: int, dropout: float):
        super().__init__()
        self.gate_a = GatedUnimodal(dim_a, dim_b, k, dropout)
        self.gate_b = GatedUnimodal(dim_b, dim_a, k, dropout)
        self.encoder = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear((k + 1) ** 2, out_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(out_dim, out_dim), nn.ReLU(), nn.Dropout(dropout),
        )
        self.out_dim = out_dim

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        one = a.new_ones(1)
        o_a = torch.cat([self.gate_a(a, b), one])
        o_b = torch.cat([self.gate_b(b, a), one])
        return self.encoder(torch.outer(o_a, o_b).flatten())


def check_kronecker_size(name: str, k: int, out_dim: int) -> None:
    """Refuse a Kronecker fusion whose first layer after the product would not fit the memory limit in training."""
    flat = (k + 1) ** 2
    gib = flat * out_dim * BYTES_PER_TRAINED_WEIGHT / 2**30
    if gib > KRONECKER_LIMIT_GIB:
        raise ValueError(
            f"{name}: the Kronecker fusion flattens ({k} + 1) x ({k} + 1) = {flat} features into {out_dim} units, "
            f"{gib:.1f} GiB of weights, gradients and AdamW state (limit {KRONECKER_LIMIT_GIB:g} GiB); lower "
            f"baselines.{name}.kp_dim (the {k} per modality) or baselines.{name}.fusion_dim (the {out_dim})")
