"""LongNet dilated attention and encoder layers, parameter-compatible with Prov-GigaPath's vendored torchscale.

Algorithm (reference ``gigapath-and-tiling.md`` section C), for tokens q, k, v of shape (B, n, H, d) and branches
(segment length w_i, dilation ratio r_i):

1. Segments: s = min(w, n). The sequence is cut into ceil(n / s) segments of length s; when n is not a multiple
   of s, zero rows are appended to q, k and v (after the projections) and are **not masked**.
2. Dilation: each segment is padded with zero rows (again unmasked) to a multiple of r. The H heads form r
   contiguous groups of H / r heads; the heads of group g keep the segment-local positions p with p mod r == g.
3. Each (segment, head) runs full non-causal attention over its s / r positions; the kernel also returns the
   per-query log-sum-exp lambda = log sum_k exp(q.k / sqrt(d)).
4. Positions a head did not compute in a branch get output 0 and lambda = -1e8; padded rows are cropped.
5. The branches are merged per (query, head) with weights softmax_i(lambda_i), computed without gradient as
   upstream. The merged output equals one softmax over the multiset union of the keys of all branches (a key seen
   by m branches counts m times), so for short sequences the result is *not* plain dense attention.

Consequences worth knowing (tested in ``tests/unit/test_longnet.py``):

* Sequence length: a branch whose segment length is at least n is one dense (dilated) block, so the cost is
  quadratic in n until n exceeds the segment lengths (with Gigapath's lengths, below 32,768 tokens the (32768, 4)
  branch is dense). n = k * w + 1 costs a whole extra segment of mostly zero rows for that branch.
* Padding: the zero rows are real keys with logit exactly 0 and value 0. They add exp(0) = 1 to the softmax
  denominator of every query of the last (partial) segment and shrink its output towards zero, so the same tile
  gets a different representation depending on how far the sequence length is from a multiple of the segment length.
* Tile order: segments and dilation offsets are positional, so reordering tiles changes which tiles attend to each
  other and therefore every output (the positional embeddings do not undo this). Use one fixed, documented order
  (ModalTune and the Gigapath pipeline keep the tile-file order, row-major from the tiler). Only with a single
  branch of ratio 1 and w >= n is the encoder permutation-equivariant.

Upstream deviation: torchscale concatenates the dilation-padded segments and crops only the end of the sequence, so
when a multi-segment branch has a segment length that is not a multiple of its ratio (only (185363, 8), i.e. only
for n > 185,363 tokens) its outputs land on shifted positions. Here each segment is cropped before concatenation,
as the reference algorithm describes; the two agree for every sequence shorter than 185,364 tokens.

``torch.nn.functional.scaled_dot_product_attention`` does not return the log-sum-exp the merge needs, so
:func:`attention_with_lse` calls the fused kernels behind it directly (the ones it dispatches to on that device):
one pass, no (query, key) matrix in memory, autograd included. No flash-attn package is needed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

UNCOMPUTED_LSE = -1e8  # log-sum-exp of (position, head) pairs a branch did not compute, as upstream
_EXACT_GRADIENTS = False


@contextlib.contextmanager
def exact_gradients():
    """Within this context autograd returns the true gradient of the forward function: the branch-merge weights
    carry gradients, and attention runs as plain (materialised) softmax, since the fused kernels' backward ignores
    the log-sum-exp's gradient. Training keeps upstream's constant merge weights and the fused kernels; integrated
    gradients need the true gradient (otherwise attributions miss the output difference by a few percent). Memory
    grows with the square of each branch's segment length: use it on one patient at a time."""
    global _EXACT_GRADIENTS
    previous, _EXACT_GRADIENTS = _EXACT_GRADIENTS, True
    try:
        yield
    finally:
        _EXACT_GRADIENTS = previous


