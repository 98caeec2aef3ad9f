# Interpretability (paper Fig. 3): for the highest- and lowest-risk test patients (or `interpret.patients`), the
# integrated-gradient pathway attributions of the survival probe's risk and the three attention maps over the
# slide thumbnails; one job per experiment, site and seed (`interpret.seeds: figure` keeps the figure seed only).
# The patients are chosen at run time, so their figures ({patient}.png) are not declared outputs: the job's
# index.html embeds them for the report. Arguments go through a script (a site's slide list is long).


include: "interpret_functions.smk"


rule interpret:
    input:
        unpack(interpret_inputs),
    output:
        summary="results/figures/interpret/{experiment}/{site}/seed{seed}/summary.tsv",
        attributions="results/figures/interpret/{experiment}/{site}/seed{seed}/attributions.tsv",
        page=report(
            "results/figures/interpret/{experiment}/{site}/seed{seed}/index.html",
            caption="../report/interpret.rst",
            category="Interpretation",
            subcategory="{experiment}",
            labels={"site": "{site}", "seed": "{seed}"},
        ),
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
        seed=r"\d+",
    log:
        "results/logs/interpret/{experiment}/{site}/seed{seed}.log",
    params:
        argv=interpret_argv,
    threads: TRAINING["threads"]
    resources:
        mem_mb=TRAINING["mem_mb"],
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/modaltune_command.py"


TARGETS.append(interpret_targets)
