# Interpretability (paper Fig. 3): for the highest- and lowest-risk test patients (or `interpret.patients`), the
# integrated-gradient pathway attributions of the survival probe's risk and the three attention maps over the
# slide thumbnails; one job per experiment, site and seed (`interpret.seeds: figure` keeps the figure seed only).


include: "interpret_functions.smk"


rule interpret:
    input:
        unpack(interpret_inputs),
    output:
        report(
            directory("results/figures/interpret/{experiment}/{site}/seed{seed}"),
            patterns=["{patient}.png"],
            caption="../report/interpret.rst",
            category="Interpretation",
            subcategory="{experiment}",
            labels={"site": "{site}", "seed": "{seed}", "patient": "{patient}"},
        ),
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
        seed=r"\d+",
    log:
        "results/logs/interpret/{experiment}/{site}/seed{seed}.log",
    params:
        model=embed_model_folder,
        options=interpret_options,
        sections=sections_json(INTERPRET_SECTIONS),
    threads: TRAINING["threads"]
    resources:
        mem_mb=TRAINING["mem_mb"],
        runtime=60,
    conda:
        "../../envs/torch.yaml"
    shell:
        "modaltune interpret --model {params.model:q} --site {wildcards.site} --seed {wildcards.seed} "
        "--embeddings {input.embeddings:q} --probes {input.probes:q} {params.options} --out {output:q} "
        "--params {params.sections:q} > {log} 2>&1"


TARGETS.append(interpret_targets)
