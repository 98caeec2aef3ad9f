"""Modal Adapter (reference section 8): injector, extractor and self-attention over the multimodal tokens.

Image tokens F (patches, CLS excluded) and multimodal tokens C = [task prompt ; pathway tokens] exchange information
between blocks of frozen LongNet layers. Every attention is pre-norm and runs at a reduced inner width
(``inner_ratio`` x dim = 192 for dim 768, 12 heads of 16) with its own projections in and out.

``residual="paper"`` (project default) uses the paper's single residuals,
  injector  F^ = F + gamma * CA(F -> C),   extractor  C^ = C + CA(C -> F);
``residual="code"`` reproduces the official code, whose cross-attention layer already adds its query:
  injector  F^ = (1 + gamma) * F + gamma * CA,   extractor  C^ = 2 C + CA.
Both injectors are the identity while gamma = 0 (its initial value).
"""

from __future__ import annotations

import torch
from torch import nn

from modaltune.models.longnet import DropPath

RESIDUALS = ("paper", "code")


class ReducedAttention(nn.Module):
    """q_proj (dim -> inner) -> multi-head attention (inner width, keys/values of width dim) -> out_proj (-> dim)."""

    def __init__(self, dim: int, heads: int, inner_ratio: float, dropout: float = 0.0):
        super().__init__()
        inner = int(dim * inner_ratio)
        if inner % heads:
            raise ValueError(f"attention width {inner} (= {dim} x {inner_ratio}) is not divisible by {heads} heads")
        self.q_proj = nn.Linear(dim, inner)
        self.attention = nn.MultiheadAttention(inner, heads, dropout=dropout, batch_first=True, kdim=dim, vdim=dim)
        self.out_proj = nn.Linear(inner, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        attended = self.attention(self.q_proj(query), key, value, need_weights=False)[0]
        return self.out_proj(attended)

    def reset_parameters(self) -> None:
        """Xavier-uniform on every matrix, as the official code (re-applied after the global init)."""
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)


class CrossAttention(nn.Module):
    """CA(q, m) = W_o(MHA(Q = W_q(LN_q(q) + p_q), K = V = LN_kv(m) + p_m)); no residual (callers add theirs)."""

    def __init__(self, dim: int, heads: int, inner_ratio: float):
        super().__init__()
        self.norm_query = nn.LayerNorm(dim)
        self.norm_memory = nn.LayerNorm(dim)
        self.attend = ReducedAttention(dim, heads, inner_ratio)

    def forward(self, query, memory, query_pos=None, memory_pos=None) -> torch.Tensor:
        query = self.norm_query(query)
        memory = self.norm_memory(memory)
        if query_pos is not None:
            query = query + query_pos
        if memory_pos is not None:
            memory = memory + memory_pos
        return self.attend(query, memory, memory)


class SelfAttention(nn.Module):
    """SA(t) = t + Dropout(W_o(MHA(Q = K = LN(t) + p, V = LN(t)))) over the multimodal tokens."""

    def __init__(self, dim: int, heads: int, inner_ratio: float, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attend = ReducedAttention(dim, heads, inner_ratio, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        normed = self.norm(tokens)
        return tokens + self.dropout(self.attend(normed + pos, normed + pos, normed))


class Injector(nn.Module):
    """Image tokens query the multimodal tokens; the update is scaled by a learnable per-channel gamma."""

    def __init__(self, dim: int, heads: int, inner_ratio: float, gamma_init: float = 0.0, residual: str = "paper"):
        super().__init__()
        _check_residual(residual)
        self.attention = CrossAttention(dim, heads, inner_ratio)
        self.gamma = nn.Parameter(torch.full((dim,), float(gamma_init)))
        self.residual = residual

    def forward(self, image: torch.Tensor, modal: torch.Tensor, modal_pos: torch.Tensor) -> torch.Tensor:
        update = self.gamma * self.attention(image, modal, memory_pos=modal_pos)
        if self.residual == "code":
            return (1 + self.gamma) * image + update
        return image + update


class Extractor(nn.Module):
    """Multimodal tokens query the image tokens, then a pre-norm FFN (ReLU) with DropPath, both residual."""

    def __init__(self, dim: int, heads: int, inner_ratio: float, drop_path: float = 0.1, residual: str = "paper"):
        super().__init__()
        _check_residual(residual)
        self.attention = CrossAttention(dim, heads, inner_ratio)
        hidden = int(dim * inner_ratio)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)
        self.residual = residual

    def forward(self, modal: torch.Tensor, image: torch.Tensor, modal_pos: torch.Tensor) -> torch.Tensor:
        base = 2 * modal if self.residual == "code" else modal
        modal = base + self.attention(modal, image, query_pos=modal_pos)
        return modal + self.drop_path(self.ffn(self.ffn_norm(modal)))


class ModalAdapter(nn.Module):
    """The adapter modules of all blocks: per block an injector and an extractor, self-attention over the
    multimodal tokens before every block but the first, and ``extra_extractors`` more extractors after the last.

    It holds no frozen layers: :class:`modaltune.models.modaltune.ModalTune` runs the encoder's layers between
    :meth:`inject` and :meth:`extract`.
    """

    def __init__(self, dim: int, n_blocks: int = 3, heads: int = 12, inner_ratio: float = 0.25,
                 gamma_init: float = 0.0, drop_path: float = 0.1, extra_extractors: int = 2,
                 self_attention: bool = True, self_attention_dropout: float = 0.0, residual: str = "paper"):
        super().__init__()
        self.n_blocks = n_blocks
        self.injectors = nn.ModuleList(
            Injector(dim, heads, inner_ratio, gamma_init, residual) for _ in range(n_blocks))
        self.extractors = nn.ModuleList(
            Extractor(dim, heads, inner_ratio, drop_path, residual) for _ in range(n_blocks))
        self.extra_extractors = nn.ModuleList(
            Extractor(dim, heads, inner_ratio, drop_path, residual) for _ in range(extra_extractors))
        self.self_attentions = nn.ModuleList(
            SelfAttention(dim, heads, inner_ratio, self_attention_dropout) for _ in range(n_blocks - 1)
        ) if self_attention else None
        self.apply(init_linear_and_norm)
        for module in self.modules():
            if isinstance(module, ReducedAttention):
                module.reset_parameters()

    def inject(self, block: int, image: torch.Tensor, modal: torch.Tensor, modal_pos: torch.Tensor):
        """Before block ``block``'s layers: self-attention on C (blocks > 0), then inject C into F."""
        if block > 0 and self.self_attentions is not None:
            modal = self.self_attentions[block - 1](modal, modal_pos)
        return self.injectors[block](image, modal, modal_pos), modal

    def extract(self, block: int, modal: torch.Tensor, image: torch.Tensor, modal_pos: torch.Tensor):
        """After block ``block``'s layers: extract F into C (plus the extra extractors after the last block)."""
        modal = self.extractors[block](modal, image, modal_pos)
        if block == self.n_blocks - 1:
            for extractor in self.extra_extractors:
                modal = extractor(modal, image, modal_pos)
        return modal


def init_linear_and_norm(module: nn.Module) -> None:
    """The official code's global init: Linear truncated normal std 0.02 / bias 0, LayerNorm 1 / 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _check_residual(residual: str) -> None:
    if residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
