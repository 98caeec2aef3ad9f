# Helpers of rules/cohort.smk.


def cohort_command(wildcards, input, output):
    """The `modaltune cohort` arguments of one site. They name every slide of the site, which at TCGA scale is
    longer than a shell command may be, hence a list for scripts/modaltune_command.py."""
    inputs = SITES[wildcards.site]
    return [
        "cohort", "--site", wildcards.site, "--projects", *inputs["projects"], "--clinical", *input.clinical,
        "--omics", input.omics, "--slides", *inputs["slide_ids"], "--slide-status", *input.slide_status,
        "--params", section_json("cohort"),
        "--output", output.cohort, "--splits", output.splits, "--report", output.report,
    ]  # fmt: skip


def site_slide_status(wildcards):
    """The tiling status records of the site's slides (rules/slides.smk); none with precomputed features."""
    if config["features"]["precomputed_dir"]:
        return []
    return [SLIDE_STATUS_FILE.format(slide=slide) for slide in slides_of(wildcards.site)]
