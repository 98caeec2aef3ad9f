# The synthetic demo cohort (modaltune.synth): one job per site writes its clinical.tsv, Xena matrix, truth table,
# slides and true tissue masks; one job writes the shared pathway file. Slide names are only known from the plan
# (demo_site_inputs in common.smk), so each site gets its own rule with its outputs spelled out.

if config["demo"]["enabled"]:
    from modaltune.synth import mask_path_of
    from modaltune.synth.cohort import site_paths

    DEMO_PARAMS = section_json("demo")

    rule demo_pathways:
        output:
            PATHWAYS_FILE,
        log:
            "results/logs/demo_pathways/pathways.log",
        params:
            section=DEMO_PARAMS,
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        conda:
            "../../envs/base.yaml"
        shell:
            "modaltune synth-pathways --output {output:q} --params {params.section:q} > {log:q} 2>&1"

    for demo_site, demo_inputs in SITES.items():

        rule:
            name:
                f"demo_site_{demo_site}"
            output:
                clinical=demo_inputs["clinical"],
                rna=demo_inputs["rna"],
                truth=site_paths(DEMO_ROOT, demo_site)["truth"],
                slides=demo_inputs["slide_files"],
                masks=[str(mask_path_of(path)) for path in demo_inputs["slide_files"]],
            log:
                f"results/logs/demo_site/{demo_site}.log",
            params:
                section=DEMO_PARAMS,
                site=demo_site,
            threads: 1
            resources:
                mem_mb=2000,
                runtime=15,
            conda:
                "../../envs/base.yaml"
            shell:
                "modaltune synth-site --site {params.site} --clinical {output.clinical:q} --rna {output.rna:q} "
                "--truth {output.truth:q} --slides {output.slides:q} --params {params.section:q} > {log:q} 2>&1"
