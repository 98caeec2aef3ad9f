# Helpers of rules/text.smk: encoder input files, targets.


def text_encoder_files(wildcards):
    return encoder_files_of(wildcards.text_encoder)


def encoder_files_of(encoder):
    """CONCH's local files as inputs, so a missing one stops the run before any job starts."""
    if encoder == "conch":
        conch = config["text"]["conch"]
        return [path for path in (conch["checkpoint"], conch["tokenizer"]) if path]
    return []


def text_batches():
    """(site, seeds) of the demo's text-embedding jobs: `text.seeds_per_job` seeds of one site each."""
    size = config["text"]["seeds_per_job"]
    return [(site, SEEDS[start : start + size]) for site in SITES for start in range(0, len(SEEDS), size)]


def text_targets():
    return expand(
        "results/text/{site}_seed{seed}_{text_encoder}.parquet",
        site=list(SITES),
        seed=SEEDS,
        text_encoder=TEXT_ENCODER,
    )


TARGETS.append(text_targets)
