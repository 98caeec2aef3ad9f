"""CONCH's text tower (CoCa, `conch_ViT-B-16`) in plain PyTorch, loaded from CONCH's own `pytorch_model.bin`.

CONCH's package cannot ship with the project (CC-BY-NC-ND 4.0, gated weights), and its loader calls
``load_state_dict(strict=False)``, which ignores missing keys silently. This module re-implements only what
``CoCa.encode_text(tokens, normalize=True, embed_cls=True)`` computes (reference: data-formats.md section 8,
CONCH @ 141cc09 ``open_clip_custom/transformer.py`` ``TextTransformer``), with module names equal to the
checkpoint's ``text.*`` keys, and loads that subset strictly: a missing or unexpected ``text.*`` key is an error.
The vision tower and the captioning decoder keys are not read.

Text path: tokens [B, 128] -> drop the last slot (reserved for CLS) -> token embedding + a learned CLS embedding
appended at the end -> positional embedding -> 12 pre-LayerNorm residual blocks (causal mask; the CLS row also
masks padding) -> LayerNorm of the CLS output -> ``@ text_projection`` (768 -> 512) -> L2 normalisation.

Tokenizer: CONCH's byte-level BPE file ``conch_byte_level_bpe_uncased.json`` (part of the CONCH repository, same
licence, so the user points the config at it): at most 127 tokens with <start_of_text>/<end_of_text>, padded
with <pad> to 127, then one more <pad> appended for the CLS slot -> [B, 128].
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CONTEXT_LENGTH = 128
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<start_of_text>", "<end_of_text>"
TEXT_PREFIX = "text."


class ResidualAttentionBlock(nn.Module):
    """open_clip's pre-norm block; names match CONCH's keys (ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", nn.GELU()), ("c_proj", nn.Linear(hidden, width))])
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int):
        super().__init__()
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class ConchTextTower(nn.Module):
    """The ``text`` sub-module of CONCH's CoCa with ``embed_cls=True``; ``forward`` is ``encode_text``."""

    def __init__(
        self,
        vocab_size: int = 32007,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        output_dim: int = 512,
        context_length: int = CONTEXT_LENGTH,
        pad_id: int = 0,
    ):
        super().__init__()
        self.heads = heads
        self.pad_id = pad_id
        self.context_length = context_length
        self.text_projection = nn.Parameter(torch.empty(width, output_dim))
        self.cls_emb = nn.Parameter(torch.empty(width))
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads)
        self.ln_final = nn.LayerNorm(width)
        causal = torch.full((context_length, context_length), float("-inf")).triu_(1)
        self.register_buffer("causal_mask", causal, persistent=False)

    @property
    def output_dim(self) -> int:
        return self.text_projection.shape[1]

    def _cls_mask(self, text: torch.Tensor) -> torch.Tensor:
        # As open_clip's build_cls_mask: only the CLS query row masks keys, and it masks by the token one slot
        # to the left (key 0 always visible). Kept as is so that outputs equal CONCH's.
        keep = (text != self.pad_id).unsqueeze(1)
        keep = F.pad(keep, (1, 0, keep.shape[2], 0), value=True)
        additive = torch.zeros(keep.shape, dtype=self.positional_embedding.dtype, device=text.device)
        additive.masked_fill_(~keep, float("-inf"))
        return torch.repeat_interleave(additive, self.heads, 0)

    def forward(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        text = tokens[:, :-1]  # the last slot is the CLS placeholder
        seq_len = text.shape[1] + 1
        x = self.token_embedding(text)
        x = torch.cat([x, self.cls_emb.reshape(1, 1, -1).expand(x.shape[0], 1, -1)], dim=1)
        attn_mask = self.causal_mask[None, :seq_len, :seq_len] + self._cls_mask(text)[:, :seq_len, :seq_len]
        x = x + self.positional_embedding[:seq_len]
        x = self.transformer(x.permute(1, 0, 2), attn_mask).permute(1, 0, 2)
        pooled = self.ln_final(x[:, -1]) @ self.text_projection
        return F.normalize(pooled, dim=-1) if normalize else pooled


def read_conch_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """CONCH's checkpoint as a flat state dict (``state_dict`` entry and ``module.`` prefixes unwrapped)."""
    from modaltune.io import load_state_dict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"CONCH checkpoint not found: {path}. Download pytorch_model.bin from the gated Hugging Face repository "
            "MahmoodLab/CONCH and set text.conch.checkpoint in the config to its path (or use text.encoder: minilm)."
        )
    state = load_state_dict(path)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {key.removeprefix("module."): value for key, value in state.items()}


