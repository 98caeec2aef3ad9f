"""Dry runs: per-site targets and reruns, and the real-data template under the SLURM profile.

Nothing runs: `snakemake --dry-run` plans the jobs and the tests read that plan. Real-data runs use placeholder
(empty) input files, since only their names matter for planning.
"""

import re
from pathlib import Path

import pytest
import yaml
from snakemake_cli import (
    SLURM_ENV,
    SLURM_PROFILE,
    TCGA_CONFIG,
    create_outputs,
    dry_run,
    placeholder_tcga_config,
    planned_jobs,
    snakemake,
)

import modaltune.config
from modaltune.synth import demo_site_inputs

REPO = Path(__file__).resolve().parents[2]


def outputs_of(jobs, rule=None):
    """Outputs of `rule`'s jobs, its demo batch rules (`<rule>_batch<N>`) included; of every job without a rule."""
    return {path for job in jobs if rule is None or is_rule(job, rule) for path in job.outputs}


def is_rule(job, rule):
    return re.fullmatch(rf"{rule}(_batch\d+)?", job.rule) is not None


def names_site(path, site):
    return f"/{site}/" in path or Path(path).name.startswith((f"{site}_", f"{site}."))


def mentions(paths, names):
    """The paths that name any of `names` (a slide id or a site) as a path component or file-name prefix."""
    return {path for path in paths for name in names if f"/{name}" in path or f"/{name}." in path}


DEMO_CONFIG = modaltune.config.load([REPO / "config" / "demo.yaml"])


@pytest.fixture(scope="module")
def demo_sites():
    return demo_site_inputs(DEMO_CONFIG["demo"], root="results/demo")


def test_site_target_plans_that_site_only(tmp_path, demo_sites):
    jobs = dry_run(tmp_path, "results/sites/NSCLC.done")
    nsclc, rcc = demo_sites["NSCLC"]["slide_ids"], demo_sites["RCC"]["slide_ids"]
    assert outputs_of(jobs, "tile") == {f"results/tiles/{slide}.parquet" for slide in nsclc} | {
        f"results/qc/{slide}.png" for slide in nsclc
    } | {f"results/qc/status/{slide}.json" for slide in nsclc}
    # The shared pathway table reads every site's expression matrix, so the demo generates RCC's raw inputs too
    # (results/demo/RCC/...); no RCC result is built.
    results = {path for path in outputs_of(jobs) if not path.startswith("results/demo/")}
    assert not mentions(results, rcc), "an RCC slide is planned for the NSCLC target"
    assert not {path for path in results if "RCC" in Path(path).name or "/RCC/" in path}
    assert "results/sites/NSCLC.done" in results


def test_demo_batches_small_jobs_and_real_cohorts_do_not(tmp_path):
    """The demo pays each process start-up once per batch: no job per slide, per training run, per embedding file or
    per probe; the real-data template keeps one resumable job for each."""
    demo = dry_run(tmp_path / "demo", "all")
    per_item = {"tile", "extract_features", "embed_text", "train", "embed", "embed_ood", "evaluate", "evaluate_ood"}
    assert not per_item & {job.rule for job in demo}
    batches = {re.sub(r"\d+$", "", job.rule) for job in demo if re.search(r"_batch\d+$", job.rule)}
    assert {"tile_batch", "extract_features_batch", "embed_text_batch", "train_batch", "embed_ood_batch",
            "evaluate_batch"} <= batches
    n_slides = sum(len(inputs["slide_ids"]) for inputs in demo_site_inputs(DEMO_CONFIG["demo"], root="results/demo").values())
    assert len(outputs_of(demo, "tile")) == 3 * n_slides
    assert sum(is_rule(job, "tile") for job in demo) <= n_slides / 10

    placeholders = placeholder_tcga_config(tmp_path / "inputs")
    real = dry_run(tmp_path / "run", "--configfile", TCGA_CONFIG, placeholders)
    assert {"tile", "extract_features", "embed_text", "train", "embed", "evaluate"} <= {job.rule for job in real}
    assert not [job.rule for job in real if "_batch" in job.rule]


