"""`results/cohort/{site}_report.md`: counts and lists of every patient or slide the cohort rules set aside."""

from __future__ import annotations

import os

import pandas as pd

from modaltune.cohort.harmonise import HarmoniseReport
from modaltune.cohort.splits import SiteSplits
from modaltune.io import atomic_path


def render_report(
    report: HarmoniseReport, sources: pd.DataFrame, cohort: pd.DataFrame, splits: SiteSplits
) -> str:
    """Markdown text; ``sources`` has one row per clinical file (source, format, records, patients)."""
    lines = [f"# Cohort report: {report.site}", "", "## Clinical tables", ""]
    lines += ["| file | format | rows | patients |", "|---|---|---|---|"]
    lines += [f"| {r.source} | {r.format} | {r.records} | {r.patients} |" for r in sources.itertuples()]

    lines += [
        "",
        "## Cohort",
        "",
        f"{len(cohort)} patients, {int(cohort['has_rna'].sum())} with RNA, "
        f"{int(cohort['event'].sum())} deaths, {sum(map(len, cohort['slides']))} slides.",
        "",
    ]
    lines += ["| subtype | class | patients |", "|---|---|---|"]
    counts = cohort.groupby(["subtype_class", "subtype"]).size().reset_index(name="n")
    lines += [f"| {r.subtype or '(rare set)'} | {r.subtype_class} | {r.n} |" for r in counts.itertuples()]
    if report.unknown_project:
        lines += ["", *_listing("Patients without a TCGA project", report.unknown_project)]

    lines += ["", "## Splits", "", splits.source, "", "| seed | train | val | test |", "|---|---|---|---|"]
    table = splits.table.groupby(["seed", "split"]).size().unstack(fill_value=0)
    lines += [
        f"| {seed} | {row.get('train', 0)} | {row.get('val', 0)} | {row.get('test', 0)} |"
        for seed, row in table.iterrows()
    ]
    if splits.release_missing or splits.not_in_release or splits.class_disagreements:
        lines += ["", *_release_section(splits)]

    lines += ["", "## Identifier mismatches between clinical tables, RNA and slides", ""]
    lines += _listing("Clinical patients without any slide (not in the cohort)", report.without_slides)
    lines += _listing(
        "Slides whose patient has no clinical record (not used)", report.slides_without_clinical
    )
    lines += _listing("RNA patients without a clinical record (not used)", report.rna_without_clinical)
    lines += _listing("Cohort patients without RNA (train split only)", report.without_rna)

    lines += ["## Patients dropped for missing labels", ""]
    if not report.dropped:
        lines += ["None.", ""]
    for reason, patients in sorted(report.dropped.items()):
        lines += _listing(reason, patients)
    if report.other_projects:
        lines += ["## Records of other projects (dropped)", ""]
        lines += [f"- {project}: {n} patients" for project, n in sorted(report.other_projects.items())] + [""]

    lines += ["## Contradictory rows", ""]
    lines += [
        "Rules: dead if any row says dead; the earliest of two death dates; the first of two diagnoses.",
        "",
    ]
    if report.contradictions:
        lines += ["| patient | field | values | resolution |", "|---|---|---|---|"]
        lines += [
            f"| {c.patient} | {c.field} | {', '.join(map(_fmt, c.values))} | {c.resolution} |"
            for c in report.contradictions
        ]
    else:
        lines += ["None."]
    return "\n".join(lines) + "\n"


def _release_section(splits: SiteSplits) -> list[str]:
    lines = ["### Released split against this cohort", ""]
    lines += _listing("Release patients missing from this cohort (no clinical record or slide here)",
                      splits.release_missing)
    lines += _listing("Cohort patients absent from the release (dropped: the release fixes the training set)",
                      splits.not_in_release)
    lines += [f"**Patients whose release class differs from the cohort's subtype class**: "
              f"{len(splits.class_disagreements)}", ""]
    if splits.class_disagreements:
        lines += ["| patient | release primary_class | cohort subtype_class |", "|---|---|---|"]
        lines += [f"| {p} | {release} | {ours} |" for p, release, ours in splits.class_disagreements] + [""]
    return lines


def write_report(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _listing(title: str, items: list[str]) -> list[str]:
    if not items:
        return [f"**{title}**: 0", ""]
    return [f"**{title}**: {len(items)}", "", ", ".join(f"`{item}`" for item in items), ""]


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
