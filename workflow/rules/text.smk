# Text targets: per site and split seed, the prompts (duration bins fitted on that seed's training patients) and
# their embeddings with the configured text encoder (before the random projector, which training applies); the demo
# embeds a site's seeds in one job (`text.seeds_per_job`).

TEXT_ENCODER = config["text"]["encoder"]


include: "text_functions.smk"


rule prompts:
    input:
        cohort="results/cohort/{site}.parquet",
        splits="results/cohort/{site}_splits.parquet",
    output:
        "results/text/{site}_seed{seed}_prompts.parquet",
    wildcard_constraints:
        seed=r"\d+",
    log:
        "results/logs/prompts/{site}_seed{seed}.log",
    params:
        section=section_json("text"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/base.yaml"
    shell:
        "modaltune prompts --site {wildcards.site} --seed {wildcards.seed} --cohort {input.cohort} "
        "--splits {input.splits} --out {output} --params {params.section:q} > {log} 2>&1"


if config["text"]["seeds_per_job"] == 1:

    rule embed_text:
        input:
            prompts="results/text/{site}_seed{seed}_prompts.parquet",
            encoder_files=text_encoder_files,
        output:
            "results/text/{site}_seed{seed}_{text_encoder}.parquet",
        wildcard_constraints:
            seed=r"\d+",
            text_encoder=r"minilm|conch|hf",  # the encoders of modaltune/schema/text.yaml
        log:
            "results/logs/embed_text/{site}_seed{seed}_{text_encoder}.log",
        params:
            section=section_json("text"),
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../../envs/torch.yaml"
        shell:
            "modaltune embed-text --prompts {input.prompts} --encoder {wildcards.text_encoder} --out {output} "
            "--params {params.section:q} > {log} 2>&1"

else:
    # Several seeds' prompt tables per job (the demo): one rule per batch of one site's seeds.
    for batch, (site, seeds) in enumerate(text_batches()):

        rule:
            name:
                f"embed_text_batch{batch}"
            input:
                prompts=[f"results/text/{site}_seed{seed}_prompts.parquet" for seed in seeds],
                encoder_files=encoder_files_of(TEXT_ENCODER),
            output:
                [f"results/text/{site}_seed{seed}_{TEXT_ENCODER}.parquet" for seed in seeds],
            log:
                f"results/logs/embed_text/{site}_seeds{'-'.join(map(str, seeds))}_{TEXT_ENCODER}.log",
            params:
                encoder=TEXT_ENCODER,
                section=section_json("text"),
            threads: 2
            resources:
                mem_mb=4000,
                runtime=30,
            conda:
                "../../envs/torch.yaml"
            shell:
                "modaltune embed-text --prompts {input.prompts:q} --encoder {params.encoder} --out {output:q} "
                "--params {params.section:q} > {log:q} 2>&1"
