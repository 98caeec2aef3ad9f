"""Gather probe and baseline-run files into one long table, then pivot it into the paper's layout (rows grouped by
modality, WSI / Genomics / Multi-modal, in the order the files come) and write CSV, Markdown and HTML. As in the
paper, Markdown and HTML show the best value of each site column and of the Mean column in bold (higher is better for
both metrics; equal values as shown, to 3 decimals, are all bold); the CSV keeps the plain numbers.

A skipped baseline run (its training split lacks a class or survival events) has no value: its cell averages the
seeds that ran, shows "skipped" when none did, and its reason is listed under the table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from html import escape
from pathlib import Path

import pandas as pd

from modaltune.baselines.registry import BASELINES, MODALITY_TITLES
from modaltune.evaluation.probes import SUBTYPE_METRIC, SURVIVAL_METRIC, summarise_seeds
from modaltune.io import atomic_path

TASK_METRICS = {"subtype": SUBTYPE_METRIC, "survival": SURVIVAL_METRIC}
TASK_TITLES = {"subtype": "Cancer subtype prediction (balanced accuracy)", "survival": "Survival prediction (C-index)"}
LONG_COLUMNS = ["experiment", "source", "site", "seed", "task", "metric", "value", "modality", "note"]
# Probed experiments are ModalTune models (multi-modal) unless a modality is given (the frozen baseline: wsi).
DEFAULT_MODALITY = "multimodal"


def collect_probes(paths: Iterable[str | os.PathLike], modalities: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per (experiment, source, site, seed, task) with the metric value, read from probe JSON files.

    ``source`` is the site (or "pooled") an out-of-distribution model was trained on, "" for in-domain probes;
    ``modalities`` maps experiment names to a key of MODALITY_TITLES (default multimodal).
    """
    rows = []
    for path in paths:
        probe = json.loads(Path(path).read_text())
        for task, metric in TASK_METRICS.items():
            rows.append(
                {
                    "experiment": probe["experiment"],
                    "source": probe.get("source", ""),
                    "site": probe["site"],
                    "seed": probe["seed"],
                    "task": task,
                    "metric": metric,
                    "value": probe[task][metric],
                    "modality": (modalities or {}).get(probe["experiment"], DEFAULT_MODALITY),
                    "note": "",
                }
            )
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def collect_baselines(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The rows of single-task baseline runs (results/baselines/{model}/{site}/seed{seed}/{task}.json) in the
    registry's (Table 2) order: the test metric, or no value and the reason as ``note`` for a skipped run."""
    rows = []
    for path in paths:
        run = json.loads(Path(path).read_text())
        rows.append({"experiment": run["model"], "source": "", "site": run["site"], "seed": run["seed"],
                     "task": run["task"], "metric": run["metric"],
                     "value": float("nan") if run["value"] is None else run["value"],
                     "modality": run["modality"], "note": run["reason"] or ""})
    order = {name: index for index, name in enumerate(BASELINES)}
    rows.sort(key=lambda row: order.get(row["experiment"], len(order)))
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def in_row_order(long: pd.DataFrame, experiments: Sequence[str]) -> pd.DataFrame:
    """``long`` with the rows of ``experiments`` first, in that order, the others after them as they come (the
    ablation table mixes probes and single-task runs in the config's order)."""
    position = {name: index for index, name in enumerate(experiments)}
    order = long["experiment"].map(lambda name: position.get(name, len(position))).to_numpy()
    return long.iloc[order.argsort(kind="stable")].reset_index(drop=True)


def results_table(long: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over the seeds that ran per cell; the `overall` column averages the per-site means of a row.

    Rows are grouped by modality in MODALITY_TITLES order; within a group a probed frozen encoder comes first, then
    the supervised baselines, then the probed ModalTune experiments, each in the order they first appear in ``long``. ``skipped`` lists the reasons of the seeds without a value. A cell of a
    single run (the frozen-encoder baseline when the split is shared by every seed) has no std (NaN), and the
    formatted tables show its mean alone, as the paper's `Gigapath LP` rows.
    """
    order = {modality: index for index, modality in enumerate(MODALITY_TITLES)}
    # Table 2's order within a modality: a probed frozen encoder (Gigapath LP) first, then the supervised baselines,
    # then the probed ModalTune experiments (the probes of the default modality) last.
    rank = [1 if experiment in BASELINES else 2 if modality == DEFAULT_MODALITY else 0
            for experiment, modality in zip(long["experiment"], long["modality"], strict=True)]
    long = (long.assign(_order=long["modality"].map(order), _rank=rank)
            .sort_values(["_order", "_rank"], kind="stable").drop(columns=["_order", "_rank"]))
    keys = ["task", "modality", "experiment", "source"]
    cells = []
    for (task, modality, experiment, source, site), group in long.groupby([*keys, "site"], sort=False):
        ran = group.dropna(subset=["value"])
        mean, std = summarise_seeds(ran["value"].tolist()) if len(ran) else (float("nan"), float("nan"))
        std = std if len(ran) > 1 else float("nan")
        skipped = group[group["value"].isna()]
        cells.append({"task": task, "modality": modality, "experiment": experiment, "source": source, "site": site,
                      "mean": mean, "std": std, "seeds": len(ran),
                      "skipped": "; ".join(f"seed {seed}: {note}" for seed, note in
                                           zip(skipped["seed"], skipped["note"], strict=True))})
    cells = pd.DataFrame(cells)
    overall = cells.groupby(keys, sort=False)["mean"].mean().rename("overall").reset_index()
    return cells.merge(overall, on=keys)


def row_label(experiment: str, source: str, labels: Mapping[str, str] | None = None) -> str:
    """The table's row name: the experiment's label, plus the training site of an out-of-distribution model."""
    label = (labels or {}).get(experiment, experiment)
    return f"{label} (trained on {source})" if source else label


def _cell(mean: float, std: float, skipped: str) -> str:
    if pd.isna(mean):
        return "skipped"
    value = f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"  # a single run has no std
    return value + ("*" if skipped else "")


def best_mask(values: pd.Series, ranked: pd.Series) -> pd.Series:
    """True where a value is the column's best as shown (3 decimals; higher is better for both metrics; ties all
    best), among the ``ranked`` rows; a missing value is never best."""
    shown = values.round(3).where(ranked)
    return shown.notna() & (shown == shown.max())


MARKUPS = {"markdown": lambda text: f"**{text}**", "html": lambda text: f"<strong>{escape(text)}</strong>"}


NOT_RUN = "not run"


def _formatted(table: pd.DataFrame, labels: Mapping[str, str] | None = None, markup: str = "markdown",
               unranked: Collection[str] = (), not_run: Collection[str] = ()) -> dict[str, pd.DataFrame]:
    """One block per task; the best value per site column and in the Mean column in bold (``markup``), as the
    paper marks them, among the rows whose experiment is not in ``unranked``; the ``not_run`` row labels before the
    last row, "not run" in every column. HTML text comes escaped."""
    strong = MARKUPS[markup]
    plain = escape if markup == "html" else str
    blocks = {}
    for task in TASK_METRICS:
        rows = table[table["task"] == task]
        if rows.empty:
            continue
        rows = rows.assign(
            cell=[_cell(m, s, k) for m, s, k in zip(rows["mean"], rows["std"], rows["skipped"], strict=True)],
            row=[plain(row_label(e, s, labels)) for e, s in zip(rows["experiment"], rows["source"], strict=True)],
        )
        ranked = ~rows["experiment"].isin(list(unranked))
        best = pd.Series(False, index=rows.index)
        for _, column in rows.groupby("site", sort=False):
            best |= best_mask(column["mean"], ranked.loc[column.index])
        rows["cell"] = [strong(c) if b else plain(c) for c, b in zip(rows["cell"], best, strict=True)]
        order = list(dict.fromkeys(rows["row"]))
        wide = rows.pivot(index="row", columns="site", values="cell").reindex(order).fillna("–")
        per_row = rows.groupby("row", sort=False).agg(overall=("overall", "first"), experiment=("experiment", "first"))
        per_row = per_row.reindex(order)
        top = best_mask(per_row["overall"], ~per_row["experiment"].isin(list(unranked)))
        wide["Mean"] = [strong(f"{v:.3f}") if b else f"{v:.3f}" for v, b in zip(per_row["overall"], top, strict=True)]
        if not_run:  # before the last row: the ablation table's reference (ModalTune) stays last
            missing = pd.DataFrame(NOT_RUN, index=[plain(label) for label in not_run], columns=wide.columns)
            wide = pd.concat([wide.iloc[:-1], missing, wide.iloc[-1:]])
        block = wide.reset_index(names="row").rename(columns={"row": "Method"}).rename_axis(columns=None)
        if rows["modality"].nunique() > 1:  # the paper's group column, named on the first row of each group
            modality = rows.groupby("row", sort=False)["modality"].first().reindex(order).map(MODALITY_TITLES)
            block.insert(0, "Modality", modality.where(modality != modality.shift()).fillna("").to_numpy())
        blocks[task] = block
    return blocks


def _skipped_notes(table: pd.DataFrame, labels: Mapping[str, str] | None) -> list[str]:
    """One line per cell with skipped seeds: the row, the site and the reasons."""
    rows = table[table["skipped"] != ""]
    return [f"{row_label(r.experiment, r.source, labels)}, {r.site}: {r.skipped}" for r in rows.itertuples()]


def write_tables(table: pd.DataFrame, stem: str | os.PathLike, labels: Mapping[str, str] | None = None,
                 unranked: Collection[str] = (), not_run: Mapping[str, str] | None = None) -> list[Path]:
    """Write ``{stem}.csv`` (numbers), ``{stem}.md`` and ``{stem}.html`` (one block per task, rows named by
    ``labels``: experiment name -> label; the best value per column in bold, the rows of ``unranked`` experiments
    left out of that comparison, as Table 3 leaves out the models supervised on the target site). ``not_run`` (row
    label -> reason) lists rows this run cannot fill before the last row, their reasons under the tables; the CSV
    holds measured cells only."""
    stem = Path(stem)
    not_run = dict(not_run or {})
    written = []
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    written.append(stem.with_suffix(".csv"))
    notes = _skipped_notes(table, labels)
    missing = [f"{label}: {reason}" for label, reason in not_run.items()]
    blocks = _formatted(table, labels, "markdown", unranked, not_run)
    markdown = "\n\n".join(f"### {TASK_TITLES[t]}\n\n{b.to_markdown(index=False, disable_numparse=True)}"
                           for t, b in blocks.items())
    if notes:
        markdown += "\n\n\\* Runs skipped (mean over the other seeds):\n\n" + "\n".join(f"- {n}" for n in notes)
    if missing:
        markdown += "\n\nNot run:\n\n" + "\n".join(f"- {n}" for n in missing)
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(markdown + "\n")
    written.append(stem.with_suffix(".md"))
    blocks = _formatted(table, labels, "html", unranked, not_run)  # cells escaped there: bold is markup
    html = "\n".join(f"<h3>{TASK_TITLES[t]}</h3>\n{b.to_html(index=False, border=0, escape=False)}"
                     for t, b in blocks.items())
    if notes:
        items = "".join(f"<li>{escape(n)}</li>" for n in notes)
        html += f"\n<p>* Runs skipped (mean over the other seeds):</p>\n<ul>{items}</ul>"
    if missing:
        html += f"\n<p>Not run:</p>\n<ul>{''.join(f'<li>{escape(n)}</li>' for n in missing)}</ul>"
    with atomic_path(stem.with_suffix(".html")) as tmp:
        tmp.write_text(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'></head><body>\n{html}\n</body></html>\n")
    written.append(stem.with_suffix(".html"))
    return written
