"""Preflight check of a run (`modaltune check`): the config, every input file, the weights and the job plan, before
any GPU time is spent."""

from modaltune.check.preflight import Preflight, run_preflight

__all__ = ["Preflight", "run_preflight"]
