"""The fixed random projector that maps text embeddings into the model's 256-d target space.

Upstream (``train_modaltune.py`` ``Projection_layer``): Conv2d(d -> 256, 1x1) -> LayerNorm -> ReLU ->
Conv2d(256 -> 256, 1x1), frozen, PyTorch default initialisation, the first random draw after ``set_seed(seed)``;
that equals Linear -> LayerNorm -> ReLU -> Linear on each text row, which is what this module computes. Its weights
come from a private generator seeded with ``seed``, drawn in the order and with the bounds nn.Conv2d/nn.Linear use
(Kaiming-uniform a = sqrt(5) weight, then bias U(+-1/sqrt(fan_in))), so they equal upstream's for the same seed.
Upstream did not save it with the model; here it is part of the model's state dict (buffers, never trained) and
:meth:`RandomProjector.from_state_dict` rebuilds it from a saved checkpoint.

:class:`TargetSpace` holds the paper's projector ablations (Table 8): the fixed projector (ModalTune), the same
projector trained jointly (``trainable``: parameters instead of buffers), no projector, or a trained linear layer on
the model side that maps the model output to the text width.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

PROJECTOR_DIM = 256


class RandomProjector(nn.Module):
    """Linear(in_dim -> out_dim) -> LayerNorm -> ReLU -> Linear(out_dim -> out_dim), L2-normalised rows; frozen
    unless ``trainable``."""

    def __init__(self, in_dim: int, out_dim: int = PROJECTOR_DIM, seed: int = 0, trainable: bool = False):
        super().__init__()
        self.in_dim, self.out_dim, self.seed, self.trainable = in_dim, out_dim, seed, trainable
        generator = torch.Generator().manual_seed(seed)
        w1, b1 = _default_linear_init(out_dim, in_dim, generator)
        w2, b2 = _default_linear_init(out_dim, out_dim, generator)
        # Frozen: buffers, saved in the state dict, never seen by an optimiser. Trainable: the same values (and
        # state-dict names) as parameters.
        tensors = {"weight1": w1, "bias1": b1, "norm_weight": torch.ones(out_dim), "norm_bias": torch.zeros(out_dim),
                   "weight2": w2, "bias2": b2}
        for name, tensor in tensors.items():
            if trainable:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.register_buffer("seed_tensor", torch.tensor(seed, dtype=torch.int64))

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        """[..., in_dim] text embeddings -> [..., out_dim] unit-norm targets."""
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
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


PROJECTORS = ("fixed", "trainable", "none", "model_side")


class TargetSpace(nn.Module):
    """Maps (model outputs (T, output_dim), text embeddings (T, text_dim)) to the pair the loss compares.

    fixed / trainable: outputs as they are, text through the :class:`RandomProjector` of ``seed`` (frozen or
    trained); none: both as they are (``output_dim`` must equal ``text_dim``), text L2-normalised; model_side: the
    outputs through a trained Linear(output_dim -> text_dim) (default init drawn from ``seed``), text L2-normalised.
    """

    def __init__(self, kind: str, text_dim: int, output_dim: int, seed: int = 0):
        super().__init__()
        if kind not in PROJECTORS:
            raise ValueError(f"projector must be one of {PROJECTORS}, got {kind!r}")
        if kind == "none" and text_dim != output_dim:
            raise ValueError(f"projector 'none' needs the model output size ({output_dim}) to equal the text "
                             f"embedding width ({text_dim}); set text.projector_dim: {text_dim}")
        self.kind = kind
        self.text_projector = None
        self.output_projector = None
        if kind in ("fixed", "trainable"):
            self.text_projector = RandomProjector(text_dim, output_dim, seed, trainable=kind == "trainable")
        elif kind == "model_side":
            self.output_projector = nn.Linear(output_dim, text_dim)
            weight, bias = _default_linear_init(text_dim, output_dim, torch.Generator().manual_seed(seed))
            with torch.no_grad():
                self.output_projector.weight.copy_(weight)
                self.output_projector.bias.copy_(bias)

    def forward(self, outputs: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        target = self.text_projector(text) if self.text_projector is not None else F.normalize(text.float(), dim=-1)
        if self.output_projector is not None:
            outputs = self.output_projector(outputs)
        return outputs, target

    def saved_tensors(self) -> dict[str, torch.Tensor]:
        """Its tensors as ``model.safetensors`` names them: ``target_projector.*`` (text side, as
        :meth:`RandomProjector.from_state_dict` reads them) and ``output_projector.*`` (model side)."""
        tensors = {}
        for prefix, module in (("target_projector", self.text_projector), ("output_projector", self.output_projector)):
            if module is not None:
                tensors.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
        return tensors


def _default_linear_init(out_dim: int, in_dim: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """nn.Linear/nn.Conv2d(kernel 1) reset_parameters with an explicit generator."""
    weight = torch.empty(out_dim, in_dim)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(in_dim)
    bias = torch.empty(out_dim).uniform_(-bound, bound, generator=generator)
    return weight, bias
