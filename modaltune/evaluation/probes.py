"""The paper's linear probes (reference: modaltune-method.md section 12).

Both probes are fitted on the training split only and scored on the test split:

* subtype: logistic regression (liblinear, max_iter 200, C 1, L2, one-vs-rest, no scaling) on the raw
  general-task embedding, rare-set patients (class -1) excluded, reported as balanced accuracy;
* survival: lifelines' Cox model (penalizer 0.1, pure L2), reported as Harrell's C-index of the risk score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SUBTYPE_METRIC = "balanced_accuracy"
SURVIVAL_METRIC = "c_index"


@dataclass
class SubtypeProbe:
    max_iter: int = 200
    seed: int = 0
    model: object = field(default=None, init=False, repr=False)

    def fit(self, x: np.ndarray, classes: np.ndarray) -> SubtypeProbe:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        if len(np.unique(classes)) < 2:
            raise ValueError(f"subtype probe needs at least 2 classes in the training split, got {np.unique(classes)}")
        # liblinear is binary only in current scikit-learn; one-vs-rest is what the paper's (older) sklearn did
        # for the 3 RCC classes, and for 2 classes the wrapper fits the same single model.
        self.model = OneVsRestClassifier(
            LogisticRegression(solver="liblinear", max_iter=self.max_iter, random_state=self.seed)
        )
        self.model.fit(x, classes)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def score(self, x: np.ndarray, classes: np.ndarray) -> float:
        from sklearn.metrics import balanced_accuracy_score

        return float(balanced_accuracy_score(classes, self.predict(x)))


@dataclass
class SurvivalProbe:
    """Cox model on the embedding's columns that vary over the training patients: a constant column (a ReLU unit
    dead for every patient, as a supervised baseline's fused vector has) carries no information and makes lifelines'
    standardisation divide by zero."""

    penalizer: float = 0.1
    model: object = field(default=None, init=False, repr=False)
    columns: np.ndarray | None = field(default=None, init=False, repr=False)

    def fit(self, x: np.ndarray, time: np.ndarray, event: np.ndarray) -> SurvivalProbe:
        from lifelines import CoxPHFitter

        x = np.asarray(x, dtype=np.float64)
        self.columns = np.flatnonzero(x.std(axis=0) > 0)
        if not len(self.columns):
            raise ValueError("survival probe: every embedding column is constant over the training patients")
        self.model = CoxPHFitter(penalizer=self.penalizer, l1_ratio=0.0)
        self.model.fit(_survival_frame(x[:, self.columns], time, event), duration_col="time", event_col="event")
        return self

    def predict_risk(self, x: np.ndarray) -> np.ndarray:
        """Partial hazard: higher means earlier death."""
        covariates = _covariates(np.asarray(x, dtype=np.float64)[:, self.columns])
        return np.asarray(self.model.predict_partial_hazard(covariates)).ravel()

    def score(self, x: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
        from lifelines.utils import concordance_index

        return float(concordance_index(time, -self.predict_risk(x), event))


def _covariates(x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(x, dtype=np.float64), columns=[f"z{i}" for i in range(x.shape[1])])


def _survival_frame(x: np.ndarray, time: np.ndarray, event: np.ndarray) -> pd.DataFrame:
    frame = _covariates(x)
    frame["time"] = np.asarray(time, dtype=np.float64)
    frame["event"] = np.asarray(event, dtype=np.int64)
    return frame


def patient_table(embeddings_path, cohort_path, splits_path, seed: int, task: str = "general") -> pd.DataFrame:
    """Join one task's embeddings with the site's labels and the split of ``seed`` (one row per patient).

    The split comes from the site's split file, not from the embedding file, so a model trained elsewhere
    (pan-cancer, out-of-distribution) is probed on this site's own train/test patients.
    """
    embeddings = pd.read_parquet(embeddings_path)
    embeddings = embeddings[embeddings["task"] == task][["patient", "embedding"]]
    if embeddings.empty:
        raise ValueError(f"{embeddings_path}: no embeddings for task '{task}'")
    cohort = pd.read_parquet(cohort_path)[["patient", "subtype", "subtype_class", "time_months", "event"]]
    splits = pd.read_parquet(splits_path)
    splits = splits[splits["seed"] == seed][["patient", "split"]]
    if splits.empty:
        raise ValueError(f"{splits_path}: no split for seed {seed}; add it to cohort.seeds in the config")
    table = cohort.merge(splits, on="patient").merge(embeddings, on="patient")
    if table.empty:
        raise ValueError(f"{embeddings_path} shares no patient with {cohort_path}")
    return table


def evaluate_embeddings(patients: pd.DataFrame, task: str = "general") -> dict:
    """Fit both probes on the training rows of ``patients`` and score them on the test rows.

    ``patients`` has one row per patient with columns patient, split, subtype_class, time_months, event and
    ``embedding`` (the raw output of ``task``). Returns the metrics and the per-patient test predictions.
    """
    missing = {"patient", "split", "subtype_class", "time_months", "event", "embedding"} - set(patients.columns)
    if missing:
        raise ValueError(f"embedding table lacks columns {sorted(missing)}")
    train = patients[patients["split"] == "train"]
    test = patients[patients["split"] == "test"]
    if train.empty or test.empty:
        raise ValueError(f"need train and test patients, got {len(train)} train and {len(test)} test")

    labelled_train = train[train["subtype_class"] >= 0]
    labelled_test = test[test["subtype_class"] >= 0]
    subtype = SubtypeProbe().fit(_stack(labelled_train), labelled_train["subtype_class"].to_numpy())

    survival_train = train.dropna(subset=["time_months", "event"])
    survival_test = test.dropna(subset=["time_months", "event"])
    survival = SurvivalProbe().fit(
        _stack(survival_train), survival_train["time_months"].to_numpy(), survival_train["event"].to_numpy()
    )

    predictions = test[["patient", "subtype_class", "time_months", "event"]].copy()
    predictions["subtype_pred"] = subtype.predict(_stack(test))
    predictions["risk"] = survival.predict_risk(_stack(test))
    train_risk = survival.predict_risk(_stack(survival_train))
    return {
        "task": task,
        "subtype": {
            SUBTYPE_METRIC: subtype.score(_stack(labelled_test), labelled_test["subtype_class"].to_numpy()),
            "n_train": int(len(labelled_train)),
            "n_test": int(len(labelled_test)),
        },
        "survival": {
            SURVIVAL_METRIC: survival.score(
                _stack(survival_test), survival_test["time_months"].to_numpy(), survival_test["event"].to_numpy()
            ),
            "n_train": int(len(survival_train)),
            "n_test": int(len(survival_test)),
            "train_median_risk": float(np.median(train_risk)),
        },
        "predictions": predictions.to_dict(orient="records"),
    }


def _stack(rows: pd.DataFrame) -> np.ndarray:
    return np.stack([np.asarray(e, dtype=np.float64) for e in rows["embedding"]])


def summarise_seeds(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (std 0 for a single seed), as the paper reports."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0
