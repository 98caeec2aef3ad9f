"""The fixed random projector that maps text embeddings into the model's 256-d target space.

Upstream (``train_modaltune.py`` ``Projection_layer``): Conv2d(d -> 256, 1x1) -> LayerNorm -> ReLU ->
Conv2d(256 -> 256, 1x1), frozen, PyTorch default initialisation, the first random draw after ``set_seed(seed)``;
that equals Linear -> LayerNorm -> ReLU -> Linear on each text row, which is what this module computes. Its weights
come from a private generator seeded with ``seed``, drawn in the order and with the bounds nn.Conv2d/nn.Linear use
(Kaiming-uniform a = sqrt(5) weight, then bias U(+-1/sqrt(fan_in))), so they equal upstream's for the same seed.
Upstream did not save it with the model; here it is part of the model's state dict (buffers, never trained) and
:meth:`RandomProjector.from_state_dict` rebuilds it from a saved checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

PROJECTOR_DIM = 256


class RandomProjector(nn.Module):
    """Frozen Linear(in_dim -> out_dim) -> LayerNorm -> ReLU -> Linear(out_dim -> out_dim), L2-normalised rows."""

    def __init__(self, in_dim: int, out_dim: int = PROJECTOR_DIM, seed: int = 0):
        super().__init__()
        self.in_dim, self.out_dim, self.seed = in_dim, out_dim, seed
        generator = torch.Generator().manual_seed(seed)
        w1, b1 = _default_linear_init(out_dim, in_dim, generator)
        w2, b2 = _default_linear_init(out_dim, out_dim, generator)
        # Buffers, not parameters: saved in the state dict, never seen by an optimiser.
        self.register_buffer("weight1", w1)
        self.register_buffer("bias1", b1)
        self.register_buffer("norm_weight", torch.ones(out_dim))
        self.register_buffer("norm_bias", torch.zeros(out_dim))
        self.register_buffer("weight2", w2)
        self.register_buffer("bias2", b2)
        self.register_buffer("seed_tensor", torch.tensor(seed, dtype=torch.int64))

    @torch.no_grad()
    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """[..., in_dim] text embeddings -> [..., out_dim] unit-norm targets."""
        x = F.linear(text.to(self.weight1.dtype), self.weight1, self.bias1)
        x = F.relu(F.layer_norm(x, (self.out_dim,), self.norm_weight, self.norm_bias))
        return F.normalize(F.linear(x, self.weight2, self.bias2), dim=-1)

    def to_dict(self) -> dict[str, torch.Tensor]:
        """Contiguous CPU tensors, ready for ``safetensors.torch.save_file``."""
        return {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> RandomProjector:
        """Rebuild from :meth:`to_dict` output (or a model state dict's projector entries, prefix removed)."""
        out_dim, in_dim = state["weight1"].shape
        projector = cls(in_dim, out_dim, seed=int(state["seed_tensor"]))
        projector.load_state_dict(dict(state), strict=True)
        return projector


def _default_linear_init(out_dim: int, in_dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear/nn.Conv2d(kernel 1) reset_parameters with an explicit generator."""
    weight = torch.empty(out_dim, in_dim)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(in_dim)
    bias = torch.empty(out_dim).uniform_(-bound, bound, generator=generator)
    return weight, bias
