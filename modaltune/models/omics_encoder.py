"""Transcriptomics encoder: per-pathway MLPs (S-MLP), an MLP-Mixer over pathways, compression to pathway tokens.

Input is one z-scored expression vector per patient (genes in the column order of ``results/omics/{site}.parquet``);
output is ``n_tokens`` tokens of the slide encoder's width (64 x 768 in the paper, reference section 6).

The 331 per-pathway MLPs run as two grouped operations instead of a Python loop over modules:

* first layer ``Linear(g_i -> latent)`` for every pathway at once: each (pathway, gene) membership m owns one weight
  row ``W1[m]``; ``h[p] = sum_{m in p} x[gene_m] * W1[m] + b1[p]``, a gather, a multiply and an ``index_add`` over
  the 9,731 memberships (exactly the block-sparse product, without padding pathways to the largest one);
* second layer ``Linear(latent -> latent)`` per pathway: one batched ``einsum`` over a ``(P, latent, latent)`` tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from modaltune.models.adapter import init_linear_and_norm


class PathwayMLP(nn.Module):
    """One small MLP per pathway (S-MLP), run as grouped tensor operations.

    ``pathway_genes[p]`` lists the column indices (into the gene vector) of pathway p's genes; a gene may belong to
    several pathways. Output: ``(batch, P, latent_dim)``.
    """

    def __init__(self, pathway_genes: Sequence[Sequence[int]], n_genes: int, latent_dim: int = 256,
                 dropout: float = 0.25):
        super().__init__()
        if not pathway_genes or any(len(genes) == 0 for genes in pathway_genes):
            raise ValueError("every pathway needs at least one gene (check results/omics/pathways.parquet)")
        member_gene = [g for genes in pathway_genes for g in genes]
        if min(member_gene) < 0 or max(member_gene) >= n_genes:
            raise ValueError(f"pathway gene index out of range for {n_genes} genes")
        member_pathway = [p for p, genes in enumerate(pathway_genes) for _ in genes]
        self.n_pathways = len(pathway_genes)
        self.n_genes = n_genes
        self.latent_dim = latent_dim
        self.register_buffer("member_gene", torch.tensor(member_gene, dtype=torch.long), persistent=False)
        self.register_buffer("member_pathway", torch.tensor(member_pathway, dtype=torch.long), persistent=False)
        # Weight row m of the first layer belongs to membership m: concatenating the per-pathway weight matrices
        # Linear(g_i -> latent).weight.T in pathway order gives exactly this (memberships, latent) table.
        self.weight1 = nn.Parameter(torch.empty(len(member_gene), latent_dim))
        self.bias1 = nn.Parameter(torch.zeros(self.n_pathways, latent_dim))
        self.weight2 = nn.Parameter(torch.empty(self.n_pathways, latent_dim, latent_dim))  # (P, in, out)
        self.bias2 = nn.Parameter(torch.zeros(self.n_pathways, latent_dim))
        self.activation = nn.ELU()
        self.dropout = nn.AlphaDropout(dropout)
        # The official code's global init: every Linear truncated normal std 0.02, bias 0.
        nn.init.trunc_normal_(self.weight1, std=0.02)
        nn.init.trunc_normal_(self.weight2, std=0.02)

    def forward(self, genes: torch.Tensor) -> torch.Tensor:
        if genes.shape[-1] != self.n_genes:
            raise ValueError(f"expected {self.n_genes} genes, got {genes.shape[-1]}")
        contributions = genes[:, self.member_gene].unsqueeze(-1) * self.weight1  # (B, memberships, latent)
        hidden = self.bias1.expand(genes.shape[0], -1, -1).index_add(1, self.member_pathway, contributions)
        hidden = self.dropout(self.activation(hidden))
        hidden = torch.einsum("bpi,pio->bpo", hidden, self.weight2) + self.bias2
        return self.dropout(self.activation(hidden))


class MixerLayer(nn.Module):
    """Pre-norm MLP-Mixer layer: token mixing across pathways (1x1 Conv1d), then channel mixing (Linear)."""

    def __init__(self, n_tokens: int, dim: int, token_expansion: float, channel_expansion: float, dropout: float):
        super().__init__()
        token_hidden = int(n_tokens * token_expansion)
        channel_hidden = int(dim * channel_expansion)
        self.token_norm = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(
            nn.Conv1d(n_tokens, token_hidden, 1), nn.GELU(), nn.Dropout(dropout),
            nn.Conv1d(token_hidden, n_tokens, 1), nn.Dropout(dropout),
        )
        self.channel_norm = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(
            nn.Linear(dim, channel_hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(channel_hidden, dim), nn.Dropout(dropout),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.token_mlp(self.token_norm(tokens))
        return tokens + self.channel_mlp(self.channel_norm(tokens))


class OmicsEncoder(nn.Module):
    """S-MLP -> MLP-Mixer -> LayerNorm -> Linear(latent -> out_dim) -> Linear(P -> n_tokens) on the token axis.

    ``forward(genes (B, G)) -> (B, n_tokens, out_dim)``.
    """

    def __init__(self, pathway_genes: Sequence[Sequence[int]], n_genes: int, out_dim: int = 768,
                 latent_dim: int = 256, depth: int = 3, token_expansion: float = 0.5,
                 channel_expansion: float = 0.5, dropout: float = 0.25, n_tokens: int = 64):
        super().__init__()
        self.pathways = PathwayMLP(pathway_genes, n_genes, latent_dim, dropout)
        n_pathways = len(pathway_genes)
        self.mixer = nn.Sequential(*[
            MixerLayer(n_pathways, latent_dim, token_expansion, channel_expansion, dropout) for _ in range(depth)
        ])
        self.norm = nn.LayerNorm(latent_dim)
        self.lift = nn.Linear(latent_dim, out_dim)
        self.compress = nn.Linear(n_pathways, n_tokens)
        self.n_tokens = n_tokens
        # Conv1d layers keep PyTorch's default init, as upstream (its global init only handles Conv2d).
        self.apply(init_linear_and_norm)

    def forward(self, genes: torch.Tensor) -> torch.Tensor:
        tokens = self.lift(self.norm(self.mixer(self.pathways(genes))))  # (B, P, out_dim)
        return self.compress(tokens.transpose(1, 2)).transpose(1, 2)  # (B, n_tokens, out_dim)


def pathway_gene_indices(genes: Sequence[str], memberships: Sequence[tuple[str, str]]) -> tuple[list[str], list[list[int]]]:
    """Pathway names (first-seen order) and, per pathway, the indices of its genes in ``genes`` (membership order).

    ``memberships`` are (pathway, gene) rows as in ``results/omics/pathways.parquet``.
    """
    column = {gene: i for i, gene in enumerate(genes)}
    names: list[str] = []
    members: dict[str, list[int]] = {}
    missing = []
    for pathway, gene in memberships:
        if pathway not in members:
            names.append(pathway)
            members[pathway] = []
        if gene not in column:
            missing.append(gene)
            continue
        members[pathway].append(column[gene])
    if missing:
        raise ValueError(f"{len(missing)} pathway genes are not omics columns (first: {sorted(set(missing))[:5]}); "
                         "rebuild results/omics so that every site's table holds the genes of pathways.parquet")
    return names, [members[name] for name in names]


class LearnedTokens(nn.Module):
    """The paper's Single Modal ablation (Table 8): ``n_tokens`` randomly initialised trainable tokens take the place
    of the pathway tokens, so the model sees the same number and width of multimodal tokens without any gene.

    ``forward(genes=None) -> (1, n_tokens, out_dim)``; there are no genes to pass.
    """

    def __init__(self, n_tokens: int, out_dim: int):
        super().__init__()
        self.n_tokens = n_tokens
        self.tokens = nn.Parameter(torch.empty(1, n_tokens, out_dim))
        nn.init.trunc_normal_(self.tokens, std=0.02)  # as the task prompts and E_C

    def forward(self, genes: None = None) -> torch.Tensor:
        if genes is not None:
            raise ValueError("model.transcriptomics 'learned' uses no genes; pass genes=None")
        return self.tokens
