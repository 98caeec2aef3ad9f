"""The synthetic validation study's report: each method's test numbers beside the generator's known answers.

The synthetic cohort (:mod:`modaltune.synth`) writes per site a truth table with each patient's true log hazard
(``risk``) and the part of it each modality carries (``risk_slides``, ``risk_expression``). On the very test
patients the probes score (the site's split of each seed, patients with survival labels), this module computes

* the oracle C-index: the true risk as the prediction, the best any model can do on these patients;
* the C-index reachable from one modality alone: that modality's part of the true risk as the prediction;

and sets them beside every row of ``results.csv`` (any experiment, including baselines added later), then states
whether the expected ordering holds. The truth is read here only: training and evaluation never see it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from modaltune.evaluation.probes import SURVIVAL_METRIC, summarise_seeds
from modaltune.io import atomic_path

# answer name -> truth column used as the risk prediction
KNOWN_ANSWERS = {
    "Oracle (true risk)": "risk",
    "Slides only (reachable)": "risk_slides",
    "Expression only (reachable)": "risk_expression",
}
SINGLE_MODALITY_ANSWERS = ("Slides only (reachable)", "Expression only (reachable)")
RESULT_COLUMNS = ("experiment", "site", "task", "mean", "std")
# values of results.csv's optional `modality` column (the baselines' registry): rows join the config's lists by it
MULTIMODAL, SINGLE_MODALITIES = "multimodal", ("wsi", "genomics")


def c_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C of a risk score (higher = earlier death), as the survival probe scores it (lifelines)."""
    from lifelines.utils import concordance_index

    return float(concordance_index(time, -np.asarray(risk, dtype=float), event))


def test_patients(cohort_path: str | os.PathLike, splits_path: str | os.PathLike, seed: int) -> pd.DataFrame:
    """The survival test patients of one seed, as the probe takes them: test split, time and event known."""
    cohort = pd.read_parquet(cohort_path)[["patient", "time_months", "event"]]
    splits = pd.read_parquet(splits_path)
    splits = splits[(splits["seed"] == seed) & (splits["split"] == "test")]
    if splits.empty:
        raise ValueError(f"{splits_path}: no test split for seed {seed}; add it to cohort.seeds in the config")
    return cohort.merge(splits[["patient"]], on="patient").dropna(subset=["time_months", "event"])


