# Cohort: per site, the clinical tables (any recognised format) + its slide ids and their tiling status + its RNA
# patients -> one row per patient with labels and subtype, its train/val/test split (one shared by every seed unless
# cohort.split_per_seed; or the paper's released split, sites.<site>.splits), and a report of every identifier
# mismatch. The tiling status (results/qc/status/{slide}.json) leaves out, before splitting, the patients whose
# every slide failed tiling or has no tissue; with precomputed features nothing is tiled and every slide counts.

include: "cohort_functions.smk"


rule cohort:
    input:
        clinical=site_input("clinical"),
        omics="results/omics/{site}.parquet",
        release_splits=release_split_inputs,
        slide_status=site_slide_status,
    output:
        cohort="results/cohort/{site}.parquet",
        splits="results/cohort/{site}_splits.parquet",
        report="results/cohort/{site}_report.md",
    log:
        "results/logs/cohort/{site}.log",
    params:
        argv=cohort_command,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/base.yaml"
    script:
        "../scripts/modaltune_command.py"


COHORT_TARGETS = [
    f"results/cohort/{site}{suffix}" for site in SITES for suffix in (".parquet", "_splits.parquet", "_report.md")
]
TARGETS.append(lambda: COHORT_TARGETS)
