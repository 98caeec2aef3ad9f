"""Per-gene z-scoring with statistics fitted on the training split only (upstream fitted on every patient)."""

from __future__ import annotations

import numpy as np
import pandas as pd


class GeneScaler:
    """z = (x - mean) / std per gene column, mean and std from :meth:`fit` (the training patients).

    A gene constant in the training split gets std 1 (its z-scores are then 0 on train). A missing value is
    imputed with the training mean, i.e. z = 0, so that a patient missing a gene still gets a finite input.
    """

    def __init__(self) -> None:
        self.mean_: pd.Series | None = None
        self.std_: pd.Series | None = None

    def fit(self, genes: pd.DataFrame) -> GeneScaler:
        if genes.empty:
            raise ValueError("GeneScaler.fit: no training rows (the training split has no patient with RNA)")
        values = genes.astype("float64")
        self.mean_ = values.mean(skipna=True).fillna(0.0)
        std = values.std(ddof=0, skipna=True)
        self.std_ = std.where(std > 0, 1.0).fillna(1.0)
        return self

    def transform(self, genes: pd.DataFrame) -> pd.DataFrame:
        if self.mean_ is None:
            raise RuntimeError("GeneScaler.transform called before fit")
        missing = self.mean_.index.difference(genes.columns)
        if len(missing):
            raise ValueError(
                f"GeneScaler.transform: {len(missing)} fitted genes absent, e.g. {list(missing[:5])}"
            )
        z = (genes[self.mean_.index].astype("float64") - self.mean_) / self.std_
        return z.fillna(0.0).astype(np.float32)

    def fit_transform(self, genes: pd.DataFrame) -> pd.DataFrame:
        return self.fit(genes).transform(genes)

    def state_dict(self) -> dict[str, list]:
        """Plain lists (JSON-serialisable), so a trained model can store the statistics it was fitted with."""
        return {"genes": list(self.mean_.index), "mean": self.mean_.tolist(), "std": self.std_.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict[str, list]) -> GeneScaler:
        scaler = cls()
        scaler.mean_ = pd.Series(state["mean"], index=state["genes"], dtype="float64")
        scaler.std_ = pd.Series(state["std"], index=state["genes"], dtype="float64")
        return scaler
