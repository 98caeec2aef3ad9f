"""The demo cohort's plan: patients, their clinical facts, latent pathway activity, survival and slides.

:func:`plan_site` draws everything about one site from the demo seed (numpy only, no files), so the workflow
can list the slides at DAG time (:func:`demo_site_inputs`) and the generating job can write the very same cohort.
"""

from __future__ import annotations

import math
import os
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modaltune.synth.pathways import PATHWAYS

DAYS_PER_YEAR = 365.25
BASELINE_MEDIAN_DAYS = 1800.0
STAGE_LOG_HAZARD = 0.9  # per AJCC stage group (I..IV)
# Hazard pathways: independent of subtype, so expression adds prognostic information the slides lack.
RISK_PATHWAYS = {
    "HALLMARK_E2F_TARGETS": 0.9,
    "HALLMARK_G2M_CHECKPOINT": 0.6,
    "HALLMARK_INTERFERON_GAMMA_RESPONSE": -0.75,
}
SLIDE_GLOB = "*.svs"
# Which parts of the log hazard each modality carries (the truth table's `risk_<modality>` columns, upper bounds for
# a model that sees only that modality): the slides show the subtype (appearance) and the stage (nuclei severity);
# the expression shows the subtype (pathway shifts) and the hazard pathways. Only the two together carry all of it.
MODALITY_RISK = {"slides": ("stage", "subtype"), "expression": ("subtype", "pathways")}


@dataclass(frozen=True)
class Subtype:
    """One subtype group of a site: the TCGA project it comes from and how it differs."""

    name: str  # also the key of the slide appearance table
    project: str
    diagnoses: tuple[tuple[str, str], ...]  # (primary_diagnosis as GDC writes it, ICD-O-3 morphology)
    diagnosis_weights: tuple[float, ...]
    share: float
    pathway_shift: dict[str, float]
    log_hazard: float


@dataclass(frozen=True)
class SiteSpec:
    subtypes: tuple[Subtype, ...]
    rare: tuple[tuple[str, str, str], ...]  # (project, primary_diagnosis, morphology): the "rare set"
    stages: tuple[
        tuple[str, int, float, tuple[tuple[str, str, str], ...]], ...
    ]  # (stage, group, weight, TNMs)
    tissue_sites: tuple[str, ...]
    icd_10: tuple[str, ...]
    male_share: float
    tss: dict[str, tuple[str, ...]]  # tissue source site codes per project

    @property
    def projects(self) -> list[str]:
        return [subtype.project for subtype in self.subtypes]


_NSCLC_STAGES = (
    ("Stage IA", 1, 0.25, (("T1a", "N0", "M0"), ("T1b", "N0", "M0"), ("T1", "N0", "M0"))),
    ("Stage IB", 1, 0.24, (("T2a", "N0", "M0"), ("T2", "N0", "M0"))),
    ("Stage IIA", 2, 0.12, (("T2b", "N0", "M0"), ("T1b", "N1", "M0"), ("T2a", "N1", "M0"))),
    ("Stage IIB", 2, 0.13, (("T3", "N0", "M0"), ("T2b", "N1", "M0"))),
    (
        "Stage IIIA",
        3,
        0.15,
        (("T3", "N1", "M0"), ("T4", "N0", "M0"), ("T2a", "N2", "M0"), ("T1b", "N2", "M0")),
    ),
    ("Stage IIIB", 3, 0.04, (("T4", "N2", "M0"), ("T2", "N3", "M0"))),
    ("Stage IV", 4, 0.07, (("T2", "N1", "M1a"), ("T3", "N2", "M1b"), ("T4", "N0", "M1"))),
)
_RCC_STAGES = (
    ("Stage I", 1, 0.45, (("T1a", "N0", "M0"), ("T1b", "N0", "M0"), ("T1", "NX", "M0"))),
    ("Stage II", 2, 0.12, (("T2", "N0", "M0"), ("T2a", "NX", "M0"), ("T2b", "N0", "M0"))),
    (
        "Stage III",
        3,
        0.25,
        (("T3a", "N0", "M0"), ("T3b", "NX", "M0"), ("T1b", "N1", "M0"), ("T3a", "N1", "M0")),
    ),
    ("Stage IV", 4, 0.18, (("T4", "N0", "M0"), ("T3a", "N0", "M1"), ("T2", "N1", "M1"), ("T3b", "NX", "M1"))),
)

