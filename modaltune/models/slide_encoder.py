"""Prov-GigaPath slide encoder (``gigapath_slide_enc12l768d``) in pure PyTorch, plus a ``tiny`` configuration.

Parameter names and shapes equal those of Gigapath's ``slide_encoder.pth`` (tensors under its ``"model"`` key;
reference ``gigapath-and-tiling.md`` B.5), so the released checkpoint loads strictly. Differences from upstream
are deliberate: the sin-cos positional rows are computed for the tiles present (never the 3 GB table), out-of-range
grid positions raise instead of aliasing, and a missing or mismatching checkpoint raises instead of silently
keeping random weights (so does a real encoder built without weights: :mod:`modaltune.weights`).

The forward pass is exposed in three steps so the Modal Adapter can act between blocks of layers::

    tokens = encoder.embed(features, coords)             # patch embedding + positions + CLS (+ dropout)
    for start, stop in encoder.layer_blocks(3):          # gigapath: (0, 4), (4, 8), (8, 12)
        ...                                              # inject into tokens[:, 1:]
        tokens = encoder.run_layers(tokens, start, stop)
        ...                                              # extract from tokens[:, 1:]
    slide = encoder.head(tokens, pool="cls")             # or tokens[:, 0] for the raw CLS ModalTune uses

``forward`` composes them and returns what Gigapath's ``LongNetViT.forward`` returns (a list of pooled vectors).

Tokens stay in input order and dilated attention is order-dependent (see :mod:`modaltune.models.longnet`): feed the
tiles in the order of the tile table (row-major from the tiler) at training and inference alike.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from modaltune.io import load_state_dict
from modaltune.models.longnet import LongNetEncoder
from modaltune.weights import slide_encoder_source

POOLING = ("cls", "mean")

@dataclass(frozen=True)
class SlideEncoderConfig:
    """Architecture of a LongNet slide encoder; the registry below holds the named ones as data."""

    name: str
    in_chans: int  # tile-feature dimension
    embed_dim: int
    depth: int
    num_heads: int
    ffn_dim: int
    segment_lengths: tuple[int, ...]
    dilated_ratios: tuple[int, ...]
    slide_ngrids: int = 1000  # grid positions per side of the positional embedding
    tile_size: int = 256  # divisor from coordinates to grid cells (level-0 px upstream, reference D)
    dropout: float = 0.25  # embedding, attention-output and FFN-output dropout
    drop_path_rate: float = 0.1  # linear 0 -> rate over the layers
    layer_norm_eps: float = 1e-5  # torchscale LayerNorms
    norm_eps: float = 1e-6  # the outer `norm`


SLIDE_ENCODERS: dict[str, SlideEncoderConfig] = {
    config.name: config
    for config in (
        SlideEncoderConfig(
            name="gigapath_slide_enc12l768d",
            in_chans=1536,
            embed_dim=768,
            depth=12,
            num_heads=16,
            ffn_dim=3072,
            # get_optimal_segment_length(262144, 256): 2 ** linspace(10, 20, 5), truncated to int
            segment_lengths=(1024, 5792, 32768, 185363, 1048576),
            dilated_ratios=(1, 2, 4, 8, 16),
        ),
        # Same code path at demo scale: segments short enough that at ~100 tiles every branch has several
        # segments, zero padding and dilation; 6 layers split into 3 blocks of 2 for the adapter.
        SlideEncoderConfig(
            name="tiny",
            in_chans=96,  # the tiny tile encoder's feature size (modaltune.features registry; tested)
            embed_dim=64,
            depth=6,
            num_heads=4,
            ffn_dim=256,
            segment_lengths=(16, 64, 256),
            dilated_ratios=(1, 2, 4),
        ),
    )
}


def sincos_position_embedding(grid: torch.Tensor, dim: int) -> torch.Tensor:
    """MAE 2-D sin-cos rows for grid cells (..., 2) = (gx, gy) -> float32 (..., dim).

    Equals row gx * slide_ngrids + gy + 1 of Gigapath's table: the first half encodes gy, the second gx, each half
    as [sin(p * w_i), cos(p * w_i)] with w_i = 10000 ** (-i / (dim / 4)), computed in float64 like upstream.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a dimension divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64, device=grid.device) / quarter)

    def encode(position: torch.Tensor) -> torch.Tensor:
        angles = position.to(torch.float64)[..., None] * omega
        return torch.cat([angles.sin(), angles.cos()], dim=-1)

    return torch.cat([encode(grid[..., 1]), encode(grid[..., 0])], dim=-1).float()


