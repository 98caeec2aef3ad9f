"""Genomics baselines on the whole gene vector: MLP and SNN, SurvPath's layouts (reference baselines.md sections 4, 5).

MLP: Linear(G -> h), ReLU, Dropout, Linear(h -> h), ReLU, Dropout -> head, h = 32 as SurvPath's runs pass.
SNN: two SNN blocks (Linear, ELU, AlphaDropout) of width 256 -> head, weights N(0, 1/sqrt(fan_in)), biases 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput, genes_of


class MLP(Baseline):
    reads = frozenset({"genes"})

    def __init__(self, n_outputs: int, inputs: BaselineInputs, hidden_dim: int = 32, dropout: float = 0.25):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(inputs.n_genes, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
        )
        self.embed_dim = hidden_dim
        self.head = nn.Linear(hidden_dim, n_outputs)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        return self.body(genes_of(patient))


def snn_block(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    """mahmoodlab's SNN_Block: ELU (not SELU) and AlphaDropout."""
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.ELU(), nn.AlphaDropout(dropout))


class SNN(Baseline):
    reads = frozenset({"genes"})

    def __init__(self, n_outputs: int, inputs: BaselineInputs, hidden_dim: int = 256, dropout: float = 0.25):
        super().__init__()
        self.body = nn.Sequential(snn_block(inputs.n_genes, hidden_dim, dropout),
                                  snn_block(hidden_dim, hidden_dim, dropout))
        self.embed_dim = hidden_dim
        self.head = nn.Linear(hidden_dim, n_outputs)
        for module in self.modules():  # init_max_weights
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=1 / math.sqrt(module.in_features))
                nn.init.zeros_(module.bias)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        return self.body(genes_of(patient))
