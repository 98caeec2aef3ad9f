"""ABMIL (Ilse et al. 2018) in SurvPath's pathology layout (reference baselines.md section 1).

Linear(D -> hidden), ReLU, Dropout -> gated attention a_k = w^T[tanh(V h_k) * sigmoid(U h_k)], softmax over the tiles,
weighted sum -> rho Linear(hidden -> hidden), ReLU, Dropout -> head Linear(hidden -> C). The embedding is rho's output,
the ``h_path`` that late fusion concatenates. The input width is the tile encoder's (1536 for Gigapath), not
SurvPath's hard-coded 1024.
"""

from __future__ import annotations

import torch
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput, bag_of


class GatedAttentionPool(nn.Module):
    """``forward(x (N, dim)) -> (pooled (dim,), weights (N,))``, CLAM's ``Attn_Net_Gated`` with its softmax."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.tanh_branch = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Dropout(dropout))
        self.gate_branch = nn.Sequential(nn.Linear(dim, hidden), nn.Sigmoid(), nn.Dropout(dropout))
        self.score = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.score(self.tanh_branch(x) * self.gate_branch(x)).squeeze(-1), dim=0)
        return weights @ x, weights


class ABMIL(Baseline):
    reads = frozenset({"bag"})

    def __init__(self, n_outputs: int, inputs: BaselineInputs, hidden_dim: int = 256, attention_dim: int = 256,
                 dropout: float = 0.25):
        super().__init__()
        self.project = nn.Sequential(nn.Linear(inputs.feature_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout))
        self.pool = GatedAttentionPool(hidden_dim, attention_dim, dropout)
        self.rho = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout))
        self.embed_dim = hidden_dim
        self.head = nn.Linear(hidden_dim, n_outputs)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        pooled, _ = self.pool(self.project(bag_of(patient)))
        return self.rho(pooled)
