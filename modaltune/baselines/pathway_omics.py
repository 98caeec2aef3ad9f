"""Genomics baselines on pathway tokens: S-MLP and Gene Mixer, both on ModalTune's own transcriptomics modules.

S-MLP is read as ModalTune's paper uses the term (section 3.2: pathways "encoded using a sparse multi-layer perceptron
(S-MLP) [19] ... as described in [31]"): the per-pathway SNN tokenizer (reference baselines.md section 6b), here
:class:`PathwayMLP`, whose pathway tokens are averaged. With that reading the two rows form a ladder, Gene Mixer =
S-MLP + the MLP-Mixer + compression, and both run on the same code as ModalTune's encoder. Gene Mixer is
:class:`OmicsEncoder` with the non-"feature" head of ModalTune's gene encoder (section 7): mean of the tokens,
LayerNorm, Linear. The S-MLP head is the same.
"""

from __future__ import annotations

import torch
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput, genes_of
from modaltune.models.omics_encoder import OmicsEncoder, PathwayMLP


class SMLP(Baseline):
    reads = frozenset({"genes"})

    def __init__(self, n_outputs: int, inputs: BaselineInputs, latent_dim: int = 256, dropout: float = 0.25):
        super().__init__()
        self.pathways = PathwayMLP(inputs.pathway_genes, inputs.n_genes, latent_dim, dropout)
        self.norm = nn.LayerNorm(latent_dim)
        self.embed_dim = latent_dim
        self.head = nn.Linear(latent_dim, n_outputs)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        return self.norm(self.pathways(genes_of(patient).unsqueeze(0)).mean(dim=1))[0]


class GeneMixer(Baseline):
    reads = frozenset({"genes"})

    def __init__(self, n_outputs: int, inputs: BaselineInputs, output_dim: int = 256, latent_dim: int = 256,
                 depth: int = 3, token_expansion: float = 0.5, channel_expansion: float = 0.5,
                 dropout: float = 0.25, tokens: int = 64):
        super().__init__()
        self.encoder = OmicsEncoder(inputs.pathway_genes, inputs.n_genes, out_dim=output_dim, latent_dim=latent_dim,
                                    depth=depth, token_expansion=token_expansion,
                                    channel_expansion=channel_expansion, dropout=dropout, n_tokens=tokens)
        self.norm = nn.LayerNorm(output_dim)
        self.embed_dim = output_dim
        self.head = nn.Linear(output_dim, n_outputs)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        return self.norm(self.encoder(genes_of(patient).unsqueeze(0)).mean(dim=1))[0]
