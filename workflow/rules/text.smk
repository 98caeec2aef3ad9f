# Text targets: per site and split seed, the prompts (duration bins fitted on that seed's training patients) and
# their embeddings with the configured text encoder (before the random projector, which training applies).

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
