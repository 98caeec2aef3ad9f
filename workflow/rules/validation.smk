# The synthetic validation study (config/validation.yaml, `make validate`): results.csv beside the generator's known
# answers. This is the only rule that reads the truth tables of the synthetic cohort; training and evaluation never
# take them as input (tests/workflow/test_validation_dryrun.py checks the DAG).

if config["validation"]["report"]:
    if not config["demo"]["enabled"]:
        raise WorkflowError("config: validation.report needs the synthetic cohort (demo.enabled: true): real data "
                            "has no known answers; set validation.report: false")
    from modaltune.synth.cohort import site_paths as truth_site_paths

    rule validation_report:
        input:
            results="results/tables/results.csv",
            truth=[truth_site_paths(DEMO_ROOT, site)["truth"] for site in SITES],
            cohort=[f"results/cohort/{site}.parquet" for site in SITES],
            splits=[f"results/cohort/{site}_splits.parquet" for site in SITES],
        output:
            markdown="results/tables/validation.md",
            known="results/tables/validation.csv",
        log:
            "results/logs/validation_report/validation.log",
        params:
            sites=list(SITES),
            seeds=SEEDS,
            section=section_json("validation"),
            labels=table_labels(),
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        localrule: True
        conda:
            "../../envs/base.yaml"
        shell:
            "modaltune validation-report --results {input.results:q} --sites {params.sites} "
            "--truth {input.truth:q} --cohort {input.cohort:q} --splits {input.splits:q} --seeds {params.seeds} "
            "--params {params.section:q} --labels {params.labels:q} --out {output.markdown:q} > {log:q} 2>&1"

    TARGETS.append(lambda: ["results/tables/validation.md", "results/tables/validation.csv"])
