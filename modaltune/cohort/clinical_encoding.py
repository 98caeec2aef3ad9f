"""The per-patient clinical vector of the clinical modality (paper Table 10, ModalTune w/ Clinical).

Each field of the cohort table becomes two numbers:

* its value, z-scored with the mean and standard deviation of the **training patients** (a field with a single value
  among them keeps std 1, so it stays centred); a missing value becomes 0, the training mean, a neutral value;
* a missing indicator (1 where the value is missing).

Values per field (:data:`FIELD_KINDS`):

* ``age``: years;
* ``stage``: ordinal main stage, Stage 0 = 0, I = 1 ... IV = 4 (sub-stages A/B/C count as their main stage,
  "Stage X" is missing); ``t_stage``: T0 and Tis = 0, T1 ... T4 = 1 ... 4; ``n_stage``: N0 ... N3 = 0 ... 3;
  ``m_stage``: M0 = 0, M1 (a/b/c) = 1 (letters and prefixes c/p/y dropped; TX, NX, MX are missing);
* ``radiation_therapy``, ``pharmaceutical_therapy``: yes = 1, no = 0; ``er_status``, ``pr_status``, ``her2_status``:
  positive = 1, negative = 0 (modaltune.cohort.readers gives these words).

A field without any value among the training patients (e.g. receptor status outside BRCA) is left out of the vector
and listed in :attr:`ClinicalEncoder.left_out`. The fitted state is plain JSON (:meth:`ClinicalEncoder.state_dict`),
stored in the trained model's config.json, so embedding applies exactly the training statistics.

Upstream's clinical variant encodes [age / max age, label-encoded stage, T, N, M] with statistics of all patients and
no missing indicators; here every statistic is fitted on the training split and missing values are explicit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ROMAN_STAGES = {"0": 0.0, "I": 1.0, "II": 2.0, "III": 3.0, "IV": 4.0}
_STAGE = re.compile(r"^stage\s+(IV|III|II|I|0)(?:[A-C]\d?)?$", re.IGNORECASE)
_TNM = re.compile(r"^[cpy]*([TNM])(is|\d)", re.IGNORECASE)
BINARY_WORDS = {"yes": 1.0, "no": 0.0, "positive": 1.0, "negative": 0.0}


def stage_value(text: Any) -> float:
    """'Stage IIIA' -> 3.0; 'Stage X', missing or unparseable -> NaN."""
    match = _STAGE.match(str(text).strip()) if isinstance(text, str) else None
    return ROMAN_STAGES[match.group(1).upper()] if match else np.nan


def tnm_value(text: Any, letter: str) -> float:
    """'T2a' -> 2.0 (letter 'T'), 'Tis' -> 0.0, 'M1b' -> 1.0, 'NX' or another letter's code -> NaN."""
    match = _TNM.match(str(text).strip()) if isinstance(text, str) else None
    if match is None or match.group(1).upper() != letter:
        return np.nan
    return 0.0 if match.group(2).lower() == "is" else float(match.group(2))


def binary_value(text: Any) -> float:
    return BINARY_WORDS.get(str(text).strip().lower(), np.nan) if isinstance(text, str) else np.nan


FIELD_KINDS = {
    "age": lambda column: pd.to_numeric(column, errors="coerce").astype(float),
    "stage": lambda column: column.map(stage_value).astype(float),
    "t_stage": lambda column: column.map(lambda v: tnm_value(v, "T")).astype(float),
    "n_stage": lambda column: column.map(lambda v: tnm_value(v, "N")).astype(float),
    "m_stage": lambda column: column.map(lambda v: tnm_value(v, "M")).astype(float),
    **{name: (lambda column: column.map(binary_value).astype(float))
       for name in ("radiation_therapy", "pharmaceutical_therapy", "er_status", "pr_status", "her2_status")},
}
FIELDS = tuple(FIELD_KINDS)


def field_values(table: pd.DataFrame, fields: Sequence[str]) -> pd.DataFrame:
    """The numeric value of each field (NaN = missing), rows as in ``table``."""
    unknown = [f for f in fields if f not in FIELD_KINDS]
    if unknown:
        raise ValueError(f"unknown clinical field(s) {unknown}; known: {list(FIELDS)}")
    absent = [f for f in fields if f not in table]
    if absent:
        raise ValueError(f"the cohort table has no column(s) {absent}; rebuild results/cohort with this version")
    return pd.DataFrame({f: FIELD_KINDS[f](table[f]) for f in fields}, index=table.index)


class ClinicalEncoder:
    """Fit on the training patients' cohort rows, then turn any patients' rows into the clinical vector."""

    def __init__(self, fields: Sequence[str]):
        self.fields = list(fields)
        self.kept: list[str] = []
        self.left_out: list[str] = []
        self.mean_: dict[str, float] = {}
        self.std_: dict[str, float] = {}

    def fit(self, train_rows: pd.DataFrame) -> ClinicalEncoder:
        """Statistics of ``train_rows`` (the training patients only); fields without a value there are left out."""
        values = field_values(train_rows, self.fields)
        self.kept = [f for f in self.fields if values[f].notna().any()]
        self.left_out = [f for f in self.fields if f not in self.kept]
        self.mean_ = {f: float(values[f].mean()) for f in self.kept}
        self.std_ = {f: float(values[f].std(ddof=0)) or 1.0 for f in self.kept}
        if self.left_out:
            log.warning("clinical field(s) without any value among the %d training patients, left out: %s",
                        len(train_rows), ", ".join(self.left_out))
        if not self.kept:
            raise ValueError(f"none of the clinical fields {self.fields} has a value among the training patients; "
                             "choose fields the site's clinical table records (model.clinical.fields)")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [name for f in self.kept for name in (f, f"{f}_missing")]

    @property
    def width(self) -> int:
        return 2 * len(self.kept)

    def transform(self, rows: pd.DataFrame) -> pd.DataFrame:
        """(patients, 2 x kept fields) float32: z-scored value (0 where missing) and missing indicator per field."""
        if not self.kept:
            raise ValueError("ClinicalEncoder.transform before fit")
        values = field_values(rows, self.kept)
        columns = {}
        for f in self.kept:
            missing = values[f].isna()
            columns[f] = ((values[f] - self.mean_[f]) / self.std_[f]).where(~missing, 0.0)
            columns[f"{f}_missing"] = missing.astype(float)
        return pd.DataFrame(columns, index=rows.index).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"fields": self.fields, "kept": self.kept, "left_out": self.left_out, "mean": self.mean_,
                "std": self.std_}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> ClinicalEncoder:
        encoder = cls(state["fields"])
        encoder.kept, encoder.left_out = list(state["kept"]), list(state["left_out"])
        encoder.mean_ = {k: float(v) for k, v in state["mean"].items()}
        encoder.std_ = {k: float(v) for k, v in state["std"].items()}
        return encoder