def text_tower_state(state: dict[str, torch.Tensor], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The ``text.*`` subset with the prefix removed; raises when it is empty."""
    subset = {key[len(TEXT_PREFIX):]: value for key, value in state.items() if key.startswith(TEXT_PREFIX)}
    if not subset:
        raise KeyError(f"{source}: no '{TEXT_PREFIX}*' keys; is it CONCH's pytorch_model.bin? First keys: {sorted(state)[:5]}")
    return subset


def load_conch_text_tower(path: str | os.PathLike, heads: int = 12) -> ConchTextTower:
    """Build the text tower with the checkpoint's dimensions and load its ``text.*`` weights strictly."""
    subset = text_tower_state(read_conch_state(path), source=str(path))
    required = ("token_embedding.weight", "positional_embedding", "text_projection", "cls_emb")
    missing = [key for key in required if key not in subset]
    if missing:
        raise KeyError(f"{path}: CONCH text tower keys missing: {[TEXT_PREFIX + k for k in missing]}")
    layer_ids = {int(m.group(1)) for key in subset if (m := re.match(r"transformer\.resblocks\.(\d+)\.", key))}
    vocab_size, width = subset["token_embedding.weight"].shape
    model = ConchTextTower(
        vocab_size=vocab_size,
        width=width,
        layers=max(layer_ids) + 1 if layer_ids else 0,
        heads=heads,
        output_dim=subset["text_projection"].shape[1],
        context_length=subset["positional_embedding"].shape[0],
    )
    expected = set(model.state_dict())
    absent, unexpected = sorted(expected - set(subset)), sorted(set(subset) - expected)
    if absent or unexpected:
        raise KeyError(
            f"{path}: the CONCH text tower does not match the checkpoint: missing {[TEXT_PREFIX + k for k in absent]}, "
            f"unexpected {[TEXT_PREFIX + k for k in unexpected]}"
        )
    model.load_state_dict(subset, strict=True)
    return model.eval()


class ConchTokenizer:
    """CONCH's ``tokenize``: byte-level BPE, 127 tokens incl. start/end, <pad> to 127, one <pad> more -> 128."""

    def __init__(self, path: str | os.PathLike, context_length: int = CONTEXT_LENGTH):
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"CONCH tokenizer not found: {path}. It is conch/open_clip_custom/tokenizers/"
                "conch_byte_level_bpe_uncased.json in the CONCH repository (github.com/mahmoodlab/CONCH); "
                "set text.conch.tokenizer in the config to its path."
            )
        self.tokenizer = Tokenizer.from_file(str(path))
        self.pad_id = self.tokenizer.token_to_id(PAD_TOKEN)
        missing = [t for t in (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN) if self.tokenizer.token_to_id(t) is None]
        if missing:
            raise ValueError(f"{path}: tokenizer lacks the special tokens {missing}; is it CONCH's tokenizer file?")
        self.max_length = context_length - 1
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.enable_padding(length=self.max_length, pad_id=self.pad_id, pad_token=PAD_TOKEN)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        ids = torch.tensor([e.ids for e in self.tokenizer.encode_batch(list(texts))], dtype=torch.long)
        return F.pad(ids, (0, 1), value=self.pad_id)