def test_site_target_covers_every_site_output_of_all(tmp_path, demo_sites):
    """Each output of `all` that names a site or one of its slides, and depends on no other site, is built by that
    site's target. Cross-site outputs (naming two sites, or of the pooled experiment) are left to `all`."""
    all_outputs = outputs_of(dry_run(tmp_path, "all"))
    pooled = {name for name, experiment in DEMO_CONFIG["experiments"].items() if experiment["pooled"]}
    for site, inputs in demo_sites.items():
        site_outputs = outputs_of(dry_run(tmp_path, f"results/sites/{site}.done"))
        belongs = mentions(all_outputs, inputs["slide_ids"]) | {
            path for path in all_outputs if names_site(path, site)
        }
        belongs = {
            path
            for path in belongs
            if not path.startswith("results/demo/")
            and not any(names_site(path, other) for other in demo_sites if other != site)
            and not pooled.intersection(Path(path).parts)
        }
        assert belongs, f"no output of `all` belongs to {site}"
        assert belongs <= site_outputs, (
            f"{site}: not built by its target: {sorted(belongs - site_outputs)[:5]}"
        )


def test_cohort_waits_for_the_tiling_status_of_its_sites_slides(tmp_path, demo_sites):
    """Patients whose every slide failed tiling or has no tissue leave the cohort before splitting, so the cohort
    job needs each of its site's slide status records (and no other site's)."""
    jobs = dry_run(tmp_path, "results/cohort/NSCLC.parquet")
    status = {path for path in outputs_of(jobs, "tile") if path.startswith("results/qc/status/")}
    assert status == {f"results/qc/status/{slide}.json" for slide in demo_sites["NSCLC"]["slide_ids"]}


@pytest.fixture(scope="module")
def built_two_site_cohort(tmp_path_factory):
    """A placeholder real-data cohort of two sites whose outputs all exist and are up to date.

    The outputs are empty files: created, then stamped in DAG order with `--touch`, so Snakemake sees a finished
    run without running a job.
    """
    tmp_path = tmp_path_factory.mktemp("cohort")
    placeholders = placeholder_tcga_config(tmp_path / "inputs", {"NSCLC": 3, "BRCA": 2})
    configs = [
        "--configfile",
        TCGA_CONFIG,
        placeholders,
    ]  # after the targets: --configfile takes several files
    workdir = tmp_path / "run"
    create_outputs(workdir, outputs_of(dry_run(workdir, "all", *configs)))
    snakemake(workdir, "all", "--touch", "--cores", "1", *configs)
    assert "Nothing to be done" in snakemake(workdir, "all", "--dry-run", *configs).stdout
    return workdir, configs


def test_forcerun_on_site_target_redoes_that_site_only(built_two_site_cohort):
    workdir, configs = built_two_site_cohort
    jobs = dry_run(workdir, "results/sites/BRCA.done", "--forcerun", "tile", *configs)
    tiled = outputs_of(jobs, "tile")
    assert {Path(path).name for path in tiled if path.startswith("results/tiles/")} == {
        path.name.replace(".svs", ".parquet")
        for path in (workdir.parent / "inputs" / "BRCA" / "slides").iterdir()
    }
    assert all("forced" in job.reason.lower() for job in jobs if job.rule == "tile")
    planned = outputs_of(jobs)
    assert not mentions(planned, ["NSCLC", *slides_of(workdir, "NSCLC")]), "an NSCLC output would be rebuilt"
    assert {job.rule for job in jobs} > {"tile", "site"}, "outputs downstream of the tiles are rebuilt too"


def test_forcerun_without_site_target_redoes_every_site(built_two_site_cohort):
    """The contrast that makes the site target necessary: `--forcerun tile` alone re-tiles the whole cohort."""
    workdir, configs = built_two_site_cohort
    tiled = outputs_of(dry_run(workdir, "all", "--forcerun", "tile", *configs), "tile")
    assert mentions(tiled, slides_of(workdir, "NSCLC")) and mentions(tiled, slides_of(workdir, "BRCA"))


def slides_of(workdir, site):
    return [path.stem for path in (workdir.parent / "inputs" / site / "slides").iterdir()]


def test_tcga_template_with_slurm_profile(tmp_path):
    """config/tcga.yaml on placeholder inputs plans under the SLURM profile: its sites only, no demo site,
    GPU rules on the GPU partition with one GPU, CPU rules on the CPU partition."""
    placeholders = placeholder_tcga_config(tmp_path / "inputs")
    env = {**SLURM_ENV, "MODALTUNE_SLURM_PARTITION": "cpu-part", "MODALTUNE_SLURM_GPU_PARTITION": "gpu-part"}
    jobs = dry_run(
        tmp_path / "run", "--profile", SLURM_PROFILE, "--configfile", TCGA_CONFIG, placeholders, env=env
    )
    planned = outputs_of(jobs)

    assert not {path for path in planned if path.startswith("results/demo")}
    assert not {job.rule for job in jobs if job.rule.startswith("demo")}
    template_sites = set(placeholder_sites(placeholders))
    demo_only_sites = {"NSCLC", "RCC"} - template_sites
    assert not {
        path for path in planned for site in demo_only_sites if f"/{site}" in path or f"{site}_" in path
    }
    placeholder_slides = {p.name.removesuffix(".svs") for p in (tmp_path / "inputs").glob("*/slides/*.svs")}
    tiled = {
        Path(path).name.removesuffix(".parquet")
        for path in outputs_of(jobs, "tile")
        if path.endswith(".parquet")
    }
    assert tiled == placeholder_slides

    by_rule = {job.rule: job.resources for job in jobs}
    assert by_rule["tile"]["slurm_partition"] == "cpu-part"
    assert by_rule["extract_features"]["slurm_partition"] == "gpu-part"
    assert by_rule["extract_features"]["gpu"] == "1"