class DropPath(nn.Module):
    """Stochastic depth per sample (training only), as timm's DropPath; importing timm would cost a training job
    more CPU time than importing torch."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


def attention_with_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-causal attention with scale 1/sqrt(d) on (batch, heads, length, d); returns (output, fp32 log-sum-exp).

    The output is what ``F.scaled_dot_product_attention`` returns on the same device; the log-sum-exp has shape
    (batch, heads, length).
    """
    if _EXACT_GRADIENTS:  # the fused kernels' backward ignores the log-sum-exp's gradient: materialise instead
        scores = (q.float() @ k.float().transpose(-1, -2)) / math.sqrt(q.shape[-1])
        return (torch.softmax(scores, dim=-1) @ v.float()).to(q.dtype), torch.logsumexp(scores, dim=-1)
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)
        return out, lse
    if q.device.type != "cuda":
        raise NotImplementedError(f"dilated attention supports CPU and CUDA tensors, got device {q.device}")
    if q.dtype in (torch.float16, torch.bfloat16) and torch.cuda.get_device_capability(q.device)[0] >= 8:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention(q, k, v)[:2]
        return out, lse
    # memory-efficient kernel: fp32 and pre-Ampere GPUs; its log-sum-exp is padded to a multiple of 32 queries
    out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True)[:2]
    return out, lse[..., : q.shape[-2]]


def _branch_geometry(n: int, segment_length: int, ratio: int) -> tuple[int, int, int]:
    """(effective segment length s, number of segments, positions per head and segment m = ceil(s / r))."""
    s = min(segment_length, n)
    return s, math.ceil(n / s), math.ceil(s / ratio)


def _to_sparse(x: torch.Tensor, segment_length: int, ratio: int) -> torch.Tensor:
    """(B, n, H, d) -> (B * segments, H, m, d): head h of group g keeps segment positions p with p mod r == g."""
    batch, n, heads, dim = x.shape
    s, segments, m = _branch_geometry(n, segment_length, ratio)
    if segments * s > n:
        x = F.pad(x, (0, 0, 0, 0, 0, segments * s - n))  # zero rows up to whole segments
    x = x.reshape(batch * segments, s, heads, dim)
    if m * ratio > s:
        x = F.pad(x, (0, 0, 0, 0, 0, m * ratio - s))  # zero rows up to a multiple of the ratio
    # axes: segment, position j within the group, offset p mod r, head group, head within group, d
    x = x.view(batch * segments, m, ratio, ratio, heads // ratio, dim)
    x = torch.diagonal(x, dim1=2, dim2=3)  # offset == head group -> (B*S, m, H/r, d, r)
    return x.permute(0, 4, 2, 1, 3).reshape(batch * segments, heads, m, dim)


def _to_dense(out: torch.Tensor, lse: torch.Tensor, n: int, segment_length: int, ratio: int):
    """Inverse of :func:`_to_sparse` for one branch's output (zeros) and log-sum-exp (-1e8) where not computed."""
    rows, heads, m, dim = out.shape
    s, segments, _ = _branch_geometry(n, segment_length, ratio)
    batch = rows // segments
    group = heads // ratio
    out = out.reshape(rows, ratio, group, m, dim).permute(0, 3, 2, 4, 1)  # (B*S, m, H/r, d, r)
    out = torch.diag_embed(out, dim1=2, dim2=3)  # (B*S, m, r, r, H/r, d), zero off the diagonal
    out = out.reshape(rows, m * ratio, heads, dim)[:, :s].reshape(batch, segments * s, heads, dim)[:, :n]
    dense_lse = lse.new_full((rows, m, ratio, ratio, group), UNCOMPUTED_LSE)
    torch.diagonal(dense_lse, dim1=2, dim2=3).copy_(lse.reshape(rows, ratio, group, m).permute(0, 3, 2, 1))
    dense_lse = dense_lse.view(rows, m * ratio, heads)[:, :s].reshape(batch, segments * s, heads)[:, :n]
    return out, dense_lse


def dilated_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    segment_lengths: Sequence[int],
    dilated_ratios: Sequence[int],
) -> torch.Tensor:
    """LongNet dilated attention (module docstring) of projected q, k, v (B, n, H, d) -> (B, n, H, d)."""
    if len(segment_lengths) != len(dilated_ratios):
        raise ValueError(f"{len(segment_lengths)} segment lengths but {len(dilated_ratios)} dilation ratios")
    heads = q.shape[2]
    if any(heads % ratio for ratio in dilated_ratios):
        raise ValueError(f"{heads} heads cannot be split into contiguous groups for dilation ratios {dilated_ratios}")
    n = q.shape[1]
    outs, lses = [], []
    for segment_length, ratio in zip(segment_lengths, dilated_ratios, strict=True):
        sparse = [_to_sparse(x, segment_length, ratio) for x in (q, k, v)]
        out, lse = attention_with_lse(*sparse)
        out, lse = _to_dense(out, lse, n, segment_length, ratio)
        outs.append(out)
        lses.append(lse)
    # upstream merges with constant weights (no gradient through the log-sum-exps); exact_gradients() lifts that
    with contextlib.nullcontext() if _EXACT_GRADIENTS else torch.no_grad():
        weights = torch.softmax(torch.stack(lses).float(), dim=0)
    merged = outs[0] * weights[0, ..., None].to(outs[0].dtype)
    for out, weight in zip(outs[1:], weights[1:], strict=True):
        merged = merged + out * weight[..., None].to(out.dtype)
    return merged


