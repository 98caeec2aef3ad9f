"""Figures of the paper: Kaplan-Meier curves with a log-rank test, and t-SNE of patient and text embeddings."""

from modaltune.plots.km import plot_kaplan_meier
from modaltune.plots.tsne import plot_tsne

__all__ = ["plot_kaplan_meier", "plot_tsne"]
