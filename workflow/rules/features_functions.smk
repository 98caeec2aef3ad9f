# Helpers of rules/features.smk: feature-file paths, GPU requests, targets.


def feature_file(slide):
    return FEATURE_FILE.format(slide=slide)


def feature_gpus():
    """A GPU for real encoders unless the config pins the CPU; the tiny demo encoder runs on the CPU."""
    if FEATURES["device"] == "cpu":
        return 0
    return 1 if FEATURES["device"].startswith("cuda") or FEATURE_ENCODER.gpu_recommended else 0


def feature_targets():
    return [feature_file(slide) for slide in SLIDE_FILE]


TARGETS.append(feature_targets)
