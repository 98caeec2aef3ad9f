# Cohort: per site, the clinical tables (any recognised format) + its slide ids + its RNA patients -> one row per
# patient with labels and subtype, the per-seed splits, and a report of every identifier mismatch.


rule cohort:
    input:
        clinical=site_input("clinical"),
        omics="results/omics/{site}.parquet",
    output:
        cohort="results/cohort/{site}.parquet",
        splits="results/cohort/{site}_splits.parquet",
        report="results/cohort/{site}_report.md",
    log:
        "results/logs/cohort/{site}.log",
    params:
        section=section_json("cohort"),
        projects=site_input("projects"),
        slides=site_input("slide_ids"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/base.yaml"
    shell:
        "modaltune cohort --site {wildcards.site} --projects {params.projects:q} --clinical {input.clinical:q} "
        "--omics {input.omics:q} --slides {params.slides:q} --params {params.section:q} "
        "--output {output.cohort:q} --splits {output.splits:q} --report {output.report:q} > {log} 2>&1"


COHORT_TARGETS = [
    f"results/cohort/{site}{suffix}" for site in SITES for suffix in (".parquet", "_splits.parquet", "_report.md")
]
TARGETS.append(lambda: COHORT_TARGETS)
