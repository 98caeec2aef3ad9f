"""The paper's three attention maps of one patient, recorded from the model's real forward pass with hooks.

Neither attention kernel of the model returns its weights: the adapter calls ``nn.MultiheadAttention`` with
``need_weights=False`` and LongNet's dilated attention uses fused kernels that return only outputs and log-sum-exps.
The weights are therefore recomputed inside forward hooks from the exact inputs the module received, with the
module's own projections and the same softmax, and every recomputation is checked on the spot: the recomputed
weights times the module's values must reproduce the output the module returned (:class:`AttentionMismatch`
otherwise). No model code changes.

Maps, per adapter block b (one value per tile, in bag order):

* ``image_image``: the slide encoder's CLS query in the last LongNet layer of block b (block 3: the encoder's last
  layer, the paper's map), head-averaged. Dilated attention gives each head of the CLS one softmax over the union of
  the keys of the branches that compute it (see :func:`dilated_cls_weights`); the CLS's weight on itself is
  dropped and the rest renormalised over the tiles.
* ``image_transcriptomics``: the extractor's cross-attention of block b, pathway-token queries (task prompt
  excluded) over the tiles, averaged over pathway tokens and heads: a distribution over tiles.
* ``image_task``: the injector's cross-attention of block b, each tile's weight on the task-prompt token(s)
  (summed over prompt tokens, averaged over heads): a share in [0, 1] per tile, not a distribution over tiles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from modaltune.models.longnet import DilatedAttention

MAPS = ("image_image", "image_transcriptomics", "image_task")
TOLERANCE = 1e-4  # float32 recomputation vs the fused kernels' output, relative to the output's scale


class AttentionMismatch(RuntimeError):
    """A recomputed attention does not reproduce the module's output: the maps would not be the model's."""


def multihead_weights(module: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """Softmax weights (B, heads, Lq, Lk) of a batch-first ``nn.MultiheadAttention`` (no masks, no bias_k)."""
    heads, dim = module.num_heads, module.embed_dim
    if module._qkv_same_embed_dim:
        w_q, w_k, _ = module.in_proj_weight.chunk(3)
    else:
        w_q, w_k = module.q_proj_weight, module.k_proj_weight
    b_q, b_k, _ = module.in_proj_bias.chunk(3) if module.in_proj_bias is not None else (None, None, None)
    q = nn.functional.linear(query, w_q, b_q)
    k = nn.functional.linear(key, w_k, b_k)
    q = q.view(q.shape[0], q.shape[1], heads, dim // heads).transpose(1, 2)
    k = k.view(k.shape[0], k.shape[1], heads, dim // heads).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim // heads), dim=-1)


def multihead_output(module: nn.MultiheadAttention, weights: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """What the module returns for ``weights`` (B, heads, Lq, Lk) and its value input (B, Lk, vdim)."""
    dim, heads = module.embed_dim, module.num_heads
    w_v = module.in_proj_weight.chunk(3)[2] if module._qkv_same_embed_dim else module.v_proj_weight
    b_v = module.in_proj_bias.chunk(3)[2] if module.in_proj_bias is not None else None
    v = nn.functional.linear(value, w_v, b_v)
    v = v.view(v.shape[0], v.shape[1], heads, dim // heads).transpose(1, 2)
    mixed = (weights @ v).transpose(1, 2).reshape(weights.shape[0], weights.shape[2], dim)
    return module.out_proj(mixed)


def dilated_cls_weights(q: torch.Tensor, k: torch.Tensor, segment_lengths: Sequence[int],
                        dilated_ratios: Sequence[int]) -> torch.Tensor:
    """Effective attention weights (B, H, n) of query position 0 (the CLS) in LongNet dilated attention.

    q, k: (B, n, H, d) after the projections. In branch (w, r) position 0 lies in segment 0 (positions [0, s),
    s = min(w, n), all real tokens) with offset 0, so only the heads of group 0 (h < H / r) compute it, over the
    keys p < s with p mod r == 0; no zero-padding row is ever among them. The branch outputs are merged with weights
    softmax_i(lse_i), so a head's output is one softmax over the multiset union of its branches' keys: key p gets
    exp(q.k_p / sqrt(d)) times the number of branches of that head that contain p, over the sum of the same
    terms. (Branches that skip the head carry lse = -1e8 and weight exactly zero.)
    """
    batch, n, heads, dim = q.shape
    scores = torch.einsum("bhd,bnhd->bhn", q[:, 0].float(), k.float()) / math.sqrt(dim)  # (B, H, n)
    multiplicity = torch.zeros(heads, n, dtype=scores.dtype, device=scores.device)
    for segment_length, ratio in zip(segment_lengths, dilated_ratios, strict=True):
        s = min(int(segment_length), n)
        multiplicity[: heads // ratio, 0:s:ratio] += 1
    logits = scores + torch.log(multiplicity)  # log 0 = -inf: keys no branch of that head sees
    return torch.softmax(logits, dim=-1)


def dilated_cls_output(module: DilatedAttention, weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """What ``module`` returns at position 0 given the CLS weights (B, H, n) and its input x (B, n, D)."""
    batch, n, dim = x.shape
    v = module.v_proj(x).view(batch, n, module.num_heads, dim // module.num_heads).float()
    attended = torch.einsum("bhn,bnhd->bhd", weights, v).reshape(batch, dim).to(x.dtype)
    return module.out_proj(module.inner_attn_ln(attended))


def _check(name: str, recomputed: torch.Tensor, actual: torch.Tensor) -> None:
    error = (recomputed - actual).abs().max().item()
    scale = actual.abs().max().item() + 1e-6
    if not error <= TOLERANCE * max(1.0, scale):  # also catches NaN
        raise AttentionMismatch(f"{name}: recomputed attention differs from the module's output by {error:.3g} "
                                f"(output scale {scale:.3g}); the model's attention changed, update "
                                "modaltune.interpret.attention")


@dataclass
class AttentionMaps:
    """maps[name][block] -> (N,) float64 per tile; ``cls_self`` [block] the CLS's weight on itself."""

    maps: dict[str, list[np.ndarray]] = field(default_factory=lambda: {name: [] for name in MAPS})
    cls_self: list[float] = field(default_factory=list)


