"""`results/cohort/{site}_report.md`: counts and lists of every patient or slide the cohort rules set aside, and
the one-line reasons of a cohort that cannot be built (:func:`empty_cohort_reason`, :func:`no_rna_reason`)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from modaltune.cohort.harmonise import NO_DIAGNOSIS, NO_SURVIVAL_TIME, NO_VITAL_STATUS, HarmoniseReport
from modaltune.cohort.splits import SiteSplits
from modaltune.io import atomic_path


def render_report(
    report: HarmoniseReport,
    sources: pd.DataFrame,
    cohort: pd.DataFrame,
    splits: SiteSplits | None,
    problem: str | None = None,
) -> str:
    """Markdown text; ``sources`` has one row per clinical file (source, format, records, patients); ``problem``
    is the error that stopped the build (the report is written first, so that it explains the error)."""
    lines = [f"# Cohort report: {report.site}", ""]
    if problem:
        lines += ["## Error: the cohort was not built", "", problem, ""]
    lines += ["## Clinical tables", ""]
    lines += ["| file | format | rows | patients |", "|---|---|---|---|"]
    lines += [f"| {r.source} | {r.format} | {r.records} | {r.patients} |" for r in sources.itertuples()]

    lines += ["", "## Cohort", ""]
    lines += [f"{report.clinical_patients} clinical patients; dropped: " + _losses_line(report) + "."]
    lines += [
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

    lines += ["", "## Splits", ""]
    if splits is None:
        lines += ["Not made."]
    else:
        lines += [splits.source, "", "| seed | train | val | test |", "|---|---|---|---|"]
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

    lines += ["## Slides that cannot be used (tiling failed or no tissue)", ""]
    lines += _listing(
        "Patients whose every slide is unusable (not in the cohort, not in the splits)",
        list(report.without_usable_slides),
    )
    if report.unusable_slides:
        lines += ["| slide | why |", "|---|---|"]
        lines += [f"| {slide} | {why} |" for slide, why in sorted(report.unusable_slides.items())] + [""]

    lines += ["## Patients dropped for missing labels", ""]
    if not report.dropped:
        lines += ["None.", ""]
    for reason, patients in sorted(report.dropped.items()):
        lines += _listing(reason, patients)
    if report.other_projects:
        lines += [
            f"## Records of projects outside sites.{report.site}.projects {report.projects} (dropped)",
            "",
        ]
        lines += [f"- {project}: {n} patients" for project, n in sorted(report.other_projects.items())] + [""]

    lines += ["## Corrected survival labels (cohort patients)", ""]
    for correction, patients in report.corrections.items():
        lines += _listing(correction, patients)

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


def empty_cohort_reason(report: HarmoniseReport, sources: pd.DataFrame) -> str:
    """Why no patient is left: the reason that dropped the most patients, with counts and its likely cause, then
    the other reasons' counts."""
    if not report.clinical_patients:
        return f"the clinical tables hold no patient record ({', '.join(sources['source'])})"
    ranked = sorted(report.losses().items(), key=lambda item: -len(item[1]))  # ties keep rule order
    reason, patients = ranked[0]
    text = f"{len(patients):,} of {report.clinical_patients:,} clinical patients {_cause(reason, report, sources)}"
    if len(ranked) > 1:
        text += "; also dropped: " + ", ".join(f"{len(p):,} {r}" for r, p in ranked[1:])
    return text


def no_rna_reason(report: HarmoniseReport, rna: Sequence[str], cohort: pd.DataFrame) -> str:
    if not len(rna):
        return f"the omics table of the site has no patient: check sites.{report.site}.rna"
    return (
        f"none of the {len(cohort):,} cohort patients has RNA: the {len(set(rna)):,} patients of the omics table "
        f"(e.g. {', '.join(sorted(rna)[:2])}) match none of the cohort's (e.g. "
        f"{', '.join(cohort['patient'][:2])}); check sites.{report.site}.rna (sample ids must start with the "
        "patient's 12-character TCGA barcode)"
    )


def _cause(reason: str, report: HarmoniseReport, sources: pd.DataFrame) -> str:
    formats = set(sources["format"])
    site = report.site
    if reason == "other project":
        others = sorted(report.other_projects)
        return (
            f"dropped: project {', '.join(others)} {'is' if len(others) == 1 else 'are'} not in "
            f"sites.{site}.projects [{', '.join(report.projects)}]"
        )
    if reason == NO_DIAGNOSIS:
        if "cbioportal_patient" in formats and "cbioportal_sample" not in formats:
            return (
                "have no diagnosis: a cBioPortal patient table needs its sample table (add the study's "
                f"data_clinical_sample.txt to sites.{site}.clinical)"
            )
        return "have no diagnosis: check the diagnosis column of the clinical tables"
    if reason == NO_VITAL_STATUS:
        if "cbioportal_sample" in formats and "cbioportal_patient" not in formats:
            return (
                "have no vital status: a cBioPortal sample table needs its patient table (add the study's "
                f"data_clinical_patient.txt to sites.{site}.clinical)"
            )
        return f"have no vital status: add a clinical table with survival data to sites.{site}.clinical"
    if reason == NO_SURVIVAL_TIME:
        return "have neither a time of death nor of last follow-up"
    if reason == "no slide":
        examples = f"clinical patients e.g. {', '.join(report.without_slides[:2])}"
        if report.slides_without_clinical:
            examples += f"; slides e.g. {', '.join(report.slides_without_clinical[:2])}"
        return (
            "have no slide: no slide file name starts with their 12-character barcode "
            f"({examples}); check sites.{site}.slides and sites.{site}.slide_glob"
        )
    if reason == "no usable slide":
        slide, why = next(iter(sorted(report.unusable_slides.items())))
        return (
            f"have slides, but every one failed tiling or has no tissue (e.g. {slide}: {why}); "
            "see results/qc/failed_slides.tsv"
        )
    raise AssertionError(f"no cause text for the loss {reason!r}")


def _losses_line(report: HarmoniseReport) -> str:
    losses = report.losses()
    return ", ".join(f"{len(patients)} {reason}" for reason, patients in losses.items()) if losses else "none"


def _listing(title: str, items: list[str]) -> list[str]:
    if not items:
        return [f"**{title}**: 0", ""]
    return [f"**{title}**: {len(items)}", "", ", ".join(f"`{item}`" for item in items), ""]


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
