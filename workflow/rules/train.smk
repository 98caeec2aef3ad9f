# Training: one ModalTune model per experiment, site group and split seed; patient embeddings per site.
# A per-site experiment trains results/models/{experiment}/{site}/seed{seed}; a pooled (pan-cancer) experiment
# trains results/models/{experiment}/pooled/seed{seed} on all its sites. Both write embeddings per site, which the
# evaluation stage probes. An interrupted training job resumes from its last epoch (checkpoint/ in the model folder).
# Real cohorts: one job per run (`train`) and per embedding file (`embed`); the demo (`training.seeds_per_job` > 1)
# trains a model's seeds, and with `training.experiments_per_job` the experiments that train the same seeds on the
# same sites (a site's ablations), in one job that writes their embeddings too (`train_batch<N>`).

include: "train_functions.smk"


if TRAINING["seeds_per_job"] == 1:

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


else:
    # Several runs per job (the demo): one rule per batch; the job also writes the embeddings of its sites, so the
    # demo has no embed job.
    for batch, job in enumerate(train_batches()):

        rule:
            name:
                f"train_batch{batch}"
            input:
                **train_batch_inputs(job),
            output:
                models=[f"{folder}/{name}" for folder in job.folders for name in MODEL_FILES],
                embeddings=job.embedding_files,
            log:
                job.log,
            params:
                experiments=" ".join(job.experiments),
                sites=" ".join(job.sites),
                seeds=" ".join(map(str, job.seeds)),
                folders=model_folders,
                sections=[experiment_sections(experiment) for experiment in job.experiments],
            threads: TRAINING["threads"]
            resources:
                mem_mb=TRAINING["mem_mb"],
                runtime=TRAINING["runtime"] * len(job.runs),
                gpu=TRAINING["gpus"],
            conda:
                "../../envs/torch.yaml"
            shell:
                "modaltune train --experiment {params.experiments} --sites {params.sites} --seed {params.seeds} "
                "--out {params.folders} --embed-site {params.sites} --embeddings {output.embeddings:q} "
                "--params {params.sections:q} > {log:q} 2>&1"
