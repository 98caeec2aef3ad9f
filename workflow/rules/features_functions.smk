# Helpers of rules/features.smk: feature-file and manifest paths, GPU requests, targets.


def feature_file(slide):
    return FEATURE_FILE.format(slide=slide)


def feature_manifest(site):
    return FEATURE_MANIFEST.format(site=site)


def site_feature_files(wildcards):
    return [feature_file(slide) for slide in slides_of(wildcards.site)]


def feature_gpus():
    """A GPU for real encoders unless the config pins the CPU; the tiny demo encoder runs on the CPU."""
    if FEATURES["device"] == "cpu":
        return 0
    return 1 if FEATURES["device"].startswith("cuda") or FEATURE_ENCODER.gpu_recommended else 0


def feature_targets():
    return [feature_manifest(site) for site in SITES]


TARGETS.append(feature_targets)
