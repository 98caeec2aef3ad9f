"""Discrete-time survival for the baselines, as MCAT and SurvPath train them (reference baselines.md section 11).

Bins: quantile edges of the survival times of the **uncensored training** patients, the outer edges moved to the
minimum - 1e-6 and maximum + 1e-6 over all training patients, left-closed intervals (upstream's qcut/cut, but fitted
on the training split only, as the project fits every statistic). Times outside the training range fall into the
first or last bin. The model's K logits give hazards h_k = sigmoid(f_k) and survival S_k = prod_{j<=k}(1 - h_j); the
risk is -sum_k S_k.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-7


def survival_bins(times: np.ndarray, events: np.ndarray, n_bins: int = 4) -> np.ndarray:
    """Bin edges (n_bins + 1) from the training patients' times and events (1 = death observed)."""
    times, events = np.asarray(times, np.float64), np.asarray(events)
    uncensored = times[events == 1]
    if len(uncensored) < 2:
        raise ValueError(f"{len(uncensored)} event(s) among {len(times)} training patients; survival bins need 2")
    edges = np.quantile(uncensored, np.linspace(0, 1, n_bins + 1))
    edges[0], edges[-1] = times.min() - 1e-6, times.max() + 1e-6
    return edges


def assign_bins(times: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each time: edges[k] <= t < edges[k + 1], clipped to the first and last bin."""
    return np.clip(np.searchsorted(edges, np.asarray(times, np.float64), side="right") - 1, 0, len(edges) - 2)


def nll_survival_loss(logits: torch.Tensor, bins: torch.Tensor, censored: torch.Tensor,
                      alpha: float = 0.0) -> torch.Tensor:
    """Discrete-time NLL (Zadeh & Schmid 2020), mean over the batch.

    logits (B, K), bins (B,) integer bin y, censored (B,) c = 1 when the death was not observed:
    L = (1 - alpha)(L_unc + L_cen) + alpha L_unc, L_unc = -(1 - c)[log S_{y-1} + log h_y], L_cen = -c log S_y,
    with S_{-1} = 1 and probabilities clamped at 1e-7, as upstream.
    """
    hazards = torch.sigmoid(logits)
    survival = torch.cumprod(1 - hazards, dim=1)
    padded = torch.cat([torch.ones_like(survival[:, :1]), survival], dim=1)  # padded[:, k] = S_{k-1}
    bins, censored = bins.long().view(-1, 1), censored.to(logits.dtype).view(-1, 1)
    uncensored_loss = -(1 - censored) * (torch.log(padded.gather(1, bins).clamp(min=EPS))
                                         + torch.log(hazards.gather(1, bins).clamp(min=EPS)))
    censored_loss = -censored * torch.log(padded.gather(1, bins + 1).clamp(min=EPS))
    loss = (1 - alpha) * (uncensored_loss + censored_loss) + alpha * uncensored_loss
    return loss.mean()


def risk_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """-sum_k S_k per row: higher means earlier death."""
    return -torch.cumprod(1 - torch.sigmoid(logits), dim=-1).sum(dim=-1)