def pair_count(n: int, num_heads: int, segment_lengths: Sequence[int], dilated_ratios: Sequence[int]) -> int:
    """(query, key) pairs the kernels evaluate for one sequence of n tokens, zero rows included, summed over heads."""
    total = 0
    for segment_length, ratio in zip(segment_lengths, dilated_ratios, strict=True):
        _, segments, m = _branch_geometry(n, segment_length, ratio)
        total += num_heads * segments * m * m
    return total


class DilatedAttention(nn.Module):
    """torchscale ``DilatedAttention`` with sub-LN: q/k/v projections -> dilated attention -> inner_attn_ln -> out_proj."""

    def __init__(self, embed_dim: int, num_heads: int, segment_lengths: Sequence[int], dilated_ratios: Sequence[int],
                 layer_norm_eps: float = 1e-5):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.segment_lengths = tuple(int(w) for w in segment_lengths)
        self.dilated_ratios = tuple(int(r) for r in dilated_ratios)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.inner_attn_ln = nn.LayerNorm(embed_dim, eps=layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, n, dim = x.shape
        q, k, v = (proj(x).view(batch, n, self.num_heads, dim // self.num_heads)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))
        attended = dilated_attention(q, k, v, self.segment_lengths, self.dilated_ratios)
        return self.out_proj(self.inner_attn_ln(attended.reshape(batch, n, dim)))


class FeedForward(nn.Module):
    """fc1 -> exact GELU (in fp32) -> ffn_layernorm (sub-LN) -> fc2 -> dropout."""

    def __init__(self, embed_dim: int, ffn_dim: int, dropout: float, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.fc1 = nn.Linear(embed_dim, ffn_dim)
        self.ffn_layernorm = nn.LayerNorm(ffn_dim, eps=layer_norm_eps)
        self.fc2 = nn.Linear(ffn_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.fc1(x)
        hidden = F.gelu(hidden.float()).type_as(hidden)
        return self.dropout(self.fc2(self.ffn_layernorm(hidden)))


class LongNetLayer(nn.Module):
    """Pre-LN encoder layer: h += DropPath(Dropout(attn(LN(h)))); h += DropPath(ffn(LN(h)))."""

    def __init__(self, embed_dim: int, num_heads: int, ffn_dim: int, segment_lengths: Sequence[int],
                 dilated_ratios: Sequence[int], dropout: float, drop_path: float, layer_norm_eps: float = 1e-5):
        super().__init__()
        self.self_attn = DilatedAttention(embed_dim, num_heads, segment_lengths, dilated_ratios, layer_norm_eps)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.ffn = FeedForward(embed_dim, ffn_dim, dropout, layer_norm_eps)
        self.final_layer_norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.dropout(self.self_attn(self.self_attn_layer_norm(x))))
        return x + self.drop_path(self.ffn(self.final_layer_norm(x)))


class LongNetEncoder(nn.Module):
    """The torchscale encoder's parameters: ``layers`` and the final ``layer_norm`` (applied by the caller)."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, ffn_dim: int, segment_lengths: Sequence[int],
                 dilated_ratios: Sequence[int], dropout: float, drop_path_rate: float, layer_norm_eps: float = 1e-5):
        super().__init__()
        rates = np.linspace(0, drop_path_rate, depth).tolist()  # as upstream; numpy also works under meta device
        self.layers = nn.ModuleList(
            LongNetLayer(embed_dim, num_heads, ffn_dim, segment_lengths, dilated_ratios, dropout, rate, layer_norm_eps)
            for rate in rates
        )
        self.layer_norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