def test_precomputed_features_are_imported_and_nothing_is_tiled(tmp_path):
    """CLAM/TRIDENT feature files named {slide}.h5: one import job per slide feeds each site's manifest."""
    placeholders = placeholder_tcga_config(tmp_path / "inputs")
    precomputed = tmp_path / "inputs" / "trident"
    precomputed.mkdir()
    slides = [path.stem for path in (tmp_path / "inputs").glob("*/slides/*.svs")]
    for slide in slides:
        (precomputed / f"{slide}.h5").touch()
    override = tmp_path / "precomputed.yaml"
    override.write_text(yaml.safe_dump({"features": {"precomputed_dir": str(precomputed), "encoder": "uni_trident"}}))
    jobs = dry_run(tmp_path / "run", "--configfile", TCGA_CONFIG, placeholders, override)
    rules = {job.rule for job in jobs}
    assert not rules & {"tile", "tiling_report", "extract_features"}
    assert outputs_of(jobs, "import_features") == {f"results/features/uni_trident/{slide}.h5" for slide in slides}
    assert outputs_of(jobs, "feature_manifest") == {
        f"results/features/uni_trident/{site}.manifest.parquet" for site in placeholder_sites(placeholders)
    }
    assert "train" in rules


# Linux's limit on one command-line string (MAX_ARG_STRLEN): Snakemake hands bash a rule's whole shell command as one.
MAX_ARG_STRLEN = 32 * 4096


def test_every_shell_command_fits_the_linux_limit_at_tcga_scale(tmp_path):
    """A site of 2,400 slides (TCGA's GBM+LGG has 1,703 diagnostic slides): the rules that take a whole site's
    slides (cohort, tiling report, feature manifest) pass them in a script, not on a shell command line."""
    sites = placeholder_sites(TCGA_CONFIG)  # every site of the template is replaced; the first one is large
    big = next(iter(sites))
    placeholders = placeholder_tcga_config(tmp_path / "inputs", {site: 2400 if site == big else 2 for site in sites})
    slides = list((tmp_path / "inputs" / big / "slides").iterdir())
    assert sum(len(path.stem) + 3 for path in slides) > MAX_ARG_STRLEN, "the site is too small to test the limit"
    output = snakemake(
        tmp_path / "run", "--dry-run", "--printshellcmds", "--configfile", TCGA_CONFIG, placeholders
    ).stdout
    jobs = planned_jobs(output)
    assert {"cohort", "tiling_report", "feature_manifest"} <= {job.rule for job in jobs}
    commands = [line for line in output.splitlines() if line.startswith("Shell command: ")]
    assert len(commands) >= 2 * len(slides)  # each slide's tile and extract_features jobs print theirs
    longest = max(commands, key=len)
    assert len(longest) < MAX_ARG_STRLEN, longest[:300]


def placeholder_sites(config_file):
    return yaml.safe_load(Path(config_file).read_text())["sites"]


def test_a_gene_alias_table_reaches_both_omics_rules(tmp_path):
    """omics.gene_aliases is an input of the pathway table and of every site's table, passed as --aliases."""
    placeholders = placeholder_tcga_config(tmp_path / "inputs")
    aliases = tmp_path / "inputs" / "aliases.csv"
    aliases.write_text("old,new\nIL8,CXCL8\n")
    override = tmp_path / "aliases.yaml"
    override.write_text(yaml.safe_dump({"omics": {"gene_aliases": str(aliases)}}))
    output = snakemake(tmp_path / "run", "--dry-run", "--printshellcmds", "results/omics/BRCA.parquet",
                       "--configfile", TCGA_CONFIG, placeholders, override).stdout
    commands = [line for line in output.splitlines() if "modaltune pathways " in line or "modaltune omics " in line]
    assert len(commands) == 2 and all(f"--aliases {aliases}" in line for line in commands), output
