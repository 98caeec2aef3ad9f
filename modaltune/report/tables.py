"""Gather probe files into one long table, then pivot it into the paper's layout and write CSV, Markdown and HTML."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from modaltune.evaluation.probes import SUBTYPE_METRIC, SURVIVAL_METRIC, summarise_seeds
from modaltune.io import atomic_path

TASK_METRICS = {"subtype": SUBTYPE_METRIC, "survival": SURVIVAL_METRIC}
TASK_TITLES = {"subtype": "Cancer subtype prediction (balanced accuracy)", "survival": "Survival prediction (C-index)"}


def collect_probes(paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per (experiment, source, site, seed, task) with the metric value, read from probe JSON files.

    ``source`` is the site (or "pooled") an out-of-distribution model was trained on, "" for in-domain probes.
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
                }
            )
    return pd.DataFrame(rows, columns=["experiment", "source", "site", "seed", "task", "metric", "value"])


def results_table(long: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per cell; the `overall` column averages the per-site means of a row.

    A cell of a single run (the frozen-encoder baseline when the split is shared by every seed) has no std (NaN),
    and the formatted tables show its mean alone, as the paper's `Gigapath LP` rows.
    Rows keep the order in which their experiments first appear in ``long``.
    """
    keys = ["task", "experiment", "source"]
    cells = []
    for (task, experiment, source, site), group in long.groupby([*keys, "site"], sort=False):
        mean, std = summarise_seeds(group["value"].tolist())
        std = std if len(group) > 1 else float("nan")
        cells.append({"task": task, "experiment": experiment, "source": source, "site": site, "mean": mean,
                      "std": std, "seeds": len(group)})
    cells = pd.DataFrame(cells)
    overall = cells.groupby(keys, sort=False)["mean"].mean().rename("overall").reset_index()
    return cells.merge(overall, on=keys)


def row_label(experiment: str, source: str, labels: Mapping[str, str] | None = None) -> str:
    """The table's row name: the experiment's label, plus the training site of an out-of-distribution model."""
    label = (labels or {}).get(experiment, experiment)
    return f"{label} (trained on {source})" if source else label


def _formatted(table: pd.DataFrame, labels: Mapping[str, str] | None = None) -> dict[str, pd.DataFrame]:
    blocks = {}
    for task in TASK_METRICS:
        rows = table[table["task"] == task]
        if rows.empty:
            continue
        rows = rows.assign(
            cell=[f"{m:.3f}" if pd.isna(s) else f"{m:.3f} ± {s:.3f}" for m, s in zip(rows["mean"], rows["std"],
                                                                                         strict=True)],
            row=[row_label(e, s, labels) for e, s in zip(rows["experiment"], rows["source"], strict=True)],
        )
        order = list(dict.fromkeys(rows["row"]))
        wide = rows.pivot(index="row", columns="site", values="cell").reindex(order).fillna("–")
        wide["Mean"] = rows.groupby("row", sort=False)["overall"].first().reindex(order).map("{:.3f}".format)
        blocks[task] = wide.reset_index().rename(columns={"row": "Method"}).rename_axis(columns=None)
    return blocks


def write_tables(table: pd.DataFrame, stem: str | os.PathLike, labels: Mapping[str, str] | None = None) -> list[Path]:
    """Write ``{stem}.csv`` (numbers), ``{stem}.md`` and ``{stem}.html`` (one block per task, rows named by
    ``labels``: experiment name -> label)."""
    stem = Path(stem)
    written = []
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    written.append(stem.with_suffix(".csv"))
    blocks = _formatted(table, labels)
    markdown = "\n\n".join(f"### {TASK_TITLES[t]}\n\n{b.to_markdown(index=False, disable_numparse=True)}" for t, b in blocks.items())
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(markdown + "\n")
    written.append(stem.with_suffix(".md"))
    html = "\n".join(f"<h3>{TASK_TITLES[t]}</h3>\n{b.to_html(index=False, border=0)}" for t, b in blocks.items())
    with atomic_path(stem.with_suffix(".html")) as tmp:
        tmp.write_text(f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'></head><body>\n{html}\n</body></html>\n")
    written.append(stem.with_suffix(".html"))
    return written