SITE_SPECS: dict[str, SiteSpec] = {
    "NSCLC": SiteSpec(
        subtypes=(
            Subtype(
                name="LUAD",
                project="LUAD",
                diagnoses=(
                    ("Adenocarcinoma, NOS", "8140/3"),
                    ("Adenocarcinoma with mixed subtypes", "8255/3"),
                ),
                diagnosis_weights=(0.85, 0.15),
                share=0.5,
                pathway_shift={"HALLMARK_XENOBIOTIC_METABOLISM": 0.8, "HALLMARK_MYC_TARGETS_V1": -0.7},
                log_hazard=0.0,
            ),
            Subtype(
                name="LUSC",
                project="LUSC",
                diagnoses=(("Squamous cell carcinoma, NOS", "8070/3"),),
                diagnosis_weights=(1.0,),
                share=0.5,
                pathway_shift={
                    "HALLMARK_MYC_TARGETS_V1": 0.8,
                    "HALLMARK_GLYCOLYSIS": 1.2,
                    "HALLMARK_XENOBIOTIC_METABOLISM": -0.7,
                },
                log_hazard=0.1,
            ),
        ),
        rare=(
            ("LUSC", "Basaloid squamous cell carcinoma", "8083/3"),
            ("LUAD", "Large cell neuroendocrine carcinoma", "8013/3"),
        ),
        stages=_NSCLC_STAGES,
        tissue_sites=("Upper lobe, lung", "Lower lobe, lung", "Middle lobe, lung", "Lung, NOS"),
        icd_10=("C34.1", "C34.3", "C34.2", "C34.9"),
        male_share=0.6,
        tss={
            "LUAD": ("05", "38", "44", "49", "55", "64", "78", "86", "91", "97"),
            "LUSC": ("18", "21", "22", "33", "34", "43", "56", "60", "66", "85"),
        },
    ),
    "RCC": SiteSpec(
        subtypes=(
            Subtype(
                name="KIRC",
                project="KIRC",
                diagnoses=(
                    ("Clear cell adenocarcinoma, NOS", "8310/3"),
                    ("Renal cell carcinoma, NOS", "8312/3"),
                ),
                diagnosis_weights=(0.92, 0.08),
                share=0.5,
                pathway_shift={"HALLMARK_HYPOXIA": 1.5, "HALLMARK_ANGIOGENESIS": 1.0},
                log_hazard=0.0,
            ),
            Subtype(
                name="KIRP",
                project="KIRP",
                diagnoses=(("Papillary adenocarcinoma, NOS", "8260/3"),),
                diagnosis_weights=(1.0,),
                share=0.3,
                pathway_shift={"HALLMARK_KRAS_SIGNALING_UP": 1.2, "HALLMARK_HYPOXIA": -0.8},
                log_hazard=-0.3,
            ),
            Subtype(
                name="KICH",
                project="KICH",
                diagnoses=(("Renal cell carcinoma, chromophobe type", "8317/3"),),
                diagnosis_weights=(1.0,),
                share=0.2,
                pathway_shift={
                    "HALLMARK_OXIDATIVE_PHOSPHORYLATION": 1.5,
                    "HALLMARK_PEROXISOME": 1.0,
                    "HALLMARK_HYPOXIA": -0.8,
                },
                log_hazard=-0.8,
            ),
        ),
        rare=(("KIRC", "Collecting duct carcinoma", "8319/3"),),
        stages=_RCC_STAGES,
        tissue_sites=("Kidney, NOS",),
        icd_10=("C64.9",),
        male_share=0.65,
        tss={
            "KIRC": ("A3", "B0", "B2", "B4", "BP", "CJ", "CZ", "DV"),
            "KIRP": ("2Z", "5P", "A4", "B1", "BQ", "DZ", "G7"),
            "KICH": ("KL", "KM", "KN", "KO"),
        },
    ),
}


@dataclass
class SlidePlan:
    slide_id: str  # file stem: TCGA-XX-XXXX-01Z-00-DX1.<UUID>
    patient: str
    kind: str  # see modaltune.synth.slides.SLIDE_KINDS
    mpp: float
    width: int
    height: int
    seed: int
    appearance: str
    severity: float
    tissue_fraction: float

    def write(self, path: str | os.PathLike) -> Path:
        """Write this slide (and its true mask beside it); returns the mask path."""
        from modaltune.synth.slides import write_slide  # cv2 and tifffile: not needed to plan at DAG time

        return write_slide(
            path,
            seed=self.seed,
            width=self.width,
            height=self.height,
            mpp=self.mpp,
            kind=self.kind,
            subtype=self.appearance,
            tissue_fraction=self.tissue_fraction,
            severity=self.severity,
        )


