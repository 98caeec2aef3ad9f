"""SurvPath (Jaume et al. 2024c): pathway and tile tokens in one attention layer (reference baselines.md section 9).

Pathway tokens: ModalTune's per-pathway SNN tokenizer (:class:`PathwayMLP`) over the same pathway table as ModalTune.
Tile tokens: Linear(D -> dim), no activation. Both get one LayerNorm and one head of attention (QKV without bias, no
output projection, no residual) under SurvPath's structured mask: a pathway attends to every pathway and every tile
(one softmax over all keys), a tile attends to the pathways only. There is no tile-to-tile attention, so the layer is
computed as its two unmasked blocks, P x (P + N) and N x P, and its cost is linear in N. Then a feed-forward block
and LayerNorm, the mean pathway token and the mean tile token are concatenated -> Linear -> ReLU (the embedding) ->
Linear head.
"""

from __future__ import annotations

import torch
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput, bag_of, genes_of
from modaltune.models.omics_encoder import PathwayMLP


class PathwayTileAttention(nn.Module):
    """One head of attention with SurvPath's mask, computed block by block (no N x N matrix)."""

    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * head_dim, bias=False)
        self.scale = head_dim**-0.5

    def forward(self, pathways: torch.Tensor, tiles: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """pathways (P, dim), tiles (N, dim) -> (pathway outputs (P, head_dim), tile outputs (N, head_dim),
        pathway weights (P, P + N) over [pathways; tiles], tile weights (N, P) over the pathways)."""
        q_p, k_p, v_p = self.qkv(self.norm(pathways)).chunk(3, dim=-1)
        q_t, k_t, v_t = self.qkv(self.norm(tiles)).chunk(3, dim=-1)
        pathway_weights = torch.softmax(torch.cat([q_p @ k_p.T, q_p @ k_t.T], dim=1) * self.scale, dim=1)
        tile_weights = torch.softmax((q_t @ k_p.T) * self.scale, dim=1)
        return (pathway_weights @ torch.cat([v_p, v_t]), tile_weights @ v_p, pathway_weights, tile_weights)


class SurvPath(Baseline):
    reads = frozenset({"bag", "genes"})

    def __init__(self, n_outputs: int, inputs: BaselineInputs, dim: int = 256, head_dim: int = 128,
                 hidden_dim: int = 64, dropout: float = 0.25, ffn_dropout: float = 0.1):
        super().__init__()
        self.pathways = PathwayMLP(inputs.pathway_genes, inputs.n_genes, dim, dropout)
        self.tiles = nn.Linear(inputs.feature_dim, dim)
        self.attention = PathwayTileAttention(dim, head_dim)
        self.feed_forward = nn.Sequential(nn.LayerNorm(head_dim), nn.Linear(head_dim, head_dim), nn.GELU(),
                                          nn.Dropout(ffn_dropout), nn.Linear(head_dim, head_dim))
        self.norm = nn.LayerNorm(head_dim)
        self.project = nn.Sequential(nn.Linear(2 * head_dim, hidden_dim), nn.ReLU())
        self.embed_dim = hidden_dim
        self.head = nn.Linear(hidden_dim, n_outputs)

    def tokens(self, patient: PatientInput) -> tuple[torch.Tensor, torch.Tensor]:
        """The pathway (P, dim) and tile (N, dim) tokens that enter the attention layer."""
        return self.pathways(genes_of(patient).unsqueeze(0))[0], self.tiles(bag_of(patient))

    def embed(self, patient: PatientInput) -> torch.Tensor:
        pathways, tiles, _, _ = self.attention(*self.tokens(patient))
        pathways = self.norm(self.feed_forward(pathways))
        tiles = self.norm(self.feed_forward(tiles))
        return self.project(torch.cat([pathways.mean(dim=0), tiles.mean(dim=0)]))
