"""The training objective (reference section 10) and the learning-rate schedule (section 11)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOSS_REDUCTIONS = ("mean", "sum_x10")
SCHEDULES = ("paper", "code")


def kl_to_text(outputs: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0,
               reduction: str = "mean") -> torch.Tensor:
    """KL(text || model) per task over the feature axis.

    ``outputs`` (T, K) raw model outputs, ``targets`` (T, K) projected, unit-norm text embeddings. Per task t:
    p_t = softmax(targets_t / tau), q_t = softmax(normalise(outputs_t) / tau), KL_t = sum_j p_tj (log p_tj - log q_tj).
    ``reduction="mean"``: (1/T) sum_t KL_t (the paper's Eq. 5); ``"sum_x10"``: 10 tau^2 sum_t KL_t (official code).
    """
    if reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"loss reduction must be one of {LOSS_REDUCTIONS}, got {reduction!r}")
    if outputs.shape != targets.shape:
        raise ValueError(f"model outputs {tuple(outputs.shape)} and text targets {tuple(targets.shape)} differ; "
                         "model output size must equal text.projector_dim")
    log_q = F.log_softmax(F.normalize(outputs.float(), dim=-1) / temperature, dim=-1)
    log_p = F.log_softmax(targets.float() / temperature, dim=-1)
    per_task = (log_p.exp() * (log_p - log_q)).sum(dim=-1)
    if reduction == "mean":
        return per_task.mean()
    return 10 * temperature**2 * per_task.sum()


def learning_rate(epoch: int, epochs: int, max_lr: float, warmup_epochs: int, warmup_factor: float = 20.0,
                  schedule: str = "paper") -> float:
    """Per-epoch learning rate: linear warm-up from max_lr / warmup_factor to max_lr, then cosine towards 0.

    ``"paper"``: warm-up over epochs 0..W (reaching max_lr at epoch W), cosine over the remaining epochs.
    ``"code"`` (GradualWarmupScheduler + CosineAnnealingLR(T_max = epochs - W)): the peak is held one extra epoch,
    so epoch e > W uses the cosine value of e - 1.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    start = max_lr / warmup_factor
    if epoch <= warmup_epochs and warmup_epochs > 0:
        return start + (max_lr - start) * epoch / warmup_epochs
    decay_epochs = max(epochs - warmup_epochs, 1)
    step = epoch - warmup_epochs - (1 if schedule == "code" else 0)
    return max_lr * (1 + math.cos(math.pi * max(step, 0) / decay_epochs)) / 2