class AttentionRecorder:
    """Context manager: hooks on one ModalTune model that record :class:`AttentionMaps` of a single-task forward.

    ``with AttentionRecorder(model) as recorder: model(features, coords, genes, tasks=["general"])``, then
    ``recorder.result``. Each hooked call is checked against the module's own output.
    """

    def __init__(self, model):
        self.model = model
        self.prompt_tokens = model.prompt_tokens
        self.result = AttentionMaps()
        self._handles = []

    def __enter__(self) -> AttentionRecorder:
        adapter, layers = self.model.adapter, self.model.encoder.encoder.layers
        for block, (_, stop) in enumerate(self.model.blocks):
            self._hook(layers[stop - 1].self_attn, self._on_encoder, block)
            self._hook(adapter.injectors[block].attention.attend.attention, self._on_injector, block)
            self._hook(adapter.extractors[block].attention.attend.attention, self._on_extractor, block)
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, module: nn.Module, record, block: int) -> None:
        def hook(module, args, output):
            if args[0].shape[0] != 1:
                raise ValueError("AttentionRecorder records one patient and one task: call the model with "
                                 "tasks=[one task]")
            with torch.no_grad():
                record(block, module, args, output)

        self._handles.append(module.register_forward_hook(hook))

    def _on_encoder(self, block: int, module: DilatedAttention, args, output) -> None:
        (x,) = args
        batch, n, dim = x.shape
        heads = module.num_heads
        q = module.q_proj(x).view(batch, n, heads, dim // heads)
        k = module.k_proj(x).view(batch, n, heads, dim // heads)
        weights = dilated_cls_weights(q, k, module.segment_lengths, module.dilated_ratios)
        _check(f"encoder layer of block {block}", dilated_cls_output(module, weights, x), output[:, 0])
        mean = weights[0].mean(dim=0).double().cpu().numpy()  # (n,) over CLS + tiles
        self.result.cls_self.append(float(mean[0]))
        self.result.maps["image_image"].append(mean[1:] / mean[1:].sum())

    def _on_injector(self, block: int, module: nn.MultiheadAttention, args, output) -> None:
        query, key, value = args[:3]
        weights = multihead_weights(module, query, key)  # (1, heads, tiles, modal tokens)
        _check(f"injector {block}", multihead_output(module, weights, value), output[0])
        share = weights[0, :, :, : self.prompt_tokens].sum(dim=-1).mean(dim=0)
        self.result.maps["image_task"].append(share.double().cpu().numpy())

    def _on_extractor(self, block: int, module: nn.MultiheadAttention, args, output) -> None:
        query, key, value = args[:3]
        weights = multihead_weights(module, query, key)  # (1, heads, modal tokens, tiles)
        _check(f"extractor {block}", multihead_output(module, weights, value), output[0])
        pathway_rows = weights[0, :, self.prompt_tokens:, :].mean(dim=(0, 1))
        self.result.maps["image_transcriptomics"].append(pathway_rows.double().cpu().numpy())
