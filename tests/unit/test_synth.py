"""The synthetic cohort: real formats (OpenSlide/Aperio, GDC classic, Xena, SurvPath), determinism, planted signal."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import openslide
import pandas as pd
import pytest
import tifffile

import modaltune.config
from modaltune.cli import main as cli_main
from modaltune.synth import demo_pathways_file, demo_site_inputs, mask_path_of, plan_site, write_slide
from modaltune.synth.cohort import RISK_PATHWAYS, SITE_SPECS, site_paths
from modaltune.synth.tables import write_pathways, write_site_tables

GDC_MISSING = "'--"


def demo_config(**overrides) -> dict:
    return modaltune.config.validate({"demo": {"enabled": True, **overrides}})["demo"]


def lowest_level_rgb(path) -> np.ndarray:
    slide = openslide.OpenSlide(str(path))
    level = slide.level_count - 1
    return np.asarray(slide.read_region((0, 0), level, slide.level_dimensions[level]).convert("RGB"))


def read_mask(slide_path) -> np.ndarray:
    return cv2.imread(str(mask_path_of(slide_path)), cv2.IMREAD_UNCHANGED)


# ---------------------------------------------------------------- slides


def test_write_slide_is_deterministic(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        write_slide(tmp_path / folder / "s.svs", seed=7, width=1600, height=1200, kind="pen", subtype="LUSC")
    assert (tmp_path / "a/s.svs").read_bytes() == (tmp_path / "b/s.svs").read_bytes()
    assert (tmp_path / "a/s.mask.png").read_bytes() == (tmp_path / "b/s.mask.png").read_bytes()
    write_slide(tmp_path / "c.svs", seed=8, width=1600, height=1200, kind="pen", subtype="LUSC")
    assert (tmp_path / "c.svs").read_bytes() != (tmp_path / "a/s.svs").read_bytes()


@pytest.mark.parametrize(("mpp", "objective"), [(0.25, "40"), (0.5, "20")])
def test_slide_is_an_aperio_pyramid_with_its_mask(tmp_path, mpp, objective):
    path = tmp_path / "TCGA-AA-0000-01Z-00-DX1.svs"
    mask_path = write_slide(path, seed=1, width=2400, height=1800, mpp=mpp, subtype="LUAD")
    assert mask_path == tmp_path / "TCGA-AA-0000-01Z-00-DX1.mask.png"
    slide = openslide.OpenSlide(str(path))
    assert slide.properties["openslide.vendor"] == "aperio"
    assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(mpp)
    assert slide.properties["openslide.objective-power"] == objective
    assert slide.level_count >= 3
    assert slide.dimensions == (2400, 1800)
    np.testing.assert_allclose(slide.level_downsamples[:3], [1, 4, 16], rtol=0.01)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        assert all(page.is_tiled and page.compression == tifffile.COMPRESSION.JPEG for page in tif.pages)
    mask = read_mask(path)
    assert mask.dtype == np.uint8 and mask.ndim == 2
    assert mask.shape == slide.level_dimensions[-1][::-1]
    assert set(np.unique(mask)) == {0, 255}
    assert 0.2 < (mask > 0).mean() < 0.6


@pytest.mark.parametrize(("seed", "subtype"), [(3, "KIRP"), (4, "LUSC"), (5, "KIRC"), (6, "other")])
def test_mask_marks_the_stained_pixels_and_not_pen_or_dust(tmp_path, seed, subtype):
    path = tmp_path / "pen.svs"
    write_slide(path, seed=seed, width=3200, height=2400, kind="pen", subtype=subtype)
    rgb = lowest_level_rgb(path)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    tissue = read_mask(path) > 0
    inner = cv2.erode(tissue.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    outer = cv2.dilate(tissue.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
    stained = (hsv[..., 1] > 15) & (hsv[..., 2] > 60)  # the mask is true where the H&E texture is
    assert stained[inner].mean() > 0.95
    pen = (
        stained & (hsv[..., 0] >= 35) & (hsv[..., 0] <= 120)
    )  # blue/green ink; pink/purple H&E hues lie outside
    dark = hsv[..., 2] < 60  # black ink and dust
    glass_marks = (pen | dark) & outer
    assert glass_marks.sum() > 50, "the pen stroke and the specks are on the slide"
    # (JPEG chroma subsampling blends colours across the tissue border: compare away from it)
    assert not (pen & inner).any() and not (dark & inner).any(), "glass marks never overlap the true tissue"
    near_marks = cv2.dilate((pen | dark).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # JPEG halos
    bare_glass = outer & ~near_marks
    assert stained[bare_glass].mean() < 0.002


def test_empty_and_corrupt_slides(tmp_path):
    empty = tmp_path / "empty.svs"
    write_slide(empty, seed=2, width=1600, height=1200, kind="empty")
    assert not read_mask(empty).any()
    assert (cv2.cvtColor(lowest_level_rgb(empty), cv2.COLOR_RGB2HSV)[..., 2] < 120).any(), "dust specks"
    corrupt = tmp_path / "corrupt.svs"
    write_slide(corrupt, seed=2, width=2400, height=1800, kind="corrupt")
    with pytest.raises(openslide.OpenSlideError):
        openslide.OpenSlide(str(corrupt))
    assert read_mask(corrupt).any()


def test_subtypes_look_different(tmp_path):
    """Stain colour and nuclei density differ per subtype, as tile features must be able to tell."""
    means = {}
    for subtype in ("LUAD", "LUSC", "KIRC", "KIRP", "KICH"):
        path = tmp_path / f"{subtype}.svs"
        write_slide(path, seed=5, width=2400, height=1800, subtype=subtype)
        slide = openslide.OpenSlide(str(path))
        mask = cv2.resize(read_mask(path), slide.level_dimensions[1], interpolation=cv2.INTER_NEAREST) > 0
        level1 = np.asarray(slide.read_region((0, 0), 1, slide.level_dimensions[1]).convert("RGB"))
        means[subtype] = level1[cv2.erode(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0].mean(axis=0)
    for a, b in (("LUAD", "LUSC"), ("KIRC", "KIRP"), ("KIRC", "KICH"), ("KIRP", "KICH")):
        assert np.abs(means[a] - means[b]).max() > 12, (a, b, means[a], means[b])


def test_write_slide_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown slide kind"):
        write_slide(tmp_path / "x.svs", seed=0, width=800, height=600, kind="blurry")
    with pytest.raises(ValueError, match="unknown subtype appearance"):
        write_slide(tmp_path / "x.svs", seed=0, width=800, height=600, subtype="BRCA")


# ---------------------------------------------------------------- plan


def test_demo_site_inputs_is_a_pure_plan(tmp_path):
    config = demo_config()
    inputs = demo_site_inputs(config, root=str(tmp_path))
    assert list(tmp_path.iterdir()) == [], "planning writes nothing"
    assert inputs == demo_site_inputs(config, root=str(tmp_path))
    assert set(inputs) == {"NSCLC", "RCC"}
    assert inputs["NSCLC"]["projects"] == ["LUAD", "LUSC"]
    assert inputs["RCC"]["projects"] == ["KIRC", "KIRP", "KICH"]
    assert demo_pathways_file(str(tmp_path)) == str(tmp_path / "pathways.csv")
    for site, site_inputs in inputs.items():
        assert site_inputs["slides"] == str(tmp_path / site / "slides")
        assert site_inputs["slide_glob"] == "*.svs"
        assert site_inputs["clinical"] == [str(tmp_path / site / "clinical.tsv")]
        assert site_inputs["rna"] == [str(tmp_path / site / "HiSeqV2.tsv")]
        ids, files = site_inputs["slide_ids"], site_inputs["slide_files"]
        assert len(ids) == len(set(ids)) == len(files)
        assert files == [f"{tmp_path}/{site}/slides/{slide}.svs" for slide in ids]
        assert all(re.fullmatch(r"TCGA-\w\w-\w{4}-01Z-00-DX[12]\.[0-9A-F-]{36}", slide) for slide in ids)
        plan = plan_site(site, config)
        assert len(plan.patients) == config["patients_per_site"] and 40 <= len(plan.patients) <= 80
        kinds = [slide.kind for slide in plan.slides]
        assert (kinds.count("pen"), kinds.count("empty"), kinds.count("corrupt")) == (1, 1, 1)
        for patient in plan.patients:  # every patient keeps a readable slide with tissue
            assert patient.slides[0].kind in ("tissue", "pen")
            assert all(slide.slide_id[:12] == patient.patient for slide in patient.slides)
        assert {slide.mpp for slide in plan.slides} == {0.25, 0.5}
        assert sum(len(p.slides) == 2 for p in plan.patients) >= 2
        assert any(not p.has_rna for p in plan.patients) and any(p.stage is None for p in plan.patients)


def test_synth_cli_writes_exactly_the_planned_files(tmp_path):
    params = {
        "enabled": True,
        "sites": ["RCC"],
        "patients_per_site": 10,
        "slide_width_um": 300,
        "slide_height_um": 240,
    }
    root = tmp_path / "demo"
    inputs = demo_site_inputs(demo_config(**params), root=str(root))["RCC"]
    tables = [
        "--clinical",
        *inputs["clinical"],
        "--rna",
        *inputs["rna"],
        "--truth",
        str(root / "RCC/truth.tsv"),
    ]
    command = ["synth-site", "--site", "RCC", *tables, "--slides", *inputs["slide_files"]]
    assert cli_main([*command, "--params", json.dumps(params)]) == 0
    pathways = demo_pathways_file(str(root))
    assert cli_main(["synth-pathways", "--output", pathways, "--params", json.dumps(params)]) == 0
    expected = {
        *inputs["clinical"],
        *inputs["rna"],
        str(root / "RCC/truth.tsv"),
        demo_pathways_file(str(root)),
    }
    expected |= {*inputs["slide_files"], *(str(mask_path_of(path)) for path in inputs["slide_files"])}
    assert {str(path) for path in root.rglob("*") if path.is_file()} == expected


# ---------------------------------------------------------------- tables


@pytest.fixture(scope="module")
def big_cohort(tmp_path_factory):
    """Tables (no slides) of both sites with 300 patients each, enough for stable signal checks."""
    root = tmp_path_factory.mktemp("demo")
    config = demo_config(patients_per_site=300)
    write_pathways(demo_pathways_file(root), config)
    for site in config["sites"]:
        write_site_tables(plan_site(site, config), config, site_paths(root, site))
    return root, config


def read_clinical(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def test_pathway_file_is_survpath_style(big_cohort):
    root, config = big_cohort
    text = (root / "pathways.csv").read_text()
    assert text.startswith("gene,GABA_B_receptor_activation,Toll_Like_Receptor_TLR6/TLR2_Cascade,")
    composition = pd.read_csv(root / "pathways.csv", index_col="gene")
    assert composition.shape == (config["genes"], 60)
    assert set(np.unique(composition.to_numpy())) == {0, 1}
    assert (composition.sum(axis=1) >= 1).all() and (composition.sum(axis=0) >= 4).all()
    assert sum(name.startswith("HALLMARK_") for name in composition.columns) == 50


def test_clinical_tsv_is_gdc_classic(big_cohort):
    root, _ = big_cohort
    for site, spec in SITE_SPECS.items():
        raw = (root / site / "clinical.tsv").read_text()
        assert raw.startswith("case_id\tcase_submitter_id\tproject_id\tage_at_index\t")
        clinical = read_clinical(root / site / "clinical.tsv")
        rows_per_case = clinical.groupby("case_submitter_id").size()
        assert len(rows_per_case) == 300 and rows_per_case.max() >= 2 and (rows_per_case == 2).mean() > 0.7
        assert set(clinical["project_id"]) == {f"TCGA-{p}" for p in spec.projects}
        assert (clinical == GDC_MISSING).any().any()
        assert set(clinical["vital_status"]) == {"Alive", "Dead"}
        assert (clinical["days_to_birth"].astype(int) < 0).all()
        assert set(clinical["gender"]) == {"male", "female"}
        stages = clinical["ajcc_pathologic_stage"]
        assert stages.str.fullmatch(r"Stage (I|II|III|IV)[ABC]?|'--").all() and (stages == GDC_MISSING).any()
        assert clinical["ajcc_pathologic_t"].str.fullmatch(r"T[1-4][ab]?|'--").all()
        assert clinical["ajcc_pathologic_n"].str.fullmatch(r"N[0-3X]|'--").all()
        assert clinical["ajcc_pathologic_m"].str.fullmatch(r"M(0|1[ab]?|X)|'--").all()
        diagnoses = set(clinical["primary_diagnosis"])
        for subtype in spec.subtypes:
            assert subtype.diagnoses[0][0] in diagnoses
        assert diagnoses & {diagnosis for _, diagnosis, _ in spec.rare}
        dead = clinical[clinical["vital_status"] == "Dead"].groupby("case_submitter_id")["days_to_death"]
        assert (dead.agg(lambda days: (days != GDC_MISSING).any())).all(), "every dead case has a death day"
    nsclc = set(read_clinical(root / "NSCLC/clinical.tsv")["primary_diagnosis"])
    assert {"Adenocarcinoma, NOS", "Squamous cell carcinoma, NOS"} <= nsclc
    rcc = set(read_clinical(root / "RCC/clinical.tsv")["primary_diagnosis"])
    assert {
        "Clear cell adenocarcinoma, NOS",
        "Papillary adenocarcinoma, NOS",
        "Renal cell carcinoma, chromophobe type",
    } <= rcc


def test_xena_matrix_is_hiseqv2_style(big_cohort):
    root, config = big_cohort
    lines = (root / "NSCLC/HiSeqV2.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert header[0] == "sample"
    assert all(re.fullmatch(r"TCGA-\w\w-\w{4}-(01|11)", sample) for sample in header[1:])
    codes = [sample[-2:] for sample in header[1:]]
    assert codes.count("11") > 10 and codes.count("01") > 250
    assert re.fullmatch(r"SYN\d{4}(\t\d+\.\d{4})+", lines[1])
    matrix = pd.read_csv(root / "NSCLC/HiSeqV2.tsv", sep="\t", index_col=0)
    genes = pd.read_csv(root / "pathways.csv", index_col="gene").index
    assert set(genes) < set(matrix.index) and len(matrix.index) == config["genes"] + 20
    assert (matrix.to_numpy() >= 0).all() and matrix.to_numpy().max() < 20
    truth = pd.read_csv(root / "NSCLC/truth.tsv", sep="\t")
    with_rna = set(truth.loc[truth["has_rna"], "patient"])
    assert {sample[:12] for sample in header[1:] if sample.endswith("-01")} == with_rna
    assert len(with_rna) < len(truth)


def pathway_scores(root, site) -> pd.DataFrame:
    """Per tumour sample, the mean z-scored expression of each pathway's genes (indexed by patient)."""
    matrix = pd.read_csv(root / site / "HiSeqV2.tsv", sep="\t", index_col=0)
    tumours = matrix[[sample for sample in matrix.columns if sample.endswith("-01")]]
    z = tumours.sub(tumours.mean(axis=1), axis=0).div(tumours.std(axis=1), axis=0)
    composition = pd.read_csv(root / "pathways.csv", index_col="gene")
    scores = {name: z.loc[composition.index[composition[name] == 1]].mean() for name in composition.columns}
    frame = pd.DataFrame(scores)
    frame.index = [sample[:12] for sample in frame.index]
    return frame


