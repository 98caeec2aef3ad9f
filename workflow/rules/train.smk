# Training: one ModalTune model per experiment, site group and split seed; patient embeddings per site.
# A per-site experiment trains results/models/{experiment}/{site}/seed{seed}; a pooled (pan-cancer) experiment
# trains results/models/{experiment}/pooled/seed{seed} on all its sites. Both write embeddings per site, which the
# evaluation stage probes. An interrupted training job resumes from its last epoch (checkpoint/ in the model folder).

include: "train_functions.smk"


rule train:
    input:
        unpack(train_inputs),
    output:
        model="results/models/{experiment}/{group}/seed{seed}/model.safetensors",
        config="results/models/{experiment}/{group}/seed{seed}/config.json",
        history="results/models/{experiment}/{group}/seed{seed}/history.csv",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
        group="|".join([*SITES, POOLED]),
        seed=r"\d+",
    log:
        "results/logs/train/{experiment}/{group}/seed{seed}.log",
    params:
        sites=train_site_names,
        sections=experiment_sections_json,
    threads: TRAINING["threads"]
    resources:
        mem_mb=TRAINING["mem_mb"],
        runtime=TRAINING["runtime"],
        gpu=TRAINING["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "modaltune train --experiment {wildcards.experiment} --sites {params.sites} --seed {wildcards.seed} "
        "--out results/models/{wildcards.experiment}/{wildcards.group}/seed{wildcards.seed} "
        "--params {params.sections:q} > {log} 2>&1"


rule embed:
    input:
        unpack(embed_inputs),
    output:
        "results/embeddings/{experiment}/{site}/seed{seed}.parquet",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
        seed=r"\d+",
    log:
        "results/logs/embed/{experiment}/{site}/seed{seed}.log",
    params:
        model=embed_model_folder,
        sections=experiment_sections_json,
    threads: TRAINING["threads"]
    resources:
        mem_mb=TRAINING["mem_mb"],
        runtime=60,
        gpu=TRAINING["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "modaltune embed --model {params.model} --site {wildcards.site} --seed {wildcards.seed} --out {output} "
        "--params {params.sections:q} > {log} 2>&1"
