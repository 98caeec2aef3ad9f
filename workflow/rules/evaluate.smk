# Evaluation (reference modaltune-method.md sections 12-14): linear probes on the General-task patient embeddings,
# per experiment, site and seed (a pooled experiment is probed per site), the frozen-encoder baseline
# (`Gigapath LP`) embedded and probed like an experiment (once per site when its split is shared by every seed), and
# the out-of-distribution runs of `evaluation.ood`: a trained model embeds another site's patients, with genes
# z-scored on that site's training split, probed on that site's own train/test split.


include: "evaluate_functions.smk"


rule embed_frozen:
    input:
        unpack(frozen_inputs),
    output:
        f"results/embeddings/{FROZEN['name']}/{{site}}/seed{{seed}}.parquet",
    wildcard_constraints:
        seed=r"\d+",
    log:
        "results/logs/embed_frozen/{site}/seed{seed}.log",
    params:
        sections=sections_json(FROZEN_SECTIONS),
    threads: TRAINING["threads"]
    resources:
        mem_mb=TRAINING["mem_mb"],
        runtime=60,
        gpu=TRAINING["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "modaltune embed-frozen --site {wildcards.site} --seed {wildcards.seed} --out {output:q} "
        "--params {params.sections:q} > {log} 2>&1"


rule evaluate:
    input:
        embeddings="results/embeddings/{experiment}/{site}/seed{seed}.parquet",
        cohort="results/cohort/{site}.parquet",
        splits="results/cohort/{site}_splits.parquet",
    output:
        "results/probes/{experiment}/{site}/seed{seed}.json",
    wildcard_constraints:
        experiment="|".join([*EXPERIMENTS, FROZEN["name"]]),
        seed=r"\d+",
    log:
        "results/logs/evaluate/{experiment}/{site}/seed{seed}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune evaluate --embeddings {input.embeddings:q} --cohort {input.cohort:q} --splits {input.splits:q} "
        "--experiment {wildcards.experiment} --site {wildcards.site} --seed {wildcards.seed} --out {output:q} "
        "> {log} 2>&1"


rule embed_ood:
    input:
        unpack(ood_inputs),
    output:
        "results/ood/embeddings/{experiment}/{source}/{site}/seed{seed}.parquet",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
        source="|".join([*SITES, POOLED]),
        seed=r"\d+",
    log:
        "results/logs/embed_ood/{experiment}/{source}/{site}/seed{seed}.log",
    params:
        model=ood_model_folder,
        sections=experiment_sections_json,
    threads: TRAINING["threads"]
    resources:
        mem_mb=TRAINING["mem_mb"],
        runtime=60,
        gpu=TRAINING["gpus"],
    conda:
        "../../envs/torch.yaml"
    shell:
        "modaltune embed --model {params.model} --site {wildcards.site} --seed {wildcards.seed} --out {output:q} "
        "--gene-scaling target-train --params {params.sections:q} > {log} 2>&1"


rule evaluate_ood:
    input:
        embeddings="results/ood/embeddings/{experiment}/{source}/{site}/seed{seed}.parquet",
        cohort="results/cohort/{site}.parquet",
        splits="results/cohort/{site}_splits.parquet",
    output:
        "results/ood/probes/{experiment}/{source}/{site}/seed{seed}.json",
    wildcard_constraints:
        experiment="|".join(EXPERIMENTS) or "NO_EXPERIMENT",
        source="|".join([*SITES, POOLED]),
        seed=r"\d+",
    log:
        "results/logs/evaluate_ood/{experiment}/{source}/{site}/seed{seed}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=15,
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune evaluate --embeddings {input.embeddings:q} --cohort {input.cohort:q} --splits {input.splits:q} "
        "--experiment {wildcards.experiment} --source {wildcards.source} --site {wildcards.site} "
        "--seed {wildcards.seed} --out {output:q} > {log} 2>&1"


TARGETS.append(all_probe_files)
TARGETS.append(ood_probe_files)
