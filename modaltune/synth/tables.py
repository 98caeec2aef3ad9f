"""Write a planned demo site in the real file formats: GDC classic clinical.tsv, Xena HiSeqV2, SurvPath CSV."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from modaltune.io import atomic_path
from modaltune.synth.cohort import MODALITY_RISK, PATHWAYS, RISK_PATHWAYS, SitePlan, site_rng
from modaltune.synth.pathways import pathway_composition

GDC_MISSING = "'--"
EXTRA_GENES = 20  # genes outside every pathway, as a real genome-wide matrix has (readers must drop them)
# A subset of the 154 columns of a 2020-2023 GDC clinical.tsv, in their original order.
GDC_CLASSIC_COLUMNS = [
    "case_id",
    "case_submitter_id",
    "project_id",
    "age_at_index",
    "age_is_obfuscated",
    "cause_of_death",
    "days_to_birth",
    "days_to_death",
    "ethnicity",
    "gender",
    "race",
    "vital_status",
    "year_of_birth",
    "year_of_death",
    "age_at_diagnosis",
    "ajcc_clinical_m",
    "ajcc_clinical_n",
    "ajcc_clinical_stage",
    "ajcc_clinical_t",
    "ajcc_pathologic_m",
    "ajcc_pathologic_n",
    "ajcc_pathologic_stage",
    "ajcc_pathologic_t",
    "ajcc_staging_system_edition",
    "classification_of_tumor",
    "days_to_diagnosis",
    "days_to_last_follow_up",
    "icd_10_code",
    "last_known_disease_status",
    "morphology",
    "primary_diagnosis",
    "prior_malignancy",
    "prior_treatment",
    "progression_or_recurrence",
    "site_of_resection_or_biopsy",
    "tissue_or_organ_of_origin",
    "tumor_grade",
    "tumor_stage",
    "year_of_diagnosis",
    "treatment_or_therapy",
    "treatment_type",
]
TREATMENTS = ("Pharmaceutical Therapy, NOS", "Radiation Therapy, NOS", "Surgery, NOS")


def _write_tsv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def write_pathways(path: str | os.PathLike, demo: dict[str, Any]) -> None:
    """The pathway composition CSV: header ``gene,<pathways>``, one 0/1 row per gene."""
    composition = pathway_composition(demo["seed"], demo["genes"])
    with atomic_path(path) as tmp:
        composition.to_csv(tmp, lineterminator="\n")


def clinical_table(plan: SitePlan) -> pd.DataFrame:
    """GDC classic layout: one row per (case, treatment), ``'--`` for missing values, cases in random order."""
    rows = []
    order = site_rng(plan.seed, plan.site, "clinical-order").permutation(len(plan.patients))
    for index in order:
        p = plan.patients[index]
        dead = p.event
        # GDC often leaves days_to_last_follow_up empty for the dead and, on some rows, days_to_death too
        follow_up = (
            GDC_MISSING if dead and index % 2 == 0 else str(p.time_days if not dead else p.time_days // 2)
        )
        base = {
            "case_id": p.case_id,
            "case_submitter_id": p.patient,
            "project_id": f"TCGA-{p.project}",
            "age_at_index": str(int(p.age_days // 365.25)),
            "age_is_obfuscated": GDC_MISSING,
            "cause_of_death": GDC_MISSING,
            "days_to_birth": str(-p.age_days),
            "days_to_death": str(p.time_days) if dead else GDC_MISSING,
            "ethnicity": p.ethnicity,
            "gender": p.gender,
            "race": p.race,
            "vital_status": "Dead" if dead else "Alive",
            "year_of_birth": str(p.year_of_diagnosis - int(p.age_days // 365.25)),
            "year_of_death": str(p.year_of_diagnosis + p.time_days // 365) if dead else GDC_MISSING,
            "age_at_diagnosis": str(p.age_days),
            "ajcc_clinical_m": GDC_MISSING,
            "ajcc_clinical_n": GDC_MISSING,
            "ajcc_clinical_stage": GDC_MISSING,
            "ajcc_clinical_t": GDC_MISSING,
            "ajcc_pathologic_m": p.m_stage or GDC_MISSING,
            "ajcc_pathologic_n": p.n_stage or GDC_MISSING,
            "ajcc_pathologic_stage": p.stage or GDC_MISSING,
            "ajcc_pathologic_t": p.t_stage or GDC_MISSING,
            "ajcc_staging_system_edition": "7th" if p.stage else GDC_MISSING,
            "classification_of_tumor": "not reported",
            "days_to_diagnosis": "0",
            "days_to_last_follow_up": follow_up,
            "icd_10_code": p.icd_10,
            "last_known_disease_status": "not reported",
            "morphology": p.morphology,
            "primary_diagnosis": p.diagnosis,
            "prior_malignancy": "no",
            "prior_treatment": "No",
            "progression_or_recurrence": "not reported",
            "site_of_resection_or_biopsy": p.tissue_site,
            "tissue_or_organ_of_origin": p.tissue_site,
            "tumor_grade": "not reported",
            "tumor_stage": GDC_MISSING,
            "year_of_diagnosis": str(p.year_of_diagnosis),
        }
        for number in range(p.treatment_rows):
            row = dict(base, treatment_or_therapy=_treatment_answer(index, number), treatment_type=TREATMENTS[number])
            if dead and number > 0 and index % 3 == 0:
                row["days_to_death"] = GDC_MISSING  # survival must be collapsed over a case's rows
            rows.append(row)
    return pd.DataFrame(rows, columns=GDC_CLASSIC_COLUMNS)


def _treatment_answer(index: int, number: int) -> str:
    """Whether a case received its ``number``-th treatment kind: a fixed pattern over the cases (no random draw, so the
    other planted values are unchanged), with some "not reported" as in real exports; it carries no signal."""
    if (index + number) % 7 == 3:
        return "not reported"
    return "yes" if (index + number) % 2 == 0 else "no"


def expression_table(plan: SitePlan, demo: dict[str, Any]) -> pd.DataFrame:
    """Xena HiSeqV2 layout: genes x samples, log2(norm_count+1), first column ``sample``, 15-character ids.

    Every pathway gene loads on the mean activity of its pathways; the gene baselines are shared by all sites.
    Samples: ``-01`` tumour for patients with RNA, ``-11`` normal for some patients (with or without a tumour
    sample), in random column order, so a normal can come before its patient's tumour.
    """
    composition = pathway_composition(demo["seed"], demo["genes"])
    n_pathway_genes = len(composition)
    genes = list(composition.index) + [f"SYN{n_pathway_genes + i + 1:04d}" for i in range(EXTRA_GENES)]
    membership = np.vstack([composition[PATHWAYS].to_numpy(float), np.zeros((EXTRA_GENES, len(PATHWAYS)))])
    gene_rng = site_rng(demo["seed"], "genes", "baseline")
    baseline = gene_rng.uniform(2.0, 12.0, len(genes))
    spread = gene_rng.uniform(0.4, 1.2, len(genes))
    loading = np.where(membership.sum(axis=1) > 0, gene_rng.uniform(0.6, 0.9, len(genes)), 0.0)
    weights = membership / np.maximum(np.sqrt(membership.sum(axis=1, keepdims=True)), 1.0)

    rng = site_rng(demo["seed"], plan.site, "expression")
    samples, activities = [], []
    for p in plan.patients:
        if p.has_rna:
            samples.append(f"{p.patient}-01")
            activities.append(p.latent)
        if p.has_normal:
            samples.append(f"{p.patient}-11")
            activities.append(plan.normal_profile + 0.3 * rng.standard_normal(len(PATHWAYS)))
    signal = np.array(activities) @ weights.T  # samples x genes, unit variance for tumours
    noise = rng.standard_normal(signal.shape)
    values = baseline + spread * (loading * signal + np.sqrt(1 - loading**2) * noise)
    values = np.clip(values, 0.0, None)
    order = rng.permutation(len(samples))
    frame = pd.DataFrame(values[order].T, columns=[samples[i] for i in order])
    frame.insert(0, "sample", genes)
    return frame


def truth_table(plan: SitePlan) -> pd.DataFrame:
    """What the generator knows and real data would not say: for tests and the validation report only (the workflow's
    training and evaluation never read it).

    ``risk`` is the true log hazard, ``risk_stage``/``risk_subtype``/``risk_pathways`` its planted terms and
    ``risk_slides``/``risk_expression`` the part each modality carries (:data:`MODALITY_RISK`).
    """
    planted = sorted({*RISK_PATHWAYS, *(name for s in plan.spec.subtypes for name in s.pathway_shift)})
    rows = []
    for p in plan.patients:
        row = {
            "patient": p.patient,
            "project": p.project,
            "subtype": p.group,
            "diagnosis": p.diagnosis,
            "stage_group": p.stage_group,
            "stage_recorded": p.stage is not None,
            "risk": round(p.risk, 6),
            **{f"risk_{part}": round(value, 6) for part, value in p.risk_parts.items()},
            **{f"risk_{modality}": round(sum(p.risk_parts[part] for part in parts), 6)
               for modality, parts in MODALITY_RISK.items()},
            "time_days": p.time_days,
            "event": int(p.event),
            "has_rna": p.has_rna,
            "slides": ",".join(slide.slide_id for slide in p.slides),
            "slide_kinds": ",".join(slide.kind for slide in p.slides),
        }
        row.update({f"latent:{name}": round(float(p.latent[PATHWAYS.index(name)]), 6) for name in planted})
        rows.append(row)
    return pd.DataFrame(rows)


def write_site_tables(plan: SitePlan, demo: dict[str, Any], paths: dict[str, str]) -> None:
    _write_tsv(clinical_table(plan), paths["clinical"])
    expression = expression_table(plan, demo)
    with atomic_path(paths["rna"]) as tmp:
        expression.to_csv(tmp, sep="\t", index=False, float_format="%.4f", lineterminator="\n")
    _write_tsv(truth_table(plan), paths["truth"])