@dataclass
class PatientPlan:
    patient: str
    case_id: str
    project: str
    group: str  # subtype name, or "other" for the rare set
    diagnosis: str
    morphology: str
    stage_group: int  # true AJCC group 1..4 (drives hazard and slide severity even when not recorded)
    stage: str | None  # recorded strings; None = missing ('--)
    t_stage: str | None
    n_stage: str | None
    m_stage: str | None
    age_days: int
    gender: str
    race: str
    ethnicity: str
    year_of_diagnosis: int
    tissue_site: str
    icd_10: str
    latent: np.ndarray  # pathway activity, one value per PATHWAYS entry
    risk: float  # log hazard ratio = the sum of risk_parts
    risk_parts: dict[str, float]  # {"stage", "subtype", "pathways"}: the planted terms of the log hazard
    time_days: int
    event: bool
    has_rna: bool  # a tumour (-01) sample in the Xena matrix
    has_normal: bool  # a normal (-11) sample in the Xena matrix
    treatment_rows: int  # rows in clinical.tsv (GDC classic: one per treatment)
    slides: list[SlidePlan] = field(default_factory=list)


@dataclass
class SitePlan:
    site: str
    seed: int
    spec: SiteSpec
    patients: list[PatientPlan]
    normal_profile: np.ndarray  # pathway activity of normal tissue

    @property
    def slides(self) -> list[SlidePlan]:
        return [slide for patient in self.patients for slide in patient.slides]


def site_rng(seed: int, site: str, purpose: str) -> np.random.Generator:
    """Independent, reproducible streams per (seed, site, purpose)."""
    return np.random.default_rng(
        np.random.SeedSequence([seed, zlib.crc32(site.encode()), zlib.crc32(purpose.encode())])
    )


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def plan_site(site: str, demo: dict[str, Any]) -> SitePlan:
    """Every random fact about one demo site, drawn from ``demo['seed']``."""
    if site not in SITE_SPECS:
        raise ValueError(f"unknown demo site {site!r}; the demo knows {', '.join(SITE_SPECS)}")
    spec = SITE_SPECS[site]
    rng = site_rng(demo["seed"], site, "patients")
    n = demo["patients_per_site"]
    patients, used = [], set()
    for _ in range(n):
        rare = rng.random() < demo["rare_fraction"]
        if rare:
            project, diagnosis, morphology = spec.rare[rng.integers(len(spec.rare))]
            subtype = next(s for s in spec.subtypes if s.project == project)
            group = "other"
        else:
            subtype = spec.subtypes[rng.choice(len(spec.subtypes), p=[s.share for s in spec.subtypes])]
            project, group = subtype.project, subtype.name
            diagnosis, morphology = subtype.diagnoses[
                rng.choice(len(subtype.diagnoses), p=subtype.diagnosis_weights)
            ]
        while True:
            tss = spec.tss[project][rng.integers(len(spec.tss[project]))]
            code = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), size=4))
            barcode = f"TCGA-{tss}-{code}"
            if barcode not in used:
                used.add(barcode)
                break
        stage, group_number, tnm = _draw_stage(rng, spec)
        recorded = rng.random() >= demo["missing_stage_fraction"]
        t_stage, n_stage, m_stage = tnm
        if rng.random() < 0.05:
            m_stage = "MX" if m_stage == "M0" else m_stage
        latent = rng.standard_normal(len(PATHWAYS))
        if not rare:
            for name, shift in subtype.pathway_shift.items():
                latent[PATHWAYS.index(name)] += shift
        risk_parts = {
            "stage": STAGE_LOG_HAZARD * (group_number - 2.5),
            "subtype": 0.0 if rare else subtype.log_hazard,
            "pathways": float(sum(beta * latent[PATHWAYS.index(name)] for name, beta in RISK_PATHWAYS.items())),
        }
        risk = sum(risk_parts.values())
        event_days = rng.exponential(BASELINE_MEDIAN_DAYS / math.log(2) / math.exp(risk))
        censor_days = rng.uniform(60, 3650)
        age_years = float(np.clip(rng.normal(65, 10), 35, 88))
        patients.append(
            PatientPlan(
                patient=barcode,
                case_id=_uuid(rng),
                project=project,
                group=group,
                diagnosis=diagnosis,
                morphology=morphology,
                stage_group=group_number,
                stage=stage if recorded else None,
                t_stage=t_stage if recorded else None,
                n_stage=n_stage if recorded else None,
                m_stage=m_stage if recorded else None,
                age_days=int(age_years * DAYS_PER_YEAR),
                gender="male" if rng.random() < spec.male_share else "female",
                race=str(
                    rng.choice(
                        ["white", "black or african american", "asian", "not reported"],
                        p=[0.75, 0.1, 0.05, 0.1],
                    )
                ),
                ethnicity=str(
                    rng.choice(
                        ["not hispanic or latino", "hispanic or latino", "not reported"], p=[0.8, 0.04, 0.16]
                    )
                ),
                year_of_diagnosis=int(rng.integers(1996, 2014)),
                tissue_site=spec.tissue_sites[rng.integers(len(spec.tissue_sites))],
                icd_10=spec.icd_10[rng.integers(len(spec.icd_10))],
                latent=latent,
                risk=float(risk),
                risk_parts=risk_parts,
                time_days=max(1, int(min(event_days, censor_days))),
                event=bool(event_days <= censor_days),
                has_rna=bool(rng.random() >= demo["no_rna_fraction"]),
                has_normal=bool(rng.random() < demo["normal_sample_fraction"]),
                treatment_rows=int(rng.choice([1, 2, 3], p=[0.1, 0.85, 0.05])),
            )
        )
    _plan_slides(site_rng(demo["seed"], site, "slides"), patients, demo)
    normal_profile = site_rng(demo["seed"], site, "normal").standard_normal(len(PATHWAYS))
    return SitePlan(site=site, seed=demo["seed"], spec=spec, patients=patients, normal_profile=normal_profile)


