"""Where torch work runs: the `device` settings of the features, text and training sections mean the same."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """``auto`` -> the first CUDA GPU when there is one, else the CPU; a CUDA device without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' requested but torch sees no CUDA GPU; set the device to cpu or auto")
    return resolved