def known_answers(
    site: str,
    truth_path: str | os.PathLike,
    cohort_path: str | os.PathLike,
    splits_path: str | os.PathLike,
    seeds: Iterable[int],
) -> pd.DataFrame:
    """One row per (seed, answer): site, seed, answer, c_index, n_test."""
    truth = pd.read_csv(truth_path, sep="\t").set_index("patient")
    missing_columns = sorted(set(KNOWN_ANSWERS.values()) - set(truth.columns))
    if missing_columns:
        raise ValueError(f"{truth_path}: no column(s) {missing_columns}; regenerate the synthetic cohort "
                         "with this version of modaltune.synth")
    rows = []
    for seed in seeds:
        patients = test_patients(cohort_path, splits_path, seed)
        unknown = sorted(set(patients["patient"]) - set(truth.index))
        if unknown:
            raise ValueError(f"{truth_path}: test patient {unknown[0]} of {cohort_path} is not in the truth table "
                             f"({len(unknown)} missing); the cohort and the truth come from different demo configs")
        true = truth.loc[patients["patient"]]
        for answer, column in KNOWN_ANSWERS.items():
            value = c_index(patients["time_months"].to_numpy(), patients["event"].to_numpy(), true[column].to_numpy())
            rows.append({"site": site, "seed": int(seed), "answer": answer, "c_index": value, "n_test": len(patients)})
    return pd.DataFrame(rows)


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """The in-domain rows of results.csv (out-of-distribution rows carry a `source`)."""
    results = pd.read_csv(path, keep_default_na=True)
    missing = [column for column in RESULT_COLUMNS if column not in results.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; expected the layout of `modaltune tables`")
    if "source" in results.columns:
        results = results[results["source"].isna() | (results["source"] == "")]
    return results


def _known_cells(known: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each (site, answer), as results.csv summarises the methods."""
    cells = []
    for (site, answer), group in known.groupby(["site", "answer"], sort=False):
        mean, std = summarise_seeds(group["c_index"].tolist())
        cells.append({"site": site, "answer": answer, "mean": mean, "std": std if len(group) > 1 else float("nan"),
                      "n_test": int(group["n_test"].iloc[0])})
    return pd.DataFrame(cells)


def _cell(mean: float, std: float) -> str:
    return f"{mean:.3f}" if pd.isna(std) or std == 0 else f"{mean:.3f} ± {std:.3f}"


def _block(rows: Sequence[tuple[str, Mapping[str, tuple[float, float]]]], sites: Sequence[str]) -> str:
    """A Markdown table: one row per (label, {site: (mean, std)}), a column per site, then the mean over sites."""
    header = ["Method", *sites, "Mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, cells in rows:
        values = [_cell(*cells[site]) if site in cells else "–" for site in sites]
        present = [cells[site][0] for site in sites if site in cells]
        lines.append("| " + " | ".join([label, *values, f"{np.mean(present):.3f}" if present else "–"]) + " |")
    return "\n".join(lines)


def _method_cells(results: pd.DataFrame, task: str, experiment: str) -> dict[str, tuple[float, float]]:
    rows = results[(results["task"] == task) & (results["experiment"] == experiment)]
    return {row.site: (float(row.mean), float(row.std)) for row in rows.itertuples()}


def _compare(upper: dict[str, float], lower: dict[str, float]) -> tuple[bool, str] | None:
    """Whether ``upper`` is above ``lower`` on the mean over their shared sites, with the per-site figures."""
    sites = [site for site in upper if site in lower]
    if not sites:
        return None
    per_site = ", ".join(f"{site} {upper[site]:.3f} vs {lower[site]:.3f}" for site in sites)
    high, low = np.mean([upper[s] for s in sites]), np.mean([lower[s] for s in sites])
    return bool(high > low), f"mean {high:.3f} vs {low:.3f} ({per_site})"


def row_groups(results: pd.DataFrame, settings: Mapping) -> tuple[list[str], list[str]]:
    """(multimodal, single-modality) experiments: the config's lists, plus the rows that results.csv's optional
    `modality` column marks so (baselines), in results.csv order."""
    multimodal, single = list(settings["multimodal"]), list(settings["single_modality"])
    if "modality" in results.columns:
        for experiment, modality in results[["experiment", "modality"]].drop_duplicates().itertuples(index=False):
            group = multimodal if modality == MULTIMODAL else single if modality in SINGLE_MODALITIES else None
            if group is not None and experiment not in multimodal + single:
                group.append(experiment)
    return multimodal, single


def ordering_checks(
    results: pd.DataFrame, known: pd.DataFrame, settings: Mapping, labels: Mapping[str, str]
) -> list[tuple[str, bool | None, str]]:
    """(statement, holds, figures) for each expected ordering of survival C-indices, compared on the mean over the
    sites both rows have; holds is None when a row is not in results.csv (the statement says so instead of being
    dropped). Expected: each multimodal row above the best single modality's reachable C-index and above the best
    single-modality row of results.csv, and each configured pair in order (ModalTune above Gigapath LP)."""
    cells = _known_cells(known)
    best_reachable = cells[cells["answer"].isin(SINGLE_MODALITY_ANSWERS)].groupby("site")["mean"].max().to_dict()
    present = list(dict.fromkeys(results.loc[results["task"] == "survival", "experiment"]))
    multimodal, single = row_groups(results, settings)

    def survival(experiment):
        return {site: mean for site, (mean, _) in _method_cells(results, "survival", experiment).items()}

    def name(experiment):
        return labels.get(experiment, experiment)

    singles = [e for e in single if e in present]
    best_single = max(singles, key=lambda e: np.mean(list(survival(e).values())), default=None)
    checks = []

    def check(statement, upper, lower, experiments):
        absent = [e for e in experiments if e not in present]
        if absent:
            checks.append((statement, None, f"not in results.csv: {', '.join(absent)}"))
            return
        compared = _compare(upper, lower)
        checks.append((statement, None, "no shared site") if compared is None else (statement, *compared))

    for row in multimodal:
        check(f"{name(row)} above the best single modality's reachable C-index", survival(row), best_reachable,
              [row])
        if best_single is None:
            checks.append((f"{name(row)} above the best single-modality method", None,
                           f"no single-modality row in results.csv (looked for {', '.join(single) or 'none'})"))
        else:
            check(f"{name(row)} above the best single-modality method ({name(best_single)})", survival(row),
                  survival(best_single), [row])
    for upper, lower in settings["above"]:
        check(f"{name(upper)} above {name(lower)}", survival(upper), survival(lower), [upper, lower])
    return checks


def validation_markdown(
    results: pd.DataFrame, known: pd.DataFrame, settings: Mapping, labels: Mapping[str, str]
) -> str:
    sites = list(dict.fromkeys(known["site"]))
    cells = _known_cells(known)
    n_test = ", ".join(f"{site} {n}" for site, n in cells.groupby("site", sort=False)["n_test"].first().items())
    survival_rows = [
        (answer, {row.site: (row.mean, row.std) for row in cells[cells["answer"] == answer].itertuples()})
        for answer in KNOWN_ANSWERS
    ]
    survival_rows += [
        (labels.get(experiment, experiment), _method_cells(results, "survival", experiment))
        for experiment in dict.fromkeys(results.loc[results["task"] == "survival", "experiment"])
    ]
    parts = [
        "# Synthetic validation study: methods beside the generator's known answers",
        "",
        f"Survival {SURVIVAL_METRIC} on each site's test patients with survival labels ({n_test}), mean ± std over "
        "the seeds. The first rows are known answers computed from the generator's truth table on the same "
        "patients: the true log hazard as the prediction (oracle), and the part of it that the slides (stage, "
        "subtype) or the expression (subtype, hazard pathways) carry alone, the most a single-modality model "
        "can reach.",
        "",
        _block(survival_rows, sites),
        "",
        "## Expected ordering (survival)",
        "",
    ]
    for statement, holds, figures in ordering_checks(results, known, settings, labels):
        verdict = {True: "holds", False: "does NOT hold", None: "not checked"}[holds]
        parts.append(f"- {statement}: **{verdict}**: {figures}")
    for task in dict.fromkeys(results["task"]):
        if task == "survival":
            continue
        rows = [(labels.get(e, e), _method_cells(results, task, e))
                for e in dict.fromkeys(results.loc[results["task"] == task, "experiment"])]
        parts += ["", f"## {task} (no known answer beyond the planted labels: the true class scores 1.000)", "",
                  _block(rows, sites)]
    return "\n".join(parts) + "\n"


def write_validation_report(
    results_path: str | os.PathLike,
    known: pd.DataFrame,
    settings: Mapping,
    labels: Mapping[str, str],
    out: str | os.PathLike,
) -> list[Path]:
    """Write ``out`` (Markdown) and the per-seed known answers beside it (``out`` with suffix .csv)."""
    out = Path(out)
    with atomic_path(out.with_suffix(".csv")) as tmp:
        known.to_csv(tmp, index=False, float_format="%.6f")
    text = validation_markdown(read_results(results_path), known, settings, labels)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return [out.with_suffix(".csv"), out]
