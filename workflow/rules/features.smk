# Tile features: one job per slide, results/features/{encoder}/{slide}.h5 (modaltune.features).
# With `features.precomputed_dir` set, CLAM/TRIDENT feature files named {slide}.h5 are validated and copied in
# instead (no tiling, no encoder). Training and evaluation read a site's features through its manifest,
# results/features/{encoder}/{site}.manifest.parquet (`feature_manifest(site)`), one input instead of thousands.

from modaltune.features import get_encoder_config

FEATURES = config["features"]
FEATURE_ENCODER = get_encoder_config(FEATURES["encoder"]) if not FEATURES["precomputed_dir"] else None
FEATURES_PARAMS = section_json("features")
FEATURE_FILE = f"results/features/{FEATURES['encoder']}/{{slide}}.h5"
FEATURE_MANIFEST = f"results/features/{FEATURES['encoder']}/{{site}}.manifest.parquet"


include: "features_functions.smk"


if FEATURES["precomputed_dir"]:

    rule import_features:
        input:
            os.path.join(FEATURES["precomputed_dir"], "{slide}.h5"),
        output:
            FEATURE_FILE,
        log:
            "results/logs/import_features/{slide}.log",
        params:
            section=FEATURES_PARAMS,
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../../envs/base.yaml"
        shell:
            "modaltune import-features --source {input:q} --out {output:q} --params {params.section:q} > {log:q} 2>&1"

elif FEATURES["slides_per_job"] == 1:

    rule extract_features:
        input:
            tiles="results/tiles/{slide}.parquet",
            slide=slide_file,
        output:
            FEATURE_FILE,
        log:
            "results/logs/extract_features/{slide}.log",
        params:
            section=FEATURES_PARAMS,
        threads: FEATURES["workers"] + 1
        resources:
            mem_mb=FEATURE_ENCODER.job_mem_mb,
            runtime=60 if feature_gpus() else 20,
            gpu=feature_gpus(),
        group:
            "extract_features"
        conda:
            "../../envs/torch.yaml"
        shell:
            "modaltune extract --slide {input.slide:q} --tiles {input.tiles:q} --out {output:q} "
            "--threads {threads} --params {params.section:q} > {log:q} 2>&1"

else:
    # Several slides per job (the demo): one rule per batch of slides, since outputs without a common wildcard
    # cannot share a rule.
    for batch, slides in enumerate(slide_batches(FEATURES["slides_per_job"])):

        rule:
            name:
                f"extract_features_batch{batch}"
            input:
                tiles=[f"results/tiles/{slide}.parquet" for slide in slides],
                slides=[SLIDE_FILE[slide] for slide in slides],
            output:
                [feature_file(slide) for slide in slides],
            log:
                f"results/logs/extract_features/batch{batch}.log",
            params:
                section=FEATURES_PARAMS,
            threads: FEATURES["workers"] + 1
            resources:
                mem_mb=FEATURE_ENCODER.job_mem_mb,
                runtime=60,
                gpu=feature_gpus(),
            conda:
                "../../envs/torch.yaml"
            shell:
                "modaltune extract --slide {input.slides:q} --tiles {input.tiles:q} --out {output:q} "
                "--threads {threads} --params {params.section:q} > {log:q} 2>&1"


rule feature_manifest:
    input:
        site_feature_files,
    output:
        FEATURE_MANIFEST,
    log:
        "results/logs/feature_manifest/{site}.log",
    params:
        argv=lambda wildcards, input, output: ["feature-manifest", "--features", *input,
                                               "--encoder", FEATURES["encoder"], "--out", output[0]],
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/base.yaml"
    script:
        "../scripts/modaltune_command.py"
