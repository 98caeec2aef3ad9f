"""Clinical tokens (paper Table 10, ModalTune w/ Clinical): a 2-layer MLP turns the patient's clinical vector
(:class:`modaltune.cohort.clinical_encoding.ClinicalEncoder`: z-scored value and missing indicator per field) into
``n_tokens`` tokens of the slide encoder's width, which join the pathway tokens in the multimodal sequence.

As upstream's clinical variant (LayerNorm(Linear(384 -> 768)(ReLU(Linear(5 -> 384)(clin))))), generalised to k
tokens: Linear(F -> hidden) -> ReLU -> Linear(hidden -> k x D) -> LayerNorm(D) per token.
"""

from __future__ import annotations

import torch
from torch import nn

from modaltune.models.adapter import init_linear_and_norm


class ClinicalTokens(nn.Module):
    def __init__(self, in_features: int, out_dim: int, n_tokens: int = 1, hidden: int = 384):
        super().__init__()
        self.in_features, self.out_dim, self.n_tokens = in_features, out_dim, n_tokens
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_tokens * out_dim))
        self.norm = nn.LayerNorm(out_dim)
        self.apply(init_linear_and_norm)  # the official code's global init, as the other multimodal tokens

    def forward(self, clinical: torch.Tensor) -> torch.Tensor:
        """(B, F) clinical vectors -> (B, n_tokens, out_dim) tokens."""
        if clinical.shape[-1] != self.in_features:
            raise ValueError(f"expected {self.in_features} clinical features, got {clinical.shape[-1]}")
        tokens = self.mlp(clinical).view(clinical.shape[0], self.n_tokens, self.out_dim)
        return self.norm(tokens)
