"""Clinical rows to the ModalTune text prompts (reference: modaltune-method.md section 9).

One patient gives four prompts, one per task, built from fragments in a fixed order:

* general:  location, diagnosis, overall stage, T, N, M, survival
* subtype:  location, diagnosis
* stage:    location, overall stage, T, N, M
* survival: location, overall stage, T, N, M, survival

A fragment is left out when its field is missing, and the fragments present are joined with "; ", so a prompt
never holds double spaces or a dangling separator (upstream left runs of spaces there). The paper's templates end
every fragment but the survival sentence with ";"; read as a separator, that makes every prompt end like the
general one, without ";" ("Cancer location: breast; Cancer diagnosis: infiltrating duct carcinoma"). Stage strings are
collapsed to their main category ("Stage IIIA" -> "Stage III", "T2a" -> "T2", "N0 (i+)" -> "N0", "cM0 (i+)" ->
"M0", "Tis" -> "T0") and turned into words; a value outside the phrase tables (e.g. "Stage 0", "Ta") is not a
crash: its fragment is left out and the value is reported in :attr:`PromptSet.unknown`.

The survival fragment names one of four duration bins whose edges are the quartiles of the TRAINING patients'
survival times (upstream computed them over all patients, test included: a leak the project does not repeat),
so prompts are built once per split seed.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# Row order of the cached text targets (upstream rows 0 General, 1 Diagnosis, 2 Stage, 3 Survival).
TASKS = ("general", "subtype", "stage", "survival")

TASK_FRAGMENTS = {
    "general": ("location", "diagnosis", "stage", "t_stage", "n_stage", "m_stage", "survival"),
    "subtype": ("location", "diagnosis"),
    "stage": ("location", "stage", "t_stage", "n_stage", "m_stage"),
    "survival": ("location", "stage", "t_stage", "n_stage", "m_stage", "survival"),
}

# Cancer-site words of the prompts' location fragment; a config may add sites (text.site_words).
SITE_WORDS = {
    "BRCA": "breast",
    "BLCA": "bladder urothelial",
    "COADREAD": "colorectal",
    "GBMLGG": "brain",
    "NSCLC": "lung",
    "RCC": "kidney",
    "STAD": "stomach",
    "UCEC": "uterus",
}

# The diagnosis text of the prompts is upstream's (``make_dataset.py`` ``cancer_specific_filter``): the GDC
# primary diagnosis, lower case, ", NOS" removed, with these renames (upstream's change_dict) and then a site prefix.
# It is deliberately not the cohort's subtype group name, which may be worded differently ("invasive ductal
# carcinoma" vs the prompts' "infiltrating duct carcinoma"); rare-set patients keep their own diagnosis text.
DIAGNOSIS_RENAMES = {
    "NSCLC": {
        "adenocarcinoma with mixed subtypes": "adenocarcinoma",
        "squamous cell carcinoma, keratinizing": "squamous cell carcinoma",
        "squamous cell carcinoma, large cell, nonkeratinizing": "squamous cell carcinoma",
        "bronchiolo-alveolar carcinoma, non-mucinous": "bronchiolo-alveolar carcinoma",
        "bronchio-alveolar carcinoma, mucinous": "bronchiolo-alveolar carcinoma",
        "bronchio-alveolar carcinoma": "bronchiolo-alveolar carcinoma",
    },
    "COADREAD": {"adenocarcinoma with mixed subtypes": "adenocarcinoma"},
    "RCC": {
        "papillary adenocarcinoma": "papillary renal cell carcinoma",
        "clear cell adenocarcinoma": "renal clear cell carcinoma",
        "renal cell carcinoma": "renal clear cell carcinoma",
        "renal cell carcinoma, chromophobe type": "chromophobe renal cell carcinoma",
    },
    "BLCA": {"papillary adenocarcinoma": "papillary transitional cell carcinoma"},
    "UCEC": {
        "endometrioid adenocarcinoma, secretory variant": "endometrioid adenocarcinoma",
        "papillary serous cystadenocarcinoma": "serous cystadenocarcinoma",
        "adenocarcinoma": "endometrioid adenocarcinoma",
        "serous surface papillary carcinoma": "serous cystadenocarcinoma",
    },
}

# Prefix of the diagnosis text per site, and per TCGA project where the projects of a site differ
# ("*" = every project): upstream writes "lung squamous cell carcinoma", "colon adenocarcinoma".
DIAGNOSIS_PREFIX = {
    "NSCLC": {"*": "lung "},
    "COADREAD": {"COAD": "colon ", "READ": "rectal "},
}

STAGE_PHRASES = {
    "stage": {
        "Stage I": "stage one",
        "Stage II": "stage two",
        "Stage III": "stage three",
        "Stage IV": "stage four",
        "Stage X": "stage cannot be determined",
    },
    "t_stage": {
        "T0": "no tumor detected",
        "T1": "tumor stage one",
        "T2": "tumor stage two",
        "T3": "tumor stage three",
        "T4": "tumor stage four",
        "TX": "tumor stage cannot be assessed",
    },
    "n_stage": {
        "N0": "cancer has not spread to lymph nodes",
        "N1": "node stage one",
        "N2": "node stage two",
        "N3": "node stage three",
        "NX": "node spread cannot be assessed",
    },
    "m_stage": {
        "M0": "no metastasis detected",
        "M1": "cancer has spread to distant organs",
        "MX": "metastasis status cannot be assessed",
    },
}

FRAGMENT_TEMPLATES = {
    "location": "Cancer location: {}",
    "diagnosis": "Cancer diagnosis: {}",
    "stage": "Overall stage: {}",
    "t_stage": "Tumor stage status: {}",
    "n_stage": "Lymph node status: {}",
    "m_stage": "Distant metastasis status: {}",
    "survival": "Survival status: The patient {} {}",
}
FRAGMENT_SEPARATOR = "; "

EVENT_WORDS = {0: "was censored", 1: "died"}

# Main category of each staging string. Sub-categories (a-d, a digit after them), the micro-metastasis marks
# "mi"/"mic", the ITC/molecular marks "(i+)", "(i-)", "(mol+)", "(mol-)" and the c/p/y prefixes are dropped, as
# upstream's character deletions do for every value its tables accept; lower-case GDC 2019 strings ("stage iiia")
# are accepted too, which upstream's deletions would have mangled.
_SUFFIX = r"(?:[a-d]\d?)?(?:mic?)?(?:\s*\((?:i|mol)[+-]\))?"
_IN_SITU = r"(?:\s*\((?:dcis|lcis|paget's)\))?"  # BRCA "Tis (DCIS)": upstream's deletions left "T0 (IS)" there
_STAGE_PATTERNS = {
    "stage": re.compile(r"^stage\s+(iv|i{1,3}|x)[a-d]?\d?$", re.IGNORECASE),
    "t_stage": re.compile(rf"^[cpy]{{0,2}}t(is|[0-4]|x){_SUFFIX}{_IN_SITU}$", re.IGNORECASE),
    "n_stage": re.compile(rf"^[cpy]{{0,2}}n([0-3]|x){_SUFFIX}$", re.IGNORECASE),
    "m_stage": re.compile(rf"^[cpy]{{0,2}}m([01]|x){_SUFFIX}$", re.IGNORECASE),
}
_STAGE_PREFIX = {"stage": "Stage ", "t_stage": "T", "n_stage": "N", "m_stage": "M"}


class UnknownStageError(ValueError):
    """A staging string outside the phrase tables (the field, the raw value)."""

    def __init__(self, field_name: str, value: str):
        super().__init__(f"{field_name} value {value!r} is not in the phrase table {sorted(STAGE_PHRASES[field_name])}")
        self.field_name = field_name
        self.value = value


def is_missing(value: object) -> bool:
    """None, NaN/NA or an empty string: the field is absent and its fragment is left out."""
    return value is None or (pd.api.types.is_scalar(value) and (pd.isna(value) or value == ""))


def stage_category(field_name: str, value: str) -> str:
    """The main category of a staging string, e.g. ("t_stage", "T2a") -> "T2"; raises UnknownStageError."""
    match = _STAGE_PATTERNS[field_name].match(str(value).strip())
    if match is None:
        raise UnknownStageError(field_name, value)
    main = match.group(1).upper()
    if field_name == "t_stage" and main == "IS":  # carcinoma in situ is reported as "no tumor detected"
        main = "0"
    return _STAGE_PREFIX[field_name] + main


def stage_phrase(field_name: str, value: str) -> str:
    """The words for a staging string, e.g. ("n_stage", "N1a") -> "node stage one"."""
    return STAGE_PHRASES[field_name][stage_category(field_name, value)]


def site_word(site: str, extra: Mapping[str, str] | None = None) -> str:
    words = {**SITE_WORDS, **(extra or {})}
    if site not in words:
        raise KeyError(
            f"no cancer-site word for site {site!r}: add it to the config as text.site_words.{site} "
            f"(known: {', '.join(sorted(words))})"
        )
    return words[site]


def diagnosis_text(site: str, project: str | None, diagnosis: str | None) -> str | None:
    """The diagnosis as the prompts write it, e.g. ("NSCLC", "LUSC", "Squamous cell carcinoma, keratinizing, NOS")
    -> "lung squamous cell carcinoma"."""
    if is_missing(diagnosis):
        return None
    text = re.sub(r",\s*nos\b", "", str(diagnosis).strip().lower())
    text = DIAGNOSIS_RENAMES.get(site, {}).get(text, text)
    prefixes = DIAGNOSIS_PREFIX.get(site, {})
    code = "" if is_missing(project) else str(project).removeprefix("TCGA-")
    prefix = prefixes.get(code, prefixes.get("*", ""))
    if prefix and not text.startswith(prefix):  # Xena/cBioPortal diagnoses may already name the organ
        text = prefix + text
    return text


@dataclass
class DurationBins:
    """Quantile bins of survival time (months) fitted on training patients, with their prompt phrases.

    Edges follow upstream: ``pd.qcut`` edges with the outer ones moved to min - 1e-6 and max + 1e-6; a time's bin
    is the number of edges below or at it minus one (``torch.bucketize(right=True)`` on the edges but the last).
    Times outside the training range (possible for validation and test patients, never upstream, where the edges
    saw every patient) fall into the first or last bin. Phrases use the edges rounded to whole months.
    """

    n_bins: int = 4
    edges: np.ndarray | None = field(default=None, repr=False)

    def fit(self, times: Iterable[float]) -> DurationBins:
        times = np.asarray(list(times), dtype=np.float64)
        times = times[~np.isnan(times)]
        if len(times) < self.n_bins:
            raise ValueError(f"need at least {self.n_bins} training survival times for {self.n_bins} bins, got {len(times)}")
        edges = np.quantile(times, np.linspace(0.0, 1.0, self.n_bins + 1))
        if np.any(np.diff(edges) <= 0):
            raise ValueError(
                f"survival times of the training patients have too many ties for {self.n_bins} quantile bins "
                f"(edges {np.round(edges, 3).tolist()}); lower text.duration_bins"
            )
        edges[0] = times.min() - 1e-6
        edges[-1] = times.max() + 1e-6
        self.edges = edges
        return self

    def _check_fitted(self) -> np.ndarray:
        if self.edges is None:
            raise RuntimeError("DurationBins is not fitted: call fit(training_times) first")
        return self.edges

    def transform(self, times: Iterable[float]) -> np.ndarray:
        """Bin index per time (int64); NaN times give -1."""
        edges = self._check_fitted()
        times = np.asarray(list(times), dtype=np.float64)
        labels = np.searchsorted(edges[:-1], times, side="right") - 1
        labels = np.clip(labels, 0, self.n_bins - 1)
        labels[np.isnan(times)] = -1
        return labels.astype(np.int64)

    @property
    def phrases(self) -> list[str]:
        rounded = np.round(self._check_fitted()).astype(int)
        return [f"before {rounded[1]} months"] + [
            f"between {rounded[i]} and {rounded[i + 1]} months" for i in range(1, self.n_bins)
        ]

    def to_dict(self) -> dict:
        return {"n_bins": self.n_bins, "edges": self._check_fitted().tolist()}

    @classmethod
    def from_dict(cls, state: Mapping) -> DurationBins:
        return cls(n_bins=int(state["n_bins"]), edges=np.asarray(state["edges"], dtype=np.float64))


@dataclass
class UnknownStage:
    patient: str
    field: str
    value: str


@dataclass
class PromptSet:
    """Prompts of one site and split seed: ``prompts`` has columns patient, task, prompt (TASKS order per patient)."""

    prompts: pd.DataFrame
    bins: DurationBins
    unknown: list[UnknownStage]

    def metadata(self, site: str, seed: int) -> dict:
        return {
            "site": site,
            "seed": int(seed),
            "duration_bins": self.bins.to_dict(),
            "bin_phrases": self.bins.phrases,
            "unknown_stage_values": [vars(u) for u in self.unknown],
        }


def patient_fragments(
    row: Mapping, site: str, location: str, bins: DurationBins, unknown: list[UnknownStage]
) -> dict[str, str]:
    """The fragments of one cohort row that are present, keyed by fragment name."""
    fragments = {"location": FRAGMENT_TEMPLATES["location"].format(location)}
    diagnosis = diagnosis_text(site, row.get("project"), row.get("diagnosis"))
    if diagnosis is not None:
        fragments["diagnosis"] = FRAGMENT_TEMPLATES["diagnosis"].format(diagnosis)
    for name in STAGE_PHRASES:
        value = row.get(name)
        if is_missing(value):
            continue
        try:
            fragments[name] = FRAGMENT_TEMPLATES[name].format(stage_phrase(name, value))
        except UnknownStageError:
            unknown.append(UnknownStage(str(row["patient"]), name, str(value)))
    time, event = row.get("time_months"), row.get("event")
    if not is_missing(time) and not is_missing(event):
        label = int(bins.transform([time])[0])
        fragments["survival"] = FRAGMENT_TEMPLATES["survival"].format(EVENT_WORDS[int(event)], bins.phrases[label])
    return fragments


def build_prompts(cohort: pd.DataFrame, site: str, bins: DurationBins, site_words: Mapping[str, str] | None = None) -> PromptSet:
    """Prompts for every patient of ``cohort`` (the cohort table's columns) with already fitted ``bins``."""
    location = site_word(site, site_words)
    rows, unknown = [], []
    for row in cohort.to_dict(orient="records"):
        fragments = patient_fragments(row, site, location, bins, unknown)
        for task in TASKS:
            text = FRAGMENT_SEPARATOR.join(fragments[name] for name in TASK_FRAGMENTS[task] if name in fragments)
            rows.append((row["patient"], task, text))
    if unknown:
        counts = Counter((u.field, u.value) for u in unknown)
        listed = ", ".join(f"{f}={v!r} x{n}" for (f, v), n in sorted(counts.items()))
        log.warning("%s: %d staging values outside the phrase tables were left out of the prompts: %s", site, len(unknown), listed)
    prompts = pd.DataFrame(rows, columns=["patient", "task", "prompt"])
    return PromptSet(prompts=prompts, bins=bins, unknown=unknown)


def prompts_for_seed(
    cohort: pd.DataFrame,
    splits: pd.DataFrame,
    site: str,
    seed: int,
    n_bins: int = 4,
    site_words: Mapping[str, str] | None = None,
) -> PromptSet:
    """Fit the duration bins on the training patients of split ``seed`` and build every patient's prompts."""
    seed_splits = splits[splits["seed"] == seed]
    if seed_splits.empty:
        raise ValueError(f"{site}: the splits table has no rows for seed {seed} (seeds: {sorted(splits['seed'].unique())})")
    train_patients = set(seed_splits.loc[seed_splits["split"] == "train", "patient"])
    train_times = cohort.loc[cohort["patient"].isin(train_patients), "time_months"]
    bins = DurationBins(n_bins=n_bins).fit(train_times)
    log.info("%s seed %d: duration bins from %d training patients: %s", site, seed, len(train_times), bins.phrases)
    return build_prompts(cohort, site, bins, site_words)
