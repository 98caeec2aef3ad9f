"""Late fusion of an image-only baseline with Gene Mixer (reference baselines.md section 10; paper section 4.2:
"merging image-only baselines with MLP-mixers via concatenation [46] and Kronecker product [8]").

The branches are the registered models themselves, built by :func:`create_baseline` from the nested ``image`` and
``genes`` settings (the keys of the image model's and of ``gene_mixer``'s config sections), so each encoder has one
implementation. Their ``embed`` outputs are fused, "(cat)" by :class:`ConcatFusion`, "(KP)" by
:class:`KroneckerFusion`, and the fused model's own Linear head predicts; the branches' heads are removed. The
image branch keeps its optimiser groups (Gigapath's layer-wise learning-rate decay).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from modaltune.baselines.base import Baseline, BaselineInputs, PatientInput
from modaltune.baselines.fusion import ConcatFusion, KroneckerFusion, check_kronecker_size
from modaltune.baselines.registry import create_baseline

GENE_BRANCH = "gene_mixer"


class LateFusion(Baseline):
    def __init__(self, image: Baseline, genes: Baseline, fusion: nn.Module, n_outputs: int):
        super().__init__()
        for branch in (image, genes):
            del branch.head  # the fused model predicts; a branch's own head would never train
        self.image, self.genes, self.fusion = image, genes, fusion
        self.reads = image.reads | genes.reads
        self.embed_dim = fusion.out_dim
        self.head = nn.Linear(fusion.out_dim, n_outputs)

    def embed(self, patient: PatientInput) -> torch.Tensor:
        return self.fusion(self.image.embed(patient), self.genes.embed(patient))

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        rest = [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("image.")]
        return [*self.image.param_groups(weight_decay),
                {"params": rest, "weight_decay": weight_decay, "lr_scale": 1.0}]


def build_late_fusion(name: str, image_model: str, fusion: str, n_outputs: int, inputs: BaselineInputs, *,
                      image: dict | None = None, genes: dict | None = None, fusion_dim: int = 256, kp_dim: int = 32,
                      dropout: float = 0.25) -> LateFusion:
    """Model ``name``: registered ``image_model`` (settings ``image``) + Gene Mixer (settings ``genes``), fused by
    ``fusion`` "cat" or "kp" (``kp_dim`` and ``dropout`` set the Kronecker product only)."""
    if fusion == "kp":
        check_kronecker_size(name, kp_dim, fusion_dim)
    image_branch = create_baseline(image_model, 1, inputs, **(image or {}))
    gene_branch = create_baseline(GENE_BRANCH, 1, inputs, **(genes or {}))
    dims = (image_branch.embed_dim, gene_branch.embed_dim)
    fuser = ConcatFusion(*dims, fusion_dim) if fusion == "cat" else KroneckerFusion(*dims, kp_dim, fusion_dim, dropout)
    return LateFusion(image_branch, gene_branch, fuser, n_outputs)


def _builder(name: str, image_model: str, fusion: str):
    def build(n_outputs: int, inputs: BaselineInputs, **kwargs) -> LateFusion:
        return build_late_fusion(name, image_model, fusion, n_outputs, inputs, **kwargs)

    build.__name__ = f"build_{name}"
    return build


build_abmil_cat = _builder("abmil_cat", "abmil", "cat")
build_abmil_kp = _builder("abmil_kp", "abmil", "kp")
build_transmil_cat = _builder("transmil_cat", "transmil", "cat")
build_transmil_kp = _builder("transmil_kp", "transmil", "kp")
build_gigapath_cat = _builder("gigapath_cat", "gigapath_tuned", "cat")
build_gigapath_kp = _builder("gigapath_kp", "gigapath_tuned", "kp")
