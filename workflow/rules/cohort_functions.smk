# Helpers of rules/cohort.smk.


def _release_split_files():
    """{site: its three JSON files} for the sites that take the paper's released split (sites.<site>.splits),
    checked when the workflow starts, so a missing or incomplete folder stops the run with one line."""
    folders = {site: inputs["splits"] for site, inputs in SITES.items() if inputs.get("splits")}
    if not folders:
        return {}
    from modaltune.cohort.release import ReleaseSplitError, release_split_files

    try:
        return {site: [str(path) for path in release_split_files(folder).values()] for site, folder in folders.items()}
    except ReleaseSplitError as error:
        raise WorkflowError(str(error)) from None


RELEASE_SPLIT_FILES = _release_split_files()


def release_split_inputs(wildcards):
    return RELEASE_SPLIT_FILES.get(wildcards.site, [])


def split_is_shared(site):
    """Whether every seed of the site uses the same split: the default (cohort.split_per_seed false), or a
    released split."""
    return not config["cohort"]["split_per_seed"] or site in RELEASE_SPLIT_FILES


def cohort_command(wildcards, input, output):
    """The `modaltune cohort` arguments of one site. They name every slide of the site, which at TCGA scale is
    longer than a shell command may be, hence a list for scripts/modaltune_command.py."""
    inputs = SITES[wildcards.site]
    release = ["--release-splits", inputs["splits"]] if wildcards.site in RELEASE_SPLIT_FILES else []
    return [
        "cohort", "--site", wildcards.site, "--projects", *inputs["projects"], "--clinical", *input.clinical,
        "--omics", input.omics, "--slides", *inputs["slide_ids"], "--slide-status", *input.slide_status,
        *release, "--params", section_json("cohort"),
        "--output", output.cohort, "--splits", output.splits, "--report", output.report,
    ]  # fmt: skip


def site_slide_status(wildcards):
    """The tiling status records of the site's slides (rules/slides.smk); none with precomputed features."""
    if config["features"]["precomputed_dir"]:
        return []
    return [SLIDE_STATUS_FILE.format(slide=slide) for slide in slides_of(wildcards.site)]
