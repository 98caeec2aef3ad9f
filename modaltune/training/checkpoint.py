"""Per-epoch training checkpoints (safetensors + JSON, never pickle) and resume.

``<run>/checkpoint/`` holds ``epoch{E}.safetensors`` (trainable weights, optimiser moments, torch RNG state) and
``state.json`` (completed epochs, best epoch and score, history rows, the numpy generator state, the optimiser's
hyper-parameters). ``state.json`` is written last and names its weights file, so an interruption at any point
leaves either the previous consistent pair or the new one; older weight files are deleted afterwards.
``best.safetensors`` holds the trainable weights of the best epoch so far.

A checkpoint resumes only the run that wrote it: ``state.json`` records a key of the run's config and inputs, and a
checkpoint with another key (inputs regenerated, settings changed) is discarded with a warning, so the run starts
afresh instead of continuing someone else's optimisation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from modaltune.io import atomic_path, write_json

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
BEST_FILE = "best.safetensors"


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def save_checkpoint(folder: Path, epoch: int, model_tensors: dict[str, torch.Tensor],
                    optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Write epoch ``epoch``'s checkpoint; ``state`` is JSON-serialisable (history, best, numpy RNG, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = f"epoch{epoch:03d}.safetensors"
    tensors = {f"model.{k}": v for k, v in model_tensors.items()}
    optimizer_state = optimizer.state_dict()
    for index, moments in optimizer_state["state"].items():
        for key, value in moments.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for device, rng in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{device}"] = rng
    save_tensors(tensors, folder / weights, metadata={"epoch": str(epoch)})
    write_json(dict(state, epoch=epoch, weights=weights, optimizer_groups=optimizer_state["param_groups"]),
               folder / STATE_FILE)
    for old in folder.glob("epoch*.safetensors"):
        if old.name != weights:
            old.unlink()


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    run_key: str, extra: dict[str, torch.nn.Module] | None = None) -> dict[str, Any] | None:
    """Restore model, optimiser and torch RNG from the last checkpoint in ``folder`` if it was written by the run
    ``run_key``; returns its state, or None when there is nothing to resume. ``extra`` maps a key prefix of the
    saved model tensors to a module trained alongside the model (strictly loaded)."""
    state_path = folder / STATE_FILE
    if not state_path.is_file():
        return None
    state = json.loads(state_path.read_text())
    if state.get("run_key") != run_key:
        log.warning("%s belongs to a run with other inputs or settings; discarding it and starting afresh", folder)
        for stale in [state_path, *folder.glob("*.safetensors")]:
            stale.unlink()
        return None
    weights_path = folder / state["weights"]
    tensors = load_file(str(weights_path))
    model_tensors = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    for prefix, module in (extra or {}).items():
        module.load_state_dict({k.removeprefix(prefix): v for k, v in model_tensors.items() if k.startswith(prefix)})
        model_tensors = {k: v for k, v in model_tensors.items() if not k.startswith(prefix)}
    missing, unexpected = model.load_state_dict(model_tensors, strict=False)
    missing = [k for k in missing if not k.startswith("encoder.")]
    if missing or unexpected:
        raise ValueError(f"{weights_path} does not match the model (missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}); delete {folder} to start the run afresh")
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": moments, "param_groups": state["optimizer_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[f"rng.cuda.{d}"] for d in range(torch.cuda.device_count()) if f"rng.cuda.{d}" in tensors]
    if cuda_states:
        torch.cuda.set_rng_state_all(cuda_states)
    return state