class PatchEmbed(nn.Module):
    """Linear tile-feature projection (Gigapath's ``patch_embed.proj``)."""

    def __init__(self, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_chans, embed_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)


class SlideEncoder(nn.Module):
    """LongNet ViT over tile features; see the module docstring for the block-wise API."""

    def __init__(self, config: SlideEncoderConfig, checkpointing: bool = False):
        super().__init__()
        self.config = config
        self.checkpointing = checkpointing  # recompute each layer in backward instead of storing activations
        self.patch_embed = PatchEmbed(config.in_chans, config.embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.embed_dropout = nn.Dropout(config.dropout)
        self.encoder = LongNetEncoder(
            config.embed_dim, config.depth, config.num_heads, config.ffn_dim, config.segment_lengths,
            config.dilated_ratios, config.dropout, config.drop_path_rate, config.layer_norm_eps,
        )
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.norm_eps)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Gigapath's init (it overrides torchscale's): Xavier-uniform Linear weights, zero biases, CLS ~ N(0, 0.02)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.cls_token, std=0.02)

    # ---- coordinates -------------------------------------------------------------------------------------------
    def coords_to_grid(self, coords: torch.Tensor) -> torch.Tensor:
        """Grid cells (gx, gy) = floor(coords / tile_size), checked to lie in [0, slide_ngrids - 1]."""
        grid = torch.div(coords.to(torch.float64), self.config.tile_size).floor().long()
        limit = self.config.slide_ngrids
        if grid.numel() and (grid.min() < 0 or grid.max() >= limit):
            raise ValueError(
                f"tile coordinates fall outside the {limit}x{limit} position grid: x / {self.config.tile_size} spans "
                f"[{grid[..., 0].min()}, {grid[..., 0].max()}], y / {self.config.tile_size} spans "
                f"[{grid[..., 1].min()}, {grid[..., 1].max()}] (allowed [0, {limit - 1}]). Coordinates must be "
                "level-0 pixels of the tile's top-left corner; a patient bag of many slides stacked along y can "
                "exceed the grid: reduce the slides per bag or check the coordinate frame of the feature files."
            )
        return grid

    # ---- block-wise forward ------------------------------------------------------------------------------------
    def embed(self, features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Tile features (B, L, in_chans) and coords (B, L, 2) -> tokens (B, L + 1, D), CLS first, after dropout."""
        if features.dim() != 3 or coords.shape != (*features.shape[:2], 2):
            raise ValueError(
                f"expected features (batch, tiles, {self.config.in_chans}) and coords (batch, tiles, 2), "
                f"got {tuple(features.shape)} and {tuple(coords.shape)}"
            )
        if features.shape[-1] != self.config.in_chans:
            raise ValueError(
                f"tile features have {features.shape[-1]} dimensions but slide encoder '{self.config.name}' expects "
                f"{self.config.in_chans}: extract features with the tile encoder that matches the slide encoder"
            )
        tokens = self.patch_embed(features)
        tokens = tokens + sincos_position_embedding(self.coords_to_grid(coords), self.config.embed_dim)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # + position row 0, which is all zeros
        return self.embed_dropout(torch.cat([cls, tokens], dim=1))

    def run_layers(self, tokens: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Apply encoder layers ``start`` .. ``stop - 1`` (all by default) to tokens (B, L + 1, D)."""
        stop = self.config.depth if stop is None else stop
        if not 0 <= start <= stop <= self.config.depth:
            raise ValueError(f"layer range [{start}, {stop}) outside the {self.config.depth} layers of "
                             f"'{self.config.name}'")
        for layer in self.encoder.layers[start:stop]:
            if self.checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(layer, tokens, use_reentrant=False)  # keeps the RNG state: same dropout masks
            else:
                tokens = layer(tokens)
        return tokens

    def layer_blocks(self, blocks: int) -> list[tuple[int, int]]:
        """Split the layers into ``blocks`` equal (start, stop) ranges, e.g. 12 layers, 3 -> (0,4), (4,8), (8,12)."""
        depth = self.config.depth
        if blocks < 1 or depth % blocks:
            raise ValueError(f"{depth} layers of '{self.config.name}' cannot be split into {blocks} equal blocks")
        size = depth // blocks
        return [(start, start + size) for start in range(0, depth, size)]

    def head(self, tokens: torch.Tensor, pool: str = "cls", encoder_norm: bool = True) -> torch.Tensor:
        """Pool tokens (B, L + 1, D) -> (B, D) as Gigapath does.

        ``encoder_norm`` applies the encoder's final LayerNorm first (Gigapath's default last-layer output; its
        per-layer outputs skip it). ``pool="cls"`` takes the CLS token, ``"mean"`` averages the tile tokens; both
        then apply the outer ``norm``.
        """
        if pool not in POOLING:
            raise ValueError(f"unknown pooling '{pool}' (choose from {', '.join(POOLING)})")
        if encoder_norm:
            tokens = self.encoder.layer_norm(tokens)
        pooled = tokens[:, 0] if pool == "cls" else tokens[:, 1:].mean(dim=1)
        return self.norm(pooled)

    def forward(self, features: torch.Tensor, coords: torch.Tensor, pool: str = "cls",
                all_layers: bool = False) -> list[torch.Tensor]:
        """Gigapath's output: [pooled last layer] or, with ``all_layers``, depth + 1 pooled states (input first)."""
        tokens = self.embed(features, coords)
        if not all_layers:
            return [self.head(self.run_layers(tokens), pool)]
        states = [tokens]
        for index in range(self.config.depth):
            states.append(self.run_layers(states[-1], index, index + 1))
        return [self.head(state, pool, encoder_norm=False) for state in states]

    # ---- weights -----------------------------------------------------------------------------------------------
    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a Gigapath-style checkpoint (tensors under ``"model"``); every key and shape must match."""
        state = load_state_dict(path, key="model")
        expected = self.state_dict()
        problems = []
        if missing := sorted(set(expected) - set(state)):
            problems.append(f"missing keys: {_listing(missing)}")
        if unexpected := sorted(set(state) - set(expected)):
            problems.append(f"unexpected keys: {_listing(unexpected)}")
        if shapes := [f"{key} {tuple(state[key].shape)} != {tuple(expected[key].shape)}"
                      for key in sorted(set(state) & set(expected)) if state[key].shape != expected[key].shape]:
            problems.append(f"shape mismatches (checkpoint != model): {_listing(shapes)}")
        if problems:
            raise ValueError(f"{path} does not match slide encoder '{self.config.name}': " + "; ".join(problems))
        self.load_state_dict(state, strict=True)


def _listing(items: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, ... ({len(items)} in all)"


def build_slide_encoder(name: str, weights: str | os.PathLike | None = None, checkpointing: bool = False,
                        **overrides) -> SlideEncoder:
    """A registered slide encoder, with config fields overridden and its weights loaded from the file ``weights``.

    Random weights only by design (``tiny``, ``weights=None``) or on purpose (``weights="random"``, benchmarks);
    ``None`` for a real encoder raises :class:`modaltune.weights.WeightsError` (rule in :mod:`modaltune.weights`).
    """
    if name not in SLIDE_ENCODERS:
        raise KeyError(f"unknown slide encoder '{name}' (registered: {', '.join(SLIDE_ENCODERS)})")
    fields = {field.name for field in dataclasses.fields(SlideEncoderConfig)} - {"name"}
    if unknown := sorted(set(overrides) - fields):
        raise TypeError(f"unknown slide encoder setting(s) {unknown} (allowed: {sorted(fields)})")
    source = slide_encoder_source(name, weights)
    model = SlideEncoder(dataclasses.replace(SLIDE_ENCODERS[name], **overrides), checkpointing=checkpointing)
    if source is not None:
        model.load_weights(source)
    return model
