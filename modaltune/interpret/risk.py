"""The risk score the results table reports, as one differentiable function of a patient's scaled genes.

Chain: scaled genes (B, G) -> ModalTune General-task embedding (the patient's tiles fixed) -> the survival probe's
linear predictor. The probe is lifelines' Cox model fitted on the training patients' General embeddings
(:class:`modaltune.evaluation.probes.SurvivalProbe`, refitted here exactly as ``modaltune evaluate`` fits it);
lifelines centres the covariates on their training mean and reports coefficients on the original scale, so its log
partial hazard is (z - mean) . beta and the reported risk (partial hazard) is its exponential. Attributions are of
the log partial hazard: the same ranking of patients as the risk, and linear in the embedding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from modaltune.evaluation.probes import SurvivalProbe, patient_table

AGREEMENT = 1e-3  # |log risk| difference allowed between a recomputation and the probe file / lifelines


class CoxHead(nn.Module):
    """(B, D) embeddings -> (B,) log partial hazard of a fitted lifelines Cox model."""

    def __init__(self, mean: np.ndarray, beta: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("beta", torch.as_tensor(beta, dtype=torch.float32))

    @classmethod
    def from_probe(cls, probe: SurvivalProbe, check_x: np.ndarray) -> CoxHead:
        """Copy the fitted model's centring and coefficients; checked against lifelines on ``check_x``."""
        fitted = probe.model
        head = cls(fitted._norm_mean.to_numpy(), fitted.params_.to_numpy())
        expected = np.log(probe.predict_risk(check_x))
        with torch.no_grad():
            got = head(torch.as_tensor(check_x, dtype=torch.float32)).double().numpy()
        if not np.allclose(got, expected, atol=AGREEMENT * max(1.0, np.abs(expected).max())):
            raise RuntimeError("the Cox head does not reproduce lifelines' log partial hazard; lifelines changed how "
                               "it stores the fitted model (check CoxPHFitter._norm_mean and params_)")
        return head

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return (embeddings - self.mean) @ self.beta


def fit_cox_head(embeddings_path, cohort_path, splits_path, seed: int) -> CoxHead:
    """The survival probe of ``modaltune evaluate`` (General task, training patients with a survival label)."""
    table = patient_table(embeddings_path, cohort_path, splits_path, seed=seed, task="general")
    train = table[table["split"] == "train"].dropna(subset=["time_months", "event"])
    if train.empty:
        raise ValueError(f"{splits_path}: no training patient with survival labels for seed {seed}")
    x = np.stack([np.asarray(e, dtype=np.float64) for e in train["embedding"]])
    probe = SurvivalProbe().fit(x, train["time_months"].to_numpy(), train["event"].to_numpy())
    return CoxHead.from_probe(probe, x)


class PatientRisk(nn.Module):
    """genes (B, G) scaled -> (B,) log partial hazard for one patient's bag (embedded once, kept fixed)."""

    def __init__(self, model, features: torch.Tensor, coords: torch.Tensor, head: CoxHead, task: str = "general"):
        super().__init__()
        self.model, self.head, self.task = model, head, task
        with torch.no_grad():
            self.tokens = model.encoder.embed(features.unsqueeze(0), coords.unsqueeze(0))

    def forward(self, genes: torch.Tensor) -> torch.Tensor:
        return self.head(self.model.forward_genes(self.tokens, genes, self.task))


def probe_risks(probes: dict) -> pd.Series:
    """Test patients' reported risk (partial hazard) from a probe JSON, indexed by patient."""
    predictions = pd.DataFrame(probes["predictions"])
    return predictions.set_index("patient")["risk"].astype(float)
