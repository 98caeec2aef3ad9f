"""Interpret one trained model on one site and seed: choose patients, attribute, record attention, draw, tabulate.

Outputs in ``out_dir`` (results/figures/interpret/{experiment}/{site}/seed{seed}/):

* ``{patient}.png``: the patient's figure (:mod:`modaltune.interpret.figure`);
* ``{patient}.attention.parquet``: every tile's value in every map and adapter block (slide, x, y, map, block, value);
* ``attributions.tsv``: pathway attributions of every patient (patient, rank, pathway, attribution, n_genes);
* ``index.html``: one self-contained page (the summary table and every figure, embedded) for the Snakemake report;
* ``summary.tsv``: one row per requested patient: why it was chosen, status (``ok`` or ``skipped`` with the reason),
  split, risk with the patient's and with the baseline genes, the IG convergence delta, and with ``planted_signal``
  (the synthetic demo) where the planted pathways rank and where the planted image-signal tiles rank.

The planted signal of the demo (:mod:`modaltune.synth`): the hazard depends on ``RISK_PATHWAYS``; their rank fractions
(rank / pathways, 0 = most important) are reported per patient and averaged. The synthetic slides paint their
image signal (subtype appearance, stage-dependent nuclei) uniformly over the tissue, so the only tile-level answer
is how much of a tile is tissue: ``planted_tiles_<map>`` is the mean rank fraction, in the last block's map, of the
tiles lying fully on the true tissue mask (0 = they get the most attention, 0.5 = no preference, NaN when every
tile lies fully on tissue).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from modaltune.interpret.attention import MAPS, AttentionRecorder
from modaltune.interpret.attributions import pathway_attributions, planted_ranks
from modaltune.interpret.figure import attention_table, draw_patient
from modaltune.interpret.heatmaps import bag_tiles, grid_view, mask_coverage, percentile_of, read_view
from modaltune.interpret.risk import AGREEMENT, PatientRisk, fit_cox_head, probe_risks
from modaltune.io import atomic_path, write_parquet

log = logging.getLogger(__name__)

FULL_TISSUE = 0.99  # a tile counts as lying on tissue when the true mask covers this share of it
DELTA_WARNING = 0.05  # relative convergence delta above which the attributions do not add up well enough


def choose_patients(risks: pd.Series, count: int, listed: Sequence[str]) -> list[tuple[str, str]]:
    """(patient, why) pairs: the listed patients, else the ``count`` highest- then lowest-risk test patients."""
    if listed:
        return [(patient, "listed") for patient in dict.fromkeys(listed)]
    ranked = risks.sort_values(ascending=False, kind="stable")
    high = [(p, "highest risk") for p in ranked.index[:count]]
    low = [(p, "lowest risk") for p in ranked.index[::-1][:count] if p not in ranked.index[:count]]
    return high + low


def skip_reason(patient: str, split: pd.DataFrame, data) -> str | None:
    """Why ``patient`` cannot be interpreted with this split and data, or None."""
    if patient not in set(split["patient"]):
        return f"not in the split of seed {data.seed} ({', '.join(str(f.splits) for f in data.sites)})"
    if patient in data.excluded["no_rna"]:
        return "has no RNA (no expression row), so no pathway attribution is possible"
    if patient in data.excluded["no_tiles"]:
        return "has no tile in any slide, so no attention map is possible"
    return None


def interpret_site(model_dir: str | Path, site, seed: int, embeddings: str | Path, probes: Mapping[str, Any],
                   out_dir: str | Path, settings: Mapping[str, Any], detector=None, default_mpp: float | None = None,
                   slide_paths: Mapping[str, str] | None = None, planted_signal: bool = False,
                   device: str = "cpu") -> pd.DataFrame:
    """Write the outputs listed in the module docstring; returns the summary table. Runs in float32 on
    ``device`` (``training.device``)."""
    from modaltune.devices import resolve_device
    from modaltune.training.data import BagOptions, ExperimentData
    from modaltune.training.embed import load_trained

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.glob("*.png"), *out_dir.glob("*.attention.parquet")]:  # patients of an earlier run
        stale.unlink()
    device = resolve_device(device)
    model, config, scaler = load_trained(model_dir, device)
    data = ExperimentData([site], seed, BagOptions.for_encoder(model.encoder.config, config["tile_cap"],
                                                               config["gap_px"]))
    head = fit_cox_head(embeddings, site.cohort, site.splits, seed).to(device)
    split = pd.read_parquet(site.splits)
    split = split[split["seed"] == seed]
    reported = probe_risks(probes)
    planted = _planted_pathways() if planted_signal else []

    rows, tables = [], []
    for patient, why in choose_patients(reported, settings["count"], settings["patients"]):
        reason = skip_reason(patient, split, data)
        if reason is not None:
            log.error("patient %s skipped: %s", patient, reason)
            rows.append({"patient": patient, "chosen": why, "status": "skipped", "reason": reason})
            continue
        row, table = _interpret_patient(model, config, scaler, data, head, patient, reported, out_dir, settings,
                                        detector, default_mpp, slide_paths, planted)
        row.update(chosen=why, split=split.set_index("patient").at[patient, "split"])
        rows.append(row)
        tables.append(table.assign(patient=patient))

    summary = pd.DataFrame(rows)
    front = [c for c in ("patient", "chosen", "split", "status", "reason") if c in summary]
    summary = summary[front + [c for c in summary if c not in front]]
    attributions = (pd.concat(tables, ignore_index=True)[["patient", "rank", "pathway", "attribution", "n_genes"]]
                    if tables else pd.DataFrame(columns=["patient", "rank", "pathway", "attribution", "n_genes"]))
    _write_tsv(attributions, out_dir / "attributions.tsv")
    _write_tsv(summary, out_dir / "summary.tsv")
    write_page(out_dir / "index.html", f"{site.site}, seed {seed}: why this risk?", summary,
               [out_dir / f"{row['patient']}.png" for row in rows if row["status"] == "ok"])
    if planted and "planted_rank_mean" in summary:
        log.info("planted survival pathways %s: mean rank fraction %.3f over %d patients (top third: <= 0.333)",
                 ", ".join(planted), summary["planted_rank_mean"].mean(), summary["planted_rank_mean"].notna().sum())
    return summary


def _interpret_patient(model, config, scaler, data, head, patient, reported, out_dir, settings, detector,
                       default_mpp, slide_paths, planted) -> tuple[dict[str, Any], pd.DataFrame]:
    bag = data.bag(patient)
    device = head.mean.device
    features, coords = torch.from_numpy(bag.features).to(device), torch.from_numpy(bag.coords).to(device)
    genes = torch.tensor(scaler.transform(data.genes.loc[[patient]]).to_numpy(np.float32)[0], device=device)
    risk_model = PatientRisk(model, features, coords, head)
    attribution = pathway_attributions(risk_model, genes, config["pathways"], config["pathway_genes"],
                                       settings["ig_steps"], settings["ig_batch"])
    if patient in reported.index and abs(attribution.log_risk - np.log(reported[patient])) > AGREEMENT * max(
            1.0, abs(attribution.log_risk)):
        raise RuntimeError(f"patient {patient}: the recomputed risk {attribution.risk:.6g} differs from the probe "
                           f"file's {reported[patient]:.6g}; the model, embeddings and probes are out of date "
                           "(rerun the embed and evaluate rules)")
    if row_delta_relative(attribution) > DELTA_WARNING:
        log.warning("patient %s: IG convergence delta %.2g is %.0f%% of the risk difference; raise interpret.ig_steps",
                    patient, attribution.delta, 100 * row_delta_relative(attribution))
    with torch.no_grad(), AttentionRecorder(model) as recorder:
        model(features, coords, genes, tasks=["general"])
    maps = recorder.result
    tiles = bag_tiles(data, patient)
    views = {slide: (read_view(slide_paths[slide], detector, default_mpp) if slide_paths else grid_view(group))
             for slide, group in tiles.groupby("slide", sort=False)}
    draw_patient(out_dir / f"{patient}.png", patient, attribution, maps, tiles, views, settings["top_pathways"])
    write_parquet(attention_table(maps, tiles), out_dir / f"{patient}.attention.parquet")
    row = {"patient": patient, "status": "ok", "reason": "", "risk": attribution.risk,
           "risk_baseline": attribution.risk_baseline, "ig_delta": attribution.delta,
           "ig_delta_relative": row_delta_relative(attribution),
           "tiles": len(tiles)}
    if planted:
        ranks = planted_ranks(attribution.table, planted)
        row.update({f"rank_{name}": value for name, value in ranks.items()})
        row["planted_rank_mean"] = float(np.mean(list(ranks.values())))
        on_tissue = _true_tissue(tiles, slide_paths, views) >= FULL_TISSUE
        row.update({f"planted_tiles_{name}": percentile_of(maps.maps[name][-1], on_tissue) for name in MAPS})
    log.info("patient %s: risk %.4g (baseline genes %.4g), IG delta %.2g, %d tiles", patient, attribution.risk,
             attribution.risk_baseline, attribution.delta, len(tiles))
    return row, attribution.table


def row_delta_relative(attribution) -> float:
    """|convergence delta| / |log risk difference|: how far the attributions are from adding up."""
    return abs(attribution.delta) / max(abs(attribution.log_risk - attribution.log_risk_baseline), 1e-12)


def _planted_pathways() -> list[str]:
    from modaltune.synth.cohort import RISK_PATHWAYS

    return list(RISK_PATHWAYS)


def _true_tissue(tiles: pd.DataFrame, slide_paths, views) -> np.ndarray:
    """Share of each tile on the synthetic slide's true tissue mask ({slide}.mask.png beside the slide)."""
    import cv2

    from modaltune.synth import mask_path_of

    coverage = np.zeros(len(tiles))
    for slide, group in tiles.groupby("slide", sort=False):
        mask = cv2.imread(str(mask_path_of(slide_paths[slide])), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise FileNotFoundError(f"{mask_path_of(slide_paths[slide])}: the demo slide's true tissue mask is missing")
        coverage[group.index] = mask_coverage(group, mask, views[slide].level0_size)
    return coverage


def write_page(path: Path, title: str, summary: pd.DataFrame, figures: Sequence[Path]) -> None:
    """A self-contained HTML page: the summary table, then each figure embedded as a PNG data URI."""
    import base64
    import html

    images = "".join(
        f'<h2>{html.escape(figure.stem)}</h2><img style="max-width:100%" '
        f'src="data:image/png;base64,{base64.b64encode(figure.read_bytes()).decode()}">' for figure in figures)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1>{summary.to_html(index=False, na_rep='')}{images}</body></html>")
    with atomic_path(path) as tmp:
        Path(tmp).write_text(page)


def _write_tsv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