def test_subtype_shifts_its_pathways(big_cohort):
    root, _ = big_cohort
    for site, spec in SITE_SPECS.items():
        scores = pathway_scores(root, site)
        truth = pd.read_csv(root / site / "truth.tsv", sep="\t").set_index("patient")
        subtype = truth.loc[scores.index, "subtype"]
        for group in spec.subtypes:
            for pathway, shift in group.pathway_shift.items():
                if shift >= 1.0:
                    inside = scores.loc[subtype == group.name, pathway].mean()
                    outside = scores.loc[(subtype != group.name) & (subtype != "other"), pathway].mean()
                    assert inside - outside > 0.5, (site, group.name, pathway, inside, outside)


def test_hazard_depends_on_stage_and_pathways(big_cohort):
    """A Cox model reading only the files finds the planted hazard; stage and expression each add to it."""
    from lifelines import CoxPHFitter

    root, _ = big_cohort
    for site in SITE_SPECS:
        clinical = pd.read_csv(
            root / site / "clinical.tsv", sep="\t", na_values=[GDC_MISSING], keep_default_na=False
        )
        cases = clinical.groupby("case_submitter_id").agg(
            {
                "vital_status": "first",
                "days_to_death": "max",
                "days_to_last_follow_up": "max",
                "ajcc_pathologic_stage": "first",
            }
        )
        event = (cases["vital_status"] == "Dead").astype(int)
        time = np.where(event == 1, cases["days_to_death"], cases["days_to_last_follow_up"])
        stage_group = (
            cases["ajcc_pathologic_stage"]
            .str.extract(r"Stage (IV|III|II|I)")[0]
            .map({"I": 1, "II": 2, "III": 3, "IV": 4})
        )
        table = pd.DataFrame({"time": time, "event": event, "stage": stage_group}, index=cases.index)
        table = table.join(pathway_scores(root, site)[list(RISK_PATHWAYS)], how="inner").dropna()
        assert len(table) > 200

        def c_index(columns, table=table):
            return CoxPHFitter().fit(table[["time", "event", *columns]], "time", "event").concordance_index_

        both = c_index(["stage", *RISK_PATHWAYS])
        stage_only = c_index(["stage"])
        expression_only = c_index(list(RISK_PATHWAYS))
        assert both > 0.7, (site, both)
        assert both > stage_only + 0.03 and both > expression_only + 0.03, (
            site,
            both,
            stage_only,
            expression_only,
        )
