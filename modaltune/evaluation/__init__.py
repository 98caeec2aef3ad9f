"""Linear probes on frozen patient embeddings (the paper's evaluation), metrics and seed aggregation."""

from modaltune.evaluation.probes import SubtypeProbe, SurvivalProbe, evaluate_embeddings, summarise_seeds

__all__ = ["SubtypeProbe", "SurvivalProbe", "evaluate_embeddings", "summarise_seeds"]
