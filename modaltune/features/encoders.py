"""Build a tile encoder from the registry: timm model, weights, device, precision, input transform."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modaltune.devices import resolve_device
from modaltune.io import load_state_dict
from modaltune.weights import WeightsError, tile_encoder_source

from .registry import EncoderConfig, get_encoder_config
from .transforms import TilePreprocess

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Encoder:
    """A tile encoder ready for inference: ``encode`` maps a uint8 batch (B, 3, H, W) to features (B, D)."""

    config: EncoderConfig
    model: torch.nn.Module
    device: torch.device
    precision: str  # "fp32", "bf16" or "fp16" (autocast)
    weights: str  # where the weights came from: a file path, "hub:<repo>" or "random(seed=<n>)"
    preprocess: TilePreprocess

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def embed_dim(self) -> int:
        return self.model.num_features

    def __post_init__(self):
        transform = self.config.transform
        self._mean = torch.tensor(transform.mean, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(transform.std, device=self.device).view(1, 3, 1, 1) * 255

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (B, 3, H, W) from :attr:`preprocess`, on any device -> float32 features (B, D) on the device.

        ToTensor's division by 255 is folded into the mean and std, so the normalisation is one fused step.
        """
        x = images.to(self.device, non_blocking=True).float()
        x = (x - self._mean) / self._std
        with self._autocast():
            return self.model(x).float()

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 on GPUs that support it (fp16 on older ones), fp32 on the CPU."""
    if precision == "auto":
        if device.type != "cuda":
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; choose one of auto, {', '.join(PRECISIONS)}")
    return precision


def create_encoder(
    name: str,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    **model_overrides: Any,
) -> Encoder:
    """Build the registered encoder ``name`` in eval mode on ``device``.

    ``weights``: a state-dict file (``pytorch_model.bin``, ``.pth`` or ``.safetensors``) loaded strictly; ``"hub"``
    to download the released weights from Hugging Face (network, and for gated repositories a token with access);
    ``"random"`` for random weights from the encoder's fixed seed (benchmarks, tests); ``None`` is allowed only for
    encoders that run with random weights by design (``tiny``). ``model_overrides`` replace timm keyword arguments
    (``depth``, ``embed_dim``, ...), e.g. to build a Gigapath-format model at test size.
    """
    config = get_encoder_config(name)
    source = tile_encoder_source(name, weights)
    model_args = dict(config.model_args, **model_overrides)
    import timm

    if source == "random":
        # timm initialises LayerScale to 1e-5, which makes a random network's output nearly independent of its
        # input (every tile would get the same features); with gamma = 1 random features do carry the image.
        model_args["init_values"] = 1.0
        seed = 0 if config.random_seed is None else config.random_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(config.arch, pretrained=False, **model_args)
        provenance = f"random(seed={seed})"
        by_design = config.random_seed is not None
        log.log(
            logging.INFO if by_design else logging.WARNING,
            "tile encoder '%s': random weights, seed %d",
            name,
            seed,
        )
    else:
        path = _download(config) if source == "hub" else Path(source)
        model, state = _checked_model(config, path, model_args)
        model.load_state_dict(state, strict=True, assign=True)
        provenance = f"hub:{config.hf_repo}" if source == "hub" else str(path)
    resolved = resolve_device(device)
    model = model.eval().to(resolved)
    return Encoder(
        config=config,
        model=model,
        device=resolved,
        precision=resolve_precision(precision, resolved),
        weights=provenance,
        preprocess=TilePreprocess(config.transform),
    )


def check_weights(name: str, weights: str | os.PathLike | None) -> str:
    """What ``create_encoder(name, weights)`` would load, checked without loading it: the weights are given where
    the encoder needs them and a file matches the architecture key by key and shape by shape (its tensors are
    memory-mapped, the model is built on the meta device). Returns the source: a path, "hub" (not downloaded
    here) or "random"; raises :class:`WeightsError` naming the problem."""
    config = get_encoder_config(name)
    source = tile_encoder_source(name, weights)
    if source not in ("hub", "random"):
        _checked_model(config, Path(source), config.model_args, mmap=True)
    return source


def _checked_model(
    config: EncoderConfig, path: Path, model_args: dict[str, Any], mmap: bool = False
) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """The encoder on the meta device and the state of ``path``, checked to match key by key."""
    import timm

    state = _flat_float_state(load_state_dict(path, mmap=mmap), path)
    # built on the meta device: a random initialisation of ViT-g's 1.1 B parameters would be thrown away
    with torch.device("meta"):
        model = timm.create_model(config.arch, pretrained=False, **model_args)
    _check_keys(model, state, path, config, model_args)
    return model, state


def _download(config: EncoderConfig) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            return Path(hf_hub_download(config.hf_repo, filename))
        except EntryNotFoundError as error:
            # the repository has no such file: try the next name
            if not isinstance(error, LocalEntryNotFoundError):
                continue
            failure = error  # offline and not in the local cache
        except Exception as error:  # gated repository without access, bad token, network
            failure = error
        raise WeightsError(
            f"could not download the weights of '{config.name}' from {config.hf_repo}: {failure} -- "
            f"{config.weights_help}"
        ) from failure
    raise WeightsError(f"{config.hf_repo} holds neither model.safetensors nor pytorch_model.bin")


def _flat_float_state(state: dict, path: Path) -> dict[str, torch.Tensor]:
    nested = sorted(key for key, value in state.items() if not isinstance(value, torch.Tensor))
    if nested:
        raise WeightsError(
            f"{path} is not a flat state dict: entries {_preview(nested)} are not tensors "
            "(a training checkpoint? save model.state_dict() instead)"
        )
    return {key: value.float() if value.is_floating_point() else value for key, value in state.items()}


def _check_keys(
    model: torch.nn.Module, state: dict, path: Path, config: EncoderConfig, model_args: dict[str, Any]
) -> None:
    """Raise with the missing, unexpected and wrongly shaped keys, before torch's terser error would."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in sorted(set(state) & set(expected))
        if tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    raise WeightsError(
        f"{path} is not a '{config.name}' checkpoint (timm {config.arch} with {model_args}):\n"
        f"  missing keys ({len(missing)}): {_preview(missing)}\n"
        f"  unexpected keys ({len(unexpected)}): {_preview(unexpected)}\n"
        f"  shape mismatches, file vs model ({len(mismatched)}): {_preview(mismatched)}"
    )


def _preview(items: list[str], limit: int = 20) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... and {len(items) - limit} more" if len(items) > limit else "") if items else "none"
