# Tissue detection and tiling: one job per slide (the demo: per batch of `slides.slides_per_job` slides), then one
# aggregate job for the failed-slide table and a summary.
# With `slides.on_error: skip` an unreadable slide still gets its (empty) tile table, a QC image saying why and a
# `failed` status record, so the rest of the cohort goes on; results/qc/failed_slides.tsv lists those slides and the
# slides without tissue. The cohort rule reads the status records of its site's slides (rules/cohort.smk).
# On SLURM, `--group-components tile=<n>` bundles n slides per cluster job (see README, "Running on SLURM").

# `all` asks for the two tables only: they need every slide's status record, so every slide's tile job runs.
SLIDE_STATUS_FILE = "results/qc/status/{slide}.json"
SLIDE_STATUS_FILES = expand(SLIDE_STATUS_FILE, slide=SLIDE_FILE)
TILING_TARGETS = ["results/qc/failed_slides.tsv", "results/qc/tiling_summary.tsv"]


if config["slides"]["slides_per_job"] == 1:

    rule tile:
        input:
            slide_file,
        output:
            tiles="results/tiles/{slide}.parquet",
            qc="results/qc/{slide}.png",
            status=SLIDE_STATUS_FILE,
        log:
            "results/logs/tile/{slide}.log",
        params:
            section=section_json("slides"),
        threads: 1
        resources:
            mem_mb=4000,
            runtime=20,
        group:
            "tile"
        conda:
            "../../envs/base.yaml"
        shell:
            "modaltune tile --slide {input:q} --tiles {output.tiles:q} --qc {output.qc:q} "
            "--status {output.status:q} --params {params.section:q} > {log:q} 2>&1"

else:
    # Several slides per job (the demo): one rule per batch of slides, since outputs without a common wildcard
    # cannot share a rule. Batches are small so that the first QC images appear within seconds.
    for batch, slides in enumerate(slide_batches(config["slides"]["slides_per_job"])):

        rule:
            name:
                f"tile_batch{batch}"
            input:
                [SLIDE_FILE[slide] for slide in slides],
            output:
                tiles=[f"results/tiles/{slide}.parquet" for slide in slides],
                qc=[f"results/qc/{slide}.png" for slide in slides],
                status=[SLIDE_STATUS_FILE.format(slide=slide) for slide in slides],
            log:
                f"results/logs/tile/batch{batch}.log",
            params:
                section=section_json("slides"),
            threads: 1
            resources:
                mem_mb=4000,
                runtime=20,
            conda:
                "../../envs/base.yaml"
            shell:
                "modaltune tile --slide {input:q} --tiles {output.tiles:q} --qc {output.qc:q} "
                "--status {output.status:q} --params {params.section:q} > {log:q} 2>&1"


rule tiling_report:
    input:
        SLIDE_STATUS_FILES,
    output:
        failed="results/qc/failed_slides.tsv",
        summary="results/qc/tiling_summary.tsv",
    log:
        "results/logs/tiling_report/tiling_report.log",
    params:
        argv=lambda wildcards, input, output: ["tiling-report", "--status", *input, "--failed", output.failed,
                                               "--summary", output.summary],
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    localrule: True
    conda:
        "../../envs/base.yaml"
    script:
        "../scripts/modaltune_command.py"


# Precomputed features (features.precomputed_dir) need no tiles, so `all` tiles nothing then.
if not config["features"]["precomputed_dir"]:
    TARGETS.append(lambda: TILING_TARGETS)