def _draw_stage(rng: np.random.Generator, spec: SiteSpec) -> tuple[str, int, tuple[str, str, str]]:
    weights = np.array([weight for _, _, weight, _ in spec.stages])
    stage, group, _, tnms = spec.stages[rng.choice(len(spec.stages), p=weights / weights.sum())]
    return stage, group, tnms[rng.integers(len(tnms))]


def _plan_slides(rng: np.random.Generator, patients: list[PatientPlan], demo: dict[str, Any]) -> None:
    """1-2 diagnostic slides per patient; glass-only and corrupt slides only ever as a patient's second slide."""
    two_slides = [rng.random() < demo["two_slide_fraction"] for _ in patients]
    special = ["empty"] * demo["empty_slides"] + ["corrupt"] * demo["corrupt_slides"]
    # every special slide needs a patient with a second slide, so that the patient keeps a readable one
    single = [i for i, two in enumerate(two_slides) if not two]
    for i in rng.permutation(single)[: max(0, len(special) - sum(two_slides))]:
        two_slides[i] = True
    with_second = rng.permutation([i for i, two in enumerate(two_slides) if two]).tolist()
    second_kinds = dict(zip(with_second, special, strict=False))
    pen = set(rng.permutation(len(patients))[: demo["pen_slides"]].tolist())
    for i, patient in enumerate(patients):
        kinds = ["pen" if i in pen else "tissue"] + ([second_kinds.get(i, "tissue")] if two_slides[i] else [])
        for number, kind in enumerate(kinds, start=1):
            mpp = 0.5 if rng.random() < demo["low_magnification_fraction"] else 0.25
            width_um = demo["slide_width_um"] * rng.uniform(0.9, 1.1)
            height_um = demo["slide_height_um"] * rng.uniform(0.9, 1.1)
            patient.slides.append(
                SlidePlan(
                    slide_id=f"{patient.patient}-01Z-00-DX{number}.{_uuid(rng).upper()}",
                    patient=patient.patient,
                    kind=kind,
                    mpp=mpp,
                    width=round(width_um / mpp),
                    height=round(height_um / mpp),
                    seed=int(rng.integers(2**31)),
                    appearance=patient.group,
                    severity=(patient.stage_group - 2.5) / 1.5,
                    tissue_fraction=float(rng.uniform(0.3, 0.55)),
                )
            )


def site_paths(root: str | Path, site: str) -> dict[str, str]:
    """Where the demo writes a site's tables (slides go to ``{root}/{site}/slides/``)."""
    base = Path(root) / site
    return {
        "clinical": str(base / "clinical.tsv"),
        "rna": str(base / "HiSeqV2.tsv"),
        "truth": str(base / "truth.tsv"),
        "slides": str(base / "slides"),
    }


def demo_pathways_file(root: str | Path) -> str:
    """The SurvPath-style pathway composition CSV shared by every demo site."""
    return str(Path(root) / "pathways.csv")


def demo_site_inputs(demo_config: dict[str, Any], root: str | Path) -> dict[str, dict[str, Any]]:
    """Per demo site, the same inputs a real site lists in the config (``sites`` schema) plus the slides.

    Writes nothing and takes milliseconds: the workflow calls it while building the DAG.
    """
    inputs = {}
    for site in demo_config["sites"]:
        plan = plan_site(site, demo_config)
        paths = site_paths(root, site)
        slide_ids = [slide.slide_id for slide in plan.slides]
        inputs[site] = {
            "projects": plan.spec.projects,
            "clinical": [paths["clinical"]],
            "rna": [paths["rna"]],
            "slides": paths["slides"],
            "slide_glob": SLIDE_GLOB,
            "slide_ids": slide_ids,
            "slide_files": [str(Path(paths["slides"]) / f"{slide}.svs") for slide in slide_ids],
        }
    return inputs
