# Helpers of rules/text.smk: encoder input files, targets.


def text_encoder_files(wildcards):
    """CONCH's local files (a local Hugging Face model's config.json) as inputs, so a missing one stops the run before
    any job starts."""
    if wildcards.text_encoder == "conch":
        conch = config["text"]["conch"]
        return [path for path in (conch["checkpoint"], conch["tokenizer"]) if path]
    if wildcards.text_encoder == "hf" and config["text"]["hf"]["path"]:
        return [os.path.join(config["text"]["hf"]["path"], "config.json")]
    return []


def text_targets():
    return expand(
        "results/text/{site}_seed{seed}_{text_encoder}.parquet",
        site=list(SITES),
        seed=SEEDS,
        text_encoder=TEXT_ENCODER,
    )


TARGETS.append(text_targets)
