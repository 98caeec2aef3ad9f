"""MCAT (Chen et al. 2021b), genomic-guided co-attention (reference baselines.md section 8), on ModalTune's pathways.

The genomic tokens are the pathway tokens of ModalTune's tokenizer (:class:`PathwayMLP`, the per-pathway SNN of
SurvPath's MCAT variant) over the same pathway table as ModalTune, not MCAT's 6 gene families. Tiles: Linear(D -> dim),
ReLU, Dropout. Co-attention: one-head attention with the P pathway tokens as queries over the N tiles (a P x N score
matrix, never N x N), giving P co-attended WSI tokens. Each modality's P tokens then go through a Transformer encoder,
gated attention pooling and rho; the two vectors are fused by concatenation + MLP (MCAT's "concat") into the
embedding, and a Linear head predicts.
"""

from __future__ import annotations

import torch
from torch import nn

from modaltune.baselines.abmil import GatedAttentionPool
from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput, bag_of, genes_of
from modaltune.baselines.fusion import ConcatFusion
from modaltune.models.omics_encoder import PathwayMLP


class TokenBranch(nn.Module):
    """P tokens -> Transformer encoder (post-norm, ReLU, as PyTorch's default MCAT uses) -> gated pool -> rho."""

    def __init__(self, dim: int, heads: int, layers: int, ffn_dim: int, dropout: float):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, heads, ffn_dim, dropout, activation="relu", batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pool = GatedAttentionPool(dim, dim, dropout)
        self.rho = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.pool(self.transformer(tokens.unsqueeze(0))[0])
        return self.rho(pooled)


class MCAT(Baseline):
    reads = frozenset({"bag", "genes"})

    def __init__(self, n_outputs: int, inputs: BaselineInputs, dim: int = 256, heads: int = 8, layers: int = 2,
                 ffn_dim: int = 512, dropout: float = 0.25):
        super().__init__()
        if dim % heads:
            raise ValueError(f"mcat: dim {dim} is not divisible by heads {heads}")
        self.tiles = nn.Sequential(nn.Linear(inputs.feature_dim, dim), nn.ReLU(), nn.Dropout(dropout))
        self.pathways = PathwayMLP(inputs.pathway_genes, inputs.n_genes, dim, dropout)
        self.coattention = nn.MultiheadAttention(dim, num_heads=1, batch_first=True)
        self.wsi_branch = TokenBranch(dim, heads, layers, ffn_dim, dropout)
        self.omic_branch = TokenBranch(dim, heads, layers, ffn_dim, dropout)
        self.fusion = ConcatFusion(dim, dim, dim)
        self.embed_dim = dim
        self.head = nn.Linear(dim, n_outputs)

    def coattend(self, patient: PatientInput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(co-attended WSI tokens (P, dim), pathway tokens (P, dim), attention of each pathway over the tiles
        (P, N))."""
        pathways = self.pathways(genes_of(patient).unsqueeze(0))  # (1, P, dim)
        tiles = self.tiles(bag_of(patient)).unsqueeze(0)  # (1, N, dim)
        wsi, weights = self.coattention(pathways, tiles, tiles, need_weights=True)
        return wsi[0], pathways[0], weights[0]

    def embed(self, patient: PatientInput) -> torch.Tensor:
        wsi, pathways, _ = self.coattend(patient)
        return self.fusion(self.wsi_branch(wsi), self.omic_branch(pathways))
